"""The event writer's bound on what waits to be stored, and how it gathers batches
(runs/event_writer.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from runwire.events.model import EventType, RunEvent
from runwire.runs.event_writer import MAX_BACKLOG, EventWriter
from tests.timing import unit

pytestmark = pytest.mark.unit


def _event(seq: int) -> RunEvent:
    return RunEvent(EventType.TEXT_DELTA, "run", "t", seq, "supervisor", "ts", epoch="e1")


async def test_room_outside_the_writers_loop_stores_what_waits_itself() -> None:
    stored: list[int] = []

    async def sink(events: Sequence[RunEvent]) -> None:
        stored.extend(e.seq for e in events)

    writer = EventWriter(sink, max_backlog=2)
    assert writer.max_backlog == 2 and EventWriter(sink).max_backlog == MAX_BACKLOG
    writer.append(_event(1))
    await writer.room()  # one waits, under the bound of two: nothing to do
    assert writer.backlog == 1 and stored == []
    writer.append(_event(2))
    await writer.room()  # full: no loop runs to store them, so the wait does
    assert writer.backlog == 0 and stored == [1, 2]


def test_a_bound_below_one_is_refused() -> None:
    async def sink(events: Sequence[RunEvent]) -> None:
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="max_backlog"):
        EventWriter(sink, max_backlog=0)


async def test_under_load_events_gather_into_one_batch_and_after_a_pause_go_at_once() -> None:
    batches: list[list[int]] = []

    async def sink(events: Sequence[RunEvent]) -> None:
        batches.append([e.seq for e in events])

    # A linger far longer than the test: only a full batch (here the bound, 4) ends it early.
    async with EventWriter(sink, max_backlog=4, linger=unit(60)).running() as writer:
        writer.append(_event(1))  # the first after a quiet spell: stored at once
        await asyncio.wait_for(writer.flush(), unit(1))
        writer.append(_event(2))  # a batch began a moment ago: this one waits for company
        for _ in range(5):
            await asyncio.sleep(0)
        assert batches == [[1]] and writer.backlog == 1
        writer.extend([_event(3), _event(4)])
        for _ in range(5):
            await asyncio.sleep(0)
        assert batches == [[1]]
        writer.append(_event(5))  # as many as the bound: stored now, together
        await asyncio.wait_for(writer.flush(), unit(1))
        assert batches == [[1], [2, 3, 4, 5]]


async def test_without_a_linger_each_wake_stores_what_waits() -> None:
    batches: list[list[int]] = []

    async def sink(events: Sequence[RunEvent]) -> None:
        batches.append([e.seq for e in events])

    async with EventWriter(sink, linger=0).running() as writer:
        for seq in (1, 2):
            writer.append(_event(seq))
            await asyncio.wait_for(writer.flush(), unit(1))
    assert batches == [[1], [2]]
    with pytest.raises(ValueError, match="linger"):
        EventWriter(sink, linger=-1)
