"""Database engines and their URLs: how each is made, and what an operator may be shown of it.

A PostgreSQL engine's pool pings a connection before use only when it has sat idle
(``_PING_AFTER_IDLE_S``): under load every checkout's ping was a round trip of its own
(docs/benchmarks.md, "Several nodes (issue 15, branch redisq)"); and it hands out the
connection used last, so that under load few sit idle that long (branch pgaccept). An SQLite file is created for its
owner only, and every connection to it runs in WAL mode.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import await_

__all__ = [
    "BUSY_TIMEOUT_MS",
    "compress_with_lz4",
    "create_private",
    "postgres_engine",
    "redact_url",
    "sqlite_pragmas",
    "without_secret",
]

log = logging.getLogger(__name__)


# A pooled PostgreSQL connection back in the pool for less than this is used without a ping: it
# worked a moment ago, and were the server to restart meanwhile, the statements then in flight
# fail and make the pool replace every connection older than that failure anyway. One idle
# longer (the server may have restarted or closed it since, unseen) is pinged and replaced if
# dead, so a quiet server's first request after a restart does not fail.
_PING_AFTER_IDLE_S = 0.1


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


def create_private(path: Path) -> None:
    """Create the SQLite file (and its directory) for its owner only, if it is not there yet.

    It holds password hashes. SQLite would create it readable by everyone (0644 under the usual
    umask); made here first, 0600, it stays so, and SQLite gives its -wal and -shm files the
    mode of the database file. An existing file keeps the mode its owner chose.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


BUSY_TIMEOUT_MS = 10_000  # how long a connection off the loop waits for SQLite's locks


def sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; busy_timeout turns lock contention into waiting
    # (set first: the journal_mode statement itself may meet a lock).
    cursor = dbapi_conn.cursor()
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def postgres_engine(url: URL, **options: Any) -> AsyncEngine:
    """An engine on PostgreSQL whose pool pings a connection only after it sat idle, and
    hands out the connection returned last (LIFO): under load the same few stay in use, each
    idle too briefly to be pinged, where taking the one idle longest (FIFO) let every
    connection of the pool sit idle past the threshold between two uses, and each checkout was
    a ping of three round trips (``BEGIN``, the ping, ``ROLLBACK``)."""
    engine = create_async_engine(url, pool_use_lifo=True, **options)
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


def compress_with_lz4(dbapi_conn: Any, _record: Any) -> None:
    """Values PostgreSQL compresses on this connection (a block of events, once it passes
    ~2 KB) are compressed with lz4 rather than pglz: it took a third less of PostgreSQL's CPU
    per stored event, for rows 10% larger (docs/benchmarks.md, "Storing events, session 12").
    A server built without lz4 refuses the setting and keeps pglz; values already stored read
    the same either way."""
    try:
        await_(dbapi_conn.driver_connection.execute("SET default_toast_compression = lz4"))
    except Exception as exc:
        log.info("PostgreSQL keeps its own compression (%s)", type(exc).__name__)
