import logging
import sys
from ipaddress import ip_network
from pathlib import Path

import pytest

from runwire.config import Environment, Role, Settings, load_settings, safe_url
from runwire.domain.concurrency import ConcurrencyPolicy
from runwire.errors import ConfigError

pytestmark = pytest.mark.unit


def test_defaults_are_the_embedded_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.env is Environment.DEVELOPMENT
    assert s.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert s.effective_database_url.endswith(".runwire/runwire.db")
    assert s.migrate_on_start
    assert s.concurrency_policy is ConcurrencyPolicy.ENQUEUE


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNWIRE_PORT", "9001")
    monkeypatch.setenv("RUNWIRE_ALLOWED_ORIGINS", "https://a.example, https://b.example/")
    s = load_settings()
    assert s.port == 9001
    assert s.allowed_origins == ["https://a.example", "https://b.example"]


def test_production_names_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            env="production",
            test_token_key="a-test-token-key-" + "k" * 32,
            tool_timeout_s=500,
            argon2_memory_kib=1024,
        )
    problems = "\n".join(caught.value.problems)
    assert "RUNWIRE_TEST_TOKEN_KEY must not be set in production" in problems
    assert "RUNWIRE_TOOL_TIMEOUT_S must be below RUNWIRE_RUN_TIMEOUT_S" in problems
    assert "RUNWIRE_ALLOWED_ORIGINS" in problems
    assert "RUNWIRE_ARGON2_MEMORY_KIB" in problems
    assert "k" * 32 not in caught.value.message  # the secret itself is never echoed


def test_a_test_token_key_is_long_and_never_in_production() -> None:
    assert not load_settings().serves_test_tokens
    assert load_settings(test_token_key="").test_token_key is None  # empty: unset
    assert load_settings(test_token_key="k" * 32).serves_test_tokens
    with pytest.raises(ConfigError) as caught:
        load_settings(test_token_key="k" * 31)
    assert caught.value.problems == [
        "RUNWIRE_TEST_TOKEN_KEY must be at least 32 bytes (e.g. python3 -c 'import secrets; "
        "print(secrets.token_urlsafe(32))')"
    ]
    with pytest.raises(ConfigError) as caught:
        load_settings(**PRODUCTION, test_token_key="k" * 40)
    assert caught.value.problems == [
        "RUNWIRE_TEST_TOKEN_KEY must not be set in production (it mints sessions of test users "
        "for staging end-to-end tests): unset it"
    ]
    assert "k" * 40 not in caught.value.message


def test_auth_settings(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path)
    assert (s.auth_issuer, s.auth_audience, s.auth_algorithm.value) == (
        "runwire",
        "runwire",
        "EdDSA",
    )
    assert s.keys_dir == tmp_path / "keys"
    assert load_settings(auth_keys_dir=tmp_path / "k").keys_dir == tmp_path / "k"
    assert load_settings(data_dir=tmp_path, auth_keys_dir="").keys_dir == tmp_path / "keys"
    with pytest.raises(ConfigError) as caught:
        load_settings(auth_issuer="", auth_algorithm="HS256")
    joined = "\n".join(caught.value.problems)
    assert "RUNWIRE_AUTH_ISSUER" in joined and "RUNWIRE_AUTH_ALGORITHM" in joined


def test_the_timeout_hierarchy_is_enforced() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(run_timeout_s=400, ws_idle_timeout_s=300, llm_timeout_s=500)
    joined = " ".join(caught.value.problems)
    assert "RUNWIRE_RUN_TIMEOUT_S must be below RUNWIRE_WS_IDLE_TIMEOUT_S" in joined
    assert "RUNWIRE_LLM_TIMEOUT_S must be below RUNWIRE_RUN_TIMEOUT_S" in joined


def test_type_errors_are_named_by_variable() -> None:
    with pytest.raises(ConfigError, match="RUNWIRE_PORT"):
        load_settings(port="eighty")
    with pytest.raises(ConfigError, match="RUNWIRE_DATABASE_URL"):
        load_settings(database_url="mysql://x")
    with pytest.raises(ConfigError, match="RUNWIRE_LLM_BASE_URL"):
        load_settings(llm_base_url="ftp://x")
    with pytest.raises(ConfigError, match="RUNWIRE_REFRESH_TOKEN_TTL_S"):
        load_settings(refresh_token_ttl_s=10)


