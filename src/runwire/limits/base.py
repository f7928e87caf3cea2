"""The rate limiter port: how often something may happen per key, counted where every node of a
deployment sees the same count.

Implementations: ``runwire.limits.memory.MemoryRateLimiter`` (one process) and
``runwire.limits.redis.RedisRateLimiter`` (several nodes sharing one Redis). One contract test suite
(tests/integration/test_limiter_contract.py) runs against each; what it checks is what this module
promises. The per-connection frame limit is not here: a connection lives on one node, so it stays
a plain :class:`runwire.limits.buckets.Bucket`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

from runwire.limits.buckets import Decision, Rate

__all__ = ["Limit", "RateLimiter"]

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")


@dataclass(frozen=True, slots=True)
class Limit:
    """One named rate, applied separately to each key (say, ``login-account`` per e-mail).

    The name is part of where the counts are kept, so two limits must not share one.
    """

    name: str
    rate: Rate

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(
                f"a limit's name is 1 to 40 of a-z, 0-9, '-' and '_', starting with a letter; "
                f"got {self.name!r}"
            )


class RateLimiter(ABC):
    """GCRA (a token bucket of ``rate.burst`` refilled at ``rate.per_second``) per limit and key.

    A refused call takes nothing. A key not used for one window has a full bucket again and is
    forgotten, so memory (or Redis keys) stay bounded by the keys used within a window.
    """

    @abstractmethod
    async def acquire(self, limit: Limit, key: str) -> Decision:
        """Take one token from ``key``'s bucket of ``limit`` if there is one.

        Never raises for an unreachable backend: a shared implementation then counts in this
        process for as long as it must (docs/decisions.md says why), so a limit is never lifted
        and never refuses everyone.
        """

    @abstractmethod
    async def refund(self, limit: Limit, key: str) -> None:
        """Give back one token taken by :meth:`acquire` (the event turned out not to count)."""

    @abstractmethod
    async def reset(self, limit: Limit, key: str) -> None:
        """Forget ``key`` under ``limit``: its bucket is full again."""
