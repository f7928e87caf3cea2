"""The run executor and dispatcher on a real store, the in-process bus and the in-process run
queue: events, endings, stop, timeouts, a thread's runs in order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from runwire.bus.memory import MemoryBus
from runwire.domain.clock import now_ms
from runwire.domain.ids import new_epoch, new_id
from runwire.errors import Conflict, NotFound, ToolFailed
from runwire.events import EventDraft, EventType, RunEvent
from runwire.run_queue.base import Job
from runwire.run_queue.memory import MemoryRunQueue
from runwire.runs.dispatcher import HISTORY_TURNS
from runwire.runs.event_writer import MAX_BACKLOG, EventWriter
from runwire.runs.executor import CancelOutcome, Emit, RunInput
from runwire.runs.node import Runs
from runwire.store.database import Database
from runwire.store.records import Message
from runwire.store.schema import runs
from runwire.store.store import Store
from runwire.store.usage_versions import UsageVersions
from runwire.usage.sample import generate_sample
from tests.databases import empty_tables, row_held
from tests.integration.test_bus_contract import until
from tests.timing import unit

Agent = Callable[[RunInput, Emit], Awaitable[str]]


class Harness:
    def __init__(self, store: Store, bus: MemoryBus, runs: Runs, user_id: str, thread_id: str):
        self.store, self.bus, self.runs = store, bus, runs
        self.executor, self.dispatcher, self.writer = runs.executor, runs.dispatcher, runs.writer
        self.user_id, self.thread_id = user_id, thread_id
        self.seen: list[RunEvent] = []

    async def start(self) -> str:
        run_id, epoch = new_id("run"), new_epoch()
        thread = await self.store.conversations.thread(self.user_id, self.thread_id)
        await self.store.conversations.accept(
            user_id=self.user_id, thread=thread, content="q", run_id=run_id, epoch=epoch
        )
        await self.dispatcher.offer(Job(run_id, self.thread_id, self.user_id))
        return run_id

    def events(self, run_id: str) -> list[RunEvent]:
        return [e for e in self.seen if e.run_id == run_id]


def harness_for(  # type: ignore[no-untyped-def]
    agent: Agent, run_timeout_s: float = 5.0, max_backlog: int = MAX_BACKLOG, capacity: int = 10
):
    @contextlib.asynccontextmanager
    async def make(store: Store) -> AsyncIterator[Harness]:
        bus = MemoryBus()
        user = await store.accounts.create_user(new_id("usr"), f"{new_id('u')}@x.io", "h")
        opening = new_id("run")
        thread, _ = await store.conversations.accept(
            user_id=user.id, thread=None, content="q", run_id=opening, epoch=new_epoch()
        )
        # The thread's opening message has a run of its own: ended, so it holds nothing back.
        await store.runs.claim(opening, now=0)
        await store.runs.finish(opening, "completed", last_seq=0, started_at=0)
        async with running_runs(
            store,
            bus,
            agent,
            run_timeout_s=run_timeout_s,
            max_backlog=max_backlog,
            capacity=capacity,
        ) as runs:
            harness = Harness(store, bus, runs, user.id, thread.id)
            await bus.subscribe(user.id, harness.seen.append)
            yield harness

    return make


def running_runs(
    store: Store,
    bus: MemoryBus,
    agent: Agent,
    *,
    run_timeout_s: float = 5.0,
    max_backlog: int = MAX_BACKLOG,
    capacity: int = 10,
) -> contextlib.AbstractAsyncContextManager[Runs]:
    """One node's runs, as the app builds them, on the in-process run queue."""
    return Runs.running(
        store=store,
        bus=bus,
        queue=MemoryRunQueue(),
        agent=agent,
        run_timeout_s=run_timeout_s,
        capacity=capacity,
        sweep_interval_s=unit(5),
        max_backlog=max_backlog,
    )


