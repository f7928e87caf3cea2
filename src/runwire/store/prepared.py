"""Statements compiled once and run with positional parameters: the store's hot statements.

A write of no rows back (an ``INSERT``, ``UPDATE`` or ``DELETE`` without ``RETURNING``) run inside
a transaction on an SQLite file's own connection (the writer's, on the event loop) goes to the
driver itself: through SQLAlchemy's execution (an execution context, its events, a result) it
cost ~6 µs more a statement, and such statements were ~5% of the server's CPU per event
(docs/benchmarks.md, "Hot path, session 13"). A driver error is raised as SQLAlchemy would
raise it (``IntegrityError`` and the rest, the driver's error as ``orig``), and what it gives
back answers as SQLAlchemy's result of such a statement does: its ``rowcount``, and no rows.
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

    def run(self, conn: Connection, **values: Any) -> Rows:
        params = tuple(values[n] if n in values else self._defaults[n] for n in self._order)
        if self._writes_only and conn.in_transaction():
            driver = conn.connection.driver_connection
            if type(driver) is sqlite3.Connection:
                try:
                    cursor = driver.execute(self._sql, params)
                except sqlite3.Error as exc:
                    raise DBAPIError.instance(self._sql, params, exc, sqlite3.Error) from exc
                return _Written(cursor.rowcount)
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
