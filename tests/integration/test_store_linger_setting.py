"""RUNWIRE_STORE_LINGER_MS, from the environment to the event writer of the running app."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI

from runwire.app import create_app
from runwire.runs.event_writer import LINGER_S
from runwire.transport.services import Services
from tests.conftest import test_settings


async def linger_of(app: FastAPI) -> float:
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        return services.executor.writer.linger


async def test_the_store_linger_setting_reaches_the_event_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await linger_of(create_app(test_settings(tmp_path / "default"))) == LINGER_S
    monkeypatch.setenv("RUNWIRE_STORE_LINGER_MS", "25")
    assert await linger_of(create_app(test_settings(tmp_path / "set"))) == 0.025
    monkeypatch.setenv("RUNWIRE_STORE_LINGER_MS", "0")  # every wake stores what waits
    assert await linger_of(create_app(test_settings(tmp_path / "none"))) == 0
