"""Runs that take time (offline delay > 0): stop mid-run, resume after a dropped connection."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from tests.e2e.conftest import BASE_ENV, ServerProcess
from tests.e2e.wire import Session, Socket
from tests.timing import unit

# A chunk of the answer every 15 ms (time units): a run streams for about 4 s, long enough to
# stop, drop, resume and replay while it goes on, short enough that reading it to the end is cheap.
CHUNK_DELAY_MS = round(unit(0.015) * 1000)


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path_factory.mktemp("slow"),
        {**BASE_ENV, "RUNWIRE_OFFLINE_DELAY_MS": str(CHUNK_DELAY_MS)},
    )
    yield proc
    proc.stop()


async def a_run_twelve_events_in(
    server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> tuple[Session, Socket, dict[str, Any], list[dict[str, Any]]]:
    """A user with data asks; returns once its socket has received the run's first 12 events."""
    session = await sessions(server.url)
    await session.post("/api/usage/sample")
    sock = await session.connect()
    ack = await sock.ask("Where can we cut our LLM costs?")
    seen: list[dict[str, Any]] = []
    while len(seen) < 12:
        frame = await sock.recv()
        if frame.get("run_id") == ack["run_id"] and "seq" in frame:
            seen.append(frame)
    return session, sock, ack, seen


