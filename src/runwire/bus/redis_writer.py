"""The Redis bus's writer: a node's writes to Redis (blocks of events, releases, gap notices) in
one queue, sent in order on a connection of their own, that survives Redis going away.

A publisher does not wait for Redis: its events join their run's open block in the queue (only
past ``max_unsent`` queued writes does it wait). The writer task takes the whole queue as soon as
it is free and sends it in round trips of ~1,000 events, packed by hand (a client library's
pipeline costs more per command than Redis takes to run it). While Redis does not answer, the
writes wait in order and go out once it is back (the append script skips what a lost reply had
appended already); past ``max_backlog`` queued writes, a run's events are dropped from live
delivery, its stream deleted (the store serves it) and its user sent a gap notice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from runwire.backlog import Backlog
from runwire.backoff import Backoff
from runwire.bus.redis_blocks import (
    APPEND_SCRIPT,
    BLOCK_EVENTS,
    FENCE_SUFFIX,
    NO_KEY,
    Block,
    GapNotice,
    Names,
    Release,
    Renumber,
    Write,
    append_call,
    bulk,
    command,
)
from runwire.bus.redis_channels import ChannelTable
from runwire.events.model import RunEvent

__all__ = ["GAP", "LINK_ERRORS", "BusWriter"]

log = logging.getLogger(__name__)

LINK_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
"""What a lost or silent Redis connection raises."""

GAP = b"gap"
"""The message on a user's channel saying a node dropped some of the user's events."""

_EVENTS_PER_ROUND_TRIP = 1000  # at least, unless fewer are queued


class BusWriter:
    """One node's ordered writes to Redis. Nothing is sent until the bus runs :meth:`run` (its
    task) with ``running`` set; ``channels`` says which channels the node holds as each call is
    built, and ``on_answered`` is called after a round trip while a channel waits for it."""

    def __init__(
        self,
        *,
        tag: bytes,
        names: Names,
        channels: ChannelTable,
        writes: Backlog,
        connect: Callable[[], AbstractConnection],
        on_answered: Callable[[], None],
        where: str,
        stream_maxlen: int,
        stream_ttl_s: int,
        max_unsent: int,
        max_backlog: int,
        timeout_s: float,
        retry_max_s: float,
    ) -> None:
        self._tag = tag
        self._names = names
        self._channels = channels
        self._connect = connect
        self._on_answered = on_answered
        self._where = where
        self._maxlen_bulk = bulk(str(stream_maxlen).encode())
        self._ttl_bulk = bulk(str(stream_ttl_s).encode())
        self._ttl = str(stream_ttl_s).encode()
        self._max_unsent = max_unsent
        self._max_backlog = max_backlog
        self._timeout_s = timeout_s
        self._retry_max_s = retry_max_s
        self.running = False
        """Set by the bus while it runs: a write queued otherwise raises RuntimeError."""
        # Writes in the order they go to Redis, counted, so a caller can wait until those
        # queued before it are sent.
        self._outbox: list[Write] = []
        self._open: dict[str, Block] = {}  # per run, its block in the outbox still taking events
        self.writes = writes
        """Writes queued, and sent (or given up on)."""
        self._wake = asyncio.Event()
        self._degraded = False  # Redis does not answer: nobody waits for the writer
        self._gap_users: set[str] = set()  # their events were dropped: tell their sockets
        self._broken_runs: set[str] = set()  # their streams have a hole: publish, do not append
        self._forget_runs: set[str] = set()  # broken runs whose streams are still to be deleted
        self.held: set[str] = set()
        """Runs with events queued or in Redis, not yet released."""
        self._conn: AbstractConnection | None = None

    # -- queueing (the publishers' side) --

    def queue_event(self, user_id: str, event: RunEvent) -> bool:
        """Queue ``event`` for Redis; True when runs should wait for Redis to catch up."""
        # Called once per event of every run: the block's checks and counts are written out
        # here rather than called (each call costs about as much as the check it makes).
        run_id = event.run_id
        writes = self.writes
        unsent = writes.queued - writes.done
        if unsent >= self._max_backlog:
            # Redis has been away long enough to fill the queue: other nodes will not get this
            # event live (it is stored); the user's sockets are told to resume once it is back.
            self.held.add(run_id)
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
                self.held.add(run_id)
                block = self._open[run_id] = self.block(user_id, event)
                self._outbox.append(block)
                self._wake.set()
            block.add(event)
            writes.queued += 1
        # Redis takes writes slower than runs make them: runs wait rather than memory grow.
        return unsent + 1 >= self._max_unsent

    def queue_batch(self, user_id: str, events: Sequence[RunEvent]) -> bool:
        """Queue ``events`` (not empty) for Redis as one step, in their run's open block or a
        new one; False (nothing queued) when they must go one by one: the queue is near its
        bound, or the events are not one numbering's consecutive run of at most a block."""
        first, last = events[0], events[-1]
        count = len(events)
        writes = self.writes
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
            self.held.add(first.run_id)
            block = self._open[first.run_id] = self.block(user_id, first)
            self._outbox.append(block)
            self._wake.set()
        block.wires += [event.wire for event in events]
        block.next_seq += count
        writes.queued += count
        return True

    @property
    def behind(self) -> bool:
        """Runs should wait for Redis to catch up (see :meth:`queue_event`)."""
        writes = self.writes
        return writes.queued - writes.done >= self._max_unsent

    def release(self, run_id: str) -> None:
        """Queue the deletion of the run's stream, behind its events (so a late write cannot
        bring the stream back)."""
        self.held.discard(run_id)
        self._names.forget(run_id)
        self._open.pop(run_id, None)
        self._enqueue(Release(run_id))

    def renumber(self, run_id: str, epoch: str) -> None:
        """Queue the run's fence (its new epoch, for as long as a stream lives) and the deletion
        of what its stream holds; the append script then drops blocks of any other epoch."""
        self._open.pop(run_id, None)
        self._enqueue(Renumber(run_id, epoch))

    async def caught_up(self) -> None:
        """Wait until every write queued so far is sent; not while Redis is away (the writes
        wait in order for it; the caller does not)."""
        if not self._degraded:
            await self.writes.caught_up()

    async def room(self) -> None:
        """A publisher's wait when :attr:`behind`: until fewer than ``max_unsent`` of the writes
        queued so far are unsent (one round trip answered, not the whole queue drained: a drain
        would stop every run for it and start them all at once); not while Redis is away."""
        if not self._degraded:
            await self.writes.below(self._max_unsent)

    async def drain(self) -> None:
        """Send what is queued; give up after the timeout (the events are stored anyway)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                # Polled: the writer may be waiting for Redis, announcing nothing meanwhile.
                while self.writes.pending:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        except TimeoutError:
            log.warning(
                "stopping with %d bus writes unsent: Redis at %s does not take them",
                self.writes.pending,
                self._where,
            )

    async def disconnect(self) -> None:
        """Close the writer's connection (after its task has stopped)."""
        if self._conn is not None:
            await self._conn.disconnect()
            self._conn = None

    def _enqueue(self, write: Write) -> None:
        self._check_running()
        self._outbox.append(write)
        self.writes.add()
        self._wake.set()

    def _check_running(self) -> None:
        # Not running: say so rather than queue for a writer that is not there.
        if not self.running:
            raise RuntimeError("RedisBus is not running: use `async with bus.running()`")

    def _broken(self, user_id: str, run_id: str) -> None:
        self._gap_users.add(user_id)
        if run_id not in self._broken_runs:
            self._broken_runs.add(run_id)
            self._forget_runs.add(run_id)

    # -- sending (the writer task) --

    async def run(self) -> None:
        """The writer task: send what is queued, in order, until cancelled."""
        backoff = Backoff(max_s=self._retry_max_s)
        while True:
            if not self._outbox:
                if self._gap_users or self._forget_runs:
                    for notice in self._notices():
                        self._enqueue(notice)
                    continue
                self._wake.clear()
                await self._wake.wait()
                continue
            batch, self._outbox = self._outbox, []
            self._open.clear()  # the blocks taken are sent as they are: later events open new ones
            while batch:
                try:
                    await self._write(batch)
                except LINK_ERRORS as exc:
                    if not self._degraded:
                        self._degraded = True
                        self.writes.release()
                        log.warning(
                            "Redis at %s does not answer (%s): bus writes wait in order until "
                            "it is back",
                            self._where,
                            type(exc).__name__,
                        )
                    await backoff.wait()
                except Exception:
                    count = sum(write.count for write in batch)
                    log.exception("Redis refused %d bus writes; their live delivery is lost", count)
                    for write in batch:
                        if isinstance(write, Block):
                            self._broken(write.user_id, write.run_id)
                    self.writes.finish(count)
                    batch = []
            backoff.reset()
            if self._degraded:
                self._degraded = False
                log.warning("Redis at %s answers again: queued bus writes are sent", self._where)

    def _notices(self) -> list[Write]:
        """Forget the streams with a hole (the store serves them), then tell the users."""
        notices: list[Write] = [Release(run_id) for run_id in self._forget_runs]
        notices += [GapNotice(user_id) for user_id in self._gap_users]
        self._forget_runs.clear()
        self._gap_users.clear()
        return notices

    async def _write(self, batch: list[Write]) -> None:
        """Send ``batch`` in chunks of one round trip each; what was sent leaves ``batch``.
        Events queued one after another go as one script call."""
        while batch:
            count = end = 0
            for write in batch:  # up to ~1,000 events a round trip
                count += write.count
                end += 1
                if count >= _EVENTS_PER_ROUND_TRIP:
                    break
            chunk = batch[:end]
            commands = self._commands(chunk)
            replies = await self.round_trip(b"".join(commands), len(commands))
            if any(isinstance(r, NoScriptError) for r in replies):
                # Redis restarted (no scripts kept): load the script and send the chunk again;
                # the script skips what it had appended, so nothing is delivered twice.
                (loaded,) = await self.round_trip(
                    command(b"SCRIPT", b"LOAD", APPEND_SCRIPT.encode()), 1
                )
                if isinstance(loaded, Exception):
                    raise loaded
                continue
            failed = [r for r in replies if isinstance(r, Exception)]
            if failed:
                raise failed[0]
            del batch[:end]
            self.writes.finish(count)
            if self._channels.leaving:
                self._on_answered()  # an UNSUBSCRIBE may have waited for these replies

    def _commands(self, chunk: list[Write]) -> list[bytes]:
        """``chunk`` as Redis commands, in order: blocks queued one after another are one
        script call."""
        commands: list[bytes] = []
        blocks: list[Block] = []
        for write in chunk:
            if isinstance(write, Block):
                blocks.append(write)
                continue
            if blocks:
                commands.append(self.append_command(blocks))
                blocks = []
            if isinstance(write, Release):
                self._broken_runs.discard(write.run_id)
                commands.append(command(b"DEL", self._names.stream(write.run_id).encode()))
            elif isinstance(write, Renumber):
                stream = self._names.stream(write.run_id).encode()
                fence = stream + FENCE_SUFFIX
                commands.append(command(b"SET", fence, write.epoch.encode(), b"EX", self._ttl))
                commands.append(command(b"DEL", stream))
            else:
                commands.append(command(b"PUBLISH", self._names.channel(write.user_id), GAP))
        if blocks:
            commands.append(self.append_command(blocks))
        return commands

    def block(self, user_id: str, event: RunEvent) -> Block:
        """A new block for ``event``'s run, with its names encoded once and reused."""
        self._check_running()
        names = self._names
        run = names.run(event.run_id, event.epoch)
        return Block(run, names.channel_bulk(user_id), event, user_id, self._tag)

    def append_command(self, blocks: list[Block]) -> bytes:
        """One call of the append script for ``blocks``, in RESP, built by hand as it is sent:
        which channels the node holds, and which runs' streams have a hole, may have changed
        since the blocks were queued."""
        broken, held = self._broken_runs, self._channels.held
        presence = self._channels.presence
        return append_call(
            self._maxlen_bulk,
            self._ttl_bulk,
            NO_KEY if presence is None else bulk(presence),
            [
                (
                    # A run whose stream has a hole is published only.
                    NO_KEY if block.run_id in broken else block.run[0],
                    block.channel,
                    block.run[2],
                    block.first,
                    block.next_seq - 1,
                    block.wires,  # the node's tag first
                    block.user_id in held,
                )
                for block in blocks
            ],
        )

    async def round_trip(self, packed: bytes, count: int) -> list[object]:
        """Send ``packed`` (``count`` commands) and read their replies (an error Redis
        answered is a reply); a failure leaves the connection to be made afresh."""
        conn = self._conn
        if conn is None:
            conn = self._conn = self._connect()
        replies: list[object] = []
        try:
            async with asyncio.timeout(self._timeout_s):
                await conn.send_packed_command(packed, check_health=False)
                for _ in range(count):
                    try:
                        replies.append(await conn.read_response())
                    except ResponseError as exc:
                        replies.append(exc)
        except BaseException:
            # A reply may be half read: this connection's stream can no longer be trusted.
            self._conn = None
            await conn.disconnect(nowait=True)
            raise
        return replies
