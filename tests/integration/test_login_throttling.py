"""Throttling of login, sign-up and refresh through the real app (routes, error mapping, SQLite),
on a fake clock, from chosen peer addresses. tests/e2e/test_throttling.py repeats the core of it
against the real server process over real sockets."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from runwire.app import create_app
from tests.clock import FakeClock
from tests.conftest import test_settings

PASSWORD = "correct horse battery"
PROXY = "10.0.0.1"
ACCOUNT_WAIT_S = 60  # 5 failures per 300 s: one attempt back every 60 s
ADDRESS_WAIT_S = 100  # 8 failures per 800 s: one back every 100 s


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    async with app.router.lifespan_context(app):
        yield app


class Server:
    """The app under test, reachable from any peer address, with the clock in the test's hand."""

    def __init__(self, app: FastAPI, clock: FakeClock) -> None:
        self.app = app
        self.clock = clock
        self._clients: list[httpx.AsyncClient] = []
        self._fresh_peers: Iterator[int] = itertools.count(1)

    def client(self, peer: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(peer, 40000))
        made = httpx.AsyncClient(transport=transport, base_url="http://runwire.test")
        self._clients.append(made)
        return made

    async def user(self, email: str) -> None:
        """Register ``email`` from an address used for nothing else (sign-ups are limited too)."""
        peer = f"198.18.0.{next(self._fresh_peers)}"
        r = await self.client(peer).post(
            "/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert r.status_code == 201, r.text

    async def aclose(self) -> None:
        for made in self._clients:
            await made.aclose()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    settings = test_settings(
        tmp_path,
        login_account_failures=5,
        login_account_window_s=300,
        login_ip_failures=8,
        login_ip_window_s=800,
        register_ip_requests=3,
        register_ip_window_s=60,
        refresh_ip_requests=3,
        refresh_ip_window_s=60,
        trusted_proxies=PROXY,
    )
    clock = FakeClock()
    async with running(create_app(settings, clock=clock)) as app:
        made = Server(app, clock)
        yield made
        await made.aclose()


async def login(
    http: httpx.AsyncClient, email: str, password: str, forwarded_for: str | None = None
) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return await http.post(
        "/auth/login", json={"email": email, "password": password}, headers=headers
    )


def assert_limited(r: httpx.Response, detail: str, wait_s: int) -> None:
    assert r.status_code == 429, r.text
    assert r.json() == {"detail": f"{detail}; try again in {wait_s} s", "code": "rate_limited"}
    assert r.headers["retry-after"] == str(wait_s)
    assert "www-authenticate" not in r.headers


async def test_the_sixth_wrong_password_gets_429_alike_for_known_and_unknown_accounts(
    server: Server,
) -> None:
    await server.user("ada@example.com")
    answers: list[httpx.Response] = []
    for email, peer in (("ada@example.com", "203.0.113.1"), ("nobody@example.com", "203.0.113.2")):
        http = server.client(peer)
        for _ in range(5):
            r = await login(http, email, "wrong password")
            assert r.status_code == 401, r.text
        answers.append(await login(http, email, "wrong password"))
    known, unknown = answers
    for r in answers:
        assert_limited(r, "too many failed logins for this account", ACCOUNT_WAIT_S)
    assert known.content == unknown.content
    # Alike but for the id each response carries of its own request.
    assert headers_but_id(known) == headers_but_id(unknown)


async def test_the_right_password_is_refused_during_a_lockout_and_works_after_it(
    server: Server,
) -> None:
    await server.user("ada@example.com")
    http = server.client("203.0.113.1")
    for _ in range(5):
        assert (await login(http, "ada@example.com", "wrong password")).status_code == 401
    # Even from an address that has never failed: the account is what is locked.
    r = await login(server.client("203.0.113.50"), "ADA@example.com ", PASSWORD)
    assert_limited(r, "too many failed logins for this account", ACCOUNT_WAIT_S)
    server.clock.advance(ACCOUNT_WAIT_S - 0.5)
    r = await login(http, "ada@example.com", PASSWORD)
    assert_limited(r, "too many failed logins for this account", 1)
    server.clock.advance(0.5)
    r = await login(http, "ada@example.com", PASSWORD)
    assert r.status_code == 200, r.text
    # The success cleared the account's failures: five wrong passwords again before the lockout.
    http = server.client("203.0.113.2")
    for _ in range(5):
        assert (await login(http, "ada@example.com", "wrong password")).status_code == 401
    assert (await login(http, "ada@example.com", "wrong password")).status_code == 429


async def test_after_the_whole_window_the_account_has_all_its_attempts_back(
    server: Server,
) -> None:
    await server.user("ada@example.com")
    http = server.client("203.0.113.1")
    for _ in range(5):
        assert (await login(http, "ada@example.com", "wrong password")).status_code == 401
    assert (await login(http, "ada@example.com", PASSWORD)).status_code == 429
    server.clock.advance(5 * ACCOUNT_WAIT_S)
    http = server.client("203.0.113.2")
    for _ in range(4):
        assert (await login(http, "ada@example.com", "wrong password")).status_code == 401
    assert (await login(http, "ada@example.com", PASSWORD)).status_code == 200


async def test_one_address_is_limited_across_accounts(server: Server) -> None:
    await server.user("ada@example.com")
    await server.user("bob@example.com")
    http = server.client("203.0.113.7")
    accounts = ["ada@example.com"] + [f"guess{i}@example.com" for i in range(7)]
    for email in accounts:  # one failure each: no account comes near its own limit
        assert (await login(http, email, "wrong password")).status_code == 401
    detail = "too many failed logins from your network address"
    assert_limited(await login(http, "guess-next@example.com", "x" * 8), detail, ADDRESS_WAIT_S)
    # The right password of an untouched account is refused from this address too...
    assert_limited(await login(http, "bob@example.com", PASSWORD), detail, ADDRESS_WAIT_S)
    # ...and works from another one.
    r = await login(server.client("203.0.113.8"), "bob@example.com", PASSWORD)
    assert r.status_code == 200, r.text
    server.clock.advance(ADDRESS_WAIT_S)
    assert (await login(http, "bob@example.com", PASSWORD)).status_code == 200


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(server: Server) -> None:
    http = server.client("203.0.113.7")
    for i in range(8):
        r = await login(
            http, f"guess{i}@example.com", "wrong password", forwarded_for=f"198.51.100.{i}"
        )
        assert r.status_code == 401, r.text
    r = await login(http, "another@example.com", "wrong", forwarded_for="198.51.100.200")
    assert_limited(r, "too many failed logins from your network address", ADDRESS_WAIT_S)


async def test_a_trusted_proxy_names_each_client_and_cannot_be_fooled_through(
    server: Server,
) -> None:
    await server.user("ada@example.com")
    proxy = server.client(PROXY)
    for i in range(8):
        r = await login(
            proxy, f"guess{i}@example.com", "wrong password", forwarded_for="198.51.100.1"
        )
        assert r.status_code == 401, r.text
    detail = "too many failed logins from your network address"
    # A client that writes its own X-Forwarded-For is still known by what the proxy appended.
    r = await login(proxy, "x@example.com", "wrong", forwarded_for="192.0.2.9, 198.51.100.1")
    assert_limited(r, detail, ADDRESS_WAIT_S)
    # Another client behind the same proxy is not affected, and neither is the proxy itself.
    r = await login(proxy, "ada@example.com", PASSWORD, forwarded_for="198.51.100.2")
    assert r.status_code == 200, r.text
    assert (await login(proxy, "ada@example.com", PASSWORD)).status_code == 200


async def test_concurrent_guesses_cannot_outrun_the_limit(server: Server) -> None:
    await server.user("ada@example.com")
    http = server.client("203.0.113.1")
    answers = await asyncio.gather(
        *(login(http, "ada@example.com", f"guess {i}") for i in range(12))
    )
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [401] * 5 + [429] * 7


async def test_sign_ups_and_refreshes_are_limited_per_address(server: Server) -> None:
    http = server.client("203.0.113.1")
    for i in range(3):
        r = await http.post(
            "/auth/register", json={"email": f"u{i}@example.com", "password": PASSWORD}
        )
        assert r.status_code == 201, r.text
    r = await http.post("/auth/register", json={"email": "u3@example.com", "password": PASSWORD})
    assert_limited(r, "too many sign-ups from your network address", 20)
    r = await server.client("203.0.113.2").post(
        "/auth/register", json={"email": "u3@example.com", "password": PASSWORD}
    )
    assert r.status_code == 201, r.text

    token = (await login(http, "u0@example.com", PASSWORD)).json()["refresh_token"]
    for _ in range(3):
        r = await http.post("/auth/refresh", json={"refresh_token": token})
        assert r.status_code == 200, r.text
        token = r.json()["refresh_token"]
    r = await http.post("/auth/refresh", json={"refresh_token": token})
    assert_limited(r, "too many token refreshes from your network address", 20)
    # The refused refresh did not spend the token: it works once the wait is over.
    server.clock.advance(20)
    r = await http.post("/auth/refresh", json={"refresh_token": token})
    assert r.status_code == 200, r.text
    r = await http.post("/auth/register", json={"email": "u4@example.com", "password": PASSWORD})
    assert r.status_code == 201, r.text


def headers_but_id(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k != "x-request-id"}
