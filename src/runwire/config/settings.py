"""The settings object: every knob of the server, its type, default and bounds, read from
``RUNWIRE_*`` environment variables (pydantic-settings), and what follows from them."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from runwire.config import rules
from runwire.config.choices import (
    OUTSIDE_ALGORITHMS,
    RUNWIRE_ALGORITHMS,
    Environment,
    IssuerKind,
    LogFormat,
    LogLevel,
    ModelFallback,
    Role,
    SigningAlgorithm,
    TokenAlgorithm,
    WebSocketPath,
)
from runwire.domain.concurrency import ConcurrencyPolicy

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Every knob of the server. Field docs are the reference in docs/configuration.md."""

    model_config = SettingsConfigDict(env_prefix="RUNWIRE_", extra="ignore", frozen=True)

    env: Environment = Environment.DEVELOPMENT
    role: Role = Role.ALL
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    data_dir: Path = Path(".runwire")
    database_url: str | None = None
    # The event bus: unset, the in-process one (one node); set, Redis (several nodes). Secret,
    # as the URL may carry a password: it is never logged (logs name the host only).
    redis_url: SecretStr | None = None
    # Access tokens: signed with the newest key file in this directory (unset: DATA_DIR/keys);
    # see docs/auth.md. The algorithm is that of keys made by runwire (first start, rotation).
    auth_keys_dir: Path | None = None
    auth_algorithm: SigningAlgorithm = SigningAlgorithm.EDDSA
    auth_issuer: str = Field("runwire", min_length=1, max_length=300)
    auth_audience: str = Field("runwire", min_length=1, max_length=300)
    # Role chat: the issuer whose discovery document (ISSUER_URL/.well-known/openid-configuration)
    # names the JWKS that verifies access tokens; and where browsers and clients reach /auth/*
    # (unset: the issuer URL). Both are http(s) URLs.
    auth_issuer_url: str | None = Field(None, max_length=2000)
    auth_public_url: str | None = Field(None, max_length=2000)
    # Role chat: whose tokens it accepts; with oidc, the algorithms accepted (unset: RS256,
    # ES256, EdDSA) and how far an outside token's times may be off this node's clock.
    auth_issuer_kind: IssuerKind = IssuerKind.RUNWIRE
    auth_algorithms: Annotated[list[TokenAlgorithm], NoDecode] = Field(default_factory=list)
    auth_leeway_s: float = Field(30.0, ge=0, le=300, allow_inf_nan=False)
    # Set (outside production only), POST /auth/test-token hands sessions of e2e test users to
    # whoever sends it in X-Runwire-Test-Key; unset, the route does not exist.
    test_token_key: SecretStr | None = None
    # The API reference (/docs, /redoc, /openapi.json): served outside production; in production
    # only when this is true.
    public_docs: bool = False

    access_token_ttl_s: int = Field(900, gt=0)
    # Service tokens (client credentials, docs/auth.md "Service accounts"): short-lived, and never
    # longer than an access token (a key stays published for an access token's lifetime).
    service_token_ttl_s: int = Field(300, gt=0)
    # A chat node's own service client (from `runwire auth clients create`): a secret, or the
    # private key (PEM file) whose public key the client was registered with. With them it gets
    # service tokens from the auth service; without Redis it polls the revocation feed with them
    # every RUNWIRE_REVOCATION_POLL_S.
    service_client_id: str | None = Field(None, max_length=100)
    service_client_secret: SecretStr | None = None
    service_client_key_file: Path | None = None
    revocation_poll_s: float = Field(2.0, gt=0, le=300, allow_inf_nan=False)
    refresh_token_ttl_s: int = Field(30 * 24 * 3600, gt=0)
    ws_ticket_ttl_s: int = Field(60, gt=0)

    # The timeout hierarchy: socket idle > run > tool and LLM call (validated below).
    ws_idle_timeout_s: float = Field(300.0, gt=0)
    run_timeout_s: float = Field(120.0, gt=0)
    tool_timeout_s: float = Field(20.0, gt=0)
    llm_timeout_s: float = Field(60.0, gt=0)

    offline_delay_ms: int = Field(15, ge=0)
    max_frame_bytes: int = Field(64 * 1024, gt=0)
    max_import_bytes: int = Field(20 * 1024 * 1024, gt=0)
    # Frames waiting for a client, in bytes; past it the client counts as stalled (close 4008).
    outbound_buffer_bytes: int = Field(1024 * 1024, gt=0)
    # Keepalive pings find peers that vanished without closing (0 turns them off).
    ws_ping_interval_s: float = Field(20.0, ge=0)
    ws_ping_timeout_s: float = Field(20.0, gt=0)
    # Which WebSocket path `runwire serve` uses; "asgi" exists to measure it against "direct".
    ws_path: WebSocketPath = WebSocketPath.DIRECT
    # Off only to measure what keeping events costs (bench/): resume and history then fail.
    keep_events: bool = True
    event_value_max_chars: int = Field(2000, gt=0)
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    auto_migrate: bool | None = None
    shutdown_grace_s: float = Field(5.0, ge=0)
    concurrency_policy: ConcurrencyPolicy = ConcurrencyPolicy.ENQUEUE
    max_active_runs_per_user: int = Field(3, gt=0)
    # Run dispatch: how many runs this node executes at once (0: it accepts messages and serves
    # sockets but runs none), and the lease by which a node holds a run; a node that dies is
    # noticed within about two leases, and its runs end with agent_error node_lost.
    node_run_capacity: int = Field(256, ge=0)
    run_lease_s: float = Field(10.0, ge=0.5, le=300, allow_inf_nan=False)
    # Run events waiting to be stored, at most: past it a run waits before its next event until
    # the store catches up (back-pressure; nothing is dropped), as the Redis bus does for Redis.
    store_max_backlog: int = Field(10_000, ge=1, le=10_000_000)
    # How long run events may gather before they are stored, at most, under load (the event
    # writer's linger): fewer, larger batches against a store that lags live delivery by it.
    store_linger_ms: int = Field(10, ge=0, le=1000)
    # The young-generation threshold of the garbage collector in `runwire serve` (0: Python's
    # default of 700); see cli/collector.py for why a server wants it larger.
    gc_young_threshold: int = Field(50_000, ge=0)
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_kib: int = Field(65536, ge=8)

    # Limits against hostile clients. A limit is a burst refilled in full over its window, so
    # past the burst one more attempt comes back every window / burst seconds.
    login_account_failures: int = Field(5, ge=1)
    login_account_window_s: float = Field(900.0, gt=0, allow_inf_nan=False)
    login_ip_failures: int = Field(20, ge=1)
    login_ip_window_s: float = Field(900.0, gt=0, allow_inf_nan=False)
    register_ip_requests: int = Field(30, ge=1)
    register_ip_window_s: float = Field(3600.0, gt=0, allow_inf_nan=False)
    refresh_ip_requests: int = Field(60, ge=1)
    refresh_ip_window_s: float = Field(60.0, gt=0, allow_inf_nan=False)
    usage_import_user_requests: int = Field(10, ge=1)  # imports (and sample loads) per user
    usage_import_user_window_s: float = Field(60.0, gt=0, allow_inf_nan=False)
    trusted_proxies: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(
        default_factory=list
    )
    ws_messages_per_second: float = Field(10.0, gt=0, allow_inf_nan=False)
    ws_message_burst: int = Field(30, ge=1)
    max_connections_per_user: int = Field(10, ge=1)
    ws_auth_timeout_s: float = Field(10.0, gt=0, allow_inf_nan=False)
    # How long an idle HTTP keep-alive connection stays open. Longer than the idle expiry of
    # clients' pools (httpx 5 s, aiohttp 15 s), so that a client drops a connection before the
    # server does: otherwise a request sent as the server closes fails with no response.
    http_keep_alive_s: int = Field(20, ge=1, le=3600)
    # How long a request's head (request line and headers) may take to arrive whole, from the
    # connection (or the first byte after a response); past it the connection is closed. Bounds
    # what a silent or trickling client (slowloris) holds.
    http_head_timeout_s: float = Field(5.0, gt=0, le=300, allow_inf_nan=False)
    # How long a request's body may go without a byte arriving once its head is whole (not
    # counting while the server itself is not reading); past it the connection is closed. A
    # body that stopped would otherwise hold its connection and its request's task for ever.
    http_body_timeout_s: float = Field(30.0, gt=0, le=3600, allow_inf_nan=False)

    # Resume and retention: how long ended runs keep their events, how often they are trimmed,
    # and how often a quiet SSE stream gets a keep-alive comment.
    event_retention_days: int = Field(7, ge=1, le=36500)
    event_retention_interval_s: float = Field(3600.0, gt=0, allow_inf_nan=False)
    sse_keepalive_s: float = Field(15.0, gt=0, allow_inf_nan=False)

    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str = "gpt-4o-mini"
    # With RUNWIRE_LLM_BASE_URL: retries of a model turn refused with 429 or 5xx or not reached
    # (waiting Retry-After, or RETRY_BASE_S doubling), and what a run does when the model fails.
    llm_max_retries: int = Field(2, ge=0, le=10)
    llm_retry_base_s: float = Field(0.5, ge=0, le=60, allow_inf_nan=False)
    llm_fallback: ModelFallback = ModelFallback.NONE

    log_format: LogFormat = LogFormat.TEXT
    log_level: LogLevel = LogLevel.INFO

    # GET /metrics (Prometheus). Open outside production; in production only with a token or on
    # a port of its own (see docs/operating.md). False: no /metrics, and no per-event counting.
    metrics: bool = True
    metrics_token: SecretStr | None = None
    # A second listener that serves only /metrics (0: a free port, named in the log).
    metrics_port: int | None = Field(None, ge=0, le=65535)
    metrics_host: str | None = None  # the metrics listener's interface; unset: RUNWIRE_HOST

    # OpenTelemetry's own variable, not a RUNWIRE_ one: set, spans are exported over OTLP/HTTP
    # (the exporter reads it and the other OTEL_EXPORTER_OTLP_* variables itself).
    otlp_endpoint: str | None = Field(None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keywords over the environment, and nothing else: runwire reads no .env file and no
        secrets directory. (Each source walks every field again whether or not it has anything
        to read: the two unused ones were half the cost of making a Settings.)"""
        return init_settings, env_settings

    @model_validator(mode="before")
    @classmethod
    def _otlp_endpoint_by_name(cls, data: Any) -> Any:
        # The field is read from OpenTelemetry's own variable, its alias; by its name it is a
        # keyword too (Settings(otlp_endpoint=...), which pydantic would otherwise drop as an
        # unknown key), and as a keyword it wins over the variable like any other.
        if isinstance(data, dict) and "otlp_endpoint" in data:
            data = dict(data)
            data["OTEL_EXPORTER_OTLP_ENDPOINT"] = data.pop("otlp_endpoint")
        return data

    @field_validator(
        "redis_url",
        "metrics_token",
        "metrics_port",
        "metrics_host",
        "otlp_endpoint",
        "auth_keys_dir",
        "test_token_key",
        "auth_issuer_url",
        "auth_public_url",
        "service_client_id",
        "service_client_secret",
        "service_client_key_file",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        return value

    @field_validator("auth_algorithms", mode="before")
    @classmethod
    def _split_algorithms(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        names = [str(a) for a in value] if isinstance(value, list) else []
        never = [a for a in names if a.lower() == "none" or a.upper()[:2] == "HS"]
        if never:
            raise ValueError(
                f"{', '.join(never)} is never accepted: a token must be signed with a key whose "
                "public half the issuer publishes (none is no signature, HS* a shared secret); "
                f"choose among {', '.join(a.value for a in TokenAlgorithm)}"
            )
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list):
            return value
        networks: list[IPv4Network | IPv6Network] = []
        bad: list[str] = []
        for item in value:
            if isinstance(item, IPv4Network | IPv6Network):
                networks.append(item)
                continue
            try:
                networks.append(ip_network(str(item).strip(), strict=False))
            except ValueError:
                bad.append(repr(item))
        if bad:
            raise ValueError(
                f"not an IP address or network (like 10.0.0.5 or 10.0.0.0/8): {', '.join(bad)}"
            )
        return networks

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'runwire.db').resolve()}"

    @property
    def keys_dir(self) -> Path:
        """Where the access-token signing keys are: RUNWIRE_AUTH_KEYS_DIR, or DATA_DIR/keys."""
        return self.auth_keys_dir if self.auth_keys_dir is not None else self.data_dir / "keys"

    @property
    def serves_test_tokens(self) -> bool:
        """``POST /auth/test-token`` exists: a test-token key is set (never in production), on
        a process that serves /auth/*."""
        return (
            self.test_token_key is not None
            and not self.is_production
            and self.role is not Role.CHAT
        )

    @property
    def outside_issuer(self) -> bool:
        """This chat node accepts the tokens of an outside OpenID Connect issuer."""
        return self.role is Role.CHAT and self.auth_issuer_kind is IssuerKind.OIDC

    @property
    def expected_issuer(self) -> str:
        """The ``iss`` of the tokens accepted: an outside issuer is its URL (OpenID Connect
        Discovery §4.3), runwire's own is ``RUNWIRE_AUTH_ISSUER``."""
        if self.outside_issuer and self.auth_issuer_url is not None:
            return self.auth_issuer_url
        return self.auth_issuer

    @property
    def verification_algorithms(self) -> tuple[TokenAlgorithm, ...]:
        """The algorithms a token may be signed with, in order of preference."""
        if not self.outside_issuer:
            return RUNWIRE_ALGORITHMS
        return tuple(dict.fromkeys(self.auth_algorithms)) or OUTSIDE_ALGORITHMS

    @property
    def auth_client_url(self) -> str | None:
        """Where a client of this chat node sends /auth/* (None: here, the same origin, or
        nowhere: an outside issuer's sign-in is not runwire's /auth/*)."""
        if self.role is not Role.CHAT or self.outside_issuer:
            return None
        url = self.auth_public_url or self.auth_issuer_url
        return url.rstrip("/") if url else None

    @property
    def serves_api_reference(self) -> bool:
        """``/docs``, ``/redoc`` and ``/openapi.json`` are served: always outside production,
        in production only with ``RUNWIRE_PUBLIC_DOCS=true``."""
        return self.public_docs or not self.is_production

    @property
    def metrics_on_app(self) -> bool:
        """Whether the app's own port answers GET /metrics: when metrics are on and have no port
        of their own, and, in production, only behind RUNWIRE_METRICS_TOKEN."""
        if not self.metrics or self.metrics_port is not None:
            return False
        return not self.is_production or self.metrics_token is not None

    @property
    def migrate_on_start(self) -> bool:
        """Embedded SQLite outside production migrates itself; production runs ``runwire migrate``."""
        if self.auto_migrate is not None:
            return self.auto_migrate
        return not self.is_production

    @property
    def has_service_client(self) -> bool:
        """This node has service credentials of its own (RUNWIRE_SERVICE_CLIENT_ID and a secret
        or key file)."""
        return self.service_client_id is not None

    def problems(self) -> list[str]:
        """Every inconsistency, each as a sentence naming the variable(s) to fix
        (:mod:`runwire.config.rules`)."""
        return rules.problems(self)
