"""The auth service on a real SQLite store: the flows PROTOCOL.md promises."""

import time

import jwt
import pytest

from runwire.app.tokens import build_access_tokens
from runwire.auth.key_files import KeyDirectory, KeyRing, open_keys
from runwire.auth.keys import SigningKey
from runwire.auth.passwords import Passwords
from runwire.auth.service import AuthService
from runwire.auth.throttle import AuthLimits, AuthThrottle
from runwire.config import Settings, SigningAlgorithm, load_settings
from runwire.errors import (
    AuthError,
    Conflict,
    InputError,
    InvalidCredentials,
    TokenExpired,
    TokenReused,
    WrongPassword,
)
from runwire.limits.memory import MemoryRateLimiter
from runwire.revocations.memory import MemoryRevocations
from runwire.store.store import Store

HERE = "192.0.2.1"


def throttle() -> AuthThrottle:
    """Limits these tests never reach (test_login_throttling.py is about reaching them)."""
    return AuthThrottle(
        AuthLimits.from_settings(load_settings()), MemoryRateLimiter(time.monotonic)
    )


@pytest.fixture
def keys(settings: Settings) -> KeyRing:
    return KeyRing(KeyDirectory(settings.keys_dir), open_keys(settings))


@pytest.fixture
def auth(store: Store, settings: Settings, keys: KeyRing) -> AuthService:
    return AuthService(
        store.accounts,
        Passwords(time_cost=1, memory_kib=64),
        build_access_tokens(settings, keys),
        throttle=throttle(),
        revocations=MemoryRevocations(),
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


def _signed(key: SigningKey, **claims: object) -> str:
    now = int(time.time())
    base = {"sub": "usr_x", "sid": "s", "iat": now, "exp": now + 60, "jti": "j"}
    base |= {"iss": "runwire", "aud": "runwire", "typ": "access"}
    return jwt.encode(
        base | claims, key.private_key, algorithm=key.algorithm.value, headers={"kid": key.kid}
    )


async def test_bad_tokens(auth: AuthService, keys: KeyRing) -> None:
    with pytest.raises(AuthError):
        await auth.authenticate("not-a-jwt")
    with pytest.raises(AuthError):
        await auth.refresh("unknown", address=HERE)
    ours = keys.signing()
    # A key of the same id made by someone else: its signature does not verify.
    stranger = SigningKey.generate(SigningAlgorithm.EDDSA, ours.public.created_at)
    impostor = SigningKey(
        type(ours.public)(ours.kid, ours.algorithm, stranger.public.public_key, 0),
        stranger.private_key,
    )
    with pytest.raises(AuthError):
        await auth.authenticate(_signed(impostor))
    with pytest.raises(TokenExpired):
        await auth.authenticate(_signed(ours, exp=int(time.time()) - 5))
    with pytest.raises(AuthError):
        await auth.authenticate(_signed(ours, typ="refresh"))


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


async def test_expired_refresh_and_ticket(store: Store, settings: Settings, keys: KeyRing) -> None:
    auth = AuthService(
        store.accounts,
        Passwords(time_cost=1, memory_kib=64),
        build_access_tokens(settings, keys),
        throttle=throttle(),
        revocations=MemoryRevocations(),
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


async def test_ending_a_session_tells_every_node(auth: AuthService) -> None:
    """Logout and refresh-token reuse record the session in the shared denylist, for as long as
    an access token of it can be valid; the denylist alone refuses its tokens and tickets."""
    await auth.register("a@example.com", "password1")
    laptop = await auth.login("a@example.com", "password1", address=HERE)
    principal = await auth.authenticate(laptop.access_token)
    await auth.logout(principal)
    assert auth.revocations.is_revoked(principal.family_id)

    phone = await auth.login("a@example.com", "password1", address=HERE)
    stolen = await auth.authenticate(phone.access_token)
    await auth.refresh(phone.refresh_token, address=HERE)
    assert not auth.revocations.is_revoked(stolen.family_id)
    with pytest.raises(TokenReused):
        await auth.refresh(phone.refresh_token, address=HERE)
    assert auth.revocations.is_revoked(stolen.family_id)

    # A session another node ended (known here only from the denylist) is refused too.
    tablet = await auth.login("a@example.com", "password1", address=HERE)
    ticket = await auth.issue_ticket(await auth.authenticate(tablet.access_token))
    ended_elsewhere = (await auth.authenticate(tablet.access_token)).family_id
    await auth.revocations.revoke(ended_elsewhere, time.time() + 60)
    with pytest.raises(AuthError, match="session has ended"):
        await auth.authenticate(tablet.access_token)
    with pytest.raises(AuthError, match="session has ended"):
        await auth.redeem_ticket(ticket)


async def test_a_password_change_ends_every_other_session(auth: AuthService) -> None:
    await auth.register("a@example.com", "password1")
    here = await auth.login("a@example.com", "password1", address=HERE)
    other = await auth.login("a@example.com", "password1", address=HERE)
    me = await auth.authenticate(here.access_token)
    them = await auth.authenticate(other.access_token)

    with pytest.raises(WrongPassword):
        await auth.change_password(me, "password2", "new password", address=HERE)
    with pytest.raises(InputError) as short:
        await auth.change_password(me, "password1", "short", address=HERE)
    assert short.value.code == "invalid_password"
    await auth.authenticate(other.access_token)  # nothing changed yet

    await auth.change_password(me, "password1", "new password", address=HERE)
    assert auth.revocations.is_revoked(them.family_id)
    assert not auth.revocations.is_revoked(me.family_id)
    with pytest.raises(AuthError):
        await auth.authenticate(other.access_token)
    with pytest.raises(AuthError):
        await auth.refresh(other.refresh_token, address=HERE)
    assert await auth.authenticate(here.access_token) == me  # the caller's session goes on
    with pytest.raises(InvalidCredentials):
        await auth.login("a@example.com", "password1", address=HERE)
    await auth.login("a@example.com", "new password", address=HERE)
