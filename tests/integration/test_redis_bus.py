"""RedisBus when the network misbehaves: a slow link, a lost link, lost replies, a long outage.

The node under test reaches the real Redis through :class:`Proxy`, a real TCP proxy in this
process that the test can slow down, cut, or make swallow Redis's replies; the other node talks to
Redis directly and watches what arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from redis.asyncio import Redis

from runwire.app import create_app
from runwire.bus.redis import RedisBus
from runwire.errors import DependencyUnavailable
from runwire.events.model import RunEvent
from runwire.protocol.inbound import UserMessage
from tests.conftest import test_settings
from tests.integration.test_bus_contract import arrived, event, seqs, until
from tests.integration.test_event_stream import is_terminal, logged_in, serving
from tests.ports import closed_port
from tests.services import private_redis, redis_url
from tests.timing import unit


class Proxy:
    """A TCP proxy to Redis. ``delay_s`` holds each chunk from the client that long; ``cut()``
    drops every connection and refuses new ones until ``restore()``; ``swallow`` discards what
    Redis answers (the commands still run there)."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self.delay_s = 0.0
        self.swallow = False
        self._refusing = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> None:
        self._refusing = True
        self.drop()

    def drop(self) -> None:
        """Close every open connection (new ones are still accepted unless cut)."""
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    def restore(self) -> None:
        self._refusing = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, up_writer}
        for task in (
            asyncio.create_task(self._pump(reader, up_writer, upstream=True)),
            asyncio.create_task(self._pump(up_reader, writer, upstream=False)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if upstream and self.delay_s:
                    await asyncio.sleep(self.delay_s)
                if not upstream and self.swallow:
                    continue
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)


@contextlib.asynccontextmanager
async def proxied_and_direct(
    url: str | None = None, **options: Any
) -> AsyncIterator[tuple[Proxy, RedisBus, RedisBus]]:
    """A node behind a proxy and a node talking to Redis directly, under one fresh prefix, on the
    shared test Redis unless ``url`` names another."""
    url = url or redis_url()
    parts = urlsplit(url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    await proxy.start()
    netloc = parts.netloc.rpartition("@")[0]
    via_proxy = urlunsplit(
        parts._replace(netloc=f"{netloc}{'@' if netloc else ''}127.0.0.1:{proxy.port}")
    )
    prefix = f"runwire-test:{uuid.uuid4().hex}:"
    try:
        async with (
            RedisBus(via_proxy, prefix=prefix, retry_max_s=unit(0.1), **options).running() as a,
            RedisBus(url, prefix=prefix).running() as b,
        ):
            yield proxy, a, b
    finally:
        await proxy.stop()
        client = Redis.from_url(url)
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_subscribe_over_a_slow_link_returns_only_once_delivery_is_in_effect() -> None:
    async with proxied_and_direct() as (proxy, slow, direct):
        proxy.delay_s = unit(0.05)
        for i in range(3):
            received: list[RunEvent] = []
            await slow.subscribe(f"usr_{i}", received.append)
            # Published at once, on a node with a fast link: it must not overtake the
            # subscription on its way to Redis.
            await direct.publish(f"usr_{i}", event(f"run_{i}", 1))
            await arrived(received, 1)


async def test_after_the_pubsub_link_drops_subscribers_are_told_to_resume() -> None:
    async with proxied_and_direct() as (proxy, node, direct):
        received: list[RunEvent] = []
        gaps: list[str] = []
        await node.subscribe("usr_a", received.append, lambda: gaps.append("old"))
        await direct.publish("usr_a", event("run_a", 1))
        await until(lambda: len(received) == 1)

        proxy.cut()
        await until(lambda: not node.linked)
        with pytest.raises(DependencyUnavailable, match="Redis"):
            await node.ping()
        await direct.publish("usr_a", event("run_a", 2))  # lost for this node's subscriber
        # A socket that connects meanwhile is not kept waiting; it is told to resume later.
        async with asyncio.timeout(unit(1)):
            await node.subscribe("usr_a", received.append, lambda: gaps.append("new"))
        assert gaps == []

        proxy.restore()
        await until(lambda: len(gaps) == 2)
        assert sorted(gaps) == ["new", "old"]
        await node.ping()
        await direct.publish("usr_a", event("run_a", 3))
        await until(lambda: len(received) == 3)
        assert [e.seq for e in received] == [1, 3, 3]  # two subscribers; seq 2 is the hole
        assert node.subscriber_count("usr_a") == 2


async def test_a_socket_that_came_and_went_while_the_link_was_down_leaves_no_channel() -> None:
    # The node subscribes, on its next connection, to what its sockets want then: a user whose
    # only socket left meanwhile is not subscribed (nor waited for), a user still held is.
    async with proxied_and_direct() as (proxy, node, _):
        client = Redis.from_url(redis_url())

        async def subscribers(user_id: str) -> int:
            channel = node._names.channel(user_id)
            return int(dict(await client.pubsub_numsub(channel))[channel])

        try:
            gaps: list[str] = []
            await node.subscribe("usr_kept", lambda _: None, lambda: gaps.append("kept"))
            proxy.cut()
            await until(lambda: not node.linked)
            gone = await node.subscribe("usr_gone", lambda _: None, lambda: gaps.append("gone"))
            gone.close()
            proxy.restore()
            await until(lambda: gaps == ["kept"])  # subscribed again, and told to resume
            assert await subscribers("usr_kept") == 1
            assert await subscribers("usr_gone") == 0
            assert node.subscriber_count() == 1
        finally:
            await client.aclose()


async def test_events_published_while_redis_is_away_arrive_in_order_when_it_is_back() -> None:
    async with proxied_and_direct(max_unsent=2) as (proxy, node, direct):
        received: list[RunEvent] = []
        gaps: list[None] = []
        await direct.subscribe("usr_a", received.append, lambda: gaps.append(None))
        await node.publish("usr_a", event("run_a", 1))
        await until(lambda: len(received) == 1)

        proxy.cut()
        async with asyncio.timeout(unit(2)):  # the run is not held up by the outage, even
            # past its bound of unsent writes
            for seq in range(2, 7):
                await node.publish("usr_a", event("run_a", seq))
        assert len(received) == 1

        proxy.restore()
        await until(lambda: len(received) == 6)
        assert [e.seq for e in received] == [1, 2, 3, 4, 5, 6]
        assert seqs(await direct.history("run_a", 0)) == [1, 2, 3, 4, 5, 6]
        await node.publish("usr_a", event("run_a", 7))
        await until(lambda: len(received) == 7)
        assert gaps == []


async def test_a_nodes_own_subscribers_get_its_events_while_redis_is_away() -> None:
    async with proxied_and_direct() as (proxy, node, direct):
        here: list[RunEvent] = []
        there: list[RunEvent] = []
        gaps: list[None] = []
        await node.subscribe("usr_a", here.append, lambda: gaps.append(None))
        await direct.subscribe("usr_a", there.append)
        proxy.cut()
        for seq in (1, 2, 3):
            await node.publish("usr_a", event("run_a", seq))
        assert [e.seq for e in here] == [1, 2, 3]  # not held up by Redis
        assert there == []
        proxy.restore()
        await until(lambda: len(there) == 3)
        assert [e.seq for e in there] == [1, 2, 3]
        # Other nodes' events may have been missed meanwhile: the local subscriber is told.
        await until(lambda: gaps != [])
        assert [e.seq for e in here] == [1, 2, 3]


async def test_a_nodes_own_subscribers_get_its_events_past_the_backlog_too() -> None:
    async with proxied_and_direct(max_backlog=2) as (proxy, node, _direct):
        here: list[RunEvent] = []
        await node.subscribe("usr_a", here.append)
        proxy.cut()
        for seq in range(1, 6):  # 1..2 wait for Redis; 3..5 do not fit, for other nodes
            await node.publish("usr_a", event("run_a", seq))
        assert [e.seq for e in here] == [1, 2, 3, 4, 5]


async def test_a_run_waits_for_a_slow_redis_only_past_its_unsent_bound() -> None:
    # Past max_unsent unsent writes a publisher waits, after its own sockets have the event,
    # until Redis has answered enough of what was queued before it (one round trip here), not
    # until everything queued meanwhile is sent too.
    async with proxied_and_direct(max_unsent=3) as (proxy, node, _direct):
        here: list[RunEvent] = []
        await node.subscribe("usr_a", here.append)
        proxy.delay_s = unit(0.5)  # each write reaches Redis that much later
        async with asyncio.timeout(unit(0.25)):  # under the bound: no wait for Redis
            await node.publish("usr_a", event("run_a", 1))
            await node.publish("usr_a", event("run_a", 2))
        third = asyncio.create_task(node.publish("usr_a", event("run_a", 3)))
        await asyncio.sleep(unit(0.1))
        assert seqs(here) == [1, 2, 3] and not third.done()  # its socket has it; the run waits
        await asyncio.wait_for(third, unit(2))
        assert node.backlog == 1  # the reply for 1 and 2 let it go; 3 is still on its way
        assert seqs(await node.history("run_a", 0)) == [1, 2, 3]


async def test_writes_whose_replies_were_lost_are_sent_again_and_delivered_once() -> None:
    async with proxied_and_direct(confirm_timeout_s=unit(0.3)) as (proxy, node, direct):
        received: list[RunEvent] = []
        gaps: list[None] = []
        await direct.subscribe("usr_a", received.append, lambda: gaps.append(None))
        await node.publish("usr_a", event("run_a", 1))
        await arrived(received, 1)
        proxy.swallow = True  # Redis runs the writes; their replies never come back
        await node.publish("usr_a", event("run_a", 2))
        await arrived(received, 2)
        await node.publish("usr_a", event("run_a", 3))  # waits behind seq 2, sent again and again

        proxy.swallow = False
        proxy.drop()  # the connections waiting for lost replies die; new ones work
        await arrived(received, 3)
        await node.publish("usr_a", event("run_a", 4))
        await until(lambda: any(e.seq == 4 for e in received))
        assert [e.seq for e in received] == [1, 2, 3, 4]
        assert seqs(await direct.history("run_a", 0)) == [1, 2, 3, 4]
        assert gaps == []


async def test_events_past_the_backlog_are_dropped_and_their_users_told_to_resume() -> None:
    async with proxied_and_direct(max_backlog=3) as (proxy, node, direct):
        received: list[RunEvent] = []
        gaps: list[None] = []
        await direct.subscribe("usr_a", received.append, lambda: gaps.append(None))
        await node.publish("usr_a", event("run_a", 1))
        await until(lambda: len(received) == 1)
        # The node has read Redis's reply too (received is not enough: the publish reaches the
        # other node first), so its backlog is empty when the link is cut.
        assert seqs(await node.history("run_a", 0)) == [1]

        proxy.cut()
        for seq in range(2, 8):  # 2..4 wait in the backlog; 5..7 do not fit
            await node.publish("usr_a", event("run_a", seq))
        proxy.restore()
        await until(lambda: len(gaps) == 1)
        assert [e.seq for e in received] == [1, 2, 3, 4]
        # The held stream has a hole, so it is gone: every position is the store's to serve.
        assert await direct.history("run_a", 0) is None
        assert await direct.history("run_a", 4) is None
        # Later events are held again, from where they start.
        await node.publish("usr_a", event("run_a", 8))
        await until(lambda: len(received) == 5)
        assert seqs(await direct.history("run_a", 7)) == [8]
        assert await direct.history("run_a", 6) is None


async def test_a_batch_that_would_pass_the_backlog_goes_event_by_event() -> None:
    # Redis away: a batch queues whole while it fits the backlog; one that would pass it goes one
    # by one, so its first events still wait for Redis and only the rest are dropped (the user
    # told to resume), as if they had been published one by one. Local sockets get every event.
    async with proxied_and_direct(max_backlog=5) as (proxy, node, direct):
        here: list[RunEvent] = []
        received: list[RunEvent] = []
        gaps: list[None] = []
        await node.subscribe("usr_a", here.append, on_batch=here.extend)
        await direct.subscribe("usr_a", received.append, lambda: gaps.append(None))
        proxy.cut()
        await node.publish_batch("usr_a", [event("run_a", seq) for seq in (1, 2, 3)])
        await node.publish_batch("usr_a", [event("run_a", seq) for seq in (4, 5, 6, 7)])
        assert seqs(here) == [1, 2, 3, 4, 5, 6, 7]
        proxy.restore()
        await until(lambda: len(gaps) == 1)
        assert seqs(received) == [1, 2, 3, 4, 5]
        assert await direct.history("run_a", 0) is None  # a hole: the store serves the run


async def test_a_node_leaving_a_channel_unsubscribes_once_its_writes_have_run() -> None:
    # A node holding a user's channel has its blocks published only if another node holds it too
    # (Redis counts the subscribers as each write runs). Were the node's UNSUBSCRIBE to reach
    # Redis before a write it sent while it held the channel, that write would count the other
    # node's subscription as the node's own and not publish: the node unsubscribes only once
    # Redis has answered every write sent before its last socket of the user left.
    async with proxied_and_direct(confirm_timeout_s=unit(0.3)) as (proxy, node, direct):
        client = Redis.from_url(redis_url())
        channel = node._names.channel("usr_a")

        async def subscribers() -> int:
            return int(dict(await client.pubsub_numsub(channel))[channel])

        try:
            received: list[RunEvent] = []
            leaving = await node.subscribe("usr_a", lambda _: None)
            await direct.subscribe("usr_a", received.append)
            assert await subscribers() == 2
            proxy.swallow = True  # the write runs in Redis; its reply never comes back
            await node.publish("usr_a", event("run_a", 1))
            leaving.close()
            await asyncio.sleep(unit(0.5))  # the write is sent again, unanswered, meanwhile
            assert await subscribers() == 2
            proxy.swallow = False
            async with asyncio.timeout(unit(5)):
                while await subscribers() != 1:  # noqa: ASYNC110 - Redis announces nothing
                    await asyncio.sleep(unit(0.01))
            await node.publish("usr_a", event("run_a", 2))
            await until(lambda: len(received) == 2)
            assert seqs(received) == [1, 2]
        finally:
            await client.aclose()


@pytest.fixture
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a Redis of this test's own: SCRIPT FLUSH empties the script cache of every
    client of a server, and other test processes use the shared one at the same time."""
    with private_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


async def test_publishing_goes_on_when_redis_has_forgotten_the_script(own_redis: str) -> None:
    # A restarted Redis keeps no scripts (this one has no persistence).
    async with proxied_and_direct(own_redis) as (_proxy, node, direct):
        received: list[RunEvent] = []
        await direct.subscribe("usr_a", received.append)
        await node.publish("usr_a", event("run_a", 1))
        client = Redis.from_url(own_redis)
        try:
            await client.script_flush()
        finally:
            await client.aclose()
        await node.publish("usr_a", event("run_a", 2))
        await arrived(received, 2)
        assert [e.seq for e in received] == [1, 2]
        assert seqs(await direct.history("run_a", 0)) == [1, 2]


async def test_a_server_whose_redis_does_not_answer_refuses_to_start_and_says_why(
    tmp_path: Path,
) -> None:
    with closed_port() as port:
        settings = test_settings(tmp_path, redis_url=f"redis://:pw-secret@127.0.0.1:{port}/0")
        app = create_app(settings)
        with pytest.raises(DependencyUnavailable) as refused:
            async with app.router.lifespan_context(app):
                pass
    assert refused.value.message.startswith(f"Redis at redis://127.0.0.1:{port}/0 does not answer")
    assert "pw-secret" not in refused.value.message


async def test_an_sse_stream_that_may_have_missed_events_ends_and_its_client_catches_up(
    tmp_path: Path,
) -> None:
    settings = test_settings(tmp_path, redis_url=redis_url(), offline_delay_ms=30)
    async with serving(settings) as (client, services):
        bus = services.bus
        assert isinstance(bus, RedisBus)
        user_id, auth = await logged_in(client)
        accepted = await services.chat.submit(user_id, UserMessage(content="hello"))
        path = f"/api/runs/{accepted.run_id}/events"
        first: list[tuple[str, dict[str, Any]]] = []
        async with client.stream(
            "GET", path, headers={**auth, "Accept": "text/event-stream"}
        ) as response:
            last_id = ""
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    last_id = line.removeprefix("id: ")
                elif line.startswith("data: "):
                    first.append((last_id, json.loads(line.removeprefix("data: "))))
                    if len(first) == 2:  # mid-run: Redis drops this node's pub/sub connection
                        await kill_pubsub(bus.name)
        # The stream ended before the run did; the client reconnects from its last id.
        assert first and not is_terminal(first[-1][1])
        resumed = await client.get(
            path, headers={**auth, "Accept": "text/event-stream", "Last-Event-ID": first[-1][0]}
        )
        rest = [json.loads(line[6:]) for line in resumed.text.splitlines() if line[:6] == "data: "]
        seqs = [event["seq"] for _, event in first] + [event["seq"] for event in rest]
        assert seqs == list(range(1, len(seqs) + 1)) and is_terminal(rest[-1])


async def kill_pubsub(name: str) -> None:
    """Have Redis drop the pub/sub connection named ``name`` (as a failover or a restart does)."""
    client = Redis.from_url(redis_url())
    try:
        ours = [c for c in await client.client_list(_type="pubsub") if c["name"] == name]
        assert len(ours) == 1
        await client.client_kill_filter(_id=ours[0]["id"])
    finally:
        await client.aclose()
