"""The analyses, on small hand-built data whose answers are known."""

from __future__ import annotations

import pytest

from runwire.agents import analytics
from runwire.domain.usage import UsageRecord
from runwire.usage.pricing import PricingTable

pytestmark = pytest.mark.unit

T0 = 1_740_830_400_000  # 2025-03-01T12:00:00Z
DAY = 86_400_000


def rec(
    day: float = 0,
    model: str = "gpt-4o",
    *,
    provider: str = "openai",
    prompt: int = 100,
    completion: int = 10,
    latency: float = 100.0,
    cost: float = 1.0,
    status: str = "ok",
    prompt_hash: str | None = None,
    feature: str | None = None,
) -> UsageRecord:
    return UsageRecord(
        timestamp=T0 + int(day * DAY),
        provider=provider,
        model=model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        latency_ms=latency,
        cost_usd=cost,
        status=status,
        prompt_hash=prompt_hash,
        feature=feature,
    )


@pytest.fixture(scope="module")
def pricing() -> PricingTable:
    return PricingTable.load()


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]
    assert analytics.percentile(values, 50) == 5
    assert analytics.percentile(values, 90) == 9
    assert analytics.percentile(values, 95) == 10
    assert analytics.percentile(values, 99) == 10
    assert analytics.percentile(values, 1) == 1
    assert analytics.percentile([7.0], 99) == 7
    assert analytics.percentile([], 50) is None


def test_overview_counts_and_scales_to_a_month() -> None:
    records = [
        rec(2, cost=1.5, prompt=100, completion=50, feature="a"),
        rec(0, "claude-3-haiku", provider="anthropic", cost=0.5, feature="b"),
        rec(1, cost=1.0),
    ]
    out = analytics.overview(records)
    assert out["calls"] == 3
    assert out["first_call"] == "2025-03-01T12:00:00.000Z"
    assert out["last_call"] == "2025-03-03T12:00:00.000Z"
    assert out["span_days"] == 2.0
    assert out["total_cost_usd"] == 3.0
    assert out["monthly_cost_usd"] == 45.0  # 3.0 over 2 days, scaled to 30
    assert (out["prompt_tokens"], out["completion_tokens"], out["total_tokens"]) == (300, 70, 370)
    assert (out["providers"], out["models"], out["features"]) == (2, 2, 2)


def test_a_short_burst_is_scaled_as_one_day_not_extrapolated() -> None:
    records = [rec(0, cost=1.0), rec(1 / 24, cost=1.0)]  # one hour apart
    assert analytics.span_days(records) == 1.0
    assert analytics.overview(records)["monthly_cost_usd"] == 60.0
    assert analytics.span_days([]) == 0.0
    assert analytics.monthly_factor([]) == 0.0


def test_overview_of_nothing() -> None:
    out = analytics.overview([])
    assert out["calls"] == 0 and out["first_call"] is None and out["total_cost_usd"] == 0.0


def test_cost_by_model_shares_sorted_by_cost() -> None:
    records = [
        rec(model="cheap", cost=0.25, prompt=10, completion=5),
        rec(model="dear", cost=0.5),
        rec(model="dear", cost=0.25),
    ]
    out = analytics.cost_by_model(records)
    assert out["total_cost_usd"] == 1.0
    assert [(m["model"], m["calls"], m["cost_usd"], m["share_pct"]) for m in out["models"]] == [
        ("dear", 2, 0.75, 75.0),
        ("cheap", 1, 0.25, 25.0),
    ]
    assert out["models"][1]["tokens"] == 15
    assert analytics.cost_by_model([]) == {"total_cost_usd": 0.0, "models": []}


def test_free_calls_have_zero_share() -> None:
    out = analytics.cost_by_model([rec(cost=0.0)])
    assert out["models"][0]["share_pct"] == 0.0


def test_latency_percentiles_overall_and_per_model_slowest_first() -> None:
    fast = [rec(model="fast", latency=float(v)) for v in range(1, 101)]
    slow = [
        rec(model="slow", latency=1000.0 * v, status="error" if v == 1 else "ok") for v in (1, 2)
    ]
    out = analytics.latency_percentiles(fast + slow)
    assert out["method"] == "nearest-rank"
    assert [m["model"] for m in out["models"]] == ["slow", "fast"]
    assert out["models"][1] == {
        "provider": "openai",
        "model": "fast",
        "calls": 100,
        "p50": 50.0,
        "p95": 95.0,
        "p99": 99.0,
    }
    # The failed call's latency counts: the user waited through it.
    assert out["models"][0]["p50"] == 1000.0
    assert out["overall"] == {"calls": 102, "p50": 51.0, "p95": 97.0, "p99": 1000.0}


def test_latency_with_other_percentiles_and_no_data() -> None:
    out = analytics.latency_percentiles([rec(latency=5), rec(model="b", latency=9)], (90,))
    assert out["overall"] == {"calls": 2, "p90": 9.0}
    assert out["models"][0]["model"] == "b"
    empty = analytics.latency_percentiles([])
    assert empty["overall"] == {"calls": 0, "p50": None, "p95": None, "p99": None}
    assert empty["models"] == []
    with pytest.raises(ValueError, match="percentiles"):
        analytics.latency_percentiles([], ())
    with pytest.raises(ValueError, match="percentiles"):
        analytics.latency_percentiles([], (0,))


