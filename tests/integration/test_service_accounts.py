"""Service accounts on the real app behind a loopback socket, on SQLite and PostgreSQL: the
token endpoint (each way a client authenticates, each refusal as OAuth 2.0 words it), the
internal API that posts a message on a user's behalf (the user's socket sees the run), and the
revocation feed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from websockets.asyncio.client import connect

from runwire.auth.client_credentials import ASSERTION_TYPE, register_client
from runwire.store.records import ServiceClient
from runwire.transport.services import Services
from tests.conftest import test_settings
from tests.integration.test_event_stream import is_terminal, serving
from tests.timing import unit

FORM = {"grant_type": "client_credentials"}
SCOPES = ["messages:write", "revocations:read"]


@asynccontextmanager
async def auth_node(
    tmp_path: Path, database_url: str, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    settings = test_settings(tmp_path, database_url=database_url, **overrides)
    async with serving(settings) as served:
        yield served


def basic(client_id: str, secret: str) -> dict[str, str]:
    pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


async def registered(
    services: Services, scopes: list[str] = SCOPES, **extra: Any
) -> tuple[ServiceClient, str | None]:
    name = f"svc-{time.time_ns()}"
    return await register_client(services.store.clients, name, scopes, audience="runwire", **extra)


def oauth(answer: httpx.Response, status: int, error: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"] == error, body
    assert answer.headers["cache-control"] == "no-store"
    return str(body["error_description"])


async def test_a_client_gets_a_service_token_with_its_secret(
    tmp_path: Path, database_url: str
) -> None:
    async with auth_node(tmp_path, database_url) as (http, services):
        client, secret = await registered(services)
        assert secret is not None and secret.startswith("rwcs_")
        stored = await services.store.clients.get(client.id)
        assert stored is not None and secret not in repr(stored)
        assert stored.secret_hash is not None and secret not in stored.secret_hash

        # client_secret_basic: every scope of the client.
        answer = await http.post("/auth/token", data=FORM, headers=basic(client.id, secret))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 300
        assert body["scope"] == "messages:write revocations:read"
        assert answer.headers["cache-control"] == "no-store"
        claims = await services.service_tokens.check(body["access_token"])
        assert (claims.client_id, claims.scopes) == (client.id, set(SCOPES))

        # client_secret_post, asking for one scope.
        answer = await http.post(
            "/auth/token",
            data={
                **FORM,
                "client_id": client.id,
                "client_secret": secret,
                "scope": "messages:write",
            },
        )
        assert answer.json()["scope"] == "messages:write"

        discovery = (await http.get("/.well-known/openid-configuration")).json()
        assert discovery["token_endpoint"] == f"{http.base_url}/auth/token"
        assert discovery["grant_types_supported"] == ["client_credentials"]
        assert discovery["token_endpoint_auth_methods_supported"] == [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ]


async def test_each_wrong_token_request_is_refused_as_oauth_says(
    tmp_path: Path, database_url: str
) -> None:
    async with auth_node(tmp_path, database_url) as (http, services):
        client, secret = await registered(services, ["messages:write"])
        assert secret is not None
        token = "/auth/token"
        wrong = await http.post(token, data=FORM, headers=basic(client.id, secret + "x"))
        said = oauth(wrong, 401, "invalid_client")
        assert wrong.headers["www-authenticate"] == 'Basic realm="runwire"'
        assert secret not in said
        unknown = await http.post(token, data=FORM, headers=basic("svc_nobody", secret))
        assert oauth(unknown, 401, "invalid_client") == said  # the same answer for both
        oauth(await http.post(token, data=FORM), 401, "invalid_client")
        both = {**FORM, "client_id": client.id, "client_secret": secret}
        oauth(
            await http.post(token, data=both, headers=basic(client.id, secret)),
            400,
            "invalid_request",
        )
        no_grant = await http.post(token, data={"scope": "x"}, headers=basic(client.id, secret))
        assert oauth(no_grant, 400, "invalid_request") == "grant_type is required"
        not_utf8 = await http.post(
            token,
            content=b"grant_type=\xff",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert oauth(not_utf8, 400, "invalid_request") == "the form is not UTF-8 form-encoded"
        password = await http.post(
            token, data={"grant_type": "password"}, headers=basic(client.id, secret)
        )
        oauth(password, 400, "unsupported_grant_type")
        beyond = {**FORM, "scope": "messages:write revocations:read"}
        said = oauth(
            await http.post(token, data=beyond, headers=basic(client.id, secret)),
            400,
            "invalid_scope",
        )
        assert said == "this client may not have revocations:read (it may have: messages:write)"
        as_json = await http.post(token, json=FORM, headers=basic(client.id, secret))
        oauth(as_json, 400, "invalid_request")
        twice = await http.post(
            token,
            content="grant_type=client_credentials&scope=a&scope=b",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                **basic(client.id, secret),
            },
        )
        assert oauth(twice, 400, "invalid_request") == "scope sent more than once"

        assert await services.store.clients.disable(client.id)
        assert not await services.store.clients.disable(client.id)
        disabled = await http.post(token, data=FORM, headers=basic(client.id, secret))
        oauth(disabled, 401, "invalid_client")


async def test_failed_client_authentications_are_limited_per_address(tmp_path: Path) -> None:
    async with auth_node(
        tmp_path, test_settings(tmp_path).effective_database_url, login_ip_failures=2
    ) as (http, services):
        client, secret = await registered(services)
        assert secret is not None
        for _ in range(2):
            wrong = await http.post("/auth/token", data=FORM, headers=basic(client.id, "nope"))
            assert wrong.status_code == 401
        limited = await http.post("/auth/token", data=FORM, headers=basic(client.id, secret))
        oauth(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) >= 1


def public_pem(key: Any) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def assertion(key: Any, client_id: str, alg: str = "EdDSA", **changes: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": "runwire",
        "iat": now,
        "exp": now + 60,
        "jti": f"j-{time.time_ns()}",
        **changes,
    }
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm=alg)


async def test_a_client_with_a_key_proves_itself_with_single_use_assertions(
    tmp_path: Path, database_url: str
) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    async with auth_node(tmp_path, database_url) as (http, services):
        client, secret = await registered(services, public_key=public_pem(key))
        assert secret is None and client.auth_method == "private_key_jwt"

        async def ask(signed: str, **extra: str) -> httpx.Response:
            form = {
                **FORM,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": signed,
                **extra,
            }
            return await http.post("/auth/token", data=form)

        good = assertion(key, client.id)
        answer = await ask(good, client_id=client.id)
        assert answer.status_code == 200, answer.text
        claims = await services.service_tokens.check(answer.json()["access_token"])
        assert claims.client_id == client.id
        said = oauth(await ask(good), 401, "invalid_client")
        assert said == "the client assertion was used before (a new jti each time)"
        # The token endpoint's own URL is an audience too.
        at_url = assertion(key, client.id, aud=f"{http.base_url}/auth/token")
        assert (await ask(at_url)).status_code == 200

        other = ed25519.Ed25519PrivateKey.generate()
        now = int(time.time())
        p256 = ec.generate_private_key(ec.SECP256R1())
        refused = {
            "another audience": assertion(key, client.id, aud="https://elsewhere.example"),
            "expired": assertion(key, client.id, exp=now - 120, iat=now - 180),
            "too long a life": assertion(key, client.id, exp=now + 3600),
            "no jti": assertion(key, client.id, jti=None),
            "no exp": assertion(key, client.id, exp=None),
            "iss is not sub": assertion(key, client.id, iss="svc_other"),
            "another key": assertion(other, client.id),
            "another algorithm": assertion(p256, client.id, alg="ES256"),
            "HS256 keyed with the public key": jwt.encode(
                {"iss": client.id, "sub": client.id, "aud": "runwire", "exp": now + 60},
                "k" * 32,
                algorithm="HS256",
            ),
            "alg none": ".".join(
                (
                    base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode(),
                    base64.urlsafe_b64encode(
                        json.dumps(
                            {
                                "iss": client.id,
                                "sub": client.id,
                                "aud": "runwire",
                                "exp": now + 60,
                                "jti": "n",
                            }
                        ).encode()
                    )
                    .rstrip(b"=")
                    .decode(),
                    "",
                )
            ),
            "not a JWT": "garbage",
            "unknown client": assertion(key, "svc_nobody"),
        }
        for why, signed in refused.items():
            assert (await ask(signed)).status_code == 401, why
        mismatch = await ask(assertion(key, client.id), client_id="svc_other")
        oauth(mismatch, 401, "invalid_client")
        wrong_type = await http.post(
            "/auth/token",
            data={**FORM, "client_assertion_type": "saml", "client_assertion": good},
        )
        oauth(wrong_type, 400, "invalid_request")
        no_assertion = await http.post(
            "/auth/token", data={**FORM, "client_assertion_type": ASSERTION_TYPE}
        )
        oauth(no_assertion, 400, "invalid_request")
        # A key client has no secret: none verifies.
        oauth(
            await http.post("/auth/token", data=FORM, headers=basic(client.id, "")),
            401,
            "invalid_client",
        )


async def service_token(
    http: httpx.AsyncClient, services: Services, scopes: list[str]
) -> dict[str, str]:
    client, secret = await registered(services, scopes)
    assert secret is not None
    answer = await http.post("/auth/token", data=FORM, headers=basic(client.id, secret))
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def sign_up(http: httpx.AsyncClient, email: str) -> dict[str, Any]:
    creds = {"email": email, "password": "correct horse battery"}
    assert (await http.post("/auth/register", json=creds)).status_code == 201
    body: dict[str, Any] = (await http.post("/auth/login", json=creds)).json()
    body["auth"] = {"Authorization": f"Bearer {body['access_token']}"}
    return body


async def test_a_service_posts_on_a_users_behalf_and_the_users_socket_sees_the_run(
    tmp_path: Path, database_url: str
) -> None:
    async with auth_node(
        tmp_path, database_url, max_active_runs_per_user=1, offline_delay_ms=50
    ) as (http, services):
        writer = await service_token(http, services, ["messages:write"])
        reader = await service_token(http, services, ["revocations:read"])
        ada, bob = await sign_up(http, "ada@example.com"), await sign_up(http, "bob@example.com")
        ada_id = ada["user"]["id"]
        ticket = (await http.post("/api/ws-ticket", headers=ada["auth"])).json()["ticket"]
        url = str(http.base_url).replace("http://", "ws://") + f"/ws?ticket={ticket}"
        async with connect(url, open_timeout=unit(5), max_queue=None) as ws:
            assert json.loads(await ws.recv())["type"] == "connection_established"
            body = {"content": "Where can we cut our LLM costs?", "client_message_id": "cron-1"}
            answer = await http.post(f"/internal/users/{ada_id}/threads", json=body, headers=writer)
            assert answer.status_code == 202, answer.text
            accepted = answer.json()
            assert accepted["duplicate"] is False
            # The user's limits hold: one run at a time for this user.
            busy = await http.post(
                f"/internal/users/{ada_id}/threads/{accepted['thread_id']}/messages",
                json={"content": "and more"},
                headers=writer,
            )
            assert (busy.status_code, busy.json()["code"]) == (409, "too_many_runs")
            seen: list[dict[str, Any]] = []
            async with asyncio.timeout(unit(20)):
                while not seen or not is_terminal(seen[-1]):
                    frame = json.loads(await ws.recv())
                    if frame.get("run_id") == accepted["run_id"] and "seq" in frame:
                        seen.append(frame)
            assert seen[-1]["type"] == "agent_completed"
            again = await http.post(f"/internal/users/{ada_id}/threads", json=body, headers=writer)
            assert again.status_code == 202 and again.json() == {**accepted, "duplicate": True}
        follow_up = await http.post(
            f"/internal/users/{ada_id}/threads/{accepted['thread_id']}/messages",
            json={"content": "thanks"},
            headers=writer,
        )
        assert follow_up.status_code == 202
        assert follow_up.json()["thread_id"] == accepted["thread_id"]
        messages = await http.get(
            f"/api/threads/{accepted['thread_id']}/messages", headers=ada["auth"]
        )
        assert messages.json()["messages"][0]["content"] == body["content"]

        def refused(answer: httpx.Response, status: int, code: str) -> None:
            assert (answer.status_code, answer.json()["code"]) == (status, code), answer.text

        path = f"/internal/users/{ada_id}/threads"
        message = {"content": "hi"}
        refused(await http.post(path, json=message), 401, "service_token_required")
        refused(
            await http.post(path, json=message, headers=ada["auth"]), 401, "service_token_required"
        )
        scoped = await http.post(path, json=message, headers=reader)
        refused(scoped, 403, "insufficient_scope")
        assert scoped.headers["www-authenticate"] == (
            'Bearer error="insufficient_scope", scope="messages:write"'
        )
        # A service token is no user's session.
        refused(await http.get("/api/me", headers=writer), 401, "unauthorized")
        refused(
            await http.post("/internal/users/usr_nobody/threads", json=message, headers=writer),
            404,
            "not_found",
        )
        bobs_thread = (
            f"/internal/users/{bob['user']['id']}/threads/{accepted['thread_id']}/messages"
        )
        refused(await http.post(bobs_thread, json=message, headers=writer), 404, "not_found")
        refused(await http.post(path, json={"content": "  "}, headers=writer), 422, "invalid_input")


async def test_the_revocation_feed_lists_ended_sessions_to_its_readers(
    tmp_path: Path, database_url: str
) -> None:
    async with auth_node(tmp_path, database_url) as (http, services):
        reader = await service_token(http, services, ["revocations:read"])
        writer = await service_token(http, services, ["messages:write"])
        ada = await sign_up(http, "ada@example.com")
        empty = (await http.get("/auth/revocations", headers=reader)).json()
        assert empty == {"revocations": [], "next_after": 0}
        assert (await http.post("/auth/logout", headers=ada["auth"])).status_code == 204
        sid = jwt.decode(ada["access_token"], options={"verify_signature": False})["sid"]
        feed = (await http.get("/auth/revocations", headers=reader)).json()
        assert [r["sid"] for r in feed["revocations"]] == [sid]
        assert feed["revocations"][0]["until"] > time.time() + 900
        later = await http.get(
            "/auth/revocations", params={"after": feed["next_after"]}, headers=reader
        )
        assert later.json() == {"revocations": [], "next_after": feed["next_after"]}
        denied = await http.get("/auth/revocations", headers=writer)
        assert (denied.status_code, denied.json()["code"]) == (403, "insufficient_scope")
        user = await http.get("/auth/revocations", headers=ada["auth"])
        assert user.status_code == 401