def test_retention_and_keepalive_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings()
    assert defaults.event_retention_days == 7
    assert defaults.event_retention_interval_s == 3600 and defaults.sse_keepalive_s == 15
    monkeypatch.setenv("RUNWIRE_EVENT_RETENTION_DAYS", "30")
    assert load_settings().event_retention_days == 30
    with pytest.raises(ConfigError) as caught:
        load_settings(event_retention_days=0, event_retention_interval_s=0, sse_keepalive_s=-1)
    joined = " ".join(caught.value.problems)
    for name in (
        "RUNWIRE_EVENT_RETENTION_DAYS",
        "RUNWIRE_EVENT_RETENTION_INTERVAL_S",
        "RUNWIRE_SSE_KEEPALIVE_S",
    ):
        assert name in joined
    with pytest.raises(ConfigError, match="RUNWIRE_EVENT_RETENTION_DAYS"):
        load_settings(event_retention_days="a week")
    with pytest.raises(ConfigError, match="RUNWIRE_SSE_KEEPALIVE_S"):
        load_settings(sse_keepalive_s=float("inf"))


def test_a_good_production_configuration_starts() -> None:
    s = load_settings(
        env="production",
        allowed_origins=["https://x"],
        database_url="postgresql+asyncpg://db/runwire",
    )
    assert s.is_production and not s.migrate_on_start


def test_limit_defaults() -> None:
    s = load_settings()
    assert (s.login_account_failures, s.login_account_window_s) == (5, 900.0)
    assert (s.login_ip_failures, s.login_ip_window_s) == (20, 900.0)
    assert (s.register_ip_requests, s.register_ip_window_s) == (30, 3600.0)
    assert (s.refresh_ip_requests, s.refresh_ip_window_s) == (60, 60.0)
    assert s.trusted_proxies == []
    assert (s.ws_messages_per_second, s.ws_message_burst) == (10.0, 30)
    assert s.max_connections_per_user == 10
    assert s.ws_auth_timeout_s == 10.0
    assert s.http_head_timeout_s == 5.0
    assert (s.usage_import_user_requests, s.usage_import_user_window_s) == (10, 60.0)


def test_limits_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNWIRE_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7 ,::1")
    monkeypatch.setenv("RUNWIRE_LOGIN_ACCOUNT_FAILURES", "3")
    monkeypatch.setenv("RUNWIRE_WS_MESSAGES_PER_SECOND", "2.5")
    monkeypatch.setenv("RUNWIRE_MAX_CONNECTIONS_PER_USER", "4")
    s = load_settings()
    assert s.trusted_proxies == [
        ip_network("10.0.0.0/8"),
        ip_network("192.0.2.7/32"),
        ip_network("::1/128"),
    ]
    assert s.login_account_failures == 3
    assert s.ws_messages_per_second == 2.5
    assert s.max_connections_per_user == 4
    monkeypatch.setenv("RUNWIRE_TRUSTED_PROXIES", "")
    assert load_settings().trusted_proxies == []


def test_limits_that_mean_nothing_are_named_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            trusted_proxies="10.0.0.1, proxy.internal, 300.1.1.1",
            login_account_failures=0,
            login_ip_window_s=float("inf"),
            refresh_ip_window_s=0,
            ws_messages_per_second=-1,
            ws_message_burst=0,
            max_connections_per_user=0,
            ws_auth_timeout_s=0,
            http_head_timeout_s=float("nan"),
            usage_import_user_requests=0,
            usage_import_user_window_s=0,
        )
    problems = "\n".join(caught.value.problems)
    assert "RUNWIRE_TRUSTED_PROXIES" in problems
    assert "'proxy.internal', '300.1.1.1'" in problems
    for name in (
        "RUNWIRE_LOGIN_ACCOUNT_FAILURES",
        "RUNWIRE_LOGIN_IP_WINDOW_S",
        "RUNWIRE_REFRESH_IP_WINDOW_S",
        "RUNWIRE_WS_MESSAGES_PER_SECOND",
        "RUNWIRE_WS_MESSAGE_BURST",
        "RUNWIRE_MAX_CONNECTIONS_PER_USER",
        "RUNWIRE_WS_AUTH_TIMEOUT_S",
        "RUNWIRE_HTTP_HEAD_TIMEOUT_S",
        "RUNWIRE_USAGE_IMPORT_USER_REQUESTS",
        "RUNWIRE_USAGE_IMPORT_USER_WINDOW_S",
    ):
        assert name in problems
    with pytest.raises(ConfigError, match="RUNWIRE_HTTP_HEAD_TIMEOUT_S"):
        load_settings(http_head_timeout_s=0)


