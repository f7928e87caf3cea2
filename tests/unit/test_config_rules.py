"""The consistency rules of the settings (runwire.config.rules), one by one: each inconsistency is
named by exactly one sentence naming the variable(s) to fix, and a consistent configuration has
none. Settings are built from keyword values in an environment without ``RUNWIRE_*`` variables,
so what the shell running the tests holds does not leak in."""

from __future__ import annotations

import os
from typing import Any

import pytest

from runwire.config import Settings
from runwire.config.rules import MIN_TEST_TOKEN_KEY_BYTES

pytestmark = pytest.mark.unit

SQLITE = "sqlite+aiosqlite:///runwire.db"  # explicit: the default resolves a path on disk
PRODUCTION: dict[str, Any] = {
    "env": "production",
    "database_url": "postgresql+asyncpg://db/runwire",
    "allowed_origins": ["https://chat.example"],
}


@pytest.fixture(autouse=True)
def _no_settings_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(("RUNWIRE_", "OTEL_")):
            monkeypatch.delenv(name)


def problems(**values: Any) -> list[str]:
    return Settings(**{"database_url": SQLITE, **values}).problems()


def test_a_consistent_configuration_has_no_problem() -> None:
    assert problems() == []
    assert problems(**PRODUCTION) == []


@pytest.mark.parametrize(
    ("values", "sentence"),
    [
        (
            {"tool_timeout_s": 120},
            "RUNWIRE_TOOL_TIMEOUT_S must be below RUNWIRE_RUN_TIMEOUT_S (120.0 >= 120.0)",
        ),
        (
            {"llm_timeout_s": 121},
            "RUNWIRE_LLM_TIMEOUT_S must be below RUNWIRE_RUN_TIMEOUT_S (121.0 >= 120.0)",
        ),
        (
            {"run_timeout_s": 250, "ws_idle_timeout_s": 250},
            "RUNWIRE_RUN_TIMEOUT_S must be below RUNWIRE_WS_IDLE_TIMEOUT_S (250.0 >= 250.0)",
        ),
        (
            {"ws_ping_interval_s": 10, "ws_ping_timeout_s": 11},
            "RUNWIRE_WS_PING_TIMEOUT_S must not exceed RUNWIRE_WS_PING_INTERVAL_S (11.0 > 10.0)",
        ),
        (
            {"ws_ping_interval_s": 300},
            "RUNWIRE_WS_PING_INTERVAL_S must be below RUNWIRE_WS_IDLE_TIMEOUT_S (300.0 >= 300.0)",
        ),
    ],
)
def test_the_timeout_hierarchy_names_the_pair_out_of_order(
    values: dict[str, Any], sentence: str
) -> None:
    assert problems(**values) == [sentence]


def test_a_ping_interval_of_zero_turns_the_pings_and_their_timeout_off() -> None:
    assert problems(ws_ping_interval_s=0, ws_ping_timeout_s=60) == []


def test_token_lifetimes_are_ordered() -> None:
    assert problems(refresh_token_ttl_s=900) == [
        "RUNWIRE_REFRESH_TOKEN_TTL_S must be longer than RUNWIRE_ACCESS_TOKEN_TTL_S"
    ]
    assert problems(service_token_ttl_s=901) == [
        "RUNWIRE_SERVICE_TOKEN_TTL_S must not exceed RUNWIRE_ACCESS_TOKEN_TTL_S (a superseded "
        "key stays published for an access token's lifetime only)"
    ]
    assert problems(service_token_ttl_s=900) == []  # equal is allowed


@pytest.mark.parametrize(
    ("values", "sentence"),
    [
        ({"llm_base_url": "api.openai.com/v1"}, "RUNWIRE_LLM_BASE_URL must be an http(s) URL"),
        (
            # OpenTelemetry's own variable, so set by that name (not otlp_endpoint=).
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "grpc://collector:4317"},
            "OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL (runwire exports OTLP over "
            "HTTP, e.g. http://collector:4318)",
        ),
        (
            {"database_url": "postgresql://db/runwire"},  # the driver is part of the scheme
            "RUNWIRE_DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+asyncpg://",
        ),
        (
            {"redis_url": "tcp://redis:6379"},
            "RUNWIRE_REDIS_URL must start with redis:// or rediss:// (TLS)",
        ),
    ],
)
def test_a_url_of_the_wrong_scheme_is_named(values: dict[str, Any], sentence: str) -> None:
    assert problems(**values) == [sentence]


@pytest.mark.parametrize(
    ("values", "sentence"),
    [
        (
            {"redis_url": "redis://:hunter2@redis:99999/0"},
            "RUNWIRE_REDIS_URL has a port that is not a number from 0 to 65535",
        ),
        (
            {"database_url": "postgresql+asyncpg://app:hunter2@db:5432x/runwire"},
            "RUNWIRE_DATABASE_URL has a port that is not a number from 0 to 65535",
        ),
    ],
)
def test_a_url_with_a_bad_port_is_named_without_its_password(
    values: dict[str, Any], sentence: str
) -> None:
    # Once a crash of `runwire doctor` (ValueError from the URL's port) instead of this line.
    assert problems(**values) == [sentence]


