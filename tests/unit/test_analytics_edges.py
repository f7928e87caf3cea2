"""The analyses at their edges: one call, ties, free calls, nothing; and the cold-data path
(a store-kept summary's digest) giving the very same figures there."""

from __future__ import annotations

import pytest

from runwire.agents import analytics
from runwire.domain.usage import UsageRecord
from runwire.store.summary import UsageSummary
from tests.unit.test_analytics import rec
from tests.unit.test_usage_summary import PRICING, from_records

pytestmark = pytest.mark.unit

ONE = [rec(0, latency=250.0, cost=0.5, prompt_hash="h")]
# Three models of equal cost; two of them fail equally often, one of those on more calls.
TIES = [
    rec(0, "zeta", cost=1.0, status="error", feature="b"),
    rec(0, "zeta", cost=1.0, feature="b"),
    rec(1, "alpha", cost=1.0, status="error", feature="a"),
    rec(1, "alpha", cost=1.0, status="error", feature="a"),
    rec(1, "alpha", cost=0.0, feature="a"),
    rec(2, "alpha", cost=0.0, feature="a"),
    rec(2, "omega", provider="anthropic", cost=2.0),
]
FREE = [rec(day, "gpt-4o", cost=0.0, prompt_hash="same") for day in (0, 1, 2)]


def test_one_call_is_a_day_of_data_with_its_own_figures() -> None:
    view = analytics.overview(ONE)
    assert (view["first_call"], view["last_call"]) == (
        "2025-03-01T12:00:00.000Z",
        "2025-03-01T12:00:00.000Z",
    )
    assert (view["span_days"], view["total_cost_usd"], view["monthly_cost_usd"]) == (1.0, 0.5, 15.0)
    latency = analytics.latency_percentiles(ONE)
    assert latency["overall"] == {"calls": 1, "p50": 250.0, "p95": 250.0, "p99": 250.0}
    assert analytics.error_rate(ONE)["overall"] == {"calls": 1, "errors": 0, "rate_pct": 0.0}
    [row] = analytics.breakdown(ONE)["rows"]
    assert (row["share_pct"], row["cost_per_call_usd"], row["monthly_cost_usd"]) == (
        100.0,
        0.5,
        15.0,
    )
    cache = analytics.cache_candidates(ONE)
    assert (cache["calls_with_hash"], cache["repeated_calls"], cache["repeat_share_pct"]) == (
        1,
        0,
        0.0,
    )


def test_one_call_has_no_earlier_window_to_compare_with() -> None:
    trend = analytics.trend(ONE, 7)
    assert trend["change"] is None
    assert trend["previous_complete"] is False
    assert trend["previous"]["calls"] == 0
    assert trend["models"] == [
        {"model": "gpt-4o", "cost_usd": 0.5, "previous_cost_usd": 0.0, "change_usd": 0.5}
    ]


def test_equal_costs_are_ordered_by_provider_then_name() -> None:
    costs = analytics.cost_by_model(TIES)
    assert [(m["provider"], m["model"], m["share_pct"]) for m in costs["models"]] == [
        ("anthropic", "omega", 33.3),
        ("openai", "alpha", 33.3),
        ("openai", "zeta", 33.3),
    ]
    assert [r["name"] for r in analytics.breakdown(TIES)["rows"]] == ["alpha", "omega", "zeta"]


def test_equal_error_rates_put_the_model_with_more_failures_first() -> None:
    errors = analytics.error_rate(TIES)
    assert [(m["model"], m["errors"], m["rate_pct"]) for m in errors["models"]] == [
        ("alpha", 2, 50.0),
        ("zeta", 1, 50.0),
        ("omega", 0, 0.0),
    ]
    assert errors["overall"] == {"calls": 7, "errors": 3, "rate_pct": 42.9}


