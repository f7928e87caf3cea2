"""A breakdown of the calls by model, provider or feature: cost, latency and errors per row."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from runwire.agents.analytics.groups import GROUPS, NO_FEATURE, group_key
from runwire.agents.analytics.latency import percentile
from runwire.agents.analytics.memo import memoized
from runwire.agents.analytics.rounding import percent, usd
from runwire.agents.analytics.span import (
    monthly_factor,
)
from runwire.domain.usage import UsageRecord

__all__ = ["breakdown"]


@memoized
def breakdown(
    records: Sequence[UsageRecord],
    group_by: str = "model",
    percentiles: Sequence[int] = (50, 95, 99),
) -> dict[str, Any]:
    """Per model, provider or feature: calls, tokens, cost (total, monthly, per call, share),
    nearest-rank latency percentiles, errors, and the top names of the other dimension.

    One pass groups the records; rows are ordered by cost, most expensive first. ``overall``
    holds the same latency and error figures over all calls, to compare a row against.
    """
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPS)}")
    if not percentiles or not all(0 < pct <= 100 for pct in percentiles):
        raise ValueError("percentiles must be a non-empty list of numbers in (0, 100]")
    factor = monthly_factor(records)
    total = sum(r.cost_usd for r in records)
    groups: defaultdict[str, list[UsageRecord]] = defaultdict(list)
    for r in records:
        groups[group_key(r, group_by)].append(r)

    def latency(group: Sequence[UsageRecord]) -> dict[str, Any]:
        values = sorted(r.latency_ms for r in group)
        out: dict[str, Any] = {}
        for pct in percentiles:
            value = percentile(values, pct)
            out[f"p{pct:g}"] = None if value is None else round(value, 1)
        return out

    def errors(group: Sequence[UsageRecord]) -> dict[str, Any]:
        failed = sum(1 for r in group if r.status == "error")
        return {"errors": failed, "error_rate_pct": percent(failed, len(group))}

    other = "feature" if group_by == "model" else "model"
    rows: list[dict[str, Any]] = []
    for name, group in groups.items():
        cost = sum(r.cost_usd for r in group)
        mix = Counter(group_key(r, other) for r in group)
        mix.pop(NO_FEATURE, None)
        row: dict[str, Any] = {"name": name}
        if group_by == "model":
            row["provider"] = group[0].provider
        row.update(
            calls=len(group),
            tokens=sum(r.total_tokens for r in group),
            cost_usd=usd(cost),
            monthly_cost_usd=usd(cost * factor),
            cost_per_call_usd=usd(cost / len(group)),
            share_pct=percent(cost, total),
            **latency(group),
            **errors(group),
        )
        row[f"top_{other}s"] = [n for n, _ in sorted(mix.items(), key=lambda i: (-i[1], i[0]))[:3]]
        row["_cost"] = cost
        rows.append(row)
    rows.sort(key=lambda row: (-row["_cost"], row["name"]))
    for row in rows:
        del row["_cost"]
    return {
        "group_by": group_by,
        "calls": len(records),
        "total_cost_usd": usd(total),
        "overall": {**latency(records), **errors(records)},
        "rows": rows,
    }
