"""Latency: nearest-rank percentiles, overall and per model."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from runwire.agents.analytics.groups import by_model
from runwire.agents.analytics.memo import memoized
from runwire.domain.usage import UsageRecord

__all__ = ["latency_percentiles", "percentile"]


def percentile(sorted_values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when there are none).

    Nearest rank returns a value that was actually observed: p95 of 20 calls is the 19th slowest,
    not an interpolation between two calls that nobody experienced.
    """
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@memoized
def latency_percentiles(
    records: Sequence[UsageRecord], percentiles: Sequence[int] = (50, 95, 99)
) -> dict[str, Any]:
    """Nearest-rank latency percentiles (ms), overall and per model.

    Models are ordered slowest first by p95 (or by the highest percentile asked for when 95 is
    not). Failed calls are included: a timeout is latency the user waited through.
    """
    if not percentiles or not all(0 < pct <= 100 for pct in percentiles):
        raise ValueError("percentiles must be a non-empty list of numbers in (0, 100]")

    def summary(group: Iterable[UsageRecord]) -> dict[str, Any]:
        values = sorted(r.latency_ms for r in group)
        out: dict[str, Any] = {"calls": len(values)}
        for pct in percentiles:
            value = percentile(values, pct)
            out[f"p{pct}"] = None if value is None else round(value, 1)
        return out

    models = [
        {"provider": provider, "model": model, **summary(group)}
        for (provider, model), group in by_model(records).items()
    ]
    key = "p95" if 95 in percentiles else f"p{max(percentiles)}"
    models.sort(key=lambda row: (-(row[key] or 0), row["provider"], row["model"]))
    return {"method": "nearest-rank", "overall": summary(records), "models": models}
