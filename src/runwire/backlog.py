"""A count of work queued and of work done, and waits for the second to catch up with the first.

The event writer (events queued for the store) and the Redis bus (writes queued for Redis) each
keep one: a caller waits until everything queued before it is done (:meth:`Backlog.caught_up`),
or until what waits is under a bound (:meth:`Backlog.below`), and each batch done settles the
waits it reaches in one pass, without waking the rest.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

__all__ = ["Backlog"]


class Backlog:
    """``queued`` and ``done`` only grow; ``done`` never passes ``queued``."""

    __slots__ = ("_order", "_waiters", "done", "queued")

    def __init__(self) -> None:
        self.queued = 0
        self.done = 0  # or given up on
        # Waits by their target (``done`` to reach), earliest first; the count breaks ties in
        # the order the waits began.
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def pending(self) -> int:
        return self.queued - self.done

    def add(self, count: int = 1) -> None:
        self.queued += count

    async def caught_up(self) -> None:
        """Wait until everything queued before this call is done (or :meth:`release`)."""
        await self._reach(self.queued)

    async def below(self, limit: int) -> None:
        """Wait until fewer than ``limit`` are pending, counting only what was queued before
        this call (or :meth:`release`): the wait of a producer that must not add to a full
        backlog. What others queue meanwhile does not lengthen it, so the caller should look
        again before it adds."""
        await self._reach(self.queued - limit + 1)

    async def _reach(self, target: int) -> None:
        if self.done >= target:
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (target, next(self._order), future))
        # Not shielded: the future is this wait's alone, so a cancelled caller cancels only it,
        # and settling skips a future already done (a shield cost a second future per wait).
        await future

    def finish(self, count: int) -> None:
        """``count`` more are done: settle the waits that reaches."""
        self.done += count
        waiters = self._waiters
        while waiters and waiters[0][0] <= self.done:
            _settle(heapq.heappop(waiters)[2])

    def release(self) -> None:
        """Let every wait go now, caught up or not (the work will not be done soon)."""
        while self._waiters:
            _settle(heapq.heappop(self._waiters)[2])


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
