"""What makes a configuration inconsistent: the rules that no single field's type can state.

Each rule is a sentence naming the variable(s) to fix; :func:`problems` gathers every one, so a
bad configuration is named whole at start-up, not one mistake per restart.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from runwire.config.choices import IssuerKind, Role

if TYPE_CHECKING:
    from runwire.config.settings import Settings

__all__ = ["MIN_METRICS_TOKEN_CHARS", "MIN_TEST_TOKEN_KEY_BYTES", "problems"]

MIN_TEST_TOKEN_KEY_BYTES = 32
MIN_METRICS_TOKEN_CHARS = 16


def problems(settings: Settings) -> list[str]:
    """Every inconsistency, each as a sentence naming the variable(s) to fix."""
    found: list[str] = []
    if settings.tool_timeout_s >= settings.run_timeout_s:
        found.append(
            "RUNWIRE_TOOL_TIMEOUT_S must be below RUNWIRE_RUN_TIMEOUT_S "
            f"({settings.tool_timeout_s} >= {settings.run_timeout_s})"
        )
    if settings.llm_timeout_s >= settings.run_timeout_s:
        found.append(
            "RUNWIRE_LLM_TIMEOUT_S must be below RUNWIRE_RUN_TIMEOUT_S "
            f"({settings.llm_timeout_s} >= {settings.run_timeout_s})"
        )
    if settings.run_timeout_s >= settings.ws_idle_timeout_s:
        found.append(
            "RUNWIRE_RUN_TIMEOUT_S must be below RUNWIRE_WS_IDLE_TIMEOUT_S "
            f"({settings.run_timeout_s} >= {settings.ws_idle_timeout_s})"
        )
    if settings.refresh_token_ttl_s <= settings.access_token_ttl_s:
        found.append("RUNWIRE_REFRESH_TOKEN_TTL_S must be longer than RUNWIRE_ACCESS_TOKEN_TTL_S")
    if settings.llm_base_url and not settings.llm_base_url.startswith(("http://", "https://")):
        found.append("RUNWIRE_LLM_BASE_URL must be an http(s) URL")
    if settings.otlp_endpoint and not settings.otlp_endpoint.startswith(("http://", "https://")):
        found.append(
            "OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL (runwire exports OTLP over "
            "HTTP, e.g. http://collector:4318)"
        )
    url = settings.effective_database_url
    if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        found.append(
            "RUNWIRE_DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
        )
    elif url.startswith("postgresql+asyncpg://") and not _has_module("asyncpg"):
        found.append(
            "RUNWIRE_DATABASE_URL is PostgreSQL, but its driver asyncpg is not installed: "
            "run `make install` (or `pip install asyncpg`)"
        )
    if settings.redis_url is not None and not settings.redis_url.get_secret_value().startswith(
        ("redis://", "rediss://")
    ):
        found.append("RUNWIRE_REDIS_URL must start with redis:// or rediss:// (TLS)")
    for name, value in (
        ("RUNWIRE_DATABASE_URL", url),
        ("RUNWIRE_REDIS_URL", settings.redis_url.get_secret_value() if settings.redis_url else ""),
    ):
        try:
            _ = urlsplit(value).port  # parsed on reading: a bad one raises
        except ValueError:  # the URL itself is not quoted: it may hold a password
            found.append(f"{name} has a port that is not a number from 0 to 65535")
    if settings.service_token_ttl_s > settings.access_token_ttl_s:
        found.append(
            "RUNWIRE_SERVICE_TOKEN_TTL_S must not exceed RUNWIRE_ACCESS_TOKEN_TTL_S (a "
            "superseded key stays published for an access token's lifetime only)"
        )
    found += _test_token_problems(settings)
    found += _role_problems(settings)
    found += _service_client_problems(settings)
    if settings.is_production:
        if settings.argon2_memory_kib < 19456:
            found.append("RUNWIRE_ARGON2_MEMORY_KIB must be at least 19456 in production")
        if not settings.allowed_origins:
            found.append(
                "RUNWIRE_ALLOWED_ORIGINS must list the origins of your web page in production"
            )
        elif "*" in settings.allowed_origins:
            found.append(
                "RUNWIRE_ALLOWED_ORIGINS may not contain * in production: it lets a page of "
                "any site open /ws; list the origins of your web page"
            )
        if not settings.keep_events:
            found.append("RUNWIRE_KEEP_EVENTS=false is for benchmarks only, not production")
    found += _metrics_problems(settings)
    if settings.ws_ping_interval_s and settings.ws_ping_timeout_s > settings.ws_ping_interval_s:
        found.append(
            "RUNWIRE_WS_PING_TIMEOUT_S must not exceed RUNWIRE_WS_PING_INTERVAL_S "
            f"({settings.ws_ping_timeout_s} > {settings.ws_ping_interval_s})"
        )
    if settings.ws_ping_interval_s >= settings.ws_idle_timeout_s:
        found.append(
            "RUNWIRE_WS_PING_INTERVAL_S must be below RUNWIRE_WS_IDLE_TIMEOUT_S "
            f"({settings.ws_ping_interval_s} >= {settings.ws_idle_timeout_s})"
        )
    return found


def _role_problems(settings: Settings) -> list[str]:
    """What RUNWIRE_ROLE needs and what contradicts it (docs/auth.md, "Roles")."""
    found: list[str] = []
    for name, value in (
        ("RUNWIRE_AUTH_ISSUER_URL", settings.auth_issuer_url),
        ("RUNWIRE_AUTH_PUBLIC_URL", settings.auth_public_url),
    ):
        if value is not None and not value.startswith(("http://", "https://")):
            found.append(f"{name} must be an http(s) URL, e.g. https://auth.example.com")
    if settings.role is not Role.CHAT and settings.auth_issuer_kind is IssuerKind.OIDC:
        found.append(
            "RUNWIRE_AUTH_ISSUER_KIND=oidc is for RUNWIRE_ROLE=chat (a node that issues "
            f"tokens, role {settings.role.value}, accepts its own): set RUNWIRE_ROLE=chat"
        )
    if settings.auth_algorithms and settings.auth_issuer_kind is not IssuerKind.OIDC:
        found.append(
            "RUNWIRE_AUTH_ALGORITHMS is for RUNWIRE_AUTH_ISSUER_KIND=oidc: runwire's own "
            "tokens are EdDSA or ES256, each pinned to its key; unset it"
        )
    if settings.role is Role.CHAT:
        if settings.auth_issuer_url is None:
            found.append(
                "RUNWIRE_ROLE=chat verifies access tokens against the issuer's published "
                "keys: set RUNWIRE_AUTH_ISSUER_URL to the auth service's URL"
            )
        if settings.auth_keys_dir is not None:
            found.append(
                "RUNWIRE_ROLE=chat holds no private key: unset RUNWIRE_AUTH_KEYS_DIR (the "
                "keys belong to the auth role)"
            )
        if settings.test_token_key is not None:
            found.append(
                "RUNWIRE_ROLE=chat serves no /auth/*: set RUNWIRE_TEST_TOKEN_KEY on the auth "
                "role, and unset it here"
            )
        found += _outside_problems(settings)
    elif settings.auth_public_url is not None:
        found.append(
            f"RUNWIRE_AUTH_PUBLIC_URL tells the page of a chat node where /auth/* is: unset "
            f"it with RUNWIRE_ROLE={settings.role.value}"
        )
    return found


def _service_client_problems(settings: Settings) -> list[str]:
    secret = settings.service_client_secret is not None
    key = settings.service_client_key_file is not None
    if settings.service_client_id is None:
        if secret or key:
            return [
                "RUNWIRE_SERVICE_CLIENT_SECRET and RUNWIRE_SERVICE_CLIENT_KEY_FILE belong to "
                "RUNWIRE_SERVICE_CLIENT_ID: set it too (`runwire auth clients list` shows it)"
            ]
        return []
    found: list[str] = []
    if settings.role is not Role.CHAT:
        found.append(
            f"RUNWIRE_SERVICE_CLIENT_ID is a chat node's credential for the auth service; "
            f"with RUNWIRE_ROLE={settings.role.value} this process is the auth service: unset it"
        )
    if settings.auth_issuer_kind is IssuerKind.OIDC:
        found.append(
            "RUNWIRE_SERVICE_CLIENT_ID is a client of runwire's auth service; with "
            "RUNWIRE_AUTH_ISSUER_KIND=oidc this node trusts an outside issuer: unset it"
        )
    if secret == key:
        found.append(
            "RUNWIRE_SERVICE_CLIENT_ID needs RUNWIRE_SERVICE_CLIENT_SECRET (printed once by "
            "`runwire auth clients create`) or RUNWIRE_SERVICE_CLIENT_KEY_FILE (for a client "
            "made with --public-key), and only one of them"
        )
    return found


def _outside_problems(settings: Settings) -> list[str]:
    """What an outside issuer needs (docs/auth.md, "Outside identity providers")."""
    if settings.auth_issuer_kind is not IssuerKind.OIDC:
        return []
    found: list[str] = []
    if "auth_audience" not in settings.model_fields_set:
        found.append(
            "RUNWIRE_AUTH_ISSUER_KIND=oidc needs RUNWIRE_AUTH_AUDIENCE: the audience (aud) "
            "the issuer puts in access tokens meant for runwire (Auth0: the API's "
            "identifier; Keycloak: the audience mapper's; Entra: the app ID URI)"
        )
    if (
        "auth_issuer" in settings.model_fields_set
        and settings.auth_issuer != settings.auth_issuer_url
    ):
        found.append(
            "RUNWIRE_AUTH_ISSUER is not read with RUNWIRE_AUTH_ISSUER_KIND=oidc: an outside "
            "issuer is RUNWIRE_AUTH_ISSUER_URL itself (its tokens' iss); unset it"
        )
    if settings.auth_public_url is not None:
        found.append(
            "RUNWIRE_AUTH_PUBLIC_URL names runwire's auth service for the page: with "
            "RUNWIRE_AUTH_ISSUER_KIND=oidc there is none; unset it"
        )
    return found


def _test_token_problems(settings: Settings) -> list[str]:
    if settings.test_token_key is None:
        return []
    if settings.is_production:
        # Whoever holds the key could start a session as a test user: not in production.
        return [
            "RUNWIRE_TEST_TOKEN_KEY must not be set in production (it mints sessions of test "
            "users for staging end-to-end tests): unset it"
        ]
    if len(settings.test_token_key.get_secret_value().encode()) < MIN_TEST_TOKEN_KEY_BYTES:
        return [
            f"RUNWIRE_TEST_TOKEN_KEY must be at least {MIN_TEST_TOKEN_KEY_BYTES} bytes "
            "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        ]
    return []


def _metrics_problems(settings: Settings) -> list[str]:
    found: list[str] = []
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if not settings.metrics and (token is not None or settings.metrics_port is not None):
        found.append(
            "RUNWIRE_METRICS=false turns /metrics off: unset RUNWIRE_METRICS_TOKEN and "
            "RUNWIRE_METRICS_PORT, or set RUNWIRE_METRICS=true"
        )
    if token is not None and len(token) < MIN_METRICS_TOKEN_CHARS:
        found.append(f"RUNWIRE_METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_CHARS} characters")
    if token is not None and not (token.isascii() and token.isprintable() and " " not in token):
        found.append(
            "RUNWIRE_METRICS_TOKEN must be printable ASCII without spaces "
            "(it travels in an HTTP header)"
        )
    if settings.metrics_port and settings.metrics_port == settings.port:
        found.append(f"RUNWIRE_METRICS_PORT must differ from RUNWIRE_PORT (both {settings.port})")
    return found


def _has_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True
