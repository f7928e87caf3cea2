"""Group commit: write jobs queued while one transaction runs go together into the next.

The transaction's fixed costs (taking SQLite's one write lock; ``BEGIN`` and ``COMMIT`` round
trips to PostgreSQL) are paid once for every job queued meanwhile; a job that fails is undone
alone (docs/decisions.md, "The hot writes share SQLite transactions", "PostgreSQL groups them
too"). The SQLite writer is in store/sqlite_loop.py; the PostgreSQL one is here.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["GroupWriter", "Job", "OneStatement", "PostgresWriter", "run_jobs"]

Job = tuple[Callable[[Connection], Any], "asyncio.Future[Any]"]


class OneStatement:
    """A write job that runs one statement (see ``one_statement`` of :meth:`Database.write`)."""

    __slots__ = ("_job",)

    def __init__(self, job: Callable[[Connection], Any]) -> None:
        self._job = job

    def __call__(self, conn: Connection) -> Any:
        return self._job(conn)


class GroupWriter(ABC):
    """Write jobs queued in :attr:`pending`, run together in one transaction (group commit):
    the transaction's fixed costs (taking SQLite's one write lock; ``BEGIN`` and ``COMMIT``
    round trips to PostgreSQL) are paid once for every job queued meanwhile."""

    MAX_JOBS = 500  # per transaction

    def __init__(self) -> None:
        self.pending: list[Job] = []

    async def run_pending(self) -> None:
        """Run the jobs queued so far in one transaction and settle their futures; call with
        the database's write lock held."""
        while self.pending:
            batch = self.pending[: self.MAX_JOBS]
            del self.pending[: self.MAX_JOBS]
            ran = self._start(batch)
            try:
                outcomes = await asyncio.shield(ran)
            except asyncio.CancelledError:
                # The transaction runs to its end whatever happens here: the caller holds the
                # write lock until then, and the other jobs of the batch are not its to cancel.
                await asyncio.wait([ran])
                self._settle(batch, ran)
                raise
            except Exception:
                self._settle(batch, ran)
                continue
            for (_, done), (ok, value) in zip(batch, outcomes, strict=True):
                if not done.done():
                    done.set_result(value) if ok else done.set_exception(value)

    @abstractmethod
    def _start(self, batch: list[Job]) -> asyncio.Future[list[tuple[bool, Any]]]:
        """Start running ``batch`` in a transaction of its own (see :func:`run_jobs`); its
        future has the outcomes, or the transaction's error."""

    @staticmethod
    def _settle(batch: list[Job], ran: asyncio.Future[Any]) -> None:
        """The transaction as a whole failed (or its outcome was not awaited): each job gets
        its result, or the transaction's error."""
        error = ran.exception() if not ran.cancelled() else None
        for index, (_, done) in enumerate(batch):
            if done.done():
                continue
            if error is not None:
                done.set_exception(error)
            else:
                ok, value = ran.result()[index]
                done.set_result(value) if ok else done.set_exception(value)

    @abstractmethod
    async def close(self) -> None:
        """Release what the writer holds."""


def run_jobs(conn: Connection, batch: list[Job]) -> list[tuple[bool, Any]]:
    """Run ``batch`` in ``conn``'s transaction: each job's result, or its error.

    A job alone runs as it is: its error rolls the transaction back. Several run first all
    inside one savepoint: a savepoint per job would be two more statements each (on PostgreSQL
    two round trips). Jobs seldom fail; when one does, the savepoint is rolled back and the
    batch runs again with a savepoint each, so only the failing job's statements are undone.
    """
    if len(batch) == 1:
        # Alone, no savepoint: its error rolls the transaction back and reaches its caller.
        return [(True, batch[0][0](conn))]
    with contextlib.suppress(Exception), _savepoint(conn):  # one failed: each again, below
        return [(True, job(conn)) for job, _ in batch]
    return _run_each(conn, batch)


_SAVEPOINT = "runwire_batch"


