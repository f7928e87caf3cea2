"""Accounts: users (those of outside issuers too), refresh-token families and single-use
WebSocket tickets."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from runwire.domain.clock import now_ms
from runwire.domain.ids import new_id
from runwire.errors import Conflict
from runwire.store.database import Database
from runwire.store.records import User
from runwire.store.schema import (
    outside_identities,
    refresh_tokens,
    token_families,
    users,
    ws_tickets,
)

__all__ = ["OUTSIDE_DOMAIN", "Accounts", "RefreshOutcome"]

# The sign-in address of a user of an outside issuer: ``.invalid`` is a special-use domain
# (RFC 6761) that registration refuses, so it names no account of anyone else; the user has no
# password either, so it signs in nowhere but at its issuer.
OUTSIDE_DOMAIN = "outside.invalid"
NO_PASSWORD = "!outside-user"  # noqa: S105 - marks the absence of a password


class RefreshOutcome:
    """What presenting a refresh token found: ``ok``, ``unknown``, ``expired`` or ``reused``."""

    OK = "ok"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REUSED = "reused"
    REVOKED = "revoked"


class Accounts:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_user(self, user_id: str, email: str, password_hash: str) -> User:
        user = User(id=user_id, email=email, password_hash=password_hash, created_at=now_ms())
        try:
            async with self._db.begin() as conn:
                await conn.execute(
                    insert(users).values(
                        id=user.id,
                        email=user.email,
                        password_hash=user.password_hash,
                        created_at=user.created_at,
                    )
                )
        except IntegrityError:
            raise Conflict("this e-mail address is already registered") from None
        return user

    async def user_by_email(self, email: str) -> User | None:
        async with self._db.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.email == email))).first()
        return User(**row._mapping) if row else None

    async def user_by_id(self, user_id: str) -> User | None:
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        users,
                        outside_identities.c.issuer,
                        outside_identities.c.email.label("outside_email"),
                    )
                    .outerjoin(outside_identities, outside_identities.c.user_id == users.c.id)
                    .where(users.c.id == user_id)
                )
            ).first()
        return User(**row._mapping) if row else None

    async def outside_user(self, issuer: str, subject: str, email: str | None) -> User:
        """The user of ``subject`` at the outside ``issuer``, made on first sight; its
        ``outside_email`` follows the latest token's ``email``. Concurrent first requests get
        the same user: the (issuer, subject) key admits one row, the others read it."""
        found = await self._outside(issuer, subject)
        if found is None:
            user_id = new_id("usr")
            created = now_ms()
            try:
                async with self._db.begin() as conn:
                    await conn.execute(
                        insert(users).values(
                            id=user_id,
                            email=f"{user_id}@{OUTSIDE_DOMAIN}",
                            password_hash=NO_PASSWORD,
                            created_at=created,
                        )
                    )
                    await conn.execute(
                        insert(outside_identities).values(
                            issuer=issuer,
                            subject=subject,
                            user_id=user_id,
                            email=email,
                            created_at=created,
                        )
                    )
            except IntegrityError:
                # Another request made this subject's user meanwhile; this one's row is undone.
                found = await self._outside(issuer, subject)
                if found is None:
                    raise
            else:
                return User(
                    user_id,
                    f"{user_id}@{OUTSIDE_DOMAIN}",
                    NO_PASSWORD,
                    created,
                    issuer=issuer,
                    outside_email=email,
                )
        if found.outside_email != email:
            async with self._db.begin() as conn:
                await conn.execute(
                    update(outside_identities)
                    .where(
                        outside_identities.c.issuer == issuer,
                        outside_identities.c.subject == subject,
                    )
                    .values(email=email)
                )
            found = User(
                found.id,
                found.email,
                found.password_hash,
                found.created_at,
                issuer=issuer,
                outside_email=email,
            )
        return found

    async def _outside(self, issuer: str, subject: str) -> User | None:
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        users,
                        outside_identities.c.issuer,
                        outside_identities.c.email.label("outside_email"),
                    )
                    .join(outside_identities, outside_identities.c.user_id == users.c.id)
                    .where(
                        outside_identities.c.issuer == issuer,
                        outside_identities.c.subject == subject,
                    )
                )
            ).first()
        return User(**row._mapping) if row else None

    async def start_family(
        self, family_id: str, user_id: str, token_hash: str, expires_at: int
    ) -> None:
        async with self._db.begin() as conn:
            await conn.execute(
                insert(token_families).values(id=family_id, user_id=user_id, created_at=now_ms())
            )
            await conn.execute(
                insert(refresh_tokens).values(
                    token_hash=token_hash, family_id=family_id, expires_at=expires_at
                )
            )

    async def rotate(
        self, token_hash: str, new_hash: str, new_expires_at: int
    ) -> tuple[str, str | None, str | None]:
        """Spend a refresh token and issue its successor in the same family.

        Returns ``(outcome, user_id, family_id)``. A token already used revokes its whole family
        (``reused``): whoever holds the newer token of that family is logged out too.
        """
        now = now_ms()
        async with self._db.begin() as conn:
            row = (
                await conn.execute(
                    select(
                        refresh_tokens.c.family_id,
                        refresh_tokens.c.expires_at,
                        refresh_tokens.c.used_at,
                        token_families.c.user_id,
                        token_families.c.revoked_at,
                    )
                    .join(token_families, token_families.c.id == refresh_tokens.c.family_id)
                    .where(refresh_tokens.c.token_hash == token_hash)
                )
            ).first()
            if row is None:
                return RefreshOutcome.UNKNOWN, None, None
            if row.revoked_at is not None:
                return RefreshOutcome.REVOKED, row.user_id, row.family_id
            if row.used_at is not None:
                await conn.execute(
                    update(token_families)
                    .where(token_families.c.id == row.family_id)
                    .values(revoked_at=now, revoked_reason="reuse")
                )
                return RefreshOutcome.REUSED, row.user_id, row.family_id
            if row.expires_at <= now:
                return RefreshOutcome.EXPIRED, row.user_id, row.family_id
            # Guarded update: of two concurrent rotations only one sees used_at IS NULL.
            spent = await conn.execute(
                update(refresh_tokens)
                .where(
                    refresh_tokens.c.token_hash == token_hash, refresh_tokens.c.used_at.is_(None)
                )
                .values(used_at=now)
            )
            if spent.rowcount != 1:
                await conn.execute(
                    update(token_families)
                    .where(token_families.c.id == row.family_id)
                    .values(revoked_at=now, revoked_reason="reuse")
                )
                return RefreshOutcome.REUSED, row.user_id, row.family_id
            await conn.execute(
                insert(refresh_tokens).values(
                    token_hash=new_hash, family_id=row.family_id, expires_at=new_expires_at
                )
            )
        return RefreshOutcome.OK, row.user_id, row.family_id

    async def revoke_family(self, family_id: str, reason: str) -> None:
        async with self._db.begin() as conn:
            await conn.execute(
                update(token_families)
                .where(token_families.c.id == family_id, token_families.c.revoked_at.is_(None))
                .values(revoked_at=now_ms(), revoked_reason=reason)
            )

    async def change_password(
        self, user_id: str, password_hash: str, *, keep_family: str | None
    ) -> list[str]:
        """Set ``user_id``'s password hash and revoke every active family of the user but
        ``keep_family`` (reason ``password``), in one transaction; returns the revoked ids."""
        async with self._db.begin() as conn:
            await conn.execute(
                update(users).where(users.c.id == user_id).values(password_hash=password_hash)
            )
            ended = await conn.execute(
                update(token_families)
                .where(
                    token_families.c.user_id == user_id,
                    token_families.c.revoked_at.is_(None),
                    token_families.c.id != (keep_family or ""),
                )
                .values(revoked_at=now_ms(), revoked_reason="password")
                .returning(token_families.c.id)
            )
            return sorted(row.id for row in ended)

    async def family_active(self, family_id: str, user_id: str) -> bool:
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    select(token_families.c.revoked_at).where(
                        token_families.c.id == family_id, token_families.c.user_id == user_id
                    )
                )
            ).first()
        return row is not None and row.revoked_at is None

    async def revoked_since(
        self, after_ms: int, not_before_ms: int, limit: int
    ) -> list[tuple[str, int]]:
        """Sessions ended after ``after_ms`` and not before ``not_before_ms`` (epoch ms), oldest
        first, at most ``limit``: ``(family_id, revoked_at)`` each (the revocation feed)."""
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(token_families.c.id, token_families.c.revoked_at)
                .where(token_families.c.revoked_at > max(after_ms, not_before_ms - 1))
                .order_by(token_families.c.revoked_at, token_families.c.id)
                .limit(limit)
            )
            return [(row.id, row.revoked_at) for row in rows]

    async def add_ticket(
        self, ticket_hash: str, user_id: str, family_id: str, expires_at: int
    ) -> None:
        async with self._db.begin() as conn:
            # Expired tickets are swept on the way in, so the table stays small without a janitor.
            await conn.execute(delete(ws_tickets).where(ws_tickets.c.expires_at <= now_ms()))
            await conn.execute(
                insert(ws_tickets).values(
                    ticket_hash=ticket_hash,
                    user_id=user_id,
                    family_id=family_id,
                    expires_at=expires_at,
                )
            )

    async def take_ticket(self, ticket_hash: str) -> tuple[str, str] | None:
        """Consume a ticket atomically; return ``(user_id, family_id)`` if it was valid."""
        async with self._db.begin() as conn:
            row = (
                await conn.execute(
                    delete(ws_tickets)
                    .where(ws_tickets.c.ticket_hash == ticket_hash)
                    .returning(
                        ws_tickets.c.user_id, ws_tickets.c.family_id, ws_tickets.c.expires_at
                    )
                )
            ).first()
        if row is None or row.expires_at <= now_ms():
            return None
        return row.user_id, row.family_id
