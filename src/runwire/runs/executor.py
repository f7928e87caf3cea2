"""The run executor: runs each accepted message's agent as a task it owns.

The socket that accepted a message never awaits the agent: ``submit`` starts a task and returns.
Runs on one thread execute one after another (the next waits for the previous); ``stop`` cancels
a run wherever it is (queued, inside a tool, inside an LLM call) and the run still ends with its
closing events. Leaving the executor's context stops every run it still owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from runwire.bus.base import EventBus
from runwire.errors import NotFound, RunwireError
from runwire.events.model import EventDraft, EventType, RunEvent
from runwire.runs.event_writer import EventWriter
from runwire.runs.journal import ROOT_AGENT, RunJournal
from runwire.runs.state import RunState, RunStatus
from runwire.store.records import Message, new_epoch, new_id, now_ms
from runwire.store.run_log import RunLog

__all__ = ["AgentFn", "Emit", "RunExecutor", "RunInput"]

log = logging.getLogger(__name__)

Emit = Callable[[EventDraft], Awaitable[RunEvent]]


@dataclass(frozen=True, slots=True)
class RunInput:
    run_id: str
    thread_id: str
    user_id: str
    question: str
    history: list[tuple[str, str]] = field(default_factory=list)
    epoch: str = field(kw_only=True)  # the run's epoch as stored with it; every event carries it


AgentFn = Callable[[RunInput, Emit], Awaitable[str]]
"""The agent pipeline: given the run's input and an emitter, produce the answer text."""


@dataclass(eq=False)
class _Active:
    input: RunInput
    journal: RunJournal
    state: RunState = field(default_factory=RunState)
    task: asyncio.Task[None] | None = None
    stop_reason: str | None = None
    started_at: int | None = None
    ended: bool = False


def _reply(run: RunInput, content: str, *, partial: bool = False) -> Message:
    return Message(
        id=new_id("msg"),
        thread_id=run.thread_id,
        user_id=run.user_id,
        role="assistant",
        content=content,
        created_at=now_ms(),
        run_id=run.run_id,
        partial=partial,
    )


@dataclass(eq=False)
class _ThreadQueue:
    runs: list[_Active] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


_STOP_MESSAGES = {
    "stopped": "stopped at the user's request",
    "shutdown": "the server is shutting down; send the message again",
}


