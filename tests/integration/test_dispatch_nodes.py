"""Two nodes in one process, each its own runs (``Runs.running``: writer, executor and
dispatcher) on its own RedisRunQueue, sharing one store and one bus: a stop reaches the node
running the run, and is told when that run had already decided its end; a node that loses a
run's lease stops it without another event, and once that lease has expired the run is ended
with ``node_lost``, once; a run its node stopped trusting the lease of while Redis restarted is
ended the same way, not held for ever by that node's heartbeat; and one its node stopped
trusting while the lease was still its own (a paused node) goes on to its normal end.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis

from runwire.bus.memory import MemoryBus
from runwire.domain.clock import now_ms
from runwire.domain.ids import new_epoch, new_id
from runwire.errors import DependencyUnavailable
from runwire.events import EventType, RunEvent
from runwire.run_queue.base import Job
from runwire.run_queue.redis import RedisRunQueue
from runwire.runs.dispatcher import Dispatcher
from runwire.runs.executor import AgentFn, RunExecutor
from runwire.runs.node import Runs
from runwire.store.schema import runs
from runwire.store.store import Store
from tests.databases import row_held
from tests.integration.test_bus_contract import until
from tests.integration.test_runs import answering_agent, hanging_agent
from tests.redis_keys import fresh_prefix
from tests.services import RedisServer, redis_url
from tests.timing import unit

LEASE_S = unit(0.5)


@dataclass
class Node:
    queue: RedisRunQueue
    executor: RunExecutor
    dispatcher: Dispatcher


@dataclass
class Cluster:
    store: Store
    nodes: list[Node]
    redis: Redis
    prefix: str
    user_id: str
    thread_id: str
    seen: list[RunEvent]
    started: asyncio.Event

    async def accept(self) -> str:
        run_id = new_id("run")
        thread = await self.store.conversations.thread(self.user_id, self.thread_id)
        await self.store.conversations.accept(
            user_id=self.user_id, thread=thread, content="q", run_id=run_id, epoch=new_epoch()
        )
        return run_id

    def roots(self, run_id: str) -> list[RunEvent]:
        return [e for e in self.seen if e.run_id == run_id and e.parent_agent is None]


@contextlib.asynccontextmanager
async def cluster(
    store: Store,
    agent: AgentFn | None = None,
    *,
    stop_wait_s: float = 5.0,
    sweep_interval_s: float = LEASE_S / 2,
    url: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[Cluster]:
    """Two nodes whose runs are ``agent``'s (by default one that hangs once started), on the
    shared test Redis unless ``url``; ``clock`` is their run queues' (how they time leases)."""
    url = url or redis_url()
    bus, started = MemoryBus(), asyncio.Event()
    user = await store.accounts.create_user(new_id("usr"), f"{new_id('u')}@x.io", "h")
    opening = new_id("run")
    thread, _ = await store.conversations.accept(
        user_id=user.id, thread=None, content="q", run_id=opening, epoch=new_epoch()
    )
    await store.runs.claim(opening, now=0)
    await store.runs.finish(opening, "completed", last_seq=0, started_at=0)
    redis = Redis.from_url(url)
    try:
        async with fresh_prefix(url) as prefix, contextlib.AsyncExitStack() as stack:
            nodes = []
            for _ in range(2):
                queue = await stack.enter_async_context(
                    RedisRunQueue(
                        url, prefix=prefix, lease_s=LEASE_S, block_s=0.05, clock=clock
                    ).running()
                )
                runs = await stack.enter_async_context(
                    Runs.running(
                        store=store,
                        bus=bus,
                        queue=queue,
                        agent=agent or hanging_agent(started),
                        run_timeout_s=unit(30),
                        capacity=4,
                        sweep_interval_s=sweep_interval_s,
                        stop_wait_s=stop_wait_s,
                    )
                )
                nodes.append(Node(queue, runs.executor, runs.dispatcher))
            seen: list[RunEvent] = []
            await bus.subscribe(user.id, seen.append)
            yield Cluster(store, nodes, redis, prefix, user.id, thread.id, seen, started)
    finally:
        await redis.aclose()


