"""How a run ends (runs/closer.py), on a real journal, in-process bus and event writer, and a real
store on in-memory SQLite: an early end closes what the run left open, keeps the text it
streamed as a partial reply and records the end with its error; a run stopped before its first
event still opens before it closes; a run whose lease is gone records and emits nothing.
(The executor's every way of ending a run, on every backend: tests/integration/test_runs.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest

from runwire.bus.memory import MemoryBus
from runwire.domain.run_status import RunStatus
from runwire.errors import LeaseLost
from runwire.events.model import EventDraft, EventType, RunEvent
from runwire.runs.active_run import ActiveRun
from runwire.runs.closer import RunCloser
from runwire.runs.event_writer import EventWriter
from runwire.runs.journal import ROOT_AGENT, RunJournal
from runwire.runs.run_input import RunInput
from runwire.store.schema import metadata
from runwire.store.store import Store

pytestmark = pytest.mark.unit


class Stored:
    """The event writer's sink."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    async def __call__(self, batch: Sequence[RunEvent]) -> None:
        self.events.extend(batch)


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    async with Store.open("sqlite+aiosqlite://") as opened:
        async with opened.db.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        await opened.accounts.create_user("usr_1", "one@example.com", "")
        yield opened


async def _active(
    store: Store, writer: EventWriter, *, holds: bool = True, stop: str | None = None
) -> ActiveRun:
    """A run accepted and begun (the executor's part before the agent runs), or (``stop``)
    stopped before it began."""
    thread, _ = await store.conversations.accept(
        user_id="usr_1", thread=None, content="why so slow?", run_id="run_1", epoch="ep_1"
    )
    run = RunInput("run_1", thread.id, "usr_1", "why so slow?", epoch="ep_1")
    journal = RunJournal(
        run_id=run.run_id,
        thread_id=run.thread_id,
        user_id=run.user_id,
        epoch=run.epoch,
        bus=MemoryBus(),
        writer=writer,
        fence=lambda: holds,
    )
    active = ActiveRun(input=run, journal=journal)
    if stop is not None:
        active.phase.stop(stop)
    assert active.phase.begin() is (stop is None)
    return active


async def test_an_early_end_closes_what_is_open_and_keeps_the_streamed_text(store: Store) -> None:
    stored = Stored()
    writer = EventWriter(stored)
    active = await _active(store, writer)
    active.state.move(RunStatus.RUNNING)
    journal = active.journal
    await journal.emit(EventDraft(EventType.AGENT_STARTED, ROOT_AGENT))
    await journal.emit(EventDraft(EventType.AGENT_STARTED, "reporting", parent_agent=ROOT_AGENT))
    await journal.emit(
        EventDraft(EventType.TEXT_DELTA, "reporting", {"delta": "It is "}, ROOT_AGENT)
    )
    await RunCloser(store.runs, None).end_early(
        active, EventType.AGENT_ERROR, "timeout", "the run took too long"
    )
    await writer.flush()
    kinds = [(e.type, e.agent_name) for e in stored.events]
    assert kinds[3:] == [
        (EventType.AGENT_ERROR, "reporting"),  # the open sub-agent first
        (EventType.AGENT_ERROR, ROOT_AGENT),
    ]
    last = stored.events[-1]
    assert last.data["code"] == "timeout" and last.seq == 5
    record = await store.runs.by_id("run_1")
    assert record is not None
    assert (record.status, record.error_code, record.last_seq) == ("failed", "timeout", 5)
    messages = await store.conversations.messages_of(active.input.thread_id)
    reply = messages[-1]
    assert (reply.id, reply.content, reply.partial) == (
        last.data["partial_message_id"],
        "It is ",
        True,
    )
    assert active.state.status is RunStatus.FAILED


async def test_a_run_stopped_before_its_first_event_opens_before_it_closes(store: Store) -> None:
    stored = Stored()
    writer = EventWriter(stored)
    active = await _active(store, writer, stop="stopped")
    await RunCloser(store.runs, None).end_early(
        active, EventType.AGENT_STOPPED, "stopped", "stopped by the user"
    )
    await writer.flush()
    assert [(e.type, e.seq) for e in stored.events] == [
        (EventType.AGENT_STARTED, 1),
        (EventType.AGENT_STOPPED, 2),
    ]
    record = await store.runs.by_id("run_1")
    assert record is not None
    assert (record.status, record.error_code, record.last_seq) == ("cancelled", None, 2)
    assert [m.role for m in await store.conversations.messages_of(active.input.thread_id)] == [
        "user"
    ]  # nothing streamed: no reply
    # Closed already: a second end does nothing.
    await RunCloser(store.runs, None).end_early(active, EventType.AGENT_ERROR, "x", "y")
    await writer.flush()
    assert len(stored.events) == 2


async def test_a_run_whose_lease_is_gone_records_and_emits_nothing(store: Store) -> None:
    stored = Stored()
    writer = EventWriter(stored)
    active = await _active(store, writer, holds=False)
    with pytest.raises(LeaseLost):
        await RunCloser(store.runs, None).close(
            active,
            EventDraft(EventType.AGENT_COMPLETED, ROOT_AGENT, {"final_response": "done"}),
            RunStatus.COMPLETED,
            reply=active.reply("done"),
        )
    await writer.flush()
    assert stored.events == []
    record = await store.runs.by_id("run_1")
    assert record is not None and record.status == "queued"
