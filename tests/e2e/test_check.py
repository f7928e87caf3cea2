"""``runwire check URL``, run as a person or a monitor runs it: the real command in a process of
its own, against the real server, and against things that are not runwire.

Two servers: the suite's own (``server``), which answers at once (``RUNWIRE_OFFLINE_DELAY_MS=0``,
as ``runwire serve`` may be for a user): there the probe's stop_agent lands as its run ends, or
after, and must be answered all the same; and ``paced_server``, which paces its answer (2 ms a
chunk, a run of about a second) as a deployment's LLM does: there the stop meets its run still
going, and the resume may too.
"""

from __future__ import annotations

import http.server
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.server import ServerConnection, serve

from runwire.probe.steps import STEPS
from tests.e2e.conftest import BASE_ENV, ServerProcess
from tests.ports import closed_port
from tests.timing import unit

pytestmark = pytest.mark.local_only(
    "runs `runwire check` from this machine against servers of its own and against things "
    "that are not runwire: runs without --base-url"
)

# No test here may wait for the probe's own timeout: it is set far above what any check needs.
SLOW = ["--timeout", str(unit(60))]
TEST_TOKEN_KEY = "the-check-servers-test-token-key-" + "k" * 8


@pytest.fixture(scope="module")
def paced_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path_factory.mktemp("check-server"),
        {**BASE_ENV, "RUNWIRE_OFFLINE_DELAY_MS": "2", "RUNWIRE_TEST_TOKEN_KEY": TEST_TOKEN_KEY},
    )
    yield proc
    proc.stop()


def runwire_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runwire", "check", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=unit(60),
        check=False,
    )


@contextmanager
def started_check(*args: str) -> Iterator[subprocess.Popen[str]]:
    """``runwire check`` running in the background; killed (if still running) and its pipes
    closed when the block ends."""
    with subprocess.Popen(
        [sys.executable, "-m", "runwire", "check", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    ) as process:
        try:
            yield process
        finally:
            process.kill()


class Lines:
    """A stream's lines, read in a thread, so that a test waits for the next one with a bound."""

    def __init__(self, stream: object) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: object) -> None:
        try:
            for line in stream:  # type: ignore[attr-defined]
                self._lines.put(line)
        except ValueError:  # the test closed the pipe: nothing more to read
            pass
        self._lines.put("")

    def next(self) -> str:
        return self._lines.get(timeout=unit(30))

    def rest(self) -> list[str]:
        """The lines after the last one taken, once the stream has ended."""
        lines = []
        while (line := self.next()) != "":
            lines.append(line)
        return lines


def user(server: ServerProcess) -> tuple[str, str]:
    email, password = f"probe-{uuid.uuid4().hex[:10]}@example.com", "correct horse battery"
    made = httpx.post(
        f"{server.url}/auth/register", json={"email": email, "password": password}, timeout=unit(10)
    )
    assert made.status_code == 201, made.text
    return email, password


def rows(table: str) -> dict[str, list[str]]:
    """The table's rows by step name: [result, time, detail…] (a wrapped detail is cut)."""
    found = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells and cells[0] in STEPS:
            found[cells[0]] = cells[1:]
    return found


def test_the_golden_path_of_a_server_passes_step_by_step(paced_server: ServerProcess) -> None:
    done = runwire_check(paced_server.url, *SLOW)
    assert done.returncode == 0, done.stdout + done.stderr
    table = rows(done.stdout)
    assert list(table) == list(STEPS)
    assert all(cells[0] == "ok" for cells in table.values()), done.stdout
    assert re.search(
        r"cut after seq 3 .*resumed on a new socket: seq 4\.\.\d+, each once", done.stdout
    )
    assert re.search(
        r"ended with agent_stopped at seq \d+, open agents and tools closed", done.stdout
    )
    assert re.search(r"passed: 13 steps ok in \d", done.stdout)
    assert done.stderr == ""


