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
import socket
from urllib.parse import urlsplit

import pytest

__all__ = ["postgres_url", "redis_url"]

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
    how = f"start the service and set {variable}={_HOW[variable]} to run these tests"
    if _in_ci():
        pytest.fail(f"{problem} (in CI these tests must run): {how}", pytrace=False)
    pytest.skip(f"{problem}: {how}")


def postgres_url() -> str:
    """The test PostgreSQL server's URL (a database tests may create databases in)."""
    return _service("RUNWIRE_TEST_POSTGRES_URL", 5432)


def redis_url() -> str:
    """The test Redis server's URL."""
    return _service("RUNWIRE_TEST_REDIS_URL", 6379)
