"""Runs across nodes, with real processes on PostgreSQL and Redis: a message accepted on one node
runs on another, ``stop_agent`` reaches it there, ``kill -9`` of the node running a run ends it
with ``agent_error`` ``node_lost`` on the user's socket, and a message accepted while no node
could run it runs once one can (an accepted message is never lost).

Node A has no room for runs (``RUNWIRE_NODE_RUN_CAPACITY=0``: it accepts messages and serves
sockets), so every run goes through the run queue to node B. Leases are short here (2 s) so the
test is quick; docs/scaling.md works out the bound for the default lease.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.databases import fresh_postgres_database
from tests.e2e.conftest import BASE_ENV, OWN_SERVER, ServerProcess
from tests.e2e.test_golden_path import check_run_shape
from tests.e2e.wire import Session, Socket
from tests.keys import key_directory
from tests.services import redis_url
from tests.timing import unit

pytestmark = pytest.mark.local_only(OWN_SERVER)

LEASE_S = 2


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with fresh_postgres_database(migrate=True) as url:
        yield {
            **BASE_ENV,
            "RUNWIRE_REDIS_URL": redis_url(),
            "RUNWIRE_DATABASE_URL": url,
            # One key set for every node, as nodes of one deployment share theirs.
            "RUNWIRE_AUTH_KEYS_DIR": str(key_directory(tmp_path / "keys")),
            "RUNWIRE_AUTO_MIGRATE": "false",
            "RUNWIRE_RUN_LEASE_S": str(LEASE_S),
            # Slow enough that a run is still going when it is stopped or its node killed.
            "RUNWIRE_OFFLINE_DELAY_MS": "10",
        }


def node(
    tmp_path: Path, name: str, env: dict[str, str], *, measured: bool = True, **extra: str
) -> ServerProcess:
    (tmp_path / name).mkdir(exist_ok=True)
    return ServerProcess(tmp_path / name, {**env, **extra}, measured=measured)


async def first_events(sock: Socket, run_id: str, count: int) -> list[dict[str, Any]]:
    """The run's first ``count`` events as they arrive (other frames skipped)."""
    events: list[dict[str, Any]] = []
    while len(events) < count:
        frame = await sock.recv(unit(10))
        if frame.get("run_id") == run_id and "seq" in frame:
            events.append(frame)
    return events


async def test_runs_go_to_a_node_with_room_and_end_when_it_dies(
    tmp_path: Path, env: dict[str, str], sessions: Callable[[str], Awaitable[Session]]
) -> None:
    gateway = node(tmp_path, "a", env, RUNWIRE_NODE_RUN_CAPACITY="0")
    worker = node(tmp_path, "b", env)
    try:
        user = await sessions(gateway.url)
        await user.post("/api/usage/sample")
        sock = await user.connect()

        # Accepted on A, run on B (A has no room): the events reach the socket on A.
        ack = await sock.ask("Where can we cut our LLM costs?")
        events = await sock.run_to_end(ack["run_id"])
        check_run_shape(events)
        assert events[-1]["type"] == "agent_completed"

        # stop_agent on A stops the run on B.
        ack = await sock.ask("and the latency?", thread_id=ack["thread_id"])
        await first_events(sock, ack["run_id"], 3)
        await sock.send(type="stop_agent", run_id=ack["run_id"])
        rest = await sock.run_to_end(ack["run_id"])
        assert rest[-1]["type"] == "agent_stopped" and rest[-1]["code"] == "stopped"

        # kill -9 of B mid-run: A ends the run with node_lost, and the user sees it.
        ack = await sock.ask("once more", thread_id=ack["thread_id"])
        seen = await first_events(sock, ack["run_id"], 3)
        worker.proc.kill()
        killed_at = time.monotonic()
        worker.proc.wait()
        frames: list[dict[str, Any]] = []
        while not (
            frames
            and frames[-1].get("parent_agent", "") is None
            and frames[-1]["type"] in ("agent_error", "agent_completed", "agent_stopped")
        ):
            frames.append(await sock.recv(unit(35)))
        waited = time.monotonic() - killed_at
        print(f"kill -9 to node_lost on the user's socket: {waited:.1f} s")
        last = frames[-1]
        assert last["type"] == "agent_error" and last["code"] == "node_lost"
        assert waited < 30, f"the user waited {waited:.1f} s for the end of a lost run"
        # The ending came under a new epoch: the client is first told that what it holds of the
        # run is void (reload it), then given the new numbering's events.
        assert last["epoch"] != seen[0]["epoch"]
        [notice] = [f for f in frames if f["type"] == "error"]
        assert notice["code"] == "reload_required" and notice["reason"] == "epoch_changed"
        assert (notice["run_id"], notice["epoch"]) == (ack["run_id"], last["epoch"])
        run = (await user.get(f"/api/runs/{ack['run_id']}")).json()["run"]
        assert run["status"] == "failed" and run["error_code"] == "node_lost"
        stored = (await user.get(f"/api/runs/{ack['run_id']}/events?after=0")).json()["events"]
        assert stored[-1]["code"] == "node_lost" and stored[-1]["epoch"] == last["epoch"]

        # With no node able to run it, a message is accepted and kept ...
        waiting = await sock.ask("are you there?", thread_id=ack["thread_id"])
        # ... and runs, once, when a node with room comes.
        revived = node(tmp_path, "c", env)
        try:
            events = await sock.run_to_end(waiting["run_id"])
            check_run_shape(events)
            assert events[-1]["type"] == "agent_completed"
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        finally:
            await user.aclose()
            revived.stop()
    finally:
        worker.stop()  # after a kill -9 too: it closes the log
        gateway.stop()


