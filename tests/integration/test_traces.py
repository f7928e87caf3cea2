"""Traces, recorded by the SDK's in-memory exporter: one message's trace from the socket to its
run's last event, with each agent and tool call in it, on one node and across two (the run
executing on the node that did not accept the message)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from websockets.asyncio.client import connect

from runwire.app import create_app
from runwire.config import Settings
from runwire.telemetry.traces import Tracing
from runwire.transport.ws_protocol import RunwireWebSocketProtocol
from tests.conftest import test_settings
from tests.databases import fresh_postgres_database
from tests.integration.test_event_stream import until
from tests.otlp_collector import Collector
from tests.ports import loopback_listener
from tests.services import private_redis
from tests.timing import unit

QUESTION = "Where can we cut our LLM costs?"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def recording() -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return Tracing(lambda: SimpleSpanProcessor(exporter)), exporter


@contextlib.asynccontextmanager
async def node(settings: Settings, tracing: Tracing, *, listen: bool = True) -> AsyncIterator[str]:
    """The app with ``tracing``, served on a loopback port of its own (``listen``) or only
    started (a node that runs runs and serves no client); yields its base URL ("" if none)."""
    app = create_app(settings, tracing=tracing)
    if not listen:
        async with app.router.lifespan_context(app):
            yield ""
        return
    listener = loopback_listener()
    config = uvicorn.Config(
        app,
        log_config=None,
        lifespan="on",
        ws=RunwireWebSocketProtocol,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        await until(lambda: server.started, unit(10))
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        listener.close()


async def one_run(base: str) -> list[dict[str, Any]]:
    """Sign up, load the sample data, ask one question over a socket; the run's events."""
    async with httpx.AsyncClient(base_url=base, timeout=unit(10)) as http:
        creds = {"email": "tracer@example.com", "password": "correct horse battery"}
        r = await http.post("/auth/register", json=creds, headers={"traceparent": TRACEPARENT})
        assert r.status_code == 201, r.text
        token = (await http.post("/auth/login", json=creds)).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        assert (await http.post("/api/usage/sample", headers=auth)).status_code in (200, 201)
    url = base.replace("http://", "ws://") + "/ws"
    events: list[dict[str, Any]] = []
    async with connect(url, additional_headers=auth, max_queue=None) as ws:
        assert json.loads(await ws.recv())["type"] == "connection_established"
        await ws.send(json.dumps({"type": "user_message", "content": QUESTION}))
        async with asyncio.timeout(unit(20)):
            while True:
                frame = json.loads(await ws.recv())
                if "seq" in frame:
                    events.append(frame)
                    if frame["parent_agent"] is None and frame["type"] == "agent_completed":
                        return events


