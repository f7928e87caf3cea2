"""The walk's course through its steps, a sign-in's answer and what a stop came to, without a
deployment: the steps are coroutines that answer at once, driven without an event loop."""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from runwire.errors import CheckFailed, TargetUnreachable
from runwire.probe.exchanges import check_accepted, stopped
from runwire.probe.report import Outcome, Report, Status
from runwire.probe.sessions import Session
from runwire.probe.steps import NEEDS, STEPS, Skip, Step, StepOutcome, go_through, timed

T = TypeVar("T")


def done(coroutine: Coroutine[Any, Any, T]) -> T:
    """The value of a coroutine that never waits (every step here answers at once)."""
    try:
        coroutine.send(None)
    except StopIteration as finished:
        return finished.value  # type: ignore[no-any-return]
    raise AssertionError("the coroutine waited")


def ticks() -> Iterator[float]:
    now = 0.0
    while True:
        yield now
        now += 0.25  # every reading of the clock a quarter second after the last


def walked(outcomes: dict[str, StepOutcome | Exception]) -> tuple[Report, list[str]]:
    """A report of the golden path whose steps end as ``outcomes`` says (ok by default), and
    the steps that were called, in order."""
    called: list[str] = []

    def step(name: str) -> Step:
        async def run() -> StepOutcome:
            called.append(name)
            outcome = outcomes.get(name, f"{name} fine")
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        return run

    report = Report("https://chat.example.com", "https://chat.example.com")
    clock = ticks()
    done(go_through(report, [(name, step(name)) for name in STEPS], lambda: next(clock)))
    return report, called


def statuses(report: Report) -> dict[str, str]:
    return {step.name: step.status.value for step in report.steps}


def test_every_step_needs_only_steps_before_it() -> None:
    for index, name in enumerate(STEPS):
        assert set(NEEDS[name]) <= set(STEPS[:index]), name
    assert STEPS[0] == "health" and NEEDS["health"] == ()


def test_a_clean_walk_runs_every_step_in_order_and_times_each() -> None:
    report, called = walked({})
    assert called == list(STEPS)
    assert [step.name for step in report.steps] == list(STEPS)
    assert all(step.status is Status.OK and step.ran for step in report.steps)
    assert report.step("seq") is not None and report.step("seq").detail == "seq fine"  # type: ignore[union-attr]
    assert {step.seconds for step in report.steps} == {0.25}
    assert report.outcome is Outcome.PASSED


def test_a_failed_step_skips_what_needs_it_and_names_itself_as_the_root() -> None:
    report, called = walked({"websocket": CheckFailed("connection_established", "403")})
    # Everything under websocket, directly or not, is not run; the rest still is.
    below = {"message_accepted", "cut_and_resume", "events", "seq", "streamed_text"}
    assert not below & set(called) and "stop_agent" not in called
    assert called == ["health", "ready", "sign_in", "sample_data", "ticket", "websocket"]
    failed = report.step("websocket")
    assert failed is not None and failed.status is Status.FAILED
    assert (failed.expected, failed.got) == ("connection_established", "403")
    for name in [*below, "stop_agent", "isolation"]:
        step = report.step(name)
        assert step is not None and not step.ran, name
        assert step.detail == "not run: websocket failed", name  # the root, not the step between
    assert report.outcome is Outcome.FAILED


def test_a_skipped_step_skips_what_needs_it_and_says_skipped() -> None:
    report, called = walked({"sign_in": Skip("no users here")})
    assert called == ["health", "ready", "sign_in"]
    assert statuses(report)["sign_in"] == "skipped"
    assert report.step("sample_data").detail == "not run: sign_in was skipped"  # type: ignore[union-attr]
    assert report.outcome is Outcome.PASSED  # skipped is fine


def test_a_gate_that_finds_no_runwire_stops_the_walk() -> None:
    report, called = walked({"ready": TargetUnreachable("not runwire", expected="/ready")})
    assert called == ["health", "ready"]
    assert report.unreachable == "not runwire" and report.outcome is Outcome.UNREACHABLE
    # sign_in needs only health, which passed: still not run, the target cannot be checked.
    assert report.step("sign_in").detail == "not run: the target could not be checked"  # type: ignore[union-attr]


def test_unreachable_from_a_later_step_fails_only_that_step() -> None:
    report, _ = walked({"sample_data": TargetUnreachable("gone", expected="an answer")})
    assert report.unreachable is None
    assert statuses(report)["sample_data"] == "failed" and statuses(report)["ticket"] == "ok"


@pytest.mark.parametrize(
    ("raised", "got"),
    [(KeyError("ticket"), "KeyError: 'ticket'"), (AssertionError(), "AssertionError")],
)
def test_an_unforeseen_exception_is_a_failed_step_not_a_traceback(
    raised: Exception, got: str
) -> None:
    report = Report("https://a.example", "https://a.example")

    async def step() -> StepOutcome:
        raise raised

    clock = ticks()
    result = done(timed(report, "ticket", step, lambda: next(clock)))
    assert result.status is Status.FAILED
    assert (result.expected, result.got, result.seconds) == ("the step to finish", got, 0.25)


def test_a_session_needs_a_token_and_a_user_id() -> None:
    body = {"access_token": "tok", "user": {"id": "usr_1"}}
    assert Session.of(body, "POST /auth/login", "a@example.com") == Session(
        "a@example.com", "usr_1", "tok"
    )
    for wrong in ({"access_token": "", "user": {"id": "usr_1"}}, {"access_token": "tok"}):
        with pytest.raises(CheckFailed) as failed:
            Session.of(wrong, "POST /auth/login", "a@example.com")
        assert failed.value.expected == "access_token and user.id from POST /auth/login"
    assert "tok" not in repr(Session("a@example.com", "usr_1", "tok"))  # no credential shown


def test_accepted_needs_the_three_ids_and_names_an_error_by_its_code() -> None:
    frame = {"type": "message_accepted", "thread_id": "t", "message_id": "m", "run_id": "r"}
    assert check_accepted(frame) is frame
    with pytest.raises(CheckFailed) as failed:
        check_accepted({"type": "error", "code": "rate_limited", "message": "slow down"})
    assert failed.value.got == "error rate_limited: slow down"
    with pytest.raises(CheckFailed):
        check_accepted({**frame, "run_id": None})


def run_events(*terminal: dict[str, Any]) -> list[dict[str, Any]]:
    started = {"type": "agent_started", "run_id": "r", "seq": 1, "agent": "analyst"}
    return [started, *({"run_id": "r", "seq": 2, **t} for t in terminal)]


def test_a_stop_that_stopped_its_run_says_where() -> None:
    events = run_events({"type": "agent_stopped", "code": "stopped"})
    line = stopped("r", events, finished=False)
    assert line == "run r ended with agent_stopped at seq 2, open agents and tools closed"


def test_a_stop_too_late_for_a_completed_run_is_tried_again() -> None:
    assert stopped("r", run_events({"type": "agent_completed"}), finished=True) is None


def test_a_stop_gets_exactly_one_answer() -> None:
    with pytest.raises(CheckFailed) as unanswered:
        stopped("r", run_events({"type": "agent_completed"}), finished=False)
    assert unanswered.value.got == "run r completed, and stop_agent got no reply"
    # Answered run_finished and stopped as well: two answers to one stop.
    with pytest.raises(CheckFailed) as twice:
        stopped("r", run_events({"type": "agent_stopped", "code": "stopped"}), finished=True)
    assert twice.value.got is not None and twice.value.got.startswith("run_finished, then ")
