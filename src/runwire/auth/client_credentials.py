"""The client-credentials grant (RFC 6749 section 4.4): a registered service client proves who
it is and gets a service token (docs/auth.md, "Service accounts").

A client authenticates in one of three ways (one per request):

- ``client_secret_basic``: its id and secret in ``Authorization: Basic`` (RFC 6749 2.3.1);
- ``client_secret_post``: ``client_id`` and ``client_secret`` in the form;
- ``private_key_jwt``: a JWT it signed with its private key (RFC 7523 2.2 and 3), as
  ``client_assertion`` with ``client_assertion_type`` ``ASSERTION_TYPE``. ``iss`` and ``sub``
  are its id, ``aud`` the token endpoint's URL or the issuer, ``exp`` at most five minutes
  ahead, ``jti`` a value never used before (each assertion is good once); the algorithm is
  that of the registered key, whatever the header says.

Secrets are 256 random bits, shown once and stored as their SHA-256: with that much entropy a
stolen table cannot be brute-forced, so a deliberately slow hash (argon2, as for passwords)
would only make every token request cost tens of milliseconds of CPU. Digests are compared in
constant time, and an unknown client costs the same comparison. Failures are counted per
address like failed logins.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from runwire.auth.service_tokens import ServiceTokens
from runwire.auth.throttle import AuthThrottle
from runwire.domain.clock import now_ms
from runwire.domain.ids import new_id
from runwire.errors import InputError, InvalidClient
from runwire.store.clients import ServiceClients
from runwire.store.records import ServiceClient

__all__ = [
    "ASSERTION_TYPE",
    "GRANT_TYPE",
    "ClientCredentials",
    "IssuedToken",
    "TokenRequest",
    "basic_credentials",
    "client_key",
    "register_client",
    "secret_digest",
]

GRANT_TYPE = "client_credentials"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
ASSERTION_ALGORITHMS = ["EdDSA", "ES256", "RS256"]
# How far ahead an assertion's exp may be: it is a one-time proof, not a credential to keep.
MAX_ASSERTION_S = 300
# Clocks of the client and this service may disagree this much.
LEEWAY_S = 30
SECRET_PREFIX = "rwcs_"  # noqa: S105 - not a secret: lets secret scanners recognise a leaked one
# RFC 6749 section 3.3: a scope token is printable ASCII but space, '"' and '\'.
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,100}")
MAX_SCOPES_CHARS = 1000  # the registry's column
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_UNKNOWN = hashlib.sha256(b"runwire-no-such-client").hexdigest()


def secret_digest(secret: str) -> str:
    """What the registry keeps of a client secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def client_key(pem: str) -> tuple[str, Any]:
    """The algorithm and public key of a client's PEM public key: Ed25519 (EdDSA), P-256
    (ES256) or RSA of 2048 bits or more (RS256). Raises :class:`InputError` saying what is
    wrong."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError):
        raise InputError(
            "the public key is not a PEM public key (-----BEGIN PUBLIC KEY-----; "
            "`openssl pkey -in private.pem -pubout` writes one)",
            code="invalid_key",
        ) from None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA", key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256", key
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return "RS256", key
    raise InputError(
        "client keys are Ed25519, P-256 or RSA of at least 2048 bits", code="invalid_key"
    )


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` of an ``Authorization: Basic`` header, else None.

    Raises :class:`InvalidClient` for a Basic header that does not decode."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("the Basic credentials are not base64 of id:secret") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise InvalidClient("the Basic credentials are not base64 of id:secret")
    # RFC 6749 2.3.1: both are form-encoded before they are joined.
    return unquote(client_id), unquote(secret)


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """A token request as it arrived: the form's fields and Basic credentials, if any."""

    grant_type: str | None = None
    scope: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    basic: tuple[str, str] | None = None
    assertion_type: str | None = None
    assertion: str | None = None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scopes: list[str]

    def public(self) -> dict[str, Any]:
        """The token response (RFC 6749 section 5.1)."""
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": " ".join(self.scopes),
        }


def check_scopes(scopes: list[str]) -> list[str]:
    """``scopes`` without repeats; :class:`InputError` for a value that is no scope token."""
    bad = [s for s in scopes if SCOPE_TOKEN.fullmatch(s) is None]
    unique = list(dict.fromkeys(scopes))
    if bad or not unique or len(" ".join(unique)) > MAX_SCOPES_CHARS:
        raise InputError(
            "a scope is 1 to 100 printable ASCII characters without space, quote or backslash "
            f"(e.g. messages:write); a client has at least one, {MAX_SCOPES_CHARS} characters "
            "in all at most",
            code="invalid_scope",
        )
    return unique


async def register_client(
    clients: ServiceClients,
    name: str,
    scopes: list[str],
    *,
    audience: str,
    public_key: str | None = None,
) -> tuple[ServiceClient, str | None]:
    """Register a new client and return it with its secret (shown once; None for a client with
    ``public_key``, which authenticates with assertions only). Its tokens are for ``audience``.

    Raises :class:`InputError` for a name, scope or key that is not one, :class:`Conflict`
    when the name is taken."""
    if NAME.fullmatch(name) is None:
        raise InputError(
            "a client name is 1 to 100 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit",
            code="invalid_name",
        )
    if public_key is not None:
        client_key(public_key)
    if not audience or len(audience) > 300:
        raise InputError("an audience is 1 to 300 characters", code="invalid_audience")
    secret = None if public_key is not None else SECRET_PREFIX + secrets.token_urlsafe(32)
    client = ServiceClient(
        id=new_id("svc"),
        name=name,
        scopes=tuple(check_scopes(scopes)),
        audience=audience,
        created_at=now_ms(),
        secret_hash=secret_digest(secret) if secret is not None else None,
        public_key=public_key,
    )
    await clients.add(client)
    return client, secret


