"""PostgreSQL: rows written with ``COPY ... FROM STDIN (FORMAT binary)`` inside a write job.

A batch of events costs PostgreSQL less as a binary ``COPY`` than as an ``INSERT`` of arrays
(no array to build and take apart, no text to parse, no conflict check a row) and the node less
too (asyncpg encodes the rows in its C code; docs/benchmarks.md, "Session 15: pgevents"). A
``COPY`` has no ``ON CONFLICT``: a row that is there already fails the whole of it, nothing of it
having taken effect, and the caller writes the rows again another way (:class:`RowsClash`).

The ``COPY`` goes over the job's own connection, in its transaction, through asyncpg, which
SQLAlchemy does not wrap: it is started here if SQLAlchemy has not started it yet (its adapter
begins one lazily, at a connection's first statement).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asyncpg.exceptions import UniqueViolationError  # type: ignore[import-untyped]
from sqlalchemy import Connection
from sqlalchemy.util import await_

__all__ = ["RowsClash", "copy_rows"]


RowsClash = UniqueViolationError
"""A row of the ``COPY`` was there already: none of its rows was written. (asyncpg's own
error, as it comes: coverage does not follow a job past the greenlet switch of its ``await_``.)"""


def copy_rows(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Write ``rows`` (one value a column of ``columns``, in order) into ``table`` in ``conn``'s
    transaction, or raise :data:`RowsClash` (the transaction must then be rolled back)."""
    adapted: Any = conn.connection.dbapi_connection
    driver: Any = conn.connection.driver_connection
    # SQLAlchemy's adapter starts the transaction at the first statement sent through it; a
    # COPY sent first must start it too, or it would take effect on its own. An autocommit
    # connection (a job alone in its batch) has none to start.
    if adapted._transaction is None and not adapted.autocommit:
        await_(adapted._start_transaction())
    await_(driver.copy_records_to_table(table, records=rows, columns=list(columns)))
