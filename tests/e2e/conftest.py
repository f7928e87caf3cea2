"""E2E fixtures: the real ``runwire serve`` process on a free port, with its own data dir, on
SQLite (its default) or on a fresh PostgreSQL database migrated by ``runwire migrate``.

With ``--base-url URL`` (or ``RUNWIRE_E2E_BASE_URL``) the tests run against that deployment
instead: the shared ``server`` is the deployment, and every test that starts, stops or
configures a server process of its own (through :class:`ServerProcess`), or that tests this
machine's install rather than a server (marker ``local_only``), is skipped, saying so.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

import runwire
from tests.databases import BACKENDS, fresh_postgres_database
from tests.e2e.wire import Session
from tests.timing import unit

DEPLOYMENT_ENV = "RUNWIRE_E2E_BASE_URL"
OWN_SERVER = "starts, stops or configures a server process of its own: runs without --base-url"
THIS_MACHINE = "tests this machine's runwire install, not a server: runs without --base-url"


def deployment_url() -> str:
    """The deployment under test ("" when each test module starts its own server)."""
    return os.environ.get(DEPLOYMENT_ENV, "").rstrip("/")


def local_only() -> None:
    """Skip the calling test (or fixture) when the tests run against a deployment."""
    if deployment_url():
        pytest.skip(OWN_SERVER)


# The modules whose processes (servers, CLI commands) run without coverage's tracer. Measured on
# 2026-12-06 by giving each module's processes a data file of their own: together they reached 50
# of the suite's 23,104 arcs that nothing else reaches, for about 210 s of the suite's CPU (the
# tracer doubles a process's CPU). What they check does not depend on the tracer; their code's
# coverage is the in-process tests' and the other modules' (docs/decisions.md, "The suite's time").
UNTRACED = frozenset(
    {
        "test_auth_keys",
        "test_auth_roles",
        "test_check",
        "test_cli",
        "test_doctor",
        "test_hostile_frames",
        "test_logs",
        "test_metrics",
        "test_nodes",
        "test_redis_bus",
        "test_redis_restart",
        "test_restart",
        "test_shared_limits",
        "test_shutdown",
        "test_split_deployment",
        "test_throttling",
    }
)
_TRACER_ENV = ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START")

# What the tracer measures in the processes of the other modules: the code that runs only in a
# process of its own or across nodes (the CLI, the server's own HTTP and WebSocket protocol, the
# Redis implementations, the run machinery, the process's wiring). The rest (the agents, usage
# analysis, the event and protocol core, the store's queries) is measured by the in-process
# layers, which reach all but a few of its branches; traced in every server process it cost more
# CPU than the servers' own work (docs/decisions.md, "The suite's time").
TRACED_IN_PROCESSES = (
    "__main__.py",
    "app.py",
    "auth/*",
    "cli/auth_checks.py",
    "bus/redis*.py",
    "chat.py",
    "cli/*",
    "config/*",
    "connections/redis.py",
    "run_queue/redis*.py",
    "limits/redis.py",
    "telemetry/logs.py",
    "probe/*",
    "readiness.py",
    "revocations/redis.py",
    "runs/*",
    "store/database.py",
    "store/engine.py",
    "store/group_commit.py",
    "store/sqlite_loop.py",
    "telemetry/traces.py",
    "transport/*",
)
"""Files of the package (globs), as coverage's ``include`` takes them."""

_TRACER_REQUEST = pytest.StashKey[str | None]()


def _narrowed(encoded: str) -> str:
    """Coverage's serialized configuration, measuring :data:`TRACED_IN_PROCESSES` only. By file
    (``include``), not by module (``source_pkgs``): matching by module name, coverage 7.18 made
    SQLAlchemy's compiled cache keys fail in the server (``'InternalTraversal' object is not
    callable``) when ``runwire.store.database`` was one of the modules."""
    package = Path(runwire.__file__).parent
    config = json.loads(base64.b64decode(encoded))
    config["source"] = []
    config["source_pkgs"] = []
    config["run_include"] = [str(package / name) for name in TRACED_IN_PROCESSES]
    return base64.b64encode(json.dumps(config).encode()).decode()


def _request_tracing_for(item: pytest.Item) -> None:
    """Set what the processes started for ``item`` (its fixtures' included) inherit of coverage's
    request to trace them (``patch = ["subprocess"]`` puts it in ``COVERAGE_PROCESS_CONFIG``):
    nothing for an ``UNTRACED`` module, :data:`TRACED_IN_PROCESSES` for the others. Done before
    each test's setup and again after its call, because coverage writes its whole request back
    into the environment each time pytest-cov resumes it after a ``no_cover`` test."""
    stash = item.config.stash
    if _TRACER_REQUEST not in stash:
        requested = os.environ.get("COVERAGE_PROCESS_CONFIG")
        stash[_TRACER_REQUEST] = None if requested is None else _narrowed(requested)
    narrowed = stash[_TRACER_REQUEST]
    if narrowed is None:
        return
    if item.path.stem in UNTRACED:
        for name in _TRACER_ENV:
            os.environ.pop(name, None)
    else:
        os.environ["COVERAGE_PROCESS_CONFIG"] = narrowed


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    _request_tracing_for(item)
    return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    finally:
        # Outermost wrapper: after pytest-cov's, which resumed coverage.
        _request_tracing_for(item)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
            # Coverage of the e2e layer is the server's and the CLI's, measured in their own
            # processes; tracing the test process meanwhile only slowed its clients down.
            item.add_marker(pytest.mark.no_cover)
            marker = item.get_closest_marker("local_only")
            if deployment_url() and marker:
                item.add_marker(
                    pytest.mark.skip(reason=marker.args[0] if marker.args else THIS_MACHINE)
                )


