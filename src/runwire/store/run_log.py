"""Runs, as kept for the dispatcher, history and resume: accepted runs claimed in turn, each
one's end recorded with its reply in one transaction, and what its model and quality gate found.

Their numbered events are kept by the base class, :class:`~runwire.store.event_log.EventLog`
(``store/event_log.py``), so ``RunLog`` is the one repository of a run and all it wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    bindparam,
    exists,
    func,
    select,
    update,
)

from runwire.domain.clock import now_ms
from runwire.domain.run_status import UNFINISHED_STATUSES, RunStatus
from runwire.store.database import Database, Prepared
from runwire.store.event_log import EventLog
from runwire.store.message_rows import (
    insert_message_statement,
    message_params,
    touch_thread_statement,
)
from runwire.store.records import Message, RunRecord
from runwire.store.run_order import ahead_of, arrival, claim_statement, next_statement
from runwire.store.schema import runs, threads

__all__ = ["RunLog"]

# The claim's row, by position: a prepared statement's rows may be the driver's tuples.
_RUN_COLUMNS = tuple(column.name for column in runs.c)

_KEPT_COLUMNS = (
    runs.c.quality_score,
    runs.c.quality_outcome,
    runs.c.quality_reasons,
)


def _quality_values(verdict: Mapping[str, Any]) -> dict[str, Any]:
    """The quality gate's verdict (its ``score``, ``outcome`` and ``reasons``) as columns."""
    return {
        "quality_score": float(verdict["score"]),
        "quality_outcome": str(verdict["outcome"]),
        "quality_reasons": orjson.dumps(list(verdict["reasons"])).decode(),
    }


def _kept_params(quality: Mapping[str, Any] | None) -> dict[str, Any]:
    """The end statement's ``k_*`` parameters: each kept column's value, or None to leave it."""
    values = _quality_values(quality) if quality is not None else {}
    return {f"k_{column.name}": values.get(column.name) for column in _KEPT_COLUMNS}


