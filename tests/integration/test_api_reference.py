"""The API reference (``/docs``, ``/openapi.json``) and what it declares, on the in-process app.

Whether it is served (production hides it unless ``RUNWIRE_PUBLIC_DOCS=true``), that its page
needs nothing but the server, that every operation declares the answers it can give with their
bodies, and that a JSON body the parser cannot read is a 422 like any other malformed input.
(tests/e2e/test_openapi.py checks the live server against the document; test_browser.py draws
the page in Chromium with no other host reachable.)
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from runwire.app import create_app
from tests.conftest import test_settings
from tests.keys import key_directory

pytestmark = pytest.mark.integration

PRODUCTION = {
    "env": "production",
    "allowed_origins": "https://chat.example.com",
    "argon2_memory_kib": 19456,
}


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # No lifespan: these paths need none of the services it starts.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://runwire.test") as client:
        yield client


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return create_app(test_settings(tmp_path_factory.mktemp("app")))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async for opened in _client(app):
        yield opened


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


@pytest.mark.parametrize(
    ("overrides", "served"),
    [(PRODUCTION, False), ({**PRODUCTION, "public_docs": True}, True)],
    ids=["production", "production-public-docs"],
)
async def test_production_serves_the_reference_only_when_asked(
    tmp_path: Path, overrides: dict[str, Any], served: bool
) -> None:
    keys = key_directory(tmp_path / "keys")
    async for client in _client(
        create_app(test_settings(tmp_path, **overrides, auth_keys_dir=keys))
    ):
        for path in ("/docs", "/openapi.json", "/docs-assets/swagger-ui-bundle.js"):
            answer = await client.get(path)
            if served:
                assert answer.status_code == 200, path
            else:
                assert answer.status_code == 404, path
                assert answer.json()["code"] == "not_found"
        # The API itself is there either way.
        assert (await client.get("/api/me")).status_code == 401


async def test_the_docs_page_needs_nothing_but_the_server(client: httpx.AsyncClient) -> None:
    # Outside production: served, ReDoc aside (its bundle fetches its logo from another host).
    assert (await client.get("/openapi.json")).status_code == 200
    assert (await client.get("/redoc")).status_code == 404
    page = (await client.get("/docs")).text
    assert "://" not in page
    assets = re.findall(r'(?:href|src)="([^"]+)"', page)
    assert sorted(assets) == [
        "/docs-assets/favicon.png",
        "/docs-assets/swagger-ui-bundle.js",
        "/docs-assets/swagger-ui.css",
    ]
    assert "'/openapi.json'" in page
    # Swagger UI's online validator would send the document's URL to a third party.
    assert '"validatorUrl": null' in page
    for asset in assets:
        answer = await client.get(asset)
        assert answer.status_code == 200 and len(answer.content) > 100, asset
    bundle = await client.get("/docs-assets/swagger-ui-bundle.js")
    assert "javascript" in bundle.headers["content-type"]


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in document["paths"].items()
        for method, op in ops.items()
    ]


def _body_schema(answer: dict[str, Any]) -> str:
    return str(answer["content"]["application/json"]["schema"]["$ref"]).rsplit("/", 1)[-1]


def test_every_operation_declares_its_answers(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for method, path, op in _operations(document):
        name = f"{method} {path}"
        answers = op["responses"]
        successes = [s for s in answers if s.startswith("2")]
        assert successes, name
        for status in successes:
            content = answers[status].get("content", {})
            if path == "/metrics":  # Prometheus's text format, not JSON
                assert [t for t in content if t.startswith("text/plain")], name
            elif path == "/ag-ui":  # AG-UI's events, always a stream
                assert list(content) == ["text/event-stream"], name
            elif status != "204":
                schema = content["application/json"]["schema"]
                assert "$ref" in schema, f"{name} {status} has no typed body: {schema}"
        # The token endpoint answers errors as OAuth 2.0 does (RFC 6749 section 5.2).
        bodies = {"OAuthError"} if path == "/auth/token" else {"ErrorBody", "ReloadRequiredBody"}
        for status, answer in answers.items():
            if status.startswith(("4", "5")) and path != "/ready":
                assert _body_schema(answer) in bodies, (name, status)
        if op.get("security"):
            assert "401" in answers, name
            assert "WWW-Authenticate" in answers["401"]["headers"], name
        if op.get("parameters") or "application/json" in op.get("requestBody", {}).get(
            "content", {}
        ):
            assert "422" in answers, name
        if "429" in answers:
            assert answers["429"]["headers"]["Retry-After"]["required"], name


def test_the_declared_statuses_are_those_each_endpoint_can_give(
    document: dict[str, Any],
) -> None:
    declared = {f"{m} {p}": sorted(op["responses"]) for m, p, op in _operations(document)}
    assert declared == {
        "POST /auth/register": ["201", "409", "422", "429"],
        "POST /auth/login": ["200", "401", "422", "429"],
        "POST /auth/refresh": ["200", "401", "422", "429"],
        "POST /auth/logout": ["204", "401"],
        "POST /auth/password": ["204", "401", "403", "422", "429"],
        "GET /api/me": ["200", "401"],
        "GET /api/config": ["200"],
        "POST /api/ws-ticket": ["201", "401"],
        "GET /api/threads": ["200", "401"],
        "GET /api/threads/{thread_id}/messages": ["200", "401", "404", "422"],
        "GET /api/runs/{run_id}": ["200", "401", "404", "422"],
        "GET /api/runs/{run_id}/events": ["200", "204", "401", "404", "409", "422", "503"],
        "POST /api/usage/import": ["200", "401", "413", "415", "422", "429"],
        "POST /api/usage/sample": ["201", "401", "429"],
        "GET /api/usage/summary": ["200", "401"],
        "GET /api/usage/batches": ["200", "401"],
        "DELETE /api/usage/batches/{batch_id}": ["200", "401", "404", "422"],
        "DELETE /api/usage/records": ["200", "401"],
        "GET /health": ["200"],
        "GET /ready": ["200", "503"],
        "GET /metrics": ["200", "401"],
        "GET /.well-known/jwks.json": ["200"],
        "GET /.well-known/openid-configuration": ["200"],
        "POST /auth/token": ["200", "400", "401", "429", "503"],
        "GET /auth/revocations": ["200", "401", "403", "422"],
        "POST /ag-ui": ["200", "401", "413", "422"],
        "POST /internal/users/{user_id}/threads": [
            "202",
            "401",
            "403",
            "404",
            "409",
            "413",
            "422",
            "503",
        ],
        "POST /internal/users/{user_id}/threads/{thread_id}/messages": [
            "202",
            "401",
            "403",
            "404",
            "409",
            "413",
            "422",
            "503",
        ],
    }
    events = document["paths"]["/api/runs/{run_id}/events"]["get"]["responses"]
    assert _body_schema(events["409"]) == "ReloadRequiredBody"
    assert set(events["200"]["content"]) == {"application/json", "text/event-stream"}


def test_the_test_token_route_is_declared_only_where_it_exists(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    assert "/auth/test-token" not in document["paths"]
    app = create_app(test_settings(tmp_path, test_token_key="k" * 32))
    operation = app.openapi()["paths"]["/auth/test-token"]["post"]
    assert sorted(operation["responses"]) == ["200", "401", "422", "429"]
    assert [p["name"] for p in operation["parameters"]] == ["X-Runwire-Test-Key"]


def test_the_import_body_is_described(document: dict[str, Any]) -> None:
    body = document["paths"]["/api/usage/import"]["post"]["requestBody"]
    assert body["required"] is True
    assert set(body["content"]) == {
        "application/x-ndjson",
        "application/jsonl",
        "application/json-lines",
        "application/x-jsonlines",
        "text/csv",
    }
    assert body["content"]["text/csv"]["example"].startswith("timestamp,provider,model,")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"email": "a@example.com", "password": "\xff\xfe"}', "it is not UTF-8 text"),
        (b"[" * 10_000, "it nests too deeply"),  # under the 16 KiB cap on a JSON body
        (b'{"email": ', "Expecting value"),
    ],
    ids=["not-utf8", "nested", "syntax"],
)
async def test_a_body_that_is_not_json_is_invalid_input(
    client: httpx.AsyncClient, body: bytes, detail: str
) -> None:
    answer = await client.post(
        "/auth/login", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422
    assert answer.json() == {"detail": f"body: not valid JSON: {detail}", "code": "invalid_input"}
