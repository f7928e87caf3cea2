"""The span the data covers, and the factor that scales a total over it to 30 days.

The span is the time from the first to the last call, but at least one day, so a burst of calls
within an hour is not extrapolated as if it went on all month.
"""

from __future__ import annotations

from collections.abc import Sequence

from runwire.agents.analytics.memo import memoized
from runwire.domain.usage import UsageRecord

__all__ = ["DAY_MS", "MONTH_DAYS", "monthly_factor", "monthly_factor_of", "span_days"]

MONTH_DAYS = 30
DAY_MS = 86_400_000


@memoized
def span_days(records: Sequence[UsageRecord]) -> float:
    """Days from the first to the last call, at least 1 (0 for no records)."""
    if not records:
        return 0.0
    stamps = [r.timestamp for r in records]
    return max(1.0, (max(stamps) - min(stamps)) / DAY_MS)


def monthly_factor(records: Sequence[UsageRecord]) -> float:
    """What to multiply a total over ``records`` by to estimate 30 days of it."""
    return monthly_factor_of(span_days(records))


def monthly_factor_of(days: float) -> float:
    """What to multiply a total over ``days`` by to estimate 30 days of it (0 for no span)."""
    return MONTH_DAYS / days if days else 0.0