async def streaming_agent(run: RunInput, emit: Emit) -> str:
    await emit(EventDraft(EventType.AGENT_THINKING, "supervisor", {"reasoning": "plan"}))
    await emit(EventDraft(EventType.AGENT_STARTED, "data", parent_agent="supervisor"))
    await emit(
        EventDraft(
            EventType.TOOL_EXECUTING,
            "data",
            {"tool_name": "t", "tool_call_id": "c1", "tool_args": {}},
            "supervisor",
        )
    )
    await emit(
        EventDraft(
            EventType.TOOL_COMPLETED,
            "data",
            {
                "tool_name": "t",
                "tool_call_id": "c1",
                "result": 1,
                "success": True,
                "duration_ms": 1,
            },
            "supervisor",
        )
    )
    await emit(EventDraft(EventType.TEXT_DELTA, "data", {"delta": "Hello "}, "supervisor"))
    await emit(EventDraft(EventType.TEXT_DELTA, "data", {"delta": "world"}, "supervisor"))
    await emit(
        EventDraft(EventType.AGENT_COMPLETED, "data", {"final_response": "ok"}, "supervisor")
    )
    return "Hello world"


def hanging_agent(started: asyncio.Event) -> Agent:
    async def agent(run: RunInput, emit: Emit) -> str:
        await emit(EventDraft(EventType.AGENT_STARTED, "optimization", parent_agent="supervisor"))
        await emit(
            EventDraft(EventType.TEXT_DELTA, "optimization", {"delta": "partial"}, "supervisor")
        )
        await emit(
            EventDraft(
                EventType.TOOL_EXECUTING,
                "optimization",
                {"tool_name": "slow", "tool_call_id": "c9", "tool_args": {}},
                "supervisor",
            )
        )
        started.set()
        await asyncio.sleep(3600)
        return "never"

    return agent


def assert_protocol_shape(events: list[RunEvent]) -> None:
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].type is EventType.AGENT_STARTED and events[0].parent_agent is None
    assert events[-1].is_terminal
    assert sum(e.is_terminal for e in events) == 1
    open_agents, open_tools = [], set()
    for e in events:
        if e.parent_agent is None:
            continue
        if e.type is EventType.AGENT_STARTED:
            open_agents.append(e.agent_name)
        elif e.type in (EventType.AGENT_COMPLETED, EventType.AGENT_ERROR):
            open_agents.remove(e.agent_name)
        elif e.type is EventType.TOOL_EXECUTING:
            open_tools.add(e.data["tool_call_id"])
        elif e.type is EventType.TOOL_COMPLETED:
            open_tools.remove(e.data["tool_call_id"])
    assert not open_agents and not open_tools


async def test_a_run_streams_numbered_events_and_stores_everything(store: Store) -> None:
    async with harness_for(streaming_agent)(store) as h:
        run_id = await h.start()
        await asyncio.wait_for(h.executor.wait(run_id), unit(5))
        events = h.events(run_id)
        assert_protocol_shape(events)
        final = events[-1]
        assert (
            final.type is EventType.AGENT_COMPLETED
            and final.data["final_response"] == "Hello world"
        )
        stored = await store.runs.events_after(run_id, 0)
        assert stored == events
        assert await store.runs.events_after(run_id, 5) == events[5:]
        record = await store.runs.get(h.user_id, run_id)
        assert (
            record is not None and record.status == "completed" and record.last_seq == len(events)
        )
        messages = await store.conversations.messages_of(h.thread_id)
        assert messages[-1].id == final.data["message_id"] and messages[-1].content == "Hello world"
        assert await h.bus.history(run_id, 0) is None  # released once stored
        assert h.executor.active_count == 0


async def test_runs_started_at_once_each_send_their_first_event_before_any_agent_works(
    store: Store,
) -> None:
    # A burst of messages starts many runs at once. Each run's first event (agent_started)
    # must not wait for the first steps of the agents of the runs started before it (reading a
    # new user's data, the first tools): every first event is out before any agent begins.
    seen: list[tuple[str, str]] = []

    async def agent(run: RunInput, emit: Emit) -> str:
        seen.append(("agent works", run.run_id))
        return "ok"

    async with harness_for(agent)(store) as h:
        admitted: list[tuple[RunInput, int]] = []
        for _ in range(4):  # four users, a new thread each: nothing holds their runs back
            user = await store.accounts.create_user(new_id("usr"), f"{new_id('u')}@x.io", "h")
            await h.bus.subscribe(
                user.id, lambda e: seen.append((e.type.value, e.run_id)) if e.seq == 1 else None
            )
            run_id, epoch = new_id("run"), new_epoch()
            assert await h.dispatcher.admit(run_id)
            started_at = now_ms()
            accepted = await store.conversations.accept_run(
                user_id=user.id,
                thread=None,
                content="q",
                run_id=run_id,
                epoch=epoch,
                claim_at=started_at,
            )
            assert accepted.claimed
            run = RunInput(run_id, accepted.thread.id, user.id, "q", epoch=epoch)
            admitted.append((run, started_at))
        for run, started_at in admitted:  # as the accepts of a burst start them: together
            h.dispatcher.start_admitted(run, started_at)
        for run, _ in admitted:
            await asyncio.wait_for(h.executor.wait(run.run_id), unit(5))
    runs = {run.run_id for run, _ in admitted}
    assert [kind for kind, _ in seen[:4]] == ["agent_started"] * 4, seen
    assert {run_id for _, run_id in seen[:4]} == runs
    assert sorted(seen[4:]) == sorted(("agent works", run_id) for run_id in runs)


