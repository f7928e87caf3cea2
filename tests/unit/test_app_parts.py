"""The app factory's parts (runwire/app/), without a server: what each role mounts, the order
its middleware runs in, the chat page's policy, and which implementations a node without Redis
picks (tests/integration/test_role_routes.py checks the roles through a running server)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

from runwire.app.backends import build_bus, build_limits, build_revocations, build_run_queue
from runwire.app.middleware import install_middleware
from runwire.app.monitoring import build_metrics_listener, build_probes
from runwire.app.routes import install_routes, page_policy, routers_of
from runwire.bus.memory import MemoryBus
from runwire.config import Role, Settings
from runwire.connections.memory import MemoryConnections
from runwire.limits.memory import MemoryRateLimiter
from runwire.readiness import BusProbe, LLMProbe
from runwire.revocations.memory import MemoryRevocations
from runwire.run_queue.memory import MemoryRunQueue
from runwire.telemetry.metrics import Metrics
from runwire.telemetry.traces import Tracing
from runwire.transport import (
    agui_routes,
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
from runwire.transport.agui_routes import AguiCors
from runwire.transport.body_limit import BodyLimit
from runwire.transport.request_id import RequestIdMiddleware
from runwire.transport.request_span import RequestSpanMiddleware

pytestmark = pytest.mark.unit

ISSUER = {"auth_issuer_url": "https://auth.example", "auth_client_url": "https://auth.example"}
AUTH_SERVICE = [auth_routes.router, token_routes.router, well_known.router]
CHAT = [api_routes.router, client_config.router, internal_routes.router, agui_routes.router]
EVERYWHERE = [health.router, scrape.router]


def settings(**values: Any) -> Settings:
    return Settings(database_url="sqlite+aiosqlite:///:memory:", **values)


def test_each_role_includes_its_routers_in_order() -> None:
    assert routers_of(settings(role=Role.ALL)) == AUTH_SERVICE + CHAT + EVERYWHERE
    assert routers_of(settings(role=Role.AUTH)) == AUTH_SERVICE + EVERYWHERE
    assert routers_of(settings(role=Role.CHAT, **ISSUER)) == CHAT + EVERYWHERE


def test_the_test_token_route_exists_only_where_its_key_is_set_and_tokens_are_issued() -> None:
    key = {"test_token_key": "k" * 32}
    assert test_token_routes.router in routers_of(settings(role=Role.ALL, **key))
    assert test_token_routes.router in routers_of(settings(role=Role.AUTH, **key))
    assert test_token_routes.router not in routers_of(settings(role=Role.CHAT, **ISSUER, **key))
    assert test_token_routes.router not in routers_of(settings(role=Role.ALL))


def paths(routes: list[BaseRoute]) -> set[str]:
    return {path for route in routes if (path := getattr(route, "path", None))}


def test_the_socket_and_the_page_are_served_where_people_chat() -> None:
    for role, extra in ((Role.ALL, {}), (Role.CHAT, ISSUER)):
        app = FastAPI()
        install_routes(app, settings(role=role, **extra))
        assert {"/ws", "/static", "/"} <= paths(app.routes)
    app = FastAPI()
    install_routes(app, settings(role=Role.AUTH))
    assert not {"/ws", "/static", "/"} & paths(app.routes)


PAGE = "<meta content=\"default-src 'self'; connect-src 'self'\"> connect-src 'self'"


def test_the_page_may_call_the_auth_services_origin_and_no_other() -> None:
    assert page_policy(PAGE, None) == PAGE
    page = page_policy(PAGE, "https://auth.example:8443/some/path?x=1")
    assert "connect-src 'self' https://auth.example:8443\"" in page
    assert page.endswith("connect-src 'self'")  # the first policy only


def middleware(role: Role, **values: Any) -> list[type]:
    app = FastAPI()
    install_middleware(app, settings(role=role, **values), Tracing(None))
    return [entry.cls for entry in app.user_middleware]  # the first runs first


def test_middleware_runs_request_id_then_span_then_cors_then_body_limits() -> None:
    origins = {"allowed_origins": ["https://app.example"]}
    assert middleware(Role.ALL) == [
        RequestIdMiddleware,
        RequestSpanMiddleware,
        BodyLimit,
    ]
    assert middleware(Role.CHAT, **ISSUER, **origins) == [
        RequestIdMiddleware,
        RequestSpanMiddleware,
        AguiCors,
        BodyLimit,
    ]
    # The auth service answers CORS first, for the pages of chat nodes at other origins.
    assert middleware(Role.AUTH, **origins) == [
        CORSMiddleware,
        RequestIdMiddleware,
        RequestSpanMiddleware,
        BodyLimit,
    ]


async def test_a_node_without_redis_keeps_everything_in_its_process() -> None:
    plain = settings()
    async with build_bus(plain) as bus, build_run_queue(plain) as queue:
        assert isinstance(bus, MemoryBus) and isinstance(queue, MemoryRunQueue)
    limiter, connections = build_limits(plain, None)
    async with limiter as limits, connections as seats, build_revocations(plain) as ended:
        assert isinstance(limits, MemoryRateLimiter)
        assert isinstance(seats, MemoryConnections)
        assert isinstance(ended, MemoryRevocations)
    async with build_metrics_listener(plain, Metrics(count_events=False)) as listener:
        assert listener is None
    assert build_probes(plain, MemoryBus()) == []


def test_ready_checks_redis_and_the_model_only_where_they_are_configured() -> None:
    configured = settings(redis_url="redis://127.0.0.1:1/0", llm_base_url="http://127.0.0.1:1/v1")
    probes = build_probes(configured, MemoryBus())
    assert [type(probe) for probe in probes] == [BusProbe, LLMProbe]
