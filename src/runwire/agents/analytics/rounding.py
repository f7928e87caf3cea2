"""How the analyses round their figures for reading: USD to 4 decimals, percentages to 1."""

from __future__ import annotations

__all__ = ["percent", "usd"]


def usd(value: float) -> float:
    """A dollar amount rounded to 4 decimals (a hundredth of a cent)."""
    return round(value, 4)


def percent(part: float, whole: float) -> float:
    """``part`` as a percentage of ``whole``, to 1 decimal (0 of nothing)."""
    return round(100 * part / whole, 1) if whole else 0.0
