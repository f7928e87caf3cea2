"""Caching: the calls that repeat a prompt already answered, what a response cache would serve."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from runwire.agents.analytics.memo import memoized
from runwire.agents.analytics.rounding import percent, usd
from runwire.agents.analytics.span import (
    monthly_factor_of,
    span_days,
)
from runwire.domain.usage import UsageRecord

__all__ = ["cache_candidates", "cache_result"]


@memoized
def cache_candidates(records: Sequence[UsageRecord], top_n: int = 5) -> dict[str, Any]:
    """Calls that repeat a prompt already answered: what a response cache would have served.

    Only successful calls with a ``prompt_hash`` count (a cache stores answers; a failure has
    none). For each fingerprint, every occurrence after the first is a repeat, and its cost is
    wasted. The monthly saving assumes the cache keeps answers for the whole span.
    """
    hashed = sorted(
        ((r.prompt_hash, r) for r in records if r.prompt_hash and r.status == "ok"),
        key=lambda pair: pair[1].timestamp,
    )
    seen: set[str] = set()
    repeat_calls: Counter[str] = Counter()
    repeat_costs: defaultdict[str, list[float]] = defaultdict(list)
    feature_repeats: Counter[str] = Counter()
    feature_calls: Counter[str] = Counter(r.feature or "(none)" for _, r in hashed)
    feature_costs: defaultdict[str, list[float]] = defaultdict(list)
    for prompt_hash, r in hashed:
        if prompt_hash not in seen:
            seen.add(prompt_hash)
            continue
        feature = r.feature or "(none)"
        repeat_calls[prompt_hash] += 1
        repeat_costs[prompt_hash].append(r.cost_usd)
        feature_repeats[feature] += 1
        feature_costs[feature].append(r.cost_usd)
    # Exact sums (correctly rounded, whatever the order): a store-kept summary gives the same.
    wasted_by_hash = {h: math.fsum(costs) for h, costs in repeat_costs.items()}
    feature_wasted = {f: math.fsum(costs) for f, costs in feature_costs.items()}
    wasted = math.fsum(c for costs in repeat_costs.values() for c in costs)
    repeats = sum(repeat_calls.values())
    return cache_result(
        len(hashed),
        repeat_calls,
        wasted_by_hash,
        feature_repeats,
        feature_calls,
        feature_wasted,
        wasted,
        repeats,
        span_days(records),
        top_n,
    )


def cache_result(
    calls_with_hash: int,
    repeat_calls: dict[str, int],
    wasted_by_hash: dict[str, float],
    feature_repeats: dict[str, int],
    feature_calls: dict[str, int],
    feature_wasted: dict[str, float],
    wasted: float,
    repeats: int,
    span: float,
    top_n: int,
    *,
    repeated_prompts: int | None = None,
) -> dict[str, Any]:
    """The :func:`cache_candidates` result from its counts, whether a scan of the records or a
    store-kept summary (:mod:`.digest`) counted them."""
    features = sorted(feature_repeats, key=lambda f: (-feature_wasted[f], f))[:top_n]
    prompts = sorted(repeat_calls, key=lambda h: (-wasted_by_hash[h], h))[:top_n]
    return {
        "calls_with_hash": calls_with_hash,
        "repeated_calls": repeats,
        "repeated_prompts": len(repeat_calls) if repeated_prompts is None else repeated_prompts,
        "repeat_share_pct": percent(repeats, calls_with_hash),
        "wasted_cost_usd": usd(wasted),
        "monthly_saving_usd": usd(wasted * monthly_factor_of(span)),
        "span_days": round(span, 1),
        "top_features": [
            {
                "feature": f,
                "repeated_calls": feature_repeats[f],
                "repeat_share_pct": percent(feature_repeats[f], feature_calls[f]),
                "wasted_cost_usd": usd(feature_wasted[f]),
            }
            for f in features
        ],
        "top_prompts": [
            {
                "prompt_hash": h,
                "calls": repeat_calls[h] + 1,
                "wasted_cost_usd": usd(wasted_by_hash[h]),
            }
            for h in prompts
        ],
    }
