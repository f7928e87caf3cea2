"""Trends: the last days of the data against as many days before them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from runwire.agents.analytics.latency import percentile
from runwire.agents.analytics.memo import memoized
from runwire.agents.analytics.rounding import percent, usd
from runwire.agents.analytics.span import (
    DAY_MS,
)
from runwire.domain.usage import UsageRecord
from runwire.events.model import stamp_ms as iso_from_ms

__all__ = ["trend"]


@memoized
def trend(records: Sequence[UsageRecord], window_days: int = 7) -> dict[str, Any]:
    """The last ``window_days`` of the data against the ``window_days`` before them.

    The windows end at the last call (not at today), so the comparison is the same whenever it
    is asked. ``previous_complete`` is false when the data starts inside the earlier window: its
    figures then cover only part of it. ``change`` is None where the earlier window has nothing
    to compare with.
    """
    if window_days < 1:
        raise ValueError("window_days must be at least 1")
    if not records:
        return {"window_days": window_days, "current": None, "previous": None, "change": None}
    end = max(r.timestamp for r in records)
    first = min(r.timestamp for r in records)
    cut = end - window_days * DAY_MS
    start = cut - window_days * DAY_MS
    current = [r for r in records if r.timestamp > cut]
    previous = [r for r in records if start < r.timestamp <= cut]

    def summary(group: Sequence[UsageRecord], since: int, until: int) -> dict[str, Any]:
        values = sorted(r.latency_ms for r in group)
        failed = sum(1 for r in group if r.status == "error")
        p95 = percentile(values, 95)
        return {
            "from": iso_from_ms(max(since, first)),
            "to": iso_from_ms(until),
            "calls": len(group),
            "cost_usd": usd(sum(r.cost_usd for r in group)),
            "p95_ms": None if p95 is None else round(p95, 1),
            "error_rate_pct": percent(failed, len(group)),
        }

    now, before = summary(current, cut, end), summary(previous, start, cut)

    def change_pct(key: str) -> float | None:
        # Both windows hold calls here, so no figure is None.
        old, new = before[key], now[key]
        if old == new:
            return 0.0
        return percent(new - old, old) if old else None  # from nothing: no percentage

    change = None
    if previous:
        change = {
            "calls_pct": change_pct("calls"),
            "cost_pct": change_pct("cost_usd"),
            "p95_pct": change_pct("p95_ms"),
            "error_rate_points": round(now["error_rate_pct"] - before["error_rate_pct"], 1),
        }
    by_model: defaultdict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for r in current:
        by_model[r.model][0] += r.cost_usd
    for r in previous:
        by_model[r.model][1] += r.cost_usd
    movers = sorted(by_model.items(), key=lambda i: (-abs(i[1][0] - i[1][1]), i[0]))[:5]
    return {
        "window_days": window_days,
        "previous_complete": first <= start,
        "current": now,
        "previous": before,
        "change": change,
        "models": [
            {
                "model": model,
                "cost_usd": usd(new),
                "previous_cost_usd": usd(old),
                "change_usd": usd(new - old),
            }
            for model, (new, old) in movers
        ],
    }
