"""The user's LLM-usage records (their imported workload)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from runwire.store.database import Database
from runwire.store.records import UsageRecord, UsageSet
from runwire.store.schema import usage_records, usage_versions

__all__ = ["UsageStore"]

_BATCH = 2000


_COLUMNS = [c for c in usage_records.c if c.name not in ("pk", "user_id")]


class UsageStore:
    """Usage records per user, with a small cache of recently read sets.

    Every run of the agents reads its user's whole set; reading and building thousands of rows
    each time would cost more than the analysis. The cache is checked against the database on
    every read (the user's usage version, which every import bumps in its own transaction: one
    key lookup), so a set imported through another process or node is never served stale. The
    cache holds at most ``cached_records`` records (about 150 bytes each), least recently read
    users first out.
    """

    def __init__(self, db: Database, cached_records: int = 1_000_000) -> None:
        self._db = db
        self._cached_records = cached_records
        self._cached_total = 0
        self._cache: OrderedDict[str, tuple[int, UsageSet]] = OrderedDict()
        self._version = db.prepare(
            select(usage_versions.c.version).where(usage_versions.c.user_id == bindparam("user_id"))
        )
        dialect_insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
        fresh = dialect_insert(usage_versions).values(user_id=bindparam("user_id"), version=1)
        self._bump = fresh.on_conflict_do_update(
            index_elements=[usage_versions.c.user_id],
            set_={"version": usage_versions.c.version + 1},
        )

    async def add(self, user_id: str, records: Sequence[UsageRecord]) -> int:
        async with self._db.begin() as conn:
            for start in range(0, len(records), _BATCH):
                chunk = records[start : start + _BATCH]
                await conn.execute(
                    insert(usage_records),
                    [
                        {
                            "user_id": user_id,
                            "timestamp": r.timestamp,
                            "provider": r.provider,
                            "model": r.model,
                            "prompt_tokens": r.prompt_tokens,
                            "completion_tokens": r.completion_tokens,
                            "latency_ms": r.latency_ms,
                            "cost_usd": r.cost_usd,
                            "status": r.status,
                            "prompt_hash": r.prompt_hash,
                            "feature": r.feature,
                        }
                        for r in chunk
                    ],
                )
            # In the same transaction: whoever sees the new version sees the new records.
            await conn.execute(self._bump, {"user_id": user_id})
        return len(records)

    async def count(self, user_id: str) -> int:
        async with self._db.connect() as conn:
            value = await conn.scalar(
                select(func.count())
                .select_from(usage_records)
                .where(usage_records.c.user_id == user_id)
            )
        return int(value or 0)

    async def records_of(self, user_id: str, limit: int = 500_000) -> UsageSet:
        """The user's records, oldest first (at most ``limit``)."""
        version = await self._db.read(
            lambda conn: self._version.run(conn, user_id=user_id).scalar()
        )
        key = int(version or 0)
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] == key and len(cached[1]) <= limit:
            self._cache.move_to_end(user_id)
            return cached[1]
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(*_COLUMNS)
                .where(usage_records.c.user_id == user_id)
                .order_by(usage_records.c.timestamp, usage_records.c.pk)
                .limit(limit)
            )
            records = UsageSet(UsageRecord(*row) for row in rows)
        old = self._cache.pop(user_id, None)
        if old is not None:
            self._cached_total -= len(old[1])
        self._cache[user_id] = (key, records)
        self._cached_total += len(records)
        while self._cached_total > self._cached_records and len(self._cache) > 1:
            _, (_, dropped) = self._cache.popitem(last=False)
            self._cached_total -= len(dropped)
        return records
