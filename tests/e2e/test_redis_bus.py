"""The real server with ``RUNWIRE_REDIS_URL``: runs reach every socket of their user, on one node or
on two nodes sharing Redis and a PostgreSQL database, resume works from any node, and a socket
whose events may have been lost on the way (the node's Redis link dropped) is told so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from websockets.exceptions import ConnectionClosed

from tests.databases import fresh_postgres_database
from tests.e2e.conftest import BASE_ENV, OWN_SERVER, ServerProcess
from tests.e2e.test_golden_path import check_run_shape
from tests.e2e.wire import Session
from tests.keys import key_directory
from tests.metrics import gauges
from tests.services import redis_url
from tests.timing import unit

pytestmark = pytest.mark.local_only(OWN_SERVER)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server on SQLite, with the Redis bus."""
    env = {**BASE_ENV, "RUNWIRE_REDIS_URL": redis_url()}
    proc = ServerProcess(tmp_path_factory.mktemp("redis-node"), env)
    yield proc
    proc.stop()


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test (dropped afterwards); its SQLAlchemy URL."""
    with fresh_postgres_database(migrate=False) as url:
        yield url


async def test_a_run_reaches_every_socket_and_resumes_with_redis_as_the_bus(
    node: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(node.url)
    ready = (await session.http.get("/ready")).json()
    assert ready["checks"]["redis"] == "ok"
    await session.post("/api/usage/sample")
    a = await session.connect()
    b = await session.connect()
    ack = await a.ask("Where can we cut our LLM costs?")
    events = await a.run_to_end(ack["run_id"])
    check_run_shape(events)
    assert await b.run_to_end(ack["run_id"]) == events
    assert events[-1]["type"] == "agent_completed"

    # A new connection resumes mid-way (a connection that has the events gets none again).
    c = await session.connect()
    await c.send(type="resume", run_id=ack["run_id"], after_seq=4)
    assert await c.run_to_end(ack["run_id"]) == events[4:]
    stored = (await session.get(f"/api/runs/{ack['run_id']}/events?after=0")).json()["events"]
    assert stored == events
    # Once stored, the run's history leaves Redis (released), and its key with it.
    async with asyncio.timeout(unit(5)):
        while (await gauges(session.http))["runwire_bus_held_runs"]:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    redis = Redis.from_url(redis_url())
    try:
        assert await redis.exists(f"runwire:run:{ack['run_id']}") == 0
    finally:
        await redis.aclose()


async def test_a_socket_whose_node_lost_its_redis_link_is_told_to_resume(
    node: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(node.url)
    sock = await session.connect()
    ack = await sock.ask("hello")
    events = await sock.run_to_end(ack["run_id"])

    # Redis drops this server's pub/sub connection (a failover, a restart, a network cut).
    redis = Redis.from_url(redis_url())
    try:
        clients = await redis.client_list(_type="pubsub")
        ours = [c for c in clients if c["name"].startswith(f"runwire-bus-{node.proc.pid}-")]
        assert len(ours) == 1, clients
        await redis.client_kill_filter(_id=ours[0]["id"])
    finally:
        await redis.aclose()

    with pytest.raises(ConnectionClosed) as closed:
        await sock.recv(unit(10))
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4009
    assert closed.value.rcvd.reason == "events may have been missed; reconnect and resume"

    # The client does what the close says: reconnects, resumes, and carries on.
    again = await session.connect()
    await again.send(type="resume", run_id=ack["run_id"], after_seq=2)
    assert await again.run_to_end(ack["run_id"]) == events[2:]
    next_ack = await again.ask("hello again", thread_id=ack["thread_id"])
    check_run_shape(await again.run_to_end(next_ack["run_id"]))


async def test_two_nodes_share_runs_through_redis(
    tmp_path: Path, postgres_database: str, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    env = {
        **BASE_ENV,
        "RUNWIRE_REDIS_URL": redis_url(),
        "RUNWIRE_DATABASE_URL": postgres_database,
        "RUNWIRE_AUTH_KEYS_DIR": str(key_directory(tmp_path / "keys")),
    }
    # The first node migrates the new database; the second starts once it is at head.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = ServerProcess(tmp_path / "a", {**env})
    try:
        second = ServerProcess(tmp_path / "b", {**env, "RUNWIRE_AUTO_MIGRATE": "false"})
        try:
            on_a = await sessions(first.url)
            on_b = await sessions(second.url)
            on_b.email, on_b.password = on_a.email, on_a.password
            await on_b.login()  # the same user, signed in at the other node
            assert on_b.user_id == on_a.user_id
            await on_a.post("/api/usage/sample")

            watcher = await on_a.connect()
            asker = await on_b.connect()
            ack = await asker.ask("Where can we cut our LLM costs?")  # node B runs it
            events = await asker.run_to_end(ack["run_id"])
            check_run_shape(events)
            assert await watcher.run_to_end(ack["run_id"]) == events

            # Node A serves a resume of node B's run, mid-way and from the start.
            mid = await on_a.connect()
            await mid.send(type="resume", run_id=ack["run_id"], after_seq=3)
            assert await mid.run_to_end(ack["run_id"]) == events[3:]
            late = await on_a.connect()
            await late.send(type="resume", run_id=ack["run_id"], after_seq=0)
            assert await late.run_to_end(ack["run_id"]) == events
            await mid.close()  # before the next run, whose frames they would leave unread
            await late.close()

            # And the other way round: a run on node A reaches the socket on node B.
            other = await watcher.ask("and now?", thread_id=ack["thread_id"])
            mine = await watcher.run_to_end(other["run_id"])
            check_run_shape(mine)
            assert await asker.run_to_end(other["run_id"]) == mine
            # Closed here, while both nodes are up, so closing does not wait on a dead peer.
            await on_a.aclose()
            await on_b.aclose()
        finally:
            second.stop()
    finally:
        first.stop()
