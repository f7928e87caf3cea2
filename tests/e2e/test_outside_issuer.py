"""A chat node that accepts the access tokens of an outside OpenID Connect issuer: a real one,
the npm package oidc-provider (tests/outside_issuer.py), whose clients get JWT access tokens by
the client-credentials grant (docs/auth.md, "Outside identity providers").

A token's ``sub`` becomes a runwire user on first sight (one, however many requests come at
once) who chats over the WebSocket; tokens of another audience, of an algorithm not accepted,
forged with the public key as an HMAC secret, of another issuer or expired are refused. Start-up
and ``runwire doctor`` name a wrong issuer URL and keys of no accepted algorithm (a missing
audience: tests/unit/test_config.py).
"""

from __future__ import annotations

import asyncio
import json
import os
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
from websockets.asyncio.client import connect

from runwire.cli.auth_checks import auth_checks, issuer_problems
from runwire.config import load_settings
from tests.e2e.conftest import BASE_ENV, OWN_SERVER, ServerProcess, postgres_env
from tests.e2e.test_browser import chromium, ms
from tests.e2e.wire import Session
from tests.outside_issuer import AUDIENCE, OidcProvider
from tests.timing import unit

pytestmark = pytest.mark.local_only(OWN_SERVER)


@dataclass
class World:
    provider: OidcProvider
    chat: ServerProcess
    env: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("outside-chat")
    with ExitStack() as stack:
        provider = stack.enter_context(OidcProvider.running(data))
        if os.environ.get("RUNWIRE_TEST_POSTGRES_URL"):
            env = stack.enter_context(postgres_env(data))
        else:
            env = {**BASE_ENV, "RUNWIRE_DATABASE_URL": f"sqlite+aiosqlite:///{data}/chat.db"}
        env = {
            **env,
            "RUNWIRE_ROLE": "chat",
            "RUNWIRE_AUTH_ISSUER_KIND": "oidc",
            "RUNWIRE_AUTH_ISSUER_URL": provider.issuer,
            "RUNWIRE_AUTH_AUDIENCE": AUDIENCE,
            # The provider signs with RS256 by default and ES256 for one resource: accept the
            # first only. Both run on one clock: no leeway, so expiry is seen at once.
            "RUNWIRE_AUTH_ALGORITHMS": "RS256,EdDSA",
            "RUNWIRE_AUTH_LEEWAY_S": "0",
        }
        chat = ServerProcess(data, env)
        stack.callback(chat.stop)
        yield World(provider, chat, env)


async def me(http: httpx.AsyncClient, world: World, token: str) -> httpx.Response:
    return await http.get(f"{world.chat.url}/api/me", headers={"Authorization": f"Bearer {token}"})


async def test_a_subject_of_the_issuer_is_a_user_from_its_first_token_and_chats(
    world: World,
) -> None:
    client = await world.provider.register(email="Dana@Example.com", verified=True)
    first = await world.provider.token(client)
    async with httpx.AsyncClient(timeout=unit(10)) as http:
        r = await me(http, world, first)
        assert r.status_code == 200, r.text
        user = r.json()["user"]
        assert user["email"] == "dana@example.com"
        # Another token of the same subject: the same user.
        again = await me(http, world, await world.provider.token(client))
        assert again.json()["user"] == user
        # A subject whose address the issuer does not vouch for: a user without one.
        unverified = await world.provider.register(email="eve@example.com", verified=False)
        r = await me(http, world, await world.provider.token(unverified))
        assert r.json()["user"]["email"] is None and r.json()["user"]["id"] != user["id"]
    # The whole API and the WebSocket (a ticket bought with the token): a run to its end.
    session = Session(world.chat.url, "", "", access=first, user_id=user["id"])
    try:
        assert (await session.get("/api/threads")).json() == {"threads": []}
        sock = await session.connect()
        accepted = await sock.ask("what did I spend on LLM calls this week?")
        events = await sock.run_to_end(accepted["run_id"])
        assert events[-1]["type"] == "agent_completed"
        threads = (await session.get("/api/threads")).json()["threads"]
        assert [t["id"] for t in threads] == [accepted["thread_id"]]
        # The Bearer handshake (no ticket) takes the token too.
        headers = {"Authorization": f"Bearer {first}"}
        async with connect(session.ws_url(), additional_headers=headers, max_queue=None) as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), unit(10)))
            assert (hello["type"], hello["user_id"]) == ("connection_established", user["id"])
    finally:
        await session.aclose()


