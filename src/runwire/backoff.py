"""How long a loop waits before it tries again what failed: a backoff that doubles from a first
delay up to a ceiling, and starts again from the first delay after a success.

The loops that keep a link to a shared backend (the Redis bus's writer and pub/sub link, the
run queue's reader and stop listener, the revocations' sender and listener) each retry forever
while the backend is away; one :class:`Backoff` each says how long to wait between attempts.
No jitter: a node retries on its own schedule, and the delays are short (2 s at most by default).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["Backoff"]

Sleep = Callable[[float], Awaitable[None]]


class Backoff:
    """Delays between attempts that fail in a row: ``first_s``, then twice the last, up to
    ``max_s``; :meth:`reset` (after an attempt that worked) starts again from ``first_s``.

    ``sleep`` is how it waits (``asyncio.sleep``; a test passes one that only records)."""

    __slots__ = ("_first_s", "_max_s", "_sleep", "delay_s")

    def __init__(self, first_s: float = 0.05, max_s: float = 2.0, *, sleep: Sleep = asyncio.sleep):
        if first_s <= 0 or max_s < first_s:
            raise ValueError(f"a backoff needs 0 < first_s <= max_s (got {first_s}, {max_s})")
        self._first_s = first_s
        self._max_s = max_s
        self._sleep = sleep
        self.delay_s = first_s
        """The wait of the next :meth:`wait`."""

    async def wait(self) -> None:
        """Wait before the next attempt (an attempt just failed); the wait after it is longer."""
        delay = self.delay_s
        self.delay_s = min(delay * 2, self._max_s)
        await self._sleep(delay)

    def reset(self) -> None:
        """An attempt worked: the next failure waits ``first_s`` again."""
        self.delay_s = self._first_s
