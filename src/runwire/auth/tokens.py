"""Access tokens (JWTs signed with the current signing key) and opaque secrets (refresh tokens,
tickets) stored as hashes.

An access token carries ``kid`` in its header and ``iss``, ``aud``, ``sub`` (the user), ``sid``
(the session: its token family), ``iat``, ``exp`` and ``jti``. Verification finds the key by
``kid`` among the trusted ones and accepts only that key's algorithm, the issuer and the audience
configured, and a token that has an expiry and is within it.

A client sends the same access token with every request for its whole lifetime, and checking an
Ed25519 or P-256 signature costs far more than the rest of a request's authentication
(docs/benchmarks.md, "Auth"). So a token once verified is remembered (a bounded number of them,
by their exact text, signature included): a repeat is checked for expiry and for its key still
being trusted, not verified again.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

from runwire.auth.keys import SigningKey, VerificationKey
from runwire.errors import AuthError, TokenExpired

__all__ = [
    "AccessClaims",
    "AccessTokens",
    "Signer",
    "TrustedKeys",
    "decode_signed",
    "digest",
    "learn_key_of",
    "opaque_secret",
]

# Claims a token must carry; one without any of them is refused (PyJWT checks presence).
REQUIRED_CLAIMS = ["sub", "sid", "exp", "iat", "iss", "aud", "jti"]
# Verified tokens remembered, at most (the oldest is forgotten first): about 2 MB.
VERIFIED_TOKENS = 4096


def opaque_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What the database keeps of a refresh token or ticket: a leak of the table grants nothing."""
    return hashlib.sha256(secret.encode()).hexdigest()


class TrustedKeys(Protocol):
    """Where a verifier finds the key a token names: today the server's own key files
    (:class:`~runwire.auth.key_files.KeyRing`); on a node without private keys, the issuer's
    published set."""

    def find(self, kid: str) -> VerificationKey | None:
        """The trusted key ``kid``, or None. No I/O: called on every request."""

    async def learn(self, kid: str) -> None:
        """Try to come to know ``kid`` (rate-limited): the one wait a request may have on the
        keys' source, for a token naming a key not seen yet (a rotation elsewhere)."""


class Signer(Protocol):
    """What an issuer signs with: the current signing key."""

    def signing(self) -> SigningKey:
        """The key to sign with now."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    family_id: str
    expires_at: int


class AccessTokens:
    """Issues access tokens with ``signer``'s key and verifies them against ``trusted``.

    ``wall`` (epoch seconds) tells a remembered token's expiry; tests pass their own."""

    def __init__(
        self,
        signer: Signer,
        trusted: TrustedKeys,
        *,
        issuer: str,
        audience: str,
        ttl_s: int,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._wall = wall
        self._signer = signer
        self._trusted = trusted
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s
        # token -> its claims and the kid that verified it; insertion order is age.
        self._verified: dict[str, tuple[AccessClaims, str]] = {}

    def issue(self, user_id: str, family_id: str) -> str:
        key = self._signer.signing()
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user_id,
            "sid": family_id,
            "iat": now,
            "exp": now + self.ttl_s,
            "jti": secrets.token_hex(8),
            "typ": "access",
        }
        return jwt.encode(
            claims, key.private_key, algorithm=key.algorithm.value, headers={"kid": key.kid}
        )

    async def check(self, token: str) -> AccessClaims:
        """:meth:`verify`, after letting the trusted keys learn a kid they do not hold yet."""
        if token not in self._verified:
            await learn_key_of(token, self._trusted)
        return self.verify(token)

    def verify(self, token: str) -> AccessClaims:
        """The claims of a valid access token; raises :class:`TokenExpired` past its expiry,
        :class:`AuthError` for anything else (the message never says which check failed)."""
        remembered = self._verified.get(token)
        if remembered is not None:
            claims, kid = remembered
            if claims.expires_at <= self._wall():
                del self._verified[token]
                raise TokenExpired("access token expired")
            if self._trusted.find(kid) is None:  # its key was retired or removed meanwhile
                del self._verified[token]
                raise AuthError("invalid access token")
            return claims
        verified = self._verify(token)
        if len(self._verified) >= VERIFIED_TOKENS:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = verified
        return verified[0]

    def _verify(self, token: str) -> tuple[AccessClaims, str]:
        claims, kid = decode_signed(
            token,
            self._trusted,
            issuer=self.issuer,
            audience=self.audience,
            required=REQUIRED_CLAIMS,
            what="access token",
        )
        if claims.get("typ") != "access":
            # A service token (typ "service") is no user's session, whatever else it says.
            raise AuthError("invalid access token")
        access = AccessClaims(
            user_id=claims["sub"], family_id=claims["sid"], expires_at=claims["exp"]
        )
        return access, kid


async def learn_key_of(token: str, trusted: TrustedKeys) -> None:
    """Let ``trusted`` learn the key ``token`` names, when it does not hold it yet (a rotation
    at the issuer); the learning is rate-limited by the keys' source."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        kid = None
    if isinstance(kid, str) and trusted.find(kid) is None:
        await trusted.learn(kid)


def decode_signed(
    token: str,
    trusted: TrustedKeys,
    *,
    issuer: str,
    audience: str,
    required: list[str],
    what: str,
) -> tuple[dict[str, Any], str]:
    """The claims of a JWT signed by one of the ``trusted`` keys, and that key's kid.

    The key is found by the header's ``kid`` and decides the algorithm: a header naming another
    (none, HS256 keyed with the public key, ...) is refused before any signature is looked at.
    Raises :class:`TokenExpired` past ``exp``, :class:`AuthError` (``invalid <what>``, never
    saying which check failed) for anything else.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthError(f"invalid {what}") from None
    kid = header.get("kid")
    key = trusted.find(kid) if isinstance(kid, str) else None
    if key is None or header.get("alg") != key.algorithm.value:
        raise AuthError(f"invalid {what}")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.public_key,
            algorithms=[key.algorithm.value],
            issuer=issuer,
            audience=audience,
            options={"require": required},
        )
    except jwt.ExpiredSignatureError:
        raise TokenExpired(f"{what} expired") from None
    except jwt.PyJWTError:
        raise AuthError(f"invalid {what}") from None
    return claims, key.kid
