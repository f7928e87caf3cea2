"""Graceful shutdown: connected clients are told, runs get their grace while the client still
watches, runs past it are stopped cleanly (and delivered), and only then do sockets close."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import BASE_ENV, ServerProcess
from tests.e2e.wire import Session
from tests.timing import unit

GRACE_S = 1.0


async def test_shutdown_tells_clients_lets_runs_end_and_then_closes_with_1012(
    tmp_path: Path, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    env = {
        **BASE_ENV,
        "RUNWIRE_OFFLINE_DELAY_MS": "40",  # a run streams for several seconds: past the grace
        "RUNWIRE_SHUTDOWN_GRACE_S": str(GRACE_S),
    }
    server = ServerProcess(tmp_path, env)
    try:
        session = await sessions(server.url)
        await session.post("/api/usage/sample")
        watcher = await session.connect()
        ack = await watcher.ask("Where can we cut our LLM costs?")
        while (await watcher.recv())["type"] != "text_delta":
            pass  # the answer is streaming
        server.proc.send_signal(signal.SIGTERM)

        frames: list[dict[str, Any]] = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frames.append(await watcher.recv(timeout=unit(10)))
                if frames[-1]["type"] == "server_closing":
                    # A message sent now is refused before anything is stored.
                    await watcher.send(type="user_message", content="one more", request_id="r")
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        types = [f["type"] for f in frames]
        notice = types.index("server_closing")
        assert frames[notice]["grace_s"] == GRACE_S
        refusal = next(f for f in frames if f.get("request_id") == "r")
        assert refusal["type"] == "error" and refusal["code"] == "server_closing"
        # After the notice the run kept streaming to this socket, then was stopped cleanly.
        run_events = [f for f in frames[notice:] if f.get("run_id") == ack["run_id"]]
        assert any(e["type"] == "text_delta" for e in run_events)
        last = run_events[-1]
        assert last["type"] == "agent_stopped" and last["parent_agent"] is None
        assert last["code"] == "shutdown"
        # uvicorn re-raises the signal once its shutdown is done: a clean exit reads as -15.
        assert server.proc.wait(unit(15)) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in server.log()
    finally:
        server.stop()

    # After the restart the run is whole: nothing was lost, it needs no recovery.
    again = ServerProcess(tmp_path, env)
    try:
        reader = await sessions(again.url)
        reader.access = session.access  # the same user, on the restarted server
        events = (await reader.get(f"/api/runs/{ack['run_id']}/events")).json()["events"]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert events[-1]["type"] == "agent_stopped"
        assert "left unfinished" not in again.log()
    finally:
        again.stop()


async def test_a_run_that_ends_within_the_grace_completes(
    tmp_path: Path, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    env = {**BASE_ENV, "RUNWIRE_OFFLINE_DELAY_MS": "5", "RUNWIRE_SHUTDOWN_GRACE_S": "20"}
    server = ServerProcess(tmp_path, env)
    try:
        session = await sessions(server.url)
        watcher = await session.connect()
        ack = await watcher.ask("hello")
        await watcher.recv()  # the run has started
        server.proc.send_signal(signal.SIGTERM)
        events = await watcher.run_to_end(ack["run_id"])
        assert events[-1]["type"] == "agent_completed"
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await watcher.recv(timeout=unit(10))
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        await asyncio.to_thread(server.proc.wait, unit(15))
    finally:
        server.stop()
