"""The auth service: register, log in, refresh, log out, and WebSocket tickets.

A login starts a *token family* (one session). Every refresh spends the presented refresh token
and issues a successor in the same family; presenting a spent token again is treated as theft
and revokes the whole family. Access tokens name their family (``sid``), and a revoked family's
access tokens stop working at once (logout is immediate, not at expiry): ending a session
(logout, reuse, a password change) records it in the database and in the
:class:`~runwire.revocations.base.Revocations` every node shares, whose watchers close the
session's sockets.

With an outside OpenID Connect issuer (:class:`~runwire.auth.outside_tokens.OutsideTokens`), a
token's ``sub`` is a runwire user, made on first sight; such a token has no runwire session, so
it is its own: it ends at its expiry, and a ticket it buys expires no later.

Logins, sign-ups and refreshes pass the :class:`AuthThrottle` first, keyed by the caller's
network address (and, for logins, the normalised e-mail), so guessing costs time, not just CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email

from runwire.auth.outside_tokens import OutsideTokens
from runwire.auth.passwords import Passwords
from runwire.auth.throttle import AuthThrottle
from runwire.auth.tokens import AccessTokens, digest, opaque_secret
from runwire.domain.ids import new_id
from runwire.errors import (
    AuthError,
    InputError,
    InvalidCredentials,
    TokenExpired,
    TokenReused,
    WrongPassword,
)
from runwire.revocations.base import Revocations
from runwire.store.accounts import Accounts, RefreshOutcome
from runwire.store.records import User

__all__ = [
    "OUTSIDE_SESSION_PREFIX",
    "AuthService",
    "Principal",
    "TokenPair",
    "account_email",
    "create_account",
    "normalize_email",
]

MIN_PASSWORD = 8
MAX_PASSWORD = 1024
# An ended session is denied for its last access token's lifetime plus this much: for a verifier
# whose clock is a little behind the issuer's.
CLOCK_MARGIN_S = 60
# The session id of a caller with an outside issuer's token starts so: it names no token family
# (the id is the token's digest), and nothing but the token's expiry ends it.
OUTSIDE_SESSION_PREFIX = "ext_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the authenticated user and the session (token family) they act in.

    ``expires_at`` (epoch seconds) is set for an outside issuer's token: its session is the
    token, and ends with it."""

    user_id: str
    family_id: str
    expires_at: int | None = None


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    user: User

    def public(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "user": self.user.public(),
        }


def normalize_email(email: str) -> str:
    """The stored form of an account's e-mail: how a login's address is looked up."""
    return email.strip().lower()


def account_email(email: str) -> str:
    """The e-mail of a new account: ``email`` checked as an address (its syntax; no DNS lookup)
    and normalised. The one rule for every way to create an account (HTTP and command line).

    Raises :class:`InputError` (naming the field and why) when it is not an address.
    """
    try:
        address = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InputError(f"email is not a valid address: {exc}") from None
    return normalize_email(address.normalized)


async def create_account(
    accounts: Accounts, passwords: Passwords, email: str, password: str
) -> User:
    """Create an account for ``email`` (checked and normalised as :func:`account_email` does)
    with ``password``: the one way accounts with a password are made (sign-up and the CLI)."""
    account = account_email(email)
    check_password(password)
    password_hash = await passwords.hash(password)
    return await accounts.create_user(new_id("usr"), account, password_hash)


