"""Traces leave the real server process over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set:
a collector of the test's own (a real HTTP server on loopback) receives the message's trace, and
the JSON log lines written inside it carry its trace id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import BASE_ENV, ServerProcess
from tests.e2e.wire import Session
from tests.otlp_collector import Collector


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector.running() as server:
        yield server


async def test_a_messages_trace_reaches_an_otlp_collector(
    tmp_path: Path, collector: Collector
) -> None:
    env = {
        **BASE_ENV,
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
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
