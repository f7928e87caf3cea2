"""The run-queue contract (runwire/run_queue/base.py), checked against each implementation:
MemoryRunQueue, and RedisRunQueue on a real Redis (``RUNWIRE_TEST_REDIS_URL``); then what only
several nodes on one Redis can show: each job to one node, a dead node's job and lease taken
over, a lost lease noticed, a lease Redis forgot put back.

Each Redis test uses its own key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from runwire.errors import DependencyUnavailable
from runwire.run_queue.base import Job, RunQueue
from runwire.run_queue.memory import MemoryRunQueue
from runwire.run_queue.redis import RedisRunQueue
from tests.integration.test_bus_contract import until
from tests.redis_keys import fresh_prefix
from tests.services import RedisServer, redis_url
from tests.timing import unit

LEASE_S = unit(0.5)


@contextlib.asynccontextmanager
async def redis_queues(count: int) -> AsyncIterator[tuple[list[RedisRunQueue], Redis, str]]:
    """``count`` nodes' run queues on one Redis under a prefix of their own, a plain client,
    and the prefix."""
    url = redis_url()
    client = Redis.from_url(url)
    try:
        async with fresh_prefix(url) as prefix, contextlib.AsyncExitStack() as stack:
            nodes = [
                await stack.enter_async_context(
                    RedisRunQueue(url, prefix=prefix, lease_s=LEASE_S, block_s=0.05).running()
                )
                for _ in range(count)
            ]
            yield nodes, client, prefix
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def queue(request: pytest.FixtureRequest) -> AsyncIterator[RunQueue]:
    if request.param == "memory":
        yield MemoryRunQueue()
        return
    async with redis_queues(1) as (nodes, _, _):
        yield nodes[0]


async def nothing_taken(queue: RunQueue) -> bool:
    return await queue.take(10, wait_s=unit(0.2)) == []


async def test_a_submitted_job_is_taken_once(queue: RunQueue) -> None:
    jobs = [Job(f"run_{i}", "thr_1", "usr_1") for i in range(3)]
    for job in jobs:
        await queue.submit(job)
    taken: list[Job] = []
    while len(taken) < 3:
        got = await queue.take(2, wait_s=unit(2))
        assert got, "a submitted job was not handed out"
        taken += got
    assert taken == jobs
    for job in taken:
        await queue.ack(job)
    assert await nothing_taken(queue)
    await queue.ping()


async def test_a_lease_has_one_holder_until_released(queue: RunQueue) -> None:
    assert await queue.acquire("run_a") is True
    assert await queue.acquire("run_a") is False
    assert queue.holds("run_a") and not queue.holds("run_b")
    assert await queue.expired(["run_a", "run_b"]) == ["run_b"]
    await queue.release("run_a")
    assert not queue.holds("run_a")
    assert await queue.expired(["run_a"]) == ["run_a"]
    assert await queue.acquire("run_a") is True
    await queue.release("run_a")


async def test_a_lease_is_confirmed_only_while_it_is_this_nodes(queue: RunQueue) -> None:
    assert await queue.confirm("run_a") is False  # never taken
    assert await queue.acquire("run_a")
    assert await queue.confirm("run_a") is True and queue.holds("run_a")
    await queue.release("run_a")
    assert await queue.confirm("run_a") is False  # let go of: not taken back


async def test_a_stop_request_reaches_the_handler(queue: RunQueue) -> None:
    asked: list[tuple[str, str]] = []
    queue.on_stop(lambda run_id, reason: asked.append((run_id, reason)))
    queue.on_lost(lambda run_id: None)
    # The Redis listener subscribes on its own time: ask until it hears.
    async with asyncio.timeout(unit(5)):
        while not asked:
            await queue.stop("run_a", "stopped")
            await asyncio.sleep(0.02)
    assert asked[0] == ("run_a", "stopped")


# Several nodes on one Redis


async def test_each_job_goes_to_one_node_and_a_stop_reaches_every_node() -> None:
    async with redis_queues(2) as (nodes, _, _):
        jobs = [Job(f"run_{i}", "thr", "usr") for i in range(40)]
        for job in jobs:
            await nodes[0].submit(job)
        taken: dict[int, list[Job]] = {0: [], 1: []}

        async def drain(i: int) -> None:
            while sum(len(t) for t in taken.values()) < len(jobs):
                got = await nodes[i].take(3, wait_s=unit(0.2))
                taken[i] += got
                for job in got:
                    await nodes[i].ack(job)

        async with asyncio.timeout(unit(5)):
            await asyncio.gather(drain(0), drain(1))
        assert sorted(j.run_id for j in taken[0] + taken[1]) == sorted(j.run_id for j in jobs)
        heard: list[str] = []
        nodes[1].on_stop(lambda run_id, reason: heard.append(run_id))
        async with asyncio.timeout(unit(5)):
            while not heard:
                await nodes[0].stop("run_x", "stopped")
                await asyncio.sleep(0.02)


async def test_a_job_a_dead_node_never_acknowledged_goes_to_another_after_the_lease() -> None:
    async with redis_queues(2) as (nodes, _, _):
        dead, alive = nodes
        await dead.submit(Job("run_1", "thr", "usr"))
        [job] = await dead.take(1, wait_s=unit(2))  # and then it dies
        async with asyncio.timeout(unit(5)):
            retaken: list[Job] = []
            while not retaken:
                retaken = await alive.take(1, wait_s=unit(0.2))
        assert retaken[0] == job and retaken[0].ref == job.ref


async def test_a_dead_nodes_lease_expires_and_another_node_may_take_it() -> None:
    async with redis_queues(1) as (nodes, client, prefix):
        alive = nodes[0]
        # What a node that died holding run_1 leaves behind: a lease nobody renews.
        await client.set(f"{prefix}lease:run_1", "dead-node", px=int(LEASE_S * 1000))
        assert await alive.expired(["run_1"]) == []
        assert await alive.acquire("run_1") is False
        async with asyncio.timeout(unit(5)):
            while await alive.expired(["run_1"]) != ["run_1"]:  # noqa: ASYNC110 - Redis's clock
                await asyncio.sleep(0.05)
        assert await alive.acquire("run_1") is True


async def test_a_node_notices_a_lease_another_node_took_and_puts_back_one_redis_forgot() -> None:
    async with redis_queues(1) as (nodes, client, prefix):
        node = nodes[0]
        lost: list[str] = []
        node.on_lost(lost.append)
        assert await node.acquire("run_kept") and await node.acquire("run_taken")
        # Redis forgot one lease (it restarted empty); another node holds the other.
        await client.delete(f"{prefix}lease:run_kept")
        await client.set(f"{prefix}lease:run_taken", "other-node", px=10_000)
        await until(lambda: lost == ["run_taken"], unit(5))
        assert not node.holds("run_taken")
        await until(lambda: node.holds("run_kept"), unit(1))
        assert await client.get(f"{prefix}lease:run_kept") == node.node_id.encode()
        assert await client.get(f"{prefix}lease:run_taken") == b"other-node"
        # Renewed, not just put back: it outlives its first lease time.
        await asyncio.sleep(LEASE_S * 1.5)
        assert node.holds("run_kept") and await node.expired(["run_kept"]) == []
        await node.release("run_taken")  # not this node's: left alone
        assert await client.get(f"{prefix}lease:run_taken") == b"other-node"


async def test_a_lease_no_longer_trusted_is_renewed_if_redis_still_names_this_node() -> None:
    # The node was paused (a loaded machine) past the time it trusts a lease for: before
    # giving a run up it asks Redis, and goes on only if the lease is still its own there.
    now = [0.0]
    url = redis_url()
    client = Redis.from_url(url)
    try:
        async with (
            fresh_prefix(url) as prefix,
            RedisRunQueue(url, prefix=prefix, lease_s=60, clock=lambda: now[0]).running() as node,
        ):
            for run_id in ("run_kept", "run_taken", "run_gone"):
                assert await node.acquire(run_id)
            now[0] += 50  # past four fifths of the lease: trusted no more
            assert not node.holds("run_kept")
            await client.pexpire(f"{prefix}lease:run_kept", 1000)  # about to expire
            await client.set(f"{prefix}lease:run_taken", "other-node", px=60_000)
            await client.delete(f"{prefix}lease:run_gone")  # expired: nobody holds it
            assert await node.confirm("run_kept") is True
            assert node.holds("run_kept")
            assert await client.pttl(f"{prefix}lease:run_kept") > 50_000  # renewed in full
            assert await node.confirm("run_taken") is False
            assert await node.confirm("run_gone") is False
            assert await client.get(f"{prefix}lease:run_gone") is None  # not put back
            assert await client.get(f"{prefix}lease:run_taken") == b"other-node"
    finally:
        await client.aclose()


async def test_nodes_racing_for_many_leases_at_once_get_one_holder_each() -> None:
    # A node's lease commands asked for at once go to Redis together: each still gets its own
    # answer, and every run ends up with exactly one holder.
    runs = [f"run_{i}" for i in range(60)]
    async with redis_queues(2) as (nodes, _, _):
        won = await asyncio.gather(*(node.acquire(r) for r in runs for node in nodes))
        for i in range(len(runs)):
            assert won[2 * i] != won[2 * i + 1]
            holder = nodes[0] if won[2 * i] else nodes[1]
            assert holder.holds(runs[i])
        await asyncio.gather(*(node.release(r) for r in runs for node in nodes))
        assert await nodes[0].expired(runs) == runs
        assert all(await asyncio.gather(*(nodes[1].acquire(r) for r in runs)))


async def test_lease_commands_fail_while_redis_is_gone_and_work_once_it_is_back(
    tmp_path: Path,
) -> None:
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        async with RedisRunQueue(redis.url, lease_s=60).running() as node:
            assert await node.acquire("run_a")
            redis.kill()
            redis.start()  # empty: it forgot run_a's lease
            # Restarted unseen: the command meets a connection Redis closed, and goes again on
            # a new one.
            assert await node.acquire("run_a")
            redis.kill()
            with pytest.raises(DependencyUnavailable):
                await node.acquire("run_b")
            with pytest.raises(DependencyUnavailable):
                await node.release("run_a")
            redis.start()
            assert await node.acquire("run_b")
            assert await node.acquire("run_a")
            await node.ack(Job("run_a", "thr", "usr", ref="0-1"))  # nothing to acknowledge
            await node.release("run_a")
            assert await node.expired(["run_a", "run_b"]) == ["run_a"]
    finally:
        redis.kill()


async def test_a_lease_command_redis_refuses_is_a_dependency_error() -> None:
    async with redis_queues(1) as (nodes, client, prefix):
        await client.set(f"{prefix}dispatch", "not a stream")  # XACK on a string: WRONGTYPE
        with pytest.raises(DependencyUnavailable):
            await nodes[0].ack(Job("run_a", "thr", "usr", ref="0-1"))
        await client.delete(f"{prefix}dispatch")
        assert await nodes[0].acquire("run_a")  # the connection goes on serving


async def test_a_lease_asked_for_by_a_caller_that_gave_up_leaves_the_others_answers_whole() -> None:
    async with redis_queues(1) as (nodes, _, _):
        node = nodes[0]
        gave_up = asyncio.create_task(node.acquire("run_a"))
        await asyncio.sleep(0)  # asked for, not answered yet
        others = asyncio.gather(*(node.acquire(f"run_{i}") for i in range(5)))
        gave_up.cancel()
        assert all(await others)
        assert not await node.acquire("run_a")  # taken all the same: it expires, unrenewed
        assert not node.holds("run_a")


async def test_lease_commands_asked_for_as_the_node_stops_are_answered() -> None:
    asked: list[asyncio.Task[bool]] = []
    async with redis_queues(1) as (nodes, _, _):
        await test_a_stop_request_reaches_the_handler(nodes[0])  # the node is fully up
        asked = [asyncio.create_task(nodes[0].acquire(f"run_{i}")) for i in range(20)]
        await asyncio.sleep(0)  # asked for; some may be on their way as the node stops
    done, pending = await asyncio.wait(asked, timeout=unit(5))
    assert not pending  # none waits for ever
    for task in done:
        assert task.exception() is None or isinstance(task.exception(), DependencyUnavailable)


async def test_a_redis_queue_stopped_just_after_it_starts_stops() -> None:
    """Regression: a stop that came while the stop listener's wait for messages timed out was
    swallowed by redis-py, and the node's shutdown then waited on that listener (for as long
    as the next cancellation took to come, if one came)."""
    url = redis_url()

    async def start_and_stop(prefix: str, turns: int) -> None:
        async with RedisRunQueue(url, prefix=prefix, lease_s=LEASE_S).running():
            for _ in range(turns):
                await asyncio.sleep(0)

    async with fresh_prefix(url) as prefix:
        for turns in [0, 1, 2] * 10:  # stopped at once, after one turn of the loop, after two
            stopping = asyncio.create_task(start_and_stop(prefix, turns))
            done, _ = await asyncio.wait({stopping}, timeout=unit(5))
            if not done:
                stopping.cancel()
            assert stopping in done, f"the queue did not stop (stopped after {turns} turns)"
            stopping.result()
