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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from runwire.background import stop
from runwire.backlog import Backlog
from runwire.bus.base import BatchHandler, EventBus, EventHandler, GapHandler
from runwire.bus.redis_blocks import (
    APPEND_SCRIPT,
    BLOCK_EVENTS,
    NO_KEY,
    append_call,
    bulk,
    command,
    frames,
    stream_block,
)
from runwire.config import safe_url
from runwire.errors import DependencyUnavailable
from runwire.events.model import RunEvent
from runwire.redis_pool import connection_pool

__all__ = ["RedisBus"]

log = logging.getLogger(__name__)

_LINK_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)

_GAP = b"gap"  # on a user's channel: a node dropped some of the user's events

_EVENTS_PER_ROUND_TRIP = 1000  # at least, unless fewer are queued
_HELD_NAMES = 10_000  # RESP-encoded stream keys and channels kept for reuse, at most


class _Subscription:
    __slots__ = ("_bus", "closed", "handler", "missed", "on_batch", "on_gap", "user_id")

    def __init__(
        self,
        bus: RedisBus,
        user_id: str,
        handler: EventHandler,
        on_gap: GapHandler | None,
        on_batch: BatchHandler | None,
    ) -> None:
        self._bus = bus
        self.user_id = user_id
        self.handler = handler
        self.on_gap = on_gap
        self.on_batch = on_batch
        self.closed = False
        self.missed = False  # delivery was not in effect for a while: call on_gap when it is

    def close(self) -> None:
        self._bus._drop(self)

    def gap(self) -> None:
        if self.on_gap is None or self.closed:
            return
        try:
            self.on_gap()
        except Exception:
            log.exception("gap handler failed")

    def deliver(self, events: Sequence[RunEvent]) -> None:
        """Hand ``events`` (one run's, consecutive, of one numbering) to this subscriber: whole
        to its ``on_batch`` if it has one, else one by one."""
        on_batch = self.on_batch
        if on_batch is not None:
            try:
                on_batch(events)
            except Exception:  # one broken connection must not stop the others' delivery
                log.exception("event handler failed")
            return
        handler = self.handler
        for event in events:
            try:
                handler(event)
            except Exception:
                log.exception("event handler failed")


class _Block:
    """A run's consecutive events, in the order published: one stream entry and one message.

    Events join the run's open block as they are published (:meth:`RedisBus.publish` appends
    them: a block takes the run's next ``seq`` of the same epoch, up to ``BLOCK_EVENTS``), until
    the writer takes the outbox (then the run's next event opens a new block)."""

    __slots__ = ("channel", "first", "next_seq", "run", "run_id", "user_id", "wires")

    def __init__(
        self,
        run: tuple[bytes, str, bytes],
        channel: bytes,
        event: RunEvent,
        user_id: str,
        tag: bytes,
    ) -> None:
        self.run = run  # the stream key, the epoch, the epoch encoded
        self.channel = channel
        self.run_id = event.run_id
        self.user_id = user_id
        self.first = event.seq
        self.next_seq = event.seq
        self.wires = [tag]  # the node's tag, then each event's wire frame

    @property
    def count(self) -> int:
        """Writes it holds (each event is one)."""
        return len(self.wires) - 1

    def add(self, event: RunEvent) -> None:
        self.wires.append(event.wire)
        self.next_seq += 1


class _Release:
    __slots__ = ("run_id",)
    count = 1

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id


class _GapNotice:
    __slots__ = ("user_id",)
    count = 1

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id


_Write = _Block | _Release | _GapNotice


