"""The server's log as an operator reads it: with RUNWIRE_LOG_FORMAT=json every line is one JSON
object carrying the request, user and run it belongs to, and at DEBUG, through a whole session
(sign-up, login, refresh, ticket, sockets, a run, a scrape), no line holds a secret."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import BASE_ENV, ServerProcess
from tests.e2e.wire import Session, raw_socket

TEST_TOKEN_KEY = "the-test-token-key-" + "k" * 32
METRICS_TOKEN = "the-metrics-token-" + "m" * 16
WRONG_PASSWORD = "not the password at all"


@pytest.fixture(params=["direct", "asgi"])
def debug_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    env = {
        **BASE_ENV,
        "RUNWIRE_LOG_FORMAT": "json",
        "RUNWIRE_LOG_LEVEL": "debug",
        "RUNWIRE_TEST_TOKEN_KEY": TEST_TOKEN_KEY,
        "RUNWIRE_METRICS_TOKEN": METRICS_TOKEN,
        "RUNWIRE_WS_PATH": request.param,
    }
    proc = ServerProcess(tmp_path, env)
    yield proc
    proc.stop()


async def a_whole_session(base: str) -> list[str]:
    """Everything a client does that carries a secret; returns the secrets it saw."""
    session = await Session.new(base)  # register + login
    try:
        first_access, first_refresh = session.access, session.refresh
        http = session.http
        wrong = await http.post(
            "/auth/login", json={"email": session.email, "password": WRONG_PASSWORD}
        )
        assert wrong.status_code == 401
        r = await http.post("/auth/refresh", json={"refresh_token": session.refresh})
        assert r.status_code == 200, r.text
        session.access, session.refresh = r.json()["access_token"], r.json()["refresh_token"]
        # A bad access token.
        assert (
            await http.get("/api/threads", headers={"Authorization": "Bearer nope"})
        ).status_code == 401
        ticket = await session.ticket()
        sock = await session.connect()  # with a ticket of its own
        ack = await sock.ask("Where can we cut our LLM costs?", request_id="r-logs-1")
        events = await sock.run_to_end(ack["run_id"])
        assert events[-1]["type"] == "agent_completed"
        raw, head = raw_socket(base, session.access)  # the bearer header on a handshake
        assert head.startswith(b"HTTP/1.1 101"), head
        raw.close()
        url = session.ws_url(ticket)
        assert "ticket=" in url
        from websockets.asyncio.client import connect

        async with connect(url) as ws:  # the first ticket, redeemed in the URL
            assert json.loads(await ws.recv())["type"] == "connection_established"
        # A spent refresh token, tried again (it ends the session: so, last).
        spent = await http.post("/auth/refresh", json={"refresh_token": first_refresh})
        assert spent.status_code == 401
        scraped = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert scraped.status_code == 200
        tested = await http.post("/auth/test-token", headers={"X-Runwire-Test-Key": TEST_TOKEN_KEY})
        assert tested.status_code == 200, tested.text
        return [
            tested.json()["access_token"],
            tested.json()["refresh_token"],
            session.password,
            WRONG_PASSWORD,
            first_access,
            first_refresh,
            session.access,
            session.refresh,
            ticket,
        ]
    finally:
        await session.aclose()


async def test_no_secret_reaches_the_log_even_at_debug(debug_server: ServerProcess) -> None:
    secrets = await a_whole_session(debug_server.url)
    debug_server.stop()
    text = debug_server.log()  # the whole of it, shutdown included
    # The signing keys the server made, line by line of their PEM files.
    pem_lines = [
        line
        for pem in (debug_server.log_path.parent / "keys").glob("*.pem")
        for line in pem.read_text().splitlines()
        if "PRIVATE KEY" not in line
    ]
    assert pem_lines
    for secret in [*secrets, *pem_lines, TEST_TOKEN_KEY, METRICS_TOKEN]:
        assert secret not in text, f"a secret ({secret[:6]}…) is in the log"

    lines: list[dict[str, Any]] = [json.loads(line) for line in text.splitlines() if line]
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
    loggers = {line["logger"] for line in lines}
    assert {"uvicorn.error", "uvicorn.access", "runwire.cli"} <= loggers
    # The access line of an authenticated request names the request and the user.
    ticket_lines = [
        line
        for line in lines
        if line["logger"] == "uvicorn.access" and "/api/ws-ticket" in line["message"]
    ]
    assert ticket_lines and all(
        line["request_id"].startswith("req_") and line["user_id"].startswith("usr_")
        for line in ticket_lines
    ), ticket_lines
    # A run's lines name the run and its user, and the message that started it.
    started = [line for line in lines if line["message"] == "run started"]
    assert len(started) == 1 and started[0]["run_id"].startswith("run_")
    assert started[0]["request_id"] == "r-logs-1" and started[0]["user_id"].startswith("usr_")
