"""The evidence for an answer's figures: the numbers a run's tools computed, and whether a figure
shows one of them or a sum, difference or ratio of two it states.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from typing import Any

from runwire.agents.figures import DATE, Figure, scan

__all__ = ["Numbers", "candidates", "derived"]


class Numbers:
    """The numbers a run's tools produced, sorted, to find one near a value fast."""

    def __init__(self, results: Iterable[Any]) -> None:
        values: set[float] = set()
        dates: set[float] = set()
        texts: set[str] = set()
        for result in results:
            _collect(result, values, dates, texts)
        self.sorted = sorted(values)
        self.dates = dates

    def near(self, value: float, tolerance: float) -> float | None:
        """A number within ``tolerance`` of ``value`` (the closest found), or None."""
        slack = tolerance * (1 + 1e-9) + 1e-12
        i = bisect.bisect_left(self.sorted, value - slack)
        if i < len(self.sorted) and self.sorted[i] <= value + slack:
            return self.sorted[i]
        return None


def _collect(value: Any, values: set[float], dates: set[float], texts: set[str]) -> None:
    # Iterative, with exact-type fast paths: a run's results hold thousands of values, and this
    # runs once per answer (docs/decisions.md, "Cost"). ``texts``: the strings read already; a
    # text adds the same figures however often it appears (a model's name is in every table),
    # so each is read once (two thirds of them were repeats in a golden-path run).
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is float or kind is int:
            if math.isfinite(item):
                values.add(abs(float(item)))
        elif kind is str:
            if item not in texts:
                texts.add(item)
                _collect_text(item, values, dates)
        elif kind is dict:
            stack.extend(item.values())
        elif kind is list or kind is tuple:  # before the Mapping test (an ABC's: slow), no Mapping
            stack.extend(item)
            # A column's total ("save up to $40.60 a month" is the sum of the actions' savings).
            rows = [
                row
                for row in item
                if type(row) is dict or (type(row) is not str and isinstance(row, Mapping))
            ]
            if rows:
                totals: dict[str, float] = {}
                for row in rows:
                    for key, cell in row.items():
                        # An int or a float as such first: most cells are, and the full test
                        # (bools out, subclasses in) is the slow part of a big table's walk.
                        # A name (a str, the next most common cell) skips the full test.
                        cell_kind = type(cell)
                        if (
                            math.isfinite(cell)
                            if cell_kind is float or cell_kind is int
                            else cell_kind is not str and _is_number(cell)
                        ):
                            totals[key] = totals.get(key, 0.0) + float(cell)
                values.update(abs(total) for total in totals.values())
        elif isinstance(item, Mapping):
            stack.extend(item.values())


def _collect_text(text: str, values: set[float], dates: set[float]) -> None:
    if " " not in text and any(map(str.isalpha, text)):
        # A name, an id, a fingerprint or a timestamp: no figure but a leading date.
        match = DATE.match(text)
        if match is None:
            return
        text = match.group(0)
    elif not any(map(str.isdigit, text)):
        return
    for _, value, unit, _ in scan(text):
        if unit == "date":
            dates.add(value)
            # "April 1, 2025": the parts of a date are figures the text may show.
            year, rest = divmod(int(value), 10_000)
            values.update((float(year), float(rest // 100), float(rest % 100)))
        else:
            values.add(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _within(ordered: list[float], low: float, high: float) -> bool:
    i = bisect.bisect_left(ordered, low)
    return i < len(ordered) and ordered[i] <= high


def candidates(figure: Figure) -> list[tuple[float, float]]:
    """The values (and tolerances) a tool's number may have for ``figure`` to show it."""
    out = [(figure.value, figure.tolerance)]
    if figure.unit == "%":
        out.append((figure.value / 100, figure.tolerance / 100))  # a rate kept as a fraction
    return out


def derived(figure: Figure, anchors: list[float]) -> bool:
    """Whether ``figure`` is a sum, difference or ratio of two anchors (figures the text
    states that the tools computed, sorted), within the figure's shown precision."""
    x, slack = figure.value, figure.tolerance * (1 + 1e-9) + 1e-12
    for a in anchors:
        if (
            _within(anchors, x - a - slack, x - a + slack)  # a + b
            or _within(anchors, a - x - slack, a - x + slack)  # a - b
            or _within(anchors, a + x - slack, a + x + slack)  # b - a
        ):
            return True
    targets = candidates(figure)
    if figure.unit == "%":
        # A percent change: new/old = 1 ± x/100.
        targets += [(1 + x / 100, figure.tolerance / 100), (1 - x / 100, figure.tolerance / 100)]
    for target, tolerance in targets:
        tol = tolerance * (1 + 1e-9)
        for b in anchors:
            if b and _within(anchors, b * (target - tol), b * (target + tol)):  # a / b
                return True
    return False
