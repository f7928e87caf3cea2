"""``runwire check``'s options, in process: mistakes get one line and exit 2 before anything is
sent, and a monitor without metrics prints a line a walk."""

from __future__ import annotations

import re
import socket

import pytest
from typer.testing import CliRunner

from runwire.cli import app
from tests.ports import closed_port


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--email", "ada@example.com"], "give --email and --password together"),
        (["--count", "2"], "--metrics-port and --count go with --every"),
        (["--metrics-port", "9109"], "--metrics-port and --count go with --every"),
    ],
)
def test_options_that_do_not_go_together_are_refused_in_one_line(
    args: list[str], said: str
) -> None:
    done = CliRunner().invoke(app, ["check", "http://127.0.0.1:9", *args])
    assert done.exit_code == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"runwire check: {said}") and done.stderr.count("\n") == 1


def test_a_url_that_is_not_http_is_refused_in_one_line() -> None:
    done = CliRunner().invoke(app, ["check", "chat.example.com:8000"])
    assert done.exit_code == 2
    assert done.stderr == (
        "runwire check: 'chat.example.com:8000' is not an http:// or https:// URL\n"
    )


def test_credentials_in_the_url_are_refused_without_being_repeated() -> None:
    done = CliRunner().invoke(app, ["check", "https://probe:s3cret@chat.example.com"])
    assert done.exit_code == 2
    assert done.stderr == (
        "runwire check: the URL holds credentials (user:password@host): leave them out\n"
    )


def test_a_metrics_port_in_use_is_named_and_nothing_is_walked() -> None:
    with socket.socket() as taken, closed_port() as target:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = CliRunner().invoke(
            app,
            ["check", f"http://127.0.0.1:{target}", "--every", "60", "--metrics-port", str(port)],
        )
    assert done.exit_code == 2
    assert done.stdout == ""
    assert done.stderr == (
        f"runwire check: cannot serve metrics on 127.0.0.1:{port}: Address already in use\n"
    )


def test_a_monitor_without_metrics_prints_a_line_a_walk_and_exits_as_the_last() -> None:
    with closed_port() as target:
        done = CliRunner().invoke(
            app, ["check", f"http://127.0.0.1:{target}", "--every", "0", "--count", "2"]
        )
    assert done.exit_code == 2  # the last walk's: unreachable
    line = rf"\S+Z unreachable in [\d.]+ m?s: http://127\.0\.0\.1:{target} cannot be reached: connection refused"
    assert re.fullmatch(rf"{line}\n{line}\n", done.stdout), done.stdout
    assert done.stderr == ""
