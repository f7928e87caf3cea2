"""A run's journal emitting a batch of ready events (a streamed answer's chunks) in one pass:
the same events as one by one, on a real in-process bus and event writer."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import pytest

from runwire.bus.memory import MemoryBus
from runwire.errors import InvalidTransition, LeaseLost
from runwire.events.model import EventDraft, EventType, RunEvent, TextDrafts
from runwire.runs.event_writer import EventWriter
from runwire.runs.journal import ROOT_AGENT, RunJournal

pytestmark = pytest.mark.unit


class Stored:
    """The writer's sink: every batch it was given, as given."""

    def __init__(self) -> None:
        self.batches: list[list[RunEvent]] = []

    async def __call__(self, batch: Sequence[RunEvent]) -> None:
        self.batches.append(list(batch))

    @property
    def events(self) -> list[RunEvent]:
        return [e for batch in self.batches for e in batch]


def journal(
    bus: MemoryBus, writer: EventWriter, *, holds: bool = True, run_id: str = "run_1"
) -> RunJournal:
    return RunJournal(
        run_id=run_id,
        thread_id="thr_1",
        user_id="usr_1",
        epoch="ep_1",
        bus=bus,
        writer=writer,
        fence=lambda: holds,
    )


def chunk(text: str) -> EventDraft:
    return EventDraft(EventType.TEXT_DELTA, "reporting", {"delta": text}, ROOT_AGENT)


def without_time(events: Sequence[RunEvent]) -> list[tuple[object, ...]]:
    return [(e.type, e.run_id, e.seq, e.agent_name, e.data, e.parent_agent) for e in events]


def texts(*deltas: str) -> TextDrafts:
    return TextDrafts("reporting", list(deltas), ROOT_AGENT)


def test_text_drafts_are_the_drafts_of_their_chunks() -> None:
    drafts = texts("a ", "b ", "c")
    assert list(drafts) == [chunk("a "), chunk("b "), chunk("c")] and len(drafts) == 3
    assert drafts[-1] == chunk("c") and list(drafts[1:]) == [chunk("b "), chunk("c")]
    with pytest.raises(IndexError):
        drafts[3]


def framed(events: Sequence[RunEvent]) -> list[dict[str, object]]:
    """The wire frames, less their timestamp (each way numbers its events in its own instant)."""
    return [{**orjson.loads(e.wire), "timestamp": None} for e in events]


async def test_a_batch_is_the_events_one_by_one_would_be_and_every_side_sees_them() -> None:
    drafts = [chunk(f"w{i} ") for i in range(5)]
    outcomes = []
    frames = []
    for batched in (False, True, "text"):
        bus, stored = MemoryBus(), Stored()
        writer = EventWriter(stored)
        each: list[RunEvent] = []
        other: list[RunEvent] = []
        batches: list[Sequence[RunEvent]] = []
        await bus.subscribe("usr_1", each.append)  # one by one
        await bus.subscribe("usr_1", other.append, on_batch=batches.append)
        j = journal(bus, writer)
        await j.emit(EventDraft(EventType.AGENT_STARTED, ROOT_AGENT))
        if batched == "text":  # the chunks as the agents hand them over: no draft objects
            emitted = await j.emit_batch(texts(*(d.data["delta"] for d in drafts)))
        elif batched:
            emitted = await j.emit_batch(drafts)
        else:
            emitted = [await j.emit(d) for d in drafts]
        await writer.flush()
        held = await bus.history("run_1", 0)
        assert held is not None and held[1:] == emitted
        assert stored.events[1:] == emitted
        assert j.last_seq == 6 and j.text == "w0 w1 w2 w3 w4 "
        if batched:
            # The batch handler had the batch whole, the plain handler each event of it.
            assert (
                [list(b) for b in batches] == [emitted]
                and each[1:] == emitted
                and other == each[:1]
            )
            assert len({e.timestamp for e in emitted}) == 1  # numbered in one instant
        outcomes.append(without_time(emitted))
        frames.append(framed(emitted))
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert frames[0] == frames[1] == frames[2]
    assert [seq for (_, _, seq, *_) in outcomes[1]] == [2, 3, 4, 5, 6]


async def test_a_batch_past_the_stores_backlog_bound_waits_its_turn_event_by_event() -> None:
    bus, stored = MemoryBus(), Stored()
    writer = EventWriter(stored, max_backlog=3)  # not running: a wait stores what is queued
    j = journal(bus, writer)
    emitted = await j.emit_batch(texts(*(f"{i}" for i in range(7))))
    assert [e.seq for e in emitted] == list(range(1, 8)) and j.text == "0123456"
    # Never more than the bound waited: the store was given at most three at a time.
    assert max(len(b) for b in stored.batches) <= 3 and writer.backlog <= 3
    await writer.flush()
    assert stored.events == emitted


async def test_a_batch_of_one_or_none_is_the_plain_path() -> None:
    bus, stored = MemoryBus(), Stored()
    writer = EventWriter(stored)
    j = journal(bus, writer)
    assert await j.emit_batch([]) == []
    (only,) = await j.emit_batch([chunk("a")])
    assert only.seq == 1 and j.last_seq == 1
    await bus.publish_batch("usr_1", [])  # nothing to publish: nothing held
    assert await bus.history("run_1", 1) == []


async def test_nothing_follows_a_terminal_event_in_a_batch() -> None:
    bus, stored = MemoryBus(), Stored()
    writer = EventWriter(stored)
    j = journal(bus, writer)
    done = EventDraft(EventType.AGENT_COMPLETED, ROOT_AGENT, {"final_response": "ok"})
    with pytest.raises(InvalidTransition):
        await j.emit_batch([chunk("a"), done, chunk("late")])
    # What came up to the run's end went out and is stored; what followed it was not numbered.
    held = await bus.history("run_1", 0)
    assert held is not None and [e.type for e in held] == [EventType.TEXT_DELTA, done.type]
    assert j.closed and j.last_seq == 2
    with pytest.raises(InvalidTransition):
        await j.emit_batch([chunk("b"), chunk("c")])
    await writer.flush()
    assert stored.events == held


async def test_a_batch_of_a_run_whose_lease_is_lost_is_not_numbered() -> None:
    bus, stored = MemoryBus(), Stored()
    writer = EventWriter(stored)
    j = journal(bus, writer, holds=False)
    with pytest.raises(LeaseLost):
        await j.emit_batch([chunk("a"), chunk("b")])
    assert j.last_seq == 0 and await bus.history("run_1", 0) is None


async def test_a_failing_batch_handler_does_not_stop_the_other_connections() -> None:
    bus = MemoryBus()
    got: list[RunEvent] = []

    def broken(events: Sequence[RunEvent]) -> None:
        raise RuntimeError("a broken connection")

    def broken_one(event: RunEvent) -> None:
        raise RuntimeError("a broken connection")

    await bus.subscribe("usr_1", got.append, on_batch=broken)
    await bus.subscribe("usr_1", broken_one)
    await bus.subscribe("usr_1", got.append)
    j = journal(bus, EventWriter(Stored()))
    emitted = await j.emit_batch([chunk("a"), chunk("b")])
    assert got == emitted
