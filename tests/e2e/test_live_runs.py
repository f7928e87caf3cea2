"""Runs that take time (offline delay > 0): stop mid-run, resume after a dropped connection."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator

import pytest

from tests.e2e.conftest import BASE_ENV, ServerProcess
from tests.e2e.wire import Session
from tests.timing import unit


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path_factory.mktemp("slow"), {**BASE_ENV, "RUNWIRE_OFFLINE_DELAY_MS": "40"}
    )
    yield proc
    proc.stop()


async def test_stop_agent_mid_run_ends_it_within_a_second(
    slow_server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(slow_server.url)
    await session.post("/api/usage/sample")
    sock = await session.connect()
    await sock.send(type="user_message", content="Where can we cut our LLM costs?")
    ack = (await sock.until("message_accepted"))[-1]
    while (await sock.recv())["type"] != "text_delta":
        pass  # wait until the answer is streaming
    asked = time.monotonic()
    await sock.send(type="stop_agent", run_id=ack["run_id"])
    events = await sock.run_to_end(ack["run_id"])
    assert time.monotonic() - asked < unit(1)
    assert events[-1]["type"] == "agent_stopped"
    run = (await session.get(f"/api/runs/{ack['run_id']}")).json()["run"]
    assert run["status"] == "cancelled"
    messages = (await session.get(f"/api/threads/{ack['thread_id']}/messages")).json()["messages"]
    assert messages[-1]["role"] == "assistant" and messages[-1]["partial"] is True
    assert messages[-1]["id"] == events[-1]["partial_message_id"]
    await sock.close()


async def test_dropped_connection_resumes_without_gap_or_duplicate(
    slow_server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(slow_server.url)
    await session.post("/api/usage/sample")
    sock = await session.connect()
    await sock.send(type="user_message", content="Where can we cut our LLM costs?")
    ack = (await sock.until("message_accepted"))[-1]
    seen = []
    while len(seen) < 12:
        frame = await sock.recv()
        if frame.get("run_id") == ack["run_id"] and "seq" in frame:
            seen.append(frame)
    sock.ws.transport.abort()  # the network drops: no close handshake
    again = await session.connect()
    await again.send(type="resume", run_id=ack["run_id"], after_seq=seen[-1]["seq"])
    rest = await again.run_to_end(ack["run_id"])
    whole = seen + rest
    assert [e["seq"] for e in whole] == list(range(1, len(whole) + 1))
    assert whole[-1]["type"] == "agent_completed"
    stored = (await session.get(f"/api/runs/{ack['run_id']}/events")).json()["events"]
    assert stored == whole
    await again.close()
