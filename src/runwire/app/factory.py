"""The app factory: the one place where runwire's parts are built and wired together.

``create_app(settings)`` builds nothing that does work: the database, the event bus, the run
queue, this node's runs (``Runs.running``: the event writer, the run executor and the dispatcher)
and the retention task start in the lifespan, as nested async contexts, and stop in reverse order
(retention first; then the runs, so their closing events are written, and the writer that stores
them; then the run queue; then the bus, once it has sent what it holds; then the database).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from runwire.app.agent import build_agent, build_chat_model
from runwire.app.backends import build_bus, build_limits, build_revocations, build_run_queue
from runwire.app.middleware import install_middleware
from runwire.app.monitoring import build_metrics_listener, build_probes, read_gauges
from runwire.app.routes import install_routes
from runwire.app.tokens import (
    build_access_tokens,
    build_e2e_tokens,
    build_keys,
    build_outside_tokens,
    build_service_tokens,
    following_revocations,
)
from runwire.auth.client_credentials import ClientCredentials
from runwire.auth.key_files import KeyDirectory, KeyRing, open_keys
from runwire.auth.passwords import Passwords
from runwire.auth.service import AuthService
from runwire.auth.throttle import AuthLimits, AuthThrottle
from runwire.chat import ChatService
from runwire.config import Role, Settings
from runwire.errors import ConfigError
from runwire.events.model import RunEvent
from runwire.limits.base import Limit
from runwire.limits.buckets import Clock, Rate
from runwire.readiness import Readiness
from runwire.runs.node import Runs
from runwire.runs.retention import Retention
from runwire.store.store import Store
from runwire.telemetry.metrics import Metrics
from runwire.telemetry.traces import Tracing, otlp_processor
from runwire.transport import api_reference
from runwire.transport.errors import install_error_handlers
from runwire.transport.services import Services
from runwire.usage.pricing import PricingTable
from runwire.usage.workload import ImportThrottle, Workload

__all__ = ["create_app"]


async def _check_schema(store: Store) -> None:
    current, head = await store.db.schema_revision()
    if current != head:
        raise ConfigError(
            [
                f"the database schema is at {current or 'nothing'}, this server needs {head}: "
                "run `runwire migrate`"
            ]
        )


async def _discard(events: Sequence[RunEvent]) -> None:
    """The event sink of RUNWIRE_KEEP_EVENTS=false: measures what storing events costs."""


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
        tracing = Tracing(
            otlp_processor(settings.otlp_endpoint) if settings.otlp_endpoint else None
        )

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
    install_middleware(app, settings, tracing)
    install_routes(app, settings)
    return app
