"""Readiness on real databases: ``/ready`` on the running app, and the checks it shares with
``runwire doctor`` (runwire.readiness), each naming what fails."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import column, table, update

from runwire.app import create_app
from runwire.readiness import Readiness
from runwire.store.database import Database
from tests.conftest import test_settings
from tests.databases import admin, database_name, fresh_postgres_database
from tests.ports import closed_port
from tests.timing import unit

PASSWORD = "s3cret-Pa55word"


@asynccontextmanager
async def ready_client(tmp_path: Path, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app on ``database_url``, started (lifespan) and reachable through a client."""
    app: FastAPI = create_app(test_settings(tmp_path, database_url=database_url))
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
