"""Who may open ``/ws``: the checks of a WebSocket handshake, shared by both socket adapters.

A handshake is admitted (an :class:`Admission`: who, and their seat in the connection cap) or
denied (a :class:`Denial`, answered with an HTTP status and a JSON body before any WebSocket
frame): the server never accepts a socket only to close it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import orjson

from runwire.auth.service import Principal
from runwire.connections.base import Seat
from runwire.errors import AuthError
from runwire.transport.principal import bearer_token
from runwire.transport.services import Services

__all__ = ["Admission", "Credentials", "Denial", "admit", "credentials_of", "origin_allowed"]

# The headers a handshake is judged by. Each may appear once: with two, which one counts would
# depend on which reader looked (a proxy may check one Host and the server read the other).
_ONCE = {"host": "Host", "origin": "Origin", "authorization": "Authorization"}


@dataclass(frozen=True, slots=True)
class Admission:
    """An admitted handshake: the caller, and the seat its connection holds in the user's count
    (release it when the connection ends, or if it never opens)."""

    principal: Principal
    seat: Seat


@dataclass(frozen=True, slots=True)
class Denial:
    status: int
    code: str
    detail: str

    def body(self) -> bytes:
        return orjson.dumps({"detail": self.detail, "code": self.code})


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a handshake's headers say about where it comes from and who sends it."""

    origin: str | None = None
    host: str | None = None
    authorization: str | None = None


def credentials_of(headers: Iterable[tuple[str, str]]) -> Credentials | Denial:
    """Read Host, Origin and Authorization from a handshake's headers (name, value pairs in
    any case); a header of those three sent twice is a malformed request, refused with 400."""
    found: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        if key not in _ONCE:
            continue
        if key in found:
            return Denial(400, "bad_handshake", f"the {_ONCE[key]} header may appear only once")
        found[key] = value
    return Credentials(found.get("origin"), found.get("host"), found.get("authorization"))


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """Browsers always send Origin; programs usually do not. A browser page may open the socket
    only from an allowed origin (or, when none are configured, from the server's own host)."""
    if origin is None:
        return True
    if allowed:
        return origin in allowed or "*" in allowed
    return bool(host) and urlsplit(origin).netloc == host


def ticket_of(query: str) -> str | None:
    values = parse_qs(query).get("ticket")
    return values[0] if values else None


async def admit(
    services: Services, credentials: Credentials, *, ticket: str | None
) -> Admission | Denial:
    """Check a handshake's origin and credentials, and take a seat in the user's connection count
    (on every node: checking and taking are one step, so racing handshakes cannot overshoot)."""
    admitted = await _admit(services, credentials, ticket)
    if isinstance(admitted, Denial):
        services.metrics.errors.labels(admitted.code).inc()
    return admitted


async def _admit(
    services: Services, credentials: Credentials, ticket: str | None
) -> Admission | Denial:
    settings = services.settings
    if not origin_allowed(credentials.origin, credentials.host, settings.allowed_origins):
        return Denial(403, "forbidden_origin", "origin not allowed")
    try:
        async with asyncio.timeout(settings.ws_auth_timeout_s):
            principal = await _authenticate(services, credentials.authorization, ticket)
    except AuthError as exc:
        return Denial(401, exc.code, exc.message)
    except TimeoutError:
        return Denial(
            503,
            "auth_timeout",
            f"authentication did not complete within {settings.ws_auth_timeout_s:g} s; retry",
        )
    seat = await services.connections.claim(principal.user_id)
    if seat is None:
        cap = services.connections.max_per_user
        return Denial(
            429,
            "too_many_connections",
            f"this user already has {cap} open connections; close one first",
        )
    return Admission(principal, seat)


async def _authenticate(
    services: Services, authorization: str | None, ticket: str | None
) -> Principal:
    if ticket:
        return await services.auth.redeem_ticket(ticket)
    token = bearer_token(authorization)
    if not token:
        raise AuthError("missing credentials: pass ?ticket=… or an Authorization: Bearer header")
    return await services.auth.authenticate(token)
