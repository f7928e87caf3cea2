"""The database: engine lifecycle, migrations and the readiness check.

``Database.open(url)`` is an async context manager; it owns the engine and disposes of it on exit.
The same code runs on SQLite (``sqlite+aiosqlite://``) and PostgreSQL (``postgresql+asyncpg://``).

Hot writes (a run accepted, a run finished, a batch of events) go through :meth:`Database.write`:
the jobs queued while one transaction runs go together into the next (group commit,
store/group_commit.py). On an SQLite file that transaction runs on the event loop's own thread
with the synchronous driver (store/sqlite_loop.py); on PostgreSQL the group pays ``BEGIN`` and
``COMMIT`` once for all its jobs. Reads through :meth:`Database.connect` and
:meth:`Database.read` run without a transaction on PostgreSQL (one round trip, not three), the
second over sessions that PostgreSQL keeps read-only. Hot reads (the few indexed lookups every
run makes as it starts) go through :meth:`Database.read`: on an SQLite file they run at once, on
the event loop's thread. How engines are made is store/engine.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import ClauseElement

from runwire.errors import DependencyUnavailable
from runwire.store.engine import (
    compress_with_lz4,
    create_private,
    postgres_engine,
    redact_url,
    sqlite_pragmas,
    without_secret,
)
from runwire.store.group_commit import GroupWriter, Job, OneStatement, PostgresWriter
from runwire.store.prepared import Prepared, prepare
from runwire.store.sqlite_loop import ReaderBusy, SqliteReader, SqliteWriter
from runwire.store.statements import columns_insert, positional_insert

__all__ = ["Database", "Prepared", "redact_url", "without_secret"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

T = TypeVar("T")


class Database:
    """An open database engine. Create with :meth:`open`; never at import time."""

    def __init__(
        self,
        engine: AsyncEngine,
        writer: GroupWriter | None = None,
        reader: SqliteReader | None = None,
        on_write: Callable[[float], None] | None = None,
    ) -> None:
        """``on_write(seconds)`` is told how long each :meth:`write` took (for the metrics)."""
        self.engine = engine
        self._on_write = on_write
        # PostgreSQL: reads (:meth:`read`) over sessions of their own that PostgreSQL keeps
        # read-only, each statement its own transaction.
        self._read_only: AsyncEngine | None = None
        if engine.dialect.name == "postgresql":
            self._read_only = postgres_engine(
                engine.url,
                isolation_level="AUTOCOMMIT",
                connect_args={"server_settings": {"default_transaction_read_only": "on"}},
            )
        # Same pool; a connection checked out through it runs without a transaction.
        self._reads = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql"
            else engine
        )
        self._writer = writer
        self._reader = reader
        # SQLite allows one writer at a time; writers that collide sleep in SQLite's busy handler
        # (up to 100 ms a try). Queueing them here instead keeps writes back to back.
        self._write_lock: asyncio.Lock | None = (
            asyncio.Lock() if engine.dialect.name == "sqlite" else None
        )
        # One batch of write jobs at a time (on SQLite, the same lock as every other writer's).
        self._batch_lock = self._write_lock or asyncio.Lock()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def max_parameters(self) -> int:
        """The most parameters one statement may have: PostgreSQL's protocol allows 65535;
        SQLite as compiled (32766 since 3.32, 999 before)."""
        if self.dialect != "sqlite":
            return 65535
        probe = sqlite3.connect(":memory:")
        try:
            return probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        finally:
            probe.close()

    @staticmethod
    def sqlite_file(url: str) -> Path | None:
        """The file an SQLite URL names; None for PostgreSQL and in-memory SQLite."""
        if not url.startswith("sqlite") or "///" not in url:
            return None
        path = url.split("///", 1)[1].split("?", 1)[0]
        return Path(path) if path and path != ":memory:" else None

    @classmethod
    @asynccontextmanager
    async def open(
        cls, url: str, *, on_write: Callable[[float], None] | None = None
    ) -> AsyncIterator[Database]:
        path = cls.sqlite_file(url)
        if path is not None:
            create_private(path)
        if make_url(url).get_backend_name() == "postgresql":
            engine = postgres_engine(make_url(url))
            event.listen(engine.sync_engine, "connect", compress_with_lz4)
        else:
            engine = create_async_engine(url)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        # An in-memory database is private to its connection: its writes stay on that engine.
        writer: GroupWriter | None = None
        if path is not None:
            writer = SqliteWriter(engine.url)
        elif engine.dialect.name == "postgresql":
            writer = PostgresWriter(engine)
        reader = SqliteReader(engine.url) if path is not None else None
        database: Database | None = None
        try:
            database = cls(engine, writer, reader, on_write)
            yield database
        finally:
            if reader is not None:
                reader.close()
            if writer is not None:
                await writer.close()
            if database is not None and database._read_only is not None:
                await database._read_only.dispose()
            await engine.dispose()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside a transaction, committed on success, rolled back on error."""
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    async def write(
        self, job: Callable[[Connection], T], *, gather: bool = False, one_statement: bool = False
    ) -> T:
        """Run ``job`` in a transaction: its statements all take effect if it returns, none if
        it raises (its exception is raised here).

        ``job`` gets a synchronous connection and must do nothing but its statements. It runs
        together with the jobs queued beside it, in one transaction (a job that fails is undone
        alone, see :class:`GroupWriter`): on an SQLite file on the event loop's thread
        (:class:`SqliteWriter`), so the one-writer-at-a-time lock is taken once for all of them; on PostgreSQL over one
        connection, so ``BEGIN`` and ``COMMIT`` are paid once for all of them. In-memory SQLite
        (tests) runs it alone.

        ``gather``: wait for the event loop to go round once first, so that the jobs the tasks
        already queued behind this one are about to write (a burst of messages, each accepted
        by its socket's task) join its transaction. On SQLite a job would otherwise run at
        once, alone: nothing else can be queued while the loop's thread runs it.

        ``one_statement``: ``job`` runs a single statement (which PostgreSQL makes atomic by
        itself, an ``executemany`` included: asyncpg sends its rows as one implicit
        transaction). When it is alone in its batch, on PostgreSQL it then runs without
        ``BEGIN`` and ``COMMIT``: one round trip instead of three.
        """
        if one_statement:
            job = OneStatement(job)
        if self._on_write is None:
            return await self._write(job, gather)
        started = time.perf_counter()
        try:
            return await self._write(job, gather)
        finally:
            self._on_write(time.perf_counter() - started)

    async def _write(self, job: Callable[[Connection], T], gather: bool = False) -> T:
        if self._writer is None:
            async with self.begin() as conn:
                return await conn.run_sync(job)
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        entry: Job = (job, done)
        self._writer.pending.append(entry)
        try:
            if gather:
                await asyncio.sleep(0)
            async with self._batch_lock:
                if not done.done():  # not run yet by a writer that came before
                    await self._writer.run_pending()
        except asyncio.CancelledError:
            if entry in self._writer.pending:  # not taken yet: it never runs
                self._writer.pending.remove(entry)
            raise
        return done.result()

    async def write_off_loop(self, job: Callable[[Connection], T]) -> T:
        """Run ``job`` in a transaction of its own, as :meth:`write` would, but never on the
        event loop's thread: for a job that writes hundreds of rows (a slice of an import),
        whose statements and commit would hold the loop for ten milliseconds or more.

        On an SQLite file it runs on the writer's thread, with the connection that waits for
        locks, one thread hop for the whole job (through aiosqlite every statement is two), and
        holds the write lock meanwhile, so other writes queue behind it rather than meet a
        locked database. Elsewhere it is :meth:`write`, which does not hold the loop anyway.
        """
        if not isinstance(self._writer, SqliteWriter):
            return await self.write(job)
        async with self._batch_lock:
            ran = self._writer.run_aside(job)
            try:
                return await asyncio.shield(ran)
            except asyncio.CancelledError:
                await asyncio.wait([ran])  # the lock is held until the transaction is over
                raise

    async def read(self, job: Callable[[Connection], T]) -> T:
        """Run ``job``, which only reads, and return what it returns.

        ``job`` gets a synchronous connection and must be a few indexed lookups: on an SQLite
        file it runs at once on the calling (event loop's) thread, which it holds until it
        returns. Reads of many rows belong on :meth:`connect`. Elsewhere it runs over an async
        connection like any other read. Its connection is read-only: a statement that would
        write fails (except on in-memory SQLite, used by tests, where it is rolled back).
        """
        if self._reader is not None:
            try:
                return self._reader.run(job)
            except ReaderBusy:
                pass  # SQLite asked to wait: wait off the loop, like any other read
        async with (self._read_only or self.engine).connect() as conn:
            return await conn.run_sync(job)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads, each statement its own transaction.

        On PostgreSQL that saves two round trips a read (``BEGIN``, and the ``ROLLBACK`` that
        ends it) and gives up nothing: under READ COMMITTED, the default, each statement of a
        transaction sees a snapshot of its own anyway. Use :meth:`begin` or :meth:`write` for
        anything that writes.
        """
        async with self._reads.connect() as conn:
            yield conn

    def prepare(self, statement: ClauseElement) -> Prepared:
        """``statement`` compiled once for this database's driver (see :class:`Prepared`)."""
        return prepare(statement, self.engine.dialect)

    def positional_insert(
        self, table: str, columns: Sequence[str], *, skip_existing: bool = False, rows: int = 1
    ) -> str:
        """``INSERT`` text with this driver's positional placeholders, for bulk rows as tuples
        (see :func:`~runwire.store.statements.positional_insert`)."""
        return positional_insert(
            self.engine.dialect.paramstyle,
            table,
            columns,
            skip_existing=skip_existing,
            rows=rows,
        )

    def columns_insert(self, table: Table, *, skip_existing: bool = False) -> str | None:
        """PostgreSQL: ``INSERT`` text of any number of rows of ``table`` as one statement
        whose parameters are one array per column (see
        :func:`~runwire.store.statements.columns_insert`); None elsewhere."""
        if self.dialect != "postgresql":
            return None
        return columns_insert(table, self.engine.dialect, skip_existing=skip_existing)

    async def ping(self) -> None:
        """Run a real query; raise DependencyUnavailable when it fails.

        The message names only the kind of failure (no URL, host or driver text: ``/ready`` shows
        it to anyone); the driver's error is kept as ``__cause__`` for ``runwire doctor``.
        """
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            raise DependencyUnavailable(f"database unreachable ({type(exc).__name__})") from exc

    @asynccontextmanager
    async def _reach(self) -> AsyncIterator[AsyncConnection]:
        """A connection for start-up and administration (migrations, the schema revision).

        A database that cannot be reached raises DependencyUnavailable naming where it was
        looked for (password hidden) and what the driver said, for the operator who reads the
        start-up log or the CLI's answer, instead of the driver's traceback.
        """
        try:
            conn = await self.engine.connect()
        except Exception as exc:
            said = without_secret(str(exc).strip(), self.engine.url)
            raise DependencyUnavailable(
                f"cannot reach the database at {redact_url(self.engine.url)} "
                f"({type(exc).__name__}{': ' + said if said else ''}); "
                "`runwire doctor` checks the settings and the database"
            ) from None
        try:
            yield conn
        finally:
            await conn.close()

    def _alembic_config(self) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        return cfg

    async def migrate(self) -> None:
        """Apply every pending migration (``alembic upgrade head``)."""
        from alembic import command

        cfg = self._alembic_config()

        def upgrade(sync_conn: Any) -> None:
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, "head")

        async with self._reach() as conn, conn.begin():
            await conn.run_sync(upgrade)

    async def schema_revision(self) -> tuple[str | None, str]:
        """Return ``(current, head)`` migration revisions."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(self._alembic_config()).get_current_head()

        def current(sync_conn: Any) -> str | None:
            rev: str | None = MigrationContext.configure(sync_conn).get_current_revision()
            return rev

        async with self._reach() as conn:
            cur = await conn.run_sync(current)
        return cur, str(head)
