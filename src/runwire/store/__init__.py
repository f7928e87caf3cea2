"""Persistence: SQL through SQLAlchemy (SQLite by default, PostgreSQL unchanged)."""

from runwire.store.database import Database
from runwire.store.records import Message, RunRecord, ThreadRecord, User
from runwire.store.store import Store

__all__ = ["Database", "Message", "RunRecord", "Store", "ThreadRecord", "User"]