@contextlib.asynccontextmanager
async def counted_store(backend: str, url: str) -> AsyncIterator[tuple[Store, list[float]]]:
    """A store (as the ``store`` fixture's) that lists each write transaction it makes."""
    writes: list[float] = []
    async with Store.open(url, migrate=backend == "sqlite", on_write=writes.append) as store:
        if backend == "postgresql":
            await empty_tables(store.db)
        yield store, writes


def recording_agent(given: list[RunInput], started: asyncio.Event) -> Agent:
    """Keeps what each run was given, then hangs (as :func:`hanging_agent`)."""
    hang = hanging_agent(started)

    async def agent(run: RunInput, emit: Emit) -> str:
        given.append(run)
        return await hang(run, emit)

    return agent


async def test_a_message_accepted_with_room_starts_here_at_once_for_one_write(
    backend: str, store_url: str
) -> None:
    given: list[RunInput] = []
    started = asyncio.Event()
    async with (
        counted_store(backend, store_url) as (store, writes),
        harness_for(recording_agent(given, started))(store) as h,
    ):
        thread = await store.conversations.thread(h.user_id, h.thread_id)
        await store.usage.add(h.user_id, list(generate_sample())[:10])
        version = await store.db.read(partial(UsageVersions(store.db).current, user_id=h.user_id))
        before = len(writes)
        accepted = await h.runs.accept(h.user_id, thread, "and now?")
        # The message and its run, stored already claimed: one transaction, no claim after it.
        assert len(writes) - before == 1
        assert h.executor.has(accepted.run_id)
        record = await store.runs.get(h.user_id, accepted.run_id)
        assert record is not None and record.status == "running"
        assert (accepted.thread.id, accepted.message.content) == (h.thread_id, "and now?")
        assert accepted.message.run_id == accepted.run_id
        await asyncio.wait_for(started.wait(), unit(5))
        # The agent is given the question and the thread's conversation before it, and the
        # user's usage version as that one write read it (its data's first read needs none).
        (run,) = given
        assert (run.run_id, run.question, run.history) == (
            accepted.run_id,
            "and now?",
            [("user", "q")],
        )
        assert run.usage_version == version > 0
        assert h.runs.live_status(accepted.run_id) == ("running", record.started_at)
        assert await h.runs.stop(h.user_id, accepted.run_id) is True
        await asyncio.wait_for(h.executor.wait(accepted.run_id), unit(5))
    assert [e.type for e in h.events(accepted.run_id)][-1] == EventType.AGENT_STOPPED


async def test_a_run_started_at_once_on_a_long_thread_is_given_its_last_turns_in_order(
    store: Store,
) -> None:
    given: list[RunInput] = []
    started = asyncio.Event()
    async with harness_for(recording_agent(given, started))(store) as h:
        thread = await store.conversations.thread(h.user_id, h.thread_id)
        assert thread is not None
        for turn in range(12):  # 24 more messages after the harness's "q": 25 in all
            run_id = new_id("run")
            await store.conversations.accept(
                user_id=h.user_id,
                thread=thread,
                content=f"question {turn}",
                run_id=run_id,
                epoch=new_epoch(),
            )
            assert await store.runs.claim(run_id, now=now_ms()) is not None
            reply = Message(
                id=new_id("msg"),
                thread_id=thread.id,
                user_id=h.user_id,
                role="assistant",
                content=f"answer {turn}",
                created_at=now_ms(),
                run_id=run_id,
            )
            await store.runs.finish(run_id, "completed", last_seq=1, started_at=None, reply=reply)
        everything = [(m.role, m.content) for m in await store.conversations.messages_of(thread.id)]
        assert len(everything) == 25
        accepted = await h.runs.accept(h.user_id, thread, "and now?")
        await asyncio.wait_for(started.wait(), unit(5))
        (run,) = given
        assert run.run_id == accepted.run_id
        assert run.history == everything[-HISTORY_TURNS:]
        assert run.history[-1] == ("assistant", "answer 11")
        assert await h.runs.stop(h.user_id, accepted.run_id) is True
        await asyncio.wait_for(h.executor.wait(accepted.run_id), unit(5))


