"""Service tokens: what a service (a chat node, a scheduler, a partner's backend) gets at
``POST /auth/token`` for its client credentials (docs/auth.md, "Service accounts").

A service token is a JWT signed with the same keys as access tokens, so every verifier already
holds what checks it, but it is another kind of token: its ``typ`` is ``service`` (an access
token's is ``access``), it names a client (``sub`` and ``client_id``), not a user, and carries
no session (``sid``). Each verifier refuses the other kind, so a service token is never taken
for a user's session, nor a user's token for a service. ``scope`` lists what it may do; ``aud``
is the audience its client was registered for (runwire's own APIs take
``RUNWIRE_AUTH_AUDIENCE`` only).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

import jwt

from runwire.auth.tokens import Signer, TrustedKeys, decode_signed, learn_key_of
from runwire.errors import AuthError, InsufficientScope, ServiceTokenRequired

__all__ = ["SCOPE_DESCRIPTIONS", "Scope", "ServiceClaims", "ServiceTokens"]

SERVICE_TYP = "service"
REQUIRED_CLAIMS = ["sub", "exp", "iat", "iss", "aud", "jti"]


class Scope(StrEnum):
    """The scopes runwire's own APIs check."""

    MESSAGES_WRITE = "messages:write"  # post a message into a user's thread, on their behalf
    REVOCATIONS_READ = "revocations:read"  # read the feed of ended sessions (chat nodes)


SCOPE_DESCRIPTIONS = {
    Scope.MESSAGES_WRITE: "Post a message into a user's thread on their behalf "
    "(/internal/users/...) and start its run.",
    Scope.REVOCATIONS_READ: "Read the feed of ended sessions (GET /auth/revocations).",
}


@dataclass(frozen=True, slots=True)
class ServiceClaims:
    """Who a valid service token speaks for, and what it may do."""

    client_id: str
    scopes: frozenset[str]
    expires_at: int

    def require(self, scope: str) -> None:
        """Raise :class:`InsufficientScope` unless the token carries ``scope``."""
        if scope not in self.scopes:
            raise InsufficientScope(scope)


class ServiceTokens:
    """Issues service tokens with ``signer``'s key; verifies them against ``trusted`` for this
    node's ``audience``."""

    def __init__(
        self, signer: Signer, trusted: TrustedKeys, *, issuer: str, audience: str, ttl_s: int
    ) -> None:
        self._signer = signer
        self._trusted = trusted
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s

    def issue(self, client_id: str, audience: str, scopes: list[str]) -> str:
        """A token for ``client_id`` with ``scopes``, for ``audience``, valid ``ttl_s``."""
        key = self._signer.signing()
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": audience,
            "sub": client_id,
            "client_id": client_id,
            "scope": " ".join(scopes),
            "iat": now,
            "exp": now + self.ttl_s,
            "jti": secrets.token_hex(8),
            "typ": SERVICE_TYP,
        }
        return jwt.encode(
            claims, key.private_key, algorithm=key.algorithm.value, headers={"kid": key.kid}
        )

    async def check(self, token: str) -> ServiceClaims:
        """The claims of a valid service token for this node's audience, after letting the
        trusted keys learn a new kid. Raises :class:`ServiceTokenRequired` for a user's access
        token, :class:`AuthError` (or :class:`~runwire.errors.TokenExpired`) for a bad one."""
        await learn_key_of(token, self._trusted)
        claims, _ = decode_signed(
            token,
            self._trusted,
            issuer=self.issuer,
            audience=self.audience,
            required=REQUIRED_CLAIMS,
            what="service token",
        )
        if claims.get("typ") != SERVICE_TYP:
            if claims.get("typ") == "access":
                raise ServiceTokenRequired(
                    "this API takes a service token (POST /auth/token with client "
                    "credentials), not a user's access token"
                )
            raise AuthError("invalid service token")
        scope = claims.get("scope")
        if not isinstance(scope, str):
            raise AuthError("invalid service token")
        return ServiceClaims(
            client_id=str(claims["sub"]),
            scopes=frozenset(scope.split()),
            expires_at=int(claims["exp"]),
        )
