"""Throttling of the auth calls: failed logins per account and per address, and sign-ups and
refreshes per address.

A login is counted *before* its password is checked (so concurrent guesses cannot all slip in
while the first is still hashing) and given back when it succeeds: only failures stay counted.
While an account or an address is locked out, every login is refused without checking the
password, the right one included, and the answer is the same whether the account exists or not.
"""

from __future__ import annotations

from dataclasses import dataclass

from runwire.config import Settings
from runwire.errors import RateLimited
from runwire.ratelimit import Clock, KeyedLimiter, Rate

__all__ = ["AuthLimits", "AuthThrottle", "LoginAttempt"]

MAX_TRACKED_KEYS = 50_000
"""Accounts (or addresses) remembered per limit: about 25 MB at worst for 320-character e-mails.
Only keys used within the last window are kept, so this cap matters only under a flood."""


@dataclass(frozen=True, slots=True)
class AuthLimits:
    """The rates of the auth calls (``RUNWIRE_LOGIN_*``, ``RUNWIRE_REGISTER_*``, ...)."""

    login_account: Rate
    login_address: Rate
    register_address: Rate
    refresh_address: Rate

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthLimits:
        return cls(
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
    by_account: KeyedLimiter
    by_address: KeyedLimiter

    def succeeded(self) -> None:
        """The password was right: the account starts afresh, the address gets its token back."""
        self.by_account.reset(self.account)
        self.by_address.refund(self.address)

    def void(self) -> None:
        """The server failed before it could tell (say, the database is down): nothing counts."""
        self.by_account.refund(self.account)
        self.by_address.refund(self.address)


class AuthThrottle:
    """The per-account and per-address limits of login, register and refresh, in memory."""

    def __init__(
        self, limits: AuthLimits, clock: Clock, *, max_keys: int = MAX_TRACKED_KEYS
    ) -> None:
        self._login_account = KeyedLimiter(limits.login_account, clock, max_keys=max_keys)
        self._login_address = KeyedLimiter(limits.login_address, clock, max_keys=max_keys)
        self._register_address = KeyedLimiter(limits.register_address, clock, max_keys=max_keys)
        self._refresh_address = KeyedLimiter(limits.refresh_address, clock, max_keys=max_keys)

    def login_attempt(self, account: str, address: str) -> LoginAttempt:
        """Count a login for ``account`` (a normalised e-mail) from ``address``, or refuse it.

        Raises :class:`RateLimited` when either is locked out; then nothing is counted.
        """
        by_address = self._login_address.acquire(address)
        if not by_address.allowed:
            raise RateLimited(
                "too many failed logins from your network address",
                retry_after_s=by_address.retry_after_s,
            )
        by_account = self._login_account.acquire(account)
        if not by_account.allowed:
            self._login_address.refund(address)
            raise RateLimited(
                "too many failed logins for this account", retry_after_s=by_account.retry_after_s
            )
        return LoginAttempt(account, address, self._login_account, self._login_address)

    def register(self, address: str) -> None:
        """Count a sign-up from ``address``, or raise :class:`RateLimited`."""
        decision = self._register_address.acquire(address)
        if not decision.allowed:
            raise RateLimited(
                "too many sign-ups from your network address",
                retry_after_s=decision.retry_after_s,
            )

    def refresh(self, address: str) -> None:
        """Count a token refresh from ``address``, or raise :class:`RateLimited`."""
        decision = self._refresh_address.acquire(address)
        if not decision.allowed:
            raise RateLimited(
                "too many token refreshes from your network address",
                retry_after_s=decision.retry_after_s,
            )