async def test_first_requests_at_once_make_one_user(world: World) -> None:
    client = await world.provider.register()
    tokens = [await world.provider.token(client) for _ in range(3)]
    async with httpx.AsyncClient(timeout=unit(10)) as http:
        answers = await asyncio.gather(*(me(http, world, tokens[i % 3]) for i in range(12)))
    assert [r.status_code for r in answers] == [200] * 12
    assert len({r.json()["user"]["id"] for r in answers}) == 1


async def test_tokens_not_meant_for_this_node_are_refused(world: World) -> None:
    provider = world.provider
    client = await provider.register(email="frank@example.com", verified=True)
    stranger = await provider.register(at=provider.foreign)
    refused = {
        "another audience": await provider.token(client, "urn:runwire:other"),
        "an algorithm not accepted (ES256)": await provider.token(client, "urn:runwire:es256"),
        "HS256 keyed with the RSA key's public PEM": await provider.token(
            client, "urn:runwire:hs256"
        ),
        "another issuer": await provider.token(stranger, at=provider.foreign),
    }
    async with httpx.AsyncClient(timeout=unit(10)) as http:
        for why, token in refused.items():
            r = await me(http, world, token)
            assert (r.status_code, r.json()["detail"]) == (401, "invalid access token"), why
        # A token one second long: accepted, then refused as expired once its exp has passed.
        brief = await provider.token(client, "urn:runwire:brief")
        expires = jwt.decode(brief, options={"verify_signature": False})["exp"]
        first = await me(http, world, brief)
        if time.time() < expires:  # the machine was not too slow to see it valid
            assert first.status_code == 200, first.text
        deadline = time.monotonic() + unit(10)
        while (r := await me(http, world, brief)).status_code == 200:
            assert time.monotonic() < deadline, "an expired token was still accepted"
            await asyncio.sleep(0.1)
        assert (r.status_code, r.json()["detail"]) == (401, "access token expired")
        assert time.time() >= expires


async def test_start_up_and_doctor_name_a_wrong_issuer_url_and_unusable_keys(
    world: World,
) -> None:
    settings = dict(
        role="chat",
        auth_issuer_kind="oidc",
        auth_issuer_url=world.provider.issuer,
        auth_audience=AUDIENCE,
    )
    [check] = await auth_checks(load_settings(**settings))
    assert check.ok, check.reason
    assert check.detail == (
        f"{world.provider.issuer!r} at {world.provider.issuer}: outside issuer, audience "
        f"{AUDIENCE!r}: 2 key(s) (ES256, RS256) from {world.provider.issuer}/jwks"
    )
    # The issuer names itself without a trailing slash: the URL must say it the same way.
    slashed = load_settings(**{**settings, "auth_issuer_url": world.provider.issuer + "/"})
    assert await issuer_problems(slashed) == [
        f"the discovery document at {world.provider.issuer} names issuer "
        f"{world.provider.issuer!r}, not {world.provider.issuer + '/'!r}: set "
        "RUNWIRE_AUTH_ISSUER_URL to the issuer exactly as it names itself (a trailing slash "
        "included)"
    ]
    # Nothing answers there, or no discovery document does: named, with the URL read.
    closed = load_settings(**{**settings, "auth_issuer_url": "http://127.0.0.1:9"})
    [problem] = await issuer_problems(closed)
    assert problem.startswith(
        "the discovery document at http://127.0.0.1:9/.well-known/openid-configuration cannot "
        "be read: ConnectError"
    )
    elsewhere = load_settings(**{**settings, "auth_issuer_url": world.provider.issuer + "/jwks"})
    assert await issuer_problems(elsewhere) == [
        f"the discovery document at {world.provider.issuer}/jwks/.well-known/openid-configuration "
        "cannot be read: HTTP 404"
    ]
    # Keys of no accepted algorithm: each named with why it is not used.
    [check] = await auth_checks(load_settings(**settings, auth_algorithms="EdDSA"))
    assert not check.ok and "holds no usable key" in check.reason
    assert "its algorithm ES256 is not accepted (only EdDSA)" in check.reason
    assert "its algorithm RS256 is not accepted (only EdDSA)" in check.reason
    assert "RUNWIRE_AUTH_ALGORITHMS" in check.fix


