"""A run executing on this node: its task's phase, its status, and what a stop request finds.

The executor keeps one :class:`ActiveRun` per run it owns, from ``start`` until its task has
finished. Its status (:class:`~runwire.domain.run_status.RunState`) is what the API and the
store say of the run; its phase is where its task is, which decides what ``cancel``,
``abandon`` and a lost lease do to it::

    WAITING ──begin──▶ WORKING ──end decided──▶ ENDING
       │                  │                        ▲
       stop               stop (cancels the task)  │ (the end was decided before the stop landed)
       ▼                  ▼                        │
    STOP_DUE ──begin──▶ STOPPING ──ended stopped──▶ STOPPED

    any phase but ABANDONED ──lease lost──▶ ABANDONED

A task cancelled before its first step never enters its body, so it could neither close the run
nor let it go: a run asked to stop before it began is STOP_DUE, and its task stops as it
begins. WAITING may also lead to ENDING directly: a lost run closed by ``close_lost`` has no
task. Any move not drawn raises :class:`~runwire.errors.RunPhaseError`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from runwire.domain.clock import now_ms
from runwire.domain.ids import new_id
from runwire.domain.run_status import RunState, RunStatus
from runwire.domain.state_machine import StateMachine, Transitions
from runwire.errors import RunPhaseError
from runwire.runs.journal import RunJournal
from runwire.runs.run_input import RunInput
from runwire.store.records import Message

__all__ = ["RUN_PHASES", "ActiveRun", "CancelOutcome", "RunPhase", "RunPhases"]


class RunPhase(StrEnum):
    """Where a run's task is on this node."""

    WAITING = "waiting"  # its task has not taken its first step
    WORKING = "working"  # the agent runs
    STOP_DUE = "stop_due"  # asked to stop before its first step: it stops as it begins
    STOPPING = "stopping"  # asked to stop: it ends with agent_stopped
    STOPPED = "stopped"  # it ended stopped; its end is being recorded
    ENDING = "ending"  # its end (completed or failed) is decided and being recorded
    ABANDONED = "abandoned"  # the lease is lost: emit nothing, record nothing, release nothing


RUN_PHASES: Transitions[RunPhase] = Transitions(
    "run task",
    {
        RunPhase.WAITING: {
            RunPhase.WORKING,
            RunPhase.STOP_DUE,
            RunPhase.ENDING,
            RunPhase.ABANDONED,
        },
        RunPhase.WORKING: {RunPhase.STOPPING, RunPhase.ENDING, RunPhase.ABANDONED},
        RunPhase.STOP_DUE: {RunPhase.STOPPING, RunPhase.ABANDONED},
        RunPhase.STOPPING: {RunPhase.STOPPED, RunPhase.ENDING, RunPhase.ABANDONED},
        # A lease can still be found lost at the last event, after the end was decided.
        RunPhase.STOPPED: {RunPhase.ABANDONED},
        RunPhase.ENDING: {RunPhase.ABANDONED},
        RunPhase.ABANDONED: (),
    },
    error=RunPhaseError,
)
"""The arrows of the diagram above."""

# A cancellation of the task in these phases is the executor's own (a stop or a lost lease): the
# run is closed (or let go) rather than the cancellation passed on.
_OURS = frozenset({RunPhase.STOPPING, RunPhase.STOPPED, RunPhase.ABANDONED})
_UNDECIDED = frozenset({RunPhase.WAITING, RunPhase.WORKING, RunPhase.STOP_DUE, RunPhase.STOPPING})


_STOP_MESSAGES = {
    "stopped": "stopped at the user's request",
    "shutdown": "the server is shutting down; send the message again",
}


class CancelOutcome(Enum):
    """What :meth:`RunExecutor.cancel <runwire.runs.executor.RunExecutor.cancel>` found."""

    STOPPING = "stopping"  # the run ends with agent_stopped: stopped now, or already stopping
    ENDING = "ending"  # its end was decided before (completed or failed): it ends as it would
    NOT_HERE = "not_here"  # not executing on this node (or no longer this node's)


