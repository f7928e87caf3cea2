"""The dispatcher: decides which node runs each accepted run, and closes the runs of lost nodes.

The store is the record of what must run: a run is ``queued`` until a node *claims* it (a
compare-and-set that also keeps a thread's runs one at a time, in arrival order), and a claimed
run is held by its node's *lease* in the run queue, renewed by a heartbeat. Around that:

- **admit**: before a message is stored, a place on this node and its run's lease, so the run
  can be stored already claimed and started at once (``runwire.runs.node.Runs.accept`` walks
  a message's run through admission, start and offer).
- **offer**: a run the node accepted is claimed here when the node has room; otherwise it goes to
  the run queue, where any node with room takes it. When a run ends, its thread's next queued run
  is offered the same way.
- **sweep**: every few seconds each node offers again the queued runs that may start and have
  waited (their offer was lost: a node died between accepting and offering, or Redis lost it).
- **reap**: every few seconds each node looks for running runs whose lease nobody holds. Seen so
  on two sweeps in a row (a lease briefly missing after a Redis restart is put back by its node's
  heartbeat), the run is taken over and ended with ``agent_error`` ``node_lost``. With one process
  (the in-process queue) nobody else can hold a lease, so at start-up every running run is one a
  previous process left, and is ended with ``interrupted``.
- **stop**: a run executing here is cancelled here; a queued one is claimed out of turn and closed
  as stopped; one running elsewhere is asked to stop through the run queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from runwire.background import stop
from runwire.domain.clock import now_ms
from runwire.domain.run_status import RunStatus
from runwire.errors import DependencyUnavailable, NotFound
from runwire.run_queue.base import Job, RunQueue
from runwire.runs.executor import CancelOutcome, RunExecutor, RunInput
from runwire.store.records import RunRecord
from runwire.store.store import Store

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)

HISTORY_TURNS = 20
_TAKE_WAIT_S = 1.0  # how long one take waits for jobs before the consumer looks around again
_STOP_WAIT_S = 5.0  # how long leaving waits for the consumer to finish what it took
_STOP_POLL_S = 0.002  # the first look at the store after asking; then twice as long each time
_STOP_POLL_MAX_S = 0.1
_STOP_RESEND_S = 1.0  # the request goes out again this often while the run goes on
_REAP_AT_ONCE = 8  # lost runs a sweep ends side by side (each a few writes and reads)

_LOST = {
    True: ("node_lost", "the server running this run stopped answering; send the message again"),
    False: ("interrupted", "the server stopped during this run; send the message again"),
}


class Dispatcher:
    def __init__(
        self,
        *,
        store: Store,
        queue: RunQueue,
        executor: RunExecutor,
        capacity: int,
        sweep_interval_s: float,
        stop_wait_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``capacity``: runs this node executes at once (0: it accepts messages but runs none).
        ``sweep_interval_s``: how often the node sweeps and reaps (half a lease is right).
        ``stop_wait_s``: how long a stop waits at most for another node to end the run.

        ``executor`` reports each run's end to :meth:`ended` and asks ``queue`` about leases:
        :meth:`Runs.running` builds the three so (``runwire.runs.node``)."""
        self._store = store
        self._queue = queue
        self._executor = executor
        self._capacity = capacity
        self._sweep_interval_s = sweep_interval_s
        self._stop_wait_s = stop_wait_s
        self._clock = clock
        self._room = asyncio.Event()
        self._stopping = False
        self._admitted: set[str] = set()  # runs given a place here, not started yet
        self._suspects: set[str] = set()
        # Stop requests for runs not executing here (yet): a claim in flight picks them up.
        self._pending_stops: dict[str, tuple[str, float]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Dispatcher]:
        """Close what earlier processes left, then take jobs and sweep until the context ends."""
        self._queue.on_stop(self._stop_requested)
        if not self._queue.shared:
            closed = await self.reap(confirm=False)
            if closed:
                log.warning("closed %d runs left unfinished by a previous process", closed)
            await self.sweep(created_before=now_ms() + 1)
        self._stopping = False
        consume = asyncio.create_task(self._consume(), name="run-dispatch")
        self._tasks = [consume, asyncio.create_task(self._maintain(), name="run-sweep")]
        try:
            yield self
        finally:
            # The consumer is asked to stop, not cancelled mid-read: a cancellation landing in
            # the middle of a Redis read can leave the client waiting on its socket for good.
            self._stopping = True
            self._room.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(consume), _STOP_WAIT_S)
            await stop(*self._tasks)
            self._tasks = []

    @property
    def _free(self) -> int:
        if not self._executor.accepting:
            return 0
        return self._capacity - self._executor.active_count - len(self._admitted)

    async def admit(self, run_id: str) -> bool:
        """Give a run about to be accepted a place on this node and its lease, so it can be
        stored already claimed and started at once (:meth:`start_admitted`): one write fewer
        than storing it queued and claiming it. False when there is no room here (store it
        queued and :meth:`offer` it instead). The caller knows nothing else of its thread is
        unfinished."""
        if self._free <= 0:
            return False
        self._admitted.add(run_id)
        try:
            if await self._queue.acquire(run_id):
                return True
        except DependencyUnavailable:
            pass
        self._admitted.discard(run_id)
        return False

    def start_admitted(self, run: RunInput, started_at: int) -> None:
        """Start an admitted run, now stored as running."""
        self._admitted.discard(run.run_id)
        pending = self._pending_stops.pop(run.run_id, None)
        self._executor.start(
            run, started_at=started_at, stop_reason=pending[0] if pending else None
        )

    async def withdraw(self, run_id: str) -> None:
        """An admitted run was not stored after all: give its place and lease back."""
        self._admitted.discard(run_id)
        with contextlib.suppress(DependencyUnavailable):
            await self._queue.release(run_id)
        self._room.set()

    async def offer(self, job: Job) -> None:
        """Start ``job``'s run here if there is room, else hand it to the run queue. Never raises:
        a run that could not be offered stays queued in the store, and a sweep offers it again."""
        if self._free > 0 and await self._claim(job):
            return
        if not self._executor.accepting and not self._queue.shared:
            return  # shutting down alone: the next start's sweep runs it
        try:
            await self._queue.submit(job)
        except DependencyUnavailable as exc:
            log.warning("could not offer run %s (%s); a sweep will", job.run_id, exc.message)

    async def stop(
        self, user_id: str, run_id: str, reason: str = "stopped", *, confirm: bool = True
    ) -> bool:
        """Stop a run of ``user_id`` wherever it is. True when the run ends stopped (by this
        request or one before it); False when it has ended, or had decided how it ends (its
        last event is on its way) when the request came; NotFound if it is not the user's.

        A run on another node is asked through the run queue and, with ``confirm``, watched in
        the store until it has ended, for the answer; without it the request is sent and True
        returned (for a caller that does not need the answer). DependencyUnavailable when
        that node neither ends the run nor lets go of it within ``stop_wait_s``."""
        asked = False
        deadline = self._clock() + self._stop_wait_s
        resend = deadline
        pause = _STOP_POLL_S
        while True:
            # The lease is looked at before the run: a live node records a run's end before it
            # lets go of the lease, so a lease found gone, then the run found unfinished, means
            # no node runs it any more.
            gone = asked and bool(await self._queue.expired([run_id]))
            record = await self._store.runs.get(user_id, run_id)
            if record is None:
                raise NotFound("no such run")
            here = self._executor.cancel(run_id, reason)
            if here is not CancelOutcome.NOT_HERE:
                return here is CancelOutcome.STOPPING
            if record.status_is_final:
                # Read after asking: the run ended stopped, or as it was going to end anyway.
                return asked and record.status == RunStatus.CANCELLED.value
            if record.status == RunStatus.QUEUED:
                if await self._claim(_job(record), stop_reason=reason, in_order=False):
                    return True
                # A node is claiming it this moment (it holds the lease): look again soon.
            elif not asked:
                await self._queue.stop(run_id, reason)
                asked = True
                if not confirm:
                    return True
                resend = self._clock() + _STOP_RESEND_S
                continue
            elif gone:
                return True  # its node is gone: a reap ends it with node_lost
            elif self._clock() >= resend:
                # A request on the way when a node reconnects to the channel can be lost.
                await self._queue.stop(run_id, reason)
                resend = self._clock() + _STOP_RESEND_S
            if self._clock() >= deadline:
                raise DependencyUnavailable("the run could not be stopped now; try again")
            await asyncio.sleep(pause)
            pause = min(pause * 2, _STOP_POLL_MAX_S)

    async def sweep(self, *, created_before: int | None = None) -> int:
        """Offer again the queued runs that may start and were accepted before
        ``created_before`` (default: a sweep interval ago). Returns how many."""
        cutoff = created_before or now_ms() - int(self._sweep_interval_s * 1000)
        ready = await self._store.runs.ready(created_before=cutoff)
        for record in ready:
            await self.offer(_job(record))
        return len(ready)

    async def reap(self, *, confirm: bool = True) -> int:
        """End the running runs no node holds a lease on. With ``confirm``, only those found so
        on the previous reap too. Returns how many were ended."""
        candidates = [r for r in await self._store.runs.running_ids() if not self._executor.has(r)]
        gone = set(await self._queue.expired(candidates)) if candidates else set()
        confirmed = gone & self._suspects if confirm else gone
        self._suspects = gone - confirmed
        # Side by side, a few at a time: one that waits (for the store, for a row another
        # node's transaction holds) must not hold back the ending of the others, whose watchers
        # hear nothing until then. One after another, a node that lost all its runs at once
        # had them ended over minutes (R1, docs/benchmarks.md).
        room = asyncio.Semaphore(_REAP_AT_ONCE)

        async def close(run_id: str) -> int:
            async with room:
                return await self._close_lost(run_id)

        # One that fails fails the sweep (logged; the next one tries again), the others go on.
        return sum(await asyncio.gather(*(close(run_id) for run_id in sorted(confirmed))))

    # -- inside --

    async def _claim(
        self, job: Job, *, stop_reason: str | None = None, in_order: bool = True
    ) -> bool:
        """Take the run's lease and claim it in the store; start it here if both succeed."""
        queue = self._queue
        try:
            if not await queue.acquire(job.run_id):
                return False
        except DependencyUnavailable:
            return False
        try:
            record = await self._store.runs.claim(job.run_id, now=now_ms(), in_order=in_order)
            if record is None:
                await queue.release(job.run_id)
                return False
            question, history, usage_version = await self._store.conversations.turn(
                record.message_id, HISTORY_TURNS
            )
        except BaseException:
            await queue.release(job.run_id)
            raise
        pending = self._pending_stops.pop(job.run_id, None)
        if pending is not None and stop_reason is None:
            stop_reason = pending[0]
        self._executor.start(
            RunInput(
                run_id=record.id,
                thread_id=record.thread_id,
                user_id=record.user_id,
                question=question,
                history=history,
                epoch=record.epoch,
                # Stored in milliseconds, by whichever node accepted it (clocks kept in step).
                accepted_at=record.created_at / 1000,
                trace=job.trace,
                usage_version=usage_version,
            ),
            started_at=record.started_at,
            stop_reason=stop_reason,
        )
        return True

    async def ended(self, run: RunInput, abandoned: bool, following: str | None) -> None:
        """The executor's ``on_ended`` (an :data:`EndedHook`): let go of the run's lease, wake
        the consumer to the room made, and offer the thread's next run."""
        # An abandoned run's lease is let go of too: the run may have stopped itself on a lease
        # this node still held (it stopped trusting it while Redis was away, or while this node
        # was paused), and the heartbeat would otherwise renew it for good, so no node would
        # ever end the run and its watchers would wait in silence. A release takes only this
        # node's lease, never one another node has taken over.
        with contextlib.suppress(DependencyUnavailable):  # if not released, it expires
            await self._queue.release(run.run_id)
        self._room.set()
        if following is not None:
            # The thread's next run, found when this one's end was recorded.
            await self.offer(Job(run_id=following, thread_id=run.thread_id, user_id=run.user_id))

    async def _close_lost(self, run_id: str) -> int:
        lost = self._queue.shared
        try:
            if not await self._queue.acquire(run_id):
                return 0  # its node is back, or another node is closing it
        except DependencyUnavailable:
            return 0
        try:
            record = await self._store.runs.by_id(run_id)
            if record is None or record.status != RunStatus.RUNNING:
                return 0
            code, message = _LOST[lost]
            closed = await self._executor.close_lost(record, code, message)
            if lost:
                log.warning("run %s lost its node; ended it with %s", run_id, code)
        finally:
            with contextlib.suppress(DependencyUnavailable):
                await self._queue.release(run_id)
        for ready in await self._store.runs.ready(
            created_before=now_ms() + 1, thread_id=record.thread_id, limit=1
        ):
            await self.offer(_job(ready))
        return int(closed)

    def _stop_requested(self, run_id: str, reason: str) -> None:
        if self._executor.cancel(run_id, reason) is not CancelOutcome.NOT_HERE:
            return
        now = self._clock()
        self._pending_stops = {
            r: (why, at) for r, (why, at) in self._pending_stops.items() if now - at < 60
        }
        self._pending_stops[run_id] = (reason, now)

    async def _consume(self) -> None:
        while not self._stopping:
            free = self._free
            if free <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            for job in await self._queue.take(free, wait_s=_TAKE_WAIT_S):
                try:
                    await self._claim(job)
                except Exception:
                    log.exception("could not start run %s", job.run_id)
                finally:
                    with contextlib.suppress(DependencyUnavailable):
                        await self._queue.ack(job)

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval_s)
            try:
                await self.reap()
                await self.sweep()
            except Exception:
                # The database or Redis is away: try again next time.
                log.warning("run sweep failed; trying again", exc_info=True)


def _job(record: RunRecord) -> Job:
    return Job(run_id=record.id, thread_id=record.thread_id, user_id=record.user_id)
