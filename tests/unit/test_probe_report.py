"""A walk's report as people, machines and Prometheus read it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from rich.console import Console

from runwire.probe.monitor import Metrics
from runwire.probe.rendering import as_json, summary, table, walk_line
from runwire.probe.report import Outcome, Report, Status, StepResult

WHEN = datetime(2026, 12, 6, 9, 30, 5, 250000, tzinfo=UTC)


def report(*steps: StepResult, unreachable: str | None = None) -> Report:
    return Report(
        "https://chat.example.com", "https://auth.example.com", WHEN, list(steps), unreachable
    )


PASSED = report(
    StepResult("health", Status.OK, 0.004, '200 {"status": "ok"}'),
    StepResult("isolation", Status.SKIPPED, 0.2, "no second user: sign-up answered 404"),
)
FAILED = report(
    StepResult("health", Status.OK, 0.004, "fine"),
    StepResult("sign_in", Status.FAILED, 1.5, expected="200 from login", got="[red]401[/red]"),
    StepResult.not_run("ticket", "sign_in failed"),
)


def shown(renderable: object) -> str:
    console = Console(record=True, width=120, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_the_outcome_is_the_exit_code() -> None:
    assert PASSED.outcome is Outcome.PASSED and int(PASSED.outcome) == 0  # skipped is fine
    assert FAILED.outcome is Outcome.FAILED and int(FAILED.outcome) == 1
    cut = report(StepResult("health", Status.FAILED, 0.1), unreachable="x cannot be reached")
    assert cut.outcome is Outcome.UNREACHABLE and int(cut.outcome) == 2


def test_the_table_says_what_was_expected_and_what_came_as_plain_text() -> None:
    text = shown(table(FAILED))
    assert "expected 200 from login" in text
    assert "got [red]401[/red]" in text  # the target's words are never markup
    assert "│ ticket  │ skipped │      - │ not run: sign_in failed │" in text
    assert shown(summary(FAILED)).strip() == "failed: sign_in (1 ok, 1 skipped) in 1.50 s"
    assert shown(summary(PASSED)).strip() == "passed: 1 steps ok, 1 skipped in 204 ms"


def test_json_has_every_step_and_the_verdict() -> None:
    body = json.loads(as_json(FAILED))
    assert body == {
        "url": "https://chat.example.com",
        "auth_url": "https://auth.example.com",
        "result": "failed",
        "exit_code": 1,
        "started_at": "2026-12-06T09:30:05.250Z",
        "seconds": 1.504,
        "error": None,
        "steps": [
            {"step": "health", "status": "ok", "seconds": 0.004, "detail": "fine", "expected": None, "got": None},
            {"step": "sign_in", "status": "failed", "seconds": 1.5, "detail": "",
             "expected": "200 from login", "got": "[red]401[/red]"},
            {"step": "ticket", "status": "skipped", "seconds": 0.0, "detail": "not run: sign_in failed",
             "expected": None, "got": None},
        ],
    }  # fmt: skip
    assert "\n" not in as_json(FAILED, indent=None)


def test_a_monitor_line_names_what_failed() -> None:
    assert walk_line(PASSED) == "2026-12-06T09:30:05Z passed in 204 ms"
    assert walk_line(FAILED) == (
        "2026-12-06T09:30:05Z failed in 1.50 s: sign_in: expected 200 from login, got [red]401[/red]"
    )
    cut = report(StepResult("health", Status.FAILED, 0.002), unreachable="x cannot be reached")
    assert walk_line(cut) == "2026-12-06T09:30:05Z unreachable in 2.0 ms: x cannot be reached"


def test_metrics_show_the_last_walk_and_keep_the_last_success() -> None:
    metrics = Metrics()
    value = metrics.registry.get_sample_value
    assert value("runwire_check_success") == 0.0  # nothing has passed yet
    metrics.record(PASSED, now=1_800_000_000.0)
    assert value("runwire_check_success") == 1.0
    assert value("runwire_check_step_seconds", {"step": "health"}) == 0.004
    assert value("runwire_check_step_seconds", {"step": "isolation"}) == 0.2  # it ran, then skipped
    assert value("runwire_check_last_success_timestamp_seconds") == 1_800_000_000.0
    metrics.record(FAILED, now=1_800_000_060.0)
    assert value("runwire_check_success") == 0.0
    assert value("runwire_check_step_seconds", {"step": "sign_in"}) == 1.5
    # Steps this walk did not run have no time, not the last walk's.
    assert value("runwire_check_step_seconds", {"step": "isolation"}) is None
    assert value("runwire_check_step_seconds", {"step": "ticket"}) is None
    assert value("runwire_check_last_success_timestamp_seconds") == 1_800_000_000.0
