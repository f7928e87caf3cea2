"""Shared fixtures: settings for tests, a migrated SQLite store, and fast password hashing."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from runwire.config import Settings, load_settings
from runwire.store.store import Store

pytest_plugins = ["tests.deadline"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--base-url",
        default=os.environ.get("RUNWIRE_E2E_BASE_URL", ""),
        help="run the e2e tests against this deployment instead of local server processes "
        "(those that need a server of their own are skipped); env RUNWIRE_E2E_BASE_URL",
    )
    parser.addoption(
        "--test-token-key",
        default=os.environ.get("RUNWIRE_E2E_TEST_TOKEN_KEY", ""),
        help="with --base-url: the deployment's RUNWIRE_TEST_TOKEN_KEY; the tests' users are then "
        "e2e test users from POST /auth/test-token instead of sign-ups; "
        "env RUNWIRE_E2E_TEST_TOKEN_KEY",
    )


def pytest_configure(config: pytest.Config) -> None:
    # The e2e fixtures read it from the environment (tests/e2e/conftest.py: deployment_url);
    # each xdist worker runs this hook too.
    if url := config.getoption("--base-url"):
        os.environ["RUNWIRE_E2E_BASE_URL"] = url
    if key := config.getoption("--test-token-key"):
        os.environ["RUNWIRE_E2E_TEST_TOKEN_KEY"] = key


# Collection imports what every test tests (a thousand modules in the unit layer) and the objects
# they make live as long as the process. While they load, the collector's passes walk an ever
# larger heap and find next to nothing (three full passes, a fifth of a second of the unit
# layer's time): it is off from here until the collection ends.
gc.disable()


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Iterator[object]:
    # A wrapper, so that the collector is back on however the collection ends (an error, or
    # under xdist in the controller, which collects nothing). What the collection imported is
    # then frozen out of the collector's sight, as the server freezes what it holds at start-up
    # (cli/collector.py), so that the collections while the tests run and pytest's own at the end
    # (looking for unraisable exceptions) walk only what the tests made, not every module's
    # objects (0.1-0.3 s a walk in the unit layer). Garbage is collected first, not frozen.
    try:
        return (yield)
    finally:
        gc.collect()
        gc.freeze()
        gc.enable()


def test_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings for a test: its own data dir, no delays, cheap argon2 (never in production)."""
    base: dict[str, object] = {
        "env": "test",
        "data_dir": tmp_path,
        "offline_delay_ms": 0,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 64,
        # Every test signs up and logs in from 127.0.0.1, and with Redis the per-address counts
        # are shared by every run of the suite within the window: size them out of the way.
        # Tests of the limits themselves set their own.
        "register_ip_requests": 1_000_000,
        "login_ip_failures": 1_000_000,
        "refresh_ip_requests": 1_000_000,
    }
    base.update(overrides)
    return load_settings(**base)


test_settings.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return test_settings(tmp_path)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    async with Store.open(settings.effective_database_url, migrate=True) as opened:
        yield opened
