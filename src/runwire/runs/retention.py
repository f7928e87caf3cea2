"""Retention: ended runs keep their events for a set time, then the events are trimmed.

The run record and the thread's messages stay (the reply is a message); only the numbered events
go, and the run is marked trimmed, so a resume of it is refused with ``history_expired`` instead
of being answered with nothing. The trimming task belongs to whoever enters :meth:`running`
(the app's lifespan) and stops when it leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from runwire.background import stop
from runwire.domain.clock import now_ms
from runwire.store.run_log import RunLog

__all__ = ["Retention"]

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000


class Retention:
    def __init__(
        self,
        runs: RunLog,
        *,
        keep_days: int,
        interval_s: float,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if keep_days < 1 or interval_s <= 0:
            raise ValueError("keep_days must be >= 1 and interval_s > 0")
        self._runs = runs
        self._keep_ms = keep_days * DAY_MS
        self._interval_s = interval_s
        self._clock = clock  # epoch milliseconds; tests move it instead of waiting days

    async def trim(self) -> int:
        """Trim the events of every run that ended before the cutoff; returns how many runs."""
        now = self._clock()
        return await self._runs.trim_ended_before(now - self._keep_ms, now=now)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Retention]:
        """Trim now and then every ``interval_s`` until the context is left."""
        task = asyncio.create_task(self._loop(), name="runwire-retention")
        try:
            yield self
        finally:
            await stop(task)

    async def _loop(self) -> None:
        while True:
            try:
                trimmed = await self.trim()
                if trimmed:
                    log.info("trimmed the events of %d ended runs", trimmed)
            except Exception:
                # The next pass tries again; a database hiccup must not end retention for good.
                log.exception("could not trim old run events")
            await asyncio.sleep(self._interval_s)
