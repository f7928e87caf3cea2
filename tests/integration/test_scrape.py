"""Who may read ``/metrics``: on the app's port by environment and token, and on a listener of
its own (RUNWIRE_METRICS_PORT) that answers nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from runwire.app import create_app
from runwire.telemetry.metrics import CONTENT_TYPE, Metrics
from runwire.transport.scrape import MetricsListener
from tests.conftest import test_settings
from tests.keys import key_directory
from tests.metrics import samples
from tests.timing import unit

TOKEN = "a-scrape-token-" + "z" * 16
PRODUCTION: dict[str, Any] = {
    "env": "production",
    "allowed_origins": ["https://chat.example"],
    "argon2_memory_kib": 19456,
    "auto_migrate": True,
}


@asynccontextmanager
async def app_client(tmp_path: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    if overrides.get("env") == "production":
        overrides["auth_keys_dir"] = key_directory(tmp_path / "keys")
    app = create_app(test_settings(tmp_path, **overrides))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://runwire.test") as http:
            yield http


async def test_in_development_anyone_on_the_port_may_scrape(tmp_path: Path) -> None:
    async with app_client(tmp_path) as http:
        r = await http.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"] == CONTENT_TYPE
        assert samples(r.text)["runwire_runs_active"] == 0


async def test_in_production_metrics_are_off_without_a_token(tmp_path: Path) -> None:
    async with app_client(tmp_path, **PRODUCTION) as http:
        r = await http.get("/metrics")
        unknown = await http.get("/no-such-path")
        assert r.status_code == 404 and r.json() == unknown.json()
        assert r.headers.keys() == unknown.headers.keys()
        assert (
            await http.get("/metrics", headers={"Authorization": "Bearer x"})
        ).status_code == 404


async def test_in_production_the_token_opens_them(tmp_path: Path) -> None:
    async with app_client(tmp_path, **PRODUCTION, metrics_token=TOKEN) as http:
        for header in (None, "Bearer " + TOKEN[:-1] + "y", TOKEN, "Basic " + TOKEN):
            r = await http.get("/metrics", headers={"Authorization": header} if header else {})
            assert r.status_code == 401, header
            assert r.headers["www-authenticate"] == "Bearer" and TOKEN not in r.text
        r = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200
        # The refusals were counted as errors sent to clients.
        assert samples(r.text)['runwire_errors_total{code="unauthorized"}'] == 4


async def test_metrics_turned_off_are_not_served(tmp_path: Path) -> None:
    async with app_client(tmp_path, metrics=False) as http:
        assert (await http.get("/metrics")).status_code == 404


async def request(port: int, head: bytes) -> tuple[str, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        async with asyncio.timeout(unit(5)):
            raw = await reader.read()  # the listener closes after one answer
    finally:
        writer.close()
    top, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = top.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


def get(path: str, *extra: str) -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", "Host: metrics", *extra, "", ""]).encode()


@pytest.fixture
async def listener() -> AsyncIterator[tuple[MetricsListener, Metrics]]:
    metrics = Metrics()
    metrics.events_delivered = 42
    async with MetricsListener(metrics, host="127.0.0.1", port=0, token=TOKEN).running() as it:
        yield it, metrics


async def test_the_metrics_port_serves_metrics_behind_the_token(
    listener: tuple[MetricsListener, Metrics],
) -> None:
    port = listener[0].port
    status, headers, body = await request(port, get("/metrics", f"authorization: Bearer {TOKEN}"))
    assert status == "HTTP/1.1 200 OK" and headers["content-type"] == CONTENT_TYPE
    assert int(headers["content-length"]) == len(body)
    assert samples(body.decode())["runwire_events_delivered_total"] == 42
    status, headers, body = await request(port, get("/metrics?x=1"))
    assert status == "HTTP/1.1 401 Unauthorized" and headers["www-authenticate"] == "Bearer"
    status, _, _ = await request(port, get("/metrics", "Authorization: Bearer wrong"))
    assert status == "HTTP/1.1 401 Unauthorized"


async def test_the_metrics_port_answers_nothing_else(
    listener: tuple[MetricsListener, Metrics],
) -> None:
    port = listener[0].port
    assert (await request(port, get("/ready")))[0] == "HTTP/1.1 404 Not Found"
    post = b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
    status, headers, _ = await request(port, post)
    assert status == "HTTP/1.1 405 Method Not Allowed" and headers["allow"] == "GET"
    assert (await request(port, b"hello\r\n\r\n"))[0] == "HTTP/1.1 400 Bad Request"
    too_long = get("/metrics", "X-Padding: " + "p" * 10_000)
    assert (await request(port, too_long))[0] == "HTTP/1.1 400 Bad Request"
    # A client that leaves mid-request costs nothing; the next one is served.
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /met")
    writer.close()
    status, _, _ = await request(port, get("/metrics", f"Authorization: Bearer {TOKEN}"))
    assert status == "HTTP/1.1 200 OK"
