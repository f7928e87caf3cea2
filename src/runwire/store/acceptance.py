"""Accepting a message: what it stores and decides, and on PostgreSQL the one statement that
does all of it after the user's row is locked.

A message is stored with the run it asks for, in one transaction, after the user's row is locked
(accepts for one user take turns, each counting the runs of those before it). What the
transaction reads and writes:

- the user's unfinished runs before it (the caller's check refuses the message on them: the
  per-user cap, the concurrency policy), and the thread's among them (the run waits for those);
- the thread: touched (an existing one, whose row that locks) or inserted (a new one);
- the message, and its run: stored ``running`` (claimed) when the caller asked to claim it and
  nothing of its thread is unfinished, else ``queued``;
- the user's usage version, so that the run's first read of the user's data needs no read of
  its own to know whether a cached view is current (store/usage.py).

On SQLite these are one statement each, on the event loop's thread (microseconds apiece). On
PostgreSQL each statement is a round trip, so after the lock (a statement of its own: a
statement's snapshot is taken when it starts, and the runs of the accept it waited for must be
seen) everything else is one statement (:func:`accept_statement`): the writes as data-modifying
CTEs, the reads in its select. Every part of a statement sees the rows as they were before it,
so the unfinished runs it reads are those before the new one, and the claim it decides in the
run's insert agrees with them. The caller's check runs on what the statement read, after it; a
refusal raises and the transaction (or the job's savepoint) is rolled back: nothing is stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Boolean,
    Insert,
    Select,
    Update,
    and_,
    bindparam,
    case,
    exists,
    insert,
    literal,
    null,
    or_,
    select,
    true,
)

from runwire.domain.run_status import RunStatus
from runwire.store.records import Message, ThreadRecord
from runwire.store.run_order import arrival
from runwire.store.schema import runs, threads, usage_versions

__all__ = ["Acceptance", "accept_statement"]


@dataclass(frozen=True, slots=True)
class Acceptance:
    """What accepting a message stored and found."""

    thread: ThreadRecord
    message: Message
    claimed: bool  # the run was claimed as it was stored (it is running, started at claim_at)
    waiting: list[str]  # the thread's unfinished runs before it, in the order they start
    # The user's usage version as the run was stored (0 before any data): a cached view of
    # that version is current for a run that starts at once.
    usage_version: int = 0


def accept_statement(message: Insert, touch: Update | None) -> Select[tuple[str, int, str, str]]:
    """PostgreSQL: the message ``message`` (``insert_message_statement``) and its run stored,
    and the thread touched (``touch``, of ``:thread_id``) or, without it, inserted (parameters
    ``t_*``), in one statement. Its rows: the run's stored status and the user's usage version,
    each with one of the user's unfinished runs before it as ``(id, thread_id)`` in the order
    they start (one row of NULLs when there are none).

    The run (parameters ``r_*``) is stored ``running`` from ``:r_started_at`` when
    ``:r_claim`` and none of the thread's runs is unfinished, else ``queued``."""
    thread_id: BindParameter[str] = bindparam("thread_id")
    user_id: BindParameter[str] = bindparam("user_id")
    busy = runs.alias("busy")
    claim = and_(
        bindparam("r_claim", type_=Boolean),
        ~exists(
            select(busy.c.id).where(
                busy.c.thread_id == thread_id,
                or_(busy.c.status == RunStatus.QUEUED, busy.c.status == RunStatus.RUNNING),
            )
        ),
    )
    stored_run = (
        insert(runs)
        .values(
            id=bindparam("r_id"),
            thread_id=thread_id,
            user_id=user_id,
            message_id=bindparam("m_id"),
            status=case(
                (claim, literal(RunStatus.RUNNING.value)), else_=literal(RunStatus.QUEUED.value)
            ),
            started_at=case((claim, bindparam("r_started_at", type_=BigInteger)), else_=null()),
            created_at=bindparam("now"),
            last_seq=0,
            epoch=bindparam("r_epoch"),
        )
        .returning(runs.c.status)
        .cte("stored_run")
    )
    if touch is None:
        thread = insert(threads).values(
            id=thread_id,
            user_id=user_id,
            title=bindparam("t_title"),
            created_at=bindparam("now"),
            updated_at=bindparam("now"),
        )
        thread_cte = thread.cte("new_thread")
    else:
        thread_cte = touch.cte("touched")
    mine = (
        select(runs.c.id, runs.c.thread_id, arrival(runs).label("arrived"))
        .where(
            runs.c.user_id == user_id,
            or_(runs.c.status == RunStatus.QUEUED, runs.c.status == RunStatus.RUNNING),
        )
        .subquery("mine")
    )
    version = (
        select(usage_versions.c.version)
        .where(usage_versions.c.user_id == user_id)
        .scalar_subquery()
    )
    return (
        select(stored_run.c.status, version, mine.c.id, mine.c.thread_id)
        .select_from(stored_run.outerjoin(mine, true()))
        .order_by(mine.c.arrived)
        .add_cte(thread_cte, message.cte("stored_message"))
    )
