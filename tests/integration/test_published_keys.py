"""What the app publishes of its keys, and POST /auth/test-token, on the in-process app.

``/.well-known/jwks.json`` and ``/.well-known/openid-configuration`` as a verifier reads them;
the test-token route where it exists (a key set, outside production) and where it does not.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt

from runwire.app import create_app
from runwire.auth.key_files import KeyDirectory
from runwire.config import SigningAlgorithm
from tests.conftest import test_settings

TEST_KEY = "a-test-token-key-for-staging-" + "k" * 16


@asynccontextmanager
async def app_client(tmp_path: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(test_settings(tmp_path, **overrides))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://runwire.test") as http:
            yield http


async def test_the_jwk_set_verifies_tokens_and_holds_no_private_part(tmp_path: Path) -> None:
    directory = KeyDirectory(tmp_path / "keys")
    older = directory.add(SigningAlgorithm.ES256)
    newer = directory.add(SigningAlgorithm.EDDSA)
    async with app_client(tmp_path) as http:
        await http.post("/auth/register", json={"email": "a@example.com", "password": "password1"})
        login = await http.post(
            "/auth/login", json={"email": "a@example.com", "password": "password1"}
        )
        token = login.json()["access_token"]
        answer = await http.get("/.well-known/jwks.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "public, max-age=300"
    keys = answer.json()["keys"]
    assert [k["kid"] for k in keys] == [newer.kid, older.kid]
    public = {"kty", "crv", "x", "y", "kid", "alg", "use"}
    for key in keys:
        assert set(key) <= public, key  # no "d", nor anything else
        assert key["use"] == "sig"
    assert (keys[0]["kty"], keys[0]["crv"], keys[0]["alg"]) == ("OKP", "Ed25519", "EdDSA")
    assert (keys[1]["kty"], keys[1]["crv"], keys[1]["alg"]) == ("EC", "P-256", "ES256")
    # Nor the private numbers in any encoding: Ed25519's 32-byte seed, P-256's d.
    text = answer.text
    seed = newer.private_key.private_bytes_raw()  # type: ignore[union-attr]
    d = older.private_key.private_numbers().private_value.to_bytes(32, "big")  # type: ignore[union-attr]
    for secret in (seed, d):
        assert jwt.utils.base64url_encode(secret).decode() not in text
        assert secret.hex() not in text
    # A verifier holding only the published set accepts the server's token.
    jwks = jwt.PyJWKSet.from_dict(answer.json())
    kid = jwt.get_unverified_header(token)["kid"]
    assert kid == newer.kid
    claims = jwt.decode(
        token, jwks[kid], algorithms=["EdDSA"], audience="runwire", issuer="runwire"
    )
    assert claims["sub"] == login.json()["user"]["id"]


async def test_the_discovery_document_names_only_what_is_served(tmp_path: Path) -> None:
    async with app_client(tmp_path) as http:
        answer = await http.get("/.well-known/openid-configuration")
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "public, max-age=3600"
        document = answer.json()
        assert document == {
            "issuer": "runwire",
            "jwks_uri": "http://runwire.test/.well-known/jwks.json",
            "id_token_signing_alg_values_supported": ["EdDSA"],
            "subject_types_supported": ["public"],
            "token_endpoint": "http://runwire.test/auth/token",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ],
            "token_endpoint_auth_signing_alg_values_supported": ["EdDSA", "ES256", "RS256"],
            "scopes_supported": ["messages:write", "revocations:read"],
        }
        assert (await http.get(document["jwks_uri"])).status_code == 200
        token_endpoint = await http.post(document["token_endpoint"], data={})
        assert token_endpoint.json()["error"] == "invalid_request"
    async with app_client(
        tmp_path / "url", auth_issuer="https://auth.example.com", auth_audience="chat"
    ) as http:
        document = (await http.get("/.well-known/openid-configuration")).json()
        assert document["issuer"] == "https://auth.example.com"
        assert document["jwks_uri"] == "https://auth.example.com/.well-known/jwks.json"
        assert document["token_endpoint"] == "https://auth.example.com/auth/token"
        await http.post("/auth/register", json={"email": "b@example.com", "password": "password1"})
        login = await http.post(
            "/auth/login", json={"email": "b@example.com", "password": "password1"}
        )
        token = login.json()["access_token"]
        claims = jwt.decode(token, options={"verify_signature": False})
        assert (claims["iss"], claims["aud"]) == ("https://auth.example.com", "chat")
        assert (
            await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        ).status_code == 200


async def test_without_a_key_there_is_no_test_token_route(tmp_path: Path) -> None:
    async with app_client(tmp_path) as http:
        answer = await http.post("/auth/test-token", headers={"X-Runwire-Test-Key": TEST_KEY})
        assert answer.status_code == 404
        assert answer.json()["code"] == "not_found"


async def test_test_tokens_need_the_key_and_make_e2e_users(tmp_path: Path) -> None:
    async with app_client(tmp_path, test_token_key=TEST_KEY) as http:
        for headers in ({}, {"X-Runwire-Test-Key": TEST_KEY[:-1]}, {"X-Runwire-Test-Key": "x"}):
            refused = await http.post("/auth/test-token", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.json() == {
                "detail": "missing or wrong X-Runwire-Test-Key",
                "code": "unauthorized",
            }
        key = {"X-Runwire-Test-Key": TEST_KEY}
        fresh = (await http.post("/auth/test-token", headers=key)).json()
        other = (await http.post("/auth/test-token", headers=key)).json()
        assert fresh["user"]["id"] != other["user"]["id"]
        assert fresh["user"]["email"].startswith("e2e-")
        assert fresh["user"]["email"].endswith("@runwire.test")
        alice = await http.post("/auth/test-token", headers=key, json={"name": "alice"})
        assert alice.status_code == 200
        again = await http.post("/auth/test-token", headers=key, json={"name": "alice"})
        assert (
            alice.json()["user"]
            == again.json()["user"]
            == {
                "id": alice.json()["user"]["id"],
                "email": "e2e-alice@runwire.test",
            }
        )
        assert alice.json()["refresh_token"] != again.json()["refresh_token"]  # two sessions
        bob = await http.post("/auth/test-token", headers=key, json={"name": "bob"})
        assert bob.json()["user"]["id"] != alice.json()["user"]["id"]
        # A real session: it calls the API, refreshes, and logs out.
        bearer = {"Authorization": f"Bearer {alice.json()['access_token']}"}
        assert (await http.get("/api/me", headers=bearer)).json()["user"]["email"] == (
            "e2e-alice@runwire.test"
        )
        refreshed = await http.post(
            "/auth/refresh", json={"refresh_token": alice.json()["refresh_token"]}
        )
        assert refreshed.status_code == 200
        # No password opens a test user's account, and no one can sign up as one.
        for password in ("", "password1", "!test-user"):
            login = await http.post(
                "/auth/login", json={"email": "e2e-alice@runwire.test", "password": password}
            )
            assert login.status_code == 401
        taken = await http.post(
            "/auth/register", json={"email": "e2e-carol@runwire.test", "password": "password1"}
        )
        assert taken.status_code == 422
        for body in ({"name": "Alice"}, {"name": ""}, {"name": "-x"}, {"name": "a" * 41}, [1]):
            bad = await http.post("/auth/test-token", headers=key, json=body)
            assert bad.status_code == 422, body


async def test_wrong_test_keys_are_limited_like_failed_logins(tmp_path: Path) -> None:
    async with app_client(tmp_path, test_token_key=TEST_KEY, login_ip_failures=2) as http:
        key = {"X-Runwire-Test-Key": TEST_KEY}
        for _ in range(5):  # right keys are not counted
            assert (await http.post("/auth/test-token", headers=key)).status_code == 200
        wrong = {"X-Runwire-Test-Key": "w" * 40}
        assert (await http.post("/auth/test-token", headers=wrong)).status_code == 401
        assert (await http.post("/auth/test-token", headers=wrong)).status_code == 401
        limited = await http.post("/auth/test-token", headers=key)  # even the right one, now
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert json.loads(limited.text)["code"] == "rate_limited"
        # Logins are limited apart: this address has failed none.
        login = await http.post("/auth/login", json={"email": "x@example.com", "password": "p"})
        assert login.status_code == 401
