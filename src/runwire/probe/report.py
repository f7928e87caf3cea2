"""What one walk of the golden path found: a result per step, and the exit code they make."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any

__all__ = ["Outcome", "Report", "Status", "StepResult"]


class Status(StrEnum):
    """How one step ended."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"  # not run, or could not be tried here; ``detail`` says why


class Outcome(IntEnum):
    """How a whole walk ended; the value is the command's exit code."""

    PASSED = 0  # every step ok or skipped
    FAILED = 1  # a step failed
    UNREACHABLE = 2  # the URL does not answer, or not as runwire

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class StepResult:
    """One step: its name, how it ended, how long it took, and what it saw.

    ``detail`` is what was seen (ok) or why the step was not run (skipped); a failed step says
    what it ``expected`` and what it ``got`` instead.
    """

    name: str
    status: Status
    seconds: float
    detail: str = ""
    expected: str | None = None
    got: str | None = None
    ran: bool = True

    @classmethod
    def not_run(cls, name: str, why: str) -> StepResult:
        """A step skipped without being tried (a step it needs did not pass)."""
        return cls(name, Status.SKIPPED, 0.0, f"not run: {why}", ran=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "status": self.status.value,
            "seconds": round(self.seconds, 4),
            "detail": self.detail,
            "expected": self.expected,
            "got": self.got,
        }


@dataclass
class Report:
    """The results of one walk, in step order. ``unreachable`` is the one line that says why the
    target could not be checked at all (then every step after the first is skipped)."""

    url: str
    auth_url: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    steps: list[StepResult] = field(default_factory=list)
    unreachable: str | None = None

    @property
    def outcome(self) -> Outcome:
        if self.unreachable is not None:
            return Outcome.UNREACHABLE
        if any(step.status is Status.FAILED for step in self.steps):
            return Outcome.FAILED
        return Outcome.PASSED

    @property
    def seconds(self) -> float:
        return sum(step.seconds for step in self.steps)

    def step(self, name: str) -> StepResult | None:
        return next((s for s in self.steps if s.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """The report as the JSON ``runwire check --json`` prints (docs/operating.md)."""
        return {
            "url": self.url,
            "auth_url": self.auth_url,
            "result": self.outcome.label,
            "exit_code": int(self.outcome),
            "started_at": self.started_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "seconds": round(self.seconds, 4),
            "error": self.unreachable,
            "steps": [step.to_json() for step in self.steps],
        }