@dataclass(frozen=True)
class Deployment:
    """A server already running somewhere (``--base-url``): the tests only talk to it."""

    url: str

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)


# uvicorn's line once it listens; with --port 0 it names the port the kernel gave it.
_LISTENING = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")


class ServerProcess:
    """``runwire serve`` on a port of its own: it binds port 0 and the port is read from its log,
    so no other test process can take the port between choosing it and binding it."""

    host = "127.0.0.1"

    def __init__(self, data_dir: Path, env: dict[str, str], *, measured: bool = True) -> None:
        """``measured=False``: the process runs without coverage's tracer, for tests that put
        load through code others cover already (under the tracer it costs twice the CPU)."""
        local_only()
        self.port = 0
        self.url = ""
        self.log_path = data_dir / "server.log"
        self._log = self.log_path.open("wb")
        full_env = {**os.environ, **env, "RUNWIRE_DATA_DIR": str(data_dir)}
        if not measured:
            full_env.pop("COVERAGE_PROCESS_CONFIG", None)
            full_env.pop("COVERAGE_PROCESS_START", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runwire", "serve", "--port", "0"],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + unit(30)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            if not self.port and (found := _LISTENING.search(self.log_path.read_bytes())):
                self.port = int(found[1])
                self.url = f"http://127.0.0.1:{self.port}"
            try:
                if self.port and httpx.get(f"{self.url}/ready", timeout=unit(1)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"server did not become ready:\n{self.log()}")

    def log(self) -> str:
        """Everything the server has written so far (also after :meth:`stop`)."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(unit(15))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


BASE_ENV = {
    "RUNWIRE_ENV": "test",
    "RUNWIRE_OFFLINE_DELAY_MS": "0",
    "RUNWIRE_ARGON2_TIME_COST": "1",
    "RUNWIRE_ARGON2_MEMORY_KIB": "64",
    # Every test signs up and logs in from 127.0.0.1, so the per-address limits are sized for a
    # whole suite, and (shared through Redis when a node uses it) for repeated suites within the
    # window; test_throttling.py runs servers with limits it reaches.
    "RUNWIRE_REGISTER_IP_REQUESTS": "1000000",
    "RUNWIRE_LOGIN_IP_FAILURES": "1000000",
    "RUNWIRE_REFRESH_IP_REQUESTS": "1000000",
}


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess | Deployment]:
    """The server most tests share: a local process on ``BASE_ENV``, or the deployment."""
    if url := deployment_url():
        yield Deployment(url)
        return
    proc = ServerProcess(tmp_path_factory.mktemp("server"), BASE_ENV)
    yield proc
    proc.stop()


@pytest.fixture
async def sessions() -> AsyncIterator[Callable[[str], Awaitable[Session]]]:
    """Make logged-in sessions on a server; all are closed at teardown, even after a failure."""
    made: list[Session] = []

    async def make(base: str) -> Session:
        session = await Session.new(base)
        made.append(session)
        return session

    yield make
    for session in made:
        await session.aclose()


@pytest.fixture(scope="session")
def server_url(server: ServerProcess | Deployment) -> str:
    return server.url


def migrate(env: dict[str, str], data_dir: Path) -> None:
    """Run ``runwire migrate`` with ``env``, as an operator does before starting a server."""
    done = subprocess.run(
        [sys.executable, "-m", "runwire", "migrate"],
        env={**os.environ, **env, "RUNWIRE_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=unit(60),
        check=False,
    )
    assert done.returncode == 0 and "revision" in done.stdout, done.stderr


@contextmanager
def postgres_env(data_dir: Path) -> Iterator[dict[str, str]]:
    """Settings for a server on a fresh PostgreSQL database, migrated by ``runwire migrate``.

    Auto-migration is off, as in production: the server must find the schema already in place.
    """
    local_only()
    with fresh_postgres_database(migrate=False) as url:
        env = {**BASE_ENV, "RUNWIRE_DATABASE_URL": url, "RUNWIRE_AUTO_MIGRATE": "false"}
        migrate(env, data_dir)
        yield env


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server shared by the session, like ``server``, on PostgreSQL."""
    local_only()
    data_dir = tmp_path_factory.mktemp("postgres-server")
    with postgres_env(data_dir) as env:
        proc = ServerProcess(data_dir, env)
        yield proc
        proc.stop()


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest) -> str:
    """The URL of the shared server on each backend in turn: a test taking it runs twice. Against
    a deployment, the first is the deployment (whatever its database) and the second is skipped."""
    if deployment_url() and request.param != "sqlite":
        pytest.skip("a deployment is tested once, as [sqlite], whatever its database")
    name = "server" if request.param == "sqlite" else "postgres_server"
    server: ServerProcess | Deployment = request.getfixturevalue(name)
    return server.url


@pytest.fixture(params=BACKENDS)
def backend_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Settings for a test's own server on each backend in turn (SQLite in ``tmp_path``, or a
    fresh PostgreSQL database): a test taking it runs twice."""
    local_only()
    if request.param == "sqlite":
        yield dict(BASE_ENV)
        return
    with postgres_env(tmp_path) as env:
        yield env
