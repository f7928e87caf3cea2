"""Backpressure: a client that stops reading is cut off with 4008, its runs go on and can be
resumed, and fifty users beside it get every event of their runs without waiting on it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import BASE_ENV, ServerProcess
from tests.e2e.wire import Session
from tests.timing import unit

ACTIVE_USERS = 50


@pytest.fixture(scope="module")
def bp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        **BASE_ENV,
        "RUNWIRE_OUTBOUND_BUFFER_BYTES": str(256 * 1024),
        "RUNWIRE_WS_MESSAGE_BURST": "1000",  # the stalled client asks for a lot at once
    }
    # Fifty users' runs beside the stalled one: no coverage tracer on that load.
    proc = ServerProcess(tmp_path_factory.mktemp("backpressure"), env, measured=False)
    yield proc
    proc.stop()


async def active_user(session: Session) -> list[int]:
    """One message on a fresh socket: the seqs of its run as received."""
    sock = await session.connect()
    accepted = await sock.ask("Where can we cut our LLM costs?")
    return [e["seq"] for e in await sock.run_to_end(accepted["run_id"])]


async def test_a_stalled_client_is_cut_off_and_others_do_not_wait(
    bp_server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    staller = await sessions(bp_server.url)
    # A thread whose history is large: each get_thread_history answer is about 360 KB.
    writer = await staller.connect()
    thread_id = ""
    for i in range(12):
        extra = {"thread_id": thread_id} if thread_id else {}
        accepted = await writer.ask(f"{i} " + "x" * 30_000, **extra)
        thread_id = accepted["thread_id"]
        await writer.run_to_end(accepted["run_id"])
    actives = [await sessions(bp_server.url) for _ in range(ACTIVE_USERS)]

    # The stalled client: it reads nothing (websockets stops reading after max_queue frames).
    stalled = await connect(
        staller.ws_url(await staller.ticket()), max_queue=1, open_timeout=unit(10)
    )
    await stalled.send(json.dumps({"type": "user_message", "content": "and go on meanwhile"}))
    for _ in range(100):
        await stalled.send(json.dumps({"type": "get_thread_history", "thread_id": thread_id}))

    started = time.perf_counter()
    runs = asyncio.ensure_future(asyncio.gather(*(active_user(s) for s in actives)))

    # The server cuts the stalled client (its log says so), then gives it 5 s to read the close
    # frame before it aborts the connection (docs/protocol.md, close codes: a client that does
    # not read even the close frame gets 1006). It reads once cut, whatever the others' runs
    # take: on a busy machine those took longer than 5 s, and the close frame was lost.
    deadline = time.monotonic() + unit(30)
    while "is not reading; closing it" not in bp_server.log():
        assert time.monotonic() < deadline, "the stalled client was never cut off"
        await asyncio.sleep(0.02)
    # What was already sent, then the close with 4008.
    frames: list[dict[str, Any]] = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            frames.append(json.loads(await asyncio.wait_for(stalled.recv(), unit(10))))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
    histories = [f for f in frames if f["type"] == "thread_history"]
    assert len(histories) < 100  # cut off: the rest were dropped, not delivered late

    results = await asyncio.wait_for(runs, unit(60))
    elapsed = time.perf_counter() - started
    for seqs in results:
        assert seqs == list(range(1, len(seqs) + 1))
    # Fifty whole runs beside a stalled socket: nothing waited on it.
    assert elapsed < unit(20)

    # Its run went on; a new socket resumes it from the start and gets it whole.
    accepted = next(f for f in frames if f["type"] == "message_accepted")
    run_id = accepted["run_id"]
    deadline = time.monotonic() + unit(10)
    while (await staller.get(f"/api/runs/{run_id}")).json()["run"]["status"] != "completed":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    again = await staller.connect()
    await again.send(type="resume", run_id=run_id, after_seq=0)
    events = await again.run_to_end(run_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "agent_completed"