async def test_a_queued_run_is_given_the_usage_version_as_it_starts_with_no_read_of_its_own(
    backend: str, store_url: str
) -> None:
    given: list[RunInput] = []
    started = asyncio.Event()
    async with (
        counted_store(backend, store_url) as (store, _),
        harness_for(recording_agent(given, started))(store) as h,
    ):
        thread = await store.conversations.thread(h.user_id, h.thread_id)
        first = await h.runs.accept(h.user_id, thread, "first")
        await asyncio.wait_for(started.wait(), unit(5))
        started.clear()
        second = await h.runs.accept(h.user_id, thread, "second")
        assert not h.executor.has(second.run_id)  # queued behind the first
        # Data added while it waits: the version it starts with is the one after it.
        await store.usage.add(h.user_id, list(generate_sample())[:10])
        version = await store.db.read(partial(UsageVersions(store.db).current, user_id=h.user_id))
        assert await h.runs.stop(h.user_id, first.run_id) is True
        await asyncio.wait_for(started.wait(), unit(5))
        assert [run.run_id for run in given] == [first.run_id, second.run_id]
        assert given[1].usage_version == version > 0
        assert given[1].history[-1] == ("user", "first")
        assert await h.runs.stop(h.user_id, second.run_id) is True
        await asyncio.wait_for(h.executor.wait(second.run_id), unit(5))


async def test_a_message_on_a_busy_thread_waits_its_turn_and_an_interrupt_stops_the_turn_ahead(
    store: Store,
) -> None:
    started = asyncio.Event()
    async with harness_for(hanging_agent(started))(store) as h:
        thread = await store.conversations.thread(h.user_id, h.thread_id)
        first = await h.runs.accept(h.user_id, thread, "first")
        await asyncio.wait_for(started.wait(), unit(5))
        started.clear()
        second = await h.runs.accept(h.user_id, thread, "second")
        record = await store.runs.get(h.user_id, second.run_id)
        assert record is not None and record.status == "queued"  # behind the first
        assert not h.executor.has(second.run_id)
        # An interrupt stops the runs ahead of it; each in turn, then it runs.
        third = await h.runs.accept(h.user_id, thread, "third", interrupt=True)
        await asyncio.wait_for(started.wait(), unit(5))
        assert h.executor.has(third.run_id)
        for stopped in (first, second):
            ended = await store.runs.get(h.user_id, stopped.run_id)
            assert ended is not None and ended.status == "cancelled"
        await h.runs.stop(h.user_id, third.run_id)
        await asyncio.wait_for(h.executor.wait(third.run_id), unit(5))
    roots = [e for e in h.seen if e.parent_agent is None]
    assert [(e.run_id, e.type) for e in roots if e.type != EventType.AGENT_STARTED] == [
        (first.run_id, EventType.AGENT_STOPPED),
        (second.run_id, EventType.AGENT_STOPPED),
        (third.run_id, EventType.AGENT_STOPPED),
    ]


async def test_a_refused_message_stores_nothing_and_gives_its_place_back(store: Store) -> None:
    started = asyncio.Event()

    def refuse(mine: list[tuple[str, str]]) -> None:
        raise Conflict("no", code="too_many_runs")

    async with harness_for(hanging_agent(started), capacity=1)(store) as h:
        thread = await store.conversations.thread(h.user_id, h.thread_id)
        for _ in range(2):  # a place not given back would leave none for what follows
            with pytest.raises(Conflict):
                await h.runs.accept(h.user_id, thread, "refused", check=refuse)
        assert [m.content for m in await store.conversations.messages_of(h.thread_id)] == ["q"]
        accepted = await h.runs.accept(h.user_id, thread, "taken")
        assert h.executor.has(accepted.run_id)  # this node's one place was free
        await asyncio.wait_for(started.wait(), unit(5))


