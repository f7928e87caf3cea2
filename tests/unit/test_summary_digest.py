"""The computed figures of a summary's digest (store/digest.py), on bodies written by hand:
nearest-rank percentiles of a latency histogram, and what a response cache would have served."""

from __future__ import annotations

from typing import Any

import pytest

from runwire.store.digest import TOP_PROMPTS, percentiles, response_cache

pytestmark = pytest.mark.unit


def test_percentiles_are_nearest_rank_over_the_counted_values() -> None:
    histogram = {10.0: 1, 2.0: 98, 1.0: 1}  # keys in no order: they are sorted first
    out = percentiles(histogram, (1, 50, 98, 99, 100))
    assert out == {"calls": 100, "p1": 1.0, "p50": 2.0, "p98": 2.0, "p99": 2.0, "p100": 10.0}


def test_one_value_is_every_percentile_and_none_are_none() -> None:
    assert percentiles({7.5: 1}, (50, 95)) == {"calls": 1, "p50": 7.5, "p95": 7.5}
    assert percentiles({}, (50, 99)) == {"calls": 0, "p50": None, "p99": None}


def test_a_rank_on_a_boundary_takes_the_value_it_reaches() -> None:
    # Ranks 1-2 are 1.0, 3-4 are 2.0: p50 of four calls is rank 2, p51 rank 3.
    assert percentiles({1.0: 2, 2.0: 2}, (50, 51)) == {"calls": 4, "p50": 1.0, "p51": 2.0}


def prompt(calls: int, first: list[Any], **features: tuple[int, list[float]]) -> dict[str, Any]:
    return {"calls": calls, "first": first, "features": {k: list(v) for k, v in features.items()}}


def test_repeats_after_the_first_call_are_what_a_cache_serves() -> None:
    prompts = {
        # Three calls: the first (feature a, $1) is the cache's miss; the other two are repeats.
        "h1": prompt(3, [100, 1, 1.0, "a"], a=(2, [1.0, 2.0]), b=(1, [4.0])),
        "h2": prompt(1, [200, 2, 9.0, "a"], a=(1, [9.0])),  # never repeated: nothing wasted
    }
    assert response_cache(prompts) == {
        "calls_with_hash": 4,
        "repeated_calls": 2,
        "repeated_prompts": 1,
        "wasted": 6.0,
        "features": {"a": [1, 3, 2.0], "b": [1, 1, 4.0]},
        "prompts": [["h1", 2, 6.0]],
    }


def test_the_most_wasteful_prompts_come_first_ties_by_hash_and_only_the_top_ones() -> None:
    prompts = {
        f"h{i:02}": prompt(2, [i, i, 1.0, "f"], f=(2, [1.0, 1.0 + (i % 3)]))
        for i in range(TOP_PROMPTS + 5)
    }
    named = response_cache(prompts)["prompts"]
    assert len(named) == TOP_PROMPTS
    wasted = [cost for _, _, cost in named]
    assert wasted == sorted(wasted, reverse=True)
    assert named[:3] == [["h02", 1, 3.0], ["h05", 1, 3.0], ["h08", 1, 3.0]]
    assert response_cache({})["prompts"] == []
