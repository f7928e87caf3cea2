"""UsageBatches on an in-memory SQLite database made from the schema: a batch is made once, counts
the records still in it, lists newest first with its count, belongs to its user, and is dropped
only when empty. (The store contract, tests/integration/test_store_contract.py, runs the imports
and deletes that use them on every backend.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

import pytest
from sqlalchemy import Connection

from runwire.store.database import Database
from runwire.store.schema import metadata, usage_records, users
from runwire.store.usage_batches import UsageBatch, UsageBatches


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    async with Database.open("sqlite+aiosqlite://") as database:
        async with database.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            for user in ("usr_a", "usr_b"):
                await conn.execute(
                    users.insert().values(
                        id=user, email=f"{user}@x", password_hash="", created_at=0
                    )
                )
        yield database


def _records(batch_id: str, count: int, conn: Connection) -> None:
    conn.execute(
        usage_records.insert(),
        [
            {
                "user_id": "usr_a",
                "batch_id": batch_id,
                "record_key": f"{batch_id}-{i}",
                "timestamp": i,
                "provider": "openai",
                "model": "gpt-4o",
                "prompt_tokens": 1,
                "completion_tokens": 1,
                "latency_ms": 10,
                "cost_usd": 0.0,
                "status": "success",
            }
            for i in range(count)
        ],
    )


async def test_a_batch_is_made_once_and_counts_the_records_in_it(db: Database) -> None:
    batches = UsageBatches(db)
    assert await db.write(partial(batches.make, "usr_a", "imp_1", "import", "a.jsonl", 1_000))
    # Made again (the next slice of the same import): nothing new, and the first row stays.
    assert not await db.write(partial(batches.make, "usr_a", "imp_1", "import", "b.jsonl", 2_000))
    await db.write(partial(_records, "imp_1", 3))
    assert await batches.count("imp_1") == 3
    assert await batches.count("imp_none") == 0
    assert await batches.of("usr_a") == [UsageBatch("imp_1", "import", "a.jsonl", 1_000, 3)]
    assert await batches.owner("imp_1") == "usr_a"
    assert await batches.owner("imp_none") is None


async def test_batches_list_newest_first_each_with_its_count_and_only_the_users(
    db: Database,
) -> None:
    batches = UsageBatches(db)
    await db.write(partial(batches.make, "usr_a", "imp_old", "import", None, 1_000))
    await db.write(partial(batches.make, "usr_a", "smp_a", "sample", None, 2_000))
    await db.write(partial(batches.make, "usr_b", "imp_b", "import", None, 3_000))
    await db.write(partial(_records, "imp_old", 2))
    listed = await batches.of("usr_a")
    assert [(b.id, b.records) for b in listed] == [("smp_a", 0), ("imp_old", 2)]
    assert listed[0].public() == {
        "id": "smp_a",
        "source": "sample",
        "name": None,
        "records": 0,
        "created_at": "1970-01-01T00:00:02.000Z",
    }
    assert await batches.of("usr_c") == []


async def test_only_an_empty_batch_is_dropped_and_a_delete_keeps_to_its_user(
    db: Database,
) -> None:
    batches = UsageBatches(db)
    for created, batch_id in enumerate(("imp_1", "imp_2", "imp_3")):
        await db.write(partial(batches.make, "usr_a", batch_id, "import", None, created))
    await db.write(partial(batches.make, "usr_b", "imp_b", "import", None, 1_000))
    await db.write(partial(_records, "imp_1", 1))
    await db.write(partial(batches.drop_if_empty, "imp_1"))
    await db.write(partial(batches.drop_if_empty, "imp_2"))
    assert [b.id for b in await batches.of("usr_a")] == ["imp_3", "imp_1"]
    await db.write(partial(batches.delete, "usr_a", "imp_3"))
    assert [b.id for b in await batches.of("usr_a")] == ["imp_1"]
    # Another user's batch named with this user's id is not deleted.
    await db.write(partial(batches.delete, "usr_a", "imp_b"))
    assert [b.id for b in await batches.of("usr_b")] == ["imp_b"]
    await db.write(partial(batches.delete, "usr_b", None))
    assert await batches.of("usr_b") == []
    assert [b.id for b in await batches.of("usr_a")] == ["imp_1"]
