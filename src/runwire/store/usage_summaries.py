"""The summaries kept of each batch and each user's usage records (:class:`UsageSummary`), and
an import's folding of what it adds into them.

An import folds its slices' new records as they are stored (:class:`Folding`); after its last
slice, :meth:`UsageSummaries.seal` writes the batch's summary and the user's (the one the import
started from, merged with what it added), guarded by the version the last slice made, so a
summary is of exactly the records of its version. Where that cannot be known (another write of
the user's data came between the slices, or the summary it started from is gone),
:meth:`UsageSummaries.rebuild` makes the user's as the merge of their batches' summaries:
from summaries, not records; none when one batch's is unknown.

A delete cannot take records out of a summary exactly (the first and last call, the first
occurrence of a prompt are not undone by subtracting), so it forgets the summaries of the
batches it deletes first (:meth:`UsageSummaries.forget`) and at its end rebuilds the user's from
the batches left. Where a batch's summary is unknown (stored before summaries, being deleted, or
imported while another import of the same user ran), the user has no summary until it is
deleted. A reader that finds no summary at the current version reads the records (in the moment
between an import's last slice and its seal, too).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from runwire.store.database import Database
from runwire.store.schema import usage_batches, usage_summaries, usage_versions
from runwire.store.summary import FORMAT, UsageSummary
from runwire.store.usage_versions import UsageVersions

__all__ = ["EMPTY", "EMPTY_DIGEST", "Folding", "UsageSummaries", "merged", "merged_texts"]

EMPTY = UsageSummary().dumps()
"""The summary of no records, as stored."""
EMPTY_DIGEST = UsageSummary().digest()
"""The digest of no records: that of a user who never had data."""


@dataclass(slots=True)
class Folding:
    """What one import has added so far, summarized, and whether the user's data changed only
    by it between its slices (each slice's bump follows the last one's)."""

    added: UsageSummary = field(default_factory=UsageSummary)
    before: int = 0  # the user's data version before the import's first new record
    last: int | None = None  # the version its latest slice with new records made
    alone: bool = True

    def stored(self, prior: int) -> None:
        """A slice stored new records, found the user's data at version ``prior`` and bumped
        it (in the slice's transaction)."""
        if self.last is None:
            self.before = prior
        elif prior != self.last:
            self.alone = False  # someone else changed the user's data in between
        self.last = prior + 1

    def base(self, kept_version: int | None, kept_body: str | None) -> str | None:
        """The user's summary this import's additions merge into, from the one kept
        (``kept_version`` and ``kept_body``, None when there is none): the one it started from,
        or the empty one for the user's first data; None when neither is there to merge into."""
        if kept_version == self.before and kept_body is not None:
            return kept_body
        if kept_version is None and self.before == 0:  # the user's first data
            return EMPTY
        return None


def merged(base: str, added: UsageSummary) -> tuple[str, str] | None:
    """``base`` (a stored summary) with ``added`` merged in, as the body and digest to store;
    None when ``base`` is of an older format."""
    summary = UsageSummary.loads(base)
    if summary is None:  # of an older format: rebuilt from the batches' instead
        return None
    if summary.body["calls"]:
        summary.merge(added)
    else:  # the user's first records (or first since deleting all): theirs is the batch's
        summary = added
    return summary.dumps(), orjson.dumps(summary.digest()).decode()


def merged_texts(known: list[str | None]) -> tuple[str, str] | None:
    """The merge of the batches' summaries; None when one is unknown (or of an older format)."""
    summary = UsageSummary()
    for text in known:
        part = None if text is None else UsageSummary.loads(text)
        if part is None:
            return None
        summary.merge(part)
    return summary.dumps(), orjson.dumps(summary.digest()).decode()


class UsageSummaries:
    """The summaries of ``db``'s usage records: sealed as imports end, rebuilt after deletes,
    read as the digest a run starts from."""

    def __init__(self, db: Database, versions: UsageVersions) -> None:
        self._db = db
        self._versions = versions
        dialect_insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
        keep = dialect_insert(usage_summaries).values(
            user_id=bindparam("user_id"),
            version=bindparam("version"),
            body=bindparam("body"),
            digest=bindparam("digest"),
        )
        # A new user's first question reads this: one prepared statement (one snapshot, on the
        # driver itself on an SQLite file) rather than the version's and then the summary's
        # through SQLAlchemy's execution, which cost that first question ~0.2 ms of the loop.
        self._digest_at = db.prepare(
            select(usage_versions.c.version, usage_summaries.c.version, usage_summaries.c.digest)
            .select_from(
                usage_versions.outerjoin(
                    usage_summaries, usage_summaries.c.user_id == usage_versions.c.user_id
                )
            )
            .where(usage_versions.c.user_id == bindparam("user_id"))
        )
        self._keep_summary = keep.on_conflict_do_update(
            index_elements=[usage_summaries.c.user_id],
            set_={
                "version": keep.excluded.version,
                "body": keep.excluded.body,
                "digest": keep.excluded.digest,
            },
        )

    async def seal(self, user_id: str, batch_id: str, folding: Folding) -> None:
        """After an import's last slice: its batch's summary, and the user's (from the one it
        started from plus what it added, when nobody else changed the user's data meanwhile;
        else from their batches' summaries).

        Merged and encoded in a worker thread (hundreds of kilobytes), then written in a short
        transaction only if the user's data is still at the version the last slice made: the
        summary is of exactly the records of that version. Not in the last slice's transaction:
        on PostgreSQL a write job runs on the event loop's thread.
        """
        async with self._db.connect() as conn:  # off the loop: the body is hundreds of kB
            version, kept_version, kept_body = await conn.run_sync(partial(self._kept, user_id))
        if not folding.alone or version != folding.last:
            await self.rebuild(user_id)
            return
        base = folding.base(kept_version, kept_body)
        batch = await asyncio.to_thread(folding.added.dumps)
        user = None if base is None else await asyncio.to_thread(merged, base, folding.added)
        last = folding.last

        def write(conn: Connection) -> bool:
            if self._versions.current(conn, user_id) != last:
                return False
            conn.execute(
                usage_batches.update().where(usage_batches.c.id == batch_id).values(summary=batch)
            )
            if user is not None:
                self._keep(user_id, last, *user, conn)
            return True

        # Off the loop: the two summaries are hundreds of kilobytes to write.
        if not await self._db.write_off_loop(write) or user is None:
            await self.rebuild(user_id)

    def _kept(self, user_id: str, conn: Connection) -> tuple[int, int | None, str | None]:
        version = self._versions.current(conn, user_id)
        row = conn.execute(
            select(usage_summaries.c.version, usage_summaries.c.body).where(
                usage_summaries.c.user_id == user_id
            )
        ).first()
        return (version, None, None) if row is None else (version, row[0], row[1])

    async def rebuild(self, user_id: str) -> None:
        """The user's summary as the merge of their batches' summaries (none if one is unknown),
        merged in a worker thread and written if their data has not changed meanwhile."""

        def read(conn: Connection) -> tuple[int, list[str | None]]:
            version = self._versions.current(conn, user_id)
            rows = conn.execute(
                select(usage_batches.c.summary).where(usage_batches.c.user_id == user_id)
            )
            return version, [known for (known,) in rows]

        async with self._db.connect() as conn:
            version, known = await conn.run_sync(read)
        texts = None if None in known else await asyncio.to_thread(merged_texts, known)

        def write(conn: Connection) -> None:
            if self._versions.current(conn, user_id) != version:
                return  # changed meanwhile: whoever changed it keeps the summary
            if texts is None:
                conn.execute(usage_summaries.delete().where(usage_summaries.c.user_id == user_id))
            else:
                self._keep(user_id, version, *texts, conn)

        await self._db.write_off_loop(write)

    def _keep(self, user_id: str, version: int, body: str, digest: str, conn: Connection) -> None:
        values = {"user_id": user_id, "version": version, "body": body, "digest": digest}
        conn.execute(self._keep_summary, values)

    def forget(self, user_id: str, batch_id: str | None, conn: Connection) -> None:
        """Make the summaries of the user's batch (``batch_id``), or of all their batches,
        unknown: before a delete takes their records, so no summary is made of them meanwhile."""
        which = usage_batches.update().where(usage_batches.c.user_id == user_id)
        if batch_id is not None:
            which = which.where(usage_batches.c.id == batch_id)
        conn.execute(which.values(summary=None))

    async def digest_at(self, user_id: str) -> tuple[int, dict[str, Any] | None]:
        """The user's version and the digest of their summary if it is of that version (that of
        no records for a user who never had data); None when there is none."""

        def read(conn: Connection) -> tuple[int, str | None]:
            row = self._digest_at.run(conn, user_id=user_id).first()
            if row is None:  # no version: the user never had data
                return 0, None
            version, kept_version, digest = row
            return version, (digest if kept_version == version else None)

        version, digest = await self._db.read(read)
        if digest is None:
            return version, (EMPTY_DIGEST if version == 0 else None)
        parsed: dict[str, Any] = orjson.loads(digest)
        return version, (parsed if parsed.get("format") == FORMAT else None)
