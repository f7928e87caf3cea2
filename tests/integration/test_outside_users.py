"""The users of outside OpenID Connect issuers in the store, on SQLite and PostgreSQL: one runwire
user per (issuer, subject), made on first sight, even by requests that come at once; never an
existing account found by its e-mail."""

from __future__ import annotations

import asyncio

from sqlalchemy import Table, func, select

from runwire.domain.ids import new_id
from runwire.store.schema import outside_identities, users
from runwire.store.store import Store

ISSUER = "https://id.example.com/realms/acme"


async def count(store: Store, table: Table) -> int:
    async with store.db.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_a_subject_is_one_user_from_its_first_sight_on(store: Store) -> None:
    first = await store.accounts.outside_user(ISSUER, "alice-sub", "alice@example.com")
    again = await store.accounts.outside_user(ISSUER, "alice-sub", "alice@example.com")
    assert again.id == first.id
    assert first.public() == {"id": first.id, "email": "alice@example.com"}
    # The same subject at another issuer is another person.
    other = await store.accounts.outside_user(ISSUER + "/other", "alice-sub", None)
    assert other.id != first.id and other.public() == {"id": other.id, "email": None}
    # The address follows what the issuer vouches for now; /api/me reads it by id.
    await store.accounts.outside_user(ISSUER, "alice-sub", "alice@new.example.com")
    found = await store.accounts.user_by_id(first.id)
    assert found is not None and found.public()["email"] == "alice@new.example.com"
    assert found.issuer == ISSUER
    # It signs in nowhere here: no password, and an address no one can register.
    assert found.email.endswith("@outside.invalid") and not found.password_hash.startswith("$")


async def test_requests_at_once_for_a_new_subject_make_one_user(store: Store) -> None:
    subject = new_id("sub")
    before = await count(store, users)
    made = await asyncio.gather(
        *(store.accounts.outside_user(ISSUER, subject, "bob@example.com") for _ in range(8))
    )
    assert len({user.id for user in made}) == 1
    assert await count(store, users) == before + 1
    async with store.db.connect() as conn:
        rows = (
            await conn.execute(
                select(outside_identities.c.user_id).where(outside_identities.c.subject == subject)
            )
        ).all()
    assert [row.user_id for row in rows] == [made[0].id]


async def test_an_outside_address_never_opens_a_local_account(store: Store) -> None:
    local = await store.accounts.create_user(new_id("usr"), "carol@example.com", "hash")
    outside = await store.accounts.outside_user(ISSUER, "carol-sub", "carol@example.com")
    assert outside.id != local.id
    # Signing in with the address still finds the local account, and only it.
    found = await store.accounts.user_by_email("carol@example.com")
    assert found is not None and found.id == local.id
    assert found.public() == {"id": local.id, "email": "carol@example.com"}