class ClientCredentials:
    """Exchanges service clients' credentials for service tokens."""

    def __init__(
        self,
        clients: ServiceClients,
        tokens: ServiceTokens,
        throttle: AuthThrottle,
        *,
        issuer: str,
    ) -> None:
        self._clients = clients
        self._tokens = tokens
        self._throttle = throttle
        self._issuer = issuer

    async def grant(
        self, request: TokenRequest, *, address: str, endpoint_urls: list[str]
    ) -> IssuedToken:
        """A service token for the client ``request`` authenticates, with the scopes it asks
        for (all the client's when it names none).

        Raises :class:`InputError` with an RFC 6749 error code (``invalid_request``,
        ``unsupported_grant_type``, ``invalid_scope``), :class:`InvalidClient`, or
        :class:`~runwire.errors.RateLimited` past the failure limit of ``address``.
        ``endpoint_urls``: where this endpoint is, for the audience of assertions.
        """
        if request.grant_type is None:
            raise InputError("grant_type is required", code="invalid_request")
        if request.grant_type != GRANT_TYPE:
            raise InputError(
                f"this endpoint grants {GRANT_TYPE} only", code="unsupported_grant_type"
            )
        methods = sum(
            (
                request.basic is not None,
                request.client_secret is not None,
                request.assertion is not None or request.assertion_type is not None,
            )
        )
        if methods > 1:
            raise InputError(
                "use one way of client authentication: Basic, client_secret, or a client assertion",
                code="invalid_request",
            )
        if methods == 0:
            raise InvalidClient(
                "no client authentication: send Authorization: Basic, client_id and "
                "client_secret, or a client assertion"
            )
        attempt = await self._throttle.client_attempt(address)
        if request.assertion is not None or request.assertion_type is not None:
            client = await self._by_assertion(request, [self._issuer, *endpoint_urls])
        else:
            client = await self._by_secret(request)
        await attempt.succeeded()
        scopes = self._scopes(client, request.scope)
        token = self._tokens.issue(client.id, client.audience, scopes)
        return IssuedToken(token, self._tokens.ttl_s, scopes)

    def _scopes(self, client: ServiceClient, asked: str | None) -> list[str]:
        if asked is None or not asked.strip():
            return list(client.scopes)
        wanted = list(dict.fromkeys(asked.split()))
        beyond = [s for s in wanted if s not in client.scopes]
        if beyond:
            raise InputError(
                f"this client may not have {' '.join(beyond)} (it may have: "
                f"{' '.join(client.scopes)})",
                code="invalid_scope",
            )
        return wanted

    async def _by_secret(self, request: TokenRequest) -> ServiceClient:
        if request.basic is not None:
            client_id, secret = request.basic
        else:
            client_id, secret = request.client_id or "", request.client_secret or ""
        client = await self._clients.get(client_id) if client_id else None
        stored = client.secret_hash if client is not None else None
        # The same comparison whether or not the client exists or has a secret.
        matches = hmac.compare_digest(stored or _UNKNOWN, secret_digest(secret))
        if client is None or stored is None or not matches or client.disabled_at is not None:
            raise InvalidClient("unknown client, wrong secret, or a disabled client")
        return client

    async def _by_assertion(self, request: TokenRequest, audiences: list[str]) -> ServiceClient:
        if request.assertion_type != ASSERTION_TYPE:
            raise InputError(
                f"client_assertion_type must be {ASSERTION_TYPE}", code="invalid_request"
            )
        if not request.assertion:
            raise InputError("client_assertion is required", code="invalid_request")
        refused = InvalidClient("the client assertion is not good")
        try:
            header = jwt.get_unverified_header(request.assertion)
            unverified = jwt.decode(request.assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise refused from None
        client_id = unverified.get("sub")
        if not isinstance(client_id, str) or (
            request.client_id is not None and request.client_id != client_id
        ):
            raise refused
        client = await self._clients.get(client_id)
        if client is None or client.public_key is None or client.disabled_at is not None:
            raise refused
        algorithm, key = client_key(client.public_key)
        # The registered key decides the algorithm: "none", HS256 keyed with the public key or
        # another algorithm in the header is refused before any signature is looked at.
        if header.get("alg") != algorithm:
            raise refused
        try:
            claims = jwt.decode(
                request.assertion,
                key,
                algorithms=[algorithm],
                audience=audiences,
                issuer=client.id,
                leeway=LEEWAY_S,
                options={"require": ["iss", "sub", "aud", "exp", "jti"]},
            )
        except jwt.PyJWTError:
            raise refused from None
        jti = claims["jti"]
        exp = claims["exp"]
        if (
            not isinstance(jti, str)
            or not 1 <= len(jti) <= 200
            or not isinstance(exp, int | float)
            or exp > time.time() + MAX_ASSERTION_S + LEEWAY_S
        ):
            raise refused
        if not await self._clients.spend_assertion(
            client.id, jti, int(exp * 1000) + LEEWAY_S * 1000
        ):
            raise InvalidClient("the client assertion was used before (a new jti each time)")
        return client
