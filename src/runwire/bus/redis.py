"""The Redis bus: several nodes share one Redis; a run's events reach its user's sockets on every
node, and any node can serve the held history of any node's run.

Layout (docs/decisions.md says why):

- ``{prefix}run:{run_id}`` is a Stream holding the run's events until it is released, in blocks:
  each entry holds the run's consecutive events of one write (fields ``e`` the epoch, ``f`` the
  first event's seq, ``d`` the block: the writing node's tag, then the events' wire JSON, a line
  each) under the id ``<last seq>-0``. It is capped (``XADD MINID``: it keeps the last
  ``stream_maxlen`` events, and at most one block of 256 more) and expires (``EXPIRE``, renewed
  by each write) so a run whose node died before releasing it cannot hold memory for ever.
- ``{prefix}user:{user_id}`` is a pub/sub channel: the same blocks of the user's events, and a
  gap notice (``gap``) when a node had to drop some of the user's events.

One Lua script appends events to their streams and publishes them, atomically: an event is never
in history without having been published, nor the other way round. A node sends its writes
(events and releases) through one queue, in order, on a connection of its own, as many as are
queued in one round trip; a publisher does not wait for Redis (only past ``max_unsent`` queued
writes), and this node's :meth:`RedisBus.history` first waits for its own queued writes. A run
publishes from one node at a time, and that node hands each event to its own subscribers at once
(a :meth:`RedisBus.publish_batch` whole, to those with ``on_batch``); other nodes get it from
Redis. Each node keeps one pub/sub connection, subscribed to the channels of the users it holds
sockets of (from the first local subscriber of a user to the last), and hands each other node's
message (a block: one run's consecutive events) to that user's local subscribers, whole to those
with ``on_batch``, in the order Redis delivered it, so per-run ``seq`` order holds. Redis does
not send a node its own blocks when no other node holds the channel (the script counts the
channel's subscribers); when it does, the node skips them by their tag.

When Redis cannot be reached, writes wait in the queue (bounded) and go out in order once it is
back; the pub/sub connection reconnects with backoff, and every subscription that existed while it
was down gets ``on_gap`` once its channel is subscribed again (the transport then asks the client
to reconnect and resume).

The parts, each a module: ``redis_blocks`` the wire format (names, the script, blocks; pure),
``redis_channels`` the channels' states (pure), ``redis_writer`` the ordered writer,
``redis_link`` the pub/sub connection and the local subscribers; this module joins them as the
:class:`~runwire.bus.base.EventBus`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Sequence

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError

from runwire.background import stop
from runwire.backlog import Backlog
from runwire.bus.base import BatchHandler, EventBus, EventHandler, GapHandler
from runwire.bus.redis_blocks import Names, stream_block
from runwire.bus.redis_link import PubSubLink, Subscriber
from runwire.bus.redis_writer import LINK_ERRORS, BusWriter
from runwire.config import safe_url
from runwire.errors import DependencyUnavailable
from runwire.events.model import RunEvent
from runwire.redis_pool import connection_pool

__all__ = ["RedisBus"]

log = logging.getLogger(__name__)


class RedisBus(EventBus):
    """The bus over Redis Streams and pub/sub. Nothing connects until :meth:`running`.

    The asyncio adapter of the parts: its writes go through a :class:`BusWriter`, its
    subscriptions through a :class:`PubSubLink` (whose channels are a ``ChannelTable``)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "runwire:",
        stream_maxlen: int = 10_000,
        stream_ttl_s: int = 3600,
        # Ten of the writer's round trips (~1,000 events each): a full one in flight does not
        # stop every run until its reply (at 1,000 it did, under load).
        max_unsent: int = 10_000,
        max_backlog: int = 100_000,
        confirm_timeout_s: float = 5.0,
        ping_interval_s: float = 5.0,
        retry_max_s: float = 2.0,
    ) -> None:
        self._url = url
        self._where = safe_url(url)
        self._confirm_timeout_s = confirm_timeout_s
        self.name = f"runwire-bus-{os.getpid()}-{secrets.token_hex(3)}"
        """This node's name in Redis's ``CLIENT LIST``: its pub/sub connection's (its writer's
        is this plus ``-w``)."""
        self._redis: Redis | None = None
        self._pool: BlockingConnectionPool | None = None
        self._names = names = Names(prefix)
        writes = Backlog()  # the writer's, counted: a channel leaves once those before are done
        self._link = PubSubLink(
            name=self.name,
            names=names,
            writes=writes,
            connect=lambda: self._new_connection(self.name),
            where=self._where,
            confirm_timeout_s=confirm_timeout_s,
            ping_interval_s=ping_interval_s,
            retry_max_s=retry_max_s,
        )
        self._writer = BusWriter(
            tag=b"@" + self.name.encode(),  # what the link skips (see PubSubLink)
            names=names,
            channels=self._link.channels,
            writes=writes,
            connect=lambda: self._new_connection(f"{self.name}-w"),
            on_answered=self._link.wake,
            where=self._where,
            stream_maxlen=stream_maxlen,
            stream_ttl_s=stream_ttl_s,
            max_unsent=max_unsent,
            max_backlog=max_backlog,
            timeout_s=confirm_timeout_s,
            retry_max_s=retry_max_s,
        )
        # This node's subscribers by user, read once per event published.
        self._local = self._link.subscribers

    # -- lifecycle --

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RedisBus]:
        """Connect, start the writer and the pub/sub link; on exit send what is queued (for a
        few seconds at most) and disconnect. Raises DependencyUnavailable if Redis does not
        answer at start."""
        # The writer retries on its own, with backoff, and never loses the order of writes.
        self._pool = connection_pool(self._url, timeout_s=self._confirm_timeout_s)
        self._redis = Redis(connection_pool=self._pool)
        writer, link = self._writer, self._link
        writer.running = True
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._ping_redis()
            tasks.append(asyncio.create_task(writer.run(), name="redis-bus-writer"))
            tasks.append(asyncio.create_task(link.listen(), name="redis-bus-listener"))
            tasks.append(asyncio.create_task(link.control(), name="redis-bus-control"))
            try:
                async with asyncio.timeout(self._confirm_timeout_s):
                    await link.linked.wait()
            except TimeoutError:
                raise DependencyUnavailable(
                    f"could not open a pub/sub connection to Redis at {self._where}"
                ) from None
            yield self
            await writer.drain()
        finally:
            # Nothing runs between the release and the cancellations (no await in between).
            writer.writes.release()
            await stop(*tasks)
            await writer.disconnect()
            await self._redis.aclose()
            await self._pool.disconnect()
            self._redis = None
            writer.running = False

    def _new_connection(self, name: str) -> AbstractConnection:
        """A connection of its own (not the pool's), named for ``CLIENT LIST``; reads wait
        as long as they must (the callers bound them)."""
        assert self._pool is not None
        kwargs = {**self._pool.connection_kwargs, "client_name": name, "socket_timeout": None}
        conn: AbstractConnection = self._pool.connection_class(**kwargs)
        return conn

    # -- the port --

    async def publish(self, user_id: str, event: RunEvent) -> None:
        if self._hand_off(user_id, event):
            await self._writer.room()

    async def publish_batch(self, user_id: str, events: Sequence[RunEvent]) -> None:
        # Every event of the batch is handed off before the one wait, so a run stopped while
        # it waits has published each event it numbered (one by one, a stop between two waits
        # would leave the rest numbered and stored but never sent live).
        if not events:
            return
        writer = self._writer
        if not writer.queue_batch(user_id, events):
            behind = False
            for event in events:
                behind = self._hand_off(user_id, event) or behind
        else:
            subs = self._local.get(user_id)
            if subs:
                # This node's subscribers get the batch now and whole (see _hand_off).
                for sub in tuple(subs):
                    sub.deliver(events)
            behind = writer.behind
        if behind:
            await writer.room()

    def _hand_off(self, user_id: str, event: RunEvent) -> bool:
        """Queue ``event`` for Redis and give it to this node's subscribers; True when runs
        should wait for Redis to catch up."""
        behind = self._writer.queue_event(user_id, event)
        subs = self._local.get(user_id)
        if subs:
            # This node's subscribers get it now, not when Redis echoes it back: a run publishes
            # from one node at a time, so its order holds, and no event is parsed again.
            for sub in tuple(subs):
                try:
                    sub.handler(event)
                except Exception:  # one broken connection must not stop the others' delivery
                    log.exception("event handler failed")
        return behind

    async def release(self, run_id: str) -> None:
        self._writer.release(run_id)

    async def renumber(self, run_id: str, epoch: str) -> None:
        self._writer.renumber(run_id, epoch)

    async def history(self, run_id: str, after_seq: int) -> list[RunEvent] | None:
        redis = self._client()
        key = self._names.stream(run_id)
        await self._writer.caught_up()  # this node's own writes first: it reads what it published
        try:
            async with redis.pipeline(transaction=False) as pipe:
                # An entry's id is the last seq of its block: the first holding after_seq + 1.
                pipe.xrange(key, min=str(after_seq + 1), max="+")
                pipe.exists(key)
                entries, exists = await pipe.execute()
        except LINK_ERRORS as exc:
            raise DependencyUnavailable(
                f"the event bus (Redis) does not answer ({type(exc).__name__}); try again"
            ) from None
        if not entries:
            return [] if exists else None
        blocks = [stream_block(entry) for entry in entries]
        if blocks[0][0] > after_seq + 1:
            return None  # trimmed (MINID) or started later: the store has the whole run
        held: list[RunEvent] = []
        for seq, lines in blocks:
            for frame in lines:
                if seq > after_seq:
                    held.append(RunEvent.decode(frame))
                seq += 1
        return held

    async def subscribe(
        self,
        user_id: str,
        handler: EventHandler,
        on_gap: GapHandler | None = None,
        on_batch: BatchHandler | None = None,
    ) -> Subscriber:
        return await self._link.subscribe(user_id, handler, on_gap, on_batch)

    def subscriber_count(self, user_id: str | None = None) -> int:
        if user_id is not None:
            return len(self._local.get(user_id, ()))
        return sum(len(subs) for subs in self._local.values())

    @property
    def held_runs(self) -> int:
        return len(self._writer.held)

    @property
    def backlog(self) -> int:
        return self._writer.writes.pending

    @property
    def linked(self) -> bool:
        """True while this node's pub/sub connection to Redis is up."""
        return self._link.up

    async def ping(self) -> None:
        await self._ping_redis()
        if not self._link.up:
            raise DependencyUnavailable(
                f"the pub/sub connection to Redis at {self._where} is down; reconnecting"
            )

    # -- Redis itself --

    def _client(self) -> Redis:
        if self._redis is None:
            raise RuntimeError("RedisBus is not running: use `async with bus.running()`")
        return self._redis

    async def _ping_redis(self) -> None:
        try:
            await self._client().ping()
        except (RedisError, OSError) as exc:
            raise DependencyUnavailable(
                f"Redis at {self._where} does not answer ({type(exc).__name__})"
            ) from None
