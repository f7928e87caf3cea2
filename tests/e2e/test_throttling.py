"""Login throttling on the real server process over real sockets: lockout, Retry-After, the same
answer for unknown accounts, the per-address limit, and X-Forwarded-For from an untrusted peer.
The finer rules run on a fake clock in tests/integration/test_login_throttling.py."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.e2e.conftest import BASE_ENV, ServerProcess
from tests.timing import unit

PASSWORD = "correct horse battery"
ACCOUNT_WAIT_S = unit(2)  # one login attempt back per account every ACCOUNT_WAIT_S


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


def throttled(tmp_path_factory: pytest.TempPathFactory, **limits: str) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("throttled"), {**BASE_ENV, **limits})
    yield proc
    proc.stop()


@pytest.fixture
def account_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from throttled(
        tmp_path_factory,
        RUNWIRE_LOGIN_ACCOUNT_FAILURES="5",
        RUNWIRE_LOGIN_ACCOUNT_WINDOW_S=str(5 * ACCOUNT_WAIT_S),
    )


@pytest.fixture
def address_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from throttled(
        tmp_path_factory, RUNWIRE_LOGIN_IP_FAILURES="6", RUNWIRE_LOGIN_IP_WINDOW_S="3600"
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=unit(10), trust_env=False) as client:
        yield client


async def register(http: httpx.AsyncClient, base: str, email: str) -> None:
    r = await http.post(f"{base}/auth/register", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text


async def login(
    http: httpx.AsyncClient, base: str, email: str, password: str, forwarded_for: str = ""
) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return await http.post(
        f"{base}/auth/login", json={"email": email, "password": password}, headers=headers
    )


async def test_the_sixth_wrong_password_locks_known_and_unknown_accounts_alike(
    account_server: ServerProcess, http: httpx.AsyncClient
) -> None:
    base = account_server.url
    known, unknown = new_email(), new_email()
    await register(http, base, known)
    answers: dict[str, httpx.Response] = {}
    for email in (known, unknown):
        # Six quick attempts take far less than ACCOUNT_WAIT_S, so no attempt comes back between.
        for _ in range(5):
            r = await login(http, base, email, "wrong password")
            assert r.status_code == 401, r.text
        answers[email] = await login(http, base, email, "wrong password")
        if email == known:
            # The right password is refused too while the account is locked.
            right = await login(http, base, email, PASSWORD)
            assert right.status_code == 429, right.text
    wait = math.ceil(ACCOUNT_WAIT_S)
    for r in answers.values():
        assert r.status_code == 429, r.text
        assert r.json() == {
            "detail": f"too many failed logins for this account; try again in {wait} s",
            "code": "rate_limited",
        }
        assert r.headers["retry-after"] == str(wait)
    assert answers[known].content == answers[unknown].content
    assert set(answers[known].headers) == set(answers[unknown].headers)

    # A client that waits as Retry-After says gets in.
    await asyncio.sleep(int(answers[known].headers["retry-after"]))
    r = await login(http, base, known, PASSWORD)
    assert r.status_code == 200, r.text


async def test_one_address_is_limited_across_accounts_whatever_it_forwards(
    address_server: ServerProcess, http: httpx.AsyncClient
) -> None:
    base = address_server.url
    bob = new_email()
    await register(http, base, bob)
    # 127.0.0.1 is not a trusted proxy here, so a made-up X-Forwarded-For changes nothing.
    for i in range(6):
        r = await login(http, base, new_email(), "wrong password", forwarded_for=f"198.51.100.{i}")
        assert r.status_code == 401, r.text
    for email, password in ((new_email(), "wrong password"), (bob, PASSWORD)):
        r = await login(http, base, email, password, forwarded_for="198.51.100.99")
        assert r.status_code == 429, r.text
        assert r.json() == {  # 6 failures per 3600 s: one back every 600 s
            "detail": "too many failed logins from your network address; try again in 600 s",
            "code": "rate_limited",
        }
        assert r.headers["retry-after"] == "600"
