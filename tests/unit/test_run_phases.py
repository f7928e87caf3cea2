"""A run's task phases on its node (runs/active_run.py): every arrow of the diagram allowed, every
other move refused with RunPhaseError, and what a stop request, a lost lease and the task's first
step do from each phase (which the executor acts on: cancel the task or not, record the end or
not, answer the stop request)."""

from __future__ import annotations

import itertools

import pytest

from runwire.domain.run_status import RunStatus
from runwire.errors import InvalidTransition, RunPhaseError
from runwire.runs.active_run import RUN_PHASES, CancelOutcome, RunPhase, RunPhases

pytestmark = pytest.mark.unit

P = RunPhase
# Written out again here, from the diagram in the module's docstring, so a changed table fails.
ARROWS = {
    (P.WAITING, P.WORKING),
    (P.WAITING, P.STOP_DUE),
    (P.WAITING, P.ENDING),
    (P.WORKING, P.STOPPING),
    (P.WORKING, P.ENDING),
    (P.STOP_DUE, P.STOPPING),
    (P.STOPPING, P.STOPPED),
    (P.STOPPING, P.ENDING),
} | {(phase, P.ABANDONED) for phase in RunPhase if phase is not P.ABANDONED}


@pytest.mark.parametrize(("source", "target"), list(itertools.product(RunPhase, RunPhase)))
def test_only_the_drawn_arrows_are_allowed(source: RunPhase, target: RunPhase) -> None:
    phases = RunPhases(source)
    if (source, target) in ARROWS:
        phases.move(target)
        assert phases.state is target
    else:
        with pytest.raises(RunPhaseError) as caught:
            phases.move(target)
        assert str(caught.value) == f"run task cannot go from {source.value} to {target.value}"
        assert isinstance(caught.value, InvalidTransition)
        assert phases.state is source
    assert RUN_PHASES.is_terminal(source) is (source is P.ABANDONED)


def test_a_run_that_begins_unasked_works_and_one_asked_to_stop_first_stops_as_it_begins() -> None:
    working = RunPhases()
    assert working.begin() is True and working.state is P.WORKING
    asked = RunPhases()
    assert asked.stop("shutdown") is False  # not begun: no task to cancel yet
    assert asked.state is P.STOP_DUE and asked.stop_reason == "shutdown"
    assert asked.begin() is False and asked.state is P.STOPPING
    assert asked.stopped_with() == (
        "shutdown",
        "the server is shutting down; send the message again",
    )
    let_go = RunPhases()
    assert let_go.abandon() is False  # not begun: nothing to cancel
    assert let_go.begin() is False and let_go.state is P.ABANDONED


@pytest.mark.parametrize(
    ("phase", "cancels", "after", "outcome"),
    [
        (P.WAITING, False, P.STOP_DUE, CancelOutcome.STOPPING),
        (P.WORKING, True, P.STOPPING, CancelOutcome.STOPPING),
        (P.STOP_DUE, False, P.STOP_DUE, CancelOutcome.STOPPING),
        (P.STOPPING, False, P.STOPPING, CancelOutcome.STOPPING),
        (P.STOPPED, False, P.STOPPED, CancelOutcome.STOPPING),
        (P.ENDING, False, P.ENDING, CancelOutcome.ENDING),
        (P.ABANDONED, False, P.ABANDONED, CancelOutcome.NOT_HERE),
    ],
)
def test_a_stop_request_from_each_phase(
    phase: RunPhase, cancels: bool, after: RunPhase, outcome: CancelOutcome
) -> None:
    phases = RunPhases(phase)
    assert phases.cancel_outcome is outcome  # what the executor answers, read before it stops
    assert phases.stop("stopped") is cancels
    assert phases.state is after
    # Only a stop that took sets the reason; a second one does not replace it.
    assert phases.stop_reason == ("stopped" if phase in (P.WAITING, P.WORKING) else None)
    assert phases.stop("shutdown") is False and phases.state is after


@pytest.mark.parametrize(
    ("phase", "cancels", "after"),
    [
        (P.WAITING, False, P.ABANDONED),
        (P.WORKING, True, P.ABANDONED),
        (P.STOP_DUE, False, P.ABANDONED),
        (P.STOPPING, False, P.ABANDONED),  # its task is closing the run already: not cancelled
        (P.STOPPED, False, P.STOPPED),  # its end is being recorded: left to finish
        (P.ENDING, False, P.ENDING),
        (P.ABANDONED, False, P.ABANDONED),
    ],
)
def test_abandoning_from_each_phase(phase: RunPhase, cancels: bool, after: RunPhase) -> None:
    phases = RunPhases(phase)
    assert phases.abandon() is cancels
    assert phases.state is after
    assert phases.abandoned is (after is P.ABANDONED)


@pytest.mark.parametrize("phase", list(RunPhase))
def test_a_lease_found_lost_by_the_task_lets_the_run_go_from_any_phase(phase: RunPhase) -> None:
    phases = RunPhases(phase)
    phases.lose_lease()
    phases.lose_lease()
    assert phases.state is P.ABANDONED and phases.abandoned


@pytest.mark.parametrize(
    ("phase", "undecided", "ours"),
    [
        (P.WAITING, True, False),
        (P.WORKING, True, False),
        (P.STOP_DUE, True, False),
        (P.STOPPING, True, True),
        (P.STOPPED, False, True),
        (P.ENDING, False, False),
        (P.ABANDONED, False, True),
    ],
)
def test_what_the_task_does_at_its_end_and_on_a_cancellation(
    phase: RunPhase, undecided: bool, ours: bool
) -> None:
    phases = RunPhases(phase)
    assert phases.undecided is undecided  # a task dying here leaves its end to be recorded
    assert phases.cancel_is_ours is ours  # a cancellation here closes the run, not re-raised


def test_an_end_is_stopped_for_a_cancelled_run_and_ending_for_the_others() -> None:
    stopping = RunPhases(P.STOPPING)
    stopping.end(RunStatus.CANCELLED)
    assert stopping.state is P.STOPPED
    for status in (RunStatus.COMPLETED, RunStatus.FAILED):
        working = RunPhases(P.WORKING)
        working.end(status)
        assert working.state is P.ENDING
    never_begun = RunPhases()  # a lost run closed by close_lost has no task
    never_begun.end(RunStatus.FAILED)
    assert never_begun.state is P.ENDING
    with pytest.raises(RunPhaseError, match="run task cannot go from working to stopped"):
        RunPhases(P.WORKING).end(RunStatus.CANCELLED)
    with pytest.raises(RunPhaseError, match="run task cannot go from ending to ending"):
        RunPhases(P.ENDING).end(RunStatus.COMPLETED)


def test_a_stop_reason_without_a_message_of_its_own_is_its_own_message() -> None:
    phases = RunPhases()
    phases.stop("lease_lost")
    assert phases.stopped_with() == ("lease_lost", "lease_lost")
    assert RunPhases(P.STOPPING).stopped_with() == ("stopped", "stopped at the user's request")
