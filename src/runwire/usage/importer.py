"""Reading a usage file (JSONL or CSV) into records, line by line, keeping every rejection.

A bad line never stops an import: it is reported with its line number and why, and the good lines
are kept. Both readers take any iterable of lines, so a file, an upload body or a list in a test
feed them alike, and neither holds more than the records it returns.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Literal

from runwire.errors import InputError, UnsupportedMediaType
from runwire.store.records import UsageRecord
from runwire.usage.pricing import PricingTable
from runwire.usage.records import parse_record

__all__ = [
    "CSV_REQUIRED_COLUMNS",
    "PROGRESS_EVERY",
    "ImportFormat",
    "ImportReport",
    "detect_format",
    "file_format",
    "parse_csv",
    "parse_jsonl",
]

ImportFormat = Literal["jsonl", "csv"]
ProgressCallback = Callable[[int], None]

#: ``on_progress`` is called after every this many lines, and once at the end.
PROGRESS_EVERY = 1000
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


def parse_jsonl(
    lines: Iterable[str | bytes],
    pricing: PricingTable,
    on_progress: ProgressCallback | None = None,
) -> ImportReport:
    """Read JSON Lines: one JSON object per line, lines numbered from 1.

    Blank lines are skipped (their numbers still count). A line that is not UTF-8, not JSON, not an
    object, or not a valid record is rejected with its number and the reason.
    """
    report = ImportReport()
    for number, raw in enumerate(lines, start=1):
        report.lines_read = number
        _tick(on_progress, number)
        try:
            text = _decode(raw, first=number == 1)
        except InputError as exc:
            report.rejected.append((number, exc.message))
            continue
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            report.rejected.append((number, f"invalid JSON: {exc.msg} (column {exc.colno})"))
            continue
        if not isinstance(obj, dict):
            report.rejected.append((number, f"expected a JSON object, got {_json_kind(obj)}"))
            continue
        _add(report, number, obj, pricing)
    _finish(on_progress, report.lines_read)
    return report


def parse_csv(
    text_lines: Iterable[str],
    pricing: PricingTable,
    on_progress: ProgressCallback | None = None,
) -> ImportReport:
    """Read CSV with a header row naming the fields (PROTOCOL.md names; order free).

    Numbering: lines are physical lines of the file counted from 1, so the header is line 1 and
    the first data row is line 2, which is what an editor shows next to the bad row. A quoted value
    spanning several lines is numbered by the line it starts on. Blank lines are skipped.

    A header missing a required column makes every row unreadable, so it raises one
    :class:`InputError` naming the missing columns instead of rejecting each row for the same
    reason. Feed lines with their line endings (a file opened with ``newline=""``) so that quoted
    values spanning lines survive.
    """
    report = ImportReport()
    counted = _CountingLines(text_lines, on_progress)
    reader = csv.reader(counted)
    header: list[str] | None = None
    consumed = 0  # physical lines consumed before the current row
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # A field over csv.field_size_limit(); the reader resumes on the next line.
            report.rejected.append((consumed + 1, f"malformed CSV: {exc}"))
            consumed = reader.line_num
            continue
        start, consumed = consumed + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = _header(row)
            continue
        if len(row) > len(header) and any(cell.strip() for cell in row[len(header) :]):
            report.rejected.append(
                (start, f"row has {len(row)} values but the header has {len(header)} columns")
            )
            continue
        _add(report, start, dict(zip(header, row, strict=False)), pricing)
    report.lines_read = counted.count
    _finish(on_progress, counted.count)
    return report


class _CountingLines:
    """Iterates lines for csv.reader, decoding a leading BOM and reporting progress."""

    def __init__(self, lines: Iterable[str], on_progress: ProgressCallback | None) -> None:
        self._lines = iter(lines)
        self._on_progress = on_progress
        self.count = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.count += 1
        _tick(self._on_progress, self.count)
        if self.count == 1:
            line = line.removeprefix("\ufeff")  # Excel writes a BOM before the header
        return line


def _header(row: list[str]) -> list[str]:
    names = [cell.strip().lower() for cell in row]
    missing = [col for col in CSV_REQUIRED_COLUMNS if col not in names]
    if missing:
        raise InputError(
            f"the CSV header is missing required column(s): {', '.join(missing)} "
            f"(found: {', '.join(n for n in names if n)[:200] or 'none'})"
        )
    return names


def _add(report: ImportReport, number: int, obj: dict[str, Any], pricing: PricingTable) -> None:
    try:
        report.imported.append(parse_record(obj, pricing))
    except InputError as exc:
        report.rejected.append((number, exc.message))


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


def _tick(on_progress: ProgressCallback | None, lines_done: int) -> None:
    if on_progress is not None and lines_done % PROGRESS_EVERY == 0:
        on_progress(lines_done)


def _finish(on_progress: ProgressCallback | None, lines_done: int) -> None:
    # The final call lets a progress bar reach 100% whatever the line count (unless _tick has
    # just reported this very count).
    if on_progress is not None and (lines_done == 0 or lines_done % PROGRESS_EVERY):
        on_progress(lines_done)
