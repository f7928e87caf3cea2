"""The Redis connection registry: every node's sockets of a user in one sorted set, so the cap
holds across nodes, and a dead node's sockets stop counting within a bounded time.

Layout: ``{prefix}conns:{user_id}`` is a sorted set whose members are this deployment's open
sockets of the user (``<node>:<n>``, the node being one process) and whose scores are the
moments (Redis ``TIME``, in ms) they stop counting unless renewed. Each node renews its own
members every ``renew_every_s`` to ``ttl_s`` ahead; a claim first drops the members whose moment
has passed, so the sockets of a node that died without closing them stop counting at most
``ttl_s`` after its last renewal. The set itself expires ``ttl_s`` after its last write, so a
user nobody renews leaves nothing behind.

A claim is one Lua script (drop the stale members, count, add), so two nodes racing for a user's
last seat cannot both get it. Releases and renewals go out from one task, in order, so a renewal
cannot bring back a released member.

When Redis does not answer (within ``timeout_s``), a claim counts this node's seats only, and
the seat is added to Redis by the next renewal once it answers: the cap then holds per node for
the length of the outage (docs/decisions.md says why).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from runwire.background import stop
from runwire.connections.base import ConnectionRegistry, Seat
from runwire.limits.buckets import Clock
from runwire.redis_pool import connection_pool

__all__ = ["RedisConnections"]

log = logging.getLogger(__name__)

# The moment "now" in ms: ARGV[i] if given (tests), else Redis's clock.
_NOW = """
local function now_ms(given)
  if given ~= '' then return tonumber(given) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# KEYS[1]: the user's set. ARGV: member, cap, ttl (ms), now. Returns 1 (seated) or 0 (full).
_CLAIM = (
    _NOW
    + """
local now = now_ms(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""
)

# KEYS[1]: the user's set. ARGV: ttl (ms), now, members... (added back if Redis lost them).
_RENEW = (
    _NOW
    + """
local now = now_ms(ARGV[2])
local ttl = tonumber(ARGV[1])
for i = 3, #ARGV do
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""
)

