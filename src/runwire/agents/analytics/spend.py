"""Spend: cost per model, and what a cheaper model would have cost for the same tokens."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from runwire.agents.analytics.groups import by_model
from runwire.agents.analytics.memo import memoized
from runwire.agents.analytics.rounding import percent, usd
from runwire.agents.analytics.span import (
    monthly_factor,
    span_days,
)
from runwire.domain.usage import UsageRecord
from runwire.usage.pricing import PricingTable

__all__ = ["cheaper_models", "cost_by_model"]


@memoized
def cost_by_model(records: Sequence[UsageRecord]) -> dict[str, Any]:
    """Calls, tokens, cost and share of cost per provider/model, most expensive first."""
    total = math.fsum(r.cost_usd for r in records)
    rows: list[dict[str, Any]] = []
    for (provider, model), group in by_model(records).items():
        cost = math.fsum(r.cost_usd for r in group)
        rows.append(
            {
                "provider": provider,
                "model": model,
                "calls": len(group),
                "prompt_tokens": sum(r.prompt_tokens for r in group),
                "completion_tokens": sum(r.completion_tokens for r in group),
                "tokens": sum(r.total_tokens for r in group),
                "cost_usd": usd(cost),
                "share_pct": percent(cost, total),
                "_cost": cost,
            }
        )
    rows.sort(key=lambda row: (-row["_cost"], row["provider"], row["model"]))
    for row in rows:
        del row["_cost"]
    return {"total_cost_usd": usd(total), "models": rows}


@memoized
def cheaper_models(records: Sequence[UsageRecord], pricing: PricingTable) -> dict[str, Any]:
    """For each model with a cheaper candidate in ``pricing``: the estimated monthly saving.

    The current cost is what the records say was paid; the candidate's is its list price for the
    very same prompt and completion tokens. Of the candidates (same provider, same tier or one
    down), the one with the largest saving is proposed and the next two cheaper ones are listed as
    ``alternatives``. Models the table does not know, or with no candidate that would have cost
    less, are left out. Biggest saving first.
    """
    factor = monthly_factor(records)
    rows: list[dict[str, Any]] = []
    for (provider, model), group in by_model(records).items():
        price = pricing.lookup(provider, model)
        candidates = pricing.cheaper_candidates(provider, model)
        if price is None or not candidates:
            continue
        prompt = sum(r.prompt_tokens for r in group)
        completion = sum(r.completion_tokens for r in group)
        current = math.fsum(r.cost_usd for r in group)
        # Stable sort: equal costs keep the table's order (newer models first).
        priced = sorted(((c.cost(prompt, completion), c) for c in candidates), key=lambda p: p[0])
        candidate_cost, best = priced[0]
        saving = current - candidate_cost
        if saving <= 0:
            continue
        features = Counter(r.feature for r in group if r.feature)
        rows.append(
            {
                "provider": provider,
                "model": model,
                "tier": price.tier,
                "calls": len(group),
                "avg_completion_tokens": round(completion / len(group), 1),
                "top_features": [f for f, _ in features.most_common(3)],
                "candidate": best.model,
                "candidate_tier": best.tier,
                "same_tier": best.tier == price.tier,
                "monthly_cost_usd": usd(current * factor),
                "candidate_monthly_cost_usd": usd(candidate_cost * factor),
                "monthly_savings_usd": usd(saving * factor),
                "savings_pct": percent(saving, current),
                "alternatives": [
                    {"model": c.model, "tier": c.tier, "monthly_cost_usd": usd(cost * factor)}
                    for cost, c in priced[1:3]
                    if cost < current
                ],
                "_saving": saving,
            }
        )
    rows.sort(key=lambda row: (-row["_saving"], row["provider"], row["model"]))
    total = sum(row.pop("_saving") for row in rows)
    return {
        "span_days": round(span_days(records), 1),
        "pricing_as_of": pricing.as_of,
        "total_monthly_savings_usd": usd(total * factor),
        "models": rows,
    }
