"""Each user's usage version: a number every write of their usage data bumps in its own
transaction, so whoever sees a version sees the records of it (and a cache or a summary of that
version is exact)."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from runwire.store.database import Database
from runwire.store.schema import usage_versions

__all__ = ["UsageVersions"]


class UsageVersions:
    """The statements that read and bump a user's usage version, prepared once."""

    def __init__(self, db: Database) -> None:
        self._current = db.prepare(
            select(usage_versions.c.version).where(usage_versions.c.user_id == bindparam("user_id"))
        )
        dialect_insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
        fresh = dialect_insert(usage_versions).values(user_id=bindparam("user_id"), version=1)
        self._bump = fresh.on_conflict_do_update(
            index_elements=[usage_versions.c.user_id],
            set_={"version": usage_versions.c.version + 1},
        )

    def current(self, conn: Connection, user_id: str) -> int:
        """The user's version (0 before their first write)."""
        return int(self._current.run(conn, user_id=user_id).scalar() or 0)

    def bump(self, conn: Connection, user_id: str) -> None:
        """Bump the user's version, in the transaction of the write it marks."""
        conn.execute(self._bump, {"user_id": user_id})
