"""The pure parts of a usage import: the key each record is stored under, an import's folding of
what it adds (and whether the user's summary can be merged into), and the store's cache of views.
What the store does with them against a database: tests/integration/test_usage_import.py and
tests/integration/test_store_contract.py."""

from __future__ import annotations

import hashlib

import orjson

from runwire.domain.usage import UsageRecord, UsageView
from runwire.store.record_keys import RecordKeys
from runwire.store.summary import UsageSummary
from runwire.store.usage_cache import UsageCache
from runwire.store.usage_summaries import EMPTY, Folding, merged, merged_texts

CALL = UsageRecord(1_700_000_000_000, "openai", "gpt-4o", 120, 30, 850, 0.0012, "ok", "p1", "chat")


def test_a_key_is_the_hash_of_the_content_and_its_place_among_equals() -> None:
    keys = RecordKeys()
    # As migration 0006 froze it: a change would make every earlier record new again.
    content = orjson.dumps(
        [1_700_000_000_000, "openai", "gpt-4o", 120, 30, 850.0, "ok", "p1", "chat"]
    )
    assert keys(CALL) == hashlib.sha256(content + b"#0").hexdigest()
    assert keys(CALL) == hashlib.sha256(content + b"#1").hexdigest()  # two equal calls: two keys


def test_a_price_or_a_latency_written_as_float_does_not_make_a_call_new() -> None:
    first, again = RecordKeys(), RecordKeys()  # two imports of the same call
    assert first(CALL) == again(CALL._replace(cost_usd=9.99, latency_ms=850.0))
    assert first(CALL._replace(prompt_tokens=121)) != again(CALL._replace(prompt_tokens=122))


def test_forgetting_starts_the_counts_again() -> None:
    keys = RecordKeys()
    calls = [CALL._replace(timestamp=CALL.timestamp + n % 300) for n in range(600)]
    before = [keys(r) for r in calls]
    assert len(set(before)) == 600
    forgetting = keys.forget()  # it only yields to the loop: driven here without one
    while True:
        try:
            forgetting.send(None)
        except StopIteration:
            break
    assert [keys(r) for r in calls] == before


def test_an_import_alone_follows_its_own_versions() -> None:
    folding = Folding()
    folding.stored(4)  # the user's data was at 4; the first slice made it 5
    folding.stored(5)
    folding.stored(6)
    assert (folding.before, folding.last, folding.alone) == (4, 7, True)


def test_a_write_between_two_slices_leaves_the_import_not_alone() -> None:
    folding = Folding()
    folding.stored(4)
    folding.stored(6)  # version 5 was someone else's
    assert (folding.before, folding.last, folding.alone) == (4, 7, False)


def test_what_an_import_merges_into() -> None:
    folding = Folding()
    folding.stored(4)
    assert folding.base(4, "kept") == "kept"  # the summary it started from
    assert folding.base(3, "older") is None  # of another version: rebuilt instead
    assert folding.base(4, None) is None
    assert folding.base(None, None) is None  # data without a summary: rebuilt instead
    first = Folding()
    first.stored(0)
    assert first.base(None, None) == EMPTY  # the user's first data: the empty summary


def test_a_merge_is_the_summary_of_all_the_records() -> None:
    calls = [CALL._replace(timestamp=CALL.timestamp + n, feature=f"f{n % 3}") for n in range(9)]
    whole = UsageSummary.of(calls)
    base = UsageSummary.of(calls[:5]).dumps()
    added = UsageSummary()
    added.fold(enumerate(calls[5:], start=5))
    both = merged(base, added)
    assert both is not None
    assert orjson.loads(both[1]) == whole.digest()
    texts = merged_texts([UsageSummary.of(calls[:5]).dumps(), added.dumps()])
    assert texts is not None and orjson.loads(texts[1]) == whole.digest()


def test_into_the_empty_summary_a_merge_is_the_batch() -> None:
    added = UsageSummary.of([CALL])
    assert merged(EMPTY, added) == (added.dumps(), orjson.dumps(added.digest()).decode())


def test_an_unknown_or_outdated_summary_cannot_be_merged() -> None:
    old = orjson.dumps({"format": -1}).decode()
    assert merged(old, UsageSummary.of([CALL])) is None
    assert merged_texts([UsageSummary.of([CALL]).dumps(), None]) is None
    assert merged_texts([old]) is None


def view(records: int) -> UsageView:
    return UsageView.of([CALL] * records)


def test_the_cache_serves_a_view_of_the_current_version_only() -> None:
    cache = UsageCache(records=100)
    kept = view(10)
    cache.put("u1", 3, kept)
    assert cache.get("u1", 3, limit=500) is kept
    assert cache.get("u1", 4, limit=500) is None  # the data changed since
    assert cache.get("u1", 3, limit=9) is None  # more records than asked for
    assert cache.get("u2", 3, limit=500) is None


def test_the_cache_lets_go_of_the_least_recently_read_first() -> None:
    cache = UsageCache(records=100)
    cache.put("u1", 1, view(40))
    cache.put("u2", 1, view(40))
    assert cache.get("u1", 1, limit=500) is not None  # u2 is now the least recently read
    cache.put("u3", 1, view(40))
    assert cache.get("u2", 1, limit=500) is None
    assert cache.get("u1", 1, limit=500) is not None and cache.records == 80
    cache.put("u1", 2, view(5))  # a newer view replaces the user's older one
    assert cache.records == 45


def test_the_cache_keeps_the_last_view_however_large() -> None:
    cache = UsageCache(records=100)
    cache.put("u1", 1, view(30))
    cache.put("u2", 1, view(250))
    assert cache.get("u1", 1, limit=500) is None
    assert cache.get("u2", 1, limit=500) is not None and cache.records == 250
