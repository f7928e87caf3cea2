"""``/metrics`` on the real server process: a run moves the counters a scrape shows, and who may
scrape follows the configuration (a token; in production, a port of its own)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import BASE_ENV, ServerProcess
from tests.e2e.wire import Session
from tests.keys import key_directory
from tests.metrics import samples
from tests.timing import unit

TOKEN = "scrape-" + "t" * 24
_METRICS_AT = re.compile(rb"metrics on http://127\.0\.0\.1:(\d+)/metrics")


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path, {**BASE_ENV, "RUNWIRE_METRICS_TOKEN": TOKEN})
    yield proc
    proc.stop()


async def scrape(http: httpx.AsyncClient) -> dict[str, float]:
    r = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return samples(r.text)


def moved(before: dict[str, float], after: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


async def test_a_run_moves_the_counters_that_a_scrape_shows(guarded: ServerProcess) -> None:
    session = await Session.new(guarded.url)
    try:
        http = session.http
        refused = await http.get("/metrics")
        assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer " + "x" * 31})
        assert wrong.status_code == 401

        before = await scrape(http)
        sock = await session.connect()
        assert (await scrape(http))["runwire_connections"] == before["runwire_connections"] + 1
        ack = await sock.ask("Where can we cut our LLM costs?")
        events = await sock.run_to_end(ack["run_id"])
        assert events[-1]["type"] == "agent_completed"
        await sock.ws.send("{not json")
        assert (await sock.until("error"))[-1]["code"] == "bad_json"
        await sock.send(type="stop_agent", run_id=ack["run_id"])
        assert (await sock.until("error"))[-1]["code"] == "run_finished"

        async with asyncio.timeout(unit(10)):  # the run's task ends after its last event
            while (after := await scrape(http))["runwire_runs_active"]:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert moved(before, after, 'runwire_runs_total{status="completed"}') == 1
        assert moved(before, after, "runwire_events_delivered_total") == len(events)
        assert moved(before, after, "runwire_first_event_seconds_count") == 1
        assert 0 < moved(before, after, "runwire_first_event_seconds_sum") < unit(5)
        assert moved(before, after, "runwire_run_duration_seconds_count") == 1
        # The message accepted, the run ended, and at least one batch of its events stored.
        assert moved(before, after, "runwire_store_write_seconds_count") >= 3
        assert moved(before, after, 'runwire_errors_total{code="bad_json"}') == 1
        assert moved(before, after, 'runwire_errors_total{code="run_finished"}') == 1
        # Two refused scrapes above, each an HTTP error body sent to a client.
        assert before['runwire_errors_total{code="unauthorized"}'] == 2
        assert after["runwire_bus_backlog"] == 0 and after["runwire_store_backlog_events"] == 0
        assert after["process_cpu_seconds_total"] > 0  # the process's own, from /proc
    finally:
        await session.aclose()


@pytest.fixture
def production(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {
        **BASE_ENV,
        "RUNWIRE_ENV": "production",
        "RUNWIRE_AUTH_KEYS_DIR": str(key_directory(tmp_path / "keys")),
        "RUNWIRE_ALLOWED_ORIGINS": "https://chat.example",
        "RUNWIRE_ARGON2_MEMORY_KIB": "19456",
        "RUNWIRE_AUTO_MIGRATE": "true",
        "RUNWIRE_METRICS_PORT": "0",
    }
    proc = ServerProcess(tmp_path, env)
    yield proc
    proc.stop()


async def test_in_production_metrics_are_served_on_their_own_port_only(
    production: ServerProcess,
) -> None:
    found = _METRICS_AT.search(production.log().encode())
    assert found, production.log()
    metrics_url = f"http://127.0.0.1:{int(found[1])}"
    async with httpx.AsyncClient(timeout=unit(5)) as http:
        # The app's port has no /metrics: the same answer as any path it does not have.
        on_app = await http.get(f"{production.url}/metrics")
        unknown = await http.get(f"{production.url}/no-such-path")
        assert (on_app.status_code, on_app.json()) == (unknown.status_code, unknown.json())
        assert on_app.status_code == 404

        r = await http.get(f"{metrics_url}/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert samples(r.text)["runwire_connections"] == 0
        # The metrics port serves nothing else.
        other = await http.get(f"{metrics_url}/ready")
        assert other.status_code == 404
        assert json.loads((await http.get(f"{production.url}/ready")).text)["status"] == "ready"
