"""What ``runwire doctor`` checks of auth, per role (docs/auth.md, "Roles").

- ``chat``: the issuer at ``RUNWIRE_AUTH_ISSUER_URL`` answers, its discovery document names the
  issuer this node expects (an outside issuer: the URL itself), and its JWK set holds a key this
  node can use (of an accepted algorithm).
- ``auth``: the key directory holds a usable signing key, and a token signed with it now verifies
  against the published keys: those the running service publishes when its URL is known
  (``RUNWIRE_AUTH_ISSUER_URL``), else the set the directory would publish.
- ``chat`` with a service client of its own (``RUNWIRE_SERVICE_CLIENT_ID``): the auth service
  gives it a service token, with the scopes this node needs (``revocations:read`` without Redis).
- ``all``: nothing more than the other checks (it signs and verifies with the same files).
"""

from __future__ import annotations

import time

import httpx

from runwire.auth.jwks import FETCH_TIMEOUT_S, JwksKeys, NoSigner, parse_jwks
from runwire.auth.key_files import KeyDirectory
from runwire.auth.keys import KeySet, SigningKey, VerificationKey, key_lifetime
from runwire.auth.service_account import ServiceAccount
from runwire.auth.service_tokens import Scope
from runwire.auth.tokens import AccessTokens
from runwire.config import Role, Settings
from runwire.errors import ConfigError, RunwireError
from runwire.readiness import Check

__all__ = ["auth_checks", "issuer_problems", "service_client_problems"]

ROTATE = "run `runwire auth rotate-keys` with this RUNWIRE_AUTH_KEYS_DIR (docs/auth.md)"
SAME_ISSUER = "set RUNWIRE_AUTH_ISSUER and RUNWIRE_AUTH_ISSUER_URL alike on both roles"
OUTSIDE = (
    "set RUNWIRE_AUTH_ISSUER_URL to the issuer's URL as its discovery document names it, and "
    "RUNWIRE_AUTH_ALGORITHMS to include its keys' algorithm (docs/auth.md, \"Outside identity "
    'providers")'
)


async def auth_checks(settings: Settings) -> list[Check]:
    """The checks of ``settings.role``; each failure names what to fix."""
    if settings.role is Role.CHAT:
        return [await _issuer_check(settings), *await _service_client_checks(settings)]
    if settings.role is Role.AUTH:
        return await _signing_checks(settings)
    return []


async def issuer_problems(settings: Settings) -> list[str]:
    """What keeps a chat node from verifying tokens, each named (empty when nothing does):
    ``runwire serve --role chat`` stops on them before it listens."""
    if settings.role is not Role.CHAT or settings.auth_issuer_url is None:
        return []
    fetched = await _fetch(settings, settings.auth_issuer_url)
    return fetched if isinstance(fetched, list) else []


def needed_scopes(settings: Settings) -> set[str]:
    """What this chat node does with its service client: without Redis, read the revocation
    feed."""
    if settings.outside_issuer:
        return set()  # an outside issuer's tokens end at their expiry: there is no feed to read
    return {Scope.REVOCATIONS_READ.value} if settings.redis_url is None else set()


async def service_client_problems(settings: Settings) -> list[str]:
    """What keeps a chat node's own service client (RUNWIRE_SERVICE_CLIENT_ID) from getting the
    service tokens it needs, each named (empty when nothing does, or none is set): ``runwire
    serve`` stops on them before it listens."""
    if settings.role is not Role.CHAT or not settings.has_service_client:
        return []
    try:
        async with ServiceAccount.running(settings) as account:
            granted = await account.fetch()
    except ConfigError as exc:
        return exc.problems
    missing = sorted(needed_scopes(settings) - granted.scopes)
    if missing:
        return [
            f"the service client {settings.service_client_id} gets tokens without "
            f"{' '.join(missing)}, which this chat node needs (without RUNWIRE_REDIS_URL it reads "
            "the auth service's revocation feed): make a client with `runwire auth clients "
            f"create NAME --scope {' --scope '.join(missing)}` and set its id and secret here"
        ]
    return []


