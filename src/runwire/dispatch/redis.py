"""The Redis run queue: several nodes share one Redis.

Layout (docs/decisions.md says why):

- ``{prefix}dispatch`` is a Stream of jobs (fields ``r``, ``t``, ``u``: run, thread and user ids;
  ``c``, when a trace is recorded: the asking message's W3C traceparent),
  read through the consumer group ``workers``: each job goes to one node (``XREADGROUP``), which
  acknowledges it (``XACK``) once it has claimed the run or found it claimed. A job a node read and
  never acknowledged (it died) is taken over by another after a lease time (``XAUTOCLAIM``). The
  stream is capped (``MAXLEN ~``); the store, not the stream, is the record of queued runs.
- ``{prefix}lease:{run_id}`` names the node running the run, with an expiry (``PX``). The node
  renews all its leases in one script call every fifth of the lease time; a lease found missing
  (Redis restarted) is put back, one found held by another node is lost (the run stops here).
  A node trusts a lease for four fifths of its time after the last renewal was sent, so it has
  stopped acting for a run well before another node can see the lease expire. A run that finds
  its lease no longer trusted (the node was paused, its heartbeat late) asks Redis once
  (``confirm``): a lease still this node's is renewed and the run goes on; only one another node
  holds, or one that is gone, stops it.
- A run's own lease commands (``acquire``, ``release``, ``ack``) go on a connection of their own,
  packed by hand: those asked for while one round trip is out go together in the next
  (:class:`_Lane`): a lease taken and let go of cost 180 µs of CPU through the client library
  on a loaded node, 134 µs so (docs/benchmarks.md, "Several nodes (issue 15, branch redisq)").
- ``{prefix}stop`` is a pub/sub channel of stop requests (``<run_id> <reason>``); the node running
  the run stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError, ResponseError

from runwire.background import stop
from runwire.config import safe_url
from runwire.dispatch.base import Job, LostHandler, RunQueue, StopHandler
from runwire.errors import DependencyUnavailable
from runwire.redis_pool import connection_pool

__all__ = ["RedisRunQueue"]

log = logging.getLogger(__name__)

_GROUP = "workers"

# KEYS: the leases to renew. ARGV[1]: this node; ARGV[2]: lease ms.
# Returns, per key, 1 (renewed or put back) or 0 (another node holds it).
_RENEW = """
local out = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder == false or holder == ARGV[1] then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

# KEYS[1]: a lease. ARGV[1]: this node; ARGV[2]: lease ms. Renews it only if it is this node's
# (never puts back one that expired: another node may have ended the run meanwhile).
_CONFIRM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# KEYS[1]: a lease. ARGV[1]: this node. Deletes it only if it is this node's.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


_RELEASE_BYTES = _RELEASE.encode()
_LINK_ERRORS = (RedisError, OSError, TimeoutError)


def _command(*parts: bytes) -> bytes:
    """One command in RESP, as Redis reads it."""
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


