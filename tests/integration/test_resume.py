"""Resume you can trust, on a real SQLite store: epochs, refusals and retention.

A position is an epoch and a seq; it is served whole or refused with ``reload_required`` and a
reason, never answered with part of the events.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable

import pytest
from sqlalchemy import delete, update

from runwire.bus.memory import MemoryBus
from runwire.chat import ChatService
from runwire.domain.clock import now_ms
from runwire.domain.ids import new_epoch, new_id
from runwire.errors import NotFound, ReloadReason, ReloadRequired
from runwire.events import EventDraft, EventType, RunEvent
from runwire.runs.executor import Emit, RunInput
from runwire.runs.retention import DAY_MS, Retention
from runwire.store.schema import run_events, runs
from runwire.store.store import Store
from tests.integration.test_runs import (
    Harness,
    hanging_agent,
    harness_for,
    running_runs,
    streaming_agent,
)
from tests.timing import unit


async def refused(call: Awaitable[object]) -> ReloadRequired:
    with pytest.raises(ReloadRequired) as caught:
        await call
    return caught.value


def chat_of(h: Harness) -> ChatService:
    return ChatService(h.store, h.runs, h.bus)


async def test_a_run_closed_after_a_crash_gets_a_new_epoch_and_old_positions_are_refused(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    # The process that crashed: it accepted a run and sent five events live, but stored three.
    user = await store.accounts.create_user(new_id("usr"), f"{new_id('u')}@x.io", "h")
    run_id, old = new_id("run"), new_epoch()
    thread, _ = await store.conversations.accept(
        user_id=user.id, thread=None, content="q", run_id=run_id, epoch=old
    )
    drafts = [
        EventDraft(EventType.AGENT_STARTED, "supervisor"),
        EventDraft(EventType.AGENT_THINKING, "supervisor", {"reasoning": "plan"}),
        EventDraft(EventType.AGENT_STARTED, "data", parent_agent="supervisor"),
        EventDraft(
            EventType.TOOL_EXECUTING,
            "data",
            {"tool_name": "t", "tool_call_id": "c1", "tool_args": {}},
            "supervisor",
        ),
        EventDraft(EventType.TEXT_DELTA, "data", {"delta": "Hel"}, "supervisor"),
    ]
    seen_live = [
        RunEvent(
            d.type, run_id, thread.id, i, d.agent_name, "ts", d.data, d.parent_agent, epoch=old
        )
        for i, d in enumerate(drafts, start=1)
    ]
    assert await store.runs.claim(run_id, now=now_ms()) is not None  # it was running
    await store.runs.append_events(seen_live[:3])

    # The next process starts and closes the run after its stored events.
    bus = MemoryBus()
    with caplog.at_level(logging.WARNING, "runwire.runs.dispatcher"):
        async with running_runs(store, bus, streaming_agent) as runs:
            assert "closed 1 runs left unfinished" in caplog.text
            chat = ChatService(store, runs, bus)
            record = await chat.run(user.id, run_id)
            assert record.status == "failed" and record.error_code == "interrupted"
            assert record.epoch != old
            served = await chat.events(user.id, run_id, 0)
            assert [e.seq for e in served] == list(range(1, record.last_seq + 1))
            assert {e.epoch for e in served} == {record.epoch}
            # The stored events are the same events, now named by the new epoch ...
            assert served[:3] == [dataclasses.replace(e, epoch=record.epoch) for e in seen_live[:3]]
            # ... but seq 4 and 5 now mean the run's closing events, not what the client saw.
            assert [(e.type, e.agent_name) for e in served[3:]] == [
                (EventType.AGENT_ERROR, "data"),
                (EventType.AGENT_ERROR, "supervisor"),
            ]
            # A client holding seq 5 of the old numbering is told to reload, and the new epoch.
            stale = await refused(chat.events(user.id, run_id, 5, old))
            assert (stale.reason, stale.epoch, stale.run_id) == (
                ReloadReason.EPOCH_CHANGED,
                record.epoch,
                run_id,
            )
            # So is one whose position the two numberings share: its epoch is void as a whole.
            stale = await refused(chat.events(user.id, run_id, 3, old))
            assert stale.reason is ReloadReason.EPOCH_CHANGED
            # Under the new epoch the rest is served whole.
            assert await chat.events(user.id, run_id, 3, record.epoch) == served[3:]
            # Recovering again finds nothing to do and leaves the epoch alone.
            assert await runs.dispatcher.reap(confirm=False) == 0
            assert (await chat.run(user.id, run_id)).epoch == record.epoch


async def drop_stored_event(store: Store, run_id: str, seq: int) -> None:
    """Take one event out of a run's stored history, as if its batch had not been written
    (events are stored in blocks: the run's are written again without it)."""
    kept = [e for e in await store.runs.events_after(run_id, 0) if e.seq != seq]
    async with store.db.begin() as conn:
        await conn.execute(delete(run_events).where(run_events.c.run_id == run_id))
    await store.runs.append_events(kept)


async def test_an_ended_run_refuses_positions_it_cannot_serve_whole(store: Store) -> None:
    async with harness_for(streaming_agent)(store) as h:
        run_id = await h.start()
        await asyncio.wait_for(h.executor.wait(run_id), unit(5))
        chat, live = chat_of(h), h.events(run_id)
        n, epoch = len(live), live[0].epoch
        assert await chat.events(h.user_id, run_id, n, epoch) == []  # has it all: nothing missed
        past = await refused(chat.events(h.user_id, run_id, n + 1))
        assert (past.reason, past.epoch) == (ReloadReason.POSITION_UNKNOWN, epoch)
        with pytest.raises(NotFound):  # another user's run is not found, whatever is asked
            await chat.events("usr_other", run_id, 0, "nope")

        # A stored event lost (its batch could not be written): refused, never served with a gap.
        await drop_stored_event(store, run_id, 4)
        for after in (0, 2, 4):
            hole = await refused(chat.events(h.user_id, run_id, after))
            assert hole.reason is ReloadReason.HISTORY_INCOMPLETE, after
        assert await chat.events(h.user_id, run_id, 5) == live[5:]  # after the hole: whole


async def test_a_live_run_serves_held_events_and_refuses_positions_it_never_reached(
    store: Store,
) -> None:
    started = asyncio.Event()
    async with harness_for(hanging_agent(started))(store) as h:
        run_id = await h.start()
        await asyncio.wait_for(started.wait(), unit(5))
        chat, live = chat_of(h), h.events(run_id)
        epoch = live[0].epoch
        assert await chat.events(h.user_id, run_id, 2, epoch) == live[2:]
        replay = await chat.replay(h.user_id, run_id, len(live), epoch)
        assert replay.events == [] and not replay.finished  # more will come live
        ahead = await refused(chat.events(h.user_id, run_id, len(live) + 1, epoch))
        assert ahead.reason is ReloadReason.POSITION_UNKNOWN
        other = await refused(chat.events(h.user_id, run_id, 1, "not-" + epoch))
        assert (other.reason, other.epoch) == (ReloadReason.EPOCH_CHANGED, epoch)
        await h.dispatcher.stop(h.user_id, run_id)
        await asyncio.wait_for(h.executor.wait(run_id), unit(5))
        ended = await chat.replay(h.user_id, run_id, len(h.events(run_id)), epoch)
        assert ended.events == [] and ended.finished


async def backdate(store: Store, run_id: str, ended_at: int) -> None:
    async with store.db.begin() as conn:
        await conn.execute(update(runs).where(runs.c.id == run_id).values(ended_at=ended_at))


async def test_retention_trims_the_events_of_runs_ended_before_the_cutoff(store: Store) -> None:
    async with harness_for(streaming_agent)(store) as h:
        old, recent = await h.start(), await h.start()
        for run_id in (old, recent):
            await asyncio.wait_for(h.executor.wait(run_id), unit(5))
        now = now_ms()
        await backdate(store, old, now - 7 * DAY_MS - 1)
        await backdate(store, recent, now - 7 * DAY_MS + 1)
        queued, epoch = new_id("run"), new_epoch()  # never ran: no end, never trimmed
        thread = await store.conversations.thread(h.user_id, h.thread_id)
        await store.conversations.accept(
            user_id=h.user_id, thread=thread, content="q", run_id=queued, epoch=epoch
        )
        retention = Retention(store.runs, keep_days=7, interval_s=3600, clock=lambda: now)
        assert await retention.trim() == 1
        assert await retention.trim() == 0  # done once

        chat = chat_of(h)
        record = await chat.run(h.user_id, old)
        assert record.trimmed_at == now and record.status == "completed"
        assert await store.runs.events_after(old, 0) == []
        for after in (0, 3):
            gone = await refused(chat.events(h.user_id, old, after))
            assert (gone.reason, gone.epoch) == (ReloadReason.HISTORY_EXPIRED, record.epoch)
        # A client that has the whole run misses nothing; a position past its end is unknown.
        assert await chat.events(h.user_id, old, record.last_seq) == []
        past = await refused(chat.events(h.user_id, old, record.last_seq + 1))
        assert past.reason is ReloadReason.POSITION_UNKNOWN
        # The thread keeps its messages, the reply of the trimmed run included.
        messages = await chat.messages(h.user_id, h.thread_id)
        assert [m.content for m in messages if m.run_id == old] == ["q", "Hello world"]
        # The other runs keep their events.
        assert await chat.events(h.user_id, recent, 0) == h.events(recent)
        assert await chat.events(h.user_id, queued, 0) == []


async def test_the_retention_task_trims_in_the_background_and_stops_with_its_context(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    async with harness_for(streaming_agent)(store) as h:
        run_id = await h.start()
        await asyncio.wait_for(h.executor.wait(run_id), unit(5))
    now = now_ms() + 8 * DAY_MS
    passes = 0
    third_pass = asyncio.Event()

    def clock() -> int:
        nonlocal passes
        passes += 1
        if passes == 1:
            raise RuntimeError("the first pass fails")  # the task must survive it
        if passes == 3:
            third_pass.set()  # the second pass, which trims, is over
        return now

    retention = Retention(store.runs, keep_days=7, interval_s=0.001, clock=clock)
    with caplog.at_level(logging.INFO, logger="runwire.runs.retention"):
        async with retention.running():
            await asyncio.wait_for(third_pass.wait(), unit(5))
    assert "could not trim old run events" in caplog.text
    # The run, and the run of the harness's opening message (ended, with no events).
    assert "trimmed the events of 2 ended runs" in caplog.text
    record = await store.runs.get(h.user_id, run_id)
    assert record is not None and record.trimmed_at == now
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "runwire-retention"]


async def test_a_live_run_whose_bus_lost_its_start_is_served_from_the_store_then_the_bus(
    store: Store,
) -> None:
    # Redis restarted empty mid-run: the bus holds the run only from seq 4 on, and the store,
    # a batch behind the live run, up to seq 4. A resume from the start gets all six.
    async with harness_for(streaming_agent)(store) as h:
        run_id, epoch = new_id("run"), new_epoch()
        thread = await store.conversations.thread(h.user_id, h.thread_id)
        await store.conversations.accept(
            user_id=h.user_id, thread=thread, content="q", run_id=run_id, epoch=epoch
        )
        await store.runs.claim(run_id, now=now_ms())
        events = [
            RunEvent(
                EventType.TEXT_DELTA, run_id, h.thread_id, seq, "reporting", "ts",
                {"delta": f"<{seq}>"}, "supervisor", epoch=epoch,
            )
            for seq in range(1, 7)
        ]  # fmt: skip
        await store.runs.append_events(events[:4])
        for event in events[3:]:
            await h.bus.publish(h.user_id, event)
        assert await h.bus.history(run_id, 0) is None  # the bus cannot serve it whole
        served = await chat_of(h).events(h.user_id, run_id, 0, epoch)
        assert [e.seq for e in served] == [1, 2, 3, 4, 5, 6]
        assert await chat_of(h).events(h.user_id, run_id, 2, epoch) == served[2:]
        await h.bus.release(run_id)


async def test_a_run_closed_after_its_node_was_lost_is_served_whole_before_its_end_is_stored(
    store: Store,
) -> None:
    # A lost node stored seq 1-3; the node that closed the run gave it a new epoch, recorded its
    # end and sent its closing events 4 and 5, which the bus holds (only them: the run's history
    # there starts over with the new epoch) and the store does not yet (a batch behind). A client
    # asking on seeing the last one gets all five, as the store will serve them, not a refusal.
    async with harness_for(streaming_agent)(store) as h:
        run_id, old, new = new_id("run"), new_epoch(), new_epoch()
        thread = await store.conversations.thread(h.user_id, h.thread_id)
        await store.conversations.accept(
            user_id=h.user_id, thread=thread, content="q", run_id=run_id, epoch=old
        )
        await store.runs.claim(run_id, now=now_ms())

        def event(seq: int, epoch: str, kind: EventType = EventType.TEXT_DELTA) -> RunEvent:
            data = {"delta": f"<{seq}>"} if kind is EventType.TEXT_DELTA else {"code": "node_lost"}
            return RunEvent(kind, run_id, h.thread_id, seq, "supervisor", "ts", data, epoch=epoch)

        await store.runs.append_events([event(seq, old) for seq in (1, 2, 3)])
        await store.runs.set_epoch(run_id, new)
        await store.runs.finish(run_id, "failed", last_seq=5, started_at=now_ms())
        closing = [event(4, new, EventType.AGENT_ERROR), event(5, new, EventType.AGENT_ERROR)]
        for ending in closing:
            await h.bus.publish(h.user_id, ending)
        assert await h.bus.history(run_id, 0) is None  # the bus cannot serve it whole
        served = await chat_of(h).events(h.user_id, run_id, 0)
        assert [(e.seq, e.epoch) for e in served] == [(seq, new) for seq in range(1, 6)]
        assert served[3:] == closing
        assert await chat_of(h).events(h.user_id, run_id, 2, new) == served[2:]
        # Once they are stored and the bus lets go, the store serves the same events.
        await store.runs.append_events(closing)
        await h.bus.release(run_id)
        assert await chat_of(h).events(h.user_id, run_id, 0) == served


async def measuring_agent(run: RunInput, emit: Emit) -> str:
    """A run whose tools read the question, measure a cost, and fail once."""

    async def pair(name: str, args: dict[str, object], result: object, ok: bool = True) -> None:
        call = {"tool_name": name, "tool_call_id": f"c_{name}"}
        await emit(EventDraft(EventType.TOOL_EXECUTING, "triage", {**call, "tool_args": args}))
        done = {**call, "result": result, "success": ok, "duration_ms": 1}
        await emit(EventDraft(EventType.TOOL_COMPLETED, "triage", done))

    await pair("classify_question", {"question": "How is gpt-4o?"}, {"kind": "subject",
               "subjects": [{"kind": "model", "name": "gpt-4o"}]})  # fmt: skip
    await pair("describe_subject", {}, {"cost_usd": 8.2573, "calls": 1208})
    await pair("cost_breakdown", {}, {"total_cost_usd": 999.99}, ok=False)
    return "## gpt-4o: 1,208 calls costing $8.26"


async def test_any_text_is_scored_against_the_figures_of_the_users_own_run(
    store: Store,
) -> None:
    async with harness_for(measuring_agent)(store) as h:
        run_id = await h.start()
        await asyncio.wait_for(h.executor.wait(run_id), unit(5))
        chat = chat_of(h)  # without a price table: nothing more may be quoted
        good = await chat.validate_content(h.user_id, run_id, "gpt-4o: $8.26 over 1,208 calls.")
        assert (good["passed"], good["score"], good["figures"]) == (True, 1.0, 2)
        # A failed call's result is no figure; the reading says what must be addressed.
        bad = await chat.validate_content(h.user_id, run_id, "You spend $999.99 in all.")
        assert bad["unsupported"] == ["$999.99"]
        assert [r["reason"] for r in bad["reasons"]] == ["unsupported_figure", "subject_missing"]
        with pytest.raises(NotFound):  # another user's run is not found
            await chat.validate_content("usr_other", run_id, "$8.26")
        # No answer was checked on this run (its agent is no supervisor): nothing is counted.
        assert (await chat.quality_metrics(h.user_id))["checked"] == 0