class RedisBus(EventBus):
    """The bus over Redis Streams and pub/sub. Nothing connects until :meth:`running`."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "runwire:",
        stream_maxlen: int = 10_000,
        stream_ttl_s: int = 3600,
        max_unsent: int = 1000,
        max_backlog: int = 100_000,
        confirm_timeout_s: float = 5.0,
        ping_interval_s: float = 5.0,
        retry_max_s: float = 2.0,
    ) -> None:
        self._url = url
        self._where = safe_url(url)
        self._prefix = prefix
        self._user_prefix = f"{prefix}user:".encode()
        self._maxlen_bulk = bulk(str(stream_maxlen).encode())
        self._ttl_bulk = bulk(str(stream_ttl_s).encode())
        # RESP-encoded names, reused by every event: per run its stream key, epoch and the
        # epoch encoded; per user its channel.
        self._run_names: dict[str, tuple[bytes, str, bytes]] = {}
        self._user_names: dict[str, bytes] = {}
        self._max_unsent = max_unsent
        self._max_backlog = max_backlog
        self._confirm_timeout_s = confirm_timeout_s
        self._ping_interval_s = ping_interval_s
        self._retry_max_s = retry_max_s
        self.name = f"runwire-bus-{os.getpid()}-{secrets.token_hex(3)}"
        """This node's name in Redis's ``CLIENT LIST``: its pub/sub connection's (its writer's
        is this plus ``-w``)."""
        # The first line of this node's messages: the listener skips them (their events reached
        # this node's subscribers when they were published).
        self._tag = b"@" + self.name.encode()
        self._tag_line = self._tag + b"\n"
        self._redis: Redis | None = None
        self._pool: BlockingConnectionPool | None = None
        # Writes (events, releases, gap notices) in the order they go to Redis, counted, so a
        # caller can wait until those queued before it are sent.
        self._outbox: list[_Write] = []
        self._open: dict[str, _Block] = {}  # per run, its block in the outbox still taking events
        self._writes = Backlog()  # queued, and sent (or given up on)
        self._wake_writer = asyncio.Event()
        self._degraded = False  # Redis does not answer: nobody waits for the writer
        self._gap_users: set[str] = set()  # their events were dropped: tell their sockets
        self._broken_runs: set[str] = set()  # their streams have a hole: publish, do not append
        self._forget_runs: set[str] = set()  # broken runs whose streams are still to be deleted
        self._held: set[str] = set()
        self._writer_conn: AbstractConnection | None = None
        # Subscriptions: local handlers per user, and the state of the user's channel.
        self._local: dict[str, list[_Subscription]] = {}
        self._link: AbstractConnection | None = None
        self._linked = asyncio.Event()
        self._sent: set[str] = set()  # the last command sent for the channel was SUBSCRIBE
        self._acks_due: dict[str, int] = {}  # (un)subscribe replies still to come per channel
        self._confirmed: set[str] = set()  # Redis has subscribed the channel: delivery in effect
        self._dirty: dict[str, None] = {}  # channels whose subscription may need a command
        self._waiters: dict[str, asyncio.Future[None]] = {}
        # The echo: channels this node holds (subscribed on the current link, and not leaving),
        # so Redis need not send their blocks back; a leaving channel's UNSUBSCRIBE waits until
        # every write queued before it left has been answered (the writes in flight that said
        # "I hold it" have run), and the presence channel of the current link.
        self._holding: set[str] = set()
        self._leaving: dict[str, int] = {}  # channel -> writes queued when it left _holding
        self._links = 0
        self._presence = b""  # RESP bulk of the current link's presence channel, once confirmed
        self._wake_control = asyncio.Event()
        self._last_reply = 0.0
        self._last_ping = 0.0

    # -- lifecycle --

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RedisBus]:
        """Connect, start the writer and the pub/sub link; on exit send what is queued (for a
        few seconds at most) and disconnect. Raises DependencyUnavailable if Redis does not
        answer at start."""
        # The writer retries on its own, with backoff, and never loses the order of writes.
        self._pool = connection_pool(self._url, timeout_s=self._confirm_timeout_s)
        self._redis = Redis(connection_pool=self._pool)
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._ping_redis()
            tasks.append(asyncio.create_task(self._write_loop(), name="redis-bus-writer"))
            tasks.append(asyncio.create_task(self._listen_loop(), name="redis-bus-listener"))
            tasks.append(asyncio.create_task(self._control_loop(), name="redis-bus-control"))
            try:
                async with asyncio.timeout(self._confirm_timeout_s):
                    await self._linked.wait()
            except TimeoutError:
                raise DependencyUnavailable(
                    f"could not open a pub/sub connection to Redis at {self._where}"
                ) from None
            yield self
            await self._drain()
        finally:
            # Nothing runs between the release and the cancellations (no await in between).
            self._writes.release()
            await stop(*tasks)
            if self._writer_conn is not None:
                await self._writer_conn.disconnect()
                self._writer_conn = None
            await self._redis.aclose()
            await self._pool.disconnect()
            self._redis = None

    async def _drain(self) -> None:
        """Send what is queued; give up after a few seconds (the events are stored anyway)."""
        try:
            async with asyncio.timeout(self._confirm_timeout_s):
                # Polled: the writer may be waiting for Redis, announcing nothing meanwhile.
                while self._writes.pending:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        except TimeoutError:
            log.warning(
                "stopping with %d bus writes unsent: Redis at %s does not take them",
                self._writes.pending,
                self._where,
            )

    # -- the port --

    async def publish(self, user_id: str, event: RunEvent) -> None:
        if self._hand_off(user_id, event):
            await self._caught_up()

    async def publish_batch(self, user_id: str, events: Sequence[RunEvent]) -> None:
        # Every event of the batch is handed off before the one wait, so a run stopped while
        # it waits has published each event it numbered (one by one, a stop between two waits
        # would leave the rest numbered and stored but never sent live).
        if not events:
            return
        if not self._queue_batch(user_id, events):
            behind = False
            for event in events:
                behind = self._hand_off(user_id, event) or behind
        else:
            subs = self._local.get(user_id)
            if subs:
                # This node's subscribers get the batch now and whole (see _hand_off).
                for sub in tuple(subs):
                    sub.deliver(events)
            writes = self._writes
            behind = writes.queued - writes.done >= self._max_unsent
        if behind:
            await self._caught_up()

    def _queue_batch(self, user_id: str, events: Sequence[RunEvent]) -> bool:
        """Queue ``events`` for Redis as one step, in their run's open block or a new one; False
        (nothing queued) when they must go one by one: the queue is near its bound, or the
        events are not one numbering's consecutive run of at most a block."""
        first, last = events[0], events[-1]
        count = len(events)
        writes = self._writes
        if (
            writes.queued - writes.done + count >= self._max_backlog
            or count > BLOCK_EVENTS
            or last.seq - first.seq != count - 1
            or last.epoch != first.epoch
            or last.run_id != first.run_id
        ):
            return False
        block = self._open.get(first.run_id)
        if (
            block is None
            or first.seq != block.next_seq
            or first.epoch != block.run[1]
            or len(block.wires) + count > BLOCK_EVENTS + 1
        ):
            self._held.add(first.run_id)
            block = self._open[first.run_id] = self._block(user_id, first)
            self._outbox.append(block)
            self._wake_writer.set()
        block.wires += [event.wire for event in events]
        block.next_seq += count
        writes.queued += count
        return True

    def _hand_off(self, user_id: str, event: RunEvent) -> bool:
        """Queue ``event`` for Redis and give it to this node's subscribers; True when runs
        should wait for Redis to catch up."""
        # Called once per event of every run: the block's checks and counts are written out
        # here rather than called (each call costs about as much as the check it makes).
        run_id = event.run_id
        writes = self._writes
        unsent = writes.queued - writes.done
        if unsent >= self._max_backlog:
            # Redis has been away long enough to fill the queue: other nodes will not get this
            # event live (it is stored); the user's sockets are told to resume once it is back.
            self._held.add(run_id)
            self._broken(user_id, run_id)
        else:
            block = self._open.get(run_id)
            if (
                block is None
                or event.seq != block.next_seq
                or event.epoch != block.run[1]
                or len(block.wires) > BLOCK_EVENTS
            ):
                # A new block: the run's first event since the writer took the last one (the
                # run is held from then until released, so it is counted here only).
                self._held.add(run_id)
                block = self._open[run_id] = self._block(user_id, event)
                self._outbox.append(block)
                self._wake_writer.set()
            block.add(event)
            writes.queued += 1
        subs = self._local.get(user_id)
        if subs:
            # This node's subscribers get it now, not when Redis echoes it back: a run publishes
            # from one node at a time, so its order holds, and no event is parsed again.
            for sub in tuple(subs):
                try:
                    sub.handler(event)
                except Exception:  # one broken connection must not stop the others' delivery
                    log.exception("event handler failed")
        # Redis takes writes slower than runs make them: runs wait rather than memory grow.
        return unsent + 1 >= self._max_unsent

    async def release(self, run_id: str) -> None:
        self._held.discard(run_id)
        self._run_names.pop(run_id, None)
        self._open.pop(run_id, None)
        # Queued behind the run's events, so a late write cannot bring the stream back.
        self._enqueue(_Release(run_id))

    async def history(self, run_id: str, after_seq: int) -> list[RunEvent] | None:
        redis = self._client()
        key = self._stream(run_id)
        await self._caught_up()  # this node's own writes first: it reads what it has published
        try:
            async with redis.pipeline(transaction=False) as pipe:
                # An entry's id is the last seq of its block: the first holding after_seq + 1.
                pipe.xrange(key, min=str(after_seq + 1), max="+")
                pipe.exists(key)
                entries, exists = await pipe.execute()
        except _LINK_ERRORS as exc:
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
    ) -> _Subscription:
        sub = _Subscription(self, user_id, handler, on_gap, on_batch)
        self._local.setdefault(user_id, []).append(sub)
        if user_id in self._confirmed:
            return sub
        if self._link is None:
            sub.missed = True  # told to resume once the link is back
            return sub
        waiter = self._waiters.get(user_id)
        if waiter is None:
            waiter = self._waiters[user_id] = asyncio.get_running_loop().create_future()
        self._dirty[user_id] = None
        self._wake_control.set()
        try:
            async with asyncio.timeout(self._confirm_timeout_s):
                await asyncio.shield(waiter)
        except TimeoutError:
            pass
        except BaseException:
            sub.close()
            raise
        if user_id not in self._confirmed:
            sub.missed = True
        return sub

    def _drop(self, sub: _Subscription) -> None:
        if sub.closed:
            return
        sub.closed = True
        subs = self._local.get(sub.user_id)
        if subs is None:
            return
        subs.remove(sub)
        if not subs:
            del self._local[sub.user_id]
            self._dirty[sub.user_id] = None
            self._wake_control.set()

    def subscriber_count(self, user_id: str | None = None) -> int:
        if user_id is not None:
            return len(self._local.get(user_id, ()))
        return sum(len(subs) for subs in self._local.values())

    @property
    def held_runs(self) -> int:
        return len(self._held)

    @property
    def backlog(self) -> int:
        return self._writes.pending

    @property
    def linked(self) -> bool:
        """True while this node's pub/sub connection to Redis is up."""
        return self._link is not None

    async def ping(self) -> None:
        await self._ping_redis()
        if self._link is None:
            raise DependencyUnavailable(
                f"the pub/sub connection to Redis at {self._where} is down; reconnecting"
            )

    # -- writes --

    def _enqueue(self, write: _Write) -> None:
        self._client()  # not running: say so rather than queue for a writer that is not there
        self._outbox.append(write)
        self._writes.add()
        self._wake_writer.set()

    async def _caught_up(self) -> None:
        """Wait until every write queued so far is sent; not while Redis is away (the writes
        wait in order for it; the caller does not)."""
        if not self._degraded:
            await self._writes.caught_up()

    def _broken(self, user_id: str, run_id: str) -> None:
        self._gap_users.add(user_id)
        if run_id not in self._broken_runs:
            self._broken_runs.add(run_id)
            self._forget_runs.add(run_id)

    async def _write_loop(self) -> None:
        delay = 0.05
        while True:
            if not self._outbox:
                if self._gap_users or self._forget_runs:
                    for notice in self._notices():
                        self._enqueue(notice)
                    continue
                self._wake_writer.clear()
                await self._wake_writer.wait()
                continue
            batch, self._outbox = self._outbox, []
            self._open.clear()  # the blocks taken are sent as they are: later events open new ones
            while batch:
                try:
                    await self._write(batch)
                except _LINK_ERRORS as exc:
                    if not self._degraded:
                        self._degraded = True
                        self._writes.release()
                        log.warning(
                            "Redis at %s does not answer (%s): bus writes wait in order until "
                            "it is back",
                            self._where,
                            type(exc).__name__,
                        )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._retry_max_s)
                except Exception:
                    count = sum(write.count for write in batch)
                    log.exception("Redis refused %d bus writes; their live delivery is lost", count)
                    for write in batch:
                        if isinstance(write, _Block):
                            self._broken(write.user_id, write.run_id)
                    self._writes.finish(count)
                    batch = []
            delay = 0.05
            if self._degraded:
                self._degraded = False
                log.warning("Redis at %s answers again: queued bus writes are sent", self._where)

    def _notices(self) -> list[_Write]:
        """Forget the streams with a hole (the store serves them), then tell the users."""
        notices: list[_Write] = [_Release(run_id) for run_id in self._forget_runs]
        notices += [_GapNotice(user_id) for user_id in self._gap_users]
        self._forget_runs.clear()
        self._gap_users.clear()
        return notices

    async def _write(self, batch: list[_Write]) -> None:
        """Send ``batch`` in chunks of one round trip each; what was sent leaves ``batch``.

        The writes go on a connection of their own, packed here and sent in one piece: a
        client library's pipeline costs more per command than Redis takes to run it. Events
        queued one after another go as one script call.
        """
        while batch:
            count = end = 0
            for write in batch:  # up to ~1,000 events a round trip
                count += write.count
                end += 1
                if count >= _EVENTS_PER_ROUND_TRIP:
                    break
            chunk = batch[:end]
            commands = self._commands(chunk)
            replies = await self._round_trip(b"".join(commands), len(commands))
            if any(isinstance(r, NoScriptError) for r in replies):
                # Redis restarted (no scripts kept): load the script and send the chunk again;
                # the script skips what it had appended, so nothing is delivered twice.
                await self._client().script_load(APPEND_SCRIPT)
                continue
            failed = [r for r in replies if isinstance(r, Exception)]
            if failed:
                raise failed[0]
            del batch[:end]
            self._writes.finish(count)
            if self._leaving:
                self._wake_control.set()  # an UNSUBSCRIBE may have waited for these replies

    def _commands(self, chunk: list[_Write]) -> list[bytes]:
        """``chunk`` as Redis commands, in order: blocks queued one after another are one
        script call."""
        commands: list[bytes] = []
        blocks: list[_Block] = []
        for write in chunk:
            if isinstance(write, _Block):
                blocks.append(write)
                continue
            if blocks:
                commands.append(self._append_command(blocks))
                blocks = []
            if isinstance(write, _Release):
                self._broken_runs.discard(write.run_id)
                commands.append(command(b"DEL", self._stream(write.run_id).encode()))
            else:
                commands.append(command(b"PUBLISH", self._channel(write.user_id), _GAP))
        if blocks:
            commands.append(self._append_command(blocks))
        return commands

    def _block(self, user_id: str, event: RunEvent) -> _Block:
        """A new block for ``event``'s run, with the run's key and epoch and the user's channel
        encoded once and reused."""
        self._client()  # not running: say so rather than queue for a writer that is not there
        runs, users = self._run_names, self._user_names
        run_id = event.run_id
        run = runs.get(run_id)
        if run is None or run[1] != event.epoch:
            run = runs[run_id] = (
                bulk(self._stream(run_id).encode()),
                event.epoch,
                bulk(event.epoch.encode()),
            )
            if len(runs) > _HELD_NAMES:
                del runs[next(iter(runs))]
        channel = users.get(user_id)
        if channel is None:
            channel = users[user_id] = bulk(self._channel(user_id))
            if len(users) > _HELD_NAMES:
                del users[next(iter(users))]
        return _Block(run, channel, event, user_id, self._tag)

    def _append_command(self, blocks: list[_Block]) -> bytes:
        """One call of the append script for ``blocks``, in RESP, built by hand."""
        broken, holding = self._broken_runs, self._holding
        return append_call(
            self._maxlen_bulk,
            self._ttl_bulk,
            self._presence or NO_KEY,
            [
                (
                    # A run whose stream has a hole is published only; checked as it is sent,
                    # as the hole may have come after its events were queued.
                    NO_KEY if block.run_id in broken else block.run[0],
                    block.channel,
                    block.run[2],
                    block.first,
                    block.next_seq - 1,
                    block.wires,  # the node's tag first
                    block.user_id in holding,
                )
                for block in blocks
            ],
        )

    async def _round_trip(self, packed: bytes, count: int) -> list[object]:
        conn = self._writer_conn
        if conn is None:
            conn = self._writer_conn = self._new_connection(f"{self.name}-w")
        replies: list[object] = []
        try:
            async with asyncio.timeout(self._confirm_timeout_s):
                await conn.send_packed_command(packed, check_health=False)
                for _ in range(count):
                    try:
                        replies.append(await conn.read_response())
                    except ResponseError as exc:
                        replies.append(exc)
        except BaseException:
            # A reply may be half read: this connection's stream can no longer be trusted.
            self._writer_conn = None
            await conn.disconnect(nowait=True)
            raise
        return replies

    # -- the pub/sub link --

    async def _listen_loop(self) -> None:
        delay = 0.05
        while True:
            conn = self._new_connection(self.name)
            try:
                await conn.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                loop = asyncio.get_running_loop()
                self._last_reply = self._last_ping = loop.time()
                self._links += 1
                presence = f"{self._prefix}node:{self.name}:{self._links}".encode()
                # Before any user channel: until Redis confirms it, blocks are published.
                await conn.send_command("SUBSCRIBE", presence)
                self._link = conn
                self._linked.set()
                self._dirty.update(dict.fromkeys(self._local))
                self._wake_control.set()
                delay = 0.05
                while True:
                    reply = await conn.read_response()
                    self._last_reply = loop.time()
                    self._on_reply(reply)
            except _LINK_ERRORS as exc:
                log.warning(
                    "the pub/sub connection to Redis at %s is down (%s); reconnecting",
                    self._where,
                    type(exc).__name__,
                )
            finally:
                if self._link is conn:
                    self._link_lost()
                await conn.disconnect(nowait=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max_s)

    def _new_connection(self, name: str) -> AbstractConnection:
        """A connection of its own (not the pool's), named for ``CLIENT LIST``; reads wait
        as long as they must (the callers bound them)."""
        assert self._pool is not None
        kwargs = {**self._pool.connection_kwargs, "client_name": name, "socket_timeout": None}
        conn: AbstractConnection = self._pool.connection_class(**kwargs)
        return conn

    def _on_reply(self, reply: Any) -> None:
        kind = reply[0]
        if kind == b"message":
            self._deliver(reply[1], reply[2])
        elif kind == b"subscribe" or kind == b"unsubscribe":
            channel = reply[1]
            if not channel.startswith(self._user_prefix):
                self._presence = bulk(channel)  # this link's: only it subscribes to it
                return
            self._acked(channel[len(self._user_prefix) :].decode())

    def _deliver(self, channel: bytes, data: bytes) -> None:
        if data.startswith(self._tag_line):
            return  # this node's own events: delivered here when published
        subs = self._local.get(channel[len(self._user_prefix) :].decode())
        if not subs:
            return
        if data == _GAP:
            for sub in tuple(subs):
                sub.gap()
            return
        # The sending node's tag, then a block: one run's consecutive events of one numbering,
        # in order, handed to each subscriber whole (as publish_batch would).
        decode = RunEvent.decode
        try:
            events = [decode(frame) for frame in frames(data)]
        except Exception:
            self._deliver_each(channel, data, subs)
            return
        if events:
            for sub in tuple(subs):
                sub.deliver(events)

    def _deliver_each(self, channel: bytes, data: bytes, subs: list[_Subscription]) -> None:
        """A message holding a frame that is not a run event: the others go one by one."""
        for frame in frames(data):
            try:
                event = RunEvent.decode(frame)
            except Exception:
                log.exception("an event on %r is not a run event; dropped", channel)
                continue
            for sub in tuple(subs):
                try:
                    sub.handler(event)
                except Exception:  # one broken connection must not stop the others' delivery
                    log.exception("event handler failed")

    def _acked(self, user_id: str) -> None:
        due = self._acks_due.get(user_id, 0) - 1
        if due > 0:
            self._acks_due[user_id] = due
            return
        self._acks_due.pop(user_id, None)
        if user_id in self._sent:
            self._confirmed.add(user_id)
            if user_id in self._local:
                self._holding.add(user_id)
            self._in_effect(user_id)
        elif user_id not in self._local:
            _resolve(self._waiters.pop(user_id, None))  # its subscriber left before the reply

    def _in_effect(self, user_id: str) -> None:
        _resolve(self._waiters.pop(user_id, None))
        for sub in tuple(self._local.get(user_id, ())):
            if sub.missed:
                sub.missed = False
                sub.gap()

    def _link_lost(self) -> None:
        self._link = None
        self._presence = b""
        self._holding.clear()
        self._leaving.clear()
        self._sent.clear()
        self._acks_due.clear()
        self._confirmed.clear()
        self._dirty.clear()
        for subs in self._local.values():
            for sub in subs:
                sub.missed = True
        for waiter in self._waiters.values():
            _resolve(waiter)
        self._waiters.clear()

    async def _control_loop(self) -> None:
        """Send the (un)subscriptions the local subscribers need, and keep-alive pings."""
        while True:
            try:
                async with asyncio.timeout(self._ping_interval_s):
                    await self._wake_control.wait()
            except TimeoutError:
                pass
            self._wake_control.clear()
            conn = self._link
            if conn is None:
                continue
            subscribe: list[str] = []
            unsubscribe: list[str] = []
            self._dirty.update(dict.fromkeys(self._leaving))
            writes = self._writes
            for user_id in self._dirty:
                wanted, sent = user_id in self._local, user_id in self._sent
                if wanted and not sent:
                    subscribe.append(user_id)
                    self._sent.add(user_id)
                elif sent and not wanted:
                    # Writes sent while the node held the channel may skip publishing (see
                    # _APPEND): Redis must run them before it unsubscribes the node.
                    self._holding.discard(user_id)
                    if writes.done < self._leaving.setdefault(user_id, writes.queued):
                        continue  # looked at again as the writer gets replies
                    del self._leaving[user_id]
                    unsubscribe.append(user_id)
                    self._sent.discard(user_id)
                    self._confirmed.discard(user_id)
                else:
                    if wanted and user_id in self._leaving:  # back before it left
                        del self._leaving[user_id]
                        if user_id in self._confirmed:
                            self._holding.add(user_id)
                    continue
                self._acks_due[user_id] = self._acks_due.get(user_id, 0) + 1
            self._dirty.clear()
            now = asyncio.get_running_loop().time()
            try:
                if subscribe:
                    await conn.send_command("SUBSCRIBE", *map(self._channel, subscribe))
                if unsubscribe:
                    await conn.send_command("UNSUBSCRIBE", *map(self._channel, unsubscribe))
                if now - self._last_reply > 3 * self._ping_interval_s:
                    log.warning("Redis at %s stopped answering pings; reconnecting", self._where)
                    await conn.disconnect(nowait=True)
                elif now - self._last_ping >= self._ping_interval_s:
                    self._last_ping = now
                    await conn.send_command("PING")
            except _LINK_ERRORS:
                await conn.disconnect(nowait=True)  # the listener sees it and reconnects

    # -- names --

    def _stream(self, run_id: str) -> str:
        return f"{self._prefix}run:{run_id}"

    def _channel(self, user_id: str) -> bytes:
        return self._user_prefix + user_id.encode()

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


def _resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)