def by_name(spans: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def check_message_trace(message: ReadableSpan, spans: list[ReadableSpan], tools: int) -> None:
    """The run's spans: a run under ``message``, the supervisor under the run, each sub-agent
    under the supervisor, each tool call under its agent; one trace."""
    named = by_name(spans)
    trace_id = message.context.trace_id
    (run,) = named["run"]
    assert parent_of(run) == message.context.span_id and run.context.trace_id == trace_id
    assert run.attributes is not None and run.attributes["runwire.run_status"] == "completed"
    (supervisor,) = named["agent supervisor"]
    assert parent_of(supervisor) == run.context.span_id
    agents = [s for s in spans if s.name.startswith("agent ") and s is not supervisor]
    assert {s.name for s in agents} >= {"agent triage", "agent data", "agent reporting"}
    assert all(parent_of(s) == supervisor.context.span_id for s in agents)
    calls = [s for s in spans if s.name.startswith("tool ")]
    assert len(calls) == tools
    agent_ids = {s.context.span_id for s in agents}
    assert all(parent_of(s) in agent_ids for s in calls)
    assert all(s.context.trace_id == trace_id for s in [run, supervisor, *agents, *calls])
    # The run's span closes after its last event is sent.
    assert run.end_time is not None and all(
        s.end_time is not None and s.end_time <= run.end_time for s in [supervisor, *calls]
    )


async def test_one_message_is_one_trace_down_to_each_tool_call(tmp_path: Path) -> None:
    tracing, exporter = recording()
    async with node(test_settings(tmp_path), tracing) as base:
        events = await one_run(base)
        await until(lambda: "run" in by_name(exporter.get_finished_spans()), unit(5))
    spans = list(exporter.get_finished_spans())
    named = by_name(spans)
    (message,) = named["ws user_message"]
    assert message.kind is SpanKind.SERVER
    assert message.attributes is not None and message.attributes["runwire.user_id"].startswith(
        "usr_"
    )
    tools = sum(1 for e in events if e["type"] == "tool_executing")
    check_message_trace(message, spans, tools)
    # HTTP requests: named by route, and a caller's traceparent continued.
    (register,) = named["POST /auth/register"]
    assert format(register.context.trace_id, "032x") == TRACEPARENT.split("-")[1]
    assert (
        register.attributes is not None and register.attributes["http.response.status_code"] == 201
    )
    assert "POST /auth/login" in named and "POST /api/usage/sample" in named


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A PostgreSQL database and a Redis of this test's own, for two nodes."""
    with fresh_postgres_database(migrate=True) as database, private_redis(tmp_path) as redis:
        yield database, redis


async def test_a_message_accepted_on_one_node_is_traced_into_its_run_on_another(
    tmp_path: Path, shared: tuple[str, str]
) -> None:
    database, redis = shared
    common = {"database_url": database, "redis_url": redis, "run_lease_s": unit(2)}
    front, front_spans = recording()
    worker, worker_spans = recording()
    async with (
        # The front node accepts messages and runs none: each run goes through the run queue.
        node(test_settings(tmp_path / "a", node_run_capacity=0, **common), front) as base,
        node(test_settings(tmp_path / "b", **common), worker, listen=False),
    ):
        events = await one_run(base)
        await until(lambda: "run" in by_name(worker_spans.get_finished_spans()), unit(5))
    (message,) = by_name(front_spans.get_finished_spans())["ws user_message"]
    assert "run" not in by_name(front_spans.get_finished_spans())
    tools = sum(1 for e in events if e["type"] == "tool_executing")
    check_message_trace(message, list(worker_spans.get_finished_spans()), tools)


async def test_nothing_is_recorded_without_an_exporter(tmp_path: Path) -> None:
    tracing = Tracing()
    async with node(test_settings(tmp_path), tracing) as base:
        assert not tracing.enabled
        with tracing.span("anything") as span:
            assert span is None and tracing.carrier() == "" and Tracing.current_trace_id() is None
        assert tracing.extract(TRACEPARENT) is None
        async with httpx.AsyncClient(base_url=base, timeout=unit(10)) as http:
            r = await http.get("/health", headers={"traceparent": TRACEPARENT})
            assert r.status_code == 200


async def test_a_failing_request_marks_its_span(tmp_path: Path) -> None:
    tracing, exporter = recording()
    async with (
        node(test_settings(tmp_path), tracing) as base,
        httpx.AsyncClient(base_url=base, timeout=unit(10)) as http,
    ):
        assert (await http.get("/api/threads")).status_code == 401
        # A traceparent that does not parse starts a trace of its own.
        assert (await http.get("/health", headers={"traceparent": "00-zz"})).status_code == 200
    named = by_name(exporter.get_finished_spans())
    (threads,) = named["GET /api/threads"]
    assert threads.attributes is not None and threads.attributes["http.response.status_code"] == 401
    assert threads.status.status_code is StatusCode.UNSET  # a refusal is not the server failing
    assert "GET /health" in named


@pytest.mark.parametrize("traces_path", [None, "/elsewhere/traces"])
async def test_spans_go_to_the_endpoint_the_settings_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, traces_path: str | None
) -> None:
    # Given as a keyword, not as OTEL_EXPORTER_OTLP_ENDPOINT: the exporter once read only the
    # variable, and sent nothing. OpenTelemetry's traces-only variable still names the URL whole.
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    with Collector.running() as collector:
        if traces_path is not None:
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.url + traces_path)
        app = create_app(test_settings(tmp_path, otlp_endpoint=collector.url + "/"))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://runwire.test"
            ) as http,
        ):
            assert (await http.get("/health", headers={"traceparent": TRACEPARENT})).is_success
        # Leaving the lifespan sent what was batched.
    assert set(collector.paths) == {traces_path or "/v1/traces"}
    assert ("GET /health", TRACEPARENT.split("-")[1]) in collector.spans
