"""Hot reads on an SQLite file run on the event loop (Database.read): they must never hold it.

A read that meets a lock (another process importing into the file, say) fails at once on the
loop's connection and waits on aiosqlite's thread instead; the loop keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

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
        async with Store.open(url) as store:
            turns = 0

            async def count_turns() -> None:
                nonlocal turns
                while True:
                    turns += 1
                    await asyncio.sleep(0)

            counter = asyncio.create_task(count_turns())
            read = asyncio.create_task(store.conversations.thread(user.id, "thr_none"))
            await asyncio.sleep(unit(0.2))
            assert not read.done()  # waiting for the lock...
            assert turns > 10  # ...while the loop goes on
            locker.execute("ROLLBACK")
            locker.close()
            assert await asyncio.wait_for(read, unit(5)) is None
            counter.cancel()
    finally:
        locker.close()
