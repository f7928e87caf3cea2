"""A run's numbered events, as kept for history and resume: written a batch at a time, read
back for a replay, trimmed once the run is old.

A stored event body keeps the epoch it was written under; reads give every event the run's
*current* epoch, so what is served always names the numbering it belongs to. Events are stored in
blocks (``store/event_blocks.py``: how rows are built and read back).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select, update

from runwire.domain.run_status import FINAL_STATUSES
from runwire.events.model import RunEvent
from runwire.store.database import Database
from runwire.store.event_blocks import blocks, replay
from runwire.store.schema import run_events, runs

__all__ = ["EventLog"]


class EventLog:
    """The ``run_events`` table: what :class:`~runwire.store.run_log.RunLog` (its subclass, the
    one the store hands out) keeps of each run's events."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._insert_events = db.positional_insert(
            run_events.name,
            [c.name for c in run_events.columns],
            # A node that lost a run's lease may still store events it published before it knew;
            # the node that took the run over has numbered its own, and one batch's clash must
            # not cost the other runs in it their events.
            skip_existing=True,
        )
        # PostgreSQL: the rows as one array a column, one execution for all of them.
        self._insert_event_columns = db.columns_insert(run_events, skip_existing=True)

    async def append_events(self, events: Sequence[RunEvent]) -> None:
        """Store a batch of events in one transaction (one round trip per batch), each run's
        consecutive events in one row."""
        if not events:
            return
        rows = blocks(events)
        if self._insert_event_columns is not None:
            statement = self._insert_event_columns
            columns = tuple(list(column) for column in zip(*rows, strict=True))
            await self._db.write(
                lambda conn: conn.exec_driver_sql(statement, columns), one_statement=True
            )
            return
        statement = self._insert_events
        await self._db.write(lambda conn: conn.exec_driver_sql(statement, rows), one_statement=True)

    async def events_after(
        self, run_id: str, after_seq: int, limit: int = 100_000
    ) -> list[RunEvent]:
        """Stored events with ``seq > after_seq`` in order (at most ``limit``), each once and
        under the run's current epoch."""
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(run_events.c.body, run_events.c.last_seq, runs.c.epoch)
                .join(runs, runs.c.id == run_events.c.run_id)
                .where(
                    run_events.c.run_id == run_id,
                    func.coalesce(run_events.c.last_seq, run_events.c.seq) > after_seq,
                )
                .order_by(run_events.c.seq)
            )
            events = replay(rows, after_seq, limit)
        return events

    async def trim_ended_before(self, cutoff: int, *, now: int, batch: int = 500) -> int:
        """Delete the stored events of runs that ended before ``cutoff`` (epoch ms) and mark each
        run trimmed at ``now``; the runs and their messages stay. Returns how many runs.

        One transaction per ``batch`` runs, so the write lock is never held for long.
        """
        trimmed = 0
        while True:
            async with self._db.begin() as conn:
                ids = list(
                    (
                        await conn.execute(
                            select(runs.c.id)
                            .where(
                                runs.c.ended_at < cutoff,
                                runs.c.trimmed_at.is_(None),
                                runs.c.status.in_(FINAL_STATUSES),
                            )
                            .limit(batch)
                        )
                    ).scalars()
                )
                if not ids:
                    return trimmed
                await conn.execute(delete(run_events).where(run_events.c.run_id.in_(ids)))
                await conn.execute(update(runs).where(runs.c.id.in_(ids)).values(trimmed_at=now))
            trimmed += len(ids)
            if len(ids) < batch:
                return trimmed