class RunLog(EventLog):
    """The ``runs`` table, and (from :class:`EventLog`) their events in ``run_events``."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._claim = {
            order: db.prepare(claim_statement(in_order=order)) for order in (True, False)
        }
        self._next = db.prepare(next_statement())
        # Compiled once: the finish transaction runs for every run (see Database.prepare).
        self._insert_message = db.prepare(insert_message_statement())
        self._touch = db.prepare(touch_thread_statement())
        end = (
            update(runs)
            .where(runs.c.id == bindparam("run_id"))
            .values(
                status=bindparam("e_status"),
                started_at=bindparam("e_started_at"),
                ended_at=bindparam("e_now"),
                last_seq=bindparam("e_last_seq"),
                error_code=bindparam("e_error_code"),
                error_message=bindparam("e_error_message"),
                # What the run kept (its verdict), written with its end; a NULL leaves what is
                # there (kept by set_quality, or by another node's code).
                **{
                    column.name: func.coalesce(
                        bindparam(f"k_{column.name}", type_=column.type), column
                    )
                    for column in _KEPT_COLUMNS
                },
            )
        )
        self._end = db.prepare(end)
        # PostgreSQL: the whole finish as one statement, its writes in CTEs (one round trip
        # instead of four; see finish). Keyed by whether it stores a reply.
        self._finish_at_once: dict[bool, Prepared] | None = None
        if db.dialect == "postgresql":
            touch = update(threads).where(threads.c.id == bindparam("t_thread_id"))
            touch = touch.values(updated_at=bindparam("e_now"))
            ctes = [end.cte("ended")]
            at_once = {False: db.prepare(next_statement(ending=True).add_cte(*ctes))}
            ctes += [insert_message_statement().cte("reply"), touch.cte("touched")]
            at_once[True] = db.prepare(next_statement(ending=True).add_cte(*ctes))
            self._finish_at_once = at_once

        # Prepared: every run keeps a verdict, and building the statement each time was ~4% of
        # a server's CPU under load (docs/benchmarks.md, "Batched chunks").
        self._keep_quality = db.prepare(
            update(runs)
            .where(runs.c.id == bindparam("run_id"))
            .values(
                quality_score=bindparam("q_score"),
                quality_outcome=bindparam("q_outcome"),
                quality_reasons=bindparam("q_reasons"),
            )
        )

    async def finish(
        self,
        run_id: str,
        status: str,
        *,
        last_seq: int,
        started_at: int | None,
        error_code: str | None = None,
        error_message: str | None = None,
        reply: Message | None = None,
        thread_id: str | None = None,
        quality: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Record a run's end and, if it produced one, its reply message, in one transaction.

        With ``thread_id`` (the run's), also returns the thread's queued run that may start now
        that this one has ended, if any: read in the same transaction, so the node that ends a
        run can start the next without another round trip. ``quality`` (the verdict, as
        :meth:`set_quality` takes it) is kept with the run in the same statement; without it,
        what the run keeps stays."""
        now = now_ms()
        kept = _kept_params(quality)
        if self._finish_at_once is not None:
            return await self._finish_at_once_on_postgresql(
                run_id,
                status,
                now,
                last_seq,
                started_at,
                error_code,
                error_message,
                reply,
                thread_id,
                kept,
            )
        following_run = self._next

        insert_message, touch_thread, end_run = self._insert_message, self._touch, self._end

        def finish(conn: Connection) -> str | None:
            if reply is not None:
                insert_message.run(conn, **message_params(reply))
                touch_thread.run(conn, thread_id=reply.thread_id, now=now)
            end_run.run(
                conn,
                run_id=run_id,
                e_status=status,
                e_started_at=started_at,
                e_now=now,
                e_last_seq=last_seq,
                e_error_code=error_code,
                e_error_message=error_message,
                **kept,
            )
            if thread_id is None:
                return None
            following: str | None = following_run.run(conn, thread_id=thread_id).scalar()
            return following

        return await self._db.write(finish)

    async def _finish_at_once_on_postgresql(
        self,
        run_id: str,
        status: str,
        now: int,
        last_seq: int,
        started_at: int | None,
        error_code: str | None,
        error_message: str | None,
        reply: Message | None,
        thread_id: str | None,
        kept: dict[str, Any],
    ) -> str | None:
        """:meth:`finish` as one statement: the reply stored, the thread touched and the run
        ended in CTEs, and the thread's next run selected by the statement itself, which sees
        the rows as they were before it (so it looks past the run it ends). A statement is
        atomic: all of it takes effect, or none, as the transaction of four did. Without
        ``thread_id`` it selects nothing (``thread_id = NULL`` holds for no row)."""
        assert self._finish_at_once is not None
        params: dict[str, Any] = {
            "run_id": run_id,
            "thread_id": thread_id,
            "e_status": status,
            "e_started_at": started_at,
            "e_now": now,
            "e_last_seq": last_seq,
            "e_error_code": error_code,
            "e_error_message": error_message,
            **kept,
        }
        if reply is not None:
            params.update(message_params(reply), t_thread_id=reply.thread_id)
        statement = self._finish_at_once[reply is not None]

        def finish(conn: Connection) -> str | None:
            following: str | None = statement.run(conn, **params).scalar()
            return following

        return await self._db.write(finish, one_statement=True)

    async def set_model_usage(self, run_id: str, usage: Mapping[str, Any]) -> None:
        """Keep what the run's model turns took (``ModelUsage.public()``) with the run."""
        statement = (
            update(runs)
            .where(runs.c.id == run_id)
            .values(
                model_name=str(usage["model"])[:200],
                model_requests=usage["requests"],
                model_prompt_tokens=usage["prompt_tokens"],
                model_completion_tokens=usage["completion_tokens"],
                model_cost_usd=usage["cost_usd"],
            )
        )

        def write(conn: Connection) -> None:
            conn.execute(statement)

        await self._db.write(write, one_statement=True)

    async def set_quality(self, run_id: str, verdict: Mapping[str, Any]) -> None:
        """Keep the quality gate's verdict on the run's answer (its ``score``, ``outcome`` and
        ``reasons``, as the supervisor hands them over) with the run now (a run the executor
        runs keeps it with its end instead: ``finish``)."""
        values = _quality_values(verdict)
        params = {
            "run_id": run_id,
            "q_score": values["quality_score"],
            "q_outcome": values["quality_outcome"],
            "q_reasons": values["quality_reasons"],
        }
        keep = self._keep_quality

        def write(conn: Connection) -> None:
            keep.run(conn, **params)

        await self._db.write(write, one_statement=True)

    async def quality_metrics(self, user_id: str) -> dict[str, Any]:
        """What the quality gate found on ``user_id``'s answers: how many it checked, passed
        and replaced (and failed: offline answers it would have rejected), and by reason."""
        outcomes = (
            select(runs.c.quality_outcome, func.count())
            .where(runs.c.user_id == user_id, runs.c.quality_outcome.is_not(None))
            .group_by(runs.c.quality_outcome)
        )
        rejected = select(runs.c.quality_reasons).where(
            runs.c.user_id == user_id,
            runs.c.quality_outcome.is_not(None),
            runs.c.quality_outcome != "passed",
        )
        async with self._db.connect() as conn:
            counts = {str(k): int(n) for k, n in (await conn.execute(outcomes)).all()}
            reasons_rows = (await conn.execute(rejected)).scalars().all()
        by_reason: dict[str, int] = {}
        for text in reasons_rows:
            for reason in {r["reason"] for r in orjson.loads(text or "[]")}:
                by_reason[reason] = by_reason.get(reason, 0) + 1
        return {
            "checked": sum(counts.values()),
            "passed": counts.get("passed", 0),
            "replaced": counts.get("replaced", 0),
            "failed": counts.get("failed", 0),
            "by_reason": dict(sorted(by_reason.items())),
        }

    async def claim(self, run_id: str, *, now: int, in_order: bool = True) -> RunRecord | None:
        """Move a queued run to ``running`` (started at ``now``) and return it; None when it is
        not queued any more, or (``in_order``) an earlier run of its thread is unfinished.

        The one decision of which node runs a run: a compare-and-set, so of any number of nodes
        claiming at once one wins, and a thread's runs start one at a time in arrival order.
        ``in_order=False`` claims a run out of turn only to close it (stopped while queued).
        """
        statement = self._claim[in_order]

        def claim(conn: Connection) -> RunRecord | None:
            row = statement.run(conn, run_id=run_id, now=now).first()
            return RunRecord(**dict(zip(_RUN_COLUMNS, row, strict=True))) if row else None

        return await self._db.write(claim, one_statement=True)

    async def by_id(self, run_id: str) -> RunRecord | None:
        """The run, whoever's it is (for the nodes' own bookkeeping, never for a client)."""
        async with self._db.connect() as conn:
            row = (await conn.execute(select(runs).where(runs.c.id == run_id))).first()
        return RunRecord(**row._mapping) if row else None

    async def running_ids(self) -> list[str]:
        """Every run some node has claimed and not ended."""
        async with self._db.connect() as conn:
            return list(
                (
                    await conn.execute(select(runs.c.id).where(runs.c.status == RunStatus.RUNNING))
                ).scalars()
            )

    async def ready(
        self, *, created_before: int, thread_id: str | None = None, limit: int = 500
    ) -> list[RunRecord]:
        """Queued runs that may start now (no earlier run of their thread is unfinished),
        accepted before ``created_before``, oldest first; of one thread if ``thread_id``."""
        query = select(runs).where(
            runs.c.status == RunStatus.QUEUED,
            runs.c.created_at < created_before,
            ~exists(ahead_of(runs)),
        )
        if thread_id is not None:
            query = query.where(runs.c.thread_id == thread_id)
        async with self._db.connect() as conn:
            rows = await conn.execute(query.order_by(arrival(runs)).limit(limit))
            return [RunRecord(**r._mapping) for r in rows]

    async def unfinished_on_thread(self, thread_id: str) -> list[str]:
        """The thread's queued and running runs, in the order they start."""
        async with self._db.connect() as conn:
            return list(
                (
                    await conn.execute(
                        select(runs.c.id)
                        .where(
                            runs.c.thread_id == thread_id, runs.c.status.in_(UNFINISHED_STATUSES)
                        )
                        .order_by(arrival(runs))
                    )
                ).scalars()
            )

    async def unfinished_count(self, user_id: str) -> int:
        """How many of the user's runs are queued or running, on any node."""
        async with self._db.connect() as conn:
            return int(
                (
                    await conn.execute(
                        select(func.count())
                        .select_from(runs)
                        .where(runs.c.user_id == user_id, runs.c.status.in_(UNFINISHED_STATUSES))
                    )
                ).scalar_one()
            )

    async def get(self, user_id: str, run_id: str) -> RunRecord | None:
        """The run if it exists and is ``user_id``'s; otherwise None."""
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    select(runs).where(runs.c.id == run_id, runs.c.user_id == user_id)
                )
            ).first()
        return RunRecord(**row._mapping) if row else None

    async def runs_of_thread(self, thread_id: str) -> list[RunRecord]:
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(runs).where(runs.c.thread_id == thread_id).order_by(runs.c.created_at)
            )
            return [RunRecord(**r._mapping) for r in rows]

    async def unfinished(self) -> list[RunRecord]:
        async with self._db.connect() as conn:
            rows = await conn.execute(select(runs).where(runs.c.status.in_(UNFINISHED_STATUSES)))
            return [RunRecord(**r._mapping) for r in rows]

    async def set_epoch(self, run_id: str, epoch: str) -> None:
        """Give the run a new epoch: positions clients hold under the old one become void."""
        async with self._db.begin() as conn:
            await conn.execute(update(runs).where(runs.c.id == run_id).values(epoch=epoch))
