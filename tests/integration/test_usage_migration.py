"""Migration 0006 (usage batches and record keys) on data stored before it, on both backends.

Before 0006 nothing stopped the same records from being stored twice (the sample loaded twice,
a file imported twice); those duplicates must not break the migration, and afterwards a file
imported before is recognised as already present.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text

from runwire.config import Settings
from runwire.store.database import Database
from runwire.store.store import Store
from runwire.usage.pricing import PricingTable
from runwire.usage.workload import Workload
from tests.databases import fresh_postgres_database

ROWS = [
    # (user, timestamp, latency_ms): user a's first call is stored three times over.
    ("usr_a", 1_762_000_000_000, 850.0),
    ("usr_a", 1_762_000_000_000, 850.0),
    ("usr_a", 1_762_000_000_000, 850.0),
    ("usr_a", 1_762_000_001_000, 420.5),
    ("usr_b", 1_762_000_000_000, 850.0),
]


@pytest.fixture
def empty_url(backend: str, settings: Settings) -> Iterator[str]:
    if backend == "sqlite":
        yield settings.effective_database_url
        return
    with fresh_postgres_database(migrate=False) as url:
        yield url


async def alembic(db: Database, action: str, revision: str) -> None:
    cfg = db._alembic_config()

    def run(sync_conn: Any) -> None:
        cfg.attributes["connection"] = sync_conn
        getattr(command, action)(cfg, revision)

    async with db.engine.connect() as conn, conn.begin():
        await conn.run_sync(run)


@pytest.fixture
async def migrated(empty_url: str) -> AsyncIterator[Store]:
    """A database at 0005 holding ``ROWS``, then migrated to the head."""
    async with Database.open(empty_url) as db:
        await alembic(db, "upgrade", "0005")
        async with db.begin() as conn:
            for user in ("usr_a", "usr_b"):
                await conn.execute(
                    text(
                        "INSERT INTO users (id, email, password_hash, created_at) "
                        "VALUES (:id, :email, 'x', 0)"
                    ),
                    {"id": user, "email": f"{user}@example.com"},
                )
            for user, ts, latency in ROWS:
                await conn.execute(
                    text(
                        "INSERT INTO usage_records (user_id, timestamp, provider, model, "
                        "prompt_tokens, completion_tokens, latency_ms, cost_usd, status) "
                        "VALUES (:u, :ts, 'openai', 'gpt-4o', 1000, 200, :lat, 0.0045, 'ok')"
                    ),
                    {"u": user, "ts": ts, "lat": latency},
                )
        await db.migrate()
        yield Store(db)


async def test_duplicates_stored_before_batches_migrate_and_are_recognised(
    migrated: Store,
) -> None:
    workload = Workload(migrated.usage, PricingTable.load())
    assert await migrated.usage.count("usr_a") == 4  # nothing lost, duplicates included
    [earlier] = await workload.batches("usr_a")
    assert (earlier.source, earlier.records, earlier.name) == ("earlier", 4, None)
    async with migrated.db.connect() as conn:
        keys = (await conn.execute(text("SELECT user_id, record_key FROM usage_records"))).all()
    assert len(set(keys)) == len(ROWS) and all(len(key) == 64 for _, key in keys)
    # The file those records came from, imported again: nothing new.
    line = {
        "timestamp": "2025-11-01T12:26:40Z",  # 1_762_000_000_000
        "provider": "openai",
        "model": "gpt-4o",
        "prompt_tokens": 1000,
        "completion_tokens": 200,
        "latency_ms": 850,
    }
    again = await workload.import_text("usr_a", json.dumps(line).encode(), "jsonl")
    assert (again.new, again.already_present) == (0, 1)
    assert await workload.delete("usr_a", earlier.id) == 4
    assert await migrated.usage.count("usr_b") == 1


async def test_the_migration_goes_back_down(migrated: Store) -> None:
    await alembic(migrated.db, "downgrade", "0005")
    async with migrated.db.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM usage_records"))
    assert count == len(ROWS)
    await alembic(migrated.db, "upgrade", "head")
    assert await migrated.usage.count("usr_a") == 4
