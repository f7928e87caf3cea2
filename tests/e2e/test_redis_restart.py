"""Redis restarts empty under a live run: the client either gets every event of the run on its
socket, or is told so (close 4009 "reconnect and resume", or ``reload_required``) and then gets
every event by resuming; nothing goes missing silently. The run is not lost with its lease (its
node puts the lease back), and runs started after the restart are dispatched as before.

The Redis here is a private ``redis-server`` (tests/services.py), so restarting it troubles
nobody.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import BASE_ENV, OWN_SERVER, ServerProcess
from tests.e2e.test_golden_path import check_run_shape
from tests.e2e.wire import Session
from tests.services import RedisServer
from tests.timing import unit

pytestmark = pytest.mark.local_only(OWN_SERVER)

TERMINAL = ("agent_completed", "agent_error", "agent_stopped")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


def terminal(frame: dict[str, Any]) -> bool:
    return frame.get("parent_agent", "") is None and frame.get("type") in TERMINAL


async def test_a_redis_restart_mid_run_loses_nothing_silently(
    tmp_path: Path,
    private_redis: RedisServer,
    sessions: Callable[[str], Awaitable[Session]],
) -> None:
    env = {
        **BASE_ENV,
        "RUNWIRE_REDIS_URL": private_redis.url,
        # Short, so that a lease the node failed to put back would end the run within the test
        # (node_lost); scaled, because a node that sees Redis away for 4/5 of it gives the run up
        # by design, and on a loaded machine the restart below lasts longer from its side.
        "RUNWIRE_RUN_LEASE_S": str(unit(2)),
        "RUNWIRE_OFFLINE_DELAY_MS": "10",
    }
    server = ServerProcess(tmp_path, env)
    try:
        user = await sessions(server.url)
        await user.post("/api/usage/sample")
        sock = await user.connect()
        ack = await sock.ask("Where can we cut our LLM costs?")
        run_id = ack["run_id"]
        got: dict[int, dict[str, Any]] = {}
        while len(got) < 5:
            frame = await sock.recv()
            if frame.get("run_id") == run_id and "seq" in frame:
                got[frame["seq"]] = frame

        private_redis.kill()  # Redis goes away and comes back with nothing
        await asyncio.sleep(0.3)
        private_redis.start()

        told = None  # how the client learnt that it had to catch up, if it had to
        end: int | None = None
        while end is None or len(got) < end:
            try:
                frame = await sock.recv(unit(20))
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 4009, closed
                told = "4009"
                sock = await user.connect()
                last = max(got)
                await sock.send(
                    type="resume", run_id=run_id, after_seq=last, epoch=got[last]["epoch"]
                )
                continue
            if frame.get("code") == "reload_required":
                told = "reload_required"
                break
            # Any other error (a refused resume, say) leaves the client nothing to wait for.
            assert frame.get("type") != "error", frame
            if frame.get("run_id") != run_id or "seq" not in frame:
                continue
            if told is None:
                # Still on the first socket with nothing said: it must have missed nothing.
                assert frame["seq"] == max(got) + 1, (frame["seq"], sorted(got))
            assert frame["seq"] not in got or told is not None, frame["seq"]
            got[frame["seq"]] = frame
            if terminal(frame):
                end = frame["seq"]
        if told == "reload_required":
            # Reloading means reading the run from its start once it has ended.
            deadline = time.monotonic() + unit(30)
            while (await user.get(f"/api/runs/{run_id}")).json()["run"]["status"] in (
                "queued",
                "running",
            ):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            stored = (await user.get(f"/api/runs/{run_id}/events?after=0")).json()["events"]
            got = {e["seq"]: e for e in stored}
            end = max(got)
        events = [got[seq] for seq in sorted(got)]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert terminal(events[-1])
        # The run outlived the restart: its node put its lease back, nobody declared it lost.
        assert events[-1]["type"] == "agent_completed", events[-1]
        print(f"after the Redis restart the client was told: {told or 'nothing (none missed)'}")

        # Runs after the restart are dispatched and delivered as before.
        again = await user.connect()
        ack = await again.ask("and now?", thread_id=ack["thread_id"])
        check_run_shape(await again.run_to_end(ack["run_id"]))
        assert (await user.http.get("/ready")).json()["checks"]["redis"] == "ok"
        await user.aclose()
    except BaseException:
        server.stop()
        print(f"the server's log:\n{server.log()}")  # what it did about the restart
        raise
    finally:
        server.stop()