def test_with_a_test_token_key_two_test_users_walk_the_path(
    paced_server: ServerProcess,
) -> None:
    server = paced_server
    done = runwire_check(server.url, "--test-token-key", TEST_TOKEN_KEY, "--json", *SLOW)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    steps = {step["step"]: step for step in report["steps"]}
    assert all(step["status"] == "ok" for step in steps.values()), done.stdout
    assert steps["sign_in"]["detail"] == (
        "e2e-check-main@runwire.test (a test user, from POST /auth/test-token)"
    )
    assert steps["isolation"]["detail"].startswith("a second user got 404 not_found")
    assert TEST_TOKEN_KEY not in done.stdout + done.stderr
    wrong = runwire_check(server.url, "--test-token-key", "w" * 40, "--json", *SLOW)
    assert wrong.returncode == 1
    sign_in = json.loads(wrong.stdout)["steps"][STEPS.index("sign_in")]
    assert sign_in["status"] == "failed"
    assert sign_in["expected"] == "200 from POST /auth/test-token for e2e-check-main"
    assert sign_in["got"] == "401 unauthorized: missing or wrong X-Runwire-Test-Key"
    both = runwire_check(server.url, "--test-token-key", "k", "--email", "a", "--password", "b")
    assert both.returncode == 2
    assert "give --email and --password, or --test-token-key: not both" in both.stderr


def test_a_server_that_answers_at_once_passes_every_step_stop_included(
    server: ServerProcess,
) -> None:
    # Its runs end within a round trip: each stop lands as its run ends or after, and is
    # answered all the same (agent_stopped, or run_finished), never with silence.
    done = runwire_check(server.url, "--json", *SLOW)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert [(step["step"], step["status"]) for step in report["steps"]] == [
        (name, "ok") for name in STEPS
    ], done.stdout
    stop = report["steps"][STEPS.index("stop_agent")]["detail"]
    assert "ended with agent_stopped" in stop or "run_finished, and its agent_completed" in stop
    assert done.stderr == ""


def test_a_wrong_password_fails_the_sign_in_and_nothing_after_it_runs(
    server: ServerProcess,
) -> None:
    email, _ = user(server)
    wrong = ["--email", email, "--password", "not the password", *SLOW]
    done = runwire_check(server.url, *wrong)
    assert done.returncode == 1, done.stdout + done.stderr
    table = rows(done.stdout)
    assert table["health"][0] == table["ready"][0] == "ok"
    assert table["sign_in"][0] == "failed"
    assert f"expected 200 from POST /auth/login as {email}" in table["sign_in"][2]
    assert "got 401 unauthorized: wrong e-mail or password" in done.stdout
    after = STEPS[STEPS.index("sign_in") + 1 :]
    assert all(table[step][0:3:2] == ["skipped", "not run: sign_in failed"] for step in after)
    assert "failed: sign_in" in done.stdout
    as_json = runwire_check(server.url, "--json", *wrong)
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert (report["result"], report["exit_code"], report["error"]) == ("failed", 1, None)
    sign_in = report["steps"][STEPS.index("sign_in")]
    assert sign_in["status"] == "failed" and sign_in["got"].startswith("401 unauthorized")
    assert [step["status"] for step in report["steps"]] == ["ok", "ok", "failed"] + ["skipped"] * 10
    assert "not the password" not in done.stdout + done.stderr + as_json.stdout + as_json.stderr


