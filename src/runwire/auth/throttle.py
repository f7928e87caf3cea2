"""Throttling of the auth calls: failed logins per account and per address, and sign-ups and
refreshes per address, counted by a :class:`RateLimiter` (in Redis when there are several nodes,
so a lockout on one node holds on every other).

A login is counted *before* its password is checked (so concurrent guesses cannot all slip in
while the first is still hashing) and given back when it succeeds: only failures stay counted.
While an account or an address is locked out, every login is refused without checking the
password, the right one included, and the answer is the same whether the account exists or not.
"""

from __future__ import annotations

from dataclasses import dataclass

from runwire.config import Settings
from runwire.errors import RateLimited
from runwire.limits.base import Limit, RateLimiter
from runwire.limits.buckets import Rate

__all__ = ["AuthLimits", "AuthThrottle", "KeyAttempt", "LoginAttempt"]


@dataclass(frozen=True, slots=True)
class AuthLimits:
    """The rates of the auth calls (``RUNWIRE_LOGIN_*``, ``RUNWIRE_REGISTER_*``, ...)."""

    login_account: Limit
    login_address: Limit
    register_address: Limit
    refresh_address: Limit
    # Wrong X-Runwire-Test-Key headers per address, at the rate of failed logins per address.
    test_token_address: Limit
    # Failed client authentications at POST /auth/token per address, at the same rate.
    client_address: Limit

    @classmethod
    def of(
        cls, login_account: Rate, login_address: Rate, register_address: Rate, refresh_address: Rate
    ) -> AuthLimits:
        """The four rates under their limits' names (the names are where the counts are kept)."""
        return cls(
            login_account=Limit("login-account", login_account),
            login_address=Limit("login-address", login_address),
            register_address=Limit("register-address", register_address),
            refresh_address=Limit("refresh-address", refresh_address),
            test_token_address=Limit("test-token-address", login_address),
            client_address=Limit("client-auth-address", login_address),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthLimits:
        return cls.of(
            login_account=Rate.per_window(
                settings.login_account_failures, settings.login_account_window_s
            ),
            login_address=Rate.per_window(settings.login_ip_failures, settings.login_ip_window_s),
            register_address=Rate.per_window(
                settings.register_ip_requests, settings.register_ip_window_s
            ),
            refresh_address=Rate.per_window(
                settings.refresh_ip_requests, settings.refresh_ip_window_s
            ),
        )


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """A login counted as a failure until it is shown to have succeeded."""

    account: str
    address: str
    limits: AuthLimits
    limiter: RateLimiter

    async def succeeded(self) -> None:
        """The password was right: the account starts afresh, the address gets its token back."""
        await self.limiter.reset(self.limits.login_account, self.account)
        await self.limiter.refund(self.limits.login_address, self.address)

    async def void(self) -> None:
        """The server failed before it could tell (say, the database is down): nothing counts."""
        await self.limiter.refund(self.limits.login_account, self.account)
        await self.limiter.refund(self.limits.login_address, self.address)


@dataclass(frozen=True, slots=True)
class KeyAttempt:
    """A presented key, counted as a wrong guess until it is shown to be right."""

    address: str
    limit: Limit
    limiter: RateLimiter

    async def succeeded(self) -> None:
        await self.limiter.refund(self.limit, self.address)


class AuthThrottle:
    """The per-account and per-address limits of login, register and refresh."""

    def __init__(self, limits: AuthLimits, limiter: RateLimiter) -> None:
        self._limits = limits
        self._limiter = limiter

    async def login_attempt(self, account: str, address: str) -> LoginAttempt:
        """Count a login for ``account`` (a normalised e-mail) from ``address``, or refuse it.

        Raises :class:`RateLimited` when either is locked out; then nothing is counted.
        """
        limits, limiter = self._limits, self._limiter
        by_address = await limiter.acquire(limits.login_address, address)
        if not by_address.allowed:
            raise RateLimited(
                "too many failed logins from your network address",
                retry_after_s=by_address.retry_after_s,
            )
        by_account = await limiter.acquire(limits.login_account, account)
        if not by_account.allowed:
            await limiter.refund(limits.login_address, address)
            raise RateLimited(
                "too many failed logins for this account", retry_after_s=by_account.retry_after_s
            )
        return LoginAttempt(account, address, limits, limiter)

    async def test_token_attempt(self, address: str) -> KeyAttempt:
        """Count a test-token request from ``address`` (given back when its key is right), or
        raise :class:`RateLimited`: guessing the key costs what guessing a password does."""
        limit = self._limits.test_token_address
        decision = await self._limiter.acquire(limit, address)
        if not decision.allowed:
            raise RateLimited(
                "too many wrong test-token keys from your network address",
                retry_after_s=decision.retry_after_s,
            )
        return KeyAttempt(address, limit, self._limiter)

    async def client_attempt(self, address: str) -> KeyAttempt:
        """Count a client authentication from ``address`` (given back when it succeeds), or
        raise :class:`RateLimited`: guessing a client's credentials costs what guessing a
        password does."""
        limit = self._limits.client_address
        decision = await self._limiter.acquire(limit, address)
        if not decision.allowed:
            raise RateLimited(
                "too many failed client authentications from your network address",
                retry_after_s=decision.retry_after_s,
            )
        return KeyAttempt(address, limit, self._limiter)

    async def register(self, address: str) -> None:
        """Count a sign-up from ``address``, or raise :class:`RateLimited`."""
        decision = await self._limiter.acquire(self._limits.register_address, address)
        if not decision.allowed:
            raise RateLimited(
                "too many sign-ups from your network address",
                retry_after_s=decision.retry_after_s,
            )

    async def refresh(self, address: str) -> None:
        """Count a token refresh from ``address``, or raise :class:`RateLimited`."""
        decision = await self._limiter.acquire(self._limits.refresh_address, address)
        if not decision.allowed:
            raise RateLimited(
                "too many token refreshes from your network address",
                retry_after_s=decision.retry_after_s,
            )
