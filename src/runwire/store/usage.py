"""The user's LLM-usage records (their imported workload)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, insert, select

from runwire.store.database import Database
from runwire.store.records import UsageRecord
from runwire.store.schema import usage_records

__all__ = ["UsageStore"]

_BATCH = 2000


class UsageStore:
    def __init__(self, db: Database) -> None:
        self._db = db

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
        return len(records)

    async def count(self, user_id: str) -> int:
        async with self._db.connect() as conn:
            value = await conn.scalar(
                select(func.count())
                .select_from(usage_records)
                .where(usage_records.c.user_id == user_id)
            )
        return int(value or 0)

    async def records_of(self, user_id: str, limit: int = 500_000) -> list[UsageRecord]:
        cols = [c for c in usage_records.c if c.name not in ("pk", "user_id")]
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(*cols)
                .where(usage_records.c.user_id == user_id)
                .order_by(usage_records.c.timestamp)
                .limit(limit)
            )
            return [UsageRecord(**r._mapping) for r in rows]
