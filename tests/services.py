"""The real services some tests need (PostgreSQL, Redis): where they are, and what happens
when they are not there.

- ``RUNWIRE_TEST_POSTGRES_URL`` (e.g. ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``) and
  ``RUNWIRE_TEST_REDIS_URL`` (e.g. ``redis://127.0.0.1:6379/0``) say where they are.
- In CI (``CI=true``, set by ``.ci/run``, which also sets both URLs) a missing or unreachable
  service **fails** the tests that need it: they must run there, never skip.
- On a person's machine they **skip**, with a message that says how to run them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import pytest

from tests.timing import unit

__all__ = ["RedisServer", "missing", "postgres_url", "private_redis", "redis_url"]

_HOW = {
    "RUNWIRE_TEST_POSTGRES_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
    "RUNWIRE_TEST_REDIS_URL": "redis://127.0.0.1:6379/0",
}


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def _service(variable: str, default_port: int) -> str:
    url = os.environ.get(variable, "")
    problem = ""
    if not url:
        problem = f"{variable} is not set"
    elif not _reachable(url, default_port):
        problem = f"nothing answers at {variable}={url}"
    if not problem:
        return url
    missing(problem, f"start the service and set {variable}={_HOW[variable]} to run these tests")


def missing(problem: str, how: str) -> NoReturn:
    if _in_ci():
        pytest.fail(f"{problem} (in CI these tests must run): {how}", pytrace=False)
    pytest.skip(f"{problem}: {how}")


def postgres_url() -> str:
    """The test PostgreSQL server's URL (a database tests may create databases in)."""
    return _service("RUNWIRE_TEST_POSTGRES_URL", 5432)


def redis_url() -> str:
    """The test Redis server's URL."""
    return _service("RUNWIRE_TEST_REDIS_URL", 6379)


class RedisServer:
    """A ``redis-server`` of the caller's own on loopback (nothing kept on disk). It keeps its
    port across :meth:`kill` and :meth:`start`, so a test can restart it empty under clients."""

    def __init__(self, data_dir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            missing("redis-server is not installed", "apt-get install redis-server")
        self._binary = binary
        self._dir = data_dir
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it (on a free port the first time: chosen free and then bound by Redis, so
        another process may take it in between; Redis then exits at once, and another port is
        tried)."""
        for _attempt in range(5 if self.port == 0 else 1):
            port = self.port
            if port == 0:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", 0))
                    port = int(probe.getsockname()[1])
            log = self._dir / f"redis-{port}.log"
            proc = subprocess.Popen(
                [
                    self._binary,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self._dir),
                    "--logfile",
                    str(log),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            if _answers(proc, port):
                self.port, self.proc = port, proc
                return
            proc.wait(unit(10))
        raise RuntimeError(f"redis-server did not start; see the logs in {self._dir}")

    def kill(self) -> None:
        """Stop it at once, as a crash would: what it held is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(unit(10))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(unit(10))


@contextmanager
def private_redis(data_dir: Path) -> Iterator[str]:
    """A :class:`RedisServer` for a test that changes what every client of a Redis sees;
    yields its URL and stops it afterwards.

    The shared Redis is used by other test processes at the same time: only what a key prefix
    confines may happen there."""
    server = RedisServer(data_dir)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _answers(proc: subprocess.Popen[bytes], port: int) -> bool:
    """Whether the redis-server ``proc`` answers PING on ``port`` (False: it exited)."""
    deadline = time.monotonic() + unit(10)
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), unit(1)) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return True
        except OSError:
            pass
        time.sleep(0.02)
    if proc.poll() is None:
        raise RuntimeError(f"redis-server on port {port} did not answer in time")
    return False
