"""The run state machine.

::

    QUEUED ──start──▶ RUNNING ──▶ COMPLETED | FAILED | CANCELLED
       └──────────────cancel──────────────────────────▲

Terminal states are final; asking to leave one raises InvalidTransition.
"""

from __future__ import annotations

from enum import StrEnum

from runwire.errors import InvalidTransition

__all__ = ["RunState", "RunStatus"]


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


_ALLOWED: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.FAILED}),
    RunStatus.RUNNING: frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}


class RunState:
    def __init__(self) -> None:
        self.status = RunStatus.QUEUED

    def move(self, target: RunStatus) -> None:
        if target not in _ALLOWED[self.status]:
            raise InvalidTransition(f"run cannot go from {self.status} to {target}")
        self.status = target