async def test_a_stop_sent_to_one_node_stops_the_run_on_the_other(store: Store) -> None:
    async with cluster(store) as c:
        first, second = c.nodes
        run_id = await c.accept()
        await first.dispatcher.offer(Job(run_id, c.thread_id, c.user_id))
        await asyncio.wait_for(c.started.wait(), unit(5))
        assert first.executor.has(run_id) and not second.executor.has(run_id)
        assert await second.dispatcher.stop(c.user_id, run_id) is True
        await until(lambda: any(e.is_terminal for e in c.roots(run_id)), unit(5))
        last = c.roots(run_id)[-1]
        assert last.type is EventType.AGENT_STOPPED and last.data["code"] == "stopped"
        record = await store.runs.get(c.user_id, run_id)
        assert record is not None and record.status == "cancelled"


async def test_a_stop_sent_to_one_node_as_the_other_records_the_runs_end_is_told_it_ended(
    store: Store, store_url: str
) -> None:
    # The node running the run has its answer and is recording the run's end (behind another
    # transaction holding the run's row) when the other node is asked to stop it: the answer
    # must be that the run has ended (run_finished), not a stop no agent_stopped will follow.
    answered, go = asyncio.Event(), asyncio.Event()
    async with cluster(store, answering_agent(answered, go)) as c:
        first, second = c.nodes
        run_id = await c.accept()
        await first.dispatcher.offer(Job(run_id, c.thread_id, c.user_id))
        await asyncio.wait_for(answered.wait(), unit(5))
        requests = c.redis.pubsub()
        await requests.subscribe(f"{c.prefix}stop")
        assert await requests.get_message(timeout=unit(5))  # subscribed
        try:
            async with row_held(store_url, runs, run_id):
                go.set()
                await until(lambda: (first.executor.live_status(run_id) or ("",))[0] == "completed")
                stopping = asyncio.create_task(second.dispatcher.stop(c.user_id, run_id))
                # The request went out while the run's end was still being recorded.
                request = await requests.get_message(True, timeout=unit(5))
                assert request is not None and request["data"] == f"{run_id} stopped".encode()
            assert await asyncio.wait_for(stopping, unit(10)) is False
        finally:
            await requests.aclose()
        await until(lambda: any(e.is_terminal for e in c.roots(run_id)), unit(5))
        assert [e.type for e in c.roots(run_id)][-1] is EventType.AGENT_COMPLETED
        record = await store.runs.get(c.user_id, run_id)
        assert record is not None and record.status == "completed"


async def test_a_stop_of_a_run_on_a_hung_node_says_so_and_one_on_a_dead_node_is_moot(
    store: Store,
) -> None:
    # The run is claimed and its lease held by a node that answers no stop request (hung): the
    # stop asks again meanwhile, then answers `unavailable` rather than nothing. Once that
    # lease is gone (the node died), nothing runs the run: the stop has nothing to wait for
    # (the reaper, slowed down here, ends the run with node_lost).
    async with cluster(store, stop_wait_s=unit(1.2), sweep_interval_s=unit(60)) as c:
        asking = c.nodes[1]
        run_id = await c.accept()
        assert await store.runs.claim(run_id, now=now_ms()) is not None
        lease = f"{c.prefix}lease:{run_id}"
        await c.redis.set(lease, "hung-node", px=int(unit(60) * 1000))
        requests = c.redis.pubsub()
        await requests.subscribe(f"{c.prefix}stop")
        assert await requests.get_message(timeout=unit(5))  # subscribed
        try:
            with pytest.raises(DependencyUnavailable):
                await asking.dispatcher.stop(c.user_id, run_id)
            sent = 0
            while await requests.get_message(True, timeout=0.01) is not None:
                sent += 1
            assert sent >= 2  # asked, and asked again
        finally:
            await requests.aclose()
        await c.redis.delete(lease)
        assert await asking.dispatcher.stop(c.user_id, run_id) is True
        record = await store.runs.get(c.user_id, run_id)
        assert record is not None and record.status == "running"  # for the reaper to end


