"""Reading a usage file (JSONL or CSV) into records, line by line, keeping every rejection.

A bad line never stops an import: it is reported with its line number and why, and the good lines
are kept. Both readers take any iterable of lines, so a file, an upload body or a list in a test
feed them alike, and neither holds more than the records it returns.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Literal

from runwire.domain.usage import UsageRecord
from runwire.errors import InputError, UnsupportedMediaType
from runwire.usage.pricing import PricingTable
from runwire.usage.records import parse_record

__all__ = [
    "CSV_REQUIRED_COLUMNS",
    "MAX_LINE_BYTES",
    "PROGRESS_EVERY",
    "ImportFormat",
    "ImportReport",
    "LineCounter",
    "Outcome",
    "detect_format",
    "file_format",
    "lines_of",
    "parse_csv",
    "parse_jsonl",
    "read_csv",
    "read_jsonl",
    "too_long",
]

ImportFormat = Literal["jsonl", "csv"]
ProgressCallback = Callable[[int], None]

#: ``on_progress`` is called after every this many lines, and once at the end.
PROGRESS_EVERY = 1000
MAX_LINE_BYTES = 256 * 1024
"""The longest line read, in bytes of UTF-8: a record takes well under 1 KiB, and reading a
longer line could hold the server for longer than a few milliseconds (JSON of 1 MiB, densely
nested, takes the decoder about 20 ms). A longer line is rejected unread."""
CSV_REQUIRED_COLUMNS = (
    "timestamp",
    "provider",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
)

_CONTENT_TYPES: dict[str, ImportFormat] = {
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/json-lines": "jsonl",
    "application/x-jsonlines": "jsonl",
    "text/csv": "csv",
}
_SUFFIXES: dict[str, ImportFormat] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
# Types that say nothing about the content: browsers send these for files they do not recognise
# (.jsonl is unknown to most; Windows labels .csv as an Excel type), so the file name decides.
_GENERIC_TYPES = frozenset(
    {
        "",
        "application/octet-stream",
        "text/plain",
        "application/json",
        "application/vnd.ms-excel",
        "binary/octet-stream",
    }
)


@dataclass
class ImportReport:
    """What an import read: the valid records, and each rejected line with its number and why."""

    imported: list[UsageRecord] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    lines_read: int = 0

    @property
    def imported_count(self) -> int:
        """How many records were read."""
        return len(self.imported)

    @property
    def rejected_count(self) -> int:
        """How many lines were rejected."""
        return len(self.rejected)

    def public(self, max_rejections: int = 100) -> dict[str, Any]:
        """A JSON-able summary; at most ``max_rejections`` rejections are listed in full."""
        return {
            "imported": self.imported_count,
            "rejected": self.rejected_count,
            "rejections": [
                {"line": line, "error": error} for line, error in self.rejected[:max_rejections]
            ],
            "rejections_truncated": self.rejected_count > max_rejections,
        }


def detect_format(content_type: str | None, filename: str | None) -> ImportFormat:
    """Which reader an upload needs, from its content type or, failing that, its file name.

    A specific content type (``application/x-ndjson``, ``application/jsonl``,
    ``application/json-lines``, ``text/csv``) wins. A generic one (absent, ``text/plain``,
    ``application/octet-stream``, ``application/json``, ``application/vnd.ms-excel``) defers to the
    file name's suffix (``.jsonl``, ``.ndjson``, ``.csv``). Anything else raises
    :class:`UnsupportedMediaType`.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in _CONTENT_TYPES:
        return _CONTENT_TYPES[media]
    if media in _GENERIC_TYPES and filename:
        suffix = PurePath(filename).suffix.lower()
        if suffix in _SUFFIXES:
            return _SUFFIXES[suffix]
    what = f"content type {media!r}" if media else "no content type"
    if filename:
        what += f" and file name {PurePath(filename).name[:80]!r}"
    raise UnsupportedMediaType(
        f"cannot read a usage file with {what}: send JSON Lines (application/x-ndjson, .jsonl) "
        "or CSV (text/csv, .csv)"
    )


