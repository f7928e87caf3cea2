"""The auth service on a real SQLite store: the flows PROTOCOL.md promises."""

import time

import jwt
import pytest

from runwire.auth.passwords import Passwords
from runwire.auth.service import AuthService
from runwire.auth.throttle import AuthLimits, AuthThrottle
from runwire.auth.tokens import AccessTokens
from runwire.config import load_settings
from runwire.errors import (
    AuthError,
    Conflict,
    InputError,
    InvalidCredentials,
    TokenExpired,
    TokenReused,
)
from runwire.limits.memory import MemoryRateLimiter
from runwire.store.store import Store

SECRET = "s" * 40
HERE = "192.0.2.1"


def throttle() -> AuthThrottle:
    """Limits these tests never reach (test_login_throttling.py is about reaching them)."""
    return AuthThrottle(
        AuthLimits.from_settings(load_settings()), MemoryRateLimiter(time.monotonic)
    )


@pytest.fixture
def auth(store: Store) -> AuthService:
    return AuthService(
        store.accounts,
        Passwords(time_cost=1, memory_kib=64),
        AccessTokens(SECRET, 900),
        throttle=throttle(),
        refresh_ttl_s=3600,
        ticket_ttl_s=60,
    )


async def test_register_login_and_authenticate(auth: AuthService) -> None:
    user = await auth.register("  Ada@Example.com ", "correct horse")
    assert user.email == "ada@example.com"
    pair = await auth.login("ADA@example.com", "correct horse", address=HERE)
    principal = await auth.authenticate(pair.access_token)
    assert principal.user_id == user.id
    body = pair.public()
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    assert body["user"] == {"id": user.id, "email": "ada@example.com"}


async def test_duplicate_email_and_short_password(auth: AuthService) -> None:
    await auth.register("a@example.com", "password1")
    with pytest.raises(Conflict):
        await auth.register("A@example.com", "password2")
    with pytest.raises(InputError):
        await auth.register("b@example.com", "short")


async def test_an_account_needs_an_email_address(auth: AuthService) -> None:
    for bad in ("not-an-email", "Ada <ada@example.com>", "a@b@example.com", "ada@localhost"):
        with pytest.raises(InputError) as info:
            await auth.register(bad, "password1")
        assert info.value.message.startswith("email is not a valid address: "), bad
    assert await auth.register(" Ada.Lovelace@EXAMPLE.com ", "password1")
    with pytest.raises(InvalidCredentials):  # nothing was made of the refused addresses
        await auth.login("not-an-email", "password1", address=HERE)


async def test_unknown_user_and_wrong_password_look_the_same(auth: AuthService) -> None:
    await auth.register("a@example.com", "password1")
    with pytest.raises(InvalidCredentials) as wrong:
        await auth.login("a@example.com", "password2", address=HERE)
    with pytest.raises(InvalidCredentials) as unknown:
        await auth.login("nobody@example.com", "password1", address=HERE)
    assert wrong.value.message == unknown.value.message


async def test_refresh_rotates_and_reuse_revokes_the_family(auth: AuthService) -> None:
    await auth.register("a@example.com", "password1")
    first = await auth.login("a@example.com", "password1", address=HERE)
    second = await auth.refresh(first.refresh_token, address=HERE)
    assert second.refresh_token != first.refresh_token
    await auth.authenticate(second.access_token)
    with pytest.raises(TokenReused):
        await auth.refresh(first.refresh_token, address=HERE)  # the thief's replay...
    with pytest.raises(AuthError):
        await auth.refresh(
            second.refresh_token, address=HERE
        )  # ...logs out the legitimate holder too
    with pytest.raises(AuthError):
        await auth.authenticate(second.access_token)


async def test_logout_ends_only_that_session(auth: AuthService) -> None:
    await auth.register("a@example.com", "password1")
    laptop = await auth.login("a@example.com", "password1", address=HERE)
    phone = await auth.login("a@example.com", "password1", address=HERE)
    await auth.logout(await auth.authenticate(laptop.access_token))
    with pytest.raises(AuthError):
        await auth.authenticate(laptop.access_token)
    with pytest.raises(AuthError):
        await auth.refresh(laptop.refresh_token, address=HERE)
    await auth.authenticate(phone.access_token)


async def test_bad_tokens(auth: AuthService) -> None:
    with pytest.raises(AuthError):
        await auth.authenticate("not-a-jwt")
    with pytest.raises(AuthError):
        await auth.refresh("unknown", address=HERE)
    forged = jwt.encode(
        {"sub": "usr_x", "sid": "s", "iat": 1, "exp": 2**40, "iss": "runwire", "typ": "access"},
        "other-secret" * 4,
        algorithm="HS256",
    )
    with pytest.raises(AuthError):
        await auth.authenticate(forged)
    expired = jwt.encode(
        {
            "sub": "u",
            "sid": "s",
            "iat": 1,
            "exp": int(time.time()) - 5,
            "iss": "runwire",
            "typ": "access",
        },
        SECRET,
        algorithm="HS256",
    )
    with pytest.raises(TokenExpired):
        await auth.authenticate(expired)
    wrong_type = jwt.encode(
        {"sub": "u", "sid": "s", "iat": 1, "exp": 2**40, "iss": "runwire", "typ": "refresh"},
        SECRET,
        algorithm="HS256",
    )
    with pytest.raises(AuthError):
        await auth.authenticate(wrong_type)


async def test_tickets_are_single_use_and_die_with_the_session(auth: AuthService) -> None:
    await auth.register("a@example.com", "password1")
    pair = await auth.login("a@example.com", "password1", address=HERE)
    principal = await auth.authenticate(pair.access_token)
    ticket = await auth.issue_ticket(principal)
    assert await auth.redeem_ticket(ticket) == principal
    with pytest.raises(AuthError):
        await auth.redeem_ticket(ticket)
    second = await auth.issue_ticket(principal)
    await auth.logout(principal)
    with pytest.raises(AuthError):
        await auth.redeem_ticket(second)


async def test_expired_refresh_and_ticket(store: Store) -> None:
    auth = AuthService(
        store.accounts,
        Passwords(time_cost=1, memory_kib=64),
        AccessTokens(SECRET, 1),
        throttle=throttle(),
        refresh_ttl_s=0,
        ticket_ttl_s=0,
    )
    await auth.register("a@example.com", "password1")
    pair = await auth.login("a@example.com", "password1", address=HERE)
    with pytest.raises(TokenExpired):
        await auth.refresh(pair.refresh_token, address=HERE)
    ticket = await auth.issue_ticket(await auth.authenticate(pair.access_token))
    with pytest.raises(AuthError):
        await auth.redeem_ticket(ticket)
