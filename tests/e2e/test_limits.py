"""Limits a client can run into: frame size, the idle timeout, frame and import rates, body
sizes, over real sockets."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.conftest import BASE_ENV, ServerProcess
from tests.e2e.wire import Session
from tests.timing import unit

IDLE_S = 2.0
RATE = 5
BURST = 5
IMPORTS = 2  # per user, then one more a minute
BODY_CAP = 16 * 1024  # every body but an import's (docs/protocol.md, Limits)


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        **BASE_ENV,
        "RUNWIRE_WS_IDLE_TIMEOUT_S": str(IDLE_S),
        "RUNWIRE_WS_PING_INTERVAL_S": "0.5",
        "RUNWIRE_WS_PING_TIMEOUT_S": "0.5",
        "RUNWIRE_WS_MESSAGES_PER_SECOND": str(RATE),
        "RUNWIRE_WS_MESSAGE_BURST": str(BURST),
        "RUNWIRE_MAX_CONNECTIONS_PER_USER": "2",
        "RUNWIRE_OFFLINE_DELAY_MS": "40",  # an answer streams for seconds: past its limit
        "RUNWIRE_RUN_TIMEOUT_S": "1.5",
        "RUNWIRE_TOOL_TIMEOUT_S": "1",
        "RUNWIRE_LLM_TIMEOUT_S": "1",
        "RUNWIRE_USAGE_IMPORT_USER_REQUESTS": str(IMPORTS),
        "RUNWIRE_USAGE_IMPORT_USER_WINDOW_S": str(IMPORTS * 60),
    }
    proc = ServerProcess(tmp_path_factory.mktemp("strict"), env)
    yield proc
    proc.stop()


async def test_a_frame_over_the_limit_closes_with_1009(
    strict_server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(strict_server.url)
    sock = await session.connect()
    await sock.ws.send('{"type":"ping","pad":"' + "x" * (70 * 1024) + '"}')
    with pytest.raises(ConnectionClosed) as closed:
        await sock.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_a_silent_socket_is_closed_with_4000_and_a_pinging_one_is_not(
    strict_server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(strict_server.url)
    silent = await session.connect()
    talker = await session.connect()
    for _ in range(3):
        await asyncio.sleep(IDLE_S / 2)
        await talker.send(type="ping")
        assert (await talker.recv())["type"] == "pong"
    with pytest.raises(ConnectionClosed) as closed:
        await silent.recv(timeout=unit(5))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
    assert closed.value.rcvd.reason == "idle timeout"


async def test_frames_past_the_rate_get_rate_limited_and_the_socket_stays_usable(
    strict_server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(strict_server.url)
    sock = await session.connect()
    for i in range(BURST * 3):
        await sock.send(type="ping", request_id=f"p{i}")
    replies = [await sock.recv() for _ in range(BURST * 3)]
    pongs = [r for r in replies if r["type"] == "pong"]
    limited = [r for r in replies if r["type"] == "error"]
    # The burst passes; what comes faster than the rate is refused, each one told so.
    assert BURST <= len(pongs) < BURST * 3
    assert limited and all(r["code"] == "rate_limited" for r in limited)
    assert all(r["request_id"].startswith("p") and r["retry_after_ms"] > 0 for r in limited)
    # The message and the field say the same wait (at 5 a second, a fraction of one).
    for reply in limited:
        wait = reply["retry_after_ms"]
        assert reply["message"] == f"too many messages on this connection; try again in {wait} ms"
    assert min(r["retry_after_ms"] for r in limited) < 1000
    await asyncio.sleep(max(r["retry_after_ms"] for r in limited) / 1000)
    await sock.send(type="ping", request_id="after")
    assert (await sock.recv()) == {"type": "pong", "request_id": "after"}


async def test_connections_past_the_per_user_cap_are_refused_with_429(
    strict_server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(strict_server.url)
    first = await session.connect()
    await session.connect()
    with pytest.raises(InvalidStatus) as refused:
        await session.connect()
    assert refused.value.response.status_code == 429
    assert b'"too_many_connections"' in refused.value.response.body
    # Another user is not affected, and closing one socket frees its place.
    other = await sessions(strict_server.url)
    await other.connect()
    await first.close()
    deadline = asyncio.get_running_loop().time() + unit(5)
    while True:
        try:
            await session.connect()
            break
        except InvalidStatus:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)


async def test_an_answer_past_its_time_limit_ends_the_run_with_agent_error_timeout(
    strict_server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(strict_server.url)
    await session.post("/api/usage/sample")
    sock = await session.connect()
    ack = await sock.ask("Where can we cut our LLM costs?")
    events = await sock.run_to_end(ack["run_id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    last = events[-1]
    assert last["type"] == "agent_error" and last["code"] == "timeout"
    # Whichever limit the slow answer meets first ends it: the LLM call's (1 s, counted from
    # when the answer starts) or the run's (1.5 s, from the start), each saying which.
    assert last["message"] in (
        "the language model (offline) did not finish the answer within 1s",
        "the run took longer than its limit of 1.5 s",
    )
    # Whatever was open was closed first, and the partial answer is kept.
    opened = {e["tool_call_id"] for e in events if e["type"] == "tool_executing"}
    closed = {e["tool_call_id"] for e in events if e["type"] == "tool_completed"}
    assert opened == closed
    run = (await session.get(f"/api/runs/{ack['run_id']}")).json()["run"]
    assert run["status"] == "failed" and run["error_code"] == "timeout"


def refusal(received: bytes) -> tuple[int, dict[str, str]]:
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def answer_to_body(port: int, head: bytes, chunks: Iterator[bytes]) -> bytes:
    """Send ``head``, then ``chunks`` one by one until the server answers; return its answer,
    read until it closes the socket (a socket it keeps open fails the read's timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=unit(5)) as sock:
        sock.sendall(head)
        received = b""
        for chunk in chunks:
            sock.sendall(chunk)
            sock.settimeout(0.01)
            try:
                received = sock.recv(65536)
            except TimeoutError:
                continue
            break
        sock.settimeout(unit(5))
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            pytest.fail(f"the socket is still open; the server said {received!r}")
    return received


LOGIN_HEAD = b"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


def test_a_json_body_declared_over_the_cap_is_refused_unread(strict_server: ServerProcess) -> None:
    head = LOGIN_HEAD + b"Content-Length: 30000000\r\n\r\n"
    started = time.monotonic()
    # The head alone: it declares the size, and the answer must come before any body.
    received = answer_to_body(strict_server.port, head, iter([]))
    assert time.monotonic() - started < unit(2)
    status, body = refusal(received)
    assert status == 413 and body == {
        "detail": f"the body is larger than {BODY_CAP} bytes",
        "code": "too_large",
    }


def test_a_client_that_sends_its_body_before_reading_gets_the_413(
    strict_server: ServerProcess,
) -> None:
    # As curl and httpx do: the whole body goes out before the answer is read. The server
    # refuses on the head and never reads the body for the app; closing the socket over those
    # unread bytes would make the kernel reset it, and the reset overtook the 413.
    body = b"a" * (1024 * 1024)
    head = LOGIN_HEAD + f"Content-Length: {len(body)}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", strict_server.port), timeout=unit(5)) as sock:
        sock.sendall(head + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    status, answer = refusal(received)
    assert status == 413 and answer["code"] == "too_large"


def test_a_refused_body_is_drained_only_so_far(strict_server: ServerProcess) -> None:
    # The drain that lets the 413 through is no way to make the server read a refused 30 MB:
    # past a few MiB (and what the kernels' buffers hold) the connection is closed under it.
    head = LOGIN_HEAD + b"Content-Length: 30000000\r\n\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", strict_server.port), timeout=unit(5)) as sock:
        sock.sendall(head)
        with pytest.raises(OSError):  # a broken pipe or a reset
            while sent < 30_000_000:
                sock.sendall(b"a" * 65536)
                sent += 65536
    assert sent < 20_000_000


