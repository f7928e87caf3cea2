"""A run's status and the moves between them.

::

    QUEUED ──start──▶ RUNNING ──▶ COMPLETED | FAILED | CANCELLED
       └──────────────cancel──────────────────────────▲

Terminal statuses are final; asking to leave one raises InvalidTransition. The store keeps a
run's status as its value (``"queued"``, ...), so a stored status compares equal to the member.
"""

from __future__ import annotations

from enum import StrEnum

from runwire.errors import InvalidTransition

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

_ALLOWED: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.FAILED}),
    RunStatus.RUNNING: frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}


class RunState:
    """One run's status, moved only along the arrows above."""

    def __init__(self) -> None:
        self.status = RunStatus.QUEUED

    def move(self, target: RunStatus) -> None:
        """Move to ``target``; InvalidTransition if no arrow leads there from here."""
        if target not in _ALLOWED[self.status]:
            raise InvalidTransition(f"run cannot go from {self.status} to {target}")
        self.status = target
