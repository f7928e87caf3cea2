"""The Redis run queue: several nodes share one Redis.

Layout (docs/decisions.md says why):

- ``{prefix}dispatch`` is a Stream of jobs (fields ``r``, ``t``, ``u``: run, thread and user ids;
  ``c``, when a trace is recorded: the asking message's W3C traceparent),
  read through the consumer group ``workers``: each job goes to one node (``XREADGROUP``), which
  acknowledges it (``XACK``) once it has claimed the run or found it claimed. A job a node read and
  never acknowledged (it died) is taken over by another after a lease time (``XAUTOCLAIM``). The
  stream is capped (``MAXLEN ~``); the store, not the stream, is the record of queued runs.
- ``{prefix}lease:{run_id}`` names the node running the run, with an expiry: see
  ``redis_leases`` (its leases, renewed by a heartbeat), sent on ``redis_lane`` (a run's own
  lease commands, packed by hand on a connection of their own).
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

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError, ResponseError

from runwire.background import stop
from runwire.backoff import Backoff
from runwire.config import safe_url
from runwire.errors import DependencyUnavailable
from runwire.redis_pool import connection_pool
from runwire.run_queue.base import Job, LostHandler, RunQueue, StopHandler
from runwire.run_queue.redis_lane import (
    Lane,
    command,
    reraise_cancel,
    stop_if_cancelled,
)
from runwire.run_queue.redis_leases import Leases

__all__ = ["RedisRunQueue"]

log = logging.getLogger(__name__)

_GROUP = "workers"


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
        self._lane: Lane | None = None  # a run's lease commands, packed
        self._leases = Leases(
            prefix=prefix,
            node_id=self._node_id,
            lease_s=lease_s,
            clock=clock,
            packed=self._packed,
            call=self._call,
        )
        self._stop_handler: StopHandler | None = None
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
        self._lane = lane = Lane(pool, f"runwire-runs-{self._node_id}", reply_s)
        lane_task = asyncio.create_task(lane.loop(), name="run-lease-lane")
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._ensure_group()
            tasks.append(asyncio.create_task(self._leases.heartbeat(), name="run-lease-heartbeat"))
            tasks.append(asyncio.create_task(self._listen_stops(), name="run-stop-listener"))
            yield self
        finally:
            await stop(*tasks)
            await self._leases.release_all()
            await stop(lane_task)
            self._lane = None
            await self._reader.aclose()
            await self._redis.aclose()
            await reader_pool.disconnect()
            await pool.disconnect()
            self._redis = self._reader = None

    # -- the port: jobs --

    async def submit(self, job: Job) -> None:
        fields = {"r": job.run_id, "t": job.thread_id, "u": job.user_id}
        if job.trace:
            fields["c"] = job.trace
        await self._call(
            lambda r: r.xadd(self._stream, fields, maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
        )

    async def take(self, limit: int, wait_s: float | None = None) -> list[Job]:
        deadline = None if wait_s is None else self._clock() + wait_s
        backoff = Backoff()
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
                reraise_cancel(exc)
                log.warning("run queue: Redis at %s does not answer (%s)", self._where, exc)
                await backoff.wait()
                continue
            backoff.reset()
            if jobs:
                return jobs

    async def ack(self, job: Job) -> None:
        if job.ref:
            await self._packed(
                command(b"XACK", self._stream.encode(), _GROUP.encode(), job.ref.encode())
            )

    # -- the port: leases (redis_leases) --

    async def acquire(self, run_id: str) -> bool:
        return await self._leases.acquire(run_id)

    async def release(self, run_id: str) -> None:
        await self._leases.release(run_id)

    def holds(self, run_id: str) -> bool:
        return self._leases.holds(run_id)

    async def confirm(self, run_id: str) -> bool:
        return await self._leases.confirm(run_id)

    async def expired(self, run_ids: list[str]) -> list[str]:
        return await self._leases.expired(run_ids)

    def on_lost(self, handler: LostHandler) -> None:
        self._leases.lost_handler = handler

    # -- the port: stops, and Redis itself --

    async def stop(self, run_id: str, reason: str) -> None:
        await self._call(lambda r: r.publish(self._stop_channel, f"{run_id} {reason}"))

    def on_stop(self, handler: StopHandler) -> None:
        self._stop_handler = handler

    async def ping(self) -> None:
        await self._call(lambda r: r.ping())

    # -- inside --

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
            reraise_cancel(exc)
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

    async def _listen_stops(self) -> None:
        assert self._redis is not None
        backoff = Backoff()
        while True:
            pubsub: PubSub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._stop_channel)
                backoff.reset()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    stop_if_cancelled()
                    if message is None or message.get("type") != "message":
                        continue
                    run_id, _, reason = message["data"].decode().partition(" ")
                    if self._stop_handler is not None:
                        self._stop_handler(run_id, reason or "stopped")
            except (RedisError, OSError) as exc:
                reraise_cancel(exc)
                log.warning("run queue: stop channel lost (%s); reconnecting", type(exc).__name__)
                await backoff.wait()
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
