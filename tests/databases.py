"""Databases for tests on every backend runwire supports: SQLite and PostgreSQL.

A PostgreSQL database for tests is made fresh under a unique name (``runwire_t_<hex>``) on the
server of ``RUNWIRE_TEST_POSTGRES_URL`` (see tests/services.py: skipped on a person's machine
without it, failing in CI), through an admin connection to that URL's own database, and dropped
afterwards, even when connections to it are still open (a server killed by a test).

The helpers are synchronous: fixtures call them outside the tests' event loops.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from sqlalchemy import Table, delete, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from runwire.store.database import Database
from runwire.store.schema import metadata
from tests.services import postgres_url
from tests.timing import unit

__all__ = [
    "BACKENDS",
    "HeldRow",
    "admin",
    "database_name",
    "empty_tables",
    "fresh_postgres_database",
    "row_held",
]

BACKENDS = ("sqlite", "postgresql")


async def admin(statement: str, admin_url: str | None = None) -> None:
    """Run ``statement`` on the test server's own database, outside a transaction."""
    admin_url = admin_url or postgres_url()
    # CREATE/DROP DATABASE cannot run inside a transaction.
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


def database_name(url: str) -> str:
    """The database a URL names."""
    return str(make_url(url).database)


async def _migrate(url: str) -> None:
    async with Database.open(url) as db:
        await db.migrate()


@contextmanager
def fresh_postgres_database(*, migrate: bool) -> Iterator[str]:
    """A new, empty PostgreSQL database (migrated to head if ``migrate``); yields its URL."""
    admin_url = postgres_url()
    name = f"runwire_t_{uuid.uuid4().hex[:12]}"
    # The name is made here from hex digits, never from input.
    asyncio.run(admin(f'CREATE DATABASE "{name}"', admin_url))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        if migrate:
            asyncio.run(_migrate(url))
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', admin_url))


async def empty_tables(db: Database) -> None:
    """Delete every row of runwire's tables (children first), keeping the schema and its revision."""
    async with db.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(delete(table))


class HeldRow:
    """What :func:`row_held` yields: how many transactions wait behind it."""

    def __init__(self, engine: AsyncEngine | None) -> None:
        self._engine = engine

    async def until_waiting(self, count: int) -> None:
        """Return once ``count`` other transactions of the database wait for a lock. On SQLite,
        whose writers wait at its one lock (in threads, where nothing can count them), at once."""
        if self._engine is None:
            return
        query = (
            select(func.count())
            .select_from(text("pg_stat_activity"))
            .where(text("datname = current_database() AND wait_event_type = 'Lock'"))
        )
        async with asyncio.timeout(unit(10)):
            # A connection of its own, each look a statement of its own: within a transaction
            # PostgreSQL would answer every look from the snapshot of the first.
            async with self._engine.connect() as conn:
                while (await conn.execute(query)).scalar_one() < count:
                    await conn.commit()
                    await asyncio.sleep(0.005)


@asynccontextmanager
async def row_held(url: str, table: Table, key: str) -> AsyncIterator[HeldRow]:
    """Hold ``table``'s row ``key`` (by its ``id``) locked until the block ends, from a
    connection of its own, as another node's transaction would: a write to the row, and an
    insert that refers to it, waits until then. SQLite has one lock for the whole file, so
    there every write waits (``BEGIN IMMEDIATE``)."""
    path = Database.sqlite_file(url)
    if path is not None:
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            yield HeldRow(None)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(select(table.c.id).where(table.c.id == key).with_for_update())
            try:
                yield HeldRow(engine)
            finally:
                await conn.rollback()
    finally:
        await engine.dispose()
