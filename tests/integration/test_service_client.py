"""A chat node's own service client, against a real auth service on loopback: start-up and
doctor name a wrong or insufficient credential; with it, a chat node without Redis follows the
auth service's revocation feed, so a logout there closes the session's socket here."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from runwire.auth.client_credentials import register_client
from runwire.auth.revocation_feed import RevocationFeed
from runwire.auth.service_account import ServiceAccount
from runwire.cli.auth_checks import auth_checks, service_client_problems
from runwire.config import Settings
from runwire.revocations.memory import MemoryRevocations
from runwire.transport.services import Services
from tests.conftest import test_settings
from tests.integration.test_event_stream import serving
from tests.integration.test_service_accounts import sign_up
from tests.ports import closed_port
from tests.timing import unit


@asynccontextmanager
async def auth_service(
    tmp_path: Path, database_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    settings = test_settings(tmp_path / "auth", role="auth", database_url=database_url)
    async with serving(settings) as served:
        yield served


def chat_settings(
    tmp_path: Path, database_url: str, auth: httpx.AsyncClient, **more: Any
) -> Settings:
    return test_settings(
        tmp_path / "chat",
        role="chat",
        database_url=database_url,
        auth_issuer_url=str(auth.base_url).rstrip("/"),
        **more,
    )


async def test_a_chat_node_without_redis_closes_sockets_of_sessions_ended_at_the_auth_service(
    tmp_path: Path, database_url: str
) -> None:
    async with auth_service(tmp_path, database_url) as (auth, services):
        client, secret = await register_client(
            services.store.clients, "chat-node", ["revocations:read"], audience="runwire"
        )
        settings = chat_settings(
            tmp_path,
            database_url,
            auth,
            service_client_id=client.id,
            service_client_secret=secret,
            revocation_poll_s=0.1,
        )
        assert await service_client_problems(settings) == []
        assert [(c.name, c.ok) for c in await auth_checks(settings)] == [
            ("auth issuer", True),
            ("service client", True),
        ]
        ada = await sign_up(auth, "ada@example.com")
        async with serving(settings) as (chat, _):
            ticket = (await chat.post("/api/ws-ticket", headers=ada["auth"])).json()["ticket"]
            url = str(chat.base_url).replace("http://", "ws://") + f"/ws?ticket={ticket}"
            async with connect(url, open_timeout=unit(5), max_queue=None) as ws:
                assert json.loads(await ws.recv())["type"] == "connection_established"
                assert (await auth.post("/auth/logout", headers=ada["auth"])).status_code == 204
                async with asyncio.timeout(unit(3)):
                    with pytest.raises(ConnectionClosed) as closed:
                        while True:
                            await ws.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4010


async def test_start_up_names_a_wrong_or_insufficient_service_client(
    tmp_path: Path, database_url: str
) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    key_file = tmp_path / "client.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    async with auth_service(tmp_path, database_url) as (auth, services):
        writer, secret = await register_client(
            services.store.clients, "scheduler", ["messages:write"], audience="runwire"
        )
        keyed, _ = await register_client(
            services.store.clients,
            "keyed-node",
            ["revocations:read"],
            audience="runwire",
            public_key=public.decode(),
        )
        wrong = chat_settings(
            tmp_path, database_url, auth, service_client_id=writer.id, service_client_secret="x"
        )
        [problem] = await service_client_problems(wrong)
        assert problem.startswith(
            f"the auth service at {auth.base_url}/auth/token refused this node's service client "
            "(invalid_client: unknown client, wrong secret, or a disabled client): check "
            f"RUNWIRE_SERVICE_CLIENT_ID={writer.id} and RUNWIRE_SERVICE_CLIENT_SECRET"
        )
        [failing] = [c for c in await auth_checks(wrong) if c.name == "service client"]
        assert not failing.ok and failing.reason == problem
        lacking = chat_settings(
            tmp_path, database_url, auth, service_client_id=writer.id, service_client_secret=secret
        )
        [problem] = await service_client_problems(lacking)
        assert "gets tokens without revocations:read, which this chat node needs" in problem
        assert "--scope revocations:read" in problem
        # With Redis the node reads no feed: the client needs no scope for it.
        with_redis = lacking.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
        assert await service_client_problems(with_redis) == []
        by_key = chat_settings(
            tmp_path,
            database_url,
            auth,
            service_client_id=keyed.id,
            service_client_key_file=key_file,
        )
        assert await service_client_problems(by_key) == []
        missing = by_key.model_copy(update={"service_client_key_file": tmp_path / "none.pem"})
        [problem] = await service_client_problems(missing)
        assert problem.startswith(
            f"RUNWIRE_SERVICE_CLIENT_KEY_FILE={tmp_path / 'none.pem'} cannot be read"
        )
        (tmp_path / "bad.pem").write_text("not a key")
        bad = by_key.model_copy(update={"service_client_key_file": tmp_path / "bad.pem"})
        assert (await service_client_problems(bad))[0].endswith(
            "is not an unencrypted PEM private key"
        )
        # Not the auth service: something that answers, but not OAuth.
        elsewhere = lacking.model_copy(update={"auth_issuer_url": f"{auth.base_url}/nowhere"})
        [problem] = await service_client_problems(elsewhere)
        assert problem == (
            f"the token endpoint {auth.base_url}/nowhere/auth/token answered HTTP 404, not OAuth "
            "JSON: is RUNWIRE_AUTH_ISSUER_URL the auth service?"
        )
        with closed_port() as port:
            elsewhere = lacking.model_copy(update={"auth_issuer_url": f"http://127.0.0.1:{port}"})
            [problem] = await service_client_problems(elsewhere)
            assert problem.startswith(
                f"the token endpoint http://127.0.0.1:{port}/auth/token cannot be reached"
            )


async def test_a_feed_that_cannot_be_read_is_logged_once_and_one_that_can_is_read_again(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with auth_service(tmp_path, database_url) as (auth, services):
        client, secret = await register_client(
            services.store.clients, "chat-node", ["revocations:read"], audience="runwire"
        )
        settings = chat_settings(
            tmp_path, database_url, auth, service_client_id=client.id, service_client_secret=secret
        )
        writer, writer_secret = await register_client(
            services.store.clients, "scheduler", ["messages:write"], audience="runwire"
        )
        unscoped = chat_settings(
            tmp_path,
            database_url,
            auth,
            service_client_id=writer.id,
            service_client_secret=writer_secret,
        )
        ada = await sign_up(auth, "ada@example.com")
        assert (await auth.post("/auth/logout", headers=ada["auth"])).status_code == 204
        revocations = MemoryRevocations()
        async with ServiceAccount.running(unscoped) as account:
            refused = RevocationFeed(
                account, f"{auth.base_url}/auth/revocations", revocations, interval_s=1
            )
            with caplog.at_level(logging.WARNING, "runwire.auth.revocation_feed"):
                assert await refused.poll() == 0
            assert caplog.records[-1].getMessage().endswith("auth/revocations answered HTTP 403")
            caplog.clear()
        async with ServiceAccount.running(settings) as account:
            with closed_port() as port:
                away = RevocationFeed(
                    account, f"http://127.0.0.1:{port}/auth/revocations", revocations, interval_s=1
                )
                with caplog.at_level(logging.WARNING, "runwire.auth.revocation_feed"):
                    assert await away.poll() == 0
                    assert await away.poll() == 0
                said = [r for r in caplog.records if r.name == "runwire.auth.revocation_feed"]
                assert len(said) == 1
                assert "could not read the revocation feed" in said[0].getMessage()
            feed = RevocationFeed(
                account, f"{auth.base_url}/auth/revocations", revocations, interval_s=1
            )
            assert await feed.poll() == 1
            assert revocations.revoked_count == 1
            # The next poll asks again from a little before: nothing is missed, nothing new.
            assert await feed.poll() == 1
            assert revocations.revoked_count == 1