async def test_stop_mid_tool_closes_everything_and_keeps_the_partial_answer(store: Store) -> None:
    started = asyncio.Event()
    async with harness_for(hanging_agent(started))(store) as h:
        run_id = await h.start()
        await asyncio.wait_for(started.wait(), unit(5))
        assert await h.dispatcher.stop(h.user_id, run_id) is True
        assert h.executor.cancel(run_id) is CancelOutcome.STOPPING  # already stopping: a no-op
        await asyncio.wait_for(h.executor.wait(run_id), unit(1))
        events = h.events(run_id)
        assert_protocol_shape(events)
        assert events[-1].type is EventType.AGENT_STOPPED
        closing_tool = next(e for e in events if e.type is EventType.TOOL_COMPLETED)
        assert closing_tool.data["success"] is False
        record = await store.runs.get(h.user_id, run_id)
        assert record is not None and record.status == "cancelled"
        reply = (await store.conversations.messages_of(h.thread_id))[-1]
        assert reply.partial and reply.content == "partial"
        assert events[-1].data["partial_message_id"] == reply.id
        assert await h.dispatcher.stop(h.user_id, run_id) is False  # already over
        with pytest.raises(NotFound):
            await h.dispatcher.stop("usr_other", run_id)


async def test_a_run_stopped_before_its_first_step_still_closes_and_frees_its_thread(
    store: Store,
) -> None:
    # An interrupt can stop a queued run just as the end of the run before it starts it: the
    # stop lands before the run's task has taken a step. It must still close as stopped, or
    # the thread's next run waits for ever.
    async with harness_for(streaming_agent)(store) as h:
        run_id = await h.start()
        assert (
            h.executor.cancel(run_id) is CancelOutcome.STOPPING
        )  # no await since it started: not begun yet
        await asyncio.wait_for(h.executor.wait(run_id), unit(1))
        events = h.events(run_id)
        assert_protocol_shape(events)
        assert [e.type for e in events] == [EventType.AGENT_STARTED, EventType.AGENT_STOPPED]
        record = await store.runs.get(h.user_id, run_id)
        assert record is not None and record.status == "cancelled"
        following = await h.start()
        await asyncio.wait_for(h.executor.wait(following), unit(5))
        assert h.events(following)[-1].type is EventType.AGENT_COMPLETED


def answering_agent(answered: asyncio.Event, go: asyncio.Event) -> Agent:
    async def agent(run: RunInput, emit: Emit) -> str:
        answered.set()
        await go.wait()
        return "All done."

    return agent


async def test_a_stop_landing_while_a_run_records_its_end_is_told_the_run_has_ended(
    store: Store, store_url: str
) -> None:
    # A run that has its answer records its end, then sends agent_completed. A stop that lands
    # in between can no longer stop it, and must be told so (False: the client is sent
    # run_finished), not taken for a stop under way, which no agent_stopped would ever follow.
    # The recording waits here behind another transaction that holds the run's row, as it
    # would behind another node's, so the stop lands in that window every time.
    answered, go = asyncio.Event(), asyncio.Event()
    async with harness_for(answering_agent(answered, go))(store) as h:
        run_id = await h.start()
        await asyncio.wait_for(answered.wait(), unit(5))
        async with row_held(store_url, runs, run_id):
            go.set()
            await until(lambda: (h.executor.live_status(run_id) or ("",))[0] == "completed")
            assert h.executor.cancel(run_id) is CancelOutcome.ENDING
            assert await h.dispatcher.stop(h.user_id, run_id) is False
            assert not any(e.is_terminal for e in h.events(run_id))  # its last event to come
        await asyncio.wait_for(h.executor.wait(run_id), unit(5))
        events = h.events(run_id)
        assert_protocol_shape(events)
        assert events[-1].type is EventType.AGENT_COMPLETED
        assert events[-1].data["final_response"] == "All done."
        record = await store.runs.get(h.user_id, run_id)
        assert record is not None and record.status == "completed"
        assert await h.dispatcher.stop(h.user_id, run_id) is False