async def _service_client_checks(settings: Settings) -> list[Check]:
    if not settings.has_service_client:
        if not needed_scopes(settings):
            return []
        # Not a failure (such a node serves, and refuses ended sessions' requests), but what it
        # lacks is said here as at start-up.
        return [
            Check(
                "service client",
                True,
                detail="none: without Redis or a client with revocations:read, sockets of "
                "sessions ended at the auth service stay open; set RUNWIRE_SERVICE_CLIENT_ID "
                "(docs/auth.md, Service accounts)",
            )
        ]
    problems = await service_client_problems(settings)
    if problems:
        return [
            Check(
                "service client",
                False,
                "; ".join(problems),
                fix="RUNWIRE_SERVICE_CLIENT_ID and its secret or key file come from `runwire "
                "auth clients create` at the auth service (docs/auth.md, Service accounts)",
            )
        ]
    return [
        Check(
            "service client",
            True,
            detail=f"{settings.service_client_id} gets service tokens from "
            f"{settings.auth_issuer_url}",
        )
    ]


async def _fetch(settings: Settings, url: str) -> JwksKeys | list[str]:
    """The issuer's keys at ``url``, or every problem met reading them."""
    async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S) as http:
        keys = JwksKeys(
            url,
            settings.expected_issuer,
            http,
            algorithms=settings.verification_algorithms,
            outside=settings.outside_issuer,
        )
        try:
            await keys.fetch()
        except ConfigError as exc:
            return exc.problems
    return keys


def _failing(problems: list[str], settings: Settings) -> Check:
    fix = OUTSIDE if settings.outside_issuer else SAME_ISSUER
    return Check("auth issuer", False, "; ".join(problems), fix=fix)


async def _issuer_check(settings: Settings) -> Check:
    assert settings.auth_issuer_url is not None  # Settings.problems requires it for role chat
    keys = await _fetch(settings, settings.auth_issuer_url)
    if isinstance(keys, list):
        return _failing(keys, settings)
    count = f"{len(keys.published())} key(s)"
    if settings.outside_issuer:
        algorithms = ", ".join(sorted({k.algorithm.value for k in keys.published()}))
        count = f"outside issuer, audience {settings.auth_audience!r}: {count} ({algorithms})"
    return Check(
        "auth issuer",
        True,
        detail=f"{settings.expected_issuer!r} at {keys.issuer_url}: {count} from {keys.jwks_uri}",
    )


async def _signing_checks(settings: Settings) -> list[Check]:
    directory = KeyDirectory(settings.keys_dir)
    loaded = directory.load()
    if loaded.problems or not loaded.keys:
        reason = "; ".join(loaded.problems) or f"no signing key in {directory.path}"
        return [Check("signing keys", False, reason, fix=ROTATE)]
    now = time.time()
    keys = KeySet.of(list(loaded.keys.values()), key_lifetime(settings.access_token_ttl_s))
    signing = keys.signing
    assert signing is not None
    checks = [Check("signing keys", True, detail=f"{signing.kid} signs, in {directory.path}")]
    url = settings.auth_issuer_url
    where = f"the JWK set published at {url}" if url else "the JWK set of the key directory"
    published: JwksKeys | _Fixed
    if url is not None:
        fetched = await _fetch(settings, url)
        if isinstance(fetched, list):
            return [*checks, _failing(fetched, settings)]
        published = fetched
    else:
        found, _ = parse_jwks({"keys": [k.jwk() for k in keys.published(now)]})
        published = _Fixed(found)
    verifier = AccessTokens(
        NoSigner(),
        published,
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        ttl_s=settings.access_token_ttl_s,
    )
    signer = AccessTokens(
        _Only(signing),
        published,
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        ttl_s=settings.access_token_ttl_s,
    )
    try:
        await verifier.check(signer.issue("usr_doctor", "ses_doctor"))
    except RunwireError:
        return [
            *checks,
            Check(
                "token verifies",
                False,
                f"a token signed with {signing.kid} does not verify against {where}",
                fix="the running service reads another key directory: point both at the same "
                "RUNWIRE_AUTH_KEYS_DIR (or wait a second after a rotation)",
            ),
        ]
    return [*checks, Check("token verifies", True, detail=f"against {where}")]


class _Fixed:
    """Trusted keys that are what they are (no source to learn from)."""

    def __init__(self, keys: dict[str, VerificationKey]) -> None:
        self._keys = keys

    def find(self, kid: str) -> VerificationKey | None:
        return self._keys.get(kid)

    async def learn(self, kid: str) -> None:
        """Nothing to learn from."""


class _Only:
    """A signer with the one key under test."""

    def __init__(self, key: SigningKey) -> None:
        self.key = key

    def signing(self) -> SigningKey:
        return self.key
