"""A server killed mid-run: after a restart the run is closed, not left hanging forever."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.e2e.conftest import BASE_ENV, ServerProcess
from tests.e2e.wire import Session


async def test_a_run_cut_off_by_a_crash_is_closed_at_the_next_start(
    tmp_path: Path, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    env = {**BASE_ENV, "RUNWIRE_OFFLINE_DELAY_MS": "40"}
    first = ServerProcess(tmp_path, env)
    try:
        session = await sessions(first.url)
        await session.post("/api/usage/sample")
        sock = await session.connect()
        ack = await sock.ask("Where can we cut our LLM costs?")
        while (await sock.recv())["type"] != "text_delta":
            pass
        await asyncio.sleep(0.2)  # let some events reach the store
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
    finally:
        first.stop()
    second = ServerProcess(tmp_path, env)
    try:
        again = await sessions(second.url)
        again.access, again.refresh, again.user_id = (
            session.access,
            session.refresh,
            session.user_id,
        )
        events = (await again.get(f"/api/runs/{ack['run_id']}/events")).json()["events"]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        last = events[-1]
        assert last["type"] == "agent_error" and last["parent_agent"] is None
        assert last["code"] == "interrupted"
        run = (await again.get(f"/api/runs/{ack['run_id']}")).json()["run"]
        assert run["status"] == "failed" and run["error_code"] == "interrupted"
        assert "closed 1 runs left unfinished" in second.log()
    finally:
        second.stop()
