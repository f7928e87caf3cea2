"""Traces leave the real server process over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set:
a collector of the test's own (a real HTTP server on loopback) receives the message's trace, and
the JSON log lines written inside it carry its trace id."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.e2e.conftest import BASE_ENV, ServerProcess
from tests.e2e.wire import Session


class Collector(ThreadingHTTPServer):
    """Takes OTLP/HTTP trace exports (protobuf) and keeps every span's (name, trace id)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Export)
        self.spans: list[tuple[str, str]] = []
        self.paths: list[str] = []
        self.service_names: set[str] = set()


class _Export(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.paths.append(self.path)
        for resource_spans in request.resource_spans:
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    self.server.service_names.add(attribute.value.string_value)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.server.spans.append((span.name, span.trace_id.hex()))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # the test's output is not the place


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_a_messages_trace_reaches_an_otlp_collector(
    tmp_path: Path, collector: Collector
) -> None:
    env = {
        **BASE_ENV,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_address[1]}",
        "RUNWIRE_LOG_FORMAT": "json",
        "RUNWIRE_LOG_LEVEL": "debug",
    }
    server = ServerProcess(tmp_path, env)
    try:
        session = await Session.new(server.url)
        try:
            sock = await session.connect()
            ack = await sock.ask("hello")
            assert (await sock.run_to_end(ack["run_id"]))[-1]["type"] == "agent_completed"
        finally:
            await session.aclose()
    finally:
        server.stop()  # a graceful stop: the spans still batched are sent
    assert set(collector.paths) == {"/v1/traces"}
    assert collector.service_names == {"runwire"}
    traces = {name: trace_id for name, trace_id in collector.spans}
    assert traces["run"] == traces["ws user_message"] == traces["agent supervisor"]
    assert "POST /auth/register" in traces
    # The run's log lines carry the trace id of the message that started it.
    lines = [json.loads(line) for line in server.log().splitlines() if line]
    (started,) = [line for line in lines if line["message"] == "run started"]
    assert started["trace_id"] == traces["run"]
