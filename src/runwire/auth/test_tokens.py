"""Sessions of end-to-end test users, for a staging deployment's E2E suite (docs/auth.md, "Test
tokens").

``POST /auth/test-token`` exists only outside production and only when ``RUNWIRE_TEST_TOKEN_KEY``
is set (the settings refuse the key in production). A caller that presents the key gets a session
of a test user, made on first use: ``e2e-<name>@runwire.test``. ``.test`` is a special-use domain
that registration refuses, so no real account can have such an address, and a test user has no
password (its hash is no hash), so it can sign in no other way.
"""

from __future__ import annotations

import hmac
import re
import secrets

from runwire.auth.service import AuthService, TokenPair
from runwire.auth.throttle import AuthThrottle
from runwire.domain.ids import new_id
from runwire.errors import AuthError, Conflict, InputError
from runwire.store.accounts import Accounts
from runwire.store.records import User

__all__ = ["TEST_USER_DOMAIN", "E2ETokens", "e2e_user_email"]

TEST_USER_DOMAIN = "runwire.test"
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
# Not an argon2 hash: no password ever verifies against it.
NO_PASSWORD = "!test-user"  # noqa: S105 - marks the absence of a password


def e2e_user_email(name: str) -> str:
    """The address of the test user ``name`` (lower-case letters, digits and dashes)."""
    if NAME.fullmatch(name) is None:
        raise InputError(
            "name must be 1 to 40 lower-case letters, digits or dashes, starting with a letter "
            "or digit",
            code="invalid_input",
        )
    return f"e2e-{name}@{TEST_USER_DOMAIN}"


class E2ETokens:
    """Hands sessions of test users to callers that know ``key``."""

    def __init__(
        self, key: str, accounts: Accounts, auth: AuthService, throttle: AuthThrottle
    ) -> None:
        self._key = key.encode()
        self._accounts = accounts
        self._auth = auth
        self._throttle = throttle

    async def issue(self, presented: str | None, name: str | None, *, address: str) -> TokenPair:
        """A new session of the test user ``name`` (a fresh user when None).

        Raises :class:`AuthError` for a missing or wrong key (counted per ``address``, past the
        limit :class:`RateLimited`), :class:`InputError` for a name that is not one.
        """
        email = e2e_user_email(secrets.token_hex(6) if name is None else name)
        attempt = await self._throttle.test_token_attempt(address)
        # Compared in constant time: how long a refusal takes says nothing of the key.
        if presented is None or not hmac.compare_digest(presented.encode(), self._key):
            raise AuthError("missing or wrong X-Runwire-Test-Key")
        await attempt.succeeded()
        return await self._auth.start_session(await self._user(email))

    async def _user(self, email: str) -> User:
        user = await self._accounts.user_by_email(email)
        if user is not None:
            return user
        try:
            return await self._accounts.create_user(new_id("usr"), email, NO_PASSWORD)
        except Conflict:  # made meanwhile by a concurrent request for the same name
            made = await self._accounts.user_by_email(email)
            if made is None:
                raise
            return made
