"""The steps of the golden path, what each needs, and how a walk goes through them.

The steps run in order, each timed; a step whose prerequisite did not pass is skipped and says
which (the step at the root of it, not the one in between). A step ends ``ok`` with a line of
what it saw, ``skipped`` with why it could not be tried here, or ``failed`` with what it expected
and what came instead. Whatever a step raises makes it fail; going through them never raises.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from runwire.errors import CheckFailed, TargetUnreachable
from runwire.probe.report import Report, Status, StepResult

__all__ = ["NEEDS", "STEPS", "Skip", "Step", "StepOutcome", "go_through", "timed"]

NEEDS: Mapping[str, tuple[str, ...]] = {
    "health": (),
    "ready": ("health",),
    "sign_in": ("health",),
    "sample_data": ("sign_in",),
    "ticket": ("sign_in",),
    "websocket": ("ticket",),
    "message_accepted": ("websocket",),
    "cut_and_resume": ("message_accepted",),
    "events": ("cut_and_resume",),
    "seq": ("cut_and_resume",),
    "streamed_text": ("cut_and_resume",),
    "stop_agent": ("websocket",),
    "isolation": ("message_accepted",),
}
"""Each step, in the order they run, and the steps it needs to have passed."""

STEPS = tuple(NEEDS)
"""The step names, in order; the metrics' ``step`` label and the JSON's ``step`` take these."""

# A step whose failure means the target could not be checked at all (it is not runwire).
_GATES = ("health", "ready")


@dataclass(frozen=True)
class Skip:
    """A step's result when it could not be tried here (``reason`` says why)."""

    reason: str


StepOutcome = str | Skip
Step = Callable[[], Awaitable[StepOutcome]]


async def timed(report: Report, name: str, step: Step, clock: Callable[[], float]) -> StepResult:
    """Run ``step`` and say how it ended and how long it took. A :class:`TargetUnreachable` from
    a gate step (health, ready) marks the whole report unreachable."""
    started = clock()
    try:
        outcome = await step()
    except TargetUnreachable as exc:
        if name in _GATES:
            report.unreachable = exc.message
        return StepResult(
            name, Status.FAILED, clock() - started, expected=exc.expected, got=exc.got
        )
    except CheckFailed as exc:
        return StepResult(
            name, Status.FAILED, clock() - started, expected=exc.expected, got=exc.got
        )
    except Exception as exc:
        # A probe reports what broke; an answer of a shape nobody foresaw is a failed step.
        got = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return StepResult(
            name, Status.FAILED, clock() - started, expected="the step to finish", got=got
        )
    seconds = clock() - started
    if isinstance(outcome, Skip):
        return StepResult(name, Status.SKIPPED, seconds, outcome.reason)
    return StepResult(name, Status.OK, seconds, outcome)


async def go_through(
    report: Report,
    steps: Sequence[tuple[str, Step]],
    clock: Callable[[], float],
    needs: Mapping[str, tuple[str, ...]] = NEEDS,
) -> None:
    """Run ``steps`` in order into ``report``: a step whose prerequisite (``needs``) did not pass
    is not run, and says which step is at the root of it; once the report is unreachable, no
    step after runs."""
    # Per step that did not pass, the step at the root of it (itself, or what it needed).
    cause: dict[str, StepResult] = {}
    for name, step in steps:
        blocked = [cause[need] for need in needs[name] if need in cause]
        if report.unreachable is not None:
            result = StepResult.not_run(name, "the target could not be checked")
        elif blocked:
            how = "failed" if blocked[0].status is Status.FAILED else "was skipped"
            result = StepResult.not_run(name, f"{blocked[0].name} {how}")
        else:
            result = await timed(report, name, step, clock)
        if result.status is not Status.OK:
            cause[name] = blocked[0] if blocked else result
        report.steps.append(result)
