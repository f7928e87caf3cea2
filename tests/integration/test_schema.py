"""The migrations build exactly the schema the code declares (store/schema.py)."""

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from runwire.store.schema import metadata
from runwire.store.store import Store


async def test_migrations_match_the_declared_schema(store: Store) -> None:
    def diff(sync_conn: Any) -> list[Any]:
        context = MigrationContext.configure(sync_conn, opts={"render_as_batch": True})
        return list(compare_metadata(context, metadata))

    async with store.db.connect() as conn:
        assert await conn.run_sync(diff) == []
    current, head = await store.db.schema_revision()
    assert current == head
