"""Service accounts across real processes (docs/auth.md, "Service accounts"): an auth process
and a chat process on one database; clients made with `runwire auth clients create`.

A scheduler's client gets a service token from the auth process and posts a message into a
user's thread through the chat process: the user's WebSocket there sees the run. The chat node
has its own client and no Redis: a logout at the auth service closes the user's socket at the
chat node through the revocation feed. A chat node with a wrong secret does not start, and says
why.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import BASE_ENV, OWN_SERVER, ServerProcess, postgres_env
from tests.e2e.test_auth_roles import at
from tests.e2e.wire import Session
from tests.timing import unit

pytestmark = pytest.mark.local_only(OWN_SERVER)


@dataclass
class Deployment:
    auth: ServerProcess
    chat: ServerProcess
    chat_env: dict[str, str]
    scheduler: tuple[str, str]  # its client id and secret


def runwire_in_background(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """``runwire ARGS`` started beside what the test does next (each costs seconds of start-up:
    running them side by side keeps the module short)."""
    return subprocess.Popen(
        [sys.executable, "-m", "runwire", *args],
        env={**os.environ, **env, "COLUMNS": "300"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    stdout, stderr = proc.communicate(timeout=unit(120))
    return proc.returncode, stdout, stderr


def created(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """The id and secret `runwire auth clients create` printed."""
    code, stdout, stderr = finished(proc)
    assert code == 0, stderr
    found = re.search(r"client_id: (\S+)\nclient_secret: (\S+)\n", stdout)
    assert found is not None, stdout
    return found[1], found[2]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    auth_dir = tmp_path_factory.mktemp("svc-auth")
    chat_dir = tmp_path_factory.mktemp("svc-chat")
    with ExitStack() as stack:
        if os.environ.get("RUNWIRE_TEST_POSTGRES_URL"):
            env = stack.enter_context(postgres_env(auth_dir))
        else:
            env = {**BASE_ENV, "RUNWIRE_DATABASE_URL": f"sqlite+aiosqlite:///{auth_dir}/shared.db"}
        auth_env = {**env, "RUNWIRE_ROLE": "auth", "RUNWIRE_ALLOWED_ORIGINS": "*"}
        admin = {**auth_env, "RUNWIRE_DATA_DIR": str(auth_dir)}
        # The first command migrates an SQLite database as it opens it; the second runs while
        # the auth process starts.
        node_id, node_secret = created(
            runwire_in_background(
                "auth", "clients", "create", "chat-node", "--scope", "revocations:read", env=admin
            )
        )
        making = runwire_in_background(
            "auth", "clients", "create", "scheduler", "--scope", "messages:write", env=admin
        )
        auth = ServerProcess(auth_dir, auth_env)
        stack.callback(auth.stop)
        scheduler = created(making)
        chat_env = {
            **env,
            "RUNWIRE_ROLE": "chat",
            "RUNWIRE_AUTH_ISSUER_URL": auth.url,
            "RUNWIRE_SERVICE_CLIENT_ID": node_id,
            "RUNWIRE_SERVICE_CLIENT_SECRET": node_secret,
            "RUNWIRE_REVOCATION_POLL_S": "0.2",
        }
        chat = ServerProcess(chat_dir, chat_env)
        stack.callback(chat.stop)
        yield Deployment(auth, chat, {**chat_env, "RUNWIRE_DATA_DIR": str(chat_dir)}, scheduler)


async def test_a_scheduler_posts_for_a_user_whose_socket_sees_the_run_until_logout(
    deployment: Deployment,
) -> None:
    session = await Session.new(deployment.auth.url)
    user = at(session, deployment.chat.url)
    try:
        sock = await user.connect()
        async with httpx.AsyncClient(timeout=unit(10)) as http:
            granted = await http.post(
                f"{deployment.auth.url}/auth/token",
                data={"grant_type": "client_credentials"},
                auth=deployment.scheduler,
            )
            assert granted.status_code == 200, granted.text
            token = granted.json()["access_token"]
            posted = await http.post(
                f"{deployment.chat.url}/internal/users/{session.user_id}/threads",
                json={"content": "What did I spend on LLM calls this week?"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert posted.status_code == 202, posted.text
        events = await sock.run_to_end(posted.json()["run_id"])
        assert events[-1]["type"] == "agent_completed"
        # The session ends at the auth service; the chat node reads it from the feed.
        assert (await session.post("/auth/logout")).status_code == 204
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await sock.recv(timeout=unit(5))
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4010
    finally:
        await user.aclose()
        await session.aclose()


def test_a_chat_node_with_a_wrong_secret_does_not_start_and_says_why(
    deployment: Deployment,
) -> None:
    wrong = {**deployment.chat_env, "RUNWIRE_SERVICE_CLIENT_SECRET": "rwcs_wrong"}
    # (`runwire doctor` says the same through auth_checks: tests/integration/test_service_client.py.)
    code, stdout, stderr = finished(runwire_in_background("serve", "--port", "0", env=wrong))
    assert code == 2, stdout + stderr
    assert "refused this node's service client (invalid_client" in stderr
    assert "RUNWIRE_SERVICE_CLIENT_SECRET" in stderr
    assert "Uvicorn running" not in stdout + stderr
