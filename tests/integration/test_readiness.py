"""Readiness on real databases: ``/ready`` on the running app, and the checks it shares with
``runwire doctor`` (runwire.readiness), each naming what fails."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import column, table, update

from runwire.app import create_app
from runwire.readiness import LLMProbe, Readiness
from runwire.store.database import Database
from tests.conftest import test_settings
from tests.databases import admin, database_name, fresh_postgres_database
from tests.ports import closed_port
from tests.timing import unit

PASSWORD = "s3cret-Pa55word"


@asynccontextmanager
async def ready_client(
    tmp_path: Path, database_url: str, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The app on ``database_url``, started (lifespan) and reachable through a client."""
    app: FastAPI = create_app(test_settings(tmp_path, database_url=database_url, **overrides))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://runwire.test") as http:
            yield http


async def test_ready_names_a_schema_that_falls_behind(tmp_path: Path, database_url: str) -> None:
    async with ready_client(tmp_path, database_url) as http:
        r = await http.get("/ready")
        assert r.status_code == 200
        assert r.json() == {"status": "ready", "checks": {"database": "ok", "schema": "ok"}}
        async with Database.open(database_url) as db:
            _, head = await db.schema_revision()
            async with db.begin() as conn:
                version = table("alembic_version", column("version_num"))
                await conn.execute(update(version).values(version_num="0001"))
        r = await http.get("/ready")
        assert r.status_code == 503
        assert r.json() == {
            "status": "unavailable",
            "checks": {"database": "ok", "schema": f"at 0001, needs {head}: run `runwire migrate`"},
            "failing": ["schema"],
        }


@pytest.fixture
def postgres_database_url() -> Iterator[str]:
    with fresh_postgres_database(migrate=False) as url:
        yield url


async def test_ready_names_the_database_when_postgresql_stops_answering(
    tmp_path: Path, postgres_database_url: str
) -> None:
    database_url = postgres_database_url
    name = database_name(database_url)
    async with ready_client(tmp_path, database_url) as http:
        assert (await http.get("/ready")).status_code == 200
        await admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            # The app's pooled connections go too: the next check must open a new one.
            await admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
            r = await http.get("/ready")
            assert r.status_code == 503
            body = r.json()
            assert body["status"] == "unavailable" and body["failing"] == ["database"]
            assert list(body["checks"]) == ["database"]  # the schema is not checked without it
            assert body["checks"]["database"].startswith("database unreachable (")
            assert name not in r.text and "127.0.0.1" not in r.text  # nothing about where
        finally:
            await admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        r = await http.get("/ready")
        assert r.status_code == 200, r.text  # back once the database answers again


async def test_an_unreachable_database_is_named_for_the_operator_without_its_password() -> None:
    with closed_port() as port:
        url = f"postgresql+asyncpg://runwire:{PASSWORD}@127.0.0.1:{port}/runwire"
        async with Database.open(url) as db:
            checks = await Readiness(db).run()
    assert [(c.name, c.ok) for c in checks] == [("database", False)]
    check = checks[0]
    assert check.reason == "database unreachable (ConnectionRefusedError)"
    assert check.detail.startswith("postgresql+asyncpg://runwire:***@127.0.0.1:")
    assert "ConnectionRefusedError" in check.detail and "RUNWIRE_DATABASE_URL" in check.fix
    assert PASSWORD not in f"{check.reason} {check.detail} {check.fix}"


async def test_a_database_that_never_answers_fails_within_the_time_limit() -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does), says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        url = f"postgresql+asyncpg://runwire:{PASSWORD}@127.0.0.1:{port}/runwire"
        async with Database.open(url) as db:
            checks = await Readiness(db, timeout_s=unit(0.5)).run()
    assert [(c.name, c.ok) for c in checks] == [("database", False)]
    assert checks[0].reason == "database unreachable (no answer within the check's time limit)"
    assert PASSWORD not in checks[0].detail and f":{port}/runwire" in checks[0].detail