# KEYS[1]: the user's set. ARGV: now. Returns how many members count.
_COUNT = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms(ARGV[1]))
return redis.call('ZCARD', KEYS[1])
"""
)

_LINK_ERRORS = (RedisError, OSError)


class _Seat:
    __slots__ = ("_registry", "member", "released", "user_id")

    def __init__(self, registry: RedisConnections, user_id: str, member: str) -> None:
        self._registry = registry
        self.user_id = user_id
        self.member = member
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._registry._drop(self)


class RedisConnections(ConnectionRegistry):
    """Seats in Redis, shared by every node. Nothing connects until :meth:`running`."""

    def __init__(
        self,
        url: str,
        max_per_user: int,
        *,
        prefix: str = "runwire:",
        ttl_s: float = 30.0,
        renew_every_s: float = 10.0,
        clock: Clock | None = None,
        timeout_s: float = 1.0,
    ) -> None:
        if max_per_user < 1:
            raise ValueError(f"max_per_user must be at least 1, got {max_per_user}")
        if not 0 < renew_every_s < ttl_s:
            raise ValueError(f"renew_every_s must be above 0 and below ttl_s ({ttl_s})")
        self.max_per_user = max_per_user
        self._url = url
        self._prefix = prefix
        self._ttl_ms = round(ttl_s * 1000)
        self._renew_every_s = renew_every_s
        self._clock = clock
        self._timeout_s = timeout_s
        self.node = f"{os.getpid()}-{secrets.token_hex(4)}"
        """This process's name in the members it adds (``<node>:<n>``)."""
        self._numbers = itertools.count(1)
        self._local: dict[str, dict[str, None]] = {}  # user -> this node's members, in order
        self._removals: list[tuple[str, str]] = []  # (user, member) to remove from Redis
        self._wake = asyncio.Event()
        self._redis: Redis | None = None
        self._claim: AsyncScript | None = None
        self._renew: AsyncScript | None = None
        self._count: AsyncScript | None = None
        self._shared = True

    # -- lifecycle --

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RedisConnections]:
        """Open the pool and start renewing; on exit remove this node's members (for a few
        seconds at most: they expire anyway) and close the pool."""
        pool = connection_pool(self._url, timeout_s=self._timeout_s, max_connections=32)
        redis = self._redis = Redis(connection_pool=pool)
        self._claim = redis.register_script(_CLAIM)
        self._renew = redis.register_script(_RENEW)
        self._count = redis.register_script(_COUNT)
        keeper = asyncio.create_task(self._keep(), name="redis-connections-keeper")
        try:
            yield self
        finally:
            await stop(keeper)
            for user_id, members in self._local.items():
                self._removals.extend((user_id, member) for member in members)
            self._local.clear()
            with contextlib.suppress(TimeoutError, *_LINK_ERRORS):
                async with asyncio.timeout(self._timeout_s * 3):
                    await self._send_removals()
            self._claim = self._renew = self._count = None
            await redis.aclose()
            await pool.disconnect()
            self._redis = None

    # -- the port --

    async def claim(self, user_id: str) -> Seat | None:
        if self._claim is None:
            raise RuntimeError("RedisConnections is not running: use `async with .running()`")
        member = f"{self.node}:{next(self._numbers)}"
        try:
            seated = await self._claim(
                keys=[self._key(user_id)],
                args=[member, self.max_per_user, self._ttl_ms, self._now()],
            )
        except _LINK_ERRORS as exc:
            self._link(False, exc)
            # This node's own count, until Redis answers; the next renewal adds the seat there.
            if len(self._local.get(user_id, ())) >= self.max_per_user:
                return None
        else:
            self._link(True)
            if not seated:
                return None
        self._local.setdefault(user_id, {})[member] = None
        return _Seat(self, user_id, member)

    async def count(self, user_id: str) -> int:
        if self._count is None:
            raise RuntimeError("RedisConnections is not running: use `async with .running()`")
        return int(await self._count(keys=[self._key(user_id)], args=[self._now()]))

    # -- renewals and releases --

    async def renew(self) -> None:
        """Push the moment this node's members stop counting ``ttl_s`` ahead (and add back any
        Redis lost). The keeper task calls it every ``renew_every_s``; raises if Redis fails."""
        if self._renew is None or self._redis is None:
            raise RuntimeError("RedisConnections is not running: use `async with .running()`")
        if not self._local:
            return
        now = self._now()
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id, members in self._local.items():
                await self._renew(
                    keys=[self._key(user_id)], args=[self._ttl_ms, now, *members], client=pipe
                )
            await pipe.execute()

    def _drop(self, seat: _Seat) -> None:
        members = self._local.get(seat.user_id)
        if members is None or seat.member not in members:
            return
        del members[seat.member]
        if not members:
            del self._local[seat.user_id]
        self._removals.append((seat.user_id, seat.member))
        self._wake.set()

    async def _send_removals(self) -> None:
        if not self._removals or self._redis is None:
            return
        batch = self._removals
        self._removals = []
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for user_id, member in batch:
                    pipe.zrem(self._key(user_id), member)
                await pipe.execute()
        except BaseException:
            self._removals = batch + self._removals  # sent again next time (ZREM is idempotent)
            raise

    async def _keep(self) -> None:
        """Send releases as they come and renew on time, in that one order (so a renewal cannot
        bring back a member released before it)."""
        loop = asyncio.get_running_loop()
        next_renewal = loop.time() + self._renew_every_s
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_renewal - loop.time())):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._send_removals()
                if loop.time() >= next_renewal:
                    await self.renew()
                    next_renewal = loop.time() + self._renew_every_s
                self._link(True)
            except _LINK_ERRORS as exc:
                self._link(False, exc)
                # Try again soon, well within the TTL, rather than at the next renewal.
                next_renewal = min(next_renewal, loop.time() + min(1.0, self._renew_every_s))
                await asyncio.sleep(min(1.0, self._renew_every_s))

    # -- helpers --

    def _key(self, user_id: str) -> str:
        return f"{self._prefix}conns:{user_id}"

    def _now(self) -> str:
        return "" if self._clock is None else str(round(self._clock() * 1000))

    def _link(self, up: bool, exc: BaseException | None = None) -> None:
        if up and not self._shared:
            self._shared = True
            log.warning("connection cap: Redis answers again; counting every node's sockets")
        elif not up and self._shared:
            self._shared = False
            log.warning(
                "connection cap: Redis does not answer (%s); counting this node's sockets only "
                "until it does",
                type(exc).__name__,
            )