async def test_stop_agent_mid_run_ends_it_within_a_second(
    slow_server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(slow_server.url)
    await session.post("/api/usage/sample")
    sock = await session.connect()
    ack = await sock.ask("Where can we cut our LLM costs?")
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
    session, sock, ack, seen = await a_run_twelve_events_in(slow_server, sessions)
    sock.ws.transport.abort()  # the network drops: no close handshake
    again = await session.connect()
    await again.send(type="resume", run_id=ack["run_id"], after_seq=seen[-1]["seq"])
    rest = await again.run_to_end(ack["run_id"])
    # Live events may reach the new socket before its resume is read, ahead of the replay
    # (docs/protocol.md, client rule 1: apply by seq): each seq once, none missing.
    whole = sorted(seen + rest, key=lambda e: e["seq"])
    assert [e["seq"] for e in whole] == list(range(1, len(seen) + len(rest) + 1))
    assert whole[-1]["type"] == "agent_completed"
    stored = (await session.get(f"/api/runs/{ack['run_id']}/events")).json()["events"]
    assert stored == whole
    await again.close()


async def test_concurrency_policies_on_a_busy_thread(
    slow_server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(slow_server.url)
    sock = await session.connect()
    first = await sock.ask("hello")
    thread = first["thread_id"]
    # reject: refused with thread_busy, nothing stored
    await sock.send(type="user_message", content="again", thread_id=thread, policy="reject")
    while (frame := await sock.recv())["type"] != "error":
        pass
    assert frame["code"] == "thread_busy"
    # enqueue (the default): accepted now, runs after the first one ends
    queued = await sock.ask("and again", thread_id=thread)
    # interrupt: stops both earlier runs, then runs
    last = await sock.ask("stop all that", thread_id=thread, policy="interrupt")
    ends: dict[str, str] = {}
    starts: list[str] = []
    while len(ends) < 3:
        frame = await sock.recv()
        if frame.get("parent_agent", "x") is None:
            if frame["type"] == "agent_started":
                starts.append(frame["run_id"])
            elif frame["type"] in ("agent_completed", "agent_error", "agent_stopped"):
                ends[frame["run_id"]] = frame["type"]
    assert ends == {
        first["run_id"]: "agent_stopped",
        queued["run_id"]: "agent_stopped",
        last["run_id"]: "agent_completed",
    }
    assert starts[-1] == last["run_id"]  # the interrupting run started after the others ended
    messages = (await session.get(f"/api/threads/{thread}/messages")).json()["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == [
        "hello",
        "and again",
        "stop all that",
    ]


async def test_a_user_has_at_most_three_runs_in_progress(
    slow_server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(slow_server.url)
    await session.post("/api/usage/sample")
    sock = await session.connect()
    runs = [await sock.ask("Where can we cut our LLM costs?") for _ in range(3)]
    await sock.send(type="user_message", content="one more", client_message_id="extra")
    while (frame := await sock.recv())["type"] != "error":
        pass
    assert frame["code"] == "too_many_runs"
    for run in runs:
        await sock.send(type="stop_agent", run_id=run["run_id"])
    stopped = set()
    while len(stopped) < 3:
        frame = await sock.recv()
        if frame["type"] == "agent_stopped" and frame["parent_agent"] is None:
            stopped.add(frame["run_id"])
    accepted = await sock.ask("one more", client_message_id="extra")
    assert "duplicate" not in accepted  # the refused message was not stored


async def test_an_sse_resume_racing_a_live_run_sends_each_seq_once_then_ends(
    slow_server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session, sock, ack, seen = await a_run_twelve_events_in(slow_server, sessions)
    epoch = seen[-1]["epoch"]
    run = (await session.get(f"/api/runs/{ack['run_id']}")).json()["run"]
    assert run["status"] == "running"  # about 4 s of answer still to stream
    # The run goes on streaming while the replay is read: held events, then live ones.
    response, streamed = await session.sse(
        f"/api/runs/{ack['run_id']}/events", after=12, epoch=epoch
    )
    assert response.status_code == 200
    seqs = [event["seq"] for _, event in streamed]
    assert seqs == list(range(13, 13 + len(seqs)))
    assert [event_id for event_id, _ in streamed] == [f"{epoch}:{seq}" for seq in seqs]
    last = streamed[-1][1]
    assert last["type"] == "agent_completed" and last["parent_agent"] is None  # then it ended
    # Exactly what the socket received live over the same time.
    assert [event for _, event in streamed] == await sock.run_to_end(ack["run_id"])
    await sock.close()


async def test_sse_last_event_id_names_the_position_and_stale_positions_are_refused(
    slow_server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(slow_server.url)
    sock = await session.connect()
    ack = await sock.ask("hello")
    events = await sock.run_to_end(ack["run_id"])
    n, epoch, path = len(events), events[0]["epoch"], f"/api/runs/{ack['run_id']}/events"
    assert {event["epoch"] for event in events} == {epoch}

    # A reconnecting EventSource names its position in Last-Event-ID; it wins over ?after.
    response, streamed = await session.sse(path, headers={"Last-Event-ID": f"{epoch}:{n - 3}"})
    assert response.status_code == 200
    assert [event for _, event in streamed] == events[n - 3 :]
    # At the run's end there is nothing more: 204, which stops EventSource reconnecting.
    response, streamed = await session.sse(path, headers={"Last-Event-ID": f"{epoch}:{n}"})
    assert response.status_code == 204 and streamed == []

    refusal = {"code": "reload_required", "run_id": ack["run_id"], "epoch": epoch}
    # A position under another epoch is refused before anything is streamed.
    response, _ = await session.sse(path, headers={"Last-Event-ID": f"stale:{n - 3}"})
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body.pop("detail") and body == {**refusal, "reason": "epoch_changed"}
    response, _ = await session.sse(path, after=n + 1)
    assert response.status_code == 409
    assert response.json()["reason"] == "position_unknown"
    response, _ = await session.sse(path, headers={"Last-Event-ID": "41"})
    assert response.status_code == 422 and response.json()["code"] == "invalid_input"

    # The JSON answer and the socket refuse the same stale position the same way.
    response = await session.get(f"{path}?after=2&epoch=stale")
    assert response.status_code == 409
    body = response.json()
    assert body.pop("detail") and body == {**refusal, "reason": "epoch_changed"}
    fresh = await session.get(f"{path}?after=2&epoch={epoch}")
    assert fresh.json() == {"run_id": ack["run_id"], "events": events[2:]}
    await sock.send(type="resume", run_id=ack["run_id"], after_seq=2, epoch="stale", request_id="r")
    frame = await sock.recv()
    assert frame.pop("message") and frame == {
        "type": "error",
        **refusal,
        "reason": "epoch_changed",
        "request_id": "r",
    }
    await sock.close()
