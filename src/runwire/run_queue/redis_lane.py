"""The run queue's lane: a run's own lease commands (``acquire``, ``release``, ``ack``) on a
connection of their own, packed by hand: those asked for while one round trip is out go together
in the next. A lease taken and let go of cost 180 µs of CPU through the client library on a
loaded node, 134 µs so (docs/benchmarks.md, "Several nodes (issue 15, branch redisq)").

Also how the run queue's loops tell a cancellation from a link error: redis-py may turn one into
the other, or swallow it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import BlockingConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError, ResponseError

from runwire.errors import DependencyUnavailable

__all__ = ["LINK_ERRORS", "Lane", "command", "reraise_cancel", "stop_if_cancelled"]

LINK_ERRORS = (RedisError, OSError, TimeoutError)
"""What a lost, silent or refusing Redis raises to the run queue."""


def command(*parts: bytes) -> bytes:
    """One command in RESP, as Redis reads it."""
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


class Lane:
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
                        stop_if_cancelled()
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
            except LINK_ERRORS as exc:
                reraise_cancel(exc)  # a lane being stopped does not retry
                if not stale:
                    raise
                replies = await self._round_trip(packed, len(batch))  # on a new connection
        except LINK_ERRORS as exc:
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


def reraise_cancel(exc: BaseException) -> None:
    """redis-py may turn a cancellation that lands mid-command into a connection error; a task
    being cancelled must stop, not retry (retrying also waits on a connection the cancelled
    command may still hold)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc


def stop_if_cancelled() -> None:
    """redis-py may also swallow a cancellation whole: one that lands while ``get_message``'s
    own timeout expires is taken for that timeout (seen when a queue stops just after it
    starts: its stop listener went on waiting for messages, and the stop for it). A task being
    cancelled stops at its next look."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
