"""The SQLite fast path: a file's hot writes and hot reads on the event loop's own thread.

Writes (:class:`SqliteWriter`) run there with the synchronous driver: through aiosqlite a
transaction cost about ten thread hops, and on a writer thread of its own it waited for the GIL
at every SQLite call; SQLite takes one writer at a time, so either wait was what every other run
waited for (docs/benchmarks.md). Hot reads (:class:`SqliteReader`, the few indexed lookups every
run makes as it starts) run there too, over a read-only connection of their own: such a read
takes a few microseconds, where the five hops to aiosqlite's thread cost about 600 µs of CPU
(measured). WAL lets these reads run beside other processes' writes without waiting for them.
The loop never sleeps in SQLite: a connection here never waits for a lock.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import StaticPool

from runwire.store.engine import BUSY_TIMEOUT_MS, sqlite_pragmas
from runwire.store.group_commit import GroupWriter, Job, run_jobs

__all__ = ["ReaderBusy", "SqliteReader", "SqliteWriter"]

T = TypeVar("T")

log = logging.getLogger(__name__)


class SqliteWriter(GroupWriter):
    """Writes to an SQLite file on the event loop's own thread, with the synchronous driver.

    A transaction here is a millisecond or so of CPU that no other thread can share anyway (the
    GIL). Run on a thread of its own, as it was, it handed the GIL back at every SQLite call and
    waited for the busy loop to let go of it (up to the 5 ms switch interval each time): under
    load a transaction took 0.2-0.45 s of wall time for a few ms of CPU, and every run's end
    waited for it (docs/benchmarks.md). Here nothing waits for the GIL.

    The loop must never sleep: its connection does not wait for a lock (``busy_timeout=0``) and
    takes the write lock as it begins (``BEGIN IMMEDIATE``), so a batch that finds the file
    locked (another process writing to it) has run nothing, and runs again on a thread of its
    own with a connection that waits. Its connection does not checkpoint either (that writes
    and syncs the database file): the thread checkpoints the WAL every second that saw writes.

    Those checkpoints are PASSIVE: they copy the WAL into the database file beside the writes
    and never hold one back. But SQLite starts the WAL over only when a write begins with every
    frame already copied, which under writes that never pause almost never happens: the WAL
    grew without end (1.9 GB in three minutes of bench/soak.py, every reader's WAL index with
    it). So once it holds ``WAL_LIMIT_FRAMES``, the checkpoint is a TRUNCATE: it holds new
    writes back (they wait on the thread, the loop goes on) while it copies the few frames the
    PASSIVE one left and empties the file. It waits at most ``TRUNCATE_WAIT_MS`` for the writer
    and readers under way; if they take longer it gives up, and the next second tries again.
    """

    CHECKPOINT_EVERY_S = 1.0
    WAL_LIMIT_FRAMES = 4096  # 16 MiB of 4 KiB pages
    TRUNCATE_WAIT_MS = 50

    def __init__(self, url: URL) -> None:
        super().__init__()
        url = url.set(drivername="sqlite")
        self._engine = _sqlite_writer_engine(url, pool_size=1)
        event.listen(self._engine, "connect", _on_the_loop)
        # The loop's connection, kept between batches: checking one out of the pool and back
        # in (its reset included) cost ~20 µs a transaction, as much as the rest of a small
        # one (docs/benchmarks.md, "Hot path, session 13"). Dropped after a failed batch, so
        # the next one starts on a connection in a known state.
        self._conn: Connection | None = None
        self._patient = _sqlite_writer_engine(url, pool_size=1)
        # Started with the first write that meets a lock or the first checkpoint.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="runwire-db-writer")
        self._checkpoint: asyncio.Future[None] | None = None
        self._last_checkpoint = time.monotonic()

    def _start(self, batch: list[Job]) -> asyncio.Future[list[tuple[bool, Any]]]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[tuple[bool, Any]]] = loop.create_future()
        conn = self._conn
        if conn is None:
            conn = self._conn = self._engine.connect()
        try:
            with conn.begin():
                outcomes = run_jobs(conn, batch)
        except WriterBusy:  # nothing ran, and no transaction was begun
            return loop.run_in_executor(self._thread, _run_batch, self._patient, batch)
        except Exception as exc:  # the transaction as a whole failed: every job is told
            self._drop_connection()
            done.set_exception(exc)
            return done
        done.set_result(outcomes)
        now = time.monotonic()
        if self._checkpoint is None and now - self._last_checkpoint >= self.CHECKPOINT_EVERY_S:
            self._last_checkpoint = now
            self._checkpoint = loop.run_in_executor(self._thread, self._checkpoint_wal)
            self._checkpoint.add_done_callback(self._checkpointed)
        return done

    def run_aside(self, job: Callable[[Connection], T]) -> asyncio.Future[T]:
        """``job`` in a transaction of its own on the writer's thread, with the connection
        that waits for locks (see :meth:`Database.write_off_loop`)."""
        return asyncio.get_running_loop().run_in_executor(
            self._thread, _run_alone, self._patient, job
        )

    def _checkpoint_wal(self) -> None:
        # PASSIVE: copies what no reader still needs, waits for nobody, blocks no writer. On the
        # driver's connection itself: a checkpoint cannot run inside a transaction, and
        # SQLAlchemy would begin one.
        raw = self._patient.raw_connection()
        conn: sqlite3.Connection = raw.driver_connection  # type: ignore[assignment]
        try:
            _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames < self.WAL_LIMIT_FRAMES:  # -1: it could not start (a RESTART elsewhere)
                return
            conn.execute(f"PRAGMA busy_timeout={self.TRUNCATE_WAIT_MS}")
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        finally:
            raw.close()

    def _checkpointed(self, done: asyncio.Future[None]) -> None:
        self._checkpoint = None
        if not done.cancelled() and done.exception() is not None:
            log.warning("could not checkpoint the SQLite WAL: %s", done.exception())

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()  # back to the pool, which rolls back what may be left

    async def close(self) -> None:
        if self._checkpoint is not None:
            await asyncio.wait([self._checkpoint])
        self._drop_connection()
        self._engine.dispose()
        # The thread's connections belong to it: closed there.
        await asyncio.get_running_loop().run_in_executor(self._thread, self._patient.dispose)
        self._thread.shutdown(wait=True)


def _sqlite_writer_engine(url: URL, pool_size: int) -> Engine:
    engine = create_engine(url, pool_size=pool_size)
    event.listen(engine, "connect", sqlite_pragmas)
    # SQLAlchemy's recipe for working savepoints on pysqlite: the driver's own implicit BEGIN is
    # off, and SQLAlchemy begins each transaction itself, taking the write lock at once.
    event.listen(engine, "connect", _no_implicit_begin)
    event.listen(engine, "begin", _begin_immediate)
    return engine


def _run_batch(engine: Engine, batch: list[Job]) -> list[tuple[bool, Any]]:
    """``batch`` in a transaction of its own; raises :class:`WriterBusy`, having run nothing,
    if the write lock is taken."""
    with engine.begin() as conn:
        return run_jobs(conn, batch)


def _run_alone(engine: Engine, job: Callable[[Connection], T]) -> T:
    with engine.begin() as conn:
        return job(conn)


class WriterBusy(Exception):
    """The writer's connection found the write lock taken (nothing of the batch has run)."""


