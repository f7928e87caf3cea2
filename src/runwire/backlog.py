"""A count of work queued and of work done, and waits for the second to catch up with the first.

The event writer (events queued for the store) and the Redis bus (writes queued for Redis) each
keep one: a caller waits until everything queued before it is done, and each batch done settles
the waits it reaches in one pass, without waking the rest.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["Backlog"]


class Backlog:
    """``queued`` and ``done`` only grow; ``done`` never passes ``queued``."""

    __slots__ = ("_waiters", "done", "queued")

    def __init__(self) -> None:
        self.queued = 0
        self.done = 0  # or given up on
        # Waits in the order of their targets (which only grow, as ``queued`` does).
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def pending(self) -> int:
        return self.queued - self.done

    def add(self, count: int = 1) -> None:
        self.queued += count

    async def caught_up(self) -> None:
        """Wait until everything queued before this call is done (or :meth:`release`)."""
        target = self.queued
        if self.done >= target:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        # Shielded: a cancelled caller must not cancel the future others settle.
        await asyncio.shield(future)

    def finish(self, count: int) -> None:
        """``count`` more are done: settle the waits that reaches."""
        self.done += count
        waiters = self._waiters
        while waiters and waiters[0][0] <= self.done:
            _settle(waiters.popleft()[1])

    def release(self) -> None:
        """Let every wait go now, caught up or not (the work will not be done soon)."""
        while self._waiters:
            _settle(self._waiters.popleft()[1])


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
