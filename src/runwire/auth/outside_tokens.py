"""Access tokens of an outside OpenID Connect issuer (docs/auth.md, "Outside identity providers").

A chat node with ``RUNWIRE_AUTH_ISSUER_KIND=oidc`` accepts the access tokens (JWTs) of the one
issuer at ``RUNWIRE_AUTH_ISSUER_URL``: Keycloak, Auth0, Entra ID, any with a discovery document
and a JWK set. A token is accepted when

- its ``kid`` names a key of the issuer's published set, and its header's ``alg`` is that key's
  one algorithm (one of ``RUNWIRE_AUTH_ALGORITHMS``; never ``none`` or ``HS*``);
- its signature verifies with that key;
- ``iss`` is the issuer's URL exactly, ``aud`` holds ``RUNWIRE_AUTH_AUDIENCE``, and it has a
  ``sub`` and an ``exp`` that has not passed (``nbf`` and ``iat``, when present, have come), each
  time give or take ``RUNWIRE_AUTH_LEEWAY_S`` for clocks that disagree.

Such a token names no runwire session (no ``sid``): nothing revokes it before its ``exp``. The
issuer's short lifetimes (5 minutes in Keycloak, an hour in Entra) are what bounds a stolen one.

As with runwire's own tokens, a token once verified is remembered (a bounded number, by their
exact text): a client sends the same token with every request, and an RSA check plus the
address's validation cost about 0.3 ms a request; a repeat is checked for expiry and for its key
still being published, not verified again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from email_validator import EmailNotValidError, validate_email

from runwire.auth.tokens import VERIFIED_TOKENS, TrustedKeys
from runwire.errors import AuthError, TokenExpired

__all__ = ["OutsideClaims", "OutsideTokens"]

# What a token must carry; ``sid``, ``iat`` and ``jti`` are optional at an outside issuer.
REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp"]
MAX_SUBJECT_CHARS = 255  # outside_identities.subject


@dataclass(frozen=True, slots=True)
class OutsideClaims:
    """What runwire takes from a valid outside token."""

    subject: str
    email: str | None  # the address the issuer vouches for (not when email_verified is false)
    expires_at: int  # epoch seconds


class OutsideTokens:
    """Verifies the access tokens of ``issuer`` against its published keys (``trusted``).

    ``wall`` (epoch seconds) tells a remembered token's expiry, and ``remember`` how many
    verified tokens are kept; tests pass their own."""

    def __init__(
        self,
        trusted: TrustedKeys,
        *,
        issuer: str,
        audience: str,
        leeway_s: float,
        wall: Callable[[], float] = time.time,
        remember: int = VERIFIED_TOKENS,
    ) -> None:
        self._trusted = trusted
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        self._wall = wall
        self._remember = remember
        # token -> its claims and the kid that verified it; insertion order is age.
        self._verified: dict[str, tuple[OutsideClaims, str]] = {}

    async def check(self, token: str) -> OutsideClaims:
        """:meth:`verify`, after letting the issuer's keys learn a kid they do not hold yet."""
        if token not in self._verified:
            try:
                kid = jwt.get_unverified_header(token).get("kid")
            except jwt.PyJWTError:
                kid = None
            if isinstance(kid, str) and self._trusted.find(kid) is None:
                await self._trusted.learn(kid)
        return self.verify(token)

    def verify(self, token: str) -> OutsideClaims:
        """The claims of a valid token; raises :class:`TokenExpired` past its expiry,
        :class:`AuthError` for anything else (the message never says which check failed)."""
        remembered = self._verified.get(token)
        if remembered is not None:
            claims, kid = remembered
            if claims.expires_at + self.leeway_s <= self._wall():
                del self._verified[token]
                raise TokenExpired("access token expired")
            if self._trusted.find(kid) is None:  # the issuer no longer publishes its key
                del self._verified[token]
                raise AuthError("invalid access token")
            return claims
        verified = self._verify(token)
        if len(self._verified) >= self._remember:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = verified
        return verified[0]

    def _verify(self, token: str) -> tuple[OutsideClaims, str]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("invalid access token") from None
        kid = header.get("kid")
        key = self._trusted.find(kid) if isinstance(kid, str) else None
        # The key decides the algorithm: a header naming another (none, HS256 keyed with the
        # public key, ...) is refused before any signature is looked at.
        if key is None or header.get("alg") != key.algorithm.value:
            raise AuthError("invalid access token")
        try:
            claims = jwt.decode(
                token,
                key.public_key,
                algorithms=[key.algorithm.value],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway_s,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired("access token expired") from None
        except jwt.PyJWTError:
            raise AuthError("invalid access token") from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT_CHARS:
            raise AuthError("invalid access token")
        return OutsideClaims(subject, vouched_email(claims), int(claims["exp"])), key.kid


def vouched_email(claims: dict[str, object]) -> str | None:
    """The ``email`` claim, normalised, unless the issuer says it is not verified
    (``email_verified: false``) or it is no address. Absent ``email_verified`` is taken as
    vouched for: Entra and many Auth0 APIs leave it out of access tokens."""
    email = claims.get("email")
    if not isinstance(email, str) or claims.get("email_verified") is False:
        return None
    try:
        address = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError:
        return None
    return address.normalized.lower()
