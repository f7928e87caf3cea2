"""A client that stops reading, on both socket adapters, with the kernel's buffers made small so
the server feels it at once: what it is still told before the cut (close 4008), and that a client
that reads is never cut for the size of what it asked for."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from runwire.protocol.inbound import UserMessage
from runwire.transport.services import Services
from runwire.transport.ws_coalescing import CoalescingWebSocketProtocol
from runwire.transport.ws_protocol import RunwireWebSocketProtocol
from tests.conftest import test_settings
from tests.integration.test_event_stream import logged_in, serving
from tests.timing import unit

ADAPTERS = {"direct": RunwireWebSocketProtocol, "asgi": CoalescingWebSocketProtocol}
LIMIT = 8192  # bytes a client may fall behind; a run's events are about 100 KiB
KERNEL_BUFFER = 4096  # each side's socket buffer (the kernel doubles it)


async def finished_runs(
    client: httpx.AsyncClient, services: Services, count: int
) -> tuple[dict[str, str], dict[str, int]]:
    """A user with ``count`` ended runs (on the sample data): the user's auth headers, and each
    run's id and last seq."""
    user_id, auth = await logged_in(client)
    assert (await client.post("/api/usage/sample", headers=auth)).status_code == 201
    runs: dict[str, int] = {}
    for i in range(count):
        accepted = await services.chat.submit(user_id, UserMessage(content=f"{i}: costs?"))
        await services.executor.wait(accepted.run_id)
        record = await services.store.runs.by_id(accepted.run_id)
        assert record is not None and record.status == "completed"
        runs[accepted.run_id] = record.last_seq
    return auth, runs


async def open_socket(
    client: httpx.AsyncClient, auth: dict[str, str], *, reading: bool
) -> ClientConnection:
    """A WebSocket of the user; one that is not ``reading`` takes one frame and no more (a small
    receive window, and websockets reads no further than one frame ahead)."""
    ticket = (await client.post("/api/ws-ticket", headers=auth)).json()["ticket"]
    url = str(client.base_url).replace("http://", "ws://") + f"/ws?ticket={ticket}"
    if reading:
        ws = await connect(url, max_queue=None, open_timeout=unit(10))
    else:
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, KERNEL_BUFFER)
        raw.setblocking(False)
        await asyncio.get_running_loop().sock_connect(
            raw, (client.base_url.host, client.base_url.port)
        )
        ws = await connect(url, sock=raw, max_queue=1, open_timeout=unit(10))
    assert json.loads(await ws.recv())["type"] == "connection_established"
    return ws


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> Any:
    return ADAPTERS[request.param]


async def test_a_client_that_reads_gets_a_resume_larger_than_its_limit_whole(
    tmp_path: Path, adapter: Any
) -> None:
    settings = test_settings(tmp_path, outbound_buffer_bytes=LIMIT)
    async with serving(settings, send_buffer=KERNEL_BUFFER, ws=adapter) as (client, services):
        auth, runs = await finished_runs(client, services, 1)
        ((run_id, last),) = runs.items()
        ws = await open_socket(client, auth, reading=True)
        await ws.send(json.dumps({"type": "resume", "run_id": run_id, "after_seq": 0}))
        seqs = [json.loads(await ws.recv())["seq"] for _ in range(last)]
        assert seqs == list(range(1, last + 1))  # twelve times the limit, in one answer
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv())["type"] == "pong"  # and the socket is still open
        await ws.close()


async def test_a_client_cut_for_not_reading_still_learns_how_its_runs_ended(
    tmp_path: Path,
) -> None:
    # The direct path only (runwire serve's): the ASGI one hands a stalled client its next
    # request only once the answer to the one before has left, so these replays never pile up.
    settings = test_settings(tmp_path, outbound_buffer_bytes=LIMIT)
    ws = RunwireWebSocketProtocol
    async with serving(settings, send_buffer=KERNEL_BUFFER, ws=ws) as (client, services):
        auth, runs = await finished_runs(client, services, 4)
        stalled = await open_socket(client, auth, reading=False)
        for run_id in runs:  # each replay alone is twelve times the limit
            await stalled.send(json.dumps({"type": "resume", "run_id": run_id, "after_seq": 0}))
        # It reads nothing while the server answers them (a few milliseconds' work): the server
        # says nothing it could wait on here, the client's silence is the point.
        await asyncio.sleep(unit(1))

        received: dict[str, list[dict[str, Any]]] = {}
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frame = json.loads(await asyncio.wait_for(stalled.recv(), unit(10)))
                received.setdefault(frame["run_id"], []).append(frame)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
        assert closed.value.rcvd.reason == "client too slow; reconnect and resume"
        # Of each run it was following: its first events in order, and its terminal event
        # last, after a gap when the cut dropped events before it.
        assert received, "the cut dropped everything"
        cut_short = 0
        for run_id, events in received.items():
            seqs = [e["seq"] for e in events]
            assert events[-1]["type"] == "agent_completed" and events[-1]["parent_agent"] is None
            assert seqs[-1] == runs[run_id]
            assert seqs[:-1] == list(range(1, len(seqs)))
            cut_short += len(seqs) < runs[run_id]
        assert cut_short, "no run it was following was cut short"

        # What docs/protocol.md tells a client to do after 4008: reconnect, and resume each run
        # it has not whole after the last contiguous seq it holds.
        again = await open_socket(client, auth, reading=True)
        for run_id, last in runs.items():
            seqs = [e["seq"] for e in received.get(run_id, [])]
            held = next((i for i, seq in enumerate(seqs, 1) if seq != i), len(seqs) + 1) - 1
            if held == last:
                continue
            await again.send(json.dumps({"type": "resume", "run_id": run_id, "after_seq": held}))
            rest = [json.loads(await again.recv())["seq"] for _ in range(last - held)]
            assert rest == list(range(held + 1, last + 1))
        await again.close()


