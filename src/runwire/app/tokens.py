"""The keys tokens are signed and verified with, the tokens made with them (access, service,
an outside issuer's, the e2e test tokens), and a chat node's following of the auth service's
revocations (docs/auth.md).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext

from runwire.auth.jwks import JwksKeys, NoSigner
from runwire.auth.key_files import KeyRing
from runwire.auth.outside_tokens import OutsideTokens
from runwire.auth.revocation_feed import FEED_PATH, RevocationFeed
from runwire.auth.service import AuthService
from runwire.auth.service_account import ServiceAccount
from runwire.auth.service_tokens import ServiceTokens
from runwire.auth.test_tokens import E2ETokens
from runwire.auth.throttle import AuthThrottle
from runwire.auth.tokens import AccessTokens
from runwire.config import Role, Settings
from runwire.revocations.base import Revocations
from runwire.store.store import Store

__all__ = [
    "build_access_tokens",
    "build_e2e_tokens",
    "build_keys",
    "build_outside_tokens",
    "build_service_tokens",
    "following_revocations",
]

log = logging.getLogger(__name__)


def build_keys(
    settings: Settings, ring: KeyRing | None
) -> AbstractAsyncContextManager[KeyRing | JwksKeys]:
    """The key files (roles all and auth), or the issuer's published keys (role chat: fetched
    now, a ConfigError naming every problem when they cannot be)."""
    if ring is not None:
        return nullcontext(ring)
    assert settings.auth_issuer_url is not None  # Settings.problems requires it for role chat
    return JwksKeys.running(
        settings.auth_issuer_url,
        settings.expected_issuer,
        algorithms=settings.verification_algorithms,
        outside=settings.outside_issuer,
    )


def build_access_tokens(settings: Settings, keys: KeyRing | JwksKeys) -> AccessTokens:
    """Access tokens signed with the ring's current key and verified against its keys; on a
    chat node, verified against the issuer's published keys and never signed."""
    return AccessTokens(
        keys if isinstance(keys, KeyRing) else NoSigner(),
        keys,
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        ttl_s=settings.access_token_ttl_s,
    )


def build_service_tokens(settings: Settings, keys: KeyRing | JwksKeys) -> ServiceTokens:
    """Service tokens, signed and verified as access tokens are (never signed on a chat node)."""
    return ServiceTokens(
        keys if isinstance(keys, KeyRing) else NoSigner(),
        keys,
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        ttl_s=settings.service_token_ttl_s,
    )


@asynccontextmanager
async def following_revocations(
    settings: Settings, revocations: Revocations
) -> AsyncIterator[RevocationFeed | None]:
    """A chat node without Redis, with a service client of its own: the auth service's
    revocation feed, polled into ``revocations`` (docs/auth.md, "Revocation")."""
    if settings.role is not Role.CHAT or settings.redis_url is not None or settings.outside_issuer:
        yield None
        return
    if not settings.has_service_client:
        log.warning(
            "this chat node has no Redis and no service client: sockets of sessions ended at "
            "the auth service stay open (their requests are refused); set "
            "RUNWIRE_SERVICE_CLIENT_ID with a client that has revocations:read (docs/auth.md)"
        )
        yield None
        return
    assert settings.auth_issuer_url is not None
    async with ServiceAccount.running(settings) as account:
        feed = RevocationFeed(
            account,
            settings.auth_issuer_url.rstrip("/") + FEED_PATH,
            revocations,
            interval_s=settings.revocation_poll_s,
        )
        async with feed.running():
            yield feed


def build_outside_tokens(settings: Settings, keys: KeyRing | JwksKeys) -> OutsideTokens | None:
    """The verifier of an outside OpenID Connect issuer's tokens, on a chat node configured so
    (``RUNWIRE_AUTH_ISSUER_KIND=oidc``); None where runwire's own tokens are the ones."""
    if not settings.outside_issuer:
        return None
    return OutsideTokens(
        keys,
        issuer=settings.expected_issuer,
        audience=settings.auth_audience,
        leeway_s=settings.auth_leeway_s,
    )


def build_e2e_tokens(
    settings: Settings, store: Store, auth: AuthService, throttle: AuthThrottle
) -> E2ETokens | None:
    """The issuer of POST /auth/test-token, when the settings serve it."""
    if not settings.serves_test_tokens or settings.test_token_key is None:
        return None
    return E2ETokens(settings.test_token_key.get_secret_value(), store.accounts, auth, throttle)