API_KEY = "sk-probe-" + "k" * 24


@asynccontextmanager
async def llm_endpoint(status: int = 200) -> AsyncIterator[tuple[str, list[list[str]]]]:
    """An HTTP server on a free loopback port that answers every request with ``status`` (an
    OpenAI-style model list when 200); yields its API base URL and each request's head lines."""
    seen: list[list[str]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head.decode().split("\r\n")[:-2])
        body = b'{"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]}'
        writer.write(
            f"HTTP/1.1 {status} Status\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1", seen
    finally:
        server.close()
        await server.wait_closed()


async def test_ready_checks_the_llm_endpoint_with_the_key(tmp_path: Path) -> None:
    database_url = test_settings(tmp_path).effective_database_url
    async with (
        llm_endpoint() as (base, seen),
        ready_client(tmp_path, database_url, llm_base_url=base, llm_api_key=API_KEY) as http,
    ):
        r = await http.get("/ready")
        assert r.status_code == 200, r.text
        assert r.json()["checks"] == {"database": "ok", "schema": "ok", "llm": "ok"}
        assert (await http.get("/ready")).status_code == 200
    # One request for both: the outcome is kept for a few seconds.
    assert len(seen) == 1
    assert seen[0][0] == "GET /v1/models HTTP/1.1"
    assert f"Authorization: Bearer {API_KEY}" in seen[0]


async def test_ready_names_an_llm_endpoint_that_is_down(tmp_path: Path) -> None:
    database_url = test_settings(tmp_path).effective_database_url
    with closed_port() as port:
        base = f"http://127.0.0.1:{port}/v1"
        async with ready_client(
            tmp_path, database_url, llm_base_url=base, llm_api_key=API_KEY
        ) as http:
            r = await http.get("/ready")
    assert r.status_code == 503
    assert r.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "schema": "ok", "llm": "llm unreachable (ConnectError)"},
        "failing": ["llm"],
    }
    assert API_KEY not in r.text and str(port) not in r.text


@pytest.mark.parametrize(
    ("status", "reason", "fix"),
    [
        (401, "llm refused the API key (HTTP 401)", "RUNWIRE_LLM_API_KEY"),
        (404, "llm answered HTTP 404", "RUNWIRE_LLM_BASE_URL"),
        (503, "llm answered HTTP 503", "RUNWIRE_LLM_BASE_URL"),
    ],
)
async def test_an_llm_endpoint_that_answers_no_is_failing(
    status: int, reason: str, fix: str
) -> None:
    async with llm_endpoint(status) as (base, _):
        check = await LLMProbe(base, API_KEY).check()
    assert (check.name, check.ok, check.reason) == ("llm", False, reason)
    assert fix in check.fix and f"answered HTTP {status}" in check.detail
    assert API_KEY not in f"{check.reason} {check.detail} {check.fix} {LLMProbe(base, API_KEY)!r}"


async def test_an_llm_endpoint_that_never_answers_fails_within_the_time_limit() -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does), says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        limit = unit(0.3)
        started = asyncio.get_running_loop().time()
        check = await LLMProbe(f"http://127.0.0.1:{port}", API_KEY, timeout_s=limit).check()
        took = asyncio.get_running_loop().time() - started
    assert not check.ok and check.reason == f"llm did not answer within {limit:g} s"
    assert took < limit + unit(1)


async def test_checks_asked_together_share_one_probe_until_it_expires() -> None:
    now = [0.0]
    async with llm_endpoint() as (base, seen):
        probe = LLMProbe(base, API_KEY, cache_s=5, clock=lambda: now[0])
        checks = await asyncio.gather(*(probe.check() for _ in range(5)))
        assert all(c.ok for c in checks) and len(seen) == 1
        now[0] = 4.9
        await probe.check()
        assert len(seen) == 1
        now[0] = 5.0
        await probe.check()
        assert len(seen) == 2
