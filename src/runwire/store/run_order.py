"""The order of a thread's runs: one at a time, in the order their messages arrived, whichever
node runs them. The statements here are shared by accepting a message (which may claim its run in
the same transaction) and by claiming a queued run later."""

from __future__ import annotations

from sqlalchemy import ScalarSelect, Select, Update, and_, bindparam, exists, or_, select, update
from sqlalchemy.sql.selectable import NamedFromClause

from runwire.domain.run_status import RunStatus
from runwire.store.schema import messages, runs

__all__ = ["ahead_of", "arrival", "claim_statement", "next_statement", "unfinished_statement"]


def arrival(run: NamedFromClause) -> ScalarSelect[int]:
    """Where ``run``'s message stands in its thread: messages are numbered as they are stored
    (``pk``), so this is the order in which the thread's messages arrived, on every node, even
    within one millisecond."""
    message = messages.alias(f"{run.name}_message")
    # Correlated to wherever ``run`` comes from, however deeply this is nested.
    return (
        select(message.c.pk)
        .where(message.c.id == run.c.message_id)
        .correlate_except(message)
        .scalar_subquery()
    )


def ahead_of(run: NamedFromClause, *, ending: bool = False) -> Select[tuple[str]]:
    """Unfinished runs of ``run``'s thread that come before it: running, or queued for a
    message that arrived earlier. ``ending``: but the run ``:run_id``, which the same statement
    ends (see :func:`next_statement`)."""
    other = runs.alias("ahead")
    conditions = [other.c.thread_id == run.c.thread_id, other.c.id != run.c.id]
    if ending:
        conditions.append(other.c.id != bindparam("run_id"))
    return select(other.c.id).where(
        *conditions,
        or_(
            other.c.status == RunStatus.RUNNING,
            and_(other.c.status == RunStatus.QUEUED, arrival(other) < arrival(run)),
        ),
    )


def claim_statement(*, in_order: bool = True) -> Update:
    """Move the queued run ``:run_id`` to ``running`` (started at ``:now``) if (``in_order``)
    no earlier run of its thread is unfinished; returns the run's row when it did. A
    compare-and-set: of any number of nodes claiming at once one wins. (Accepting a message
    decides the same without this statement: it stores the run already running when, with the
    thread's row locked, none of the thread's runs is unfinished.)"""
    conditions = [runs.c.id == bindparam("run_id"), runs.c.status == RunStatus.QUEUED]
    if in_order:
        conditions.append(~exists(ahead_of(runs)))
    return (
        update(runs)
        .where(*conditions)
        .values(status=RunStatus.RUNNING, started_at=bindparam("now"))
        .returning(*runs.c)
    )


def unfinished_statement() -> Select[tuple[str, str]]:
    """The queued and running runs of the user ``:user_id`` as ``(id, thread_id)``, in the
    order they start."""
    return (
        select(runs.c.id, runs.c.thread_id)
        .where(
            runs.c.user_id == bindparam("user_id"),
            or_(runs.c.status == RunStatus.QUEUED, runs.c.status == RunStatus.RUNNING),
        )
        .order_by(arrival(runs))
    )


def next_statement(*, ending: bool = False) -> Select[tuple[str]]:
    """The queued run of the thread ``:thread_id`` that may start now, if any.

    ``ending``: as if the run ``:run_id`` had ended, for a statement that ends it in a CTE of
    its own: the statement's parts all see the rows as they were before it, where that run is
    still unfinished."""
    return (
        select(runs.c.id)
        .where(
            runs.c.thread_id == bindparam("thread_id"),
            runs.c.status == RunStatus.QUEUED,
            *([runs.c.id != bindparam("run_id")] if ending else []),
            ~exists(ahead_of(runs, ending=ending)),
        )
        .order_by(arrival(runs))
        .limit(1)
    )
