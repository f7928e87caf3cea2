"""Ending a session closes its sockets everywhere: on the shared server (one node, in memory),
and across two real nodes on PostgreSQL and Redis, where a logout or a reused refresh token on
node A closes the user's socket on node B with 4010 within 2 s, and B refuses the old access
token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.databases import fresh_postgres_database
from tests.e2e.conftest import BASE_ENV, ServerProcess, local_only
from tests.e2e.wire import Session, Socket
from tests.keys import key_directory
from tests.services import redis_url
from tests.timing import unit

SESSION_ENDED = 4010


async def closed_within(sock: Socket, seconds: float) -> tuple[int, float]:
    """Read ``sock`` until the server closes it; its close code and how long that took."""
    started = time.monotonic()
    async with asyncio.timeout(seconds):
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await sock.ws.recv()
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code, time.monotonic() - started


def on(node_url: str, session: Session) -> Session:
    """``session``'s tokens used at another node."""
    there = Session(node_url, session.email, session.password)
    there.access, there.refresh, there.user_id = session.access, session.refresh, session.user_id
    return there


async def test_logout_closes_the_sessions_socket_and_not_the_users_other_one(
    server_url: str, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    laptop = await sessions(server_url)
    laptop_sock = await laptop.connect()
    # A second session of the same user (a test user at a deployment has no password, so
    # there it has only the one).
    phone = on(server_url, laptop)
    try:
        phone_sock = None
        if laptop.password:
            await phone.login()
            phone_sock = await phone.connect()
        assert (await laptop.post("/auth/logout")).status_code == 204
        code, _ = await closed_within(laptop_sock, unit(2))
        assert code == SESSION_ENDED
        assert (await laptop.get("/api/me")).status_code == 401
        if phone_sock is not None:
            await phone_sock.send(type="ping", request_id="p")
            assert (await phone_sock.until("pong"))[-1]["request_id"] == "p"
            assert (await phone.get("/api/me")).status_code == 200
    finally:
        await phone.aclose()


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Two nodes of one deployment (PostgreSQL, Redis, one key set), for the module."""
    local_only()
    root = tmp_path_factory.mktemp("revocation")
    with fresh_postgres_database(migrate=True) as url:
        env = {
            **BASE_ENV,
            "RUNWIRE_REDIS_URL": redis_url(),
            "RUNWIRE_DATABASE_URL": url,
            "RUNWIRE_AUTH_KEYS_DIR": str(key_directory(root / "keys")),
            "RUNWIRE_AUTO_MIGRATE": "false",
        }
        started: list[ServerProcess] = []
        try:
            for name in ("a", "b"):
                (root / name).mkdir()
                started.append(ServerProcess(root / name, env))
            yield started[0].url, started[1].url
        finally:
            for proc in started:
                proc.stop()


@pytest.fixture
async def user(nodes: tuple[str, str]) -> AsyncIterator[Session]:
    session = await Session.new(nodes[0])
    yield session
    await session.aclose()


@pytest.mark.local_only
async def test_logout_on_one_node_closes_the_socket_on_the_other_within_two_seconds(
    nodes: tuple[str, str], user: Session
) -> None:
    at_b = on(nodes[1], user)
    try:
        sock = await at_b.connect()
        logged_out = time.monotonic()
        assert (await user.post("/auth/logout")).status_code == 204
        code, _ = await closed_within(sock, unit(2))
        waited = time.monotonic() - logged_out
        print(f"logout on A to the close on B: {waited * 1000:.0f} ms")
        assert code == SESSION_ENDED
        refused = await at_b.get("/api/me")
        assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
    finally:
        await at_b.aclose()


@pytest.mark.local_only
async def test_a_reused_refresh_token_on_one_node_closes_the_socket_on_the_other(
    nodes: tuple[str, str], user: Session
) -> None:
    a, b = nodes
    stolen = user.refresh
    async with httpx.AsyncClient(base_url=a, timeout=unit(10)) as http:
        renewed = await http.post("/auth/refresh", json={"refresh_token": stolen})
        assert renewed.status_code == 200
        user.access = renewed.json()["access_token"]
        at_b = on(b, user)
        try:
            sock = await at_b.connect()
            again = await http.post("/auth/refresh", json={"refresh_token": stolen})
            assert again.status_code == 401
            code, _ = await closed_within(sock, unit(2))
            assert code == SESSION_ENDED
            assert (await at_b.get("/api/me")).status_code == 401
        finally:
            await at_b.aclose()
