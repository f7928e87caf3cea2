"""What the ``runwire`` commands say, without running them against anything: the refusals of
``check``'s options, ``doctor``'s lines, and the usage commands' lines. The commands themselves:
tests/integration/test_cli_commands.py, test_check_options.py and tests/e2e/test_cli.py."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from runwire.cli.check import refusal
from runwire.cli.doctor import show_checks
from runwire.cli.usage import added_line, batch_line
from runwire.readiness import Check
from runwire.store.usage_batches import UsageBatch
from runwire.usage.workload import ImportResult

NONE: dict[str, Any] = {
    "email": None,
    "password": None,
    "test_token_key": None,
    "token": None,
    "other_token": None,
    "every": None,
    "metrics_port": None,
    "count": None,
}


@pytest.mark.parametrize(
    "given",
    [
        {},
        {"email": "ada@example.com", "password": "pw"},
        {"test_token_key": "k"},
        {"token": "t", "other_token": "o"},
        {"every": 30.0, "metrics_port": 9109, "count": 2},
        {"every": 0.0},
    ],
)
def test_options_that_go_together_are_taken(given: dict[str, Any]) -> None:
    assert refusal(**{**NONE, **given}) is None


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ({"email": "ada@example.com"}, "give --email and --password together"),
        ({"password": "pw"}, "give --email and --password together"),
        (
            {"email": "ada@example.com", "password": "pw", "test_token_key": "k"},
            "give --email and --password, or --test-token-key: not both",
        ),
        ({"token": "t", "test_token_key": "k"}, "give --token, or --email and --password, or"),
        (
            {"token": "t", "email": "ada@example.com", "password": "pw"},
            "give --token, or --email and --password, or",
        ),
        ({"other_token": "o"}, "--other-token goes with --token"),
        ({"count": 2}, "--metrics-port and --count go with --every"),
        ({"metrics_port": 0}, "--metrics-port and --count go with --every"),
    ],
)
def test_options_that_do_not_go_together_are_named(given: dict[str, Any], said: str) -> None:
    why = refusal(**{**NONE, **given})
    assert why is not None and why.startswith(said)
    assert "\n" not in why  # one line


def shown(checks: list[Check]) -> str:
    console = Console(record=True, width=40, color_system=None, soft_wrap=True)
    show_checks(checks, console)
    return console.export_text()


def test_doctor_lines_up_the_checks_and_says_ready() -> None:
    text = shown([Check("settings", True, detail="valid"), Check("db", True, detail="sqlite [x]")])
    # A detail is shown as it is, brackets and all, and never broken at the console's width.
    assert text == "ok       settings  valid\nok       db        sqlite [x]\nready\n"


def test_doctor_puts_the_detail_and_the_fix_under_a_failing_check() -> None:
    failing = Check(
        "schema",
        False,
        "behind",
        detail="at 0005, the code needs 0007",
        fix="run `runwire migrate`",
    )
    text = shown([Check("database", True, detail="reached"), failing])
    assert text.splitlines() == [
        "ok       database  reached",
        "failing  schema    behind",
        "                   at 0005, the code needs 0007",
        "                   fix: run `runwire migrate`",
        "not ready: schema failing",
    ]


def test_an_import_says_what_it_added_and_as_which_batch() -> None:
    result = ImportResult(5, new=3, already_present=2, batch_id="imp_1")
    assert added_line(result) == "3 new, 2 already present; batch imp_1"
    assert added_line(ImportResult(2, already_present=2)) == "0 new, 2 already present"


def test_a_batch_is_one_line_in_utc() -> None:
    batch = UsageBatch("imp_1", "import", "calls.jsonl", 1_765_013_405_250, 1234)
    assert (
        batch_line(batch)
        == "imp_1      1234 records  import   2025-12-06 09:30:05 UTC  calls.jsonl"
    )
    sample = UsageBatch("smp_1", "sample", None, 0, 7)
    assert batch_line(sample) == "smp_1         7 records  sample   1970-01-01 00:00:00 UTC"
