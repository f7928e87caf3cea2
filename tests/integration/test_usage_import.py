"""Imports on every backend (SQLite, PostgreSQL): what a file holds decides what is stored.

A bad line is rejected with its number and why, and the good lines are stored, whatever the bad
line holds: the three lines below each once lost a whole import as a 500 (issue 12).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from runwire.app.agent import build_agent
from runwire.config import Settings
from runwire.domain.clock import now_ms
from runwire.domain.usage import UsageRecord
from runwire.errors import NotFound
from runwire.events.model import EventDraft, EventType
from runwire.runs.executor import RunInput
from runwire.store.store import Store
from runwire.usage.pricing import PricingTable
from runwire.usage.sample import generate_sample
from runwire.usage.workload import Workload
from tests.integration.test_store_contract import a_user

GOOD = {
    "timestamp": "2026-11-01T10:00:00Z",
    "provider": "openai",
    "model": "gpt-4o",
    "prompt_tokens": 1000,
    "completion_tokens": 200,
    "latency_ms": 850,
}
GOOD_LINE = json.dumps(GOOD)
# Deeper than the JSON decoder recurses (RecursionError).
DEEP = '{"x":' + "[" * 5000 + "]" * 5000 + "}"
# Longer than Python converts to an integer (ValueError past 4,300 digits).
HUGE = GOOD_LINE[:-1] + ', "prompt_tokens": ' + "9" * 5000 + "}"
# A lone surrogate: valid JSON, but no database can store it as text.
SURROGATE = GOOD_LINE[:-1] + ', "feature": "\\ud800"}'


@pytest.fixture
def workload(store: Store) -> Workload:
    return Workload(store.usage, PricingTable.load())


async def test_a_jsonl_line_no_decoder_or_database_can_take_is_rejected_and_the_rest_kept(
    store: Store, workload: Workload
) -> None:
    user_id = await a_user(store)
    later = json.dumps({**GOOD, "timestamp": "2026-11-01T10:00:01Z"})
    body = "\n".join([GOOD_LINE, DEEP, HUGE, SURROGATE, later]).encode()
    result = await workload.import_text(user_id, body, "jsonl")
    assert result.rejected == [
        (2, "invalid JSON: nested too deeply"),
        (3, "invalid JSON: a number longer than 4300 digits"),
        (4, "feature must be valid Unicode (it holds a lone surrogate)"),
    ]
    assert result.imported == 2
    assert await store.usage.count(user_id) == 2


async def test_a_csv_row_no_reader_or_database_can_take_is_rejected_and_the_rest_kept(
    store: Store, workload: Workload
) -> None:
    user_id = await a_user(store)
    header = ",".join(GOOD) + ",feature"
    row = ",".join(str(v) for v in GOOD.values())
    body = "\n".join(
        [
            header,
            row + ",a",
            row.replace("1000", "9" * 5000) + ",b",  # line 3: too many tokens, quoted cut
            row + ",c\x00",  # line 4: NUL, which the CSV reader refuses
            row + ',"stray quote',  # line 5: its quote runs over the lines after it
            row + ",d",
            row + ",e",
        ]
    ).encode()
    result = await workload.import_text(user_id, body, "csv")
    assert [line for line, _ in result.rejected] == [3, 4, 5]
    assert result.rejected[0][1] == f"prompt_tokens must be a finite number, got '{'9' * 40}…'"
    assert result.imported == 3
    assert sorted(r.feature or "" for r in await store.usage.records_of(user_id)) == list("ade")


async def test_the_agents_answer_whatever_record_is_stored(
    store: Store, settings: Settings
) -> None:
    # Accepted by imports before they checked times: every later run of its user then failed
    # with "check_usage_data failed: ValueError: year 0 is out of range" (issue 12, finding 4).
    year_one = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))
    odd = [
        UsageRecord(
            timestamp=(year_one - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1),
            provider="openai",
            model="gpt-4o",
            prompt_tokens=1,
            completion_tokens=1,
            latency_ms=1.0,
            cost_usd=0.01,
        ),
        UsageRecord(2**62, "openai", "gpt-4o", 1, 1, 1.0, 0.01),  # year 146 million
        UsageRecord(now_ms(), "openai", "gpt-4o", 1, 1, 1.0, 1.7e308),  # sums overflow
        UsageRecord(now_ms(), "openai", "gpt-4o", -5, 2**31 - 1, float("inf"), 0.01),
    ]
    user_id = await a_user(store)
    # Stored directly, as a record of an older server or another tool would be.
    await store.usage.add(user_id, [*generate_sample(days=2), *odd])
    agent = build_agent(settings, store, PricingTable.load())
    events: list[EventDraft] = []

    async def emit(draft: EventDraft) -> None:
        events.append(draft)

    answer = await agent(
        RunInput("run_x", "thr_x", user_id, "Where can I cut my LLM costs?", epoch="e"), emit
    )
    assert "## " in answer and "$" in answer
    assert not [e for e in events if e.type == EventType.AGENT_ERROR]
    [check] = [
        e for e in events if e.data.get("tool_name") == "check_usage_data" and "result" in e.data
    ]
    assert check.data["success"] is True and check.data["result"]["left_out"] == 4
    assert check.data["result"]["first_call"] >= "2026"
    said = [e.data["reasoning"] for e in events if e.type == EventType.AGENT_THINKING]
    assert any("I left out 4 stored records" in text for text in said)


# --- idempotent imports, batches, deletion ---------------------------------------------------


def calls(n: int, *, start: int = 0, latency: float = 850) -> bytes:
    """``n`` distinct calls a second apart, as a JSON Lines file."""
    base = datetime(2026, 11, 1, tzinfo=UTC)
    lines = [
        json.dumps(
            {
                **GOOD,
                "timestamp": (base + timedelta(seconds=start + i)).isoformat(),
                "latency_ms": latency,
            }
        )
        for i in range(n)
    ]
    return "\n".join(lines).encode()


async def test_importing_a_file_again_adds_nothing(store: Store, workload: Workload) -> None:
    user_id = await a_user(store)
    body = calls(3) + b"\n" + calls(2, start=1)  # lines 2 and 3 are repeated in lines 4 and 5
    first = await workload.import_text(user_id, body, "jsonl", name="calls.jsonl")
    assert (first.imported, first.new, first.already_present) == (5, 5, 0)
    assert first.batch_id is not None
    again = await workload.import_text(user_id, body, "jsonl", name="calls.jsonl")
    assert (again.imported, again.new, again.already_present, again.batch_id) == (5, 0, 5, None)
    assert await store.usage.count(user_id) == 5  # equal calls in one file stay two records
    [batch] = await workload.batches(user_id)
    assert (batch.id, batch.source, batch.name, batch.records) == (
        first.batch_id,
        "import",
        "calls.jsonl",
        5,
    )
    # An export that overlaps the first adds only the calls that are new.
    overlap = await workload.import_text(user_id, calls(4, start=2), "jsonl")
    assert (overlap.new, overlap.already_present) == (3, 1)
    # The same call priced again (a price-table update, or a cost given) is the same call.
    priced = json.dumps({**json.loads(calls(1).decode()), "cost_usd": 0.5})
    assert (await workload.import_text(user_id, priced.encode(), "jsonl")).new == 0
    assert await store.usage.count(user_id) == 8


async def test_a_large_import_is_written_in_slices_and_counted_exactly(
    store: Store, workload: Workload
) -> None:
    user_id = await a_user(store)
    first = await workload.import_text(user_id, calls(1_200), "jsonl")
    assert (first.new, first.already_present) == (1_200, 0)
    both = await workload.import_text(user_id, calls(1_300, start=600), "jsonl")
    assert (both.new, both.already_present) == (700, 600)
    assert await store.usage.count(user_id) == 1_900


async def test_the_sample_loads_once(store: Store, workload: Workload) -> None:
    user_id = await a_user(store)
    first = await workload.load_sample(user_id)
    assert first.new == first.imported > 1000 and first.already_present == 0
    again = await workload.load_sample(user_id)
    # Clicked twice (the page's button, the CLI): once doubled the records (issue 12).
    assert (again.imported, again.new, again.already_present) == (first.new, 0, first.new)
    assert again.batch_id == first.batch_id
    assert await store.usage.count(user_id) == first.new
    [batch] = await workload.batches(user_id)
    assert (batch.source, batch.records) == ("sample", first.new)
    # Deleted, it can be loaded afresh.
    assert await workload.delete(user_id, batch.id) == first.new
    assert (await workload.load_sample(user_id)).new > 1000


async def test_a_user_deletes_one_batch_or_everything(store: Store, workload: Workload) -> None:
    user_id, other = await a_user(store), await a_user(store)
    kept = await workload.import_text(user_id, calls(3), "jsonl")
    gone = await workload.import_text(user_id, calls(1_100, start=10), "jsonl")
    theirs = await workload.import_text(other, calls(2), "jsonl")
    assert len(await store.usage.records_of(user_id)) == 1_103  # cached now
    assert gone.batch_id and kept.batch_id and theirs.batch_id
    assert await workload.delete(user_id, gone.batch_id) == 1_100
    assert len(await store.usage.records_of(user_id)) == 3  # the cached set was not served
    assert [b.id for b in await workload.batches(user_id)] == [kept.batch_id]
    for batch_id in (gone.batch_id, theirs.batch_id, "imp_nothing"):
        with pytest.raises(NotFound):
            await workload.delete(user_id, batch_id)
    assert await workload.delete(user_id) == 3
    assert await workload.batches(user_id) == [] and await store.usage.count(user_id) == 0
    assert list(await store.usage.records_of(user_id)) == []
    assert await store.usage.count(other) == 2  # nobody else's
    # Deleted data imports again as new.
    assert (await workload.import_text(user_id, calls(3), "jsonl")).new == 3
