"""The Redis revocations: every node learns of every ended session, at once and after the fact.

Layout: ``{prefix}revoked`` is a sorted set whose members are the ended sessions' ids and whose
scores are when each stops mattering (epoch ms: its last access token's expiry); the set
expires with its last member. ``{prefix}revoked`` is also a pub/sub channel on which each
revocation is announced (``<sid> <until ms>``) as it is added, in the same script.

Each node keeps the set in memory (a :class:`MemoryRevocations`), so asking costs no round trip.
It learns new entries from the channel; it reads the whole set after subscribing, at start (a
node that starts late knows what ended before it) and after every reconnection (what ended while
its link was down is not lost; the watchers of those sessions are called then). A revocation
made while Redis does not answer is known on this node at once and sent when Redis answers
again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from runwire.background import stop
from runwire.backoff import Backoff
from runwire.config import safe_url
from runwire.errors import DependencyUnavailable
from runwire.redis_pool import connection_pool
from runwire.revocations.base import Revocations, RevokedHandler, Watch
from runwire.revocations.memory import MemoryRevocations

__all__ = ["RedisRevocations"]

log = logging.getLogger(__name__)

_LINK_ERRORS = (RedisError, OSError)

# KEYS[1]: the set. ARGV[1]: the channel, ARGV[2]: now (ms), then pairs of sid and until (ms).
# Drops what no longer matters, adds (a later `until` wins; ZADD GT would need Redis 6.2),
# announces each, and lets the set expire with its last member.
_REVOKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
for i = 3, #ARGV, 2 do
  local held = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if not held or tonumber(held) < tonumber(ARGV[i + 1]) then
    redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
  end
  redis.call('PUBLISH', ARGV[1], ARGV[i] .. ' ' .. ARGV[i + 1])
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', KEYS[1], last[2]) end
return 1
"""


