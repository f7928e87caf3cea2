"""The in-process rate limiter: one :class:`~runwire.limits.buckets.KeyedLimiter` per limit."""

from __future__ import annotations

from runwire.limits.base import Limit, RateLimiter
from runwire.limits.buckets import Clock, Decision, KeyedLimiter

__all__ = ["MAX_TRACKED_KEYS", "MemoryRateLimiter"]

MAX_TRACKED_KEYS = 50_000
"""Keys (accounts, addresses) remembered per limit: about 25 MB at worst for 320-character
e-mails. Only keys used within the last window are kept, so this cap matters only under a flood."""


class MemoryRateLimiter(RateLimiter):
    """Counts in this process's memory: right for one node, and what a node falls back to."""

    def __init__(self, clock: Clock, *, max_keys: int = MAX_TRACKED_KEYS) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._limiters: dict[Limit, KeyedLimiter] = {}

    def _limiter(self, limit: Limit) -> KeyedLimiter:
        limiter = self._limiters.get(limit)
        if limiter is None:
            limiter = self._limiters[limit] = KeyedLimiter(
                limit.rate, self._clock, max_keys=self._max_keys
            )
        return limiter

    async def acquire(self, limit: Limit, key: str) -> Decision:
        return self._limiter(limit).acquire(key)

    async def refund(self, limit: Limit, key: str) -> None:
        self._limiter(limit).refund(key)

    async def reset(self, limit: Limit, key: str) -> None:
        self._limiter(limit).reset(key)