def file_format(filename: str) -> ImportFormat:
    """Which reader a local file needs, from its name's suffix alone (a file has no content
    type): ``.jsonl`` or ``.ndjson`` is JSON Lines, ``.csv`` is CSV; anything else raises
    :class:`InputError` saying what is accepted."""
    path = PurePath(filename)
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InputError(
            f"cannot import {path.name[:80]!r}: a usage file is JSON Lines, named *.jsonl "
            "(or *.ndjson), or CSV, named *.csv"
        )
    return kind


Outcome = tuple[int, "UsageRecord | str"]
"""One line's fate: its number, and the record read from it or why it was rejected."""


def parse_jsonl(
    lines: Iterable[str | bytes],
    pricing: PricingTable,
    on_progress: ProgressCallback | None = None,
) -> ImportReport:
    """Read JSON Lines into a report (see :func:`read_jsonl`)."""
    counted = LineCounter(lines, on_progress)
    return _collect(read_jsonl(counted, pricing), counted)


def parse_csv(
    text_lines: Iterable[str],
    pricing: PricingTable,
    on_progress: ProgressCallback | None = None,
) -> ImportReport:
    """Read CSV into a report (see :func:`read_csv`)."""
    counted = LineCounter(text_lines, on_progress)
    return _collect(read_csv(counted, pricing), counted)


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


def read_jsonl(lines: Iterable[str | bytes], pricing: PricingTable) -> Iterator[Outcome]:
    """Read JSON Lines: one JSON object per line, lines numbered from 1.

    Blank lines are skipped (their numbers still count). A line that is not UTF-8, not JSON, not an
    object, or not a valid record is rejected with its number and the reason.
    """
    for number, raw in enumerate(lines, start=1):
        if too_long(raw):
            yield number, _TOO_LONG
            continue
        try:
            text = _decode(raw, first=number == 1)
        except InputError as exc:
            yield number, exc.message
            continue
        if not text.strip():
            continue
        try:
            obj = _json_object(text)
        except InputError as exc:
            yield number, exc.message
            continue
        if not isinstance(obj, dict):
            yield number, f"expected a JSON object, got {_json_kind(obj)}"
            continue
        yield number, _record(obj, pricing)


def read_csv(text_lines: Iterable[str], pricing: PricingTable) -> Iterator[Outcome]:
    """Read CSV with a header row naming the fields (PROTOCOL.md names; order free).

    Numbering: lines are physical lines of the file counted from 1, so the header is line 1 and
    the first data row is line 2, which is what an editor shows next to the bad row. A quoted value
    spanning several lines is numbered by the line it starts on. Blank lines are skipped.

    A rejected row spanning several lines was most likely opened by a stray quote (a cell
    starting with ``"`` runs on, over line ends, to the next quote): its first line is rejected
    and the lines after it are read again as rows of their own, so one stray quote costs one
    line, not the rest of the file. Lines are read again at most as many times in all as the file
    has lines, so even a file of nothing but stray quotes costs at most twice a plain read.

    A header missing a required column makes every row unreadable, so it raises one
    :class:`InputError` naming the missing columns instead of rejecting each row for the same
    reason. Feed lines with their line endings (a file opened with ``newline=""``) so that quoted
    values spanning lines survive.
    """
    source = _CsvLines(text_lines)
    reader = csv.reader(source)
    header: list[str] | None = None
    while True:
        start = source.begin_row()
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # A field over csv.field_size_limit(), or a NUL: this row cannot be read.
            yield start, f"malformed CSV: {exc}" + source.again()
            continue
        except _LineTooLong as exc:
            if exc.number == start:
                yield start, _TOO_LONG
            else:  # a quoted value ran on into it; the row's lines after its first, read again
                yield start, f"a quoted value runs on into line {exc.number}" + source.again()
            continue
        if not "".join(row).strip():
            continue
        if header is None:
            header = _header(row)
            continue
        outcome: UsageRecord | str
        if len(row) > len(header) and "".join(row[len(header) :]).strip():
            outcome = f"row has {len(row)} values but the header has {len(header)} columns"
        else:
            outcome = _record(dict(zip(header, row, strict=False)), pricing)
        if isinstance(outcome, str):
            outcome += source.again()
        yield start, outcome


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


