"""The database: engine lifecycle, migrations and the readiness check.

``Database.open(url)`` is an async context manager; it owns the engine and disposes of it on exit.
The same code runs on SQLite (``sqlite+aiosqlite://``) and PostgreSQL (``postgresql+asyncpg://``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from runwire.errors import DependencyUnavailable

__all__ = ["Database", "redact_url", "without_secret"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


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


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; busy_timeout turns lock contention into waiting.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Database:
    """An open database engine. Create with :meth:`open`; never at import time."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # SQLite allows one writer at a time; writers that collide sleep in SQLite's busy handler
        # (up to 100 ms a try). Queueing them here instead keeps writes back to back.
        self._write_lock: asyncio.Lock | None = (
            asyncio.Lock() if engine.dialect.name == "sqlite" else None
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @staticmethod
    def sqlite_file(url: str) -> Path | None:
        """The file an SQLite URL names; None for PostgreSQL and in-memory SQLite."""
        if not url.startswith("sqlite") or "///" not in url:
            return None
        path = url.split("///", 1)[1].split("?", 1)[0]
        return Path(path) if path and path != ":memory:" else None

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str) -> AsyncIterator[Database]:
        path = cls.sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_pre_ping=not url.startswith("sqlite"))
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        try:
            yield cls(engine)
        finally:
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

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    def positional_insert(
        self, table: str, columns: Sequence[str], *, skip_existing: bool = False
    ) -> str:
        """``INSERT`` text with the driver's positional placeholders, for bulk rows as tuples.

        Hot paths (a run's events, thousands a second) skip SQLAlchemy's per-row parameter
        processing this way; the statement is built once per table, not per batch.
        ``skip_existing`` leaves rows whose key is taken as they are (``ON CONFLICT DO NOTHING``,
        the same text on SQLite and PostgreSQL) instead of failing the whole batch.
        """
        style = self.engine.dialect.paramstyle
        if style == "qmark":
            marks = ", ".join("?" for _ in columns)
        elif style == "numeric_dollar":
            marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        elif style in ("format", "pyformat"):
            marks = ", ".join("%s" for _ in columns)
        else:  # pragma: no cover - every driver runwire supports is listed above
            raise ValueError(f"unsupported paramstyle {style}")
        # Names come from store/schema.py, never from input.
        tail = " ON CONFLICT DO NOTHING" if skip_existing else ""
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}){tail}"  # noqa: S608

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
