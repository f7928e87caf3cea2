"""Access tokens (signed JWTs) and opaque secrets (refresh tokens, tickets) stored as hashes."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import jwt

from runwire.errors import AuthError, TokenExpired

__all__ = ["AccessClaims", "AccessTokens", "digest", "opaque_secret"]

ALGORITHM = "HS256"
ISSUER = "runwire"


def opaque_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What the database keeps of a refresh token or ticket: a leak of the table grants nothing."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    family_id: str
    expires_at: int


class AccessTokens:
    def __init__(self, secret: str, ttl_s: int) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    def issue(self, user_id: str, family_id: str) -> str:
        now = int(time.time())
        claims = {
            "sub": user_id,
            "sid": family_id,
            "iat": now,
            "exp": now + self.ttl_s,
            "iss": ISSUER,
            "typ": "access",
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["sub", "sid", "exp", "iat", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired("access token expired") from None
        except jwt.PyJWTError:
            raise AuthError("invalid access token") from None
        if claims.get("typ") != "access":
            raise AuthError("invalid access token")
        return AccessClaims(
            user_id=claims["sub"], family_id=claims["sid"], expires_at=claims["exp"]
        )