def test_equal_counts_list_names_alphabetically() -> None:
    held = analytics.inventory([rec(0, "b"), rec(0, "a"), rec(0, "c"), rec(1, "c")])
    assert [m["name"] for m in held["models"]] == ["c", "a", "b"]
    cache = analytics.cache_candidates(
        [
            rec(0, prompt_hash="y", feature="late", cost=1.0),
            rec(1, prompt_hash="y", feature="late", cost=1.0),
            rec(0, prompt_hash="x", feature="early", cost=1.0),
            rec(1, prompt_hash="x", feature="early", cost=1.0),
        ]
    )
    assert [f["feature"] for f in cache["top_features"]] == ["early", "late"]
    assert [p["prompt_hash"] for p in cache["top_prompts"]] == ["x", "y"]


def test_an_equal_move_in_cost_lists_models_by_name() -> None:
    records = [rec(0, "b", cost=1.0), rec(0, "a", cost=1.0), rec(10, "c", cost=0.0)]
    assert [m["model"] for m in analytics.trend(records, 7)["models"]] == ["a", "b", "c"]


def test_free_calls_cost_nothing_and_save_nothing() -> None:
    assert analytics.overview(FREE)["monthly_cost_usd"] == 0.0
    assert [m["share_pct"] for m in analytics.cost_by_model(FREE)["models"]] == [0.0]
    # A model that cost nothing has no cheaper model to switch to.
    assert analytics.cheaper_models(FREE, PRICING)["models"] == []
    cache = analytics.cache_candidates(FREE)
    assert (cache["repeated_calls"], cache["wasted_cost_usd"], cache["monthly_saving_usd"]) == (
        2,
        0.0,
        0.0,
    )
    [row] = analytics.breakdown(FREE, "feature")["rows"]
    assert (row["name"], row["cost_per_call_usd"], row["share_pct"]) == ("(none)", 0.0, 0.0)


def test_a_trend_from_nothing_has_no_percentage_and_nothing_to_nothing_is_unchanged() -> None:
    from_nothing = [rec(0, cost=0.0), rec(10, cost=2.0)]
    change = analytics.trend(from_nothing, 7)["change"]
    assert change["cost_pct"] is None
    assert change["calls_pct"] == 0.0
    free = [rec(0, cost=0.0), rec(10, cost=0.0)]
    assert analytics.trend(free, 7)["change"]["cost_pct"] == 0.0
    halved = [rec(0), rec(1), rec(10)]
    assert analytics.trend(halved, 7)["change"]["calls_pct"] == -50.0


def test_nothing_breaks_down_to_an_empty_table() -> None:
    assert analytics.breakdown([], "provider") == {
        "group_by": "provider",
        "calls": 0,
        "total_cost_usd": 0.0,
        "overall": {"p50": None, "p95": None, "p99": None, "errors": 0, "error_rate_pct": 0.0},
        "rows": [],
    }
    held = analytics.inventory([])
    assert (held["calls"], held["first_call"], held["models"], held["failed_calls"]) == (
        0,
        None,
        [],
        0,
    )


def test_windows_end_at_the_last_call_and_hold_their_end_not_their_start() -> None:
    records = [rec(0, cost=1.0), rec(1, cost=2.0), rec(1.5, cost=3.0), rec(2, cost=1.0)]
    trend = analytics.trend(records, 1)
    # The last call is day 2: the last day is (1, 2], the day before (0, 1]; day 0 is in neither.
    assert (trend["current"]["calls"], trend["current"]["cost_usd"]) == (2, 4.0)
    assert (trend["previous"]["calls"], trend["previous"]["cost_usd"]) == (1, 2.0)
    assert trend["previous_complete"] is True
    assert trend["change"]["cost_pct"] == 100.0


@pytest.mark.parametrize("records", [ONE, TIES, FREE], ids=["one call", "ties", "free calls"])
def test_the_cold_path_gives_the_figures_a_scan_gives(records: list[UsageRecord]) -> None:
    assert analytics.summarized(UsageSummary.of(records).digest(), PRICING) == from_records(records)