def test_a_chunked_json_body_is_cut_at_the_cap(strict_server: ServerProcess) -> None:
    head = LOGIN_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(4 * BODY_CAP // 1024):  # up to four times the cap, 1 KiB at a time
            sent.append(1024)
            yield b"400\r\n" + b"a" * 1024 + b"\r\n"
        yield b"0\r\n\r\n"

    status, body = refusal(answer_to_body(strict_server.port, head, chunks()))
    assert status == 413 and body["code"] == "too_large"
    # Read as it came, and refused once past the cap: not read to its end first.
    assert BODY_CAP < sum(sent) < 2 * BODY_CAP


async def test_the_largest_credentials_fit_under_the_cap(strict_server: ServerProcess) -> None:
    # 1024 characters (the longest password) outside the BMP, escaped as JSON does by default:
    # twelve bytes each.
    creds = {"email": "long-password@example.com", "password": "\U0001f600" * 1024}
    body = json.dumps(creds).encode()
    assert 12 * 1024 < len(body) < BODY_CAP
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=strict_server.url, timeout=unit(10)) as client:
        assert (
            await client.post("/auth/register", content=body, headers=headers)
        ).status_code == 201
        assert (await client.post("/auth/login", content=body, headers=headers)).status_code == 200


async def test_imports_have_their_own_cap_and_a_rate_per_user(
    strict_server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(strict_server.url)
    line = {
        "timestamp": "2026-11-01T10:00:00Z",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "latency_ms": 900,
        "feature": "x" * 150,
    }
    lines = [json.dumps({**line, "prompt_hash": f"h{i}"}) for i in range(500)]
    body = "\n".join(lines).encode()
    assert len(body) > 4 * BODY_CAP  # an import is not held to the cap of other bodies
    ndjson = {"Content-Type": "application/x-ndjson"}
    for _ in range(IMPORTS):
        imported = await session.post("/api/usage/import", content=body, headers=ndjson)
        assert imported.status_code == 200, imported.text
        assert imported.json()["imported"] == len(lines)
    refused = await session.post("/api/usage/import", content=body, headers=ndjson)
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    wait = int(refused.headers["Retry-After"])
    assert 0 < wait <= 60 and f"{wait} s" in refused.json()["detail"]
    # Another user's imports are counted on their own.
    other = await sessions(strict_server.url)
    assert (await other.post("/api/usage/import", content=body, headers=ndjson)).status_code == 200
