"""A server killed mid-run: after a restart the run is closed, not left hanging forever (on SQLite
and on PostgreSQL)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.e2e.conftest import ServerProcess
from tests.e2e.wire import Session


async def test_a_run_cut_off_by_a_crash_is_closed_at_the_next_start(
    tmp_path: Path, backend_env: dict[str, str], sessions: Callable[[str], Awaitable[Session]]
) -> None:
    env = {**backend_env, "RUNWIRE_OFFLINE_DELAY_MS": "40"}
    first = ServerProcess(tmp_path, env)
    try:
        session = await sessions(first.url)
        await session.post("/api/usage/sample")
        sock = await session.connect()
        ack = await sock.ask("Where can we cut our LLM costs?")
        while (await sock.recv())["type"] != "text_delta":
            pass
        await asyncio.sleep(0.2)  # let some events reach the store
        seen = await sock.recv()  # the last event this client saw live before the crash
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
        # The run was renumbered after its last stored event, so it has a new epoch, and the
        # position the client held under the old one is refused rather than misread.
        epoch = last["epoch"]
        assert epoch != seen["epoch"] and {e["epoch"] for e in events} == {epoch}
        refusal = {
            "code": "reload_required",
            "run_id": ack["run_id"],
            "reason": "epoch_changed",
            "epoch": epoch,
        }
        path = f"/api/runs/{ack['run_id']}/events?after={seen['seq']}&epoch={seen['epoch']}"
        r = await again.get(path)
        assert r.status_code == 409
        body = r.json()
        assert body.pop("detail") and body == refusal
        sock2 = await again.connect()
        await sock2.send(
            type="resume", run_id=ack["run_id"], after_seq=seen["seq"], epoch=seen["epoch"]
        )
        frame = await sock2.recv()
        assert frame.pop("message") and frame == {"type": "error", **refusal}
        # Read from the start under the new epoch, the run is whole.
        await sock2.send(type="resume", run_id=ack["run_id"], after_seq=0, epoch=epoch)
        assert await sock2.run_to_end(ack["run_id"]) == events
        # Closed before the server stops: an open socket holds a stopping server for its whole
        # shutdown grace (5 s), which this test is not about.
        await sock2.close()
    finally:
        second.stop()
