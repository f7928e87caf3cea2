"""A run's status and the moves between them.

::

    QUEUED ──start──▶ RUNNING ──▶ COMPLETED | FAILED | CANCELLED
       └──────────────cancel──────────────────────────▲

Terminal statuses are final; asking to leave one raises InvalidTransition (the moves are a
:class:`~runwire.domain.state_machine.Transitions` table). The store keeps a
run's status as its value (``"queued"``, ...), so a stored status compares equal to the member.
"""

from __future__ import annotations

from enum import StrEnum

from runwire.domain.state_machine import StateMachine, Transitions

__all__ = ["FINAL_STATUSES", "UNFINISHED_STATUSES", "RunState", "RunStatus"]


class RunStatus(StrEnum):
    """Where a run is in its life (the ``status`` of a run in the API and the store)."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """Nothing more happens to a run in this status."""
        return self in _TERMINAL


_TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})

FINAL_STATUSES: tuple[RunStatus, ...] = tuple(s for s in RunStatus if s.is_terminal)
"""The terminal statuses, in declaration order (for a query's ``IN``)."""

UNFINISHED_STATUSES: tuple[RunStatus, ...] = tuple(s for s in RunStatus if not s.is_terminal)
"""The statuses of a run that is waiting or running (for a query's ``IN``)."""

_MOVES: Transitions[RunStatus] = Transitions(
    "run",
    {
        RunStatus.QUEUED: {RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.FAILED},
        RunStatus.RUNNING: {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED},
        RunStatus.COMPLETED: (),
        RunStatus.FAILED: (),
        RunStatus.CANCELLED: (),
    },
)


class RunState(StateMachine[RunStatus]):
    """One run's status, moved only along the arrows above (``move`` raises
    InvalidTransition for any other)."""

    __slots__ = ()

    def __init__(self, initial: RunStatus = RunStatus.QUEUED) -> None:
        super().__init__(_MOVES, initial)

    @property
    def status(self) -> RunStatus:
        """Where the run is (the machine's ``state``)."""
        return self.state