def test_the_redis_url_picks_the_bus_and_its_password_is_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RUNWIRE_REDIS_URL", raising=False)
    assert load_settings().redis_url is None  # unset: the in-process bus
    monkeypatch.setenv("RUNWIRE_REDIS_URL", "")
    assert load_settings().redis_url is None  # empty counts as unset
    monkeypatch.setenv("RUNWIRE_REDIS_URL", "rediss://:hunter2-secret@redis.internal:6380/2")
    settings = load_settings()
    assert settings.redis_url is not None
    assert settings.redis_url.get_secret_value().endswith("@redis.internal:6380/2")
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())
    assert safe_url(settings.redis_url.get_secret_value()) == "rediss://redis.internal:6380/2"
    monkeypatch.setenv("RUNWIRE_REDIS_URL", "http://:hunter2-secret@redis.internal:6379")
    with pytest.raises(ConfigError, match="RUNWIRE_REDIS_URL must start with redis://") as bad:
        load_settings()
    assert "hunter2" not in str(bad.value) and "hunter2" not in " ".join(bad.value.problems)


def test_a_missing_postgresql_driver_is_one_line_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:5432/runwire"
    assert load_settings(database_url=url).effective_database_url == url  # installed: fine
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # what `import asyncpg` sees without it
    with pytest.raises(ConfigError) as caught:
        load_settings(database_url=url)
    assert caught.value.problems == [
        "RUNWIRE_DATABASE_URL is PostgreSQL, but its driver asyncpg is not installed: "
        "run `make install` (or `pip install asyncpg`)"
    ]


def test_who_may_read_metrics_on_the_apps_port() -> None:
    production = {"env": "production", "allowed_origins": ["https://x"]}
    token = "t" * 16
    assert load_settings().metrics_on_app  # development: open
    assert load_settings(metrics_token=token).metrics_on_app  # behind the token
    assert not load_settings(**production).metrics_on_app  # production without a token: off
    assert load_settings(**production, metrics_token=token).metrics_on_app
    assert not load_settings(**production, metrics_port=9109).metrics_on_app  # its own port
    assert not load_settings(metrics_port=9109).metrics_on_app
    assert not load_settings(metrics=False).metrics_on_app
    # Unset by an empty variable, as a deployment template leaves it.
    assert load_settings(metrics_token="", metrics_port="").metrics_on_app


def test_metrics_settings_that_cannot_work_are_named_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(metrics=False, metrics_token="short one", port=9109, metrics_port=9109)
    joined = "\n".join(caught.value.problems)
    assert "RUNWIRE_METRICS=false turns /metrics off" in joined
    assert "RUNWIRE_METRICS_TOKEN must be at least 16 characters" in joined
    assert "RUNWIRE_METRICS_TOKEN must be printable ASCII without spaces" in joined
    assert "RUNWIRE_METRICS_PORT must differ from RUNWIRE_PORT (both 9109)" in joined
    assert "short one" not in caught.value.message
    with pytest.raises(ConfigError, match="RUNWIRE_METRICS_PORT"):
        load_settings(metrics_port=70000)


def test_log_settings_are_validated() -> None:
    assert (load_settings().log_format.value, load_settings().log_level.value) == ("text", "info")
    assert load_settings(log_format="json", log_level="debug").log_format.value == "json"
    with pytest.raises(ConfigError) as caught:
        load_settings(log_format="xml", log_level="loud")
    joined = "\n".join(caught.value.problems)
    assert "RUNWIRE_LOG_FORMAT" in joined and "RUNWIRE_LOG_LEVEL" in joined


PRODUCTION = {
    "env": "production",
    "allowed_origins": "https://chat.example",
    "database_url": "postgresql+asyncpg://db/runwire",
}