_TOO_LONG = f"line is longer than {MAX_LINE_BYTES} bytes"


def too_long(line: str | bytes) -> bool:
    """Whether ``line`` takes more than :data:`MAX_LINE_BYTES` in UTF-8."""
    if isinstance(line, bytes) or len(line) * 4 <= MAX_LINE_BYTES:
        return len(line) > MAX_LINE_BYTES
    return len(line.encode("utf-8", "surrogatepass")) > MAX_LINE_BYTES


class _LineTooLong(Exception):
    """Raised through csv.reader by :class:`_CsvLines` for a line it must not read."""

    def __init__(self, number: int) -> None:
        self.number = number


class _CsvLines:
    """The physical lines for csv.reader, numbered; the lines of the row being read can be
    handed out again (see :func:`read_csv`)."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self._again: list[str] = []  # lines to hand out again, the next one last
        self._read = 0  # lines taken from the file
        self._read_again = 0  # lines handed out again
        self._row: list[str] = []  # the lines of the row being read
        self.number = 0  # the number of the last line handed out

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._again:
            line = self._again.pop()
        else:
            line = next(self._lines)
            self._read += 1
            if self._read == 1:
                line = line.removeprefix("\ufeff")  # Excel writes a BOM before the header
        self.number += 1
        self._row.append(line)
        if too_long(line):
            raise _LineTooLong(self.number)
        return line

    def begin_row(self) -> int:
        """The number of the line the next row starts on."""
        self._row = []
        return self.number + 1

    def again(self) -> str:
        """Hand out the lines of the row after its first again; past the budget, a note for
        its rejection saying which lines went with it instead."""
        rest = self._row[1:]
        if not rest:
            return ""
        if self._read_again + len(rest) > self._read:
            return f" (its quoted value ran to line {self.number}, unread)"
        self._read_again += len(rest)
        self._again.extend(reversed(rest))
        self.number -= len(rest)
        return ""


def _header(row: list[str]) -> list[str]:
    names = [cell.strip().lower() for cell in row]
    missing = [col for col in CSV_REQUIRED_COLUMNS if col not in names]
    if missing:
        raise InputError(
            f"the CSV header is missing required column(s): {', '.join(missing)} "
            f"(found: {_printable(', '.join(n for n in names if n)[:200]) or 'none'})"
        )
    return names


def _printable(text: str) -> str:
    """``text`` fit for a message that must be encoded: a lone surrogate is shown escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _record(obj: dict[str, Any], pricing: PricingTable) -> UsageRecord | str:
    try:
        return parse_record(obj, pricing)
    except InputError as exc:
        return exc.message


def _collect(outcomes: Iterable[Outcome], counted: LineCounter) -> ImportReport:
    report = ImportReport()
    for number, outcome in outcomes:
        if isinstance(outcome, str):
            report.rejected.append((number, outcome))
        else:
            report.imported.append(outcome)
    report.lines_read = counted.count
    counted.finish()
    return report


def _json_object(text: str) -> Any:
    """The JSON value of one line, or :class:`InputError` saying why there is none.

    Besides malformed JSON, the decoder fails in two ways a line of a few bytes can cause: a
    nesting deeper than its recursion allows (``RecursionError``), and an integer longer than
    Python converts (``ValueError``, over ``sys.get_int_max_str_digits()`` digits). Both are the
    line's fault, so the line is rejected like any other, not the import.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise InputError("invalid JSON: nested too deeply") from None
    except ValueError:
        raise InputError(
            f"invalid JSON: a number longer than {sys.get_int_max_str_digits()} digits"
        ) from None


def _decode(raw: str | bytes, *, first: bool) -> str:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("line is not valid UTF-8") from None
    return raw.removeprefix("\ufeff") if first else raw


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"
