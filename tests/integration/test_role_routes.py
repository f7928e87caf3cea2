"""What each role mounts, on the in-process app: the auth role's CORS for the listed page
origins, the chat role's routes, page policy and key directory (it opens none)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from runwire.app import create_app
from tests.conftest import test_settings
from tests.integration.test_jwks_keys import issuing

pytestmark = pytest.mark.integration

PAGE = "https://chat.example.com"


@asynccontextmanager
async def client(tmp_path: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(test_settings(tmp_path, **overrides))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://runwire.test") as http:
            yield http


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_the_auth_role_lets_the_listed_pages_call_it_and_serves_no_chat(
    tmp_path: Path,
) -> None:
    async with client(tmp_path, role="auth", allowed_origins=PAGE) as http:
        allowed = await http.options("/auth/login", headers=preflight(PAGE))
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == PAGE
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        other = await http.options("/auth/login", headers=preflight("https://evil.example"))
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers
        signed_up = await http.post(
            "/auth/register",
            json={"email": "a@example.com", "password": "password1"},
            headers={"Origin": PAGE},
        )
        assert signed_up.status_code == 201
        assert signed_up.headers["access-control-allow-origin"] == PAGE
        for path in ("/", "/api/config", "/api/threads", "/static/app.js"):
            assert (await http.get(path)).status_code == 404, path
        for path in ("/internal/users/u/threads", "/ag-ui"):
            assert (await http.post(path, json={})).status_code == 404, path
        assert (await http.get("/.well-known/jwks.json")).status_code == 200


async def test_the_chat_role_serves_chat_with_the_issuers_keys_and_no_key_file(
    tmp_path: Path,
) -> None:
    with issuing() as issuer:
        async with client(
            tmp_path,
            role="chat",
            auth_issuer_url=issuer.url,
            auth_public_url="https://auth.example.com:8443/",
        ) as http:
            assert (await http.get("/api/config")).json() == {
                "auth_url": "https://auth.example.com:8443",
                "issuer": None,
            }
            page = (await http.get("/")).text
            assert "connect-src 'self' https://auth.example.com:8443 ws: wss:" in page
            for path in ("/auth/login", "/auth/register", "/auth/refresh", "/auth/token"):
                assert (await http.post(path, json={})).status_code == 404, path
            assert (await http.get("/.well-known/jwks.json")).status_code == 404
            assert (await http.get("/api/me")).status_code == 401
            assert (await http.get("/ready")).status_code == 200
        assert issuer.hits["/keys.json"] == 1
    assert not (tmp_path / "keys").exists()


async def test_the_all_role_signs_in_at_its_own_origin(tmp_path: Path) -> None:
    async with client(tmp_path) as http:
        assert (await http.get("/api/config")).json() == {"auth_url": None, "issuer": None}
        assert "connect-src 'self' ws: wss:" in (await http.get("/")).text
        # No CORS: the page is at the same origin.
        answer = await http.options("/auth/login", headers=preflight(PAGE))
        assert "access-control-allow-origin" not in answer.headers