@contextmanager
def static_site() -> Iterator[str]:
    """A web server that answers every GET with the same HTML page (a single-page app)."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><html><body><h1>Welcome</h1></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page) as site:
        threading.Thread(target=site.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{site.server_address[1]}"
        finally:
            site.shutdown()


@contextmanager
def bare_websocket_server() -> Iterator[str]:
    """A WebSocket echo server: it speaks WebSocket on every path and nothing else."""

    def echo(ws: ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    with serve(echo, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.socket.getsockname()[1]}"
        finally:
            server.shutdown()


def test_what_is_not_runwire_fails_at_once_with_one_line_and_exit_2() -> None:
    with closed_port() as port, static_site() as site, bare_websocket_server() as bare:
        targets = {
            f"http://127.0.0.1:{port}": "cannot be reached: connection refused",
            site: "answers, but not as runwire: GET /health gave 200 text/html: <!doctype html>",
            bare: "answers, but not as runwire: GET /health gave 426 text/plain: Failed to open a WebSocket connection",
        }
        started = time.monotonic()
        with ExitStack() as stack:
            # All at once: each is a process of its own; one after another is slower.
            running = {url: stack.enter_context(started_check(url, *SLOW)) for url in targets}
            for url, expected in targets.items():
                out, err = running[url].communicate(timeout=unit(60))
                assert running[url].returncode == 2, out + err
                assert out == "" and err.count("\n") == 1, out + err
                assert err.startswith(f"runwire check: {url} {expected}"), err
                assert "Traceback" not in err
        # Well under --timeout, whatever the machine's load: nothing waited for an answer.
        assert time.monotonic() - started < unit(45)


def metrics_of(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=unit(5))
    assert scraped.status_code == 200
    values: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(scraped.text):
        for sample in family.samples:
            values.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return values


def test_the_monitor_walks_again_and_serves_the_result_as_metrics(server: ServerProcess) -> None:
    email, password = user(server)
    before = time.time()
    with started_check(
        server.url,
        *("--email", email, "--password", password, "--json"),
        *("--every", str(unit(1)), "--count", "2", "--metrics-port", "0", *SLOW),
    ) as monitor:
        serving = Lines(monitor.stderr).next()
        found = re.fullmatch(r"serving metrics on http://127\.0\.0\.1:(\d+)/metrics\n", serving)
        assert found, serving
        walks = Lines(monitor.stdout)
        # One JSON report a line, each listing every step.
        first = json.loads(walks.next())
        assert first["result"] == "passed" and first["exit_code"] == 0, first
        assert first["url"] == first["auth_url"] == server.url
        assert [step["step"] for step in first["steps"]] == list(STEPS)
        assert {step["status"] for step in first["steps"]} == {"ok"}
        assert first["steps"][STEPS.index("sign_in")]["detail"] == f"{email} (given)"
        # The user had no usage data: the probe loaded the sample, as a person presses the button.
        assert "loaded" in first["steps"][STEPS.index("sample_data")]["detail"]
        # Scraped while the monitor waits for its second walk.
        metrics = metrics_of(int(found[1]))
        assert metrics["runwire_check_success"] == {(): 1.0}
        steps = metrics["runwire_check_step_seconds"]
        assert {labels[0][1] for labels in steps} == set(STEPS)
        assert all(seconds > 0 for seconds in steps.values())
        (last_success,) = metrics["runwire_check_last_success_timestamp_seconds"].values()
        assert before < last_success <= time.time()
        second = json.loads(walks.next())
        assert second["result"] == "passed"
        assert "has" in second["steps"][STEPS.index("sample_data")]["detail"]  # loaded once
        assert monitor.wait(unit(30)) == 0
        assert password not in "".join(walks.rest())


def test_the_monitor_runs_until_stopped_and_reports_a_failing_target() -> None:
    with (
        closed_port() as port,
        started_check(
            f"http://127.0.0.1:{port}", "--every", "3600", "--metrics-port", "0"
        ) as monitor,
    ):
        metrics_port = int(Lines(monitor.stderr).next().rsplit(":", 1)[1].split("/")[0])
        walk = Lines(monitor.stdout).next()
        assert re.fullmatch(
            rf"\S+Z unreachable in .*: http://127\.0\.0\.1:{port} cannot be reached: "
            r"connection refused\n",
            walk,
        ), walk
        metrics = metrics_of(metrics_port)
        assert metrics["runwire_check_success"] == {(): 0.0}
        assert metrics["runwire_check_last_success_timestamp_seconds"] == {(): 0.0}
        # Only the step that ran has a time.
        assert list(metrics["runwire_check_step_seconds"]) == [(("step", "health"),)]
        monitor.send_signal(signal.SIGTERM)
        assert monitor.wait(unit(10)) == 0
