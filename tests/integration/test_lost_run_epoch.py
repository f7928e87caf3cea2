"""A lost run between its new epoch and its first closing event, on a real store and each bus.

A node that dies mid-run leaves the bus holding what it published under the run's epoch, some
of it never stored. The node that closes the run gives it a new epoch first, then publishes its
closing events, which replace the dead node's numbering on the bus. A client that reads the run
in between must get one numbering: what was stored, served under the new epoch, then the close
(docs/decisions.md, "Session 15: epochrace"). The closing node's bus is held at its first
publish, so the moment in between lasts as long as the test needs, on the memory bus (two nodes
of one process sharing it) and on Redis (two nodes).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence

import pytest

from runwire.bus.base import BatchHandler, EventBus, EventHandler, GapHandler, Subscription
from runwire.bus.memory import MemoryBus
from runwire.chat import ChatService
from runwire.domain.clock import now_ms
from runwire.domain.ids import new_epoch, new_id
from runwire.errors import ReloadReason, ReloadRequired
from runwire.events import EventType, RunEvent
from runwire.protocol.delivery import Delivery
from runwire.run_queue.redis import RedisRunQueue
from runwire.runs.node import Runs
from runwire.store.store import Store
from tests.integration.test_bus_contract import redis_nodes
from tests.integration.test_runs import streaming_agent
from tests.redis_keys import fresh_prefix
from tests.services import redis_url
from tests.timing import unit


class HeldBus(EventBus):
    """A node's bus whose publishing waits for ``go`` once ``hold`` is set: the closing node
    stopped right after it gave the run its new epoch (and, with nothing open, recorded its end),
    before its first closing event leaves."""

    def __init__(self, inner: EventBus) -> None:
        self.inner = inner
        self.reached, self.go = asyncio.Event(), asyncio.Event()

    async def _wait(self) -> None:
        self.reached.set()
        await asyncio.wait_for(self.go.wait(), unit(5))

    async def publish(self, user_id: str, event: RunEvent) -> None:
        await self._wait()
        await self.inner.publish(user_id, event)

    async def publish_batch(self, user_id: str, events: Sequence[RunEvent]) -> None:
        await self._wait()
        await self.inner.publish_batch(user_id, events)

    async def subscribe(
        self,
        user_id: str,
        handler: EventHandler,
        on_gap: GapHandler | None = None,
        on_batch: BatchHandler | None = None,
    ) -> Subscription:
        return await self.inner.subscribe(user_id, handler, on_gap, on_batch)

    async def history(self, run_id: str, after_seq: int) -> list[RunEvent] | None:
        return await self.inner.history(run_id, after_seq)

    async def release(self, run_id: str) -> None:
        await self.inner.release(run_id)

    async def renumber(self, run_id: str, epoch: str) -> None:
        await self.inner.renumber(run_id, epoch)

    def subscriber_count(self, user_id: str | None = None) -> int:
        return self.inner.subscriber_count(user_id)

    @property
    def held_runs(self) -> int:
        return self.inner.held_runs

    @property
    def backlog(self) -> int:
        return self.inner.backlog

    async def ping(self) -> None:
        await self.inner.ping()


@contextlib.asynccontextmanager
async def two_nodes(kind: str) -> AsyncIterator[tuple[EventBus, EventBus]]:
    """The dead node's bus and the closing node's, which share what they hold."""
    if kind == "memory":
        shared = MemoryBus()
        yield shared, shared
        return
    async with redis_nodes(2) as (dead, closing):
        yield dead, closing


@contextlib.asynccontextmanager
async def closing_node(store: Store, bus: EventBus) -> AsyncIterator[Runs]:
    """The node that closes the lost run: its runs on a Redis run queue of its own, whose
    sweeps are left to the test (it reaps when told)."""
    url = redis_url()
    async with (
        fresh_prefix(url) as prefix,
        RedisRunQueue(url, prefix=prefix, lease_s=unit(5), block_s=0.05).running() as queue,
        Runs.running(
            store=store,
            bus=bus,
            queue=queue,
            agent=streaming_agent,
            run_timeout_s=unit(30),
            capacity=0,  # it runs nothing itself (and its consumer waits for no take)
            sweep_interval_s=unit(30),
        ) as runs,
    ):
        yield runs


def wire(events: list[RunEvent]) -> list[tuple[int, str, str]]:
    return [(e.seq, e.epoch, e.type.value) for e in events]


@pytest.mark.parametrize("open_tool", [False, True], ids=["root-open", "tool-open"])
@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_client_reading_a_lost_run_before_its_close_goes_out_sees_one_numbering(
    store: Store, kind: str, open_tool: bool
) -> None:
    async with two_nodes(kind) as (dead, closing_bus):
        held = HeldBus(closing_bus)
        # The closing node starts before the run is lost (its start-up ends what it finds).
        async with closing_node(store, held) as closing:
            user = await store.accounts.create_user(new_id("usr"), f"{new_id('u')}@x.io", "h")
            run_id, old = new_id("run"), new_epoch()
            thread, _ = await store.conversations.accept(
                user_id=user.id, thread=None, content="q", run_id=run_id, epoch=old
            )
            await store.runs.claim(run_id, now=now_ms())

            def event(seq: int, kind: EventType, data: dict[str, object] | None = None) -> RunEvent:
                agent, parent = ("data", "supervisor") if seq > 1 else ("supervisor", None)
                return RunEvent(kind, run_id, thread.id, seq, agent, "ts", data or {}, parent,
                                epoch=old)  # fmt: skip

            # The dead node published 1-5 and stored 1-3 (with a sub-agent's tool open in them,
            # or only the root), then died: its 4 and 5 were sent live and never stored.
            tool = {"tool_name": "t", "tool_call_id": "c1", "tool_args": {}}
            published = [event(1, EventType.AGENT_STARTED)]
            if open_tool:
                published += [
                    event(2, EventType.AGENT_STARTED),
                    event(3, EventType.TOOL_EXECUTING, tool),
                ]
            else:
                published += [event(s, EventType.TEXT_DELTA, {"delta": f"<{s}>"}) for s in (2, 3)]
            published += [event(s, EventType.TEXT_DELTA, {"delta": f"<{s}>"}) for s in (4, 5)]
            if not open_tool:  # the root's own text: no sub-agent open
                published = [dataclasses.replace(e, agent_name="supervisor", parent_agent=None)
                             for e in published]  # fmt: skip
            await store.runs.append_events(published[:3])
            await dead.publish_batch(user.id, published)
            assert len(await dead.history(run_id, 0) or []) == 5  # it reached the shared bus
            chat = ChatService(store, closing, closing_bus)
            # Its node is gone (no lease): the closing node's reaper ends it.
            task = asyncio.create_task(closing.dispatcher.reap(confirm=False))
            await asyncio.wait_for(held.reached.wait(), unit(5))
            # Between the new epoch and the first closing event going out.
            record = await store.runs.get(user.id, run_id)
            assert record is not None and record.epoch != old
            new = record.epoch
            assert record.status_is_final is not open_tool  # the end is recorded before the last
            # The client's own position, under the dead node's numbering, is refused.
            with pytest.raises(ReloadRequired) as caught:
                await chat.replay(user.id, run_id, 5, old)
            assert (caught.value.reason, caught.value.epoch) == (ReloadReason.EPOCH_CHANGED, new)
            # It reloads under the new epoch, on a socket: the replay and the live close merge.
            delivery, sent = Delivery(), list[tuple[int, str, str] | str]()
            ended = asyncio.Event()

            def send(events: list[RunEvent]) -> None:
                for out in events:
                    if delivery.renumbered(out):
                        sent.append(f"reload_required {out.epoch}")
                    sent.extend(wire([out]))
                    if out.is_terminal:
                        ended.set()

            delivery.begin_resume(run_id, 0, new)
            subscription = await closing_bus.subscribe(
                user.id, lambda e: send(delivery.live(e)) if e.run_id == run_id else None
            )
            # The closing events numbered so far are stored as the first goes out (the writer
            # takes them before the bus does): whether the store has them yet or not, the read
            # is of the new numbering (test_resume.py has the store a batch behind).
            await closing.writer.flush()
            replay = await chat.replay(user.id, run_id, 0, new)
            stored = [(e.seq, new, e.type.value) for e in published[:3]]
            assert wire(replay.events[:3]) == stored
            assert {e.epoch for e in replay.events} == {new}
            assert all(e.type is not EventType.TEXT_DELTA for e in replay.events[3:])
            send(delivery.finish_resume(run_id, replay.events))
            held.go.set()
            assert await asyncio.wait_for(task, unit(5)) == 1
            await asyncio.wait_for(ended.wait(), unit(5))
            subscription.close()
            # Afterwards the run reads whole and ended: the stored three, then the close.
            after = await chat.replay(user.id, run_id, 0, new)
            assert after.finished
            assert wire(after.events[:3]) == [(e.seq, new, e.type.value) for e in published[:3]]
            closing_events = after.events[3:]
            assert [e.seq for e in closing_events] == list(range(4, 4 + len(closing_events)))
            assert all(e.type is not EventType.TEXT_DELTA for e in closing_events)
            assert closing_events[-1].data["code"] == "node_lost"
            # The socket sent exactly that: one numbering, no notice, none of the dead 4-5.
            assert sent == wire(after.events)
            assert replay.events == after.events[: len(replay.events)]
            assert replay.finished is (replay.events == after.events)


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_lost_runs_read_under_the_new_epoch_waits_for_its_close_not_the_dead_nodes_events(
    store: Store, kind: str
) -> None:
    # The same moment, built step by step: the dead node published 1-5 and stored 1-3; the
    # closing node has given the run its new epoch and recorded its end (last seq 4), and has
    # neither stored nor published its closing event yet.
    async with two_nodes(kind) as (dead, closing_bus), closing_node(store, closing_bus) as runs:
        chat = ChatService(store, runs, closing_bus)
        user = await store.accounts.create_user(new_id("usr"), f"{new_id('u')}@x.io", "h")
        run_id, old, new = new_id("run"), new_epoch(), new_epoch()
        thread, _ = await store.conversations.accept(
            user_id=user.id, thread=None, content="q", run_id=run_id, epoch=old
        )
        await store.runs.claim(run_id, now=now_ms())

        def event(seq: int, epoch: str, kind: EventType = EventType.TEXT_DELTA) -> RunEvent:
            data = {"delta": f"<{seq}>"} if kind is EventType.TEXT_DELTA else {"code": "node_lost"}
            return RunEvent(kind, run_id, thread.id, seq, "supervisor", "ts", data, epoch=epoch)

        await store.runs.append_events([event(seq, old) for seq in (1, 2, 3)])
        await dead.publish_batch(user.id, [event(seq, old) for seq in range(1, 6)])
        assert len(await dead.history(run_id, 0) or []) == 5
        await store.runs.set_epoch(run_id, new)
        # A v1 client (no epoch) holding the dead node's 5 is refused, not told it has it all:
        # the close will reuse seq 4, which it would drop as one it holds.
        with pytest.raises(ReloadRequired) as caught:
            await chat.replay(user.id, run_id, 5)
        assert caught.value.reason is ReloadReason.POSITION_UNKNOWN
        await store.runs.finish(run_id, "failed", last_seq=4, started_at=now_ms())
        with pytest.raises(ReloadRequired) as caught:
            await chat.replay(user.id, run_id, 5)
        assert caught.value.reason is ReloadReason.POSITION_UNKNOWN
        # Read under the new epoch: the stored three, the run not yet whole (its last event,
        # published just after its end is recorded, comes live), rather than a refusal.
        replay = await chat.replay(user.id, run_id, 0, new)
        assert wire(replay.events) == [(seq, new, "text_delta") for seq in (1, 2, 3)]
        assert not replay.finished
        assert (await chat.replay(user.id, run_id, 3, new)).events == []
        # The close goes out: the bus now holds it alone, and the read reaches the end.
        closing = event(4, new, EventType.AGENT_ERROR)
        await closing_bus.publish(user.id, closing)
        replay = await chat.replay(user.id, run_id, 0, new)
        assert replay.finished and replay.events[3:] == [closing]
        assert {e.epoch for e in replay.events} == {new}
        await closing_bus.release(run_id)


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_lost_node_back_with_old_events_after_the_close_does_not_change_the_runs_history(
    store: Store, kind: str
) -> None:
    # The lost node was cut off, not dead: the events it published while Redis was away go out
    # once it is back, after another node has closed the run and let go of its history. Past
    # the run's fence (an hour; not set here) the bus holds them again for a while, though the
    # numbering they name is gone; the run still reads as stored.
    async with two_nodes(kind) as (dead, closing_bus), closing_node(store, closing_bus) as runs:
        chat = ChatService(store, runs, closing_bus)
        user = await store.accounts.create_user(new_id("usr"), f"{new_id('u')}@x.io", "h")
        run_id, old, new = new_id("run"), new_epoch(), new_epoch()
        thread, _ = await store.conversations.accept(
            user_id=user.id, thread=None, content="q", run_id=run_id, epoch=old
        )
        await store.runs.claim(run_id, now=now_ms())

        def event(seq: int, epoch: str, kind: EventType = EventType.TEXT_DELTA) -> RunEvent:
            data = {"delta": f"<{seq}>"} if kind is EventType.TEXT_DELTA else {"code": "node_lost"}
            return RunEvent(kind, run_id, thread.id, seq, "supervisor", "ts", data, epoch=epoch)

        await store.runs.append_events([event(seq, old) for seq in (1, 2, 3)])
        await store.runs.set_epoch(run_id, new)
        closing = event(4, new, EventType.AGENT_ERROR)
        await store.runs.finish(run_id, "failed", last_seq=4, started_at=now_ms())
        await closing_bus.publish(user.id, closing)
        await store.runs.append_events([closing])
        await closing_bus.release(run_id)
        assert await closing_bus.history(run_id, 0) is None  # the release is done (in Redis)
        await dead.publish_batch(user.id, [event(4, old), event(5, old)])  # late
        assert len(await dead.history(run_id, 3) or []) == 2  # held again
        whole = await chat.replay(user.id, run_id, 0, new)
        assert whole.finished and [e.seq for e in whole.events] == [1, 2, 3, 4]
        assert {e.epoch for e in whole.events} == {new} and whole.events[3] == closing
        rest = await chat.replay(user.id, run_id, 3)  # a client holding 1-3, with no epoch
        assert rest.finished and rest.events == [closing]
        # A client that has the whole run gets nothing more (the late 5 is no event of it).
        for epoch in (new, None):
            held = await chat.replay(user.id, run_id, 4, epoch)
            assert held.finished and held.events == []
        await dead.release(run_id)
