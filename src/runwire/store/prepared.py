"""Statements compiled once and run with positional parameters: the store's hot statements.

On an SQLite file's own connections (the writer's and the reader's, on the event loop) a
prepared statement goes to the ``sqlite3`` driver itself: through SQLAlchemy's execution (an
execution context, its events, a result) a write cost ~6 µs more and a one-row read ~20 µs more
(docs/benchmarks.md, "Hot path, session 13" and "Session 14: hotpath4"), and every message and
run makes a few of each. SQLAlchemy adds nothing there that SQLite sees: a statement sent as text
(``exec_driver_sql``) gets no type processing, so its rows hold the driver's own values either
way. Elsewhere (PostgreSQL, in-memory SQLite through aiosqlite) SQLAlchemy runs it.

A driver error is raised as SQLAlchemy would raise it (``IntegrityError`` and the rest, the
driver's error as ``orig``). What the driver gives back answers as SQLAlchemy's result of the
same statement does: a write of no rows back (an ``INSERT``, ``UPDATE`` or ``DELETE`` without
``RETURNING``) its ``rowcount`` and no rows; a statement with rows its rows as tuples, read in
full at once (the store's reads are one row or a few), so no statement is left open on the
connection (an open read would hold SQLite's snapshot, and the WAL's checkpoint, behind it).
Callers read the rows by position, which SQLAlchemy's rows answer as well.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, ResourceClosedError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["Prepared", "Rows", "prepare"]


class Rows(Protocol):
    """What running a prepared statement gives back (SQLAlchemy's ``CursorResult`` is one)."""

    @property
    def rowcount(self) -> int: ...

    def scalar(self) -> Any: ...

    def first(self) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


class Prepared:
    """A statement compiled once for the database's driver, run with positional parameters.

    SQLAlchemy builds and caches a statement's SQL on every execution, which for the
    statements with correlated subqueries that decide a run's turn costs hundreds of
    microseconds, on the writer's thread, for every run; this costs a few. Parameters are the
    statement's ``bindparam`` names; the rest keep the values they were built with. (No
    ``IN`` lists: those are expanded per execution.)
    """

    def __init__(
        self,
        sql: str,
        order: Sequence[str],
        defaults: dict[str, Any],
        *,
        writes_only: bool = False,
    ) -> None:
        """``writes_only``: the statement writes and gives no rows back (see the module)."""
        self._sql = sql
        self._order = tuple(order)
        self._defaults = defaults
        self._writes_only = writes_only

    @property
    def sql(self) -> str:
        """The statement's text, for the database's driver."""
        return self._sql

    def parameters(self, **values: Any) -> tuple[Any, ...]:
        """The driver's positional parameters for ``values`` (see the class)."""
        return tuple(values[n] if n in values else self._defaults[n] for n in self._order)

    def run(self, conn: Connection, **values: Any) -> Rows:
        """Run the statement on ``conn`` with ``values`` (on the driver itself where the module
        says), its result as SQLAlchemy's ``exec_driver_sql`` would give it."""
        params = tuple(values[n] if n in values else self._defaults[n] for n in self._order)
        driver = conn.connection.driver_connection
        # On the writer's connection the driver's own BEGIN is off and SQLAlchemy begins each
        # transaction (BEGIN IMMEDIATE); the reader's driver begins by itself, and a read needs
        # no transaction of SQLAlchemy's. A write runs on the driver only in a transaction:
        # outside one SQLAlchemy would begin it.
        if type(driver) is sqlite3.Connection and (
            conn.in_transaction() or (not self._writes_only and driver.isolation_level is not None)
        ):
            try:
                cursor = driver.execute(self._sql, params)
                if self._writes_only:
                    return _Written(cursor.rowcount)
                rows = cursor.fetchall()
            except sqlite3.Error as exc:
                raise DBAPIError.instance(self._sql, params, exc, sqlite3.Error) from exc
            return _Read(rows, cursor.rowcount)
        return conn.exec_driver_sql(self._sql, params)


def prepare(statement: ClauseElement, conn_dialect: Any) -> Prepared:
    """``statement`` compiled once for ``conn_dialect`` (see :class:`Prepared`)."""
    compiled = statement.compile(dialect=conn_dialect)
    assert isinstance(compiled, SQLCompiler)
    writes = compiled.isinsert or compiled.isupdate or compiled.isdelete
    return Prepared(
        compiled.string,
        compiled.positiontup or (),
        dict(compiled.params),
        writes_only=writes and not compiled.returning,
    )


class _Written:
    """A write's outcome from the driver: how many rows it changed, and no rows to read (as
    SQLAlchemy's result of a statement without ``RETURNING``)."""

    __slots__ = ("rowcount",)

    def __init__(self, rowcount: int) -> None:
        self.rowcount = rowcount

    def _no_rows(self) -> ResourceClosedError:
        return ResourceClosedError("This result object does not return rows.")

    def scalar(self) -> Any:
        raise self._no_rows()

    def first(self) -> Any:
        raise self._no_rows()

    def __iter__(self) -> Iterator[Any]:
        raise self._no_rows()


class _Read:
    """A statement's rows from the driver, all read (as tuples), answered as SQLAlchemy's result
    answers them: ``first`` and ``scalar`` the first row or its first value (None without
    one), iteration every row, and the driver's ``rowcount``."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)
