"""A deployment split as docs/auth.md ("Roles") sets it up, on PostgreSQL and Redis: one
``runwire serve --role auth`` process and two ``--role chat`` processes, which hold no key.

One user's day across it: signed in at the auth service, a socket on each chat node, a run on the
first; the signing key rotated while the run streams (the run ends normally, the session goes
on, a token of the new key verifies on both chat nodes and one of the old key still does); then a
logout at the auth service closes the user's sockets on both chat nodes with 4010 within 2 s,
and both refuse its access token.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest

from tests.databases import fresh_postgres_database
from tests.e2e.conftest import BASE_ENV, OWN_SERVER, ServerProcess
from tests.e2e.test_revocation import SESSION_ENDED, closed_within, on
from tests.e2e.wire import Session
from tests.services import redis_url
from tests.timing import unit

pytestmark = pytest.mark.local_only(OWN_SERVER)


@dataclass
class Deployment:
    auth: ServerProcess
    chats: tuple[ServerProcess, ServerProcess]
    auth_env: dict[str, str]


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    with fresh_postgres_database(migrate=True) as url:
        shared = {
            **BASE_ENV,
            "RUNWIRE_REDIS_URL": redis_url(),
            "RUNWIRE_DATABASE_URL": url,
            "RUNWIRE_AUTO_MIGRATE": "false",
            # Slow enough that the run still streams while the key is rotated.
            "RUNWIRE_OFFLINE_DELAY_MS": "5",
        }
        started: list[ServerProcess] = []
        try:
            (tmp_path / "auth").mkdir()
            auth_env = {**shared, "RUNWIRE_ROLE": "auth", "RUNWIRE_ALLOWED_ORIGINS": "*"}
            auth = ServerProcess(tmp_path / "auth", auth_env)
            started.append(auth)
            chat_env = {**shared, "RUNWIRE_ROLE": "chat", "RUNWIRE_AUTH_ISSUER_URL": auth.url}
            for name in ("chat-a", "chat-b"):
                (tmp_path / name).mkdir()
                started.append(ServerProcess(tmp_path / name, chat_env))
            yield Deployment(auth, (started[1], started[2]), auth_env)
        finally:
            for proc in started:
                proc.stop()


def rotate(deployment: Deployment) -> str:
    """`runwire auth rotate-keys` beside the auth process, with its settings: the new kid."""
    done = subprocess.run(
        [sys.executable, "-m", "runwire", "auth", "rotate-keys"],
        env={
            **os.environ,
            **deployment.auth_env,
            "RUNWIRE_DATA_DIR": str(deployment.auth.log_path.parent),
            "COLUMNS": "200",
        },
        capture_output=True,
        text=True,
        timeout=unit(60),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[3]  # "new signing key <kid> (EdDSA) in ..."


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


async def test_a_users_day_across_an_auth_service_and_two_chat_nodes(
    deployment: Deployment,
) -> None:
    chat_a, chat_b = deployment.chats
    session = await Session.new(deployment.auth.url)
    at_a, at_b = on(chat_a.url, session), on(chat_b.url, session)
    try:
        sock_a = await at_a.connect()
        sock_b = await at_b.connect()
        accepted = await sock_a.ask("Where can we cut our LLM costs?")
        old_token = session.access

        # The key rotated while the run streams: the run is not disturbed.
        new_kid = rotate(deployment)
        events = await sock_a.run_to_end(accepted["run_id"])
        assert events[-1]["type"] == "agent_completed"
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

        # The session goes on: a refresh (same session) soon gets a token of the new key, which
        # both chat nodes verify (fetching the auth service's keys again on the unseen kid) ...
        deadline = time.monotonic() + unit(10)
        while kid_of(session.access) != new_kid:
            assert time.monotonic() < deadline, "the auth service never signed with the new key"
            await asyncio.sleep(unit(0.1))
            refreshed = await session.http.post(
                "/auth/refresh", json={"refresh_token": session.refresh}
            )
            assert refreshed.status_code == 200, refreshed.text
            session.access = refreshed.json()["access_token"]
            session.refresh = refreshed.json()["refresh_token"]
        for node in (at_a, at_b):
            node.access = session.access
            assert (await node.get("/api/me")).status_code == 200
        # ... and a token of the old key, still published, verifies too.
        at_b.access = old_token
        assert (await at_b.get("/api/me")).status_code == 200
        at_b.access = session.access

        # A logout at the auth service ends the session on both chat nodes.
        assert (await session.post("/auth/logout")).status_code == 204
        closes = await asyncio.gather(
            closed_within(sock_a, unit(2)), closed_within(sock_b, unit(2))
        )
        assert [code for code, _ in closes] == [SESSION_ENDED, SESSION_ENDED]
        for node in (at_a, at_b):
            refused = await node.get("/api/me")
            assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
    finally:
        await at_a.aclose()
        await at_b.aclose()
        await session.aclose()