def test_urls_of_the_right_scheme_pass() -> None:
    good = {
        "llm_base_url": "https://api.openai.com/v1",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "redis_url": "rediss://:secret@redis:6380/0",
    }
    assert Settings(database_url=SQLITE, **good).otlp_endpoint == "http://collector:4318"
    assert problems(**good) == []


def test_production_names_what_only_production_refuses() -> None:
    development = {
        "argon2_memory_kib": 19455,
        "allowed_origins": [],
        "keep_events": False,
        "test_token_key": "k" * MIN_TEST_TOKEN_KEY_BYTES,
    }
    assert problems(**development) == []  # all fine outside production
    assert problems(**{**PRODUCTION, **development}) == [
        "RUNWIRE_TEST_TOKEN_KEY must not be set in production (it mints sessions of test "
        "users for staging end-to-end tests): unset it",
        "RUNWIRE_ARGON2_MEMORY_KIB must be at least 19456 in production",
        "RUNWIRE_ALLOWED_ORIGINS must list the origins of your web page in production",
        "RUNWIRE_KEEP_EVENTS=false is for benchmarks only, not production",
    ]
    assert problems(**{**PRODUCTION, "argon2_memory_kib": 19456}) == []


def test_production_refuses_any_origin_even_beside_a_listed_one() -> None:
    assert problems(**{**PRODUCTION, "allowed_origins": ["https://chat.example", "*"]}) == [
        "RUNWIRE_ALLOWED_ORIGINS may not contain * in production: it lets a page of any site "
        "open /ws; list the origins of your web page"
    ]


def test_a_short_test_token_key_is_named_with_its_minimum() -> None:
    assert problems(test_token_key="k" * (MIN_TEST_TOKEN_KEY_BYTES - 1)) == [
        f"RUNWIRE_TEST_TOKEN_KEY must be at least {MIN_TEST_TOKEN_KEY_BYTES} bytes "
        "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
    ]
    # Bytes, not characters: 16 two-byte characters are 32 bytes.
    assert problems(test_token_key="é" * (MIN_TEST_TOKEN_KEY_BYTES // 2)) == []


CHAT = {"role": "chat", "auth_issuer_url": "https://auth.example"}


def test_a_service_client_belongs_to_a_chat_node_with_one_credential() -> None:
    assert problems(**CHAT, service_client_id="cli_1", service_client_secret="s") == []
    assert problems(**CHAT, service_client_id="cli_1", service_client_key_file="key.pem") == []
    neither_or_both = (
        "RUNWIRE_SERVICE_CLIENT_ID needs RUNWIRE_SERVICE_CLIENT_SECRET (printed once by "
        "`runwire auth clients create`) or RUNWIRE_SERVICE_CLIENT_KEY_FILE (for a client made "
        "with --public-key), and only one of them"
    )
    assert problems(**CHAT, service_client_id="cli_1") == [neither_or_both]
    both = {"service_client_secret": "s", "service_client_key_file": "key.pem"}
    assert problems(**CHAT, service_client_id="cli_1", **both) == [neither_or_both]
    assert problems(service_client_secret="s") == [
        "RUNWIRE_SERVICE_CLIENT_SECRET and RUNWIRE_SERVICE_CLIENT_KEY_FILE belong to "
        "RUNWIRE_SERVICE_CLIENT_ID: set it too (`runwire auth clients list` shows it)"
    ]


def test_a_service_client_on_a_node_that_is_the_auth_service_is_named() -> None:
    assert problems(role="auth", service_client_id="cli_1", service_client_secret="s") == [
        "RUNWIRE_SERVICE_CLIENT_ID is a chat node's credential for the auth service; with "
        "RUNWIRE_ROLE=auth this process is the auth service: unset it"
    ]


def test_a_service_client_beside_an_outside_issuer_is_named() -> None:
    outside = {**CHAT, "auth_issuer_kind": "oidc", "auth_audience": "api://runwire"}
    assert problems(**outside) == []
    assert problems(**outside, service_client_id="cli_1", service_client_secret="s") == [
        "RUNWIRE_SERVICE_CLIENT_ID is a client of runwire's auth service; with "
        "RUNWIRE_AUTH_ISSUER_KIND=oidc this node trusts an outside issuer: unset it"
    ]


def test_the_problems_come_all_at_once() -> None:
    found = problems(
        env="production",
        tool_timeout_s=500,
        redis_url="tcp://redis",
        service_client_secret="s",
        metrics_token="short",
    )
    assert [p.split()[0] for p in found] == [
        "RUNWIRE_TOOL_TIMEOUT_S",
        "RUNWIRE_REDIS_URL",
        "RUNWIRE_SERVICE_CLIENT_SECRET",
        "RUNWIRE_ALLOWED_ORIGINS",
        "RUNWIRE_METRICS_TOKEN",
    ]
