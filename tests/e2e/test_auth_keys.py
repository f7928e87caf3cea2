"""Key rotation on a running server, as an operator does it: `runwire auth rotate-keys` beside
`runwire serve`, and nobody is logged out (docs/auth.md, "Rotating keys")."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from runwire.auth.key_files import KeyDirectory
from runwire.config import SigningAlgorithm
from tests.e2e.conftest import BASE_ENV, OWN_SERVER, ServerProcess
from tests.e2e.wire import Session
from tests.timing import unit

pytestmark = pytest.mark.local_only(OWN_SERVER)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("rotation"), BASE_ENV)
    yield proc
    proc.stop()


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def rotate(data_dir: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "runwire", "auth", "rotate-keys"],
        env={**os.environ, **BASE_ENV, "RUNWIRE_DATA_DIR": str(data_dir), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=unit(60),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[3]  # "new signing key <kid> (EdDSA) in ..."


async def me(http: httpx.AsyncClient, token: str) -> int:
    return (await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})).status_code


async def test_a_rotation_reaches_the_running_server_and_ends_no_session(
    server: ServerProcess,
) -> None:
    data_dir = server.log_path.parent
    session = await Session.new(server.url)
    try:
        before = session.access
        old_kid = kid_of(before)
        new_kid = rotate(data_dir)
        assert new_kid != old_kid
        # The server signs with the new key within a second, without a restart.
        deadline = time.monotonic() + unit(5)
        while kid_of(session.access) != new_kid:
            assert time.monotonic() < deadline, "the server still signs with the old key"
            await asyncio.sleep(0.1)
            await session.login()
        assert await me(session.http, before) == 200  # a token of the old key still verifies
        assert await me(session.http, session.access) == 200
        jwks = (await session.http.get("/.well-known/jwks.json")).json()
        assert [k["kid"] for k in jwks["keys"]] == [new_kid, old_kid]
    finally:
        await session.aclose()


async def test_a_token_of_a_key_added_elsewhere_is_taken_at_once(server: ServerProcess) -> None:
    # Another node of the deployment made a key and signs with it: this server has never seen
    # the kid, looks at its key directory again (once a second at most), and accepts the token.
    session = await Session.new(server.url)
    try:
        added = KeyDirectory(server.log_path.parent / "keys").add(SigningAlgorithm.ES256)
        claims = jwt.decode(session.access, options={"verify_signature": False})
        token = jwt.encode(claims, added.private_key, algorithm="ES256", headers={"kid": added.kid})
        deadline = time.monotonic() + unit(5)
        while (status := await me(session.http, token)) != 200:
            assert status == 401
            assert time.monotonic() < deadline, "the new key was never read"
            await asyncio.sleep(0.1)
        await session.login()
        assert kid_of(session.access) == added.kid
    finally:
        await session.aclose()


async def test_an_hs256_token_of_an_earlier_version_is_refused_and_the_session_goes_on(
    server: ServerProcess,
) -> None:
    # Upgrading from the HS256 secret: access tokens signed with it stop working, and the
    # client's refresh token (opaque, kept in the database) buys a new pair, as at any expiry.
    session = await Session.new(server.url)
    try:
        claims = jwt.decode(session.access, options={"verify_signature": False})
        old = jwt.encode(
            {k: v for k, v in claims.items() if k != "aud"},
            "the-old-secret-key-" + "x" * 40,
            algorithm="HS256",
        )
        answer = await session.http.get("/api/me", headers={"Authorization": f"Bearer {old}"})
        assert answer.status_code == 401
        assert answer.json() == {"detail": "invalid access token", "code": "unauthorized"}
        refreshed = await session.http.post(
            "/auth/refresh", json={"refresh_token": session.refresh}
        )
        assert refreshed.status_code == 200
        assert await me(session.http, refreshed.json()["access_token"]) == 200
    finally:
        await session.aclose()