class RunExecutor:
    def __init__(
        self,
        *,
        runs: RunLog,
        bus: EventBus,
        writer: EventWriter,
        agent: AgentFn,
        run_timeout_s: float,
    ) -> None:
        self._runs = runs
        self._bus = bus
        self._writer = writer
        self._agent = agent
        self._run_timeout_s = run_timeout_s
        self._active: dict[str, _Active] = {}
        # Per thread: its unfinished runs in arrival order, and a FIFO lock the running one holds.
        self._threads: dict[str, _ThreadQueue] = {}
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
    def active_count(self) -> int:
        return len(self._active)

    def active_runs_of(self, user_id: str) -> int:
        # A run that has published its last event no longer counts, though its task may still
        # be storing: whoever saw the end may start the next run at once.
        return sum(1 for a in self._active.values() if a.input.user_id == user_id and not a.ended)

    def is_active(self, run_id: str) -> bool:
        return run_id in self._active

    def live_status(self, run_id: str) -> tuple[str, int | None] | None:
        """``(status, started_at)`` of an active run, or None if the run is not active here."""
        active = self._active.get(run_id)
        if active is None:
            return None
        return active.state.status.value, active.started_at

    def thread_busy(self, thread_id: str) -> str | None:
        """The run id of the thread's oldest unfinished run (running or queued), if any."""
        return next(iter(self.unfinished_on_thread(thread_id)), None)

    def unfinished_on_thread(self, thread_id: str) -> list[str]:
        queue = self._threads.get(thread_id)
        return [a.input.run_id for a in queue.runs if not a.ended] if queue else []

    def submit(self, run: RunInput) -> None:
        """Start the run as a task; it runs once every earlier run of its thread has ended."""
        active = _Active(input=run, journal=self._journal(run))
        queue = self._threads.setdefault(run.thread_id, _ThreadQueue())
        queue.runs.append(active)
        self._active[run.run_id] = active
        active.task = asyncio.create_task(self._execute(active, queue), name=f"run-{run.run_id}")
        if not self.accepting:
            # Accepted while a drain began (the chat service refuses before storing, but a
            # message already being stored gets here): it is stored, so it gets its end.
            self._cancel(active, "shutdown")

    async def recover(self) -> int:
        """End the runs a previous process left unfinished (it stopped without closing them).

        Each gets its closing events (open tools and sub-agents, then the root's ``agent_error``
        with code ``interrupted``) after its stored ones, so a client resuming it sees an end.
        The dead process may have sent events it never stored, whose seqs the closing events
        now reuse: so the run first gets a new epoch, and a client holding a position under the
        old one is told to reload rather than given different events under seqs it has seen.
        Returns how many runs were closed. With several nodes this becomes a lease check.
        """
        message = "the server stopped during this run; send the message again"
        closed = 0
        for record in await self._runs.unfinished():
            epoch = new_epoch()
            while epoch == record.epoch:
                epoch = new_epoch()
            run = RunInput(record.id, record.thread_id, record.user_id, "", epoch=epoch)
            journal = self._journal(run)
            journal.restore(await self._runs.events_after(record.id, 0))
            if journal.closed:
                continue
            await self._runs.set_epoch(record.id, epoch)
            active = _Active(input=run, journal=journal)
            if record.status == RunStatus.RUNNING.value:
                active.state.move(RunStatus.RUNNING)
            active.started_at = record.started_at
            await self._end_early(active, EventType.AGENT_ERROR, "interrupted", message)
            await self._writer.flush()
            await self._bus.release(record.id)
            closed += 1
        await self._writer.flush()
        return closed

    async def stop(self, user_id: str, run_id: str, reason: str = "stopped") -> bool:
        """Cancel an active run of ``user_id``. Returns False if it exists but has ended."""
        active = self._active.get(run_id)
        if active is None or active.input.user_id != user_id:
            if await self._runs.get(user_id, run_id) is None:
                raise NotFound("no such run")
            return False
        self._cancel(active, reason)
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
        # Runs accepted meanwhile are cancelled as they are submitted; wait for them too.
        while tasks := [a.task for a in self._active.values() if a.task is not None]:
            for active in list(self._active.values()):
                self._cancel(active, "shutdown")
            await asyncio.gather(*tasks, return_exceptions=True)

    def _journal(self, run: RunInput) -> RunJournal:
        return RunJournal(
            run_id=run.run_id,
            thread_id=run.thread_id,
            user_id=run.user_id,
            epoch=run.epoch,
            bus=self._bus,
            writer=self._writer,
        )

    def _cancel(self, active: _Active, reason: str) -> None:
        if active.stop_reason is None and active.task is not None:
            active.stop_reason = reason
            active.task.cancel()

    async def _execute(self, active: _Active, queue: _ThreadQueue) -> None:
        try:
            # The thread's lock is fair (first come, first served), so runs on one thread
            # execute one at a time in the order they were accepted, whoever is stopped.
            async with queue.lock:
                await self._run(active)
        except asyncio.CancelledError:
            if active.stop_reason is None:
                raise
            # Stopped (queued or running): close the run with what it has streamed so far.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            await self._end_early(
                active,
                EventType.AGENT_STOPPED,
                active.stop_reason,
                _STOP_MESSAGES.get(active.stop_reason, active.stop_reason),
            )
        finally:
            await self._finalize(active)

    async def _run(self, active: _Active) -> None:
        run, journal = active.input, active.journal
        try:
            active.state.move(RunStatus.RUNNING)
            active.started_at = now_ms()
            await journal.emit(EventDraft(EventType.AGENT_STARTED, ROOT_AGENT))
            async with asyncio.timeout(self._run_timeout_s):
                answer = await self._agent(run, journal.emit)
            reply = _reply(run, answer)
            await self._close(
                active,
                EventDraft(
                    EventType.AGENT_COMPLETED,
                    ROOT_AGENT,
                    {"final_response": answer, "message_id": reply.id},
                ),
                RunStatus.COMPLETED,
                reply=reply,
            )
        except TimeoutError:
            await self._end_early(
                active,
                EventType.AGENT_ERROR,
                "timeout",
                f"the run took longer than its limit of {self._run_timeout_s:g} s",
            )
        except RunwireError as exc:
            await self._end_early(active, EventType.AGENT_ERROR, exc.code, exc.message)
        except Exception:
            log.exception("run %s failed", run.run_id)
            await self._end_early(
                active,
                EventType.AGENT_ERROR,
                "internal",
                "the agent failed unexpectedly; the error was logged",
            )

    async def _end_early(self, active: _Active, kind: EventType, code: str, message: str) -> None:
        run, journal = active.input, active.journal
        if journal.closed:
            return
        if journal.last_seq == 0:  # stopped while queued: the root still opens before it closes
            await journal.emit(EventDraft(EventType.AGENT_STARTED, ROOT_AGENT))
        await journal.close_open(code, message)
        data: dict[str, object] = {"code": code, "message": message}
        reply = None
        if journal.text:
            # What the user already watched stream in is kept, marked as cut short.
            reply = _reply(run, journal.text, partial=True)
            data["partial_message_id"] = reply.id
        status = RunStatus.CANCELLED if kind is EventType.AGENT_STOPPED else RunStatus.FAILED
        error = (code, message) if status is RunStatus.FAILED else None
        await self._close(active, EventDraft(kind, ROOT_AGENT, data), status, error, reply)

    async def _close(
        self,
        active: _Active,
        last: EventDraft,
        status: RunStatus,
        error: tuple[str, str] | None = None,
        reply: Message | None = None,
    ) -> None:
        """Record the run's end (and its reply), then publish its last event: whoever sees that
        event and asks finds the run ended and the reply stored (the events themselves are
        served from the bus's history until they are stored)."""
        active.state.move(status)
        active.ended = True
        try:
            await self._runs.finish(
                active.input.run_id,
                status.value,
                last_seq=active.journal.last_seq + 1,
                started_at=active.started_at,
                error_code=error[0] if error else None,
                error_message=error[1] if error else None,
                reply=reply,
            )
        except Exception:
            # The watchers still get the run's last event; the stored row says what it can.
            log.exception("could not record the end of run %s", active.input.run_id)
        await active.journal.emit(last)

    async def _finalize(self, active: _Active) -> None:
        run, journal = active.input, active.journal
        try:
            await self._writer.flush()
            if not active.ended:  # the task died before it could close (a re-raised cancel)
                await self._runs.finish(
                    run.run_id,
                    RunStatus.CANCELLED.value,
                    last_seq=journal.last_seq,
                    started_at=active.started_at,
                )
        except Exception:
            log.exception("could not record the end of run %s", run.run_id)
        finally:
            try:
                await self._bus.release(run.run_id)
            finally:
                self._active.pop(run.run_id, None)
                queue = self._threads.get(run.thread_id)
                if queue is not None:
                    queue.runs.remove(active)
                    if not queue.runs:
                        del self._threads[run.thread_id]
