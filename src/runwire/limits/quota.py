"""A quota: one named rate per key on a :class:`RateLimiter`, refusing with :class:`RateLimited`
past it (say, usage imports per user)."""

from __future__ import annotations

from runwire.errors import RateLimited
from runwire.limits.base import Limit, RateLimiter

__all__ = ["Quota"]


class Quota:
    """``limit`` counted per key by ``limiter`` (shared by every node when it is Redis's)."""

    def __init__(self, limit: Limit, limiter: RateLimiter, *, refusal: str) -> None:
        self._limit = limit
        self._limiter = limiter
        self._refusal = refusal

    async def take(self, key: str) -> None:
        """Count one use by ``key``, or raise :class:`RateLimited` (then nothing is counted)."""
        decision = await self._limiter.acquire(self._limit, key)
        if not decision.allowed:
            raise RateLimited(self._refusal, retry_after_s=decision.retry_after_s)
