"""Hot reads and writes on an SQLite file run on the event loop (Database.read, Database.write):
they must never hold it.

A read or a write that meets a lock (another process importing into the file, say) fails at once
on the loop's connection and waits on a thread instead; the loop keeps serving meanwhile. The
WAL is checkpointed off the loop.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import Connection, bindparam, event, insert, update
from sqlalchemy.exc import IntegrityError, ResourceClosedError

from runwire.domain.ids import new_epoch, new_id
from runwire.store.schema import threads
from runwire.store.store import Store
from tests.timing import unit

pytestmark = pytest.mark.integration


async def test_a_read_that_meets_a_lock_waits_off_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "runwire.db"
    url = f"sqlite+aiosqlite:///{path}"
    async with Store.open(url, migrate=True) as store:
        user = await store.accounts.create_user("usr_a", "a@example.com", "hash")
    # Another process takes the file for itself (exclusive locking mode, a write under way).
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("PRAGMA locking_mode=EXCLUSIVE")
    locker.execute("BEGIN EXCLUSIVE")
    locker.execute("UPDATE users SET email = 'b@example.com'")
    try:
        async with Store.open(url) as store, counting_turns() as turns:
            read = asyncio.create_task(store.conversations.thread(user.id, "thr_none"))
            await asyncio.sleep(unit(0.2))
            assert not read.done()  # waiting for the lock...
            assert turns[0] > 10  # ...while the loop goes on
            locker.execute("ROLLBACK")
            locker.close()
            assert await asyncio.wait_for(read, unit(5)) is None
    finally:
        locker.close()


@asynccontextmanager
async def counting_turns() -> AsyncIterator[list[int]]:
    """How many turns the event loop has taken meanwhile (``[n]``)."""
    turns = [0]

    async def count() -> None:
        while True:
            turns[0] += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count())
    try:
        yield turns
    finally:
        counter.cancel()


def add_thread(user_id: str, thread_id: str, title: str = "t") -> object:
    def job(conn: Connection) -> str:
        row = {"id": thread_id, "user_id": user_id, "title": title, "created_at": 1}
        conn.execute(insert(threads).values(**row, updated_at=1))
        return thread_id

    return job


async def test_a_write_that_meets_a_lock_waits_off_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "runwire.db"
    url = f"sqlite+aiosqlite:///{path}"
    async with Store.open(url, migrate=True) as store:
        user = await store.accounts.create_user("usr_a", "a@example.com", "hash")
        await store.db.write(add_thread(user.id, "thr_before"))
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")  # another process is writing
        try:
            async with counting_turns() as turns:
                write = asyncio.create_task(store.db.write(add_thread(user.id, "thr_during")))
                await asyncio.sleep(unit(0.2))
                assert not write.done()  # waiting for the lock...
                assert turns[0] > 10  # ...while the loop goes on
                locker.execute("ROLLBACK")
                assert await asyncio.wait_for(write, unit(5)) == "thr_during"
        finally:
            locker.close()
        # And the next one runs on the loop again.
        assert await store.db.write(add_thread(user.id, "thr_after")) == "thr_after"
        kept = await store.conversations.threads_of(user.id)
        assert sorted(t.id for t in kept) == ["thr_after", "thr_before", "thr_during"]


async def test_the_wal_is_checkpointed_into_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "runwire.db"
    url = f"sqlite+aiosqlite:///{path}"
    async with Store.open(url, migrate=True) as store:
        user = await store.accounts.create_user("usr_a", "a@example.com", "hash")
        writer = store.db._writer
        assert writer is not None
        writer.CHECKPOINT_EVERY_S = 0  # type: ignore[attr-defined]  # each write asks for one
        await store.db.write(add_thread(user.id, "thr_kept"))
        await asyncio.wait_for(_checkpoint_done(writer), unit(5))
        # The database file alone, without its WAL, holds the write.
        alone = tmp_path / "alone.db"
        shutil.copy(path, alone)
        copy = sqlite3.connect(alone)
        try:
            ids = [r[0] for r in copy.execute("SELECT id FROM threads")]
        finally:
            copy.close()
        assert ids == ["thr_kept"]


async def _checkpoint_done(writer: object) -> None:
    while getattr(writer, "_checkpoint", None) is not None:  # noqa: ASYNC110 - a thread's future
        await asyncio.sleep(0.005)


async def test_a_transaction_that_fails_as_a_whole_tells_every_write_in_it(tmp_path: Path) -> None:
    # Jobs queued together share a transaction; when its COMMIT fails (here a deferred
    # foreign-key check), none of them took effect, and each caller must hear so, not wait.
    path = tmp_path / "runwire.db"
    url = f"sqlite+aiosqlite:///{path}"
    async with Store.open(url, migrate=True) as store:
        user = await store.accounts.create_user("usr_a", "a@example.com", "hash")

        def orphan(conn: Connection) -> str:
            conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")  # checked at COMMIT only
            row = {"id": "thr_orphan", "user_id": "usr_nobody", "title": "t", "created_at": 1}
            conn.execute(insert(threads).values(**row, updated_at=1))
            return "thr_orphan"

        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")  # holds the writers back while two jobs queue up
        try:
            first = asyncio.create_task(store.db.write(add_thread(user.id, "thr_first")))
            await asyncio.sleep(unit(0.05))
            bad = asyncio.create_task(store.db.write(orphan))
            good = asyncio.create_task(store.db.write(add_thread(user.id, "thr_good")))
            await asyncio.sleep(unit(0.05))
            locker.execute("ROLLBACK")
        finally:
            locker.close()
        assert await asyncio.wait_for(first, unit(5)) == "thr_first"
        results = await asyncio.wait_for(asyncio.gather(bad, good, return_exceptions=True), unit(5))
        assert all(isinstance(r, IntegrityError) for r in results), results
        kept = await store.conversations.threads_of(user.id)
        assert [t.id for t in kept] == ["thr_first"]
        assert await store.db.write(add_thread(user.id, "thr_after")) == "thr_after"


async def test_messages_accepted_at_once_share_one_transaction(tmp_path: Path) -> None:
    # On the loop's thread a write runs as soon as it is asked for, so nothing else could
    # queue beside it: the accepts of a burst of messages wait for the loop to go round once
    # and go in together, rather than pay a transaction (the write lock, COMMIT) each.
    async with Store.open(f"sqlite+aiosqlite:///{tmp_path / 'runwire.db'}", migrate=True) as store:
        users = [
            (await store.accounts.create_user(new_id("usr"), f"{new_id('u')}@x.io", "h")).id
            for _ in range(20)
        ]
        commits: list[int] = []
        engine = store.db._writer._engine  # type: ignore[union-attr]  # the loop's connection
        event.listen(engine, "commit", lambda conn: commits.append(1))
        accepted = await asyncio.gather(
            *(
                store.conversations.accept_run(
                    user_id=u, thread=None, content="hi", run_id=new_id("run"), epoch=new_epoch()
                )
                for u in users
            )
        )
        assert len(commits) == 1
        for acceptance in accepted:
            assert [m.id for m in await store.conversations.messages_of(acceptance.thread.id)] == [
                acceptance.message.id
            ]


async def test_a_long_write_runs_off_the_event_loop_and_a_cancel_waits_for_its_end(
    tmp_path: Path,
) -> None:
    # Database.write_off_loop: a slice of an import runs on the writer's thread; the loop goes
    # on meanwhile, and the write lock is held until the transaction is over even when the
    # caller gives up (the next write must not find the file locked).
    url = f"sqlite+aiosqlite:///{tmp_path / 'runwire.db'}"
    async with Store.open(url, migrate=True) as store:
        user = await store.accounts.create_user("usr_a", "a@example.com", "hash")
        started = asyncio.Event()
        loop = asyncio.get_running_loop()

        def thread_row(thread_id: str) -> Callable[[Connection], None]:
            def add(conn: Connection) -> None:
                conn.execute(
                    insert(threads).values(
                        id=thread_id, user_id=user.id, title="t", created_at=0, updated_at=0
                    )
                )

            return add

        def slow(conn: Connection) -> None:
            loop.call_soon_threadsafe(started.set)
            time.sleep(unit(0.2))  # the thread's, not the loop's
            thread_row("thr_slow")(conn)

        async with counting_turns() as turns:
            write = asyncio.create_task(store.db.write_off_loop(slow))
            await started.wait()
            write.cancel()
            await asyncio.sleep(unit(0.05))
            assert turns[0] > 10 and not write.done()  # the loop runs; the write is not over
            with pytest.raises(asyncio.CancelledError):
                await write
        assert [t.id for t in await store.conversations.threads_of(user.id)] == ["thr_slow"]
        await store.db.write(thread_row("thr_next"))  # on the loop: the lock is free
        assert len(await store.conversations.threads_of(user.id)) == 2


async def test_the_wal_is_emptied_again_under_writes_that_never_pause(tmp_path: Path) -> None:
    # A PASSIVE checkpoint never holds a write back, and SQLite starts the WAL over only when a
    # write begins with every frame copied: with writes back to back that moment never came,
    # and the WAL (and each reader's index of it) grew with everything ever written (1.9 GB in
    # three minutes of bench/soak.py). Past its limit, the WAL must be emptied while the writes
    # go on, again and again.
    # The bound is on time, not bytes: the checkpoint runs on a thread of its own, which a busy
    # machine runs late (0.1-0.4 s measured under load, a few hundred of these writes), so how
    # far past its limit the WAL grows meanwhile measures the machine, not the store.
    path = tmp_path / "runwire.db"
    wal = tmp_path / "runwire.db-wal"
    async with Store.open(f"sqlite+aiosqlite:///{path}", migrate=True) as store:
        user = await store.accounts.create_user("usr_a", "a@example.com", "hash")
        writer = store.db._writer
        assert writer is not None
        writer.CHECKPOINT_EVERY_S = 0  # type: ignore[attr-defined]  # each write asks for one
        writer.WAL_LIMIT_FRAMES = 64  # type: ignore[attr-defined]  # 256 KiB
        limit = 64 * 4096
        written = emptied = size = 0
        over_since: float | None = None  # when the WAL was first seen past its limit
        while written < 300 or emptied < 3:  # 300 writes: about 7 MiB of WAL frames
            await store.db.write(add_thread(user.id, f"thr_{written}", title="x" * 6000))
            written += 1
            await asyncio.sleep(0)  # the checkpoint's thread reports back
            before, size, now = size, wal.stat().st_size, time.monotonic()
            if size < before:
                emptied += 1
                over_since = None
            elif size > limit and over_since is None:
                over_since = now
            past = 0.0 if over_since is None else now - over_since
            assert past < unit(2), (
                f"the WAL stayed past its limit for {past:.1f} s, emptied {emptied} times in "
                f"{written} writes; it grew to {size:,} bytes"
            )
        assert len(await store.conversations.threads_of(user.id, limit=written + 1)) == written


@pytest.mark.parametrize("on_file", [True, False], ids=["file", "in-memory"])
async def test_a_prepared_write_on_the_loop_answers_as_sqlalchemy_would(
    tmp_path: Path, on_file: bool
) -> None:
    # On the loop's connection a prepared write of no rows back runs on the driver itself; what
    # it gives back and raises is what SQLAlchemy's own execution gives (the in-memory database
    # runs it through SQLAlchemy).
    url = f"sqlite+aiosqlite:///{tmp_path / 'runwire.db'}" if on_file else "sqlite+aiosqlite://"
    async with Store.open(url, migrate=True) as store:
        user = await store.accounts.create_user("usr_a", "a@example.com", "hash")
        await store.db.write(add_thread(user.id, "thr_a"))
        add = store.db.prepare(
            insert(threads).values(
                id=bindparam("t_id"), user_id=user.id, title="t", created_at=1, updated_at=1
            )
        )
        rename = store.db.prepare(
            update(threads).where(threads.c.user_id == user.id).values(title=bindparam("t"))
        )

        def renamed(conn: Connection) -> int:
            add.run(conn, t_id="thr_b")
            done = rename.run(conn, t="renamed")
            for read in (done.scalar, done.first, lambda: list(done)):
                with pytest.raises(ResourceClosedError):
                    read()
            return done.rowcount

        assert await store.db.write(renamed) == 2
        with pytest.raises(IntegrityError) as failed:  # thr_a is taken
            await store.db.write(lambda conn: add.run(conn, t_id="thr_a"))
        assert isinstance(failed.value.orig, sqlite3.IntegrityError)
        kept = await store.conversations.threads_of(user.id)
        assert sorted((t.id, t.title) for t in kept) == [("thr_a", "renamed"), ("thr_b", "renamed")]
