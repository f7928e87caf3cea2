"""The run executor: runs on this node each run the dispatcher has claimed, as a task it owns.

The socket that accepted a message never awaits the agent: ``start`` starts a task and returns.
Which run starts where and when (a thread's runs one after another, any node) is the
dispatcher's business (``runwire.runs.dispatcher``); the executor runs what it is given.
``cancel`` stops a run wherever it is (inside a tool, inside an LLM call) and the run still ends
with its closing events; ``abandon`` drops a run this node has lost the lease of, emitting
nothing more, since another node now closes it. Leaving the executor's context stops every run
it still owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from runwire.bus.base import EventBus
from runwire.domain.clock import now_ms
from runwire.domain.ids import new_epoch
from runwire.domain.run_status import RunStatus
from runwire.errors import LeaseLost, RunwireError
from runwire.events.model import EventDraft, EventType
from runwire.runs.active_run import ActiveRun, CancelOutcome
from runwire.runs.closer import RunCloser
from runwire.runs.event_writer import EventWriter
from runwire.runs.journal import ROOT_AGENT, RunJournal
from runwire.runs.run_input import AgentFn, Emit, RunInput
from runwire.store.records import RunRecord
from runwire.store.run_log import RunLog
from runwire.telemetry.logs import log_context
from runwire.telemetry.metrics import Metrics
from runwire.telemetry.traces import Tracing

__all__ = ["AgentFn", "CancelOutcome", "Emit", "EndedHook", "RunExecutor", "RunInput"]

log = logging.getLogger(__name__)


EndedHook = Callable[[RunInput, bool, "str | None"], Awaitable[None]]
"""Awaited once a run's task is over, with whether it was abandoned (its lease lost) and the
thread's queued run that may start next, as read when the run's end was recorded (None when
there is none, or the end could not be recorded)."""


class RunExecutor:
    def __init__(
        self,
        *,
        runs: RunLog,
        bus: EventBus,
        writer: EventWriter,
        agent: AgentFn,
        run_timeout_s: float,
        holds: Callable[[str], bool] = lambda run_id: True,
        confirm: Callable[[str], Awaitable[bool]] | None = None,
        on_ended: EndedHook | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        """``holds(run_id)`` says whether this node still holds the run's lease; it is asked
        before every event; when it says no, ``confirm(run_id)`` asks whether the lease is still
        this node's after all (renewing it), and a run whose lease is gone stops at once,
        emitting nothing more.
        ``on_ended`` is awaited after each run (the dispatcher releases the lease and starts the
        thread's next run)."""
        self._runs = runs
        self._bus = bus
        self._writer = writer
        self._agent = agent
        self._run_timeout_s = run_timeout_s
        self._holds = holds
        self._confirm = confirm
        self._on_ended = on_ended
        self._tracing = tracing or Tracing()
        self._closer = RunCloser(runs, metrics)
        self._active: dict[str, ActiveRun] = {}
        self._drain: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def running(self, grace_s: float = 0.0) -> AsyncIterator[RunExecutor]:
        try:
            yield self
        finally:
            await self.shutdown(grace_s)

    @property
    def accepting(self) -> bool:
        """False once the executor is draining for shutdown: no new run may start."""
        return self._drain is None

    @property
    def writer(self) -> EventWriter:
        """The writer that stores the events of this executor's runs."""
        return self._writer

    @property
    def active_count(self) -> int:
        return len(self._active)

    def has(self, run_id: str) -> bool:
        """Whether the run is executing on this node (until its task has finished)."""
        return run_id in self._active

    def is_active(self, run_id: str) -> bool:
        return run_id in self._active

    def live_status(self, run_id: str) -> tuple[str, int | None] | None:
        """``(status, started_at)`` of an active run, or None if the run is not active here."""
        active = self._active.get(run_id)
        if active is None:
            return None
        return active.state.status.value, active.started_at

    def start(
        self, run: RunInput, *, started_at: int | None = None, stop_reason: str | None = None
    ) -> None:
        """Run ``run`` (claimed for this node) as a task. With ``stop_reason`` it is closed at
        once, as stopped before it started (it still opens and closes its root agent)."""
        active = ActiveRun(input=run, journal=self._journal(run), started_at=started_at)
        if stop_reason is None and not self.accepting:
            stop_reason = "shutdown"  # claimed while a drain began: it is claimed, so it ends
        if stop_reason is not None:
            # Set before the task runs, not by cancelling it: a task cancelled before its first
            # step never enters its body, so it could not close the run (STOP_DUE).
            active.phase.stop(stop_reason)
        self._active[run.run_id] = active
        active.task = asyncio.create_task(self._execute(active), name=f"run-{run.run_id}")

    def cancel(self, run_id: str, reason: str = "stopped") -> CancelOutcome:
        """Stop a run executing here, and say what became of the request.

        A run stays here until its end is recorded, so a run found here but past deciding its
        end (``ENDING``: its terminal event is not ``agent_stopped``) is told apart from one
        not here at all: the caller can answer "it has ended" without asking anyone else."""
        active = self._active.get(run_id)
        if active is None:
            return CancelOutcome.NOT_HERE
        outcome = active.phase.cancel_outcome
        self._cancel(active, reason)
        return outcome

    def abandon(self, run_id: str) -> None:
        """Drop a run whose lease this node lost: no more events, no record of its end."""
        active = self._active.get(run_id)
        if active is not None and active.phase.abandon() and active.task is not None:
            active.task.cancel()

    async def close_lost(self, record: RunRecord, code: str, message: str) -> bool:
        """End a run that no node runs any more (its node died or stopped without closing it).

        It gets its closing events (open tools and sub-agents, then the root's ``agent_error``
        with ``code``) after its stored ones, so a client resuming it sees an end. The lost node
        may have sent events it never stored, whose seqs the closing events now reuse: so the run
        first gets a new epoch, and a client holding a position under the old one is told to
        reload rather than given different events under seqs it has seen. Returns False when
        the stored events already end the run (only its record was left behind).
        """
        epoch = new_epoch()
        while epoch == record.epoch:
            epoch = new_epoch()
        run = RunInput(record.id, record.thread_id, record.user_id, "", epoch=epoch)
        journal = self._journal(run)
        journal.restore(await self._runs.events_after(record.id, 0))
        active = ActiveRun(input=run, journal=journal, started_at=record.started_at)
        if record.status == RunStatus.RUNNING.value:
            active.state.move(RunStatus.RUNNING)
        if journal.closed:
            last = journal.last_seq
            status = RunStatus.FAILED.value
            await self._runs.finish(record.id, status, last_seq=last, started_at=record.started_at)
            return False
        await self._runs.set_epoch(record.id, epoch)
        # The bus drops the dead node's numbering now, and any of it that comes late (a node
        # cut off from Redis, back with events queued): none reaches a socket after the close.
        await self._bus.renumber(record.id, epoch)
        await self._closer.end_early(active, EventType.AGENT_ERROR, code, message)
        await self._writer.flush()
        await self._bus.release(record.id)
        return True

    async def wait(self, run_id: str) -> None:
        """Wait for a run's task to end (for tests and shutdown)."""
        active = self._active.get(run_id)
        if active is not None and active.task is not None:
            await asyncio.shield(active.task)

    async def drain(self, grace_s: float = 0.0) -> None:
        """Stop taking runs; let those running finish for ``grace_s`` seconds, then stop the
        rest (``agent_stopped``, code ``shutdown``) and wait until all are closed. Every caller
        waits for the same drain, however many ask."""
        if self._drain is None:
            self._drain = asyncio.create_task(self._drain_runs(grace_s), name="run-drain")
        await asyncio.shield(self._drain)

    async def shutdown(self, grace_s: float = 0.0) -> None:
        """Drain (see :meth:`drain`), with ``grace_s`` unless a drain is under way already."""
        await self.drain(grace_s)

    async def _drain_runs(self, grace_s: float) -> None:
        tasks = [a.task for a in self._active.values() if a.task is not None]
        if tasks and grace_s > 0:
            await asyncio.wait(tasks, timeout=grace_s)
        # Runs claimed meanwhile are cancelled as they start; wait for them too.
        while tasks := [a.task for a in self._active.values() if a.task is not None]:
            for active in list(self._active.values()):
                self._cancel(active, "shutdown")
            await asyncio.gather(*tasks, return_exceptions=True)

    def _journal(self, run: RunInput) -> RunJournal:
        run_id = run.run_id
        return RunJournal(
            run_id=run_id,
            thread_id=run.thread_id,
            user_id=run.user_id,
            epoch=run.epoch,
            bus=self._bus,
            writer=self._writer,
            # Checked before every event: a partial is called without a frame of Python.
            fence=functools.partial(self._holds, run_id),
            confirm=lambda: self._confirm_lease(run_id),
        )

    async def _confirm_lease(self, run_id: str) -> bool:
        return self._confirm is not None and await self._confirm(run_id)

    @staticmethod
    def _cancel(active: ActiveRun, reason: str) -> None:
        # A run whose end is being recorded is left to finish (cancelling it there would lose
        # its last event), and one not begun sees the reason as it begins (RunPhases.stop).
        if active.phase.stop(reason) and active.task is not None:
            active.task.cancel()

    async def _execute(self, active: ActiveRun) -> None:
        run = active.input
        tracing = self._tracing
        attributes = {"runwire.run_id": run.run_id, "runwire.thread_id": run.thread_id}
        with (
            log_context(run_id=run.run_id, user_id=run.user_id),
            tracing.span("run", attributes, parent=tracing.extract(run.trace)) as span,
        ):
            log.debug("run started")
            await self._execute_run(active)
            status = active.state.status
            log.debug("run ended: %s", status.value)
            Tracing.annotate(span, **{"runwire.run_status": status.value})
            if status is RunStatus.FAILED:
                Tracing.failed(span, "the run failed")

    async def _execute_run(self, active: ActiveRun) -> None:
        try:
            if not active.phase.begin():
                raise asyncio.CancelledError  # stopped (or let go) before it began
            await self._run(active)
        except asyncio.CancelledError:
            if not active.phase.cancel_is_ours:
                raise
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                task.uncancel()
            if not active.phase.abandoned:
                # Stopped: close the run with what it has streamed so far.
                await self._closer.end_early(
                    active, EventType.AGENT_STOPPED, *active.phase.stopped_with()
                )
        except LeaseLost:
            # Said, since nothing else would: its watchers hear no more of it from this node.
            log.warning(
                "run %s stopped here: this node no longer holds its lease", active.input.run_id
            )
            active.phase.lose_lease()
        finally:
            await self._finalize(active)

    async def _run(self, active: ActiveRun) -> None:
        run, journal = active.input, active.journal
        try:
            active.state.move(RunStatus.RUNNING)
            if active.started_at is None:
                active.started_at = now_ms()
            await journal.emit(EventDraft(EventType.AGENT_STARTED, ROOT_AGENT))
            self._closer.first_event(run)
            # The agent's first step (reading the user's data, the first tools) waits for the
            # loop to go round once: the socket writes already scheduled go first, this run's
            # first event among them, and those of the runs started beside it, rather than each
            # run's first event waiting on the first steps of every run started before it
            # (docs/benchmarks.md, "First event of a burst").
            await asyncio.sleep(0)
            async with asyncio.timeout(self._run_timeout_s):
                answer = await self._agent(run, journal)
            reply = active.reply(answer)
            await self._closer.close(
                active,
                EventDraft(
                    EventType.AGENT_COMPLETED,
                    ROOT_AGENT,
                    {"final_response": answer, "message_id": reply.id},
                ),
                RunStatus.COMPLETED,
                reply=reply,
            )
        except LeaseLost:
            raise
        except TimeoutError:
            await self._closer.end_early(
                active,
                EventType.AGENT_ERROR,
                "timeout",
                f"the run took longer than its limit of {self._run_timeout_s:g} s",
            )
        except RunwireError as exc:
            await self._closer.end_early(active, EventType.AGENT_ERROR, exc.code, exc.message)
        except Exception:
            log.exception("run %s failed", run.run_id)
            await self._closer.end_early(
                active,
                EventType.AGENT_ERROR,
                "internal",
                "the agent failed unexpectedly; the error was logged",
            )

    async def _finalize(self, active: ActiveRun) -> None:
        run, journal = active.input, active.journal
        try:
            await self._writer.flush()
            if active.phase.undecided:
                # The task died before it could close (a re-raised cancel).
                await self._runs.finish(
                    run.run_id,
                    RunStatus.CANCELLED.value,
                    last_seq=journal.last_seq,
                    started_at=active.started_at,
                    quality=run.keeps.quality,
                )
        except Exception:
            log.exception("could not record the end of run %s", run.run_id)
        finally:
            try:
                if not active.phase.abandoned:
                    # An abandoned run's history is the new holder's to release.
                    await self._bus.release(run.run_id)
            finally:
                self._active.pop(run.run_id, None)
                if self._on_ended is not None:
                    try:
                        await self._on_ended(run, active.phase.abandoned, active.following)
                    except Exception:
                        log.exception("after run %s ended", run.run_id)