# The suite's share of issue 12's R1 (bench/load.py, `make bench-load`: 1,000 runs by 200 users,
# the same checks): enough users that runs of many interleave on both nodes and cuts land mid-run.
USERS = 100
CUT_EVERY = 10  # one user in ten has its socket cut mid-stream


async def test_a_hundred_users_over_two_nodes_with_cuts_see_every_event_once(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """Each user's socket is on node A or B; their runs execute wherever there is room. One user
    in ten is cut mid-stream and resumes on the *other* node from the last event it saw. Every
    user must end up with each event of its own run exactly once, in order, and nothing else."""
    fast = {**env, "RUNWIRE_OFFLINE_DELAY_MS": "2", "RUNWIRE_MAX_CONNECTIONS_PER_USER": "4"}
    # Load through code the other tests cover: the nodes run without coverage's tracer.
    nodes = [node(tmp_path, "a", fast, measured=False), node(tmp_path, "b", fast, measured=False)]
    users: list[Session] = []
    try:
        sem = asyncio.Semaphore(20)

        async def sign_up(i: int) -> tuple[Session, Socket]:
            # Connected at once: a keep-alive HTTP connection left idle meanwhile could be
            # closed by the server just as the client reuses it.
            async with sem:
                user = await Session.new(nodes[i % 2].url)
                return user, await user.connect()

        signed_up = await asyncio.gather(*(sign_up(i) for i in range(USERS)))
        users = [user for user, _ in signed_up]
        assert len({u.user_id for u in users}) == USERS

        async def converse(i: int, user: Session, sock: Socket) -> tuple[str, list[dict[str, Any]]]:
            ack = await sock.ask(f"question {i}: how do we cut costs?")
            run_id = ack["run_id"]
            got: list[dict[str, Any]] = []
            if i % CUT_EVERY == 0:
                got = await first_events(sock, run_id, 5)
                sock.ws.transport.abort()  # cut: no close handshake, as a network drop
                other = Session(nodes[(i + 1) % 2].url, user.email, user.password)
                other.access, other.user_id = user.access, user.user_id
                users.append(other)
                sock = await other.connect()
                last = got[-1]
                await sock.send(
                    type="resume", run_id=run_id, after_seq=last["seq"], epoch=last["epoch"]
                )
            # Done when it holds the terminal event and every seq before it: after a resume the
            # terminal event may come live before the replay of the ones it missed.
            end: int | None = None
            while end is None or not set(range(1, end + 1)) <= {e["seq"] for e in got}:
                try:
                    frame = await sock.recv(unit(30) if end is None else unit(5))
                except TimeoutError:
                    return run_id, got  # what is missing then counts as a gap
                assert frame.get("type") != "error", frame
                if "seq" not in frame:
                    continue
                got.append(frame)
                if frame["parent_agent"] is None and frame["type"] in (
                    "agent_completed",
                    "agent_error",
                    "agent_stopped",
                ):
                    end = int(frame["seq"])
            return run_id, got

        results = await asyncio.gather(
            *(converse(i, user, sock) for i, (user, sock) in enumerate(signed_up))
        )
        gaps = duplicates = foreign = 0
        for run_id, got in results:
            foreign += sum(1 for e in got if e["run_id"] != run_id)
            seqs = [e["seq"] for e in got if e["run_id"] == run_id]
            duplicates += len(seqs) - len(set(seqs))
            missing = set(range(1, max(seqs) + 1)) - set(seqs)
            gaps += len(missing)
            assert max(got, key=lambda e: e["seq"])["type"] == "agent_completed"
        assert (gaps, duplicates, foreign) == (0, 0, 0)
        # What each cut user saw is what was stored, event for event.
        for i in range(0, USERS, CUT_EVERY):
            run_id, got = results[i]
            stored = (await users[i].get(f"/api/runs/{run_id}/events?after=0")).json()["events"]
            assert stored == sorted(got, key=lambda e: e["seq"])
    finally:
        for user in users:
            await user.aclose()
        for proc in nodes:
            proc.stop()
