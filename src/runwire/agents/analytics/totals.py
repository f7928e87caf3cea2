"""The totals of the data: its calls, span, cost and tokens, and what it holds by calls."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from runwire.agents.analytics.groups import by_count
from runwire.agents.analytics.memo import memoized
from runwire.agents.analytics.rounding import usd
from runwire.agents.analytics.span import (
    monthly_factor,
    span_days,
)
from runwire.domain.usage import UsageRecord
from runwire.events.model import stamp_ms as iso_from_ms

__all__ = ["inventory", "overview"]


@memoized
def overview(records: Sequence[UsageRecord]) -> dict[str, Any]:
    """Calls, date range (RFC 3339), cost, tokens, and how many providers, models and features."""
    if not records:
        return {
            "calls": 0,
            "first_call": None,
            "last_call": None,
            "span_days": 0.0,
            "total_cost_usd": 0.0,
            "monthly_cost_usd": 0.0,
            "total_tokens": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "providers": 0,
            "models": 0,
            "features": 0,
        }
    total_cost = math.fsum(r.cost_usd for r in records)
    prompt = sum(r.prompt_tokens for r in records)
    completion = sum(r.completion_tokens for r in records)
    return {
        "calls": len(records),
        "first_call": iso_from_ms(min(r.timestamp for r in records)),
        "last_call": iso_from_ms(max(r.timestamp for r in records)),
        "span_days": round(span_days(records), 1),
        "total_cost_usd": usd(total_cost),
        "monthly_cost_usd": usd(total_cost * monthly_factor(records)),
        "total_tokens": prompt + completion,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "providers": len({r.provider for r in records}),
        "models": len({(r.provider, r.model) for r in records}),
        "features": len({r.feature for r in records if r.feature}),
    }


@memoized
def inventory(records: Sequence[UsageRecord]) -> dict[str, Any]:
    """What the data holds: its span, the providers, models and features by calls, and how
    many calls carry the optional fields (``prompt_hash``, ``feature``) or failed."""
    models = Counter((r.provider, r.model) for r in records)
    providers = Counter(r.provider for r in records)
    features = Counter(r.feature for r in records if r.feature)
    summary = overview(records)
    return {
        "calls": summary["calls"],
        "first_call": summary["first_call"],
        "last_call": summary["last_call"],
        "span_days": summary["span_days"],
        "providers": [{"name": p, "calls": n} for p, n in by_count(providers)],
        "models": [
            {"name": model, "provider": provider, "calls": n}
            for (provider, model), n in by_count(models)
        ],
        "features": [{"name": f, "calls": n} for f, n in by_count(features)],
        "calls_with_prompt_hash": sum(1 for r in records if r.prompt_hash),
        "calls_with_feature": sum(features.values()),
        "failed_calls": sum(1 for r in records if r.status == "error"),
    }