def test_error_rate_overall_and_worst_model_first() -> None:
    records = [rec(model="flaky", status="error"), rec(model="flaky")]
    records += [rec(model="solid") for _ in range(7)] + [rec(model="solid", status="error")]
    out = analytics.error_rate(records)
    assert out["overall"] == {"calls": 10, "errors": 2, "rate_pct": 20.0}
    assert [(m["model"], m["errors"], m["rate_pct"]) for m in out["models"]] == [
        ("flaky", 1, 50.0),
        ("solid", 1, 12.5),
    ]
    assert analytics.error_rate([]) == {
        "overall": {"calls": 0, "errors": 0, "rate_pct": 0.0},
        "models": [],
    }


def test_cache_candidates_count_all_but_the_first_occurrence() -> None:
    records = [
        rec(10, cost=3.0, prompt_hash="a", feature="summarize"),  # given out of order
        rec(0, cost=1.0, prompt_hash="a", feature="summarize"),  # first: not wasted
        rec(5, cost=2.0, prompt_hash="a", feature="summarize"),
        rec(6, cost=4.0, prompt_hash="a", feature="summarize", status="error"),  # no answer
        rec(1, cost=0.5, prompt_hash="b", feature="chat"),
        rec(2, cost=0.5, prompt_hash="b", feature="chat"),
        rec(3, cost=9.0, prompt_hash="c"),
        rec(4, cost=9.0),
    ]
    out = analytics.cache_candidates(records)
    assert out["calls_with_hash"] == 6
    assert out["repeated_calls"] == 3
    assert out["repeated_prompts"] == 2
    assert out["repeat_share_pct"] == 50.0
    assert out["wasted_cost_usd"] == 5.5  # 2.0 + 3.0 for "a", 0.5 for "b"
    assert out["span_days"] == 10.0
    assert out["monthly_saving_usd"] == 16.5  # 10 days scaled to 30
    assert out["top_features"] == [
        {
            "feature": "summarize",
            "repeated_calls": 2,
            "repeat_share_pct": 66.7,
            "wasted_cost_usd": 5.0,
        },
        {"feature": "chat", "repeated_calls": 1, "repeat_share_pct": 50.0, "wasted_cost_usd": 0.5},
    ]
    assert out["top_prompts"][0] == {"prompt_hash": "a", "calls": 3, "wasted_cost_usd": 5.0}


def test_cache_candidates_without_fingerprints_or_data() -> None:
    out = analytics.cache_candidates([rec(), rec()])
    assert (out["calls_with_hash"], out["repeated_calls"], out["monthly_saving_usd"]) == (0, 0, 0.0)
    assert out["top_features"] == [] and out["repeat_share_pct"] == 0.0
    assert analytics.cache_candidates([])["wasted_cost_usd"] == 0.0


def test_cheaper_models_scale_list_price_savings_to_a_month(pricing: PricingTable) -> None:
    # 2 calls of 1M prompt tokens on gpt-4o over 15 days, paid at list price ($2.50 each).
    records = [
        rec(0, prompt=1_000_000, completion=0, cost=2.5, feature="classify"),
        rec(15, prompt=1_000_000, completion=0, cost=2.5, feature="classify"),
    ]
    out = analytics.cheaper_models(records, pricing)
    assert out["span_days"] == 15.0
    assert out["pricing_as_of"] == pricing.as_of
    [row] = out["models"]
    assert row["candidate"] == "gpt-4o-mini"
    assert (row["tier"], row["candidate_tier"], row["same_tier"]) == ("frontier", "mid", False)
    assert row["monthly_cost_usd"] == 10.0
    assert row["candidate_monthly_cost_usd"] == 0.6  # 2M tokens at $0.15/M, doubled
    assert row["monthly_savings_usd"] == 9.4
    assert row["savings_pct"] == 94.0
    assert row["top_features"] == ["classify"]
    assert row["avg_completion_tokens"] == 0.0
    assert [a["model"] for a in row["alternatives"]] == ["gpt-4.1-mini", "o3-mini"]
    assert out["total_monthly_savings_usd"] == 9.4


def test_cheaper_models_skips_unknown_cheapest_and_already_cheap_models(
    pricing: PricingTable,
) -> None:
    records = [
        rec(0, "in-house", cost=5.0),  # not in the table
        rec(0, "gpt-4.1-nano", cost=5.0),  # nothing cheaper in its tier or below
        rec(1, "gpt-4o", prompt=1_000_000, completion=0, cost=0.01),  # negotiated: no saving
    ]
    out = analytics.cheaper_models(records, pricing)
    assert out["models"] == [] and out["total_monthly_savings_usd"] == 0.0
    assert analytics.cheaper_models([], pricing)["models"] == []


