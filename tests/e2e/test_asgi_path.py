"""The ASGI path (``RUNWIRE_WS_PATH=asgi``) speaks the same protocol as the direct one: the
same Session behind another adapter, checked over real sockets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.conftest import BASE_ENV, ServerProcess
from tests.e2e.wire import Session, answer_and_close, handshake_head
from tests.timing import unit


@pytest.fixture(scope="module")
def asgi_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("asgi"), {**BASE_ENV, "RUNWIRE_WS_PATH": "asgi"})
    yield proc
    proc.stop()


async def test_a_run_and_its_resume_over_the_asgi_path(
    asgi_server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(asgi_server.url)
    await session.post("/api/usage/sample")
    sock = await session.connect()
    ack = await sock.ask("Where can we cut our LLM costs?", request_id="q1")
    assert ack["request_id"] == "q1"
    events = await sock.run_to_end(ack["run_id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "agent_completed" and "$" in events[-1]["final_response"]
    again = await session.connect()  # a new connection: this one delivered the run already
    await again.send(type="resume", run_id=ack["run_id"], after_seq=len(events) - 3)
    tail = await again.run_to_end(ack["run_id"])
    assert [e["seq"] for e in tail] == [len(events) - 2, len(events) - 1, len(events)]
    await sock.ws.send("{nope")
    error = await sock.recv()
    assert error["type"] == "error" and error["code"] == "bad_json"
    await sock.send(type="ping")
    assert (await sock.recv())["type"] == "pong"


async def test_handshake_denials_and_the_frame_limit_over_the_asgi_path(
    asgi_server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(asgi_server.url)
    with pytest.raises(InvalidStatus) as denied:
        await connect(session.ws_url("not-a-ticket"), open_timeout=unit(10))
    assert denied.value.response.status_code == 401
    assert b'"unauthorized"' in denied.value.response.body
    with pytest.raises(InvalidStatus) as foreign:
        await connect(
            session.ws_url(await session.ticket()),
            origin="https://evil.example",  # type: ignore[arg-type]
            open_timeout=unit(10),
        )
    assert foreign.value.response.status_code == 403
    sock = await session.connect()
    await sock.ws.send('{"type":"ping","pad":"' + "x" * (70 * 1024) + '"}')
    with pytest.raises(ConnectionClosed) as closed:
        await sock.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_a_repeated_header_is_refused_over_the_asgi_path(asgi_server: ServerProcess) -> None:
    head = handshake_head("Host: 127.0.0.1", "Authorization: Bearer a", "Authorization: Bearer b")
    received, _ = answer_and_close(asgi_server.port, head)
    assert received.startswith(b"HTTP/1.1 400 "), received
    assert b'"bad_handshake"' in received
