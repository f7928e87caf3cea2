"""Two real runwire nodes on one PostgreSQL database and one Redis, as behind a load balancer
without sticky sessions: what one node decides about a client holds on the other at once.
A ticket is spent once on either node, a logout ends the session on both, a lockout on one node
locks the account on the other, and the per-user connection cap counts sockets on both."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.databases import fresh_postgres_database
from tests.e2e.conftest import BASE_ENV, OWN_SERVER, ServerProcess
from tests.e2e.wire import Session
from tests.keys import key_directory
from tests.services import redis_url
from tests.timing import unit

pytestmark = pytest.mark.local_only(OWN_SERVER)

CAP = 3
FAILURES = 5


@pytest.fixture(scope="module")
def nodes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two nodes sharing a fresh PostgreSQL database and the test Redis."""
    url = redis_url()
    with fresh_postgres_database(migrate=True) as database:
        env = {
            **BASE_ENV,
            "RUNWIRE_DATABASE_URL": database,
            "RUNWIRE_REDIS_URL": url,
            # One key set for both, as nodes of one deployment share theirs.
            "RUNWIRE_AUTH_KEYS_DIR": str(key_directory(tmp_path_factory.mktemp("keys"))),
            "RUNWIRE_AUTO_MIGRATE": "false",
            "RUNWIRE_MAX_CONNECTIONS_PER_USER": str(CAP),
            "RUNWIRE_LOGIN_ACCOUNT_FAILURES": str(FAILURES),
        }
        dirs = [tmp_path_factory.mktemp(name) for name in ("one", "two")]
        # Started side by side: each start waits for its /ready.
        with ThreadPoolExecutor(2) as pool:
            starting = [pool.submit(ServerProcess, d, env) for d in dirs]
        made = [f.result() for f in starting if f.exception() is None]
        try:
            for f in starting:
                if f.exception() is not None:
                    raise f.exception()  # type: ignore[misc]
            yield made[0], made[1]
        finally:
            for node in made:
                node.stop()


async def refused_status(url: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, open_timeout=unit(10)):
            pass
    return refused.value.response.status_code


async def test_a_ticket_from_one_node_opens_one_socket_on_the_other_and_no_more(
    nodes: tuple[ServerProcess, ServerProcess], sessions: Callable[[str], Awaitable[Session]]
) -> None:
    one, two = nodes
    on_one = await sessions(one.url)
    ticket = await on_one.ticket()
    on_two = Session(two.url, on_one.email, on_one.password)
    try:
        async with connect(on_two.ws_url(ticket), open_timeout=unit(10)) as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), unit(10)))
            assert hello["type"] == "connection_established"
            assert hello["user_id"] == on_one.user_id
            # Spent: refused on either node while the first socket is still open.
            assert await refused_status(on_two.ws_url(ticket)) == 401
            assert await refused_status(on_one.ws_url(ticket)) == 401
    finally:
        await on_two.aclose()


async def test_a_logout_on_one_node_ends_the_session_on_the_other_at_once(
    nodes: tuple[ServerProcess, ServerProcess], sessions: Callable[[str], Awaitable[Session]]
) -> None:
    one, two = nodes
    on_one = await sessions(one.url)
    async with httpx.AsyncClient(base_url=two.url, timeout=unit(10)) as at_two:
        assert (await at_two.get("/api/me", headers=on_one.auth)).status_code == 200
        assert (await on_one.post("/auth/logout")).status_code == 204
        after = await at_two.get("/api/me", headers=on_one.auth)
    assert after.status_code == 401
    assert after.json()["detail"] == "session has ended"


async def test_failed_logins_on_one_node_lock_the_account_on_the_other(
    nodes: tuple[ServerProcess, ServerProcess],
) -> None:
    one, two = nodes
    email, password = f"user-{uuid.uuid4().hex[:10]}@example.com", "correct horse battery"
    async with httpx.AsyncClient(timeout=unit(10), trust_env=False) as http:
        r = await http.post(f"{one.url}/auth/register", json={"email": email, "password": password})
        assert r.status_code == 201, r.text
        for _ in range(FAILURES):
            r = await http.post(
                f"{one.url}/auth/login", json={"email": email, "password": "wrong password"}
            )
            assert r.status_code == 401, r.text
        # The right password, on the other node: refused, as on the first.
        locked = await http.post(
            f"{two.url}/auth/login", json={"email": email, "password": password}
        )
    assert locked.status_code == 429, locked.text
    assert locked.json()["code"] == "rate_limited"
    assert int(locked.headers["Retry-After"]) > 0


async def test_the_connection_cap_counts_sockets_on_both_nodes(
    nodes: tuple[ServerProcess, ServerProcess], sessions: Callable[[str], Awaitable[Session]]
) -> None:
    one, two = nodes
    on_one = await sessions(one.url)
    on_two = await sessions(two.url)
    on_two.email, on_two.password = on_one.email, on_one.password
    await on_two.login()
    first = await on_one.connect()
    await on_one.connect()
    await on_two.connect()  # CAP (3) sockets: two on node one, one on node two
    for node in (on_two, on_one):
        with pytest.raises(InvalidStatus) as refused:
            await node.connect()
        assert refused.value.response.status_code == 429
        assert b'"too_many_connections"' in refused.value.response.body
    # A socket closed on node one frees its seat for node two (within moments).
    await first.close()
    async with asyncio.timeout(unit(5)):
        while True:
            try:
                await on_two.connect()
                break
            except InvalidStatus as exc:
                assert exc.response.status_code == 429
                await asyncio.sleep(0.02)