class _Lane:
    """Commands on a connection of their own, packed by hand: the commands asked for while one
    round trip is out go together in the next (one write; the replies read in order). A round
    trip that fails fails its commands (``DependencyUnavailable``), once retried on a new
    connection if the one it used had served before (it may be stale: Redis restarted)."""

    def __init__(self, pool: BlockingConnectionPool, name: str, timeout_s: float) -> None:
        self._pool = pool
        self._name = name
        self._timeout_s = timeout_s
        self._conn: AbstractConnection | None = None
        self._used = False  # the connection has had a round trip: it may be stale
        self._queued: list[tuple[bytes, asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()

    async def call(self, command: bytes) -> Any:
        """Redis's reply to ``command`` (a ``ResponseError`` it answered is raised)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.append((command, future))
        self._wake.set()
        reply = await future
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def loop(self) -> None:
        """Sends what is queued, as it comes, until cancelled; then fails what is left."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queued:
                    batch, self._queued = self._queued, []
                    try:
                        await self._send(batch)
                        # redis-py may have taken a cancellation for a link error (its commands
                        # then failed) or swallowed it: a lane being stopped stops here.
                        _stop_if_cancelled()
                    except BaseException:
                        self._queued = batch + self._queued  # failed below, with the rest
                        raise
        finally:
            for _, future in self._queued:
                if not future.done():
                    future.set_exception(DependencyUnavailable("the run queue is not running"))
            self._queued = []
            if self._conn is not None:
                await self._conn.disconnect(nowait=True)
                self._conn = None

    async def _send(self, batch: list[tuple[bytes, asyncio.Future[Any]]]) -> None:
        packed = b"".join(command for command, _ in batch)
        stale = self._conn is not None and self._used  # it may be: Redis may have restarted
        try:
            try:
                replies = await self._round_trip(packed, len(batch))
            except _LINK_ERRORS as exc:
                _reraise_cancel(exc)  # a lane being stopped does not retry
                if not stale:
                    raise
                replies = await self._round_trip(packed, len(batch))  # on a new connection
        except _LINK_ERRORS as exc:
            failure = DependencyUnavailable(
                f"the run queue (Redis) does not answer ({type(exc).__name__}); try again"
            )
            replies = [failure] * len(batch)
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue  # its caller was cancelled meanwhile
            if isinstance(reply, DependencyUnavailable):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _round_trip(self, packed: bytes, count: int) -> list[Any]:
        conn = self._conn
        if conn is None:
            kwargs = {**self._pool.connection_kwargs, "client_name": self._name}
            conn = self._conn = self._pool.connection_class(**kwargs)
            self._used = False
        replies: list[Any] = []
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
        self._used = True
        return replies


def _reraise_cancel(exc: BaseException) -> None:
    """redis-py may turn a cancellation that lands mid-command into a connection error; a task
    being cancelled must stop, not retry (retrying also waits on a connection the cancelled
    command may still hold)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc


def _stop_if_cancelled() -> None:
    """redis-py may also swallow a cancellation whole: one that lands while ``get_message``'s
    own timeout expires is taken for that timeout (seen when a queue stops just after it
    starts: its stop listener went on waiting for messages, and the stop for it). A task being
    cancelled stops at its next look."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class RedisRunQueue(RunQueue):
    """Nothing connects until :meth:`running`."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "runwire:",
        lease_s: float = 10.0,
        block_s: float = 1.0,
        stream_maxlen: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._where = safe_url(url)
        self._prefix = prefix
        self._stream = f"{prefix}dispatch"
        self._stop_channel = f"{prefix}stop"
        self._lease_ms = max(1, int(lease_s * 1000))
        self._lease_s = lease_s
        self._block_ms = max(1, int(block_s * 1000))
        self._maxlen = stream_maxlen
        self._clock = clock
        self._node_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._redis: Redis | None = None
        self._reader: Redis | None = None  # blocking reads on a connection of their own
        self._lane: _Lane | None = None  # a run's lease commands, packed
        self._node_bulk = self._node_id.encode()
        self._lease_ms_bytes = str(self._lease_ms).encode()
        # Run id -> until when it is trusted: four fifths of the lease after its last good
        # renewal was sent (kept as that end, as :meth:`holds` runs before every event).
        self._renewed: dict[str, float] = {}
        self._trust_s = lease_s * 0.8
        self._stop_handler: StopHandler | None = None
        self._lost_handler: LostHandler | None = None
        self._last_autoclaim = 0.0

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def shared(self) -> bool:
        return True

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RedisRunQueue]:
        """Connect, make the consumer group, start the heartbeat and the stop listener."""
        reply_s = self._block_ms / 1000 + 5.0  # a blocking read answers within its block
        pool = connection_pool(self._url, timeout_s=5.0, socket_timeout_s=reply_s)
        # Never an unbounded wait for the one reading connection.
        reader_pool = connection_pool(
            self._url, timeout_s=5.0, max_connections=1, socket_timeout_s=reply_s, wait_s=reply_s
        )
        self._redis = Redis(connection_pool=pool)
        self._reader = Redis(connection_pool=reader_pool)
        self._lane = lane = _Lane(pool, f"runwire-runs-{self._node_id}", reply_s)
        lane_task = asyncio.create_task(lane.loop(), name="run-lease-lane")
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._ensure_group()
            tasks.append(asyncio.create_task(self._heartbeat(), name="run-lease-heartbeat"))
            tasks.append(asyncio.create_task(self._listen_stops(), name="run-stop-listener"))
            yield self
        finally:
            await stop(*tasks)
            await self._release_all()
            await stop(lane_task)
            self._lane = None
            await self._reader.aclose()
            await self._redis.aclose()
            await reader_pool.disconnect()
            await pool.disconnect()
            self._redis = self._reader = None

    # -- the port --

    async def submit(self, job: Job) -> None:
        fields = {"r": job.run_id, "t": job.thread_id, "u": job.user_id}
        if job.trace:
            fields["c"] = job.trace
        await self._call(
            lambda r: r.xadd(self._stream, fields, maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
        )

    async def take(self, limit: int, wait_s: float | None = None) -> list[Job]:
        deadline = None if wait_s is None else self._clock() + wait_s
        backoff = 0.05
        while True:
            block_ms = self._block_ms
            if deadline is not None:
                left = deadline - self._clock()
                if left <= 0:
                    return []
                block_ms = max(1, min(block_ms, int(left * 1000)))
            try:
                jobs = await self._take_once(limit, block_ms)
            except (RedisError, OSError) as exc:
                _reraise_cancel(exc)
                log.warning("run queue: Redis at %s does not answer (%s)", self._where, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.05
            if jobs:
                return jobs

    async def ack(self, job: Job) -> None:
        if job.ref:
            command = _command(b"XACK", self._stream.encode(), _GROUP.encode(), job.ref.encode())
            await self._packed(command)

    async def acquire(self, run_id: str) -> bool:
        sent = self._clock()
        key = self._lease(run_id).encode()
        command = _command(b"SET", key, self._node_bulk, b"PX", self._lease_ms_bytes, b"NX")
        taken = await self._packed(command)
        if taken:
            self._renewed[run_id] = sent + self._trust_s
        return bool(taken)

    async def release(self, run_id: str) -> None:
        self._renewed.pop(run_id, None)
        key = self._lease(run_id).encode()
        # The script's text each time (as EVAL): Redis keeps it compiled, and one Redis
        # restarted has it at once.
        command = _command(b"EVAL", _RELEASE_BYTES, b"1", key, self._node_bulk)
        await self._packed(command)

    def holds(self, run_id: str) -> bool:
        until = self._renewed.get(run_id)
        return until is not None and self._clock() < until

    async def confirm(self, run_id: str) -> bool:
        if run_id not in self._renewed:
            return False  # let go of, or found lost by the heartbeat: never taken back here
        sent = self._clock()
        try:
            kept = await self._call(
                lambda r: r.eval(_CONFIRM, 1, self._lease(run_id), self._node_id, self._lease_ms)
            )
        except DependencyUnavailable:
            return False
        if not kept or run_id not in self._renewed:
            return False
        # Still this node's in Redis: no other node can have taken the run, so it may go on.
        self._renewed[run_id] = max(self._renewed[run_id], sent + self._trust_s)
        return True

    async def expired(self, run_ids: list[str]) -> list[str]:
        gone: list[str] = []
        for start in range(0, len(run_ids), 500):
            chunk = run_ids[start : start + 500]
            keys = [self._lease(r) for r in chunk]
            holders = await self._mget(keys)
            gone.extend(run for run, holder in zip(chunk, holders, strict=True) if holder is None)
        return gone

    async def _mget(self, keys: list[str]) -> list[Any]:
        return list(await self._call(lambda r: r.mget(keys)))

    async def stop(self, run_id: str, reason: str) -> None:
        await self._call(lambda r: r.publish(self._stop_channel, f"{run_id} {reason}"))

    def on_stop(self, handler: StopHandler) -> None:
        self._stop_handler = handler

    def on_lost(self, handler: LostHandler) -> None:
        self._lost_handler = handler

    async def ping(self) -> None:
        await self._call(lambda r: r.ping())

    # -- inside --

    def _lease(self, run_id: str) -> str:
        return f"{self._prefix}lease:{run_id}"

    async def _packed(self, command: bytes) -> Any:
        if self._lane is None:
            raise DependencyUnavailable("the run queue is not running")
        try:
            return await self._lane.call(command)
        except ResponseError as exc:
            raise DependencyUnavailable(f"the run queue (Redis) refused: {exc}") from None

    async def _call(self, op: Callable[[Redis], Any]) -> Any:
        if self._redis is None:
            raise DependencyUnavailable("the run queue is not running")
        try:
            return await op(self._redis)
        except (RedisError, OSError) as exc:
            _reraise_cancel(exc)
            raise DependencyUnavailable(
                f"the run queue (Redis) does not answer ({type(exc).__name__}); try again"
            ) from None

    async def _ensure_group(self) -> None:
        assert self._redis is not None
        try:
            await self._redis.xgroup_create(self._stream, _GROUP, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise DependencyUnavailable(f"the run queue (Redis) refused: {exc}") from None
        except (RedisError, OSError) as exc:
            raise DependencyUnavailable(
                f"the run queue (Redis) does not answer ({type(exc).__name__}); try again"
            ) from None

    async def _take_once(self, limit: int, block_ms: int) -> list[Job]:
        assert self._reader is not None and self._redis is not None
        now = self._clock()
        entries: list[Any] = []
        if now - self._last_autoclaim >= self._lease_s / 2:
            self._last_autoclaim = now
            # Jobs a dead node read and never acknowledged.
            reply = await self._redis.xautoclaim(
                self._stream, _GROUP, self._node_id, self._lease_ms, "0-0", count=limit
            )
            entries = [e for e in reply[1] if e and e[1]]
        if not entries:
            try:
                read: Any = await self._reader.xreadgroup(
                    _GROUP, self._node_id, {self._stream: ">"}, count=limit, block=block_ms
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self._ensure_group()  # Redis lost the stream (restarted empty)
                return []
            entries = read[0][1] if read else []
        return [
            Job(
                run_id=fields[b"r"].decode(),
                thread_id=fields[b"t"].decode(),
                user_id=fields[b"u"].decode(),
                trace=fields.get(b"c", b"").decode(),
                ref=entry_id.decode(),
            )
            for entry_id, fields in entries
        ]

    async def _heartbeat(self) -> None:
        interval = self._lease_s / 5
        while True:
            await asyncio.sleep(interval)
            runs = list(self._renewed)
            if not runs:
                continue
            sent = self._clock()
            try:
                held = await self._call(
                    lambda r, runs=runs: r.eval(  # type: ignore[misc]
                        _RENEW,
                        len(runs),
                        *[self._lease(x) for x in runs],
                        self._node_id,
                        str(self._lease_ms),
                    )
                )
            except DependencyUnavailable:
                held = None
            for i, run_id in enumerate(runs):
                if run_id not in self._renewed:
                    continue  # released meanwhile
                if held is not None and held[i] == 1:
                    self._renewed[run_id] = sent + self._trust_s
                elif held is not None or not self.holds(run_id):
                    # Another node holds it, or Redis has been away for most of the lease.
                    self._renewed.pop(run_id, None)
                    log.warning("lost the lease of run %s; stopping it here", run_id)
                    if self._lost_handler is not None:
                        self._lost_handler(run_id)

    async def _listen_stops(self) -> None:
        assert self._redis is not None
        backoff = 0.05
        while True:
            pubsub: PubSub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._stop_channel)
                backoff = 0.05
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    _stop_if_cancelled()
                    if message is None or message.get("type") != "message":
                        continue
                    run_id, _, reason = message["data"].decode().partition(" ")
                    if self._stop_handler is not None:
                        self._stop_handler(run_id, reason or "stopped")
            except (RedisError, OSError) as exc:
                _reraise_cancel(exc)
                log.warning("run queue: stop channel lost (%s); reconnecting", type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    async def _release_all(self) -> None:
        for run_id in list(self._renewed):
            with contextlib.suppress(DependencyUnavailable):
                await self.release(run_id)
