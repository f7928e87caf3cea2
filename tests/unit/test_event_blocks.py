"""How a run's events are stored and read back (store/event_blocks.py), without a database:
each run's consecutive events of a batch share a row, and a replay of overlapping rows keeps
each seq once, preferring the run's current numbering (tests/integration/test_store_contract.py
checks the same through the store)."""

from __future__ import annotations

import pytest

from runwire.events import EventType, RunEvent
from runwire.store.event_blocks import BLOCK_EVENTS, blocks, replay

pytestmark = pytest.mark.unit


def event(run_id: str, seq: int, epoch: str = "e1", text: str = "") -> RunEvent:
    return RunEvent(
        EventType.TEXT_DELTA,
        run_id,
        "thr_1",
        seq,
        "supervisor",
        "2026-01-01T00:00:00.000Z",
        {"text": text or f"{run_id}:{seq}"},
        epoch=epoch,
    )


def test_each_runs_consecutive_events_share_a_row_a_lone_one_has_no_last_seq() -> None:
    events = [event("a", 1), event("b", 7), event("a", 2), event("a", 3)]
    rows = blocks(events)
    assert [(run, seq, last) for run, seq, _, _, last in rows] == [("a", 1, 3), ("b", 7, None)]
    a_body, b_body = rows[0][3], rows[1][3]
    assert a_body.split("\n") == [e.json for e in (events[0], events[2], events[3])]
    assert b_body == events[1].json
    assert rows[0][2] == EventType.TEXT_DELTA.value


def test_a_gap_in_seq_or_a_full_block_starts_a_new_row() -> None:
    gap = blocks([event("a", 1), event("a", 2), event("a", 4)])
    assert [(seq, last) for _, seq, _, _, last in gap] == [(1, 2), (4, None)]
    many = blocks([event("a", seq) for seq in range(1, BLOCK_EVENTS + 3)])
    assert [(seq, last) for _, seq, _, _, last in many] == [
        (1, BLOCK_EVENTS),
        (BLOCK_EVENTS + 1, BLOCK_EVENTS + 2),
    ]
    assert blocks([]) == []


def stored(events: list[RunEvent], current: str) -> list[tuple[str, int | None, str]]:
    """``events`` as the store's read returns them: each row's body, last_seq and the epoch."""
    return [(body, last, current) for _, _, _, body, last in blocks(events)]


def test_a_replay_reads_blocks_whole_after_a_position_under_the_current_epoch() -> None:
    rows = stored([event("a", seq, epoch="old") for seq in range(1, 6)], current="new")
    out = replay(rows, after_seq=2, limit=100)
    assert [e.seq for e in out] == [3, 4, 5]
    assert {e.epoch for e in out} == {"new"}
    assert [e.seq for e in replay(rows, after_seq=0, limit=2)] == [1, 2]
    assert replay([], after_seq=0, limit=10) == []


def test_overlapping_rows_keep_the_event_of_the_current_epoch_else_the_first() -> None:
    lost = [event("a", seq, epoch="e1", text=f"lost {seq}") for seq in (1, 2, 3)]
    taken = [event("a", seq, epoch="e2", text=f"taken {seq}") for seq in (2, 3)]
    # Read in seq order: the lost node's block (1-3) first, then the taker's (2-3).
    rows = stored(lost, current="e2") + stored(taken, current="e2")
    texts = [e.data["text"] for e in replay(rows, after_seq=0, limit=10)]
    assert texts == ["lost 1", "taken 2", "taken 3"]
    # The current one read first is not replaced by another read after it.
    rows = stored(taken, current="e2") + stored(lost, current="e2")
    texts = [e.data["text"] for e in replay(rows, after_seq=0, limit=10)]
    assert texts == ["lost 1", "taken 2", "taken 3"]
    # Under a third numbering neither is current: the first one read stays.
    rows = stored(lost, current="e3") + stored(taken, current="e3")
    texts = [e.data["text"] for e in replay(rows, after_seq=0, limit=10)]
    assert texts == ["lost 1", "lost 2", "lost 3"]
