"""How figures are written in answers: money, percentages, durations, counts, table cells.

One module so an answer formats a figure the same way wherever it appears, and tests can format
an expected figure exactly as the answer does.
"""

from __future__ import annotations

__all__ = ["format_count", "format_ms", "format_pct", "format_usd", "table_cell"]


def format_usd(value: float) -> str:
    """``$1,234.56``; sub-cent amounts keep 4 decimals (``$0.0042``) so they do not read as $0."""
    sign = "-" if value < 0 else ""
    amount = abs(value)
    if amount == 0:
        return "$0.00"
    if amount < 0.0001:
        return f"{sign}<$0.0001"
    if amount < 0.01:
        return f"{sign}${amount:.4f}"
    return f"{sign}${amount:,.2f}"


def format_pct(value: float) -> str:
    """``12.3%`` (the analytics give percentages already rounded to 1 decimal)."""
    return f"{value:.1f}%"


def format_ms(value: float | None) -> str:
    """``1,234 ms``; ``n/a`` when there is no value."""
    return "n/a" if value is None else f"{value:,.0f} ms"


def format_count(value: int) -> str:
    """``12,345``."""
    return f"{value:,}"


def table_cell(text: str) -> str:
    """A user-supplied name made safe inside a Markdown table row."""
    return " ".join(text.split()).replace("|", "\\|")[:80]
