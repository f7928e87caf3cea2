"""The generated sample set: deterministic, and realistic in the ways the agents look at."""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict

import pytest

from runwire.domain.usage import UsageRecord
from runwire.usage.pricing import PricingTable
from runwire.usage.sample import generate_sample
from tests.unit.conftest import SAMPLE_NOW

pytestmark = pytest.mark.unit

NOW = SAMPLE_NOW  # 2025-04-30T08:00:00Z
DAY = 86_400_000


@pytest.fixture(scope="module")
def sample(sample_records: tuple[UsageRecord, ...]) -> list[UsageRecord]:
    return list(sample_records)  # generate_sample(now_ms=NOW), made once for the unit layer


def _error_rate(records: list[UsageRecord]) -> float:
    return sum(r.status == "error" for r in records) / len(records)


def test_same_seed_same_records_other_seed_other_records(sample: list[UsageRecord]) -> None:
    assert generate_sample(now_ms=NOW) == sample
    week = generate_sample(days=7, now_ms=NOW)
    assert generate_sample(seed=8, days=7, now_ms=NOW) != week


def test_a_month_of_calls_oldest_first_none_in_the_future(sample: list[UsageRecord]) -> None:
    assert 3000 <= len(sample) <= 6000
    stamps = [r.timestamp for r in sample]
    assert stamps == sorted(stamps)
    assert stamps[0] >= NOW - 30 * DAY and stamps[-1] < NOW
    assert (stamps[-1] - stamps[0]) / DAY > 28


def test_the_span_follows_the_days_asked_for() -> None:
    week = generate_sample(days=7, now_ms=NOW)
    assert week[0].timestamp >= NOW - 7 * DAY
    assert 500 < len(week) < 1500
    with pytest.raises(ValueError, match="days"):
        generate_sample(days=0)


def test_without_now_the_set_ends_today() -> None:
    # Two days: just after midnight UTC, today alone holds no call yet.
    records = generate_sample(days=2)
    now = int(time.time() * 1000)
    assert records and all(now - 2 * DAY < r.timestamp <= now for r in records)


def test_features_providers_and_models_are_mixed(sample: list[UsageRecord]) -> None:
    features = Counter(r.feature for r in sample)
    assert {"support-chat", "summarize", "classify-tickets", "code-review"} <= set(features)
    assert {r.provider for r in sample} == {"openai", "anthropic", "google", "mistral"}
    assert len({r.model for r in sample}) >= 6


def test_costs_are_the_price_table_prices(sample: list[UsageRecord]) -> None:
    table = PricingTable.load()
    for r in sample[:500]:
        expected = table.cost(r.provider, r.model, r.prompt_tokens, r.completion_tokens)
        assert r.cost_usd == pytest.approx(expected, abs=1e-8)


def test_a_frontier_model_does_a_simple_task(sample: list[UsageRecord]) -> None:
    classify = [r for r in sample if r.feature == "classify-tickets" and r.status == "ok"]
    on_gpt4o = [r for r in classify if r.model == "gpt-4o"]
    assert len(on_gpt4o) / len(classify) > 0.7
    assert statistics.mean(r.completion_tokens for r in on_gpt4o) < 30


def test_a_few_percent_errors_with_one_model_much_worse(sample: list[UsageRecord]) -> None:
    overall = _error_rate(sample)
    assert 0.02 <= overall <= 0.05
    by_model: defaultdict[str, list[UsageRecord]] = defaultdict(list)
    for r in sample:
        by_model[r.model].append(r)
    rates = sorted((_error_rate(group), model) for model, group in by_model.items())
    worst_rate, worst_model = rates[-1]
    assert worst_rate > 3 * overall
    assert worst_rate > 2 * rates[-2][0]
    failed = [r for r in sample if r.status == "error"]
    assert all(r.completion_tokens == 0 for r in failed)
    assert worst_model == "mistral-large"


def test_latency_has_a_long_tail_per_model(sample: list[UsageRecord]) -> None:
    for model in {r.model for r in sample}:
        values = sorted(r.latency_ms for r in sample if r.model == model and r.status == "ok")
        p50, p99 = values[len(values) // 2], values[int(len(values) * 0.99)]
        assert p99 > 2 * p50, model
    medians = {
        m: statistics.median(r.latency_ms for r in sample if r.model == m)
        for m in ("gpt-4o-mini", "claude-3-5-sonnet")
    }
    assert medians["gpt-4o-mini"] < medians["claude-3-5-sonnet"]


def test_one_feature_repeats_its_prompts(sample: list[UsageRecord]) -> None:
    def repeat_share(feature: str) -> float:
        hashes = [r.prompt_hash for r in sample if r.feature == feature]
        return 1 - len(set(hashes)) / len(hashes)

    assert all(r.prompt_hash for r in sample)
    assert repeat_share("summarize") > 0.2
    assert repeat_share("classify-tickets") == 0
    # The same prompt has the same size each time it comes back.
    sizes: defaultdict[str | None, set[int]] = defaultdict(set)
    for r in sample:
        if r.feature == "summarize":
            sizes[r.prompt_hash].add(r.prompt_tokens)
    assert all(len(s) == 1 for s in sizes.values())


def test_a_table_without_the_sample_models_is_refused() -> None:
    table = PricingTable.from_mapping(
        {"as_of": "2025-01-01", "source": "s", "tiers": ["only"], "models": []}
    )
    with pytest.raises(ValueError, match="pricing table must know"):
        generate_sample(days=1, now_ms=NOW, pricing=table)