def test_cheaper_models_biggest_saving_first(pricing: PricingTable) -> None:
    records = [
        rec(0, "claude-3-5-sonnet", provider="anthropic", prompt=1000, completion=100, cost=0.0045),
        rec(0, "gpt-4o", prompt=1_000_000, completion=0, cost=2.5),
        rec(1, "gpt-4o", prompt=0, completion=0, cost=0.0),
    ]
    out = analytics.cheaper_models(records, pricing)
    assert [m["model"] for m in out["models"]] == ["gpt-4o", "claude-3-5-sonnet"]
    assert out["models"][1]["candidate"] == "claude-3-5-haiku"
    assert out["total_monthly_savings_usd"] == pytest.approx(
        sum(m["monthly_savings_usd"] for m in out["models"]), abs=1e-3
    )


def test_results_are_kept_per_usage_set_and_never_shared_mutably() -> None:
    from runwire.domain.usage import UsageSet
    from runwire.usage.sample import generate_sample

    records = UsageSet(generate_sample(days=3))
    first = analytics.overview(records)
    assert any(key[0] == "overview" for key in records.memo)
    first["calls"] = -1  # a caller scribbling on its copy...
    assert analytics.overview(records)["calls"] == len(records)  # ...changes nothing for the next
    assert analytics.overview(UsageSet(records[:10]))["calls"] == 10  # new data, new results
    assert analytics.overview(list(records[:5]))["calls"] == 5  # plain sequences are not memoized
    by_list = analytics.latency_percentiles(records, percentiles=[50, 99])
    assert by_list == analytics.latency_percentiles(records, percentiles=[50, 99])
    assert by_list != analytics.latency_percentiles(records, percentiles=[50, 95])


def test_breakdown_groups_by_any_dimension() -> None:
    records = [
        rec(0, "a", provider="p", latency=100, cost=1.0, feature="f"),
        rec(1, "a", provider="p", latency=300, cost=1.0, status="error", feature="g"),
        rec(2, "b", provider="q", latency=200, cost=3.0),
    ]
    by_model = analytics.breakdown(records)
    assert [r["name"] for r in by_model["rows"]] == ["b", "a"]
    a = by_model["rows"][1]
    assert (a["provider"], a["calls"], a["errors"], a["error_rate_pct"]) == ("p", 2, 1, 50.0)
    assert (a["cost_per_call_usd"], a["share_pct"], a["p50"], a["p99"]) == (1.0, 40.0, 100, 300)
    assert a["top_features"] == ["f", "g"] and by_model["rows"][0]["top_features"] == []
    assert a["monthly_cost_usd"] == 30.0  # 2.0 over 2 days, scaled to 30
    by_feature = analytics.breakdown(records, "feature", [90])
    assert {r["name"]: r["p90"] for r in by_feature["rows"]} == {"(none)": 200, "f": 100, "g": 300}
    assert by_feature["overall"] == {"p90": 300, "errors": 1, "error_rate_pct": 33.3}
    with pytest.raises(ValueError, match="group_by"):
        analytics.breakdown(records, "user")
    with pytest.raises(ValueError, match="percentiles"):
        analytics.breakdown(records, "model", [])


def test_trend_compares_the_last_days_with_the_days_before() -> None:
    records = [rec(d, cost=1.0, latency=100) for d in range(7)]  # days 0-6
    records += [rec(d, cost=3.0, latency=200, status="error") for d in range(7, 14)]  # days 7-13
    trend = analytics.trend(records, 7)
    assert trend["current"]["calls"] == 7 and trend["previous"]["calls"] == 7
    assert trend["previous"]["from"] == trend["previous"]["from"][:10] + "T12:00:00.000Z"
    assert trend["previous_complete"] is False  # the earlier window starts a day before day 0
    assert analytics.trend(records, 6)["previous_complete"] is True
    assert trend["change"] == {
        "calls_pct": 0.0,
        "cost_pct": 200.0,
        "p95_pct": 100.0,
        "error_rate_points": 100.0,
    }
    assert trend["models"] == [
        {"model": "gpt-4o", "cost_usd": 21.0, "previous_cost_usd": 7.0, "change_usd": 14.0}
    ]
    assert analytics.trend(records[7:], 7)["change"] is None  # nothing before the last 7 days
    assert analytics.trend([], 7)["current"] is None
    with pytest.raises(ValueError, match="window_days"):
        analytics.trend(records, 0)


def test_inventory_names_what_the_data_holds() -> None:
    records = [rec(0, "a", provider="p", prompt_hash="h", feature="f"), rec(1, "b", status="error")]
    held = analytics.inventory(records)
    assert held["models"] == [  # by calls, then provider and name
        {"name": "b", "provider": "openai", "calls": 1},
        {"name": "a", "provider": "p", "calls": 1},
    ]
    assert held["features"] == [{"name": "f", "calls": 1}]
    assert (held["calls_with_prompt_hash"], held["calls_with_feature"], held["failed_calls"]) == (
        1,
        1,
        1,
    )