@contextlib.contextmanager
def _savepoint(conn: Connection) -> Iterator[None]:
    """A savepoint around the block, rolled back if it raises: on the ``sqlite3`` driver itself
    where the connection is one (SQLAlchemy compiles its ``SAVEPOINT`` and ``RELEASE`` anew each
    time: ~140 µs a batch against ~2 on the driver, docs/benchmarks.md, "Session 14:
    hotpath4"), else SQLAlchemy's. Nothing in a job opens a savepoint of its own."""
    driver = conn.connection.driver_connection
    if type(driver) is not sqlite3.Connection:
        with conn.begin_nested():
            yield
        return
    _on_driver(driver, f"SAVEPOINT {_SAVEPOINT}")
    try:
        yield
    except BaseException:
        _on_driver(driver, f"ROLLBACK TO {_SAVEPOINT}")
        _on_driver(driver, f"RELEASE {_SAVEPOINT}")
        raise
    _on_driver(driver, f"RELEASE {_SAVEPOINT}")


def _on_driver(driver: sqlite3.Connection, sql: str) -> None:
    # Its errors as SQLAlchemy would raise them, as store/prepared.py's.
    try:
        driver.execute(sql)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, (), exc, sqlite3.Error) from exc


def _run_all_or_none(conn: Connection, batch: list[Job]) -> list[tuple[bool, Any]] | None:
    """Each job's result, or None once one fails (the transaction must then be rolled back)."""
    try:
        return [(True, job(conn)) for job, _ in batch]
    except Exception:
        return None


def _run_each(conn: Connection, batch: list[Job]) -> list[tuple[bool, Any]]:
    """Each job in a savepoint of its own: its result, or its error (its statements undone)."""
    outcomes: list[tuple[bool, Any]] = []
    for job, _ in batch:
        try:
            with conn.begin_nested():
                outcomes.append((True, job(conn)))
        except Exception as exc:  # this job's statements are rolled back, not the others'
            outcomes.append((False, exc))
    return outcomes


class PostgresWriter(GroupWriter):
    """Batches over the async engine: one connection and transaction per batch, while other
    connections of the pool serve reads and :meth:`Database.begin`."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self._engine = engine
        # Same pool; a connection checked out through it runs each statement on its own.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    def _start(self, batch: list[Job]) -> asyncio.Future[list[tuple[bool, Any]]]:
        if len(batch) == 1 and isinstance(batch[0][0], OneStatement):
            return asyncio.ensure_future(self._run_alone(batch))
        return asyncio.ensure_future(self._run(batch))

    async def _run_alone(self, batch: list[Job]) -> list[tuple[bool, Any]]:
        """A job of one statement, alone: that statement is its own transaction (no ``BEGIN``
        and ``COMMIT`` round trips); its error reaches the job, nothing of it having taken
        effect."""
        async with self._autocommit.connect() as conn:
            return await conn.run_sync(run_jobs, batch)

    async def _run(self, batch: list[Job]) -> list[tuple[bool, Any]]:
        """Several jobs run first without a savepoint (on PostgreSQL one is two round trips a
        batch): if one fails, that transaction is rolled back, nothing of it having taken
        effect, and a new one runs each job in a savepoint of its own. A failed ``COMMIT`` is
        not run again (it may have taken effect): its error reaches every job."""
        async with self._engine.connect() as conn:
            if len(batch) > 1:
                transaction = await conn.begin()
                try:
                    outcomes = await conn.run_sync(_run_all_or_none, batch)
                except BaseException:
                    await transaction.rollback()
                    raise
                if outcomes is not None:
                    await transaction.commit()
                    return outcomes
                await transaction.rollback()
                async with conn.begin():
                    return await conn.run_sync(_run_each, batch)
            async with conn.begin():
                return await conn.run_sync(run_jobs, batch)

    async def close(self) -> None:
        """Nothing of its own: its connections are the database engine's pool."""