def check_password(password: str) -> None:
    """Raise :class:`InputError` unless ``password`` is of an allowed length."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InputError(
            f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters",
            code="invalid_password",
        )


class AuthService:
    def __init__(
        self,
        accounts: Accounts,
        passwords: Passwords,
        access: AccessTokens,
        *,
        throttle: AuthThrottle,
        revocations: Revocations,
        refresh_ttl_s: int,
        ticket_ttl_s: int,
        outside: OutsideTokens | None = None,
    ) -> None:
        self._outside = outside
        self._accounts = accounts
        self._passwords = passwords
        self._access = access
        self._throttle = throttle
        self.revocations = revocations
        self._refresh_ttl_ms = refresh_ttl_s * 1000
        self.ticket_ttl_s = ticket_ttl_s

    async def register(self, email: str, password: str, *, address: str | None = None) -> User:
        """Create an account. ``address`` is the caller's network address, limited per address;
        ``None`` is local administration (the CLI), which is not limited."""
        account = account_email(email)
        if address is not None:
            await self._throttle.register(address)
        return await create_account(self._accounts, self._passwords, account, password)

    async def login(self, email: str, password: str, *, address: str) -> TokenPair:
        """Start a session; raises InvalidCredentials, or RateLimited past the failure limits."""
        account = normalize_email(email)
        attempt = await self._throttle.login_attempt(account, address)
        try:
            user = await self._accounts.user_by_email(account)
            ok = await self._passwords.verify(user.password_hash if user else None, password)
        except Exception:
            await attempt.void()
            raise
        if user is None or not ok:
            raise InvalidCredentials("wrong e-mail or password")
        await attempt.succeeded()
        return await self.start_session(user)

    async def start_session(self, user: User) -> TokenPair:
        """A new session (token family) for ``user``, as a login starts one: the caller has
        established who it is."""
        family_id = new_id("ses")
        refresh = opaque_secret()
        await self._accounts.start_family(family_id, user.id, digest(refresh), self._expiry())
        return self._pair(user, family_id, refresh)

    async def refresh(self, refresh_token: str, *, address: str) -> TokenPair:
        """Spend ``refresh_token`` for a new pair (refreshes are limited per ``address``)."""
        await self._throttle.refresh(address)
        new_refresh = opaque_secret()
        outcome, user_id, family_id = await self._accounts.rotate(
            digest(refresh_token), digest(new_refresh), self._expiry()
        )
        if outcome == RefreshOutcome.REUSED and family_id is not None:
            await self._ended(family_id)
            raise TokenReused("refresh token was used before; this session is revoked")
        if outcome == RefreshOutcome.EXPIRED:
            raise TokenExpired("refresh token expired")
        if outcome != RefreshOutcome.OK or user_id is None or family_id is None:
            raise AuthError("invalid refresh token")
        user = await self._accounts.user_by_id(user_id)
        if user is None:
            raise AuthError("invalid refresh token")
        return self._pair(user, family_id, new_refresh)

    async def authenticate(self, access_token: str) -> Principal:
        """The caller an access token names: its signature and claims are checked, then that
        its session has not ended (the shared denylist, from memory; then the database, the
        record of every session, which a node learns nothing from Redis about)."""
        if self._outside is not None:
            return await self._outside_principal(access_token, self._outside)
        claims = await self._access.check(access_token)
        await self._check_active(claims.family_id, claims.user_id)
        return Principal(user_id=claims.user_id, family_id=claims.family_id)

    async def _outside_principal(self, token: str, outside: OutsideTokens) -> Principal:
        """The runwire user of an outside issuer's token: its ``sub`` is a user from the first
        request on. Never found by e-mail: an address the issuer vouches for is not one this
        server's accounts proved, so it never opens one of them (docs/decisions.md)."""
        claims = await outside.check(token)
        user = await self._accounts.outside_user(outside.issuer, claims.subject, claims.email)
        return Principal(
            user_id=user.id,
            family_id=OUTSIDE_SESSION_PREFIX + digest(token)[:32],
            expires_at=claims.expires_at,
        )

    async def logout(self, principal: Principal) -> None:
        """End the caller's session: its tokens stop working and its sockets close, on every
        node."""
        await self._accounts.revoke_family(principal.family_id, "logout")
        await self._ended(principal.family_id)

    async def change_password(
        self, principal: Principal, current: str, new: str, *, address: str
    ) -> None:
        """Replace the caller's password, given the current one, and end every *other* session
        of the user (the caller's goes on). A wrong current password counts as a failed login
        (the same limits): a stolen access token is no way to guess the password."""
        check_password(new)
        user = await self.user(principal)
        attempt = await self._throttle.login_attempt(user.email, address)
        try:
            ok = await self._passwords.verify(user.password_hash, current)
        except Exception:
            await attempt.void()
            raise
        if not ok:
            raise WrongPassword("current_password is not the account's password")
        await attempt.succeeded()
        password_hash = await self._passwords.hash(new)
        ended = await self._accounts.change_password(
            user.id, password_hash, keep_family=principal.family_id
        )
        for family_id in ended:
            await self._ended(family_id)

    async def issue_ticket(self, principal: Principal) -> str:
        ticket = opaque_secret()
        expires_at = int(time.time() * 1000) + self.ticket_ttl_s * 1000
        if principal.expires_at is not None:  # not past the outside token it was bought with
            expires_at = min(expires_at, principal.expires_at * 1000)
        await self._accounts.add_ticket(
            digest(ticket), principal.user_id, principal.family_id, expires_at
        )
        return ticket

    async def redeem_ticket(self, ticket: str) -> Principal:
        taken = await self._accounts.take_ticket(digest(ticket))
        if taken is None:
            raise AuthError("invalid or used ticket")
        user_id, family_id = taken
        if family_id.startswith(OUTSIDE_SESSION_PREFIX):
            # Bought with an outside token, which nothing revokes: the ticket's expiry (no later
            # than the token's) is the check.
            return Principal(user_id=user_id, family_id=family_id)
        await self._check_active(family_id, user_id)
        return Principal(user_id=user_id, family_id=family_id)

    async def user(self, principal: Principal) -> User:
        user = await self._accounts.user_by_id(principal.user_id)
        if user is None:
            raise AuthError("user no longer exists")
        return user

    async def _check_active(self, family_id: str, user_id: str) -> None:
        if self.revocations.is_revoked(family_id) or not await self._accounts.family_active(
            family_id, user_id
        ):
            raise AuthError("session has ended")

    async def _ended(self, family_id: str) -> None:
        """Tell every node that ``family_id`` has ended, for as long as an access token of it
        can still be valid."""
        until = time.time() + self._access.ttl_s + CLOCK_MARGIN_S
        await self.revocations.revoke(family_id, until)

    def _expiry(self) -> int:
        return int(time.time() * 1000) + self._refresh_ttl_ms

    def _pair(self, user: User, family_id: str, refresh: str) -> TokenPair:
        return TokenPair(
            access_token=self._access.issue(user.id, family_id),
            refresh_token=refresh,
            expires_in=self._access.ttl_s,
            user=user,
        )
