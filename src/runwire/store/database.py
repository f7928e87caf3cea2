"""The database: engine lifecycle, migrations and the readiness check.

``Database.open(url)`` is an async context manager; it owns the engine and disposes of it on exit.
The same code runs on SQLite (``sqlite+aiosqlite://``) and PostgreSQL (``postgresql+asyncpg://``).

Hot writes (a run accepted, a run finished, a batch of events) go through :meth:`Database.write`:
the jobs queued while one transaction runs go together into the next (group commit). On an
SQLite file that transaction runs on the event loop's own thread with the synchronous driver:
through aiosqlite it cost about ten thread hops (cursor, statement, close, commit), and on a
writer thread of its own it waited for the GIL at every SQLite call; SQLite takes one writer at a
time, so either wait was what every other run waited for (docs/benchmarks.md). On PostgreSQL the
group pays ``BEGIN`` and ``COMMIT`` once for all its jobs. Reads through
:meth:`Database.connect` and :meth:`Database.read` run without a transaction on PostgreSQL (one
round trip, not three), the second over sessions that PostgreSQL keeps read-only. A pooled
PostgreSQL connection is pinged before use only when it has sat idle (``_PING_AFTER_IDLE_S``):
under load every checkout's ping was a round trip of its own (docs/benchmarks.md, "Several nodes
(issue 15, branch redisq)").

Hot reads (the few indexed lookups every run makes as it starts) go through :meth:`Database.read`
for the same reason: on an SQLite file they run at once, on the event loop's thread, over a
read-only connection of their own. Such a read takes a few microseconds; the five hops to
aiosqlite's thread that the same read takes cost about 600 µs of CPU (measured). WAL lets
these reads run beside other processes' writes without waiting for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, CursorResult, Engine, Table, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import await_

from runwire.errors import DependencyUnavailable

__all__ = ["Database", "Prepared", "redact_url", "without_secret"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# A pooled PostgreSQL connection back in the pool for less than this is used without a ping: it
# worked a moment ago, and were the server to restart meanwhile, the statements then in flight
# fail and make the pool replace every connection older than that failure anyway. One idle
# longer (the server may have restarted or closed it since, unseen) is pinged and replaced if
# dead, so a quiet server's first request after a restart does not fail.
_PING_AFTER_IDLE_S = 0.1

T = TypeVar("T")


def redact_url(url: str | URL) -> str:
    """``url`` with its password replaced by ``***``, for logs and the operator's eyes."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<a database URL that cannot be parsed>"


def without_secret(said: str, url: str | URL) -> str:
    """``said`` (a driver's message, say) with the password of ``url`` taken out."""
    try:
        password = make_url(url).password
    except ArgumentError:
        return said
    return said.replace(str(password), "***") if password else said


