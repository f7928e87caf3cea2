"""This node's own service client (RUNWIRE_SERVICE_CLIENT_ID and a secret or a key file): it
gets service tokens from the auth service's token endpoint and keeps each until shortly before
it expires (docs/auth.md, "Service accounts").

With a secret it authenticates by HTTP Basic (client_secret_basic); with a key file by a client
assertion it signs afresh for each request (private_key_jwt, RFC 7523): ``iss`` and ``sub`` its
client id, ``aud`` the issuer (RUNWIRE_AUTH_ISSUER), a minute of life, a new ``jti``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from runwire.auth.client_credentials import ASSERTION_TYPE, GRANT_TYPE
from runwire.config import Settings
from runwire.errors import ConfigError

__all__ = ["Granted", "ServiceAccount", "assertion_key"]

TOKEN_PATH = "/auth/token"  # noqa: S105 - a path, not a secret
ASSERTION_LIFETIME_S = 60
# A token is renewed once less than this share of its lifetime is left.
RENEW_AT = 0.2
TIMEOUT_S = 5.0
CREATE = "`runwire auth clients create NAME --scope SCOPE` on the auth service's settings"

AssertionKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def assertion_key(path: Path) -> tuple[str, AssertionKey]:
    """The algorithm and private key of a client's key file; :class:`ConfigError` naming what is
    wrong with it."""
    where = f"RUNWIRE_SERVICE_CLIENT_KEY_FILE={path}"
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{where} cannot be read: {exc.strerror or exc}"]) from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ConfigError([f"{where} is not an unencrypted PEM private key"]) from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA", key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256", key
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048:
        return "RS256", key
    raise ConfigError([f"{where} is not an Ed25519, P-256 or RSA (2048+) key"])


@dataclass(frozen=True, slots=True)
class Granted:
    """A service token and what the auth service said of it."""

    access_token: str
    expires_at: float  # epoch seconds
    renew_at: float
    scopes: frozenset[str]


class ServiceAccount:
    """Gets service tokens for this node's client from ``token_url``."""

    def __init__(
        self,
        token_url: str,
        issuer: str,
        client_id: str,
        http: httpx.AsyncClient,
        *,
        secret: str | None = None,
        key: tuple[str, AssertionKey] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._issuer = issuer
        self.http = http
        self._secret = secret
        self._key = key
        self._wall = wall
        self._held: Granted | None = None
        self._lock = asyncio.Lock()

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, settings: Settings) -> AsyncIterator[ServiceAccount]:
        """The account of ``settings`` (role chat, a service client set), with its HTTP client
        for as long as the context lasts. Raises :class:`ConfigError` for an unusable key file."""
        assert settings.service_client_id is not None
        assert settings.auth_issuer_url is not None
        secret = settings.service_client_secret
        key_file = settings.service_client_key_file
        key = assertion_key(key_file) if key_file is not None else None
        async with httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False) as http:
            yield cls(
                settings.auth_issuer_url.rstrip("/") + TOKEN_PATH,
                settings.auth_issuer,
                settings.service_client_id,
                http,
                secret=secret.get_secret_value() if secret is not None else None,
                key=key,
            )

    async def token(self) -> str:
        """A service token with every scope of the client: the one held, or a new one when it
        is near its end. Raises :class:`ConfigError` naming why none can be had."""
        async with self._lock:
            held = self._held
            if held is None or self._wall() >= held.renew_at:
                held = self._held = await self.fetch()
            return held.access_token

    async def fetch(self) -> Granted:
        """A new service token now; :class:`ConfigError` naming why the auth service refused
        (or could not be reached)."""
        form = {"grant_type": GRANT_TYPE}
        headers = {"Accept": "application/json"}
        if self._key is not None:
            form["client_assertion_type"] = ASSERTION_TYPE
            form["client_assertion"] = self._assertion()
            how = "RUNWIRE_SERVICE_CLIENT_KEY_FILE"
        else:
            pair = f"{quote(self.client_id, safe='')}:{quote(self._secret or '', safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
            how = "RUNWIRE_SERVICE_CLIENT_SECRET"
        try:
            answer = await self.http.post(self.token_url, data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise ConfigError(
                [
                    f"the token endpoint {self.token_url} cannot be reached: "
                    f"{type(exc).__name__} {exc}".rstrip()
                ]
            ) from None
        try:
            body = answer.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not ({"error", "access_token"} & body.keys()):
            raise ConfigError(
                [
                    f"the token endpoint {self.token_url} answered HTTP {answer.status_code}, "
                    "not OAuth JSON: is RUNWIRE_AUTH_ISSUER_URL the auth service?"
                ]
            )
        if answer.status_code != 200 or not isinstance(body.get("access_token"), str):
            said = f"{body.get('error')}: {body.get('error_description')}"
            fix = (
                f"check RUNWIRE_SERVICE_CLIENT_ID={self.client_id} and {how} against "
                f"`runwire auth clients list` at the auth service, or make a client with {CREATE}"
            )
            raise ConfigError(
                [
                    f"the auth service at {self.token_url} refused this node's service client "
                    f"({said}): {fix}"
                ]
            )
        now = self._wall()
        lifetime = float(body.get("expires_in", 0))
        return Granted(
            access_token=body["access_token"],
            expires_at=now + lifetime,
            renew_at=now + lifetime * (1 - RENEW_AT),
            scopes=frozenset(str(body.get("scope", "")).split()),
        )

    def _assertion(self) -> str:
        assert self._key is not None
        algorithm, key = self._key
        now = int(self._wall())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self._issuer,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_S,
            "jti": secrets.token_urlsafe(16),
        }
        return jwt.encode(claims, key, algorithm=algorithm)