def test_a_misspelled_variable_is_named_with_the_setting_it_resembles(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RUNWIRE_AUTH_ISSUR", "k" * 40)
    monkeypatch.setenv("RUNWIRE_RUN_TIMEOUT", "30")
    monkeypatch.setenv("runwire_portt", "9000")  # names are read in any case
    monkeypatch.setenv("RUNWIRE_TEST_ANYTHING", "1")  # the test suite's own: not a setting
    monkeypatch.setenv("RUNWIRE_BENCH_ANYTHING", "1")  # the benchmarks' own
    caplog.set_level(logging.WARNING, logger="runwire.config")
    settings = load_settings()  # outside production: a warning, and the server starts
    assert settings.auth_issuer == "runwire" and settings.run_timeout_s == 120
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "RUNWIRE_AUTH_ISSUR is not a runwire setting (did you mean RUNWIRE_AUTH_ISSUER?); "
        "it is ignored",
        "runwire_portt is not a runwire setting (did you mean RUNWIRE_PORT?); it is ignored",
        "RUNWIRE_RUN_TIMEOUT is not a runwire setting (did you mean RUNWIRE_RUN_TIMEOUT_S?); "
        "it is ignored",
    ]
    with pytest.raises(ConfigError) as caught:  # in production, start-up stops
        load_settings(**PRODUCTION)
    assert caught.value.problems == [
        "RUNWIRE_AUTH_ISSUR is not a runwire setting (did you mean RUNWIRE_AUTH_ISSUER?)",
        "runwire_portt is not a runwire setting (did you mean RUNWIRE_PORT?)",
        "RUNWIRE_RUN_TIMEOUT is not a runwire setting (did you mean RUNWIRE_RUN_TIMEOUT_S?)",
    ]
    assert "k" * 40 not in caught.value.message


def test_the_otlp_endpoint_is_a_keyword_as_well_as_opentelemetrys_variable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Settings(otlp_endpoint=...) was once dropped without a word (the field is read from its
    # alias, OpenTelemetry's variable): only the variable set it.
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert Settings(otlp_endpoint="http://kw:4318").otlp_endpoint == "http://kw:4318"
    assert load_settings(otlp_endpoint="http://kw:4318").otlp_endpoint == "http://kw:4318"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318")
    assert Settings().otlp_endpoint == "http://env:4318"
    assert Settings(otlp_endpoint="http://kw:4318").otlp_endpoint == "http://kw:4318"  # wins
    with pytest.raises(ConfigError) as caught:  # a keyword is checked as the variable is
        load_settings(otlp_endpoint="grpc://kw:4317")
    assert caught.value.problems == [
        "OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL (runwire exports OTLP over HTTP, "
        "e.g. http://collector:4318)"
    ]
    # The RUNWIRE_ name of the field is no variable of runwire's: named, with the one to set.
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    monkeypatch.setenv("RUNWIRE_OTLP_ENDPOINT", "http://prefixed:4318")
    caplog.set_level(logging.WARNING, logger="runwire.config")
    assert load_settings().otlp_endpoint is None
    assert [r.getMessage() for r in caplog.records] == [
        "RUNWIRE_OTLP_ENDPOINT is not a runwire setting (did you mean "
        "OTEL_EXPORTER_OTLP_ENDPOINT?); it is ignored"
    ]


def test_the_retired_signing_secret_is_named_with_what_replaced_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RUNWIRE_SECRET_KEY", "k" * 40)
    caplog.set_level(logging.WARNING, logger="runwire.config")
    load_settings()
    said = (
        "RUNWIRE_SECRET_KEY is no longer read: access tokens are signed with the key files in "
        "RUNWIRE_AUTH_KEYS_DIR (docs/auth.md); remove it"
    )
    assert [r.getMessage() for r in caplog.records] == [f"{said}; it is ignored"]
    with pytest.raises(ConfigError) as caught:
        load_settings(**PRODUCTION)
    assert caught.value.problems == [said]
    assert "k" * 40 not in caught.value.message


def test_a_variable_like_no_setting_is_named_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNWIRE_PUBLIC_URL", "https://chat.example")  # read by nothing
    monkeypatch.setenv("RUNWIRE_XYZZY", "1")
    with pytest.raises(ConfigError) as caught:
        load_settings(**PRODUCTION)
    assert caught.value.problems == [
        "RUNWIRE_PUBLIC_URL is not a runwire setting (did you mean RUNWIRE_AUTH_PUBLIC_URL?)",
        "RUNWIRE_XYZZY is not a runwire setting (docs/configuration.md lists them)",
    ]


def test_a_type_error_does_not_hide_the_other_problems() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(port="eighty", tool_timeout_s=500, ws_ping_timeout_s="soon")
    problems = caught.value.problems
    assert len(problems) == 3, problems
    assert problems[0].startswith("RUNWIRE_PORT: ")
    assert problems[1].startswith("RUNWIRE_WS_PING_TIMEOUT_S: ")
    assert (
        problems[2] == "RUNWIRE_TOOL_TIMEOUT_S must be below RUNWIRE_RUN_TIMEOUT_S (500.0 >= 120.0)"
    )
    # A comparison with a variable that could not be read is left until it can be.
    with pytest.raises(ConfigError) as caught:
        load_settings(run_timeout_s="two minutes", tool_timeout_s=500)
    assert [p.split(":")[0] for p in caught.value.problems] == ["RUNWIRE_RUN_TIMEOUT_S"]


def test_production_refuses_any_origin() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**{**PRODUCTION, "allowed_origins": "https://chat.example, *"})
    assert caught.value.problems == [
        "RUNWIRE_ALLOWED_ORIGINS may not contain * in production: it lets a page of any site "
        "open /ws; list the origins of your web page"
    ]
    assert load_settings(allowed_origins="*").allowed_origins == ["*"]  # elsewhere it may


