"""The figures of a usage summary's digest that take computing: the nearest-rank percentiles
of a latency histogram, and what a response cache would have served (the repeated prompts and
their wasted cost). Pure: they read a summary's body, never the store.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from itertools import accumulate
from typing import Any

from runwire.store.exact_sum import ExactSum, add_exact, merge_exact

__all__ = ["TOP_PROMPTS", "percentiles", "response_cache"]

TOP_PROMPTS = 20
"""How many of the most wasteful repeated prompts a digest names (the most any tool asks)."""


def percentiles(histogram: dict[float, int], ranks: tuple[int, ...]) -> dict[str, Any]:
    """Nearest-rank percentiles of the values a histogram counts (None when it counts none)."""
    values = sorted(histogram)
    below = list(accumulate(histogram[value] for value in values))  # calls up to each value
    calls = below[-1] if below else 0
    out: dict[str, Any] = {"calls": calls}
    for pct in ranks:
        rank = min(max(1, math.ceil(pct / 100 * calls)), calls)
        out[f"p{pct}"] = values[bisect_left(below, rank)] if calls else None
    return out


def response_cache(prompts: dict[str, Any]) -> dict[str, Any]:
    """What a response cache would have served: every successful call with a prompt hash after
    its first occurrence (by time, then ``pk``) is a repeat, and its cost wasted."""
    feature_calls: dict[str, int] = {}
    feature_repeats: dict[str, int] = {}
    feature_costs: dict[str, ExactSum] = {}
    wasted: ExactSum = []
    repeated: list[tuple[float, str, int]] = []
    for prompt_hash, prompt in prompts.items():
        _, _, first_cost, first_feature = prompt["first"]
        if prompt["calls"] == 1:  # most prompts: nothing repeated, nothing wasted
            feature_calls[first_feature] = feature_calls.get(first_feature, 0) + 1
            continue
        own: ExactSum = [-first_cost]
        for feature, (count, costs) in prompt["features"].items():
            feature_calls[feature] = feature_calls.get(feature, 0) + count
            repeats = count - (feature == first_feature)
            if repeats:
                feature_repeats[feature] = feature_repeats.get(feature, 0) + repeats
            merge_exact(feature_costs.setdefault(feature, []), costs)
            merge_exact(own, costs)
        add_exact(feature_costs.setdefault(first_feature, []), -first_cost)
        merge_exact(wasted, own)
        repeated.append((math.fsum(own), prompt_hash, prompt["calls"] - 1))
    repeated.sort(key=lambda item: (-item[0], item[1]))
    return {
        "calls_with_hash": sum(feature_calls.values()),
        "repeated_calls": sum(item[2] for item in repeated),
        "repeated_prompts": len(repeated),
        "wasted": math.fsum(wasted),
        "features": {
            feature: [repeats, feature_calls[feature], math.fsum(feature_costs[feature])]
            for feature, repeats in feature_repeats.items()
        },
        "prompts": [[h, n, cost] for cost, h, n in repeated[:TOP_PROMPTS]],
    }