async def test_a_client_that_stops_reading_live_runs_is_cut_and_learns_how_they_ended(
    tmp_path: Path,
) -> None:
    # Live runs stream their answers in batches (a turn's chunks in one write): a client that
    # stops reading is cut by one of them, and what it got of each run is in order; a resume
    # after the last contiguous seq it holds brings each run's rest, each seq once.
    # A limit past what a run says before its answer: the cut comes in the answer's batches.
    settings = test_settings(tmp_path, outbound_buffer_bytes=8 * LIMIT)
    ws = RunwireWebSocketProtocol
    async with serving(settings, send_buffer=KERNEL_BUFFER, ws=ws) as (client, services):
        user_id, auth = await logged_in(client)
        assert (await client.post("/api/usage/sample", headers=auth)).status_code == 201
        stalled = await open_socket(client, auth, reading=False)
        runs = [
            (await services.chat.submit(user_id, UserMessage(content=f"{i}: costs?"))).run_id
            for i in range(3)
        ]
        for run_id in runs:
            await services.executor.wait(run_id)

        received: dict[str, list[int]] = {run_id: [] for run_id in runs}
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frame = json.loads(await asyncio.wait_for(stalled.recv(), unit(10)))
                received[frame["run_id"]].append(frame["seq"])
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008

        again = await open_socket(client, auth, reading=True)
        for run_id, seqs in received.items():
            record = await services.store.runs.by_id(run_id)
            assert record is not None
            # In order; a gap only before a run's terminal event, kept through the cut.
            held = next((i for i, seq in enumerate(seqs, 1) if seq != i), len(seqs) + 1) - 1
            assert seqs[held:] in ([], [record.last_seq])
            await again.send(json.dumps({"type": "resume", "run_id": run_id, "after_seq": held}))
            rest = [json.loads(await again.recv())["seq"] for _ in range(record.last_seq - held)]
            assert rest == list(range(held + 1, record.last_seq + 1))
        await again.send(json.dumps({"type": "ping"}))
        assert json.loads(await again.recv())["type"] == "pong"  # nothing more came before it
        await again.close()


async def test_sockets_written_together_each_get_every_event_in_order_beside_a_stalled_one(
    tmp_path: Path,
) -> None:
    # The direct path writes every socket with frames waiting in one pass of the loop: each
    # socket still gets each event as a frame of its own, in order, and one that stopped reading
    # is cut alone while the others, written in the same passes, miss nothing.
    settings = test_settings(tmp_path, outbound_buffer_bytes=8 * LIMIT)
    ws = RunwireWebSocketProtocol
    async with serving(settings, send_buffer=KERNEL_BUFFER, ws=ws) as (client, services):
        user_id, auth = await logged_in(client)
        assert (await client.post("/api/usage/sample", headers=auth)).status_code == 201
        readers = [await open_socket(client, auth, reading=True) for _ in range(2)]
        stalled = await open_socket(client, auth, reading=False)
        runs = [
            (await services.chat.submit(user_id, UserMessage(content=f"{i}: costs?"))).run_id
            for i in range(3)
        ]
        for run_id in runs:
            await services.executor.wait(run_id)
        last: dict[str, int] = {}
        for run_id in runs:
            record = await services.store.runs.by_id(run_id)
            assert record is not None and record.status == "completed"
            last[run_id] = record.last_seq

        for reader in readers:
            received: dict[str, list[int]] = {run_id: [] for run_id in runs}
            while any(len(seqs) < last[run_id] for run_id, seqs in received.items()):
                frame = json.loads(await asyncio.wait_for(reader.recv(), unit(10)))
                received[frame["run_id"]].append(frame["seq"])
            assert received == {run_id: list(range(1, last[run_id] + 1)) for run_id in runs}
            await reader.send(json.dumps({"type": "ping"}))
            assert json.loads(await reader.recv())["type"] == "pong"  # nothing more, still open
            await reader.close()
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(stalled.recv(), unit(10))
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