def test_the_role_is_all_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().role is Role.ALL
    assert load_settings().auth_client_url is None  # the page signs in at its own origin
    monkeypatch.setenv("RUNWIRE_ROLE", "auth")
    assert load_settings().role is Role.AUTH
    monkeypatch.setenv("RUNWIRE_ROLE", "gateway")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.problems[0].startswith("RUNWIRE_ROLE: Input should be 'all', 'auth'")


def test_a_chat_node_names_everything_it_lacks_or_contradicts_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(role="chat", auth_keys_dir=tmp_path, test_token_key="k" * 32)
    assert caught.value.problems == [
        "RUNWIRE_ROLE=chat verifies access tokens against the issuer's published keys: set "
        "RUNWIRE_AUTH_ISSUER_URL to the auth service's URL",
        "RUNWIRE_ROLE=chat holds no private key: unset RUNWIRE_AUTH_KEYS_DIR (the keys belong "
        "to the auth role)",
        "RUNWIRE_ROLE=chat serves no /auth/*: set RUNWIRE_TEST_TOKEN_KEY on the auth role, and "
        "unset it here",
    ]
    with pytest.raises(ConfigError) as caught:
        load_settings(role="chat", auth_issuer_url="auth.example", auth_public_url="ftp://x")
    assert caught.value.problems == [
        "RUNWIRE_AUTH_ISSUER_URL must be an http(s) URL, e.g. https://auth.example.com",
        "RUNWIRE_AUTH_PUBLIC_URL must be an http(s) URL, e.g. https://auth.example.com",
    ]
    with pytest.raises(ConfigError) as caught:
        load_settings(role="auth", auth_public_url="https://auth.example")
    assert caught.value.problems == [
        "RUNWIRE_AUTH_PUBLIC_URL tells the page of a chat node where /auth/* is: unset it with "
        "RUNWIRE_ROLE=auth"
    ]


def test_a_chat_node_tells_clients_where_auth_is() -> None:
    chat = load_settings(role="chat", auth_issuer_url="http://auth.internal:8001/")
    assert chat.auth_client_url == "http://auth.internal:8001"
    assert not chat.serves_test_tokens
    public = load_settings(
        role="chat",
        auth_issuer_url="http://auth.internal:8001",
        auth_public_url="https://auth.example.com",
    )
    assert public.auth_client_url == "https://auth.example.com"


