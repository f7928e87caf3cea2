"""Who a walk signs in as, and the sessions it opens: sign-up, sign-in, test users, tokens given
from outside, and signing out of what it opened when it is done."""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass, field
from typing import Any

from runwire.errors import CheckFailed
from runwire.probe.client import Api, answer, as_object

__all__ = ["Credentials", "Identities", "Session", "Sessions"]


@dataclass(frozen=True)
class Credentials:
    """An e-mail and password to sign in with; ``registered`` when the probe signed it up."""

    email: str
    password: str = field(repr=False)
    registered: bool = False

    @classmethod
    def fresh(cls) -> Credentials:
        # example.com is reserved for examples and accepts no mail; e-mail validation refuses
        # special-use names such as example.invalid.
        return cls(
            f"check-{secrets.token_hex(6)}@example.com", secrets.token_urlsafe(24), registered=True
        )


@dataclass
class Identities:
    """Who a walk signs in as: ``main`` walks the path, ``other`` must not see main's thread.

    Either may be given; one that is not is registered by the first walk that needs it and kept
    here, so a monitor signs up once rather than at every walk. With ``test_token_key`` (a
    staging deployment's ``RUNWIRE_TEST_TOKEN_KEY``) each walk gets new sessions of two test
    users from ``POST /auth/test-token`` instead, and needs no sign-up."""

    main: Credentials | None = None
    other: Credentials | None = None
    test_token_key: str | None = field(default=None, repr=False)
    # Access tokens got elsewhere (a chat node that trusts an outside OpenID Connect issuer has
    # no /auth/*): the walk uses them as they are, and ends no session of theirs.
    token: str | None = field(default=None, repr=False)
    other_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Session:
    """A signed-in user: who, and the access token the walk calls with."""

    email: str
    user_id: str
    token: str = field(repr=False)

    @classmethod
    def of(cls, body: dict[str, Any], call: str, email: str) -> Session:
        """The session a sign-in answered with (``access_token`` and ``user.id``);
        :class:`CheckFailed` naming ``call`` when the answer lacks either."""
        token, user = body.get("access_token"), body.get("user")
        user_id = user.get("id") if isinstance(user, dict) else None
        if not isinstance(token, str) or not token or not isinstance(user_id, str):
            raise CheckFailed(f"access_token and user.id from {call}", f"{sorted(body)}")
        return cls(email, user_id, token)


class Sessions:
    """The sessions one walk opens through ``api``; :meth:`end` signs out of each of them."""

    def __init__(self, api: Api, identities: Identities) -> None:
        self.api = api
        self.identities = identities
        self._opened: list[Session] = []

    async def register(self, call: str) -> Credentials:
        """Sign up a fresh user (``call`` names the call in a failure)."""
        credentials = Credentials.fresh()
        answer(
            await self.api.call(
                "POST",
                "/auth/register",
                json_body={"email": credentials.email, "password": credentials.password},
            ),
            201,
            call,
        )
        return credentials

    async def login(self, credentials: Credentials) -> Session:
        call = "POST /auth/login"
        body = answer(
            await self.api.call(
                "POST",
                "/auth/login",
                json_body={"email": credentials.email, "password": credentials.password},
            ),
            200,
            f"{call} as {credentials.email}",
        )
        return self._opened_from(body, call, credentials.email)

    async def test_user(self, name: str) -> Session:
        """A new session of the test user ``name`` (made by the deployment on first use)."""
        call = "POST /auth/test-token"
        key = self.identities.test_token_key
        assert key is not None
        response = await self.api.call(
            "POST",
            "/auth/test-token",
            json_body={"name": name},
            headers={"X-Runwire-Test-Key": key},
        )
        if response.status_code == 404:
            raise CheckFailed(
                f"200 from {call} (--test-token-key given)",
                "404: the deployment serves no test tokens (RUNWIRE_TEST_TOKEN_KEY is not set "
                "there, or it runs in production)",
            )
        body = answer(response, 200, f"{call} for e2e-{name}")
        user = body.get("user")
        email = user.get("email") if isinstance(user, dict) else None
        return self._opened_from(body, call, str(email or f"e2e-{name}"))

    async def bearer(self, token: str, option: str) -> Session:
        """The user a given access token names (``GET /api/me``); nothing signs it out."""
        call = f"GET /api/me with the {option} token"
        body = answer(await self.api.call("GET", "/api/me", token=token), 200, call)
        found = as_object(body.get("user"))
        user_id, email = found.get("id"), found.get("email")
        if not isinstance(user_id, str):
            raise CheckFailed(f"user.id from {call}", f"{sorted(found)}")
        return Session(email if isinstance(email, str) else f"user {user_id}", user_id, token)

    def _opened_from(self, body: dict[str, Any], call: str, email: str) -> Session:
        session = Session.of(body, call, email)
        self._opened.append(session)
        return session

    async def end(self) -> None:
        """Sign out of every session opened here (best effort: the walk's result is known)."""
        for session in self._opened:
            with contextlib.suppress(CheckFailed):
                await self.api.call("POST", "/auth/logout", token=session.token)
