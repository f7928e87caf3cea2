"""The Redis rate limiter: GCRA in one Lua script, so every node counts against the same buckets.

Layout: ``{prefix}limit:{name}:{digest}`` is a string holding the key's *theoretical arrival
time* (TAT, whole microseconds), with a TTL until that time: a key whose bucket is full again
is gone, which is what keeps Redis's memory bounded. ``digest`` is a SHA-256 of the key (an
e-mail, an address), so Redis (``KEYS``, ``MONITOR``, a dump) holds no e-mail and no address,
and every key has the same short length.

Time is Redis's own ``TIME``, one clock for every node (their monotonic clocks are unrelated);
tests inject a clock instead, so they step it rather than sleep. Lua numbers are doubles: in
microseconds since 1970 they stay exact integers for centuries, nanoseconds would not.

When Redis does not answer (within ``timeout_s``), counting falls back to this process (a
:class:`MemoryRateLimiter`) until it does again: a limit is never lifted and never refuses
everyone (docs/decisions.md says why).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from runwire.limits.base import Limit, RateLimiter
from runwire.limits.buckets import Clock, Decision
from runwire.limits.memory import MemoryRateLimiter
from runwire.redis_pool import connection_pool

__all__ = ["RedisRateLimiter"]

log = logging.getLogger(__name__)

_US = 1_000_000

# KEYS[1]: the key's TAT. ARGV: op ("acquire" / "refund"), interval (us), burst, now (us, or ""
# for Redis's clock). Returns {allowed (1/0), wait (us)}.
_GCRA = """
local now
if ARGV[4] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[4])
end
local interval = tonumber(ARGV[2])
local stored = redis.call('GET', KEYS[1])
local function keep(tat)
  if tat <= now then
    redis.call('DEL', KEYS[1])
  else
    -- formatted as a whole number, never in exponent notation
    redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000))
  end
end
if ARGV[1] == 'refund' then
  if stored then keep(tonumber(stored) - interval) end
  return {1, 0}
end
local lead = 0
if stored then lead = math.max(tonumber(stored) - now, 0) end
local tolerance = (tonumber(ARGV[3]) - 1) * interval
if lead > tolerance then
  return {0, lead - tolerance}
end
keep(now + lead + interval)
return {1, 0}
"""


class RedisRateLimiter(RateLimiter):
    """Buckets in Redis, shared by every node. Nothing connects until :meth:`running`."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "runwire:",
        clock: Clock | None = None,
        fallback_clock: Clock,
        timeout_s: float = 1.0,
    ) -> None:
        self._url = url
        self._prefix = prefix
        self._clock = clock
        self._timeout_s = timeout_s
        self._fallback = MemoryRateLimiter(fallback_clock)
        self._redis: Redis | None = None
        self._script: AsyncScript | None = None
        self._shared = True  # False while Redis does not answer and this process counts

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RedisRateLimiter]:
        """Open the connection pool (connections are made on first use); close it on exit."""
        pool = connection_pool(self._url, timeout_s=self._timeout_s, max_connections=32)
        self._redis = Redis(connection_pool=pool)
        self._script = self._redis.register_script(_GCRA)
        try:
            yield self
        finally:
            self._script = None
            await self._redis.aclose()
            await pool.disconnect()
            self._redis = None

    @property
    def shared(self) -> bool:
        """False while Redis does not answer and limits are counted in this process only."""
        return self._shared

    def _key(self, limit: Limit, key: str) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        return f"{self._prefix}limit:{limit.name}:{digest}"

    async def _call(self, op: str, limit: Limit, key: str) -> list[int] | None:
        """Run the script; None when Redis did not answer (then the fallback counts)."""
        if self._script is None:
            raise RuntimeError("RedisRateLimiter is not running: use `async with .running()`")
        now = "" if self._clock is None else str(round(self._clock() * _US))
        interval_us = max(1, round(limit.rate.interval_s * _US))
        try:
            reply = await self._script(
                keys=[self._key(limit, key)], args=[op, interval_us, limit.rate.burst, now]
            )
        except (RedisError, OSError) as exc:
            if self._shared:
                self._shared = False
                log.warning(
                    "rate limits: Redis does not answer (%s); counting in this process until "
                    "it does",
                    type(exc).__name__,
                )
            return None
        if not self._shared:
            self._shared = True
            log.warning("rate limits: Redis answers again; counting there")
        return [int(part) for part in reply]

    async def acquire(self, limit: Limit, key: str) -> Decision:
        reply = await self._call("acquire", limit, key)
        if reply is None:
            return await self._fallback.acquire(limit, key)
        allowed, wait_us = reply
        return Decision(True) if allowed else Decision(False, wait_us / _US)

    async def refund(self, limit: Limit, key: str) -> None:
        if await self._call("refund", limit, key) is None:
            await self._fallback.refund(limit, key)

    async def reset(self, limit: Limit, key: str) -> None:
        # Both: what this process counted during an outage must not come back at the next one.
        await self._fallback.reset(limit, key)
        if self._redis is None:
            raise RuntimeError("RedisRateLimiter is not running: use `async with .running()`")
        # Should Redis not answer, the key expires by itself within one window.
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(self._key(limit, key))
