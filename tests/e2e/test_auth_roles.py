"""A split deployment: one ``runwire serve --role auth`` process and one ``--role chat`` process
on the same database (SQLite file, or PostgreSQL with RUNWIRE_TEST_POSTGRES_URL), as
docs/auth.md ("Roles") sets it up.

A user signs in at the auth service and chats at the chat node; the chat node holds no key file
and serves no /auth/*; a rotation at the auth service ends no session and its new tokens verify
at the chat node; the auth service stopped, the chat node goes on verifying.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import jwt
import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.conftest import BASE_ENV, OWN_SERVER, ServerProcess, postgres_env
from tests.e2e.test_browser import chromium, ms
from tests.e2e.wire import Session
from tests.timing import unit

pytestmark = pytest.mark.local_only(OWN_SERVER)

PAGE_ORIGIN = "http://chat.example"
PASSWORD = "correct horse battery"


@dataclass
class Split:
    auth: ServerProcess
    chat: ServerProcess
    auth_env: dict[str, str]


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Split]:
    auth_dir = tmp_path_factory.mktemp("auth-role")
    chat_dir = tmp_path_factory.mktemp("chat-role")
    with ExitStack() as stack:
        if os.environ.get("RUNWIRE_TEST_POSTGRES_URL"):
            env = stack.enter_context(postgres_env(auth_dir))
        else:
            env = {**BASE_ENV, "RUNWIRE_DATABASE_URL": f"sqlite+aiosqlite:///{auth_dir}/shared.db"}
        # The chat node's port (its page's origin) is known only once it runs: any origin here;
        # tests/integration/test_role_routes.py checks a listed one.
        auth_env = {**env, "RUNWIRE_ROLE": "auth", "RUNWIRE_ALLOWED_ORIGINS": "*"}
        auth = ServerProcess(auth_dir, auth_env)
        stack.callback(auth.stop)
        chat = ServerProcess(
            chat_dir, {**env, "RUNWIRE_ROLE": "chat", "RUNWIRE_AUTH_ISSUER_URL": auth.url}
        )
        stack.callback(chat.stop)
        yield Split(auth, chat, auth_env)


def at(session: Session, base: str) -> Session:
    """The same signed-in user, talking to ``base``."""
    other = Session(base, session.email, session.password)
    other.access, other.refresh, other.user_id = session.access, session.refresh, session.user_id
    return other


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def rotate(split: Split) -> str:
    """`runwire auth rotate-keys` beside the auth process, with its settings."""
    done = subprocess.run(
        [sys.executable, "-m", "runwire", "auth", "rotate-keys"],
        env={
            **os.environ,
            **split.auth_env,
            "RUNWIRE_DATA_DIR": str(split.auth.log_path.parent),
            "COLUMNS": "200",
        },
        capture_output=True,
        text=True,
        timeout=unit(60),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[3]  # "new signing key <kid> (EdDSA) in ..."


async def run_completes(chat: Session) -> None:
    sock = await chat.connect()
    accepted = await sock.ask("what did I spend on LLM calls this week?")
    events = await sock.run_to_end(accepted["run_id"])
    assert events[-1]["type"] == "agent_completed"


async def test_sign_in_at_the_auth_service_and_chat_at_the_chat_node(split: Split) -> None:
    async with httpx.AsyncClient(timeout=unit(10)) as http:
        config = (await http.get(f"{split.chat.url}/api/config")).json()
        assert config == {"auth_url": split.auth.url, "issuer": None}
        # The chat node: no /auth/*, no published keys; the auth service: no chat, no page.
        assert (await http.post(f"{split.chat.url}/auth/login", json={})).status_code == 404
        assert (await http.get(f"{split.chat.url}/.well-known/jwks.json")).status_code == 404
        assert (await http.get(f"{split.auth.url}/api/threads")).status_code == 404
        assert (await http.get(f"{split.auth.url}/")).status_code == 404
        # The page at the chat node's origin may call the auth service (CORS), and its policy
        # lets it connect there.
        preflight = await http.options(
            f"{split.auth.url}/auth/login",
            headers={
                "Origin": PAGE_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "*"
        page = (await http.get(f"{split.chat.url}/")).text
        assert f"connect-src 'self' {split.auth.url} ws: wss:" in page
    session = await Session.new(split.auth.url)
    chat = at(session, split.chat.url)
    try:
        await run_completes(chat)
    finally:
        await chat.aclose()
        await session.aclose()
    # The chat node never opened a key directory.
    assert not (split.chat.log_path.parent / "keys").exists()
    assert list((split.auth.log_path.parent / "keys").glob("*.pem"))


async def test_a_rotation_at_the_auth_service_ends_no_session_at_the_chat_node(
    split: Split,
) -> None:
    session = await Session.new(split.auth.url)
    chat = at(session, split.chat.url)
    try:
        old_token = session.access
        new_kid = rotate(split)
        # The auth service takes the new key within a second (it lists its directory).
        deadline = time.monotonic() + unit(10)
        while kid_of(session.access) != new_kid:
            assert time.monotonic() < deadline, "the auth service never signed with the new key"
            await asyncio.sleep(unit(0.1))
            await session.login()
        # The chat node meets a kid it has not seen: it fetches the keys again, once.
        chat.access = session.access
        me = await chat.get("/api/me")
        assert me.status_code == 200, split.chat.log()[-4000:]
        await run_completes(chat)
        # The old key is still published: its token still works.
        chat.access = old_token
        assert (await chat.get("/api/me")).status_code == 200
    finally:
        await chat.aclose()
        await session.aclose()


@pytest.fixture
def browser() -> Iterator[Browser]:
    # For this test alone: Playwright's sync API runs an event loop of its own while it is
    # open, and the async tests of this module cannot start theirs beside it.
    with chromium() as launched:
        yield launched


@pytest.mark.browser
def test_the_page_at_the_chat_node_signs_in_at_the_auth_service(
    split: Split, browser: Browser
) -> None:
    context = browser.new_context(base_url=split.chat.url)
    context.set_default_timeout(ms(15))
    expect.set_options(timeout=ms(15))
    called: list[str] = []
    context.on("request", lambda request: called.append(request.url))
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto("/")
        page.get_by_test_id("email").fill(f"split-{time.time_ns()}@example.com")
        page.get_by_test_id("password").fill(PASSWORD)
        page.get_by_test_id("register").click()
        expect(page.get_by_test_id("logout")).to_be_visible()
        status = page.get_by_test_id("connection-status")
        expect(status).to_have_attribute("data-state", "connected")
        page.get_by_test_id("message-input").fill("Where can we cut our LLM costs?")
        page.get_by_test_id("send").click()
        answer = page.get_by_test_id("assistant-message").last
        expect(answer).to_have_attribute("data-state", "done", timeout=ms(30))
        page.get_by_test_id("logout").click()
        expect(page.get_by_test_id("email")).to_be_visible()
    finally:
        context.close()
    assert not errors, errors
    auth_calls = {
        url.removeprefix(split.auth.url) for url in called if url.startswith(split.auth.url)
    }
    assert auth_calls == {"/auth/register", "/auth/login", "/auth/logout"}
    assert not [url for url in called if url.startswith(f"{split.chat.url}/auth/")]


def runwire(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runwire", *args],
        env={**os.environ, **env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=unit(120),
        check=False,
    )


def test_doctor_on_a_chat_node_checks_the_auth_service(split: Split) -> None:
    chat = runwire(
        "doctor",
        env={
            **split.auth_env,
            "RUNWIRE_ROLE": "chat",
            "RUNWIRE_DATA_DIR": str(split.chat.log_path.parent),
            "RUNWIRE_AUTH_ISSUER_URL": split.auth.url,
        },
    )
    assert chat.returncode == 0, chat.stdout + chat.stderr
    assert re.search(
        rf"ok +auth issuer +'runwire' at {split.auth.url}: 2 key\(s\) from {split.auth.url}/",
        chat.stdout,
    )


def test_runwire_check_finds_the_auth_service_through_the_chat_node(split: Split) -> None:
    done = runwire("check", split.chat.url, "--json", "--timeout", str(unit(60)), env={})
    report = json.loads(done.stdout)
    assert report["auth_url"] == split.auth.url
    assert done.returncode == 0, done.stdout


async def test_the_chat_node_verifies_through_an_outage_of_the_auth_service(
    split: Split,
) -> None:
    session = await Session.new(split.auth.url)
    chat = at(session, split.chat.url)
    try:
        split.auth.stop()
        assert (await chat.get("/api/me")).status_code == 200
        await run_completes(chat)
        # A token naming a key nobody published is refused; the fetch it causes (once the
        # second since the last one has passed) fails, and the keys held stay.
        forged = jwt.encode(
            {"sub": session.user_id},
            "x" * 32,
            algorithm="HS256",
            headers={"kid": "20261206T000000Z-forged00"},
        )
        deadline = time.monotonic() + unit(10)
        while "could not fetch the issuer's keys (keeping 2)" not in split.chat.log():
            assert time.monotonic() < deadline, "no fetch was tried"
            chat.access = forged
            assert (await chat.get("/api/me")).status_code == 401
            await asyncio.sleep(unit(0.2))
        chat.access = session.access
        assert (await chat.get("/api/me")).status_code == 200
    finally:
        await chat.aclose()
        await session.aclose()
