"""The figures a text shows, read as the agents format them: ``$1,234.56``, ``12.3%``,
``1,521 ms``, ``4,071``, ``2.5k``, a date; each with its value and the precision it is shown at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DATE", "Figure", "figures", "is_prose", "scan"]

# Whole numbers this small are prose ("the 3 models", "top 5"), not measurements.
_PROSE_MAX = 12

#: A date as the agents write it (ISO 8601, 2025-04-01), not inside a longer number.
# A digit first and the lookbehind after it (no word character or "." before that digit): a
# pattern that starts with a digit lets the engine skip to the next digit instead of trying every
# position, which halves the scan of a long answer.
DATE = re.compile(r"(\d(?<![\w.]\d)\d{3})-(\d{2})-(\d{2})(?!\d)")
# A figure: not inside a name ("gpt-4o", "claude-3-5-sonnet", "p95", "llama3.1:8b").
# The lookahead first: it fails at once where no figure can start (a figure's first character is
# "<", "$" or a digit), before the two lookbehinds are tried; it halves the scan of a long answer.
_NUMBER = re.compile(
    r"(?=[<$\d])(?<![\w.$])(?<![A-Za-z0-9]-)(?P<less><\s?)?(?P<usd>\$)?"
    r"(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>\.\d+)?"
    r"(?:\s?(?P<unit>%|ms\b|s\b|k\b|K\b|M\b))?(?![\w.]\w|[\w%])"
)
_LIST_MARKER = re.compile(r"^(\s*)\d+[.)]\s", re.MULTILINE)
# What "k", "M" and "s" multiply a figure by (seconds are shown as milliseconds).
_SCALE = {"k": 1e3, "K": 1e3, "M": 1e6, "s": 1e3}


@dataclass(frozen=True, slots=True)
class Figure:
    """A figure as a text shows it: its ``value`` (scaled by ``k``/``M``/``s``), the ``unit``
    (``$``, ``%``, ``ms``, ``date`` or empty) and the half-width of its shown precision."""

    text: str
    value: float
    unit: str
    tolerance: float


def is_prose(text: str, value: float, unit: str, tolerance: float) -> bool:
    """Whether a figure (a :func:`scan` tuple's parts) is a small whole number without a unit:
    prose ("the 3 models", "top 5"), not a measurement."""
    return not unit and tolerance == 0.5 and value <= _PROSE_MAX and "," not in text


# Half a unit of the last digit shown, by the length of the fraction with its ".": computed once
# for the lengths answers use (the same expression, so the same floats).
_TOLERANCES: tuple[float, ...] = tuple(0.5 * 10 ** -(n - 1) for n in range(2, 18))


def _tolerance(frac_length: int) -> float:
    if frac_length - 2 < len(_TOLERANCES):
        return _TOLERANCES[frac_length - 2]
    tolerance: float = 0.5 * 10 ** -(frac_length - 1)
    return tolerance


def figures(text: str) -> list[Figure]:
    """The figures of ``text`` in order: dates first, then numbers, each as it is shown."""
    return [Figure(*shown) for shown in scan(text)]


def scan(text: str) -> list[tuple[str, float, str, float]]:
    """:func:`figures` as ``(text, value, unit, tolerance)`` tuples, without building a
    :class:`Figure` each: the evidence reads every text of a run's results this way."""
    # One pass of each pattern over the text: the dates are read after the list markers go
    # (no date starts, ends or changes in a marker: it is digits, "." or ")" and a space at a
    # line's start), and the numbers' text is that with the dates cut out of it.
    # (A list marker holds a "." or a ")": a text with neither has none to take out.)
    rest = _LIST_MARKER.sub(r"\1", text) if "." in text or ")" in text else text
    found: list[tuple[str, float, str, float]] = []
    if "-" in rest:  # every date has one; most texts hold none
        pieces: list[str] = []
        at = 0
        for match in DATE.finditer(rest):
            year, month, day = match.groups()
            found.append(
                (match.group(0), int(year) * 10_000 + int(month) * 100 + int(day), "date", 0.0)
            )
            pieces += (rest[at : match.start()], " ")
            at = match.end()
        if pieces:
            pieces.append(rest[at:])
            rest = "".join(pieces)
    append = found.append
    for match in _NUMBER.finditer(rest):
        less, usd, whole, frac, unit = match.groups()  # the pattern's groups, in order
        if "," in whole:
            whole = whole.replace(",", "")
        if frac:
            value = float(whole + frac)
            tolerance = _tolerance(len(frac))
        else:
            value = float(whole)
            tolerance = 0.5
        if unit is None and less is None:
            # Most figures: a plain number or an amount, no unit and no bound. The match holds
            # no space then (only after "<" or before a unit), and nothing scales it.
            append((match.group(0), value, "$" if usd else "", tolerance))
            continue
        unit = unit or ""
        scale = _SCALE.get(unit, 1.0)
        if less:
            # "<$0.0001": anything from 0 up to the bound.
            value, tolerance = value / 2, value / 2
        if usd:
            unit = "$" if unit in ("", "k", "K", "M") else unit
        elif unit in ("k", "K", "M"):
            unit = ""
        elif unit == "s":
            unit = "ms"
        append((match.group(0).strip(), value * scale, unit, tolerance * scale))
    return found
