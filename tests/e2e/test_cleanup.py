"""Nothing is left behind: connections, subscriptions, runs and tasks return to their baseline
after 300 connect/run/disconnect cycles that end every way a real client ends (75 of each way), and
a peer that vanishes without closing is found by keepalive pings and released. Minutes of such
churn are `make bench-soak` (issue 12, R5); a leak shows here as any difference at all from the
baseline, so a few hundred cycles find what a thousand did, in a third of the time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.e2e.conftest import BASE_ENV, ServerProcess
from tests.e2e.wire import Session, raw_socket, tls
from tests.metrics import gauges as read_gauges
from tests.timing import unit

CYCLES = 300
WORKERS = 10


@pytest.fixture
def churn_server(tmp_path: Path) -> Iterator[ServerProcess]:
    # Keepalive pings as in production: the client here is busy with ten sockets at once, and
    # on a loaded machine may answer a ping later than the half second the test below allows.
    env = {
        **BASE_ENV,
        "RUNWIRE_MAX_ACTIVE_RUNS_PER_USER": "1000",
        "RUNWIRE_MAX_CONNECTIONS_PER_USER": "1000",
    }
    # Hundreds of cycles through code the other tests cover: no coverage tracer (twice the CPU).
    proc = ServerProcess(tmp_path, env, measured=False)
    yield proc
    proc.stop()


@pytest.fixture
def pinging_server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {**BASE_ENV, "RUNWIRE_WS_PING_INTERVAL_S": "0.5", "RUNWIRE_WS_PING_TIMEOUT_S": "0.5"}
    proc = ServerProcess(tmp_path, env)
    yield proc
    proc.stop()


async def gauges(base: str) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=base, timeout=unit(5), verify=tls()) as http:
        return await read_gauges(http)


async def settled(base: str, baseline: dict[str, float]) -> dict[str, float]:
    """Poll the gauges until they are back at ``baseline`` (or the deadline passes)."""
    deadline = asyncio.get_running_loop().time() + unit(15)
    while True:
        now = await gauges(base)
        if now == baseline or asyncio.get_running_loop().time() > deadline:
            return now
        await asyncio.sleep(0.05)


async def one_cycle(session: Session, i: int) -> None:
    """Connect, start a run, and leave in one of four ways."""
    headers = {"Authorization": f"Bearer {session.access}"}
    async with connect(session.ws_url(), additional_headers=headers, max_queue=None) as ws:
        assert json.loads(await ws.recv())["type"] == "connection_established"
        await ws.send(json.dumps({"type": "user_message", "content": f"cycle {i}"}))
        run_id = ""
        while not run_id:
            frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), unit(10)))
            run_id = frame.get("run_id", "") if frame["type"] == "message_accepted" else ""
        way = i % 4
        if way == 0:  # read the whole run, then close
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), unit(10)))
                if frame.get("parent_agent", "") is None and frame["type"] in (
                    "agent_completed",
                    "agent_error",
                    "agent_stopped",
                ):
                    break
        elif way == 1:  # stop the run, then close without waiting
            await ws.send(json.dumps({"type": "stop_agent", "run_id": run_id}))
        elif way == 2:  # send garbage, then vanish without a close frame
            await ws.send("{not json")
            ws.transport.abort()
        # way 3: close at once, mid-run


async def test_hundreds_of_cycles_leave_nothing_behind(churn_server: ServerProcess) -> None:
    base = churn_server.url
    users = [await Session.new(base) for _ in range(WORKERS)]
    try:
        baseline = await settled(base, await gauges(base))
        assert baseline["runwire_connections"] == 0 and baseline["runwire_runs_active"] == 0

        async def worker(w: int) -> None:
            for i in range(w, CYCLES, WORKERS):
                await one_cycle(users[w], i)

        await asyncio.gather(*(worker(w) for w in range(WORKERS)))
        after = await settled(base, baseline)
        assert after == baseline, f"left behind after {CYCLES} cycles: {after} vs {baseline}"
    finally:
        for user in users:
            await user.aclose()


async def test_a_peer_that_stops_answering_pings_is_released(
    pinging_server: ServerProcess,
) -> None:
    base = pinging_server.url
    user = await Session.new(base)
    try:
        baseline = await settled(base, await gauges(base))
        dead, head = raw_socket(pinging_server.url, user.access)
        assert head.startswith(b"HTTP/1.1 101")
        try:
            assert (await gauges(base))["runwire_connections"] == baseline[
                "runwire_connections"
            ] + 1
            # Pings every 0.5 s, 0.5 s to answer: released within about a second.
            after = await settled(base, baseline)
            assert after["runwire_connections"] == baseline["runwire_connections"]
        finally:
            dead.close()
    finally:
        await user.aclose()