def _create_private(path: Path) -> None:
    """Create the SQLite file (and its directory) for its owner only, if it is not there yet.

    It holds password hashes. SQLite would create it readable by everyone (0644 under the usual
    umask); made here first, 0600, it stays so, and SQLite gives its -wal and -shm files the
    mode of the database file. An existing file keeps the mode its owner chose.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


_BUSY_TIMEOUT_MS = 10_000  # how long a connection off the loop waits for SQLite's locks


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; busy_timeout turns lock contention into waiting
    # (set first: the journal_mode statement itself may meet a lock).
    cursor = dbapi_conn.cursor()
    cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Prepared:
    """A statement compiled once for the database's driver, run with positional parameters.

    SQLAlchemy builds and caches a statement's SQL on every execution, which for the
    statements with correlated subqueries that decide a run's turn costs hundreds of
    microseconds, on the writer's thread, for every run; this costs a few. Parameters are the
    statement's ``bindparam`` names; the rest keep the values they were built with. (No
    ``IN`` lists: those are expanded per execution.)
    """

    def __init__(self, sql: str, order: Sequence[str], defaults: dict[str, Any]) -> None:
        self._sql = sql
        self._order = tuple(order)
        self._defaults = defaults

    def run(self, conn: Connection, **values: Any) -> CursorResult[*tuple[Any, ...]]:
        return conn.exec_driver_sql(self._sql, self._params(values))

    def _params(self, values: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(values[n] if n in values else self._defaults[n] for n in self._order)


class Database:
    """An open database engine. Create with :meth:`open`; never at import time."""

    def __init__(
        self,
        engine: AsyncEngine,
        writer: _GroupWriter | None = None,
        reader: _SqliteReader | None = None,
        on_write: Callable[[float], None] | None = None,
    ) -> None:
        """``on_write(seconds)`` is told how long each :meth:`write` took (for the metrics)."""
        self.engine = engine
        self._on_write = on_write
        # PostgreSQL: reads (:meth:`read`) over sessions of their own that PostgreSQL keeps
        # read-only, each statement its own transaction.
        self._read_only: AsyncEngine | None = None
        if engine.dialect.name == "postgresql":
            self._read_only = _postgres_engine(
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
            _create_private(path)
        if make_url(url).get_backend_name() == "postgresql":
            engine = _postgres_engine(make_url(url))
            event.listen(engine.sync_engine, "connect", _compress_with_lz4)
        else:
            engine = create_async_engine(url)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        # An in-memory database is private to its connection: its writes stay on that engine.
        writer: _GroupWriter | None = None
        if path is not None:
            writer = _SqliteWriter(engine.url)
        elif engine.dialect.name == "postgresql":
            writer = _PostgresWriter(engine)
        reader = _SqliteReader(engine.url) if path is not None else None
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
        alone, see :class:`_GroupWriter`): on an SQLite file on the event loop's thread
        (:class:`_SqliteWriter`), so the one-writer-at-a-time lock is taken once for all of them; on PostgreSQL over one
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
            job = _OneStatement(job)
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
        entry: _Job = (job, done)
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
        if not isinstance(self._writer, _SqliteWriter):
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
            except _ReaderBusy:
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
        compiled = statement.compile(dialect=self.engine.dialect)
        assert isinstance(compiled, SQLCompiler)
        return Prepared(compiled.string, compiled.positiontup or (), dict(compiled.params))

    def positional_insert(
        self, table: str, columns: Sequence[str], *, skip_existing: bool = False, rows: int = 1
    ) -> str:
        """``INSERT`` text with the driver's positional placeholders, for bulk rows as tuples.

        Hot paths (a run's events, thousands a second) skip SQLAlchemy's per-row parameter
        processing this way; the statement is built once per table, not per batch.
        ``skip_existing`` leaves rows whose key is taken as they are (``ON CONFLICT DO NOTHING``,
        the same text on SQLite and PostgreSQL) instead of failing the whole batch. ``rows``
        above 1 makes one statement of that many rows, its parameters the rows' values one row
        after another (its ``rowcount`` is then how many it inserted, on every driver).
        """
        style = self.engine.dialect.paramstyle
        width = len(columns)
        if style == "qmark":
            marks = ["?"] * (width * rows)
        elif style == "numeric_dollar":
            marks = [f"${i}" for i in range(1, width * rows + 1)]
        elif style in ("format", "pyformat"):
            marks = ["%s"] * (width * rows)
        else:  # pragma: no cover - every driver runwire supports is listed above
            raise ValueError(f"unsupported paramstyle {style}")
        groups = ", ".join(
            "(" + ", ".join(marks[i : i + width]) + ")" for i in range(0, len(marks), width)
        )
        # Names come from store/schema.py, never from input.
        tail = " ON CONFLICT DO NOTHING" if skip_existing else ""
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {groups}{tail}"  # noqa: S608

    def columns_insert(self, table: Table, *, skip_existing: bool = False) -> str | None:
        """PostgreSQL: ``INSERT`` text of any number of rows of ``table`` (every column) as one
        statement whose parameters are one array per column (``unnest``), or None elsewhere.

        One execution for the rows instead of one each (``executemany``): a tenth to a fifth
        less of PostgreSQL's CPU per stored event, measured, and one prepared statement
        whatever the number of rows. ``skip_existing`` as in :meth:`positional_insert`."""
        if self.dialect != "postgresql":
            return None
        dialect = self.engine.dialect
        names = ", ".join(c.name for c in table.columns)
        arrays = ", ".join(
            f"${i}::{c.type.compile(dialect)}[]" for i, c in enumerate(table.columns, 1)
        )
        tail = " ON CONFLICT DO NOTHING" if skip_existing else ""
        # Names come from store/schema.py, never from input.
        return f"INSERT INTO {table.name} ({names}) SELECT * FROM unnest({arrays}){tail}"  # noqa: S608

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


log = logging.getLogger(__name__)

_Job = tuple[Callable[[Connection], Any], "asyncio.Future[Any]"]


class _OneStatement:
    """A write job that runs one statement (see ``one_statement`` of :meth:`Database.write`)."""

    __slots__ = ("_job",)

    def __init__(self, job: Callable[[Connection], Any]) -> None:
        self._job = job

    def __call__(self, conn: Connection) -> Any:
        return self._job(conn)


class _GroupWriter(ABC):
    """Write jobs queued in :attr:`pending`, run together in one transaction (group commit):
    the transaction's fixed costs (taking SQLite's one write lock; ``BEGIN`` and ``COMMIT``
    round trips to PostgreSQL) are paid once for every job queued meanwhile."""

    MAX_JOBS = 500  # per transaction

    def __init__(self) -> None:
        self.pending: list[_Job] = []

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
    def _start(self, batch: list[_Job]) -> asyncio.Future[list[tuple[bool, Any]]]:
        """Start running ``batch`` in a transaction of its own (see :func:`_run_jobs`); its
        future has the outcomes, or the transaction's error."""

    @staticmethod
    def _settle(batch: list[_Job], ran: asyncio.Future[Any]) -> None:
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


