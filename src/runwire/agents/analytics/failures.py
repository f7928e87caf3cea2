"""Failures: the share of calls that failed, overall and per model, and one model's failures."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from runwire.agents.analytics.groups import by_model
from runwire.agents.analytics.memo import memoized
from runwire.agents.analytics.rounding import percent
from runwire.domain.usage import UsageRecord

__all__ = ["error_rate", "failures_of"]


@memoized
def failures_of(
    records: Sequence[UsageRecord], provider: str, model: str, slow_ms: float
) -> dict[str, Any]:
    """One model's failed calls: how many, how many took ``slow_ms`` or more, what they cost."""
    failed = [
        r for r in records if r.status == "error" and r.provider == provider and r.model == model
    ]
    return {
        "count": len(failed),
        "slow": sum(1 for r in failed if r.latency_ms >= slow_ms),
        # An exact sum (correctly rounded, whatever the order): a store-kept summary gives it.
        "cost_usd": math.fsum(r.cost_usd for r in failed),
    }


@memoized
def error_rate(records: Sequence[UsageRecord]) -> dict[str, Any]:
    """Share of calls with status ``error``, overall and per model (worst first)."""

    def summary(group: Sequence[UsageRecord]) -> dict[str, Any]:
        errors = sum(1 for r in group if r.status == "error")
        return {"calls": len(group), "errors": errors, "rate_pct": percent(errors, len(group))}

    models = [
        {"provider": provider, "model": model, **summary(group)}
        for (provider, model), group in by_model(records).items()
    ]
    models.sort(key=lambda row: (-row["rate_pct"], -row["errors"], row["provider"], row["model"]))
    return {"overall": summary(records), "models": models}
