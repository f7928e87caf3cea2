"""Reading a usage file (JSONL or CSV) into records, line by line, keeping every rejection.

A bad line never stops an import: it is reported with its line number and why, and the good lines
are kept. Both readers take any iterable of lines, so a file, an upload body or a list in a test
feed them alike, and neither holds more than the records it returns.

Its parts, one concept a module: ``file_format`` (which reader), ``lines`` (splitting, capping
and counting lines), ``jsonl_reader`` and ``csv_reader`` (a line's outcome) and ``report``
(what they are collected into). Their public names are importable from here too.
"""

from __future__ import annotations

from collections.abc import Iterable

from runwire.usage.csv_reader import CSV_REQUIRED_COLUMNS, read_csv
from runwire.usage.file_format import ImportFormat, detect_format, file_format
from runwire.usage.jsonl_reader import read_jsonl
from runwire.usage.lines import (
    MAX_LINE_BYTES,
    PROGRESS_EVERY,
    LineCounter,
    ProgressCallback,
    lines_of,
    too_long,
)
from runwire.usage.pricing import PricingTable
from runwire.usage.report import ImportReport, Outcome

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