def _run_jobs(conn: Connection, batch: list[_Job]) -> list[tuple[bool, Any]]:
    """Run ``batch`` in ``conn``'s transaction: each job's result, or its error.

    A job alone runs as it is: its error rolls the transaction back. Several run first all
    inside one savepoint: a savepoint per job would be two more statements each (on PostgreSQL
    two round trips). Jobs seldom fail; when one does, the savepoint is rolled back and the
    batch runs again with a savepoint each, so only the failing job's statements are undone.
    """
    if len(batch) == 1:
        # Alone, no savepoint: its error rolls the transaction back and reaches its caller.
        return [(True, batch[0][0](conn))]
    with contextlib.suppress(Exception), conn.begin_nested():  # one failed: each again, below
        return [(True, job(conn)) for job, _ in batch]
    return _run_each(conn, batch)


def _run_all_or_none(conn: Connection, batch: list[_Job]) -> list[tuple[bool, Any]] | None:
    """Each job's result, or None once one fails (the transaction must then be rolled back)."""
    try:
        return [(True, job(conn)) for job, _ in batch]
    except Exception:
        return None


def _run_each(conn: Connection, batch: list[_Job]) -> list[tuple[bool, Any]]:
    """Each job in a savepoint of its own: its result, or its error (its statements undone)."""
    outcomes: list[tuple[bool, Any]] = []
    for job, _ in batch:
        try:
            with conn.begin_nested():
                outcomes.append((True, job(conn)))
        except Exception as exc:  # this job's statements are rolled back, not the others'
            outcomes.append((False, exc))
    return outcomes


class _SqliteWriter(_GroupWriter):
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
        self._patient = _sqlite_writer_engine(url, pool_size=1)
        # Started with the first write that meets a lock or the first checkpoint.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="runwire-db-writer")
        self._checkpoint: asyncio.Future[None] | None = None
        self._last_checkpoint = time.monotonic()

    def _start(self, batch: list[_Job]) -> asyncio.Future[list[tuple[bool, Any]]]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[tuple[bool, Any]]] = loop.create_future()
        try:
            done.set_result(_run_batch(self._engine, batch))
        except _WriterBusy:
            return loop.run_in_executor(self._thread, _run_batch, self._patient, batch)
        except Exception as exc:  # the transaction as a whole failed: every job is told
            done.set_exception(exc)
            return done
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
                conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        finally:
            raw.close()

    def _checkpointed(self, done: asyncio.Future[None]) -> None:
        self._checkpoint = None
        if not done.cancelled() and done.exception() is not None:
            log.warning("could not checkpoint the SQLite WAL: %s", done.exception())

    async def close(self) -> None:
        if self._checkpoint is not None:
            await asyncio.wait([self._checkpoint])
        self._engine.dispose()
        # The thread's connections belong to it: closed there.
        await asyncio.get_running_loop().run_in_executor(self._thread, self._patient.dispose)
        self._thread.shutdown(wait=True)


def _sqlite_writer_engine(url: URL, pool_size: int) -> Engine:
    engine = create_engine(url, pool_size=pool_size)
    event.listen(engine, "connect", _sqlite_pragmas)
    # SQLAlchemy's recipe for working savepoints on pysqlite: the driver's own implicit BEGIN is
    # off, and SQLAlchemy begins each transaction itself, taking the write lock at once.
    event.listen(engine, "connect", _no_implicit_begin)
    event.listen(engine, "begin", _begin_immediate)
    return engine