async def test_run_timeout_ends_with_agent_error_timeout(store: Store) -> None:
    started = asyncio.Event()
    async with harness_for(hanging_agent(started), run_timeout_s=unit(0.2))(store) as h:
        run_id = await h.start()
        await asyncio.wait_for(h.executor.wait(run_id), unit(5))
        events = h.events(run_id)
        assert_protocol_shape(events)
        assert events[-1].type is EventType.AGENT_ERROR and events[-1].data["code"] == "timeout"
        record = await store.runs.get(h.user_id, run_id)
        assert record is not None and record.status == "failed" and record.error_code == "timeout"


async def failing_agent(run: RunInput, emit: Emit) -> str:
    raise ToolFailed("the cost tool could not read the data")


async def crashing_agent(run: RunInput, emit: Emit) -> str:
    raise ValueError("secret internals: password=hunter2")


async def test_failures_become_readable_agent_errors(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    async with harness_for(failing_agent)(store) as h:
        run_id = await h.start()
        await asyncio.wait_for(h.executor.wait(run_id), unit(5))
        last = h.events(run_id)[-1]
        assert last.type is EventType.AGENT_ERROR and last.data["code"] == "tool_failed"
    async with harness_for(crashing_agent)(store) as h:
        run_id = await h.start()
        await asyncio.wait_for(h.executor.wait(run_id), unit(5))
        last = h.events(run_id)[-1]
        assert last.data["code"] == "internal"
        assert "hunter2" not in last.json


async def test_runs_on_one_thread_run_one_after_another(store: Store) -> None:
    started = asyncio.Event()
    async with harness_for(hanging_agent(started))(store) as h:
        first = await h.start()
        second = await h.start()
        await asyncio.wait_for(started.wait(), unit(5))
        assert h.events(second) == []  # queued behind the first
        assert await store.runs.unfinished_on_thread(h.thread_id) == [first, second]
        await h.dispatcher.stop(h.user_id, second)  # stopped while queued: still opens and closes
        await asyncio.wait_for(h.executor.wait(second), unit(1))
        assert [e.type for e in h.events(second)] == [
            EventType.AGENT_STARTED,
            EventType.AGENT_STOPPED,
        ]
        third = await h.start()  # must still wait for the first, not for the stopped second
        await asyncio.sleep(0.05)
        assert h.events(third) == []
        assert await store.runs.unfinished_on_thread(h.thread_id) == [first, third]
        started.clear()
        await h.dispatcher.stop(h.user_id, first)
        await asyncio.wait_for(h.executor.wait(first), unit(1))
        await asyncio.wait_for(started.wait(), unit(1))  # now the third starts
        await h.dispatcher.stop(h.user_id, third)
        await asyncio.wait_for(h.executor.wait(third), unit(1))
        assert h.events(third)[-1].type is EventType.AGENT_STOPPED
        assert h.executor.active_count == 0
        assert await store.runs.unfinished_on_thread(h.thread_id) == []


async def test_shutdown_stops_active_runs_cleanly(store: Store) -> None:
    started = asyncio.Event()
    run_id = ""
    async with harness_for(hanging_agent(started))(store) as h:
        run_id = await h.start()
        await asyncio.wait_for(started.wait(), unit(5))
        user_id = h.user_id
    record = await store.runs.get(user_id, run_id)
    assert record is not None and record.status == "cancelled"
    events = await store.runs.events_after(run_id, 0)
    assert events[-1].type is EventType.AGENT_STOPPED and events[-1].data["code"] == "shutdown"


async def test_an_accepted_run_that_was_never_offered_is_started_by_a_sweep(store: Store) -> None:
    # The node that accepted it died before offering it: it is queued in the store, and that
    # is enough for any node's sweep to run it.
    async with harness_for(streaming_agent)(store) as h:
        run_id, epoch = new_id("run"), new_epoch()
        thread = await store.conversations.thread(h.user_id, h.thread_id)
        await store.conversations.accept(
            user_id=h.user_id, thread=thread, content="q", run_id=run_id, epoch=epoch
        )
        assert await h.dispatcher.sweep(created_before=now_ms() - 60_000) == 0  # too new
        assert await h.dispatcher.sweep(created_before=now_ms() + 1) == 1
        await asyncio.wait_for(h.executor.wait(run_id), unit(5))
        assert_protocol_shape(h.events(run_id))
        record = await store.runs.get(h.user_id, run_id)
        assert record is not None and record.status == "completed"
        assert await h.dispatcher.sweep(created_before=now_ms() + 1) == 0  # nothing left


@contextlib.asynccontextmanager
async def events_table_locked(url: str) -> AsyncIterator[None]:
    """Stop every write of run events until the block ends, from a session of its own, as a
    slow or busy database would: on SQLite the write lock of the whole file (``BEGIN
    IMMEDIATE``), on PostgreSQL ``LOCK TABLE run_events`` (reads go on)."""
    if Database.sqlite_file(url) is not None:
        async with row_held(url, runs, ""):
            yield
        return
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("LOCK TABLE run_events IN EXCLUSIVE MODE"))
            try:
                yield
            finally:
                await conn.rollback()
    finally:
        await engine.dispose()