class RunPhases(StateMachine[RunPhase]):
    """A run's task phase (the diagram above), moved by what happens to the run; with the
    reason it was asked to stop, once it was."""

    __slots__ = ("stop_reason",)

    def __init__(self, initial: RunPhase = RunPhase.WAITING) -> None:
        super().__init__(RUN_PHASES, initial)
        self.stop_reason: str | None = None  # set with STOP_DUE or STOPPING

    @property
    def abandoned(self) -> bool:
        """Its lease is lost: nothing more is emitted, recorded or released for it here."""
        return self.state is RunPhase.ABANDONED

    @property
    def undecided(self) -> bool:
        """Its end is neither decided nor given up: if its task dies now, the end is unrecorded."""
        return self.state in _UNDECIDED

    @property
    def cancel_is_ours(self) -> bool:
        """A cancellation its task sees now is a stop's or a lost lease's, not the loop's."""
        return self.state in _OURS

    @property
    def cancel_outcome(self) -> CancelOutcome:
        """What a request to stop it finds (before :meth:`stop` is asked): ``STOPPING`` also
        for a run that :meth:`stop` will stop now."""
        state = self.state
        if state is RunPhase.ABANDONED:
            return CancelOutcome.NOT_HERE
        if state is RunPhase.ENDING:
            return CancelOutcome.ENDING
        return CancelOutcome.STOPPING

    def begin(self) -> bool:
        """Its task takes its first step: False if it must stop at once (it was asked to stop,
        or let go, before it began)."""
        if self.state is RunPhase.WAITING:
            self.move(RunPhase.WORKING)
            return True
        if self.state is RunPhase.STOP_DUE:
            self.move(RunPhase.STOPPING)
        return False

    def stop(self, reason: str) -> bool:
        """Ask it to stop with ``reason``, unless it is stopping, ending or let go already; True
        when its task has begun and must be cancelled now (one that has not sees the reason as
        it begins)."""
        if self.state is RunPhase.WORKING:
            self.move(RunPhase.STOPPING)
            self.stop_reason = reason
            return True
        if self.state is RunPhase.WAITING:
            self.move(RunPhase.STOP_DUE)
            self.stop_reason = reason
        return False

    def abandon(self) -> bool:
        """Its lease is lost: let it go, unless its end is decided already (that run is left to
        finish recording it). True when its task is running the agent and must be cancelled."""
        state = self.state
        if state is RunPhase.ENDING or state is RunPhase.STOPPED or state is RunPhase.ABANDONED:
            return False
        self.move(RunPhase.ABANDONED)
        return state is RunPhase.WORKING

    def lose_lease(self) -> None:
        """Its task found the lease lost (``LeaseLost``), whatever it was doing."""
        if self.state is not RunPhase.ABANDONED:
            self.move(RunPhase.ABANDONED)

    def end(self, status: RunStatus) -> None:
        """Its end is decided: ``status`` (``cancelled`` is a stopped run's end)."""
        self.move(RunPhase.STOPPED if status is RunStatus.CANCELLED else RunPhase.ENDING)

    def stopped_with(self) -> tuple[str, str]:
        """The code and message of its ``agent_stopped``: why it was asked to stop."""
        reason = self.stop_reason or "stopped"  # set whenever it was asked to stop
        return reason, _STOP_MESSAGES.get(reason, reason)


@dataclass(eq=False)
class ActiveRun:
    """One run the executor owns: its input and journal, its status and its task's phase."""

    input: RunInput
    journal: RunJournal
    started_at: int | None = None
    state: RunState = field(default_factory=RunState)
    phase: RunPhases = field(default_factory=RunPhases)
    task: asyncio.Task[None] | None = None
    following: str | None = None  # the thread's next run that may start, read at the end

    def decide_end(self, status: RunStatus) -> None:
        """Its end is decided: ``status`` (terminal), about to be recorded."""
        self.state.move(status)
        self.phase.end(status)

    def reply(self, content: str, *, partial: bool = False) -> Message:
        """Its reply message, of ``content`` (``partial``: what streamed before it was cut)."""
        run = self.input
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
