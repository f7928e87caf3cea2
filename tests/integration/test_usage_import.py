"""Imports on every backend (SQLite, PostgreSQL): what a file holds decides what is stored.

A bad line is rejected with its number and why, and the good lines are stored, whatever the bad
line holds: the three lines below each once lost a whole import as a 500 (issue 12).
"""

from __future__ import annotations

import json

import pytest

from runwire.store.store import Store
from runwire.usage.pricing import PricingTable
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