async def test_a_slow_store_holds_runs_at_its_backlog_bound_and_loses_nothing(
    store: Store, store_url: str
) -> None:
    bound, count, deltas = 40, 8, 30  # eight runs could queue 240 events
    go = asyncio.Event()
    peak = 0
    writer: EventWriter | None = None

    async def chatty_agent(run: RunInput, emit: Emit) -> str:
        nonlocal peak
        await go.wait()
        for i in range(deltas):
            await emit(EventDraft(EventType.TEXT_DELTA, "supervisor", {"delta": f"{i} "}))
            assert writer is not None
            peak = max(peak, writer.backlog)  # each event is counted when it is queued
        return "done"

    async with harness_for(chatty_agent, max_backlog=bound)(store) as h:
        writer = h.writer
        started: list[str] = []
        for _ in range(count):  # a thread each, so they run at once
            run_id = new_id("run")
            thread, _ = await store.conversations.accept(
                user_id=h.user_id, thread=None, content="q", run_id=run_id, epoch=new_epoch()
            )
            await h.dispatcher.offer(Job(run_id, thread.id, h.user_id))
            started.append(run_id)
        await until(lambda: len(h.seen) == count)  # each has its agent_started...
        await h.writer.flush()  # ...stored before the store slows down
        async with events_table_locked(store_url):
            go.set()
            await until(lambda: h.writer.backlog >= bound)
            await asyncio.sleep(unit(0.05))  # the runs had time to run past it, and did not
            assert h.writer.backlog == bound and peak == bound
            assert h.executor.active_count == count  # held, each still in its place
            # A stop reaches a run that waits for the store, as it reaches one in a tool.
            streaming = [r for r in started if (h.executor.live_status(r) or ("",))[0] == "running"]
            stopped = streaming[0]
            assert await h.dispatcher.stop(h.user_id, stopped) is True
        for run_id in started:
            await asyncio.wait_for(h.executor.wait(run_id), unit(5))
        assert peak == bound
        stored = await store.runs.events_after(stopped, 0)
        assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
        assert stored[-1].type is EventType.AGENT_STOPPED and len(stored) < deltas + 2
        for run_id in (r for r in started if r != stopped):
            stored = await store.runs.events_after(run_id, 0)
            assert [e.seq for e in stored] == list(range(1, deltas + 3))
            assert stored[-1].type is EventType.AGENT_COMPLETED
            assert "".join(str(e.data.get("delta", "")) for e in stored) == "".join(
                f"{i} " for i in range(deltas)
            )


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite's one lock holds every write back
async def test_a_lost_run_that_waits_does_not_hold_back_the_ending_of_the_others(
    store: Store, store_url: str
) -> None:
    async with harness_for(streaming_agent)(store) as h:
        lost = []
        for _ in range(2):  # running, on no node (a previous process left them)
            run_id = new_id("run")
            await store.conversations.accept(
                user_id=h.user_id, thread=None, content="q", run_id=run_id, epoch=new_epoch()
            )
            assert await store.runs.claim(run_id, now=now_ms()) is not None
            lost.append(run_id)
        held, other = sorted(lost)  # the order a reap takes them in
        # Another node's transaction holds the first one's row: ending it waits for that.
        async with row_held(store_url, runs, held):
            reaping = asyncio.create_task(h.dispatcher.reap(confirm=False))
            await until(lambda: any(e.is_terminal for e in h.events(other)), unit(5))
            assert not reaping.done() and not any(e.is_terminal for e in h.events(held))
        assert await asyncio.wait_for(reaping, unit(5)) == 2
        for run_id in lost:
            record = await store.runs.get(h.user_id, run_id)
            assert record is not None and record.error_code == "interrupted"
