"""A usage summary answers what the records answer: the same figures, to the last digit, however
the records were split into summaries and merged (tests/integration/test_store_contract.py
checks the store keeps them)."""

from __future__ import annotations

import asyncio
from itertools import pairwise
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from runwire.agents import analytics
from runwire.agents.triage import analysable
from runwire.domain.usage import RecordsNotRead, UsageRecord, UsageSet, UsageView
from runwire.store.summary import SLOW_FAILURE_MS, UsageSummary
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
        "failures_of": {
            model: analytics.failures_of(records, *model, SLOW_FAILURE_MS)
            for model in dict.fromkeys((r.provider, r.model) for r in records)
        },
    }


def loads(text: str) -> UsageSummary:
    summary = UsageSummary.loads(text)
    assert summary is not None
    return summary


def test_the_sample_summarized_answers_as_its_records_do(
    sample_records: tuple[UsageRecord, ...],
) -> None:
    records = list(sample_records)  # generate_sample(now_ms=SAMPLE_NOW), made once for the layer
    expected = from_records(list(records))
    assert analytics.summarized(UsageSummary.of(records).digest(), PRICING) == expected
    # In two batches whose calls interleave (every model, feature and repeated prompt in both),
    # merged in either order.
    stored = list(enumerate(records))
    odd, even = UsageSummary(), UsageSummary()
    odd.fold(stored[1::2])
    even.fold(stored[::2])
    for first, second in ((odd, even), (even, odd)):
        merged = loads(first.dumps())
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
    # Up to past SLOW_FAILURE_MS, and at it (the failures a digest counts as slow).
    latency_ms=st.one_of(
        st.floats(0, 12_000, allow_nan=False).map(lambda x: round(x, 3)),
        st.just(SLOW_FAILURE_MS),
    ),
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
            whole.merge(loads(part_text))
        assert analytics.summarized(whole.digest(), PRICING) == expected


NOW = 1_700_000_000_000 + 30 * DAY

# Values no import takes (docs/decisions.md, "Cold data"): only a summary's bounds say they are
# not there, and then the records are read and checked one by one.
_odd = st.sampled_from(
    [
        {"timestamp": 5_000},  # year 1970, before 2000
        {"timestamp": NOW + 2 * DAY},  # more than a day ahead
        {"prompt_tokens": -1},
        {"completion_tokens": 2**31},
        {"latency_ms": float("nan")},
        {"latency_ms": float("inf")},
        {"latency_ms": 8 * DAY},
        {"cost_usd": 1e300},
        {"cost_usd": -0.5},
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_records, max_size=20),
    st.lists(st.tuples(_records, _odd), max_size=2),
    st.lists(st.integers(0, 22), max_size=3),
)
def test_a_digest_says_whether_every_record_is_analysable(
    records: list[UsageRecord],
    odd: list[tuple[UsageRecord, dict[str, Any]]],
    cuts: list[int],
) -> None:
    # Triage reads no record when the digest's bounds show them all analysable: that must be
    # exactly when every record is (else the records are read and checked).
    records = records + [r._replace(**change) for r, change in odd]
    stored = list(enumerate(records))
    bounds = [0, *sorted(min(c, len(stored)) for c in cuts), len(stored)]
    whole = UsageSummary()
    for start, end in pairwise(bounds):
        part = UsageSummary()
        part.fold(stored[start:end])
        whole.merge(loads(part.dumps()))
    summarized = UsageSet(records)
    summarized.memo["usage_digest"] = whole.digest()
    kept = analysable(summarized, NOW)
    assert list(kept) == list(analysable(records, NOW))
    assert (kept is summarized) == (not odd)


def test_a_summary_of_an_older_format_is_not_read() -> None:
    # What it lacks (the bounds, the failures) cannot be made up: the store reads the records.
    older = UsageSummary.of(generate_sample(days=2, now_ms=NOW)[:50]).body
    del older["format"]
    assert UsageSummary.loads(orjson.dumps(older)) is None


async def test_a_view_reads_its_records_once_and_after_a_failure_again() -> None:
    # A fixed end: a set ending now holds nothing in the first minutes after midnight UTC.
    records = tuple(generate_sample(days=2, now_ms=NOW)[:20])
    outcomes: list[BaseException | None] = [RuntimeError("database gone"), None]
    reads = 0

    async def read() -> tuple[UsageRecord, ...]:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0)
        failure = outcomes.pop(0)
        if failure is not None:
            raise failure
        return records

    view = UsageView(len(records), read)
    assert len(view) == 20 and view and not view.is_read
    with pytest.raises(RecordsNotRead):
        list(view)
    failed = await asyncio.gather(view.read(), view.read(), return_exceptions=True)
    assert [str(f) for f in failed] == ["database gone"] * 2 and reads == 1
    assert await asyncio.gather(view.read(), view.read()) == [view, view] and reads == 2
    assert tuple(view) == records and view[3] == records[3]
