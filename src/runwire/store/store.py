"""The store: one object that gives the rest of the server its repositories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from runwire.store.accounts import Accounts
from runwire.store.clients import ServiceClients
from runwire.store.conversations import Conversations
from runwire.store.database import Database
from runwire.store.run_log import RunLog
from runwire.store.usage import UsageStore

__all__ = ["Store"]


class Store:
    """Repositories over one database: ``accounts``, ``clients`` (service clients),
    ``conversations``, ``runs``, ``usage``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.accounts = Accounts(db)
        self.clients = ServiceClients(db)
        self.conversations = Conversations(db)
        self.runs = RunLog(db)
        self.usage = UsageStore(db)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        url: str,
        *,
        migrate: bool = False,
        on_write: Callable[[float], None] | None = None,
    ) -> AsyncIterator[Store]:
        """``on_write(seconds)``: told how long each write took (see ``Database.write``)."""
        async with Database.open(url, on_write=on_write) as db:
            if migrate:
                await db.migrate()
            yield cls(db)
