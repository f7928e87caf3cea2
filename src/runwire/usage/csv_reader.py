"""Reading CSV with a header row: each row's :data:`Outcome` as it is read, numbered by the
physical line it starts on, a stray quote costing one line. Pure: no I/O (it reads any iterable
of lines).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from runwire.domain.usage import UsageRecord
from runwire.errors import InputError
from runwire.usage.lines import TOO_LONG, too_long
from runwire.usage.pricing import PricingTable
from runwire.usage.report import Outcome, record_or_reason

__all__ = ["CSV_REQUIRED_COLUMNS", "read_csv"]

CSV_REQUIRED_COLUMNS = (
    "timestamp",
    "provider",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
)


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
                yield start, TOO_LONG
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
            outcome = record_or_reason(dict(zip(header, row, strict=False)), pricing)
        if isinstance(outcome, str):
            outcome += source.again()
        yield start, outcome


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
