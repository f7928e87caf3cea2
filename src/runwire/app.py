"""The app factory: the one place where runwire's parts are built and wired together.

``create_app(settings)`` builds nothing that does work: the database, the event bus, the run
queue, this node's runs (``Runs.running``: the event writer, the run executor and the dispatcher)
and the retention task start in the lifespan, as nested async contexts, and stop in reverse order
(retention first; then the runs, so their closing events are written, and the writer that stores
them; then the run queue; then the bus, once it has sent what it holds; then the database).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    asynccontextmanager,
    nullcontext,
)
from functools import partial
from importlib import resources
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from runwire.agents import (
    AgentContext,
    ChatModel,
    OfflineProvider,
    Supervisor,
)
from runwire.agents.chat_model import RetryPolicy
from runwire.auth.client_credentials import ClientCredentials
from runwire.auth.jwks import JwksKeys, NoSigner
from runwire.auth.key_files import KeyDirectory, KeyRing, open_keys
from runwire.auth.outside_tokens import OutsideTokens
from runwire.auth.passwords import Passwords
from runwire.auth.revocation_feed import FEED_PATH, RevocationFeed
from runwire.auth.service import AuthService
from runwire.auth.service_account import ServiceAccount
from runwire.auth.service_tokens import ServiceTokens
from runwire.auth.test_tokens import E2ETokens
from runwire.auth.throttle import AuthLimits, AuthThrottle
from runwire.auth.tokens import AccessTokens
from runwire.bus.base import EventBus
from runwire.bus.memory import MemoryBus
from runwire.chat import ChatService
from runwire.config import ModelFallback, Role, Settings, safe_url
from runwire.connections.base import ConnectionRegistry
from runwire.connections.memory import MemoryConnections
from runwire.dispatch.base import RunQueue
from runwire.dispatch.memory import MemoryRunQueue
from runwire.domain.usage import UsageRecord
from runwire.errors import ConfigError
from runwire.events.model import RunEvent
from runwire.events.redaction import Redactor
from runwire.limits.base import Limit, RateLimiter
from runwire.limits.memory import MemoryRateLimiter
from runwire.metrics import Metrics
from runwire.ratelimit import Clock, Rate
from runwire.readiness import BusProbe, LLMProbe, Probe, Readiness
from runwire.revocations.base import Revocations
from runwire.revocations.memory import MemoryRevocations
from runwire.runs.event_writer import EventWriter
from runwire.runs.executor import AgentFn, Emit, RunExecutor, RunInput
from runwire.runs.node import Runs
from runwire.runs.retention import Retention
from runwire.store.store import Store
from runwire.traces import Tracing, otlp_processor
from runwire.transport import (
    agui_routes,
    api_reference,
    api_routes,
    auth_routes,
    client_config,
    health,
    internal_routes,
    scrape,
    test_token_routes,
    token_routes,
    well_known,
)
from runwire.transport.body_limit import (
    AGUI_BODY_BYTES,
    MAX_BODY_BYTES,
    SERVICE_BODY_BYTES,
    BodyLimit,
)
from runwire.transport.errors import install_error_handlers
from runwire.transport.request_id import RequestIdMiddleware
from runwire.transport.request_span import RequestSpanMiddleware
from runwire.transport.scrape import MetricsListener
from runwire.transport.services import Services
from runwire.transport.websocket import websocket_endpoint
from runwire.usage.pricing import PricingTable
from runwire.workload import ImportThrottle, Workload

__all__ = ["create_app"]

log = logging.getLogger(__name__)


@asynccontextmanager
async def build_chat_model(settings: Settings) -> AsyncIterator[ChatModel | None]:
    """With RUNWIRE_LLM_BASE_URL, the model that drives the tools (its connection pool is
    closed on the way out); without it None: the offline agents answer."""
    if not settings.llm_base_url:
        yield None
        return
    # Imported here: the SDK takes seconds to import on a busy machine, and only a server with a
    # model configured needs it (the CLI and offline servers start without it).
    from runwire.agents.openai_model import OpenAIChatModel

    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else ""
    async with OpenAIChatModel(
        base_url=settings.llm_base_url,
        api_key=key,
        model=settings.llm_model,
        timeout_s=settings.llm_timeout_s,
        retry=RetryPolicy(settings.llm_max_retries, settings.llm_retry_base_s),
    ) as model:
        yield model


def build_agent(
    settings: Settings,
    store: Store,
    pricing: PricingTable,
    tracing: Tracing | None = None,
    model: ChatModel | None = None,
) -> AgentFn:
    llm = OfflineProvider(settings.offline_delay_ms)
    supervisor = Supervisor()
    redactor = Redactor(max_chars=settings.event_value_max_chars)

    async def run_agent(run: RunInput, emit: Emit) -> str:
        loaded: list[Sequence[UsageRecord]] = []

        async def load_usage() -> Sequence[UsageRecord]:
            # Every tool of the run reads the same data: one read per run, not one per tool; its
            # records are read only if a tool needs what the store's summary does not answer.
            if not loaded:
                loaded.append(await store.usage.usage_of(run.user_id, version=run.usage_version))
            return loaded[0]

        ctx = AgentContext(
            run_id=run.run_id,
            question=run.question,
            history=run.history,
            load_usage=load_usage,
            emit=emit,
            llm=llm,
            tool_timeout_s=settings.tool_timeout_s,
            llm_timeout_s=settings.llm_timeout_s,
            redactor=redactor,
            pricing=pricing,
            tracing=tracing,
            model=model,
            model_fallback=settings.llm_fallback is ModelFallback.OFFLINE,
            keep_model_usage=partial(store.runs.set_model_usage, run.run_id),
            keep_quality=partial(store.runs.set_quality, run.run_id),
            # A plain function given as the emitter (as tests do) emits a batch one by one.
            emit_batch=getattr(emit, "emit_batch", None),
        )
        return await supervisor.run(ctx)

    return run_agent


async def _check_schema(store: Store) -> None:
    current, head = await store.db.schema_revision()
    if current != head:
        raise ConfigError(
            [
                f"the database schema is at {current or 'nothing'}, this server needs {head}: "
                "run `runwire migrate`"
            ]
        )


# The Redis implementations are imported only by a node given RUNWIRE_REDIS_URL.
# redis-py's import (with the OpenTelemetry SDK it loads) costs ~0.35 s of CPU, a sixth of a
# server's start, which an embedded server, every CLI command and each of the suite's many server
# processes paid for nothing.


def build_bus(settings: Settings) -> AbstractAsyncContextManager[EventBus]:
    """The in-process bus, or with RUNWIRE_REDIS_URL the Redis bus (several nodes)."""
    if settings.redis_url is None:
        return nullcontext(MemoryBus())
    from runwire.bus.redis import RedisBus  # lazily: see the note above build_bus

    url = settings.redis_url.get_secret_value()
    log.info("event bus: Redis at %s", safe_url(url))
    return RedisBus(url).running()


def build_run_queue(settings: Settings) -> AbstractAsyncContextManager[RunQueue]:
    """The in-process run queue, or with RUNWIRE_REDIS_URL the Redis one (several nodes)."""
    if settings.redis_url is None:
        return nullcontext(MemoryRunQueue())
    from runwire.dispatch.redis import RedisRunQueue  # lazily: see the note above build_bus

    return RedisRunQueue(
        settings.redis_url.get_secret_value(), lease_s=settings.run_lease_s
    ).running()


def build_limits(
    settings: Settings, clock: Clock | None
) -> tuple[
    AbstractAsyncContextManager[RateLimiter], AbstractAsyncContextManager[ConnectionRegistry]
]:
    """The rate limiter and the connection registry: in this process, or with RUNWIRE_REDIS_URL
    in Redis, shared by every node. Redis counts on its own clock unless a test passes one."""
    cap = settings.max_connections_per_user
    if settings.redis_url is None:
        return (
            nullcontext(MemoryRateLimiter(clock or time.monotonic)),
            nullcontext(MemoryConnections(cap)),
        )
    from runwire.connections.redis import RedisConnections  # lazily: see the note above build_bus
    from runwire.limits.redis import RedisRateLimiter

    url = settings.redis_url.get_secret_value()
    return (
        RedisRateLimiter(url, clock=clock, fallback_clock=clock or time.monotonic).running(),
        RedisConnections(url, cap, clock=clock).running(),
    )


def build_revocations(settings: Settings) -> AbstractAsyncContextManager[Revocations]:
    """The ended sessions: in this process, or with RUNWIRE_REDIS_URL shared by every node."""
    if settings.redis_url is None:
        return nullcontext(MemoryRevocations())
    from runwire.revocations.redis import RedisRevocations  # lazily: see the note above build_bus

    return RedisRevocations(settings.redis_url.get_secret_value()).running()


async def _discard(events: Sequence[RunEvent]) -> None:
    """The event sink of RUNWIRE_KEEP_EVENTS=false: measures what storing events costs."""


def read_gauges(
    metrics: Metrics, bus: EventBus, executor: RunExecutor, writer: EventWriter
) -> None:
    """The gauges, read from the parts that hold them at each scrape. Each returns to its
    baseline when clients leave and runs end (the leak tests read them)."""
    metrics.read(
        "runwire_connections",
        "Open connections on this node that receive run events (WebSockets and SSE streams).",
        bus.subscriber_count,
    )
    metrics.read(
        "runwire_runs_active", "Runs executing on this node.", lambda: executor.active_count
    )
    metrics.read(
        "runwire_bus_backlog",
        "Event bus writes queued for Redis and not sent yet (0 with the in-process bus).",
        lambda: bus.backlog,
    )
    metrics.read(
        "runwire_bus_held_runs",
        "Runs whose events this node's bus holds (active runs, until their events are stored).",
        lambda: bus.held_runs,
    )
    metrics.read(
        "runwire_store_backlog_events",
        "Run events waiting to be stored.",
        lambda: writer.backlog,
    )
    metrics.read(
        "runwire_asyncio_tasks", "Tasks on the event loop.", lambda: len(asyncio.all_tasks())
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


def build_probes(settings: Settings, bus: EventBus) -> list[Probe]:
    """What /ready checks besides the database: Redis and the LLM endpoint, when configured."""
    probes: list[Probe] = []
    if settings.redis_url is not None:
        probes.append(BusProbe(bus))
    llm = LLMProbe.configured(settings)
    if llm is not None:
        probes.append(llm)
    return probes


def build_metrics_listener(
    settings: Settings, metrics: Metrics
) -> AbstractAsyncContextManager[MetricsListener | None]:
    """The listener of RUNWIRE_METRICS_PORT, or nothing."""
    if settings.metrics_port is None:
        if settings.metrics and settings.is_production and settings.metrics_token is None:
            log.info(
                "/metrics is off: in production set RUNWIRE_METRICS_TOKEN or RUNWIRE_METRICS_PORT"
            )
        return nullcontext(None)
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    return MetricsListener(
        metrics,
        host=settings.metrics_host or settings.host,
        port=settings.metrics_port,
        token=token,
    ).running()


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


def install_routes(app: FastAPI, settings: Settings) -> None:
    """The routes of the process's role: /auth/* and /.well-known/* where tokens are issued,
    /api/*, /ws and the page where people chat (docs/auth.md, "Roles")."""
    if settings.role is not Role.CHAT:
        app.include_router(auth_routes.router)
        app.include_router(token_routes.router)
        if settings.serves_test_tokens:  # otherwise the path does not exist: 404
            app.include_router(test_token_routes.router)
        app.include_router(well_known.router)
    if settings.role is not Role.AUTH:
        app.include_router(api_routes.router)
        app.include_router(client_config.router)
        app.include_router(internal_routes.router)
        app.include_router(agui_routes.router)
    app.include_router(health.router)
    app.include_router(scrape.router)
    if settings.role is Role.AUTH:
        # The page of a chat node, at another origin, calls /auth/* here. Bearer tokens, no
        # cookies: no credentials mode.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
        return
    app.add_api_websocket_route("/ws", websocket_endpoint)
    static = resources.files("runwire") / "web" / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    index_html = (static / "index.html").read_text(encoding="utf-8")
    if settings.auth_client_url is not None:
        # The page's policy lets it call the auth service's origin too, and no other.
        auth = urlsplit(settings.auth_client_url)
        index_html = index_html.replace(
            "connect-src 'self'", f"connect-src 'self' {auth.scheme}://{auth.netloc}", 1
        )

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(index_html, headers={"Cache-Control": "no-store"})


def create_app(
    settings: Settings, *, clock: Clock | None = None, tracing: Tracing | None = None
) -> FastAPI:
    """Build the ASGI app for ``settings`` (already validated by ``load_settings``).

    ``clock`` (seconds) times the rate limits; tests pass a fake one. Unset, limits kept in this
    process use ``time.monotonic`` and limits kept in Redis use Redis's clock. ``tracing``: where
    spans go (tests pass an in-memory exporter); unset, over OTLP when
    OTEL_EXPORTER_OTLP_ENDPOINT is set, else nowhere.
    """
    # Raises ConfigError for missing (in production) or unusable key files: before anything runs.
    # A chat node never opens the key directory: it fetches the issuer's keys as it starts.
    ring = (
        None
        if settings.role is Role.CHAT
        else KeyRing(KeyDirectory(settings.keys_dir), open_keys(settings))
    )
    pricing = PricingTable.load()
    metrics = Metrics(count_events=settings.metrics)
    if tracing is None:
        tracing = Tracing(otlp_processor if settings.otlp_endpoint else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Services]]:
        async with AsyncExitStack() as stack:
            # Entered first, left last: the spans of runs closed at shutdown are sent too.
            await stack.enter_async_context(tracing.running())
            store = await stack.enter_async_context(
                Store.open(
                    settings.effective_database_url,
                    migrate=settings.migrate_on_start,
                    on_write=metrics.store_write.observe,
                )
            )
            await _check_schema(store)
            keys = await stack.enter_async_context(build_keys(settings, ring))
            # Entered before the writer and the executor, so it outlives the runs' last events.
            bus = await stack.enter_async_context(build_bus(settings))
            queue = await stack.enter_async_context(build_run_queue(settings))
            model = await stack.enter_async_context(build_chat_model(settings))
            # This node's event writer, executor and dispatcher, after the model (its connection
            # pool outlives the runs) and the queue (runs hold leases until they end).
            runs = await stack.enter_async_context(
                Runs.running(
                    store=store,
                    bus=bus,
                    queue=queue,
                    agent=build_agent(settings, store, pricing, tracing, model),
                    run_timeout_s=settings.run_timeout_s,
                    # The auth role serves no chat: it takes no runs from a shared queue.
                    capacity=0 if settings.role is Role.AUTH else settings.node_run_capacity,
                    sweep_interval_s=settings.run_lease_s / 2,
                    grace_s=settings.shutdown_grace_s,
                    sink=store.runs.append_events if settings.keep_events else _discard,
                    max_backlog=settings.store_max_backlog,
                    linger_s=settings.store_linger_ms / 1000,
                    metrics=metrics,
                    tracing=tracing,
                )
            )
            await stack.enter_async_context(
                Retention(
                    store.runs,
                    keep_days=settings.event_retention_days,
                    interval_s=settings.event_retention_interval_s,
                ).running()
            )
            limiter_context, connections_context = build_limits(settings, clock)
            limiter = await stack.enter_async_context(limiter_context)
            connections = await stack.enter_async_context(connections_context)
            throttle = AuthThrottle(AuthLimits.from_settings(settings), limiter)
            revocations = await stack.enter_async_context(build_revocations(settings))
            await stack.enter_async_context(following_revocations(settings, revocations))
            service_tokens = build_service_tokens(settings, keys)
            auth = AuthService(
                store.accounts,
                Passwords(
                    time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib
                ),
                build_access_tokens(settings, keys),
                throttle=throttle,
                revocations=revocations,
                refresh_ttl_s=settings.refresh_token_ttl_s,
                ticket_ttl_s=settings.ws_ticket_ttl_s,
                outside=build_outside_tokens(settings, keys),
            )
            services = Services(
                settings=settings,
                store=store,
                auth=auth,
                keys=keys,
                e2e_tokens=build_e2e_tokens(settings, store, auth, throttle),
                service_tokens=service_tokens,
                client_credentials=(
                    None
                    if settings.role is Role.CHAT
                    else ClientCredentials(
                        store.clients,
                        service_tokens,
                        throttle,
                        issuer=settings.auth_issuer,
                    )
                ),
                chat=ChatService(
                    store,
                    runs,
                    bus,
                    default_policy=settings.concurrency_policy,
                    max_active_runs_per_user=settings.max_active_runs_per_user,
                    pricing=pricing,
                ),
                bus=bus,
                connections=connections,
                revocations=revocations,
                executor=runs.executor,
                clock=clock or time.monotonic,
                workload=Workload(
                    store.usage,
                    pricing,
                    throttle=ImportThrottle(
                        limiter,
                        Limit(
                            "usage-import",
                            Rate.per_window(
                                settings.usage_import_user_requests,
                                settings.usage_import_user_window_s,
                            ),
                        ),
                    ),
                ),
                readiness=Readiness(store.db, probes=build_probes(settings, bus)),
                metrics=metrics,
                tracing=tracing,
            )
            read_gauges(metrics, bus, runs.executor, runs.writer)
            await stack.enter_async_context(build_metrics_listener(settings, metrics))
            app.state.services = services
            # The lifespan state reaches the server's own /ws protocol (see ws_protocol.py).
            yield {"services": services}

    app = FastAPI(
        title="runwire",
        version="0.1.0",
        summary="Multi-user, real-time AI agent chat",
        description=(
            "The HTTP API of runwire. The WebSocket `/ws` (chat and live run events) and every "
            "field, event and code are described in docs/protocol.md."
        ),
        lifespan=lifespan,
        # Off in production unless RUNWIRE_PUBLIC_DOCS=true; /docs is served from package assets
        # by api_reference (FastAPI's own pages load theirs from a CDN); no ReDoc.
        openapi_url=api_reference.OPENAPI_PATH if settings.serves_api_reference else None,
        docs_url=None,
        redoc_url=None,
    )
    if settings.serves_api_reference:
        api_reference.install(app)
    install_error_handlers(app, metrics)
    # The import reads its body as a stream, under RUNWIRE_MAX_IMPORT_BYTES (api_routes.py).
    app.add_middleware(
        BodyLimit,
        limit=MAX_BODY_BYTES,
        exempt={"/api/usage/import"},
        prefixes={"/internal/": SERVICE_BODY_BYTES, agui_routes.PATH: AGUI_BODY_BYTES},
    )
    if settings.role is not Role.AUTH and settings.allowed_origins:
        # AG-UI front ends at another origin call POST /ag-ui from the browser.
        app.add_middleware(agui_routes.AguiCors, origins=settings.allowed_origins)
    # Added last, runs first: the request id is set before the span, so the span's log lines
    # (uvicorn's access line included) carry both, and so does a body refused for its size.
    app.add_middleware(RequestSpanMiddleware, tracing=tracing)
    app.add_middleware(RequestIdMiddleware)
    install_routes(app, settings)
    return app