def test_an_outside_issuer_names_what_it_needs_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            role="chat",
            auth_issuer_kind="oidc",
            auth_issuer_url="https://id.example.com/realms/acme",
            auth_issuer="runwire",
            auth_public_url="https://auth.example.com",
        )
    assert caught.value.problems == [
        "RUNWIRE_AUTH_ISSUER_KIND=oidc needs RUNWIRE_AUTH_AUDIENCE: the audience (aud) the "
        "issuer puts in access tokens meant for runwire (Auth0: the API's identifier; Keycloak: "
        "the audience mapper's; Entra: the app ID URI)",
        "RUNWIRE_AUTH_ISSUER is not read with RUNWIRE_AUTH_ISSUER_KIND=oidc: an outside issuer "
        "is RUNWIRE_AUTH_ISSUER_URL itself (its tokens' iss); unset it",
        "RUNWIRE_AUTH_PUBLIC_URL names runwire's auth service for the page: with "
        "RUNWIRE_AUTH_ISSUER_KIND=oidc there is none; unset it",
    ]
    # A service client is a client of runwire's auth service, which such a node has not.
    with pytest.raises(ConfigError) as caught:
        load_settings(
            role="chat",
            auth_issuer_kind="oidc",
            auth_issuer_url="https://id.example.com/realms/acme",
            auth_audience="runwire-api",
            service_client_id="svc_scheduler",
            service_client_secret="s" * 43,
        )
    assert caught.value.problems == [
        "RUNWIRE_SERVICE_CLIENT_ID is a client of runwire's auth service; with "
        "RUNWIRE_AUTH_ISSUER_KIND=oidc this node trusts an outside issuer: unset it"
    ]
    with pytest.raises(ConfigError) as caught:
        load_settings(role="all", auth_issuer_kind="oidc", auth_algorithms="ES256")
    assert caught.value.problems == [
        "RUNWIRE_AUTH_ISSUER_KIND=oidc is for RUNWIRE_ROLE=chat (a node that issues tokens, "
        "role all, accepts its own): set RUNWIRE_ROLE=chat"
    ]
    with pytest.raises(ConfigError) as caught:
        load_settings(role="chat", auth_issuer_url="https://a.example", auth_algorithms="RS256")
    assert caught.value.problems == [
        "RUNWIRE_AUTH_ALGORITHMS is for RUNWIRE_AUTH_ISSUER_KIND=oidc: runwire's own tokens "
        "are EdDSA or ES256, each pinned to its key; unset it"
    ]


def test_an_outside_issuer_is_its_url_and_accepts_asymmetric_algorithms_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNWIRE_ROLE", "chat")
    monkeypatch.setenv("RUNWIRE_AUTH_ISSUER_KIND", "oidc")
    monkeypatch.setenv("RUNWIRE_AUTH_ISSUER_URL", "https://acme.eu.auth0.com/")
    monkeypatch.setenv("RUNWIRE_AUTH_AUDIENCE", "https://api.acme.example")
    s = load_settings()
    # The URL as given (Auth0's issuer ends with a slash), and no /auth/* for the page.
    assert (s.expected_issuer, s.auth_client_url) == ("https://acme.eu.auth0.com/", None)
    assert [a.value for a in s.verification_algorithms] == ["RS256", "ES256", "EdDSA"]
    monkeypatch.setenv("RUNWIRE_AUTH_ALGORITHMS", "PS256, RS256,PS256")
    assert [a.value for a in load_settings().verification_algorithms] == ["PS256", "RS256"]
    for never in ("none", "HS256", "hs512"):
        monkeypatch.setenv("RUNWIRE_AUTH_ALGORITHMS", f"RS256,{never}")
        with pytest.raises(ConfigError) as caught:
            load_settings()
        [problem] = caught.value.problems
        assert problem.startswith(
            f"RUNWIRE_AUTH_ALGORITHMS: Value error, {never} is never accepted"
        )
    monkeypatch.setenv("RUNWIRE_AUTH_ALGORITHMS", "RS1")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.problems[0].startswith("RUNWIRE_AUTH_ALGORITHMS_0: Input should be")
    # runwire's own issuer is unchanged: RUNWIRE_AUTH_ISSUER, EdDSA and ES256.
    own = load_settings(role="chat", auth_issuer_kind="runwire", auth_algorithms=[])
    assert own.expected_issuer == "runwire"
    assert [a.value for a in own.verification_algorithms] == ["EdDSA", "ES256"]


def test_the_store_backlog_bound_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().store_max_backlog == 10_000
    monkeypatch.setenv("RUNWIRE_STORE_MAX_BACKLOG", "500")
    assert load_settings().store_max_backlog == 500
    for bad in (0, -1, 10_000_001, "lots"):
        with pytest.raises(ConfigError, match="RUNWIRE_STORE_MAX_BACKLOG"):
            load_settings(store_max_backlog=bad)


def test_the_store_linger_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().store_linger_ms == 10
    monkeypatch.setenv("RUNWIRE_STORE_LINGER_MS", "0")
    assert load_settings().store_linger_ms == 0
    for bad in (-1, 1001, "soon"):
        with pytest.raises(ConfigError, match="RUNWIRE_STORE_LINGER_MS"):
            load_settings(store_linger_ms=bad)
