"""A usage summary answers what the records answer: the same figures, to the last digit, however
the records were split into summaries and merged (tests/integration/test_store_contract.py
checks the store keeps them)."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from runwire.agents import analytics
from runwire.store.records import UsageRecord
from runwire.store.summary import UsageSummary
from runwire.usage.pricing import PricingTable
from runwire.usage.sample import generate_sample

PRICING = PricingTable.load()
DAY = 86_400_000


def from_records(records: list[UsageRecord]) -> dict[str, Any]:
    return {
        "span_days": analytics.span_days(records),
        "overview": analytics.overview(records),
        "inventory": analytics.inventory(records),
        "cost_by_model": analytics.cost_by_model(records),
        "latency_percentiles": analytics.latency_percentiles(records),
        "error_rate": analytics.error_rate(records),
        "cache_candidates": analytics.cache_candidates(records),
        "cheaper_models": analytics.cheaper_models(records, PRICING),
    }


def test_the_sample_summarized_answers_as_its_records_do() -> None:
    records = generate_sample()
    expected = from_records(list(records))
    assert analytics.summarized(UsageSummary.of(records).digest(), PRICING) == expected
    # In two batches whose calls interleave (every model, feature and repeated prompt in both),
    # merged in either order.
    stored = list(enumerate(records))
    odd, even = UsageSummary(), UsageSummary()
    odd.fold(stored[1::2])
    even.fold(stored[::2])
    for first, second in ((odd, even), (even, odd)):
        merged = UsageSummary.loads(first.dumps())
        merged.merge(second)
        assert analytics.summarized(merged.digest(), PRICING) == expected


def test_no_records_summarize_to_the_empty_answers() -> None:
    assert analytics.summarized(UsageSummary().digest(), PRICING) == from_records([])


# Few distinct values, so that ties (equal times, equal costs, one prompt in many features) and
# costs whose sum depends on the order are met often.
_records = st.builds(
    UsageRecord,
    timestamp=st.integers(1_700_000_000_000, 1_700_000_000_000 + 20 * DAY).map(
        lambda t: t - t % 3_600_000
    ),
    provider=st.sampled_from(["openai", "anthropic"]),
    model=st.sampled_from(["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "unknown-model"]),
    prompt_tokens=st.integers(0, 5_000),
    completion_tokens=st.integers(0, 2_000),
    latency_ms=st.floats(0, 5_000, allow_nan=False).map(lambda x: round(x, 3)),
    cost_usd=st.sampled_from([0.1, 0.2, 0.3, 1e-7, 3.3333, 1e6, 0.0]),
    status=st.sampled_from(["ok", "ok", "error"]),
    prompt_hash=st.sampled_from([None, "h1", "h2", "h3"]),
    feature=st.sampled_from([None, "chat", "search", "summarize"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_records, max_size=40), st.lists(st.integers(0, 40), max_size=4))
@example(  # one prompt, asked from two features, in two batches
    [
        UsageRecord(1_700_000_000_000, "openai", "gpt-4o", 10, 5, 100.0, 0.1, "ok", "h", "chat"),
        UsageRecord(1_700_000_000_000, "openai", "gpt-4o", 10, 5, 90.0, 0.2, "ok", "h", None),
    ],
    [1],
)
def test_summaries_of_parts_merged_answer_as_the_whole_does(
    records: list[UsageRecord], cuts: list[int]
) -> None:
    # Stored in the order given (the position is the pk), split into batches, merged in either
    # order; the store reads them back by time, then pk.
    stored = list(enumerate(records))
    bounds = [0, *sorted(min(c, len(stored)) for c in cuts), len(stored)]
    parts = []
    for start, end in pairwise(bounds):
        part = UsageSummary()
        part.fold(stored[start:end])
        parts.append(part.dumps())  # as the store keeps it
    expected = from_records([r for _, r in sorted(stored, key=lambda i: (i[1].timestamp, i[0]))])
    for order in (parts, parts[::-1]):
        whole = UsageSummary()
        for part_text in order:
            whole.merge(UsageSummary.loads(part_text))
        assert analytics.summarized(whole.digest(), PRICING) == expected
