"""Batched persistence of run events.

Events are delivered live from the bus's in-memory history the moment they happen; the writer
stores them in batches (one transaction per batch) so a busy server does one database round trip
for many events instead of one each. ``flush`` waits until everything appended so far is stored;
a run calls it before releasing its in-memory history, so a resume never falls into a hole.

Under load the writer starts a batch at most every ``linger`` seconds (``LINGER_S``), unless a
full batch waits: what comes meanwhile gathers, so that a batch holds several turns' worth of
events. A batch's own costs (a transaction, its commit, one row per run it holds) are what
storing costs most on SQLite, and what PostgreSQL's CPU goes to most; live delivery does not
wait for any of it. An event that comes after a quiet spell is stored at once, as before
(docs/decisions.md, "keepstore").

What waits to be stored is bounded (``max_backlog`` events): a run about to emit past it waits in
:meth:`EventWriter.room` until the store has caught up below it, so under overload runs stream at
the store's pace instead of the node's memory growing without end (docs/decisions.md). Nothing is
dropped on the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from runwire.background import stop
from runwire.backlog import Backlog
from runwire.events.model import RunEvent

__all__ = ["EventWriter"]

log = logging.getLogger(__name__)

MAX_BATCH = 1000
RETRIES = 3
MAX_BACKLOG = 10_000  # events appended and not yet stored, at most (RUNWIRE_STORE_MAX_BACKLOG)
LINGER_S = 0.01  # how long the writer lets events gather before it stores them, at most


class EventWriter:
    def __init__(
        self,
        sink: Callable[[Sequence[RunEvent]], Awaitable[None]],
        *,
        max_backlog: int = MAX_BACKLOG,
        linger: float = LINGER_S,
    ) -> None:
        """``max_backlog``: how many events may wait to be stored before :meth:`room` makes
        their producers wait (at least 1). ``linger``: the running writer starts a batch at most
        this often (seconds; 0: whenever events wait), or sooner once a full batch waits, or as
        many as ``max_backlog`` (a producer is then waiting for room)."""
        if max_backlog < 1:
            raise ValueError("max_backlog must be at least 1")
        if linger < 0:
            raise ValueError("linger must not be negative")
        self._sink = sink
        self._max_backlog = max_backlog
        self._linger = linger
        self._enough = min(MAX_BATCH, max_backlog)  # events that end the linger
        # Set while the writer lingers: resolved when enough events wait (or the time is up).
        self._ripe: asyncio.Future[None] | None = None
        self._last_batch = -math.inf  # when the running writer last took a batch (loop time)
        self._pending: list[RunEvent] = []
        self._stored = Backlog()  # events appended, and stored (or given up on)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[EventWriter]:
        self._task = asyncio.create_task(self._loop(), name="runwire-event-writer")
        try:
            yield self
        finally:
            await self.flush()
            await stop(self._task)
            self._task = None

    @property
    def backlog(self) -> int:
        return self._stored.pending

    @property
    def max_backlog(self) -> int:
        return self._max_backlog

    @property
    def linger(self) -> float:
        """How often, at most, the running writer starts a batch (seconds)."""
        return self._linger

    async def room(self) -> None:
        """Wait until one more event may be appended without the backlog passing its bound.

        Called by a run before it numbers its next event. The writer stores what waits in
        batches and settles the waits each batch reaches; a store that fails gives a batch up
        after its retries (logged), so a wait here ends even when the store does not come back.
        """
        stored = self._stored
        while stored.pending >= self._max_backlog:
            if self._task is None and self._pending:  # not running: store here, as flush does
                await self._write_pending()
            else:
                # Others may have appended by the time this wakes: look again.
                await stored.below(self._max_backlog)

    def append(self, event: RunEvent) -> None:
        pending = self._pending
        pending.append(event)
        self._stored.add()
        if self._ripe is not None and len(pending) >= self._enough:
            _ripen(self._ripe)
        self._wake.set()

    def extend(self, events: Sequence[RunEvent]) -> None:
        """:meth:`append` each of ``events``, in order."""
        pending = self._pending
        pending.extend(events)
        self._stored.add(len(events))
        if self._ripe is not None and len(pending) >= self._enough:
            _ripen(self._ripe)
        self._wake.set()

    async def flush(self) -> None:
        """Wait until every event appended before this call is stored (or given up on)."""
        if self._task is None:
            await self._write_pending()
            return
        await self._stored.caught_up()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._gather()
            while self._pending:
                await self._write_pending()

    async def _gather(self) -> None:
        """Wait until ``linger`` has passed since the last batch began, or until enough events
        wait to store, whichever comes first."""
        loop = asyncio.get_running_loop()
        wait = self._last_batch + self._linger - loop.time()
        if wait > 0 and len(self._pending) < self._enough:
            self._ripe = ripe = loop.create_future()
            timer = loop.call_later(wait, _ripen, ripe)
            try:
                await ripe
            finally:
                timer.cancel()
                self._ripe = None
        self._last_batch = loop.time()

    async def _write_pending(self) -> None:
        if len(self._pending) <= MAX_BATCH:
            # The usual case: take the whole list. Slicing it would copy what stays behind,
            # once per batch, which costs in proportion to the backlog.
            batch, self._pending = self._pending, []
        else:
            batch = self._pending[:MAX_BATCH]
            del self._pending[:MAX_BATCH]
        if not batch:
            return
        for attempt in range(1, RETRIES + 1):
            try:
                await self._sink(batch)
                break
            except Exception:
                if attempt == RETRIES:
                    # Losing history is bad, losing the server is worse: say it loudly and go on.
                    log.exception("could not store %d run events; history has a hole", len(batch))
                else:
                    await asyncio.sleep(0.05 * attempt)
        self._stored.finish(len(batch))


def _ripen(ripe: asyncio.Future[None]) -> None:
    if not ripe.done():
        ripe.set_result(None)