class SqliteReader:
    """One read-only connection on an SQLite file, used on the thread that opened it (the
    event loop's) for :meth:`Database.read`."""

    def __init__(self, url: URL) -> None:
        # One connection, kept: a read is a checkout of it and a rollback that ends the read
        # transaction, so the next read sees every commit made since.
        self._engine: Engine = create_engine(url.set(drivername="sqlite"), poolclass=StaticPool)
        event.listen(self._engine, "connect", _read_only_pragmas)

    def run(self, job: Callable[[Connection], T]) -> T:
        """``job``'s result, or :class:`ReaderBusy` at once if SQLite would make it wait: this
        runs on the event loop, which must never sleep in SQLite's busy handler."""
        try:
            with self._engine.connect() as conn:
                return job(conn)
        except OperationalError as exc:
            if _is_busy(exc):
                raise ReaderBusy from exc
            raise

    def close(self) -> None:
        self._engine.dispose()


class ReaderBusy(Exception):
    """The read-only connection found the database locked."""


_BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (primary codes of the extended ones)


def _is_busy(exc: OperationalError) -> bool:
    """SQLite refused because another connection holds a lock (it would have had to wait)."""
    return getattr(exc.orig, "sqlite_errorcode", 0) & 0xFF in _BUSY_CODES


def _read_only_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Never wait for a lock on the loop's thread: fail at once and let the caller wait elsewhere.
    dbapi_conn.execute("PRAGMA busy_timeout=0")
    dbapi_conn.execute("PRAGMA query_only=ON")


def _no_implicit_begin(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None


def _begin_immediate(conn: Connection) -> None:
    # On the driver itself: through SQLAlchemy's execution the BEGIN cost ~1% of the server's
    # CPU per event (docs/benchmarks.md, "Hot path, session 13"). Its errors as SQLAlchemy
    # would raise them.
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    try:
        driver.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        if (exc.sqlite_errorcode or 0) & 0xFF in _BUSY_CODES:
            raise WriterBusy from exc
        raise DBAPIError.instance("BEGIN IMMEDIATE", (), exc, sqlite3.Error) from exc


def _on_the_loop(dbapi_conn: Any, _record: Any) -> None:
    # Never wait on the loop's thread: for a lock (the batch goes to the thread instead), or for
    # a checkpoint's disk writes (the thread runs those).
    dbapi_conn.execute("PRAGMA busy_timeout=0")
    dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")
