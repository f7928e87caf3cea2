"""Imports on every backend (SQLite, PostgreSQL): what a file holds decides what is stored.

A bad line is rejected with its number and why, and the good lines are stored, whatever the bad
line holds: the three lines below each once lost a whole import as a 500 (issue 12).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from runwire.app import build_agent
from runwire.config import Settings
from runwire.events.model import EventDraft, EventType
from runwire.runs.executor import RunInput
from runwire.store.records import UsageRecord, now_ms
from runwire.store.store import Store
from runwire.usage.pricing import PricingTable
from runwire.usage.sample import generate_sample
from runwire.workload import Workload
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