async def test_a_run_its_node_stopped_trusting_during_a_redis_restart_is_not_held_for_ever(
    store: Store, tmp_path: Path
) -> None:
    # Redis goes away while the node is paused (a loaded machine) for most of the lease: when
    # the run next acts, the node no longer trusts its lease, cannot confirm it, and abandons
    # the run; Redis comes back empty. The lease must go with the run: were the heartbeat to
    # put it back, as it does for the runs it still executes, no node would ever end the run,
    # and its watchers would wait in silence.
    redis = RedisServer(tmp_path)
    redis.start()
    skew = [0.0]  # how far the nodes' lease clock is ahead: the pause they did not see go by
    answered, go = asyncio.Event(), asyncio.Event()
    try:
        async with cluster(
            store,
            answering_agent(answered, go),
            url=redis.url,
            clock=lambda: time.monotonic() + skew[0],
        ) as c:
            first = c.nodes[0]
            run_id = await c.accept()
            await first.dispatcher.offer(Job(run_id, c.thread_id, c.user_id))
            await asyncio.wait_for(answered.wait(), unit(5))
            epoch = c.seen[0].epoch
            redis.kill()
            # In one step, so that no renewal comes between: the pause, then the run's answer.
            skew[0] += LEASE_S
            go.set()
            await until(lambda: not first.executor.has(run_id), unit(5))
            redis.start()
            # Nobody runs it any more: a node finds its lease gone and ends it, under a new
            # epoch (its watchers are told to reload), rather than it staying "running".
            await until(lambda: any(e.is_terminal for e in c.roots(run_id)), unit(10))
            last = c.roots(run_id)[-1]
            assert last.type is EventType.AGENT_ERROR and last.data["code"] == "node_lost"
            assert last.epoch != epoch
            record = await store.runs.get(c.user_id, run_id)
            assert record is not None and record.status == "failed"
    finally:
        redis.kill()


async def test_a_node_that_loses_a_lease_goes_quiet_and_the_run_ends_with_node_lost_once(
    store: Store,
) -> None:
    async with cluster(store) as c:
        first = c.nodes[0]
        run_id = await c.accept()
        await first.dispatcher.offer(Job(run_id, c.thread_id, c.user_id))
        await asyncio.wait_for(c.started.wait(), unit(5))
        before = len([e for e in c.seen if e.run_id == run_id])
        epoch = c.seen[0].epoch
        # Another holder takes the lease (as a node would after a long pause of this one), for
        # a short while only, as if it then died too.
        await c.redis.set(f"{c.prefix}lease:{run_id}", "elsewhere", px=int(LEASE_S * 1000))
        await until(lambda: not first.executor.has(run_id), unit(5))
        assert len([e for e in c.seen if e.run_id == run_id]) == before  # it went quiet
        # A node finds the run without a live lease and ends it, under a new epoch.
        await until(lambda: any(e.is_terminal for e in c.roots(run_id)), unit(10))
        events = [e for e in c.seen if e.run_id == run_id]
        last = events[-1]
        assert last.type is EventType.AGENT_ERROR and last.data["code"] == "node_lost"
        assert last.epoch != epoch
        assert sum(e.is_terminal for e in events) == 1
        record = await store.runs.get(c.user_id, run_id)
        assert record is not None and record.status == "failed"
        assert record.error_code == "node_lost" and record.epoch == last.epoch
        stored = await store.runs.events_after(run_id, 0)
        assert stored[-1].data["code"] == "node_lost"
        assert [e.seq for e in stored] == list(range(1, len(stored) + 1))


async def test_a_run_its_paused_node_still_holds_the_lease_of_goes_on_to_its_end(
    store: Store,
) -> None:
    # The node is paused (a loaded machine) for most of the lease, so it no longer trusts its
    # hold on the run; but no other node has taken the lease (it has not expired). The run asks
    # Redis and goes on: a loaded node must not drop every run it holds (R1 saw all of both
    # nodes' runs stop at once, under load, for minutes: docs/benchmarks.md).
    skew = [0.0]
    answered, go = asyncio.Event(), asyncio.Event()
    async with cluster(
        store, answering_agent(answered, go), clock=lambda: time.monotonic() + skew[0]
    ) as c:
        first = c.nodes[0]
        run_id = await c.accept()
        await first.dispatcher.offer(Job(run_id, c.thread_id, c.user_id))
        await asyncio.wait_for(answered.wait(), unit(5))
        epoch = c.seen[0].epoch
        # In one step, so that no renewal comes between: the pause, then the run's answer.
        skew[0] += LEASE_S
        go.set()
        await asyncio.wait_for(first.executor.wait(run_id), unit(5))
        roots = c.roots(run_id)
        assert [e.type for e in roots] == [EventType.AGENT_STARTED, EventType.AGENT_COMPLETED]
        assert {e.epoch for e in roots} == {epoch}
        record = await store.runs.get(c.user_id, run_id)
        assert record is not None and record.status == "completed"
        assert await c.redis.get(f"{c.prefix}lease:{run_id}") is None  # let go of at its end
