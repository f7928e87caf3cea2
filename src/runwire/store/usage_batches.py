"""The batches of a user's usage records: what each import (or the sample) added, as one row of
``usage_batches`` its records point to, so that the user can list them and delete one.

A batch row is made by the import that adds to it (again in every slice it writes: a delete of
all the user's data between two slices takes it away), and dropped again when the import added
nothing. How many records a batch holds is never kept: it is counted from the records, so a
batch's count is always that of the records still stored. The summaries kept in the rows
(``summary``) are :mod:`runwire.store.usage_summaries`' business, and when a batch is made or
deleted :class:`~runwire.store.usage.UsageStore`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite

from runwire.store.database import Database
from runwire.store.records import iso_from_ms
from runwire.store.schema import usage_batches, usage_records

__all__ = ["UsageBatch", "UsageBatches"]


@dataclass(frozen=True, slots=True)
class UsageBatch:
    """What one import (or the sample) added, and how many of its records are still stored."""

    id: str
    source: str
    name: str | None
    created_at: int
    records: int

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "name": self.name,
            "records": self.records,
            "created_at": iso_from_ms(self.created_at),
        }


class UsageBatches:
    """The ``usage_batches`` rows of every user: made, counted, listed and deleted. The methods
    taking a ``conn`` run inside the caller's write transaction (``Database.write``)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        dialect_insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
        self._batch = (
            dialect_insert(usage_batches)
            .values(
                id=bindparam("id"),
                user_id=bindparam("user_id"),
                source=bindparam("source"),
                name=bindparam("name"),
                created_at=bindparam("created_at"),
                summary=bindparam("summary"),
            )
            .on_conflict_do_nothing()
        )

    def make(
        self,
        user_id: str,
        batch_id: str,
        source: str,
        name: str | None,
        created: int,
        conn: Connection,
    ) -> bool:
        """Make the batch's row unless it exists; say whether it was made now."""
        values = {
            "id": batch_id,
            "user_id": user_id,
            "source": source,
            "name": name,
            "created_at": created,
            "summary": None,  # unknown until the import that makes it has stored all of it
        }
        return conn.execute(self._batch, values).rowcount == 1

    def drop_if_empty(self, batch_id: str, conn: Connection) -> None:
        """Delete the batch's row if no record is in it."""
        has_records = select(usage_records.c.pk).where(usage_records.c.batch_id == batch_id)
        conn.execute(
            usage_batches.delete().where(usage_batches.c.id == batch_id, ~has_records.exists())
        )

    def delete(self, user_id: str, batch_id: str | None, conn: Connection) -> None:
        """Delete the user's batch ``batch_id``'s row, or (None) every one of theirs."""
        which = usage_batches.delete().where(usage_batches.c.user_id == user_id)
        if batch_id is not None:
            which = which.where(usage_batches.c.id == batch_id)
        conn.execute(which)

    async def of(self, user_id: str) -> list[UsageBatch]:
        """The user's batches, newest first, each with how many records it holds now."""
        counts = (
            select(usage_records.c.batch_id, func.count().label("records"))
            .where(usage_records.c.user_id == user_id)
            .group_by(usage_records.c.batch_id)
            .subquery()
        )
        query = (
            select(
                usage_batches.c.id,
                usage_batches.c.source,
                usage_batches.c.name,
                usage_batches.c.created_at,
                func.coalesce(counts.c.records, 0),
            )
            .select_from(usage_batches.outerjoin(counts, counts.c.batch_id == usage_batches.c.id))
            .where(usage_batches.c.user_id == user_id)
            .order_by(usage_batches.c.created_at.desc(), usage_batches.c.id)
        )
        async with self._db.connect() as conn:
            rows = await conn.execute(query)
            return [UsageBatch(*row) for row in rows]

    async def owner(self, batch_id: str) -> str | None:
        """The id of the user whose batch it is; None when there is no such batch."""
        async with self._db.connect() as conn:
            return await conn.scalar(
                select(usage_batches.c.user_id).where(usage_batches.c.id == batch_id)
            )

    async def count(self, batch_id: str) -> int:
        """How many records the batch holds."""
        async with self._db.connect() as conn:
            value = await conn.scalar(
                select(func.count())
                .select_from(usage_records)
                .where(usage_records.c.batch_id == batch_id)
            )
        return int(value or 0)
