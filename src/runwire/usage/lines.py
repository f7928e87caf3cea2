"""The lines of a usage file: split from an upload's chunks, capped at :data:`MAX_LINE_BYTES`,
and counted with progress reported as they are read. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = [
    "MAX_LINE_BYTES",
    "PROGRESS_EVERY",
    "TOO_LONG",
    "LineCounter",
    "ProgressCallback",
    "lines_of",
    "too_long",
]

ProgressCallback = Callable[[int], None]

#: ``on_progress`` is called after every this many lines, and once at the end.
PROGRESS_EVERY = 1000
MAX_LINE_BYTES = 256 * 1024
"""The longest line read, in bytes of UTF-8: a record takes well under 1 KiB, and reading a
longer line could hold the server for longer than a few milliseconds (JSON of 1 MiB, densely
nested, takes the decoder about 20 ms). A longer line is rejected unread."""


def lines_of(chunks: Iterable[bytes]) -> Iterator[str | bytes]:
    """The lines of a body that arrived in ``chunks``, one at a time, each with its ``"\\n"``.

    Lines end at ``"\\n"`` only: str.splitlines would also split inside a JSON string at U+2028
    and the like, breaking a valid line in two and shifting every later number. Each line is
    decoded as UTF-8 on its own, invalid bytes becoming U+FFFD. A line over
    :data:`MAX_LINE_BYTES` is handed on undecoded and cut just past the limit (the readers reject
    it unread). Nothing is done to the whole body at once: copying or decoding 20 MB in one go
    would hold the event loop for tens of milliseconds.
    """
    cut = MAX_LINE_BYTES + 1
    held = bytearray()  # the start of a line that goes on in the next chunk
    for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            if held:
                if len(held) < cut:
                    held += chunk[start : min(end + 1, start + cut - len(held))]
                yield _line(held)
                held = bytearray()
            else:
                yield _line(chunk[start : min(end + 1, start + cut)])
            start = end + 1
        if start < len(chunk) and len(held) < cut:
            held += chunk[start : start + cut - len(held)]
    if held:
        yield _line(held)


def _line(raw: bytes | bytearray) -> str | bytes:
    if len(raw) > MAX_LINE_BYTES:
        return bytes(raw)
    return raw.decode("utf-8", errors="replace")


class LineCounter:
    """Iterates the lines of a file, counting them and reporting progress every
    :data:`PROGRESS_EVERY` lines."""

    def __init__(self, lines: Iterable[Any], on_progress: ProgressCallback | None) -> None:
        self._lines = iter(lines)
        self._on_progress = on_progress
        self.count = 0

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        line = next(self._lines)
        self.count += 1
        if self._on_progress is not None and self.count % PROGRESS_EVERY == 0:
            self._on_progress(self.count)
        return line

    def finish(self) -> None:
        """Report the final count, so a progress bar reaches 100% whatever the line count
        (unless it has just been reported)."""
        if self._on_progress is not None and (self.count == 0 or self.count % PROGRESS_EVERY):
            self._on_progress(self.count)


TOO_LONG = f"line is longer than {MAX_LINE_BYTES} bytes"


def too_long(line: str | bytes) -> bool:
    """Whether ``line`` takes more than :data:`MAX_LINE_BYTES` in UTF-8."""
    if isinstance(line, bytes) or len(line) * 4 <= MAX_LINE_BYTES:
        return len(line) > MAX_LINE_BYTES
    return len(line.encode("utf-8", "surrogatepass")) > MAX_LINE_BYTES
