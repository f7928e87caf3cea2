"""The user's LLM-usage records (their imported workload), in batches they can delete.

Imports are idempotent per record: each record is stored under a key made from its content and
from how many equal records came before it in the same import (:class:`RecordKeys`), unique per
user, so importing a file again adds nothing, and an import overlapping an earlier one adds only
what is new. Two equal calls in one file stay two records. Every import that adds records is a
batch (``usage_batches``, ``store/usage_batches.py``), and a user can delete one batch or all of
their records.

Writes go in slices of :data:`SLICE` records, each its own transaction (one multi-row statement
a slice) through :meth:`Database.write_off_loop`: the event loop's thread only keys and packs a
slice (about a millisecond) and never waits for the database's disk, and other users' runs write
between the slices. A failed import keeps the slices it stored; importing the file again
completes it.

Each import also keeps the summaries (``store/usage_summaries.py``): its slices' new records
(known from ``RETURNING``) are folded in a worker thread as they are stored, and sealed after its
last slice. A delete forgets the summaries of the batches it deletes first, and rebuilds the
user's at its end. A reader that finds no summary at the current version reads the records.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import chain
from typing import Any

from sqlalchemy import Connection, func, select

from runwire.domain.clock import now_ms
from runwire.domain.ids import new_id
from runwire.domain.usage import UsageRecord, UsageView
from runwire.errors import Conflict, NotFound
from runwire.store.database import Database
from runwire.store.record_keys import RecordKeys
from runwire.store.schema import usage_records
from runwire.store.usage_batches import UsageBatch, UsageBatches
from runwire.store.usage_cache import UsageCache
from runwire.store.usage_summaries import Folding, UsageSummaries
from runwire.store.usage_versions import UsageVersions

__all__ = ["SLICE", "Added", "UsageStore"]

SLICE = 250
"""Records written (or deleted) per transaction: keying and packing them takes the event loop
about a millisecond, and writing them (off the loop) about as long."""

_RECORD_FIELDS = (
    "timestamp",
    "provider",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "cost_usd",
    "status",
    "prompt_hash",
    "feature",
)
_COLUMNS = [usage_records.c[name] for name in _RECORD_FIELDS]
_INSERTED = ("user_id", "batch_id", "record_key", *_RECORD_FIELDS)


@dataclass(frozen=True, slots=True)
class Added:
    """What an import did: the batch it made (None when every record was already present),
    how many records were new, and how many were stored already."""

    batch_id: str | None
    new: int
    already_present: int


class UsageStore:
    """Usage records per user, with a small cache of recently read data.

    Every run of the agents reads its user's data (:meth:`usage_of`): the digest of the summary
    kept with it, and the records only if a tool needs what the digest does not answer; reading
    and building thousands of rows each time would cost more than the analysis. The cache is
    checked against the database on every read (the user's usage version, which every write
    bumps in its own transaction: one key lookup), so data imported through another process or
    node is never served stale. The cache holds at most ``cached_records`` records (about 150
    bytes each; a view counts its records whether read yet or not), least recently read users
    first out.
    """

    def __init__(self, db: Database, cached_records: int = 1_000_000) -> None:
        self._db = db
        self._cache = UsageCache(cached_records)
        self._versions = UsageVersions(db)
        self._summaries = UsageSummaries(db, self._versions)
        self._batches = UsageBatches(db)
        self._rows_per_statement = max(1, min(SLICE, db.max_parameters // len(_INSERTED)))
        self._statements: dict[int, str] = {}  # INSERT text by number of rows

    async def add(
        self,
        user_id: str,
        records: Sequence[UsageRecord],
        *,
        source: str = "import",
        name: str | None = None,
    ) -> Added:
        """Store the records not stored yet, as one new batch; say how many were new."""
        return await self._add(user_id, records, new_id("imp"), source, name)

    async def add_sample(self, user_id: str, records: Sequence[UsageRecord]) -> Added:
        """Store the generated sample as the user's one sample batch; if they have it already,
        add nothing and say how many records it holds."""
        batch_id = "smp_" + hashlib.sha256(user_id.encode()).hexdigest()[:32]
        made = await self._db.write(
            partial(self._batches.make, user_id, batch_id, "sample", None, now_ms())
        )
        if not made:
            return Added(batch_id, 0, await self._batches.count(batch_id))
        return await self._add(user_id, records, batch_id, "sample", None)

    async def _add(
        self,
        user_id: str,
        records: Sequence[UsageRecord],
        batch_id: str,
        source: str,
        name: str | None,
    ) -> Added:
        keys = RecordKeys()
        created = now_ms()
        new = 0
        folding = Folding()
        for start in range(0, len(records), SLICE):
            rows = [
                (
                    user_id,
                    batch_id,
                    keys(r),
                    r.timestamp,
                    r.provider,
                    r.model,
                    r.prompt_tokens,
                    r.completion_tokens,
                    r.latency_ms,
                    r.cost_usd,
                    r.status,
                    r.prompt_hash,
                    r.feature,
                )
                for r in records[start : start + SLICE]
            ]
            stored = await self._db.write_off_loop(
                partial(self._insert, user_id, (batch_id, source, name, created), rows, folding)
            )
            new += len(stored)
            if stored:
                await asyncio.to_thread(folding.added.fold, stored)
        await keys.forget()
        if folding.last is not None:
            await self._summaries.seal(user_id, batch_id, folding)
        if not new:
            # Every record was there already: no batch to list (or delete).
            await self._db.write(partial(self._batches.drop_if_empty, batch_id))
        return Added(batch_id if new else None, new, len(records) - new)

    def _insert(
        self,
        user_id: str,
        batch: tuple[str, str, str | None, int],
        rows: list[tuple[Any, ...]],
        folding: Folding,
        conn: Connection,
    ) -> list[tuple[int, UsageRecord]]:
        # The batch row first, in every slice: a delete of all the user's data that ran between
        # two slices took it away, and the slices after it still need it.
        self._batches.make(user_id, *batch, conn)
        by_key = {row[2]: row for row in rows}
        stored: list[tuple[int, UsageRecord]] = []
        step = self._rows_per_statement
        for start in range(0, len(rows), step):
            part = rows[start : start + step]
            params = tuple(chain.from_iterable(part))
            inserted = conn.exec_driver_sql(self._insert_sql(len(part)), params)
            stored.extend((pk, UsageRecord._make(by_key[key][3:])) for pk, key in inserted)
        if stored:
            folding.stored(self._versions.current(conn, user_id))
            # In the same transaction: whoever sees the new version sees the new records.
            self._versions.bump(conn, user_id)
        return stored

    def _insert_sql(self, rows: int) -> str:
        sql = self._statements.get(rows)
        if sql is None:
            sql = self._statements[rows] = (
                self._db.positional_insert(
                    usage_records.name, _INSERTED, skip_existing=True, rows=rows
                )
                # Which rows were new (and their pk, the store's order), to summarize them.
                + " RETURNING pk, record_key"
            )
        return sql

    async def batches(self, user_id: str) -> list[UsageBatch]:
        """The user's batches, newest first, each with how many records it holds now."""
        return await self._batches.of(user_id)

    async def delete(self, user_id: str, batch_id: str | None = None) -> int:
        """Delete one batch of the user's records (``batch_id``), or all of them (None); return
        how many records went. :class:`NotFound` if the batch is not the user's."""
        if batch_id is not None and await self._batches.owner(batch_id) != user_id:
            raise NotFound("no such usage batch")
        # First: the batches' summaries go unknown, so that no summary is made from them while
        # their records are going (an import's slice in between rebuilds the user's from them).
        await self._db.write(partial(self._summaries.forget, user_id, batch_id))
        deleted = 0
        while True:
            gone = await self._db.write_off_loop(partial(self._delete_slice, user_id, batch_id))
            deleted += gone
            if gone < SLICE:
                break
        await self._db.write(partial(self._delete_batches, user_id, batch_id))
        await self._summaries.rebuild(user_id)
        return deleted

    def _delete_slice(self, user_id: str, batch_id: str | None, conn: Connection) -> int:
        which = select(usage_records.c.pk).where(usage_records.c.user_id == user_id)
        if batch_id is not None:
            which = which.where(usage_records.c.batch_id == batch_id)
        gone = conn.execute(
            usage_records.delete().where(
                usage_records.c.pk.in_(which.limit(SLICE).scalar_subquery())
            )
        ).rowcount
        if gone:
            self._versions.bump(conn, user_id)
        return gone

    def _delete_batches(self, user_id: str, batch_id: str | None, conn: Connection) -> None:
        self._batches.delete(user_id, batch_id, conn)
        self._versions.bump(conn, user_id)

    async def digest_of(self, user_id: str) -> dict[str, Any] | None:
        """The digest of the summary of the user's records as they are now
        (:meth:`UsageSummary.digest`); None when there is none (their data holds batches stored
        before summaries, or is changing this moment)."""
        return (await self._summaries.digest_at(user_id))[1]

    async def count(self, user_id: str) -> int:
        async with self._db.connect() as conn:
            value = await conn.scalar(
                select(func.count())
                .select_from(usage_records)
                .where(usage_records.c.user_id == user_id)
            )
        return int(value or 0)

    async def usage_of(
        self, user_id: str, limit: int = 500_000, *, version: int | None = None
    ) -> UsageView:
        """The user's usage data as it is now (at most ``limit`` records, oldest first), its
        records read only when something needs them. ``version``: the user's usage version as
        the caller read it a moment ago in a transaction of its own (a run's, as it was stored
        and started): a cached view of it is then served without reading it again.

        When the store keeps a summary of exactly the current records, the view comes with its
        digest (``memo["usage_digest"]``) and no record: one row read, however many records, and
        a question the digest answers never reads one. Otherwise the records are read now. Either
        way the same view is handed out, with its memo, for as long as the data is unchanged.
        """
        if version is None:
            version = await self._db.read(partial(self._versions.current, user_id=user_id))
        cached = self._cache.get(user_id, version, limit)
        if cached is not None:
            return cached
        at, digest = await self._summaries.digest_at(user_id)
        if digest is not None and digest["calls"] <= limit:
            view = UsageView(digest["calls"], partial(self._read_at, user_id, at, limit))
            view.memo["usage_digest"] = digest
        else:
            at = version
            view = UsageView.of(await self._read_records(user_id, limit))
        self._cache.put(user_id, at, view)
        return view

    async def records_of(self, user_id: str, limit: int = 500_000) -> UsageView:
        """The user's records, oldest first (at most ``limit``), read."""
        return await (await self.usage_of(user_id, limit)).read()

    async def _read_at(self, user_id: str, version: int, limit: int) -> tuple[UsageRecord, ...]:
        """The user's records, if their data is still at ``version`` (that of the view's
        digest, which they must match); :class:`Conflict` if it changed meanwhile."""
        records = await self._read_records(user_id, limit)
        # Versions only grow, and every change bumps it in its own transaction: unchanged after
        # the (single-statement, so consistent) read means the rows are of that version.
        if await self._db.read(partial(self._versions.current, user_id=user_id)) != version:
            raise Conflict(
                "your usage data changed while this question was being answered; ask again"
            )
        return records

    async def _read_records(self, user_id: str, limit: int) -> tuple[UsageRecord, ...]:
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(*_COLUMNS)
                .where(usage_records.c.user_id == user_id)
                .order_by(usage_records.c.timestamp, usage_records.c.pk)
                .limit(limit)
            )
            # Off the event loop: building 4,000 records held it for 12-20 ms, and a burst of
            # users asking their first question of the day queued every other run behind it.
            return await asyncio.to_thread(_usage_rows, rows)


def _usage_rows(rows: Iterable[Sequence[Any]]) -> tuple[UsageRecord, ...]:
    make = UsageRecord._make  # the row's values, in the record's field order (_COLUMNS)
    return tuple(make(row) for row in rows)
