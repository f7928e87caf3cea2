"""Exact sums of floats: the costs a usage summary keeps, whatever order records come in.

A sum is kept as Shewchuk's non-overlapping partials, the representation ``math.fsum`` works
with: adding a float or another sum loses nothing, and ``math.fsum(partials)`` is the correctly
rounded float of the exact sum. Pure: no I/O.
"""

from __future__ import annotations

import math

__all__ = ["ExactSum", "add_exact", "add_sum", "merge_exact"]

ExactSum = list[float]
"""An exact sum of floats as non-overlapping partials (smallest magnitude first)."""


def add_exact(partials: ExactSum, x: float) -> None:
    """Add ``x`` to the exact sum ``partials`` in place (Shewchuk; ``math.fsum``'s algorithm)."""
    i = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            partials[i] = lo
            i += 1
        x = hi
    partials[i:] = [x]


def add_sum(partials: ExactSum, values: list[float]) -> None:
    """Add the exact sum of ``values`` to ``partials``: as the few floats ``math.fsum`` (in C,
    correctly rounded) peels off it, each the rounded rest of what the ones before left, until
    nothing is left; exactly what adding them one by one gives, in a fraction of the time."""
    if len(values) > 3:
        left, parts = list(values), []
        try:
            for _ in range(64):  # each part takes 53 bits or more of the rest: 40 at most
                part = math.fsum(left)
                if not part or not math.isfinite(part):
                    break
                parts.append(part)
                left.append(-part)
        except (OverflowError, ValueError):  # an intermediate overflow, an infinity less one
            part = math.nan
        if not part:
            for part in parts:
                add_exact(partials, part)
            return
    for x in values:  # a few values, or ones only the plain way adds
        add_exact(partials, x)


def merge_exact(partials: ExactSum, other: ExactSum) -> None:
    """Add the exact sum ``other`` to ``partials`` in place (``other`` is left as it is)."""
    for x in other:
        add_exact(partials, x)
