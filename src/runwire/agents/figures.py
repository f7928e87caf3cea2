"""The figures a text shows, read as the agents format them: ``$1,234.56``, ``12.3%``,
``1,521 ms``, ``4,071``, ``2.5k``, a date; each with its value and the precision it is shown at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DATE", "Figure", "figures"]

# Whole numbers this small are prose ("the 3 models", "top 5"), not measurements.
_PROSE_MAX = 12

#: A date as the agents write it (ISO 8601, 2025-04-01), not inside a longer number.
DATE = re.compile(r"(?<![\w.])(\d{4})-(\d{2})-(\d{2})(?!\d)")
# A figure: not inside a name ("gpt-4o", "claude-3-5-sonnet", "p95", "llama3.1:8b").
_NUMBER = re.compile(
    r"(?<![\w.$])(?<![A-Za-z0-9]-)(?P<less><\s?)?(?P<usd>\$)?"
    r"(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>\.\d+)?"
    r"(?:\s?(?P<unit>%|ms\b|s\b|k\b|K\b|M\b))?(?![\w.]\w|[\w%])"
)
_LIST_MARKER = re.compile(r"^(\s*)\d+[.)]\s", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Figure:
    """A figure as a text shows it: its ``value`` (scaled by ``k``/``M``/``s``), the ``unit``
    (``$``, ``%``, ``ms``, ``date`` or empty) and the half-width of its shown precision."""

    text: str
    value: float
    unit: str
    tolerance: float

    @property
    def prose(self) -> bool:
        """A small whole number without a unit: prose, not a measurement."""
        return (
            not self.unit
            and self.tolerance == 0.5
            and self.value <= _PROSE_MAX
            and "," not in self.text
        )


def figures(text: str) -> list[Figure]:
    """The figures of ``text`` in order: dates first, then numbers, each as it is shown."""
    found: list[Figure] = []
    for match in DATE.finditer(text):
        year, month, day = (int(g) for g in match.groups())
        found.append(Figure(match.group(0), year * 10_000 + month * 100 + day, "date", 0.0))
    rest = DATE.sub(" ", _LIST_MARKER.sub(r"\1", text))
    for match in _NUMBER.finditer(rest):
        digits = match.group("int").replace(",", "")
        frac = match.group("frac") or ""
        value = float(digits + frac)
        tolerance = 0.5 * 10 ** -(len(frac) - 1) if frac else 0.5
        unit = match.group("unit") or ""
        scale = {"k": 1e3, "K": 1e3, "M": 1e6, "s": 1e3}.get(unit, 1.0)
        if match.group("less"):
            # "<$0.0001": anything from 0 up to the bound.
            value, tolerance = value / 2, value / 2
        if match.group("usd"):
            unit = "$" if unit in ("", "k", "K", "M") else unit
        elif unit in ("k", "K", "M"):
            unit = ""
        elif unit == "s":
            unit = "ms"
        found.append(Figure(match.group(0).strip(), value * scale, unit, tolerance * scale))
    return found