class RedisRevocations(Revocations):
    """Revocations shared through Redis. Nothing connects until :meth:`running`."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "runwire:",
        timeout_s: float = 1.0,
        ping_interval_s: float = 5.0,
        retry_max_s: float = 2.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._url = url
        self._where = safe_url(url)
        self._key = f"{prefix}revoked"
        self._timeout_s = timeout_s
        self._ping_interval_s = ping_interval_s
        self._retry_max_s = retry_max_s
        self._wall = wall
        self._local = MemoryRevocations(wall)
        self._unsent: dict[str, float] = {}  # revocations Redis has not taken yet
        self._wake = asyncio.Event()
        self._linked = asyncio.Event()
        self._pool: BlockingConnectionPool | None = None
        self._redis: Redis | None = None
        self._script: AsyncScript | None = None
        self.name = f"runwire-revocations-{os.getpid()}-{secrets.token_hex(3)}"
        """This node's pub/sub connection's name in Redis's ``CLIENT LIST``."""

    # -- lifecycle --

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RedisRevocations]:
        """Subscribe and read the set; on exit send what is unsent (for a moment at most) and
        disconnect. Raises DependencyUnavailable if Redis does not answer at start."""
        pool = self._pool = connection_pool(self._url, timeout_s=self._timeout_s)
        redis = self._redis = Redis(connection_pool=pool)
        self._script = redis.register_script(_REVOKE)
        tasks = [
            asyncio.create_task(self._listen_loop(), name="redis-revocations-listener"),
            asyncio.create_task(self._send_loop(), name="redis-revocations-sender"),
        ]
        try:
            try:
                async with asyncio.timeout(self._timeout_s * 5):
                    await self._linked.wait()
            except TimeoutError:
                raise DependencyUnavailable(
                    f"could not read the ended sessions from Redis at {self._where}"
                ) from None
            yield self
            with contextlib.suppress(TimeoutError, *_LINK_ERRORS):
                async with asyncio.timeout(self._timeout_s):
                    await self._send_unsent()
        finally:
            await stop(*tasks)
            self._script = None
            await redis.aclose()
            await pool.disconnect()
            self._pool = self._redis = None

    # -- the port --

    async def revoke(self, sid: str, until: float) -> None:
        if self._script is None:
            raise RuntimeError("RedisRevocations is not running: use `async with .running()`")
        self._local.record(sid, until)
        self._unsent[sid] = max(until, self._unsent.get(sid, 0.0))
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._send_unsent()
        except (TimeoutError, *_LINK_ERRORS) as exc:
            log.warning(
                "Redis at %s does not answer (%s): an ended session is known on this node only "
                "until it does",
                self._where,
                type(exc).__name__,
            )
            self._wake.set()

    def is_revoked(self, sid: str) -> bool:
        return self._local.is_revoked(sid)

    def watch(self, sid: str, handler: RevokedHandler) -> Watch:
        return self._local.watch(sid, handler)

    @property
    def watching(self) -> int:
        return self._local.watching

    @property
    def linked(self) -> bool:
        """True while this node's pub/sub connection to Redis is up (and the set was read)."""
        return self._linked.is_set()

    # -- sending --

    async def _send_unsent(self) -> None:
        if not self._unsent or self._script is None:
            return
        batch, self._unsent = self._unsent, {}
        args: list[Any] = [self._key, self._ms(self._wall())]
        for sid, until in batch.items():
            args += (sid, self._ms(until))
        try:
            await self._script(keys=[self._key], args=args)
        except BaseException:
            for sid, until in batch.items():  # sent again later (adding twice is harmless)
                self._unsent[sid] = max(until, self._unsent.get(sid, 0.0))
            raise

    async def _send_loop(self) -> None:
        """Send what a revoke could not, with backoff, until Redis takes it."""
        backoff = Backoff(max_s=self._retry_max_s)
        while True:
            if not self._unsent:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                async with asyncio.timeout(self._timeout_s):
                    await self._send_unsent()
            except (TimeoutError, *_LINK_ERRORS):
                await backoff.wait()
                continue
            backoff.reset()
            log.warning("Redis at %s answers again: ended sessions sent to every node", self._where)

    # -- the pub/sub link --

    async def _listen_loop(self) -> None:
        backoff = Backoff(max_s=self._retry_max_s)
        while True:
            conn = self._new_connection()
            try:
                await conn.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                await conn.send_command("SUBSCRIBE", self._key)
                await self._read(conn)  # the subscription's confirmation
                # Subscribed first, then read: whatever ends from now on is also announced.
                await self._read_set()
                self._linked.set()
                backoff.reset()
                await self._listen(conn)
            except (TimeoutError, *_LINK_ERRORS) as exc:
                if self._linked.is_set():
                    log.warning(
                        "the revocations' pub/sub connection to Redis at %s is down (%s); "
                        "reconnecting",
                        self._where,
                        type(exc).__name__,
                    )
            finally:
                self._linked.clear()
                await conn.disconnect(nowait=True)
            await backoff.wait()

    async def _listen(self, conn: AbstractConnection) -> None:
        pinged = False
        while True:
            reply = await conn.read_response(timeout=self._ping_interval_s)
            if reply is None:  # quiet for a while: is Redis still there?
                if pinged:
                    raise TimeoutError("no answer to a ping")
                await conn.send_command("PING")
                pinged = True
                continue
            pinged = False
            if reply[0] == b"message":
                self._announced(reply[2])

    async def _read(self, conn: AbstractConnection) -> Any:
        reply = await conn.read_response(timeout=self._timeout_s)
        if reply is None:
            raise TimeoutError("Redis did not confirm the subscription")
        return reply

    async def _read_set(self) -> None:
        assert self._redis is not None
        entries = await self._redis.zrangebyscore(
            self._key, self._ms(self._wall()), "+inf", withscores=True
        )
        for sid, until_ms in cast(list[tuple[bytes, float]], entries):
            self._local.record(sid.decode(), until_ms / 1000)

    def _announced(self, data: bytes) -> None:
        sid, _, until_ms = data.decode(errors="replace").partition(" ")
        try:
            until = int(until_ms) / 1000
        except ValueError:
            log.warning("a message on %s is not a revocation; ignored", self._key)
            return
        self._local.record(sid, until)

    def _new_connection(self) -> AbstractConnection:
        """A connection of its own (not the pool's), named for ``CLIENT LIST``."""
        assert self._pool is not None
        kwargs = {**self._pool.connection_kwargs, "client_name": self.name}
        conn: AbstractConnection = self._pool.connection_class(**kwargs)
        return conn

    @staticmethod
    def _ms(seconds: float) -> int:
        return round(seconds * 1000)