def _run_batch(engine: Engine, batch: list[_Job]) -> list[tuple[bool, Any]]:
    """``batch`` in a transaction of its own; raises :class:`_WriterBusy`, having run nothing,
    if the write lock is taken."""
    with engine.begin() as conn:
        return _run_jobs(conn, batch)


def _run_alone(engine: Engine, job: Callable[[Connection], T]) -> T:
    with engine.begin() as conn:
        return job(conn)


class _WriterBusy(Exception):
    """The writer's connection found the write lock taken (nothing of the batch has run)."""


class _PostgresWriter(_GroupWriter):
    """Batches over the async engine: one connection and transaction per batch, while other
    connections of the pool serve reads and :meth:`Database.begin`."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self._engine = engine
        # Same pool; a connection checked out through it runs each statement on its own.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    def _start(self, batch: list[_Job]) -> asyncio.Future[list[tuple[bool, Any]]]:
        if len(batch) == 1 and isinstance(batch[0][0], _OneStatement):
            return asyncio.ensure_future(self._run_alone(batch))
        return asyncio.ensure_future(self._run(batch))

    async def _run_alone(self, batch: list[_Job]) -> list[tuple[bool, Any]]:
        """A job of one statement, alone: that statement is its own transaction (no ``BEGIN``
        and ``COMMIT`` round trips); its error reaches the job, nothing of it having taken
        effect."""
        async with self._autocommit.connect() as conn:
            return await conn.run_sync(_run_jobs, batch)

    async def _run(self, batch: list[_Job]) -> list[tuple[bool, Any]]:
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
                return await conn.run_sync(_run_jobs, batch)

    async def close(self) -> None:
        """Nothing of its own: its connections are the database engine's pool."""


def _postgres_engine(url: URL, **options: Any) -> AsyncEngine:
    """An engine on PostgreSQL whose pool pings a connection only after it sat idle."""
    engine = create_async_engine(url, **options)
    pool = engine.sync_engine.pool
    dialect = engine.dialect

    def checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()  # a new connection's too: it just answered

    def checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is not None and time.monotonic() - since < _PING_AFTER_IDLE_S:
            return
        try:
            dialect.do_ping(dbapi_conn)
        except Exception as exc:
            # The pool drops this connection and checks out another (a new one if need be).
            raise DisconnectionError(f"a pooled connection is gone ({type(exc).__name__})") from exc

    event.listen(pool, "connect", checked_in)
    event.listen(pool, "checkin", checked_in)
    event.listen(pool, "checkout", checked_out)
    return engine


def _compress_with_lz4(dbapi_conn: Any, _record: Any) -> None:
    """Values PostgreSQL compresses on this connection (a block of events, once it passes
    ~2 KB) are compressed with lz4 rather than pglz: it took a third less of PostgreSQL's CPU
    per stored event, for rows 10% larger (docs/benchmarks.md, "Storing events, session 12").
    A server built without lz4 refuses the setting and keeps pglz; values already stored read
    the same either way."""
    try:
        await_(dbapi_conn.driver_connection.execute("SET default_toast_compression = lz4"))
    except Exception as exc:
        log.info("PostgreSQL keeps its own compression (%s)", type(exc).__name__)


class _SqliteReader:
    """One read-only connection on an SQLite file, used on the thread that opened it (the
    event loop's) for :meth:`Database.read`."""

    def __init__(self, url: URL) -> None:
        # One connection, kept: a read is a checkout of it and a rollback that ends the read
        # transaction, so the next read sees every commit made since.
        self._engine: Engine = create_engine(url.set(drivername="sqlite"), poolclass=StaticPool)
        event.listen(self._engine, "connect", _read_only_pragmas)

    def run(self, job: Callable[[Connection], T]) -> T:
        """``job``'s result, or :class:`_ReaderBusy` at once if SQLite would make it wait: this
        runs on the event loop, which must never sleep in SQLite's busy handler."""
        try:
            with self._engine.connect() as conn:
                return job(conn)
        except OperationalError as exc:
            if _is_busy(exc):
                raise _ReaderBusy from exc
            raise

    def close(self) -> None:
        self._engine.dispose()


class _ReaderBusy(Exception):
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
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    except OperationalError as exc:
        if _is_busy(exc):
            raise _WriterBusy from exc
        raise


def _on_the_loop(dbapi_conn: Any, _record: Any) -> None:
    # Never wait on the loop's thread: for a lock (the batch goes to the thread instead), or for
    # a checkpoint's disk writes (the thread runs those).
    dbapi_conn.execute("PRAGMA busy_timeout=0")
    dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")
