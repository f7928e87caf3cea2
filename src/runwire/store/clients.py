"""Service clients: the services that may get service tokens, and the client assertions they
have spent (each is good once)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from runwire.domain.clock import now_ms
from runwire.errors import Conflict
from runwire.store.database import Database
from runwire.store.records import ServiceClient
from runwire.store.schema import client_assertions, service_clients

__all__ = ["ServiceClients"]


def _client(row: Any) -> ServiceClient:
    return ServiceClient(
        id=row.id,
        name=row.name,
        scopes=tuple(row.scopes.split()),
        audience=row.audience,
        created_at=row.created_at,
        secret_hash=row.secret_hash,
        public_key=row.public_key,
        disabled_at=row.disabled_at,
    )


class ServiceClients:
    """The registry of service clients."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, client: ServiceClient) -> None:
        """Register ``client``; :class:`Conflict` when its name is taken."""
        try:
            async with self._db.begin() as conn:
                await conn.execute(
                    insert(service_clients).values(
                        id=client.id,
                        name=client.name,
                        secret_hash=client.secret_hash,
                        public_key=client.public_key,
                        scopes=" ".join(client.scopes),
                        audience=client.audience,
                        created_at=client.created_at,
                        disabled_at=client.disabled_at,
                    )
                )
        except IntegrityError:
            raise Conflict(f"a service client named {client.name!r} exists already") from None

    async def get(self, client_id: str) -> ServiceClient | None:
        async with self._db.connect() as conn:
            row = (
                await conn.execute(select(service_clients).where(service_clients.c.id == client_id))
            ).first()
        return _client(row) if row else None

    async def all(self) -> list[ServiceClient]:
        """Every client, oldest first."""
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(service_clients).order_by(service_clients.c.created_at, service_clients.c.id)
            )
            return [_client(row) for row in rows]

    async def disable(self, client_id: str) -> bool:
        """Refuse ``client_id`` tokens from now on (its row stays, for the record); False when
        there is no such client or it was disabled already."""
        async with self._db.begin() as conn:
            done = await conn.execute(
                update(service_clients)
                .where(service_clients.c.id == client_id, service_clients.c.disabled_at.is_(None))
                .values(disabled_at=now_ms())
            )
        return bool(done.rowcount)

    async def remove(self, client_id: str) -> bool:
        """Delete ``client_id`` (its spent assertions go with it); False when there is none."""
        async with self._db.begin() as conn:
            done = await conn.execute(
                delete(service_clients).where(service_clients.c.id == client_id)
            )
        return bool(done.rowcount)

    async def spend_assertion(self, client_id: str, jti: str, expires_at: int) -> bool:
        """Record that ``client_id``'s assertion ``jti`` has been used, until ``expires_at``
        (epoch ms); False when it was used before (a replay). Expired entries are swept on the
        way in, so the table holds only the assertions still within their lifetime."""
        try:
            async with self._db.begin() as conn:
                await conn.execute(
                    delete(client_assertions).where(client_assertions.c.expires_at <= now_ms())
                )
                await conn.execute(
                    insert(client_assertions).values(
                        client_id=client_id, jti=jti, expires_at=expires_at
                    )
                )
        except IntegrityError:
            return False
        return True