def test_serve_stops_before_it_listens_on_an_issuer_that_names_itself_otherwise(
    world: World,
) -> None:
    # The URL with a slash the issuer does not write: exit 2, naming the mismatch.
    done = subprocess.run(
        [sys.executable, "-m", "runwire", "serve", "--port", "0"],
        env={
            **os.environ,
            **world.env,
            "RUNWIRE_AUTH_ISSUER_URL": world.provider.issuer + "/",
            "RUNWIRE_DATA_DIR": str(world.chat.log_path.parent),
            "COLUMNS": "300",
        },
        capture_output=True,
        text=True,
        timeout=unit(60),
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"names issuer {world.provider.issuer!r}, not" in " ".join(done.stderr.split())


@pytest.fixture
def browser() -> Iterator[Browser]:
    # For this test alone: Playwright's sync API runs an event loop of its own while it is
    # open, and the async tests of this module cannot start theirs beside it.
    with chromium() as launched:
        yield launched


@pytest.mark.browser
def test_the_page_says_where_people_sign_in(world: World, browser: Browser) -> None:
    config = httpx.get(f"{world.chat.url}/api/config", timeout=unit(10)).json()
    assert config == {"auth_url": None, "issuer": world.provider.issuer}
    context = browser.new_context(base_url=world.chat.url)
    context.set_default_timeout(ms(15))
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto("/")
        expect(page.get_by_test_id("auth-message")).to_contain_text(
            f"This server signs people in at {world.provider.issuer}, not on this page.",
            timeout=ms(15),
        )
        expect(page.get_by_test_id("login")).to_be_disabled(timeout=ms(15))
        expect(page.get_by_test_id("email")).to_be_disabled(timeout=ms(15))
    finally:
        context.close()
    assert not errors, errors


async def test_runwire_check_walks_the_golden_path_with_the_issuers_tokens(world: World) -> None:
    main = await world.provider.token(await world.provider.register(email="gil@example.com"))
    other = await world.provider.token(await world.provider.register())

    async def check(*args: str) -> tuple[int, dict[str, dict[str, str]]]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "runwire",
            "check",
            world.chat.url,
            "--json",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), unit(120))
        report = json.loads(out)
        return int(proc.returncode or 0), {step["step"]: step for step in report["steps"]}

    code, steps = await check("--token", main, "--other-token", other)
    assert code == 0, steps
    assert all(step["status"] == "ok" for step in steps.values()), steps
    assert steps["sign_in"]["detail"] == (
        "gil@example.com (the user of the token given with --token)"
    )
    assert steps["isolation"]["detail"].startswith("a second user got 404 not_found")
    # The same user twice proves nothing about isolation: a failure, saying so.
    code, steps = await check("--token", main, "--other-token", main)
    assert code == 1 and steps["isolation"]["status"] == "failed"
    assert steps["isolation"]["got"] == "the same user as --token (gil@example.com)"
    # Without a second token the step is skipped, saying what would run it.
    code, steps = await check("--token", main)
    assert code == 0 and steps["isolation"]["status"] == "skipped"
    assert steps["isolation"]["detail"] == (
        "no second user: give --other-token (a token of another user)"
    )
