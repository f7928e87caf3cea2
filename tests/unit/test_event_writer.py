"""The event writer's bound on what waits to be stored (runs/event_writer.py)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from runwire.events.model import EventType, RunEvent
from runwire.runs.event_writer import MAX_BACKLOG, EventWriter

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
