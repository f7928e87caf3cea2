"""The deadlines for a request's head (``RUNWIRE_HTTP_HEAD_TIMEOUT_S``) and body
(``RUNWIRE_HTTP_BODY_TIMEOUT_S``), over raw sockets: a connection that says nothing, or trickles
its head a byte at a time (slowloris), is closed near the deadline, on plain HTTP and on
``/ws``; so is one whose body stops arriving; clients that send whole heads, and bodies that
keep coming, are not. A client that leaves mid-body is no server error."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest

from tests.e2e.conftest import BASE_ENV, ServerProcess
from tests.e2e.wire import Session, handshake_head
from tests.timing import unit

DEADLINE = unit(0.5)
LATE = DEADLINE + unit(1)  # the server closed within the deadline and a scheduling margin


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        **BASE_ENV,
        "RUNWIRE_HTTP_HEAD_TIMEOUT_S": str(DEADLINE),
        "RUNWIRE_HTTP_BODY_TIMEOUT_S": str(DEADLINE),
        "RUNWIRE_LOG_LEVEL": "debug",  # to see the server notice a client that left
    }
    proc = ServerProcess(tmp_path_factory.mktemp("head-deadline"), env)
    yield proc
    proc.stop()


def connection(server: ServerProcess) -> socket.socket:
    # The read timeout is the test's bound: a socket the server keeps open fails the read.
    return socket.create_connection(("127.0.0.1", server.port), timeout=unit(5))


def read_to_close(sock: socket.socket) -> bytes:
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server kept the socket open; it said {received!r}")
    return received


def read_response(sock: socket.socket) -> bytes:
    """One whole response (head and its Content-Length of body)."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += _more(sock, received)
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(head.lower().partition(b"content-length: ")[2].partition(b"\r\n")[0])
    while len(body) < length:
        body += _more(sock, received + body)
    return head + b"\r\n\r\n" + body


def _more(sock: socket.socket, so_far: bytes) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        pytest.fail(f"the server closed the socket mid-response; it said {so_far!r}")
    return chunk


def trickle(sock: socket.socket, head: bytes, every: float) -> tuple[bytes, int]:
    """Send ``head`` a byte every ``every`` seconds, until the server closes the socket; return
    what it said and how many bytes had gone out."""
    received = b""
    for sent, byte in enumerate(head):
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return received, sent
        sock.settimeout(every)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received, sent
        if not chunk:
            return received, sent
        received += chunk
    sock.settimeout(unit(5))
    return received + read_to_close(sock), len(head)


def test_a_silent_connection_is_closed_at_the_deadline(server: ServerProcess) -> None:
    with connection(server) as sock:
        started = time.monotonic()
        received = read_to_close(sock)
        took = time.monotonic() - started
    assert received == b""  # nothing was asked, so nothing is answered
    assert DEADLINE * 0.9 <= took < LATE, took


@pytest.mark.parametrize(
    "head",
    [
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow\r\n\r\n",
        handshake_head("Host: 127.0.0.1"),
    ],
    ids=["http", "websocket"],
)
def test_a_trickled_head_is_cut_at_the_deadline_with_408(
    server: ServerProcess, head: bytes
) -> None:
    every = DEADLINE / 10  # the whole head would take several deadlines
    assert len(head) * every > 4 * DEADLINE
    with connection(server) as sock:
        started = time.monotonic()
        received, sent = trickle(sock, head, every)
        took = time.monotonic() - started
    assert sent < len(head)
    assert received.startswith(b"HTTP/1.1 408 "), received
    body = json.loads(received.partition(b"\r\n\r\n")[2])
    assert body["code"] == "request_timeout" and f"{DEADLINE:g} s" in body["detail"]
    assert DEADLINE * 0.9 <= took < LATE, took


def test_a_kept_alive_connection_waits_for_its_next_request_but_not_for_its_head(
    server: ServerProcess,
) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with connection(server) as sock:
        sock.sendall(request)
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        # Idle between requests is the keep-alive's business (20 s), not the head's.
        time.sleep(DEADLINE * 2)
        sock.sendall(request)
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        # The next head counts from its first byte.
        started = time.monotonic()
        received, _ = trickle(sock, request, DEADLINE / 10)
        took = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408 "), received
    assert DEADLINE * 0.9 <= took < LATE, took


def test_a_head_pipelined_behind_a_request_counts_from_its_first_byte(
    server: ServerProcess,
) -> None:
    with connection(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /hea")
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        received = read_to_close(sock)
        took = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408 "), received
    assert DEADLINE * 0.9 <= took < LATE, took


def test_a_body_still_coming_after_an_early_answer_is_not_under_the_deadline(
    server: ServerProcess,
) -> None:
    with connection(server) as sock:
        sock.sendall(
            b"POST /api/usage/import HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: text/csv\r\nContent-Length: 6\r\n\r\n"
        )
        # No token: refused before the body is read. The body still has to arrive whole.
        assert read_response(sock).startswith(b"HTTP/1.1 401 ")
        for byte in b"a,b\n1\n":
            time.sleep(DEADLINE / 2)
            sock.sendall(bytes([byte]))
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")


def test_bytes_between_requests_do_not_hold_a_connection_open(server: ServerProcess) -> None:
    """Empty lines between requests are allowed and start no request: they still count."""
    with connection(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        sock.sendall(b"\r\n")
        read_to_close(sock)
        assert time.monotonic() - started < LATE


async def test_whole_heads_and_open_websockets_are_unaffected(
    server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(server.url)
    sock = await session.connect()
    async with httpx.AsyncClient(base_url=server.url, timeout=unit(5)) as client:
        for _ in range(3):
            assert (await client.get("/health")).status_code == 200
    time.sleep(DEADLINE * 2)  # noqa: ASYNC251 - the server is another process
    await sock.send(type="ping", request_id="still-open")
    assert await sock.recv() == {"type": "pong", "request_id": "still-open"}


def _post_head(path: str, length: int, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    "path, content_type",
    [("/auth/login", "application/json"), ("/api/usage/import", "text/csv")],
    ids=["json", "import"],
)
async def test_a_body_that_stops_arriving_is_cut_at_the_deadline_with_408(
    server: ServerProcess,
    sessions: Callable[[str], Awaitable[Session]],
    path: str,
    content_type: str,
) -> None:
    """Found by the fuzz benchmark (bench/fuzz.py): a Content-Length longer than the body
    sent held the connection, and the request's task, for ever."""
    session = await sessions(server.url)
    head = _post_head(
        path,
        100,
        f"Content-Type: {content_type}",
        f"Authorization: {session.auth['Authorization']}",
    )
    with connection(server) as sock:
        sock.sendall(head + b'{"email":')
        started = time.monotonic()
        received = read_to_close(sock)
        took = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408 "), received
    body = json.loads(received.partition(b"\r\n\r\n")[2])
    assert body["code"] == "request_timeout" and f"{DEADLINE:g} s" in body["detail"]
    assert DEADLINE * 0.9 <= took < LATE, took
    assert "Traceback" not in server.log()


def test_a_body_that_keeps_coming_is_not_cut(server: ServerProcess) -> None:
    body = b'{"email": "nobody@example.com", "password": "not the password"}'
    with connection(server) as sock:
        sock.sendall(_post_head("/auth/login", len(body), "Content-Type: application/json"))
        started = time.monotonic()
        for at in range(0, len(body), 8):
            time.sleep(DEADLINE / 4)  # the whole body takes several deadlines
            sock.sendall(body[at : at + 8])
        assert time.monotonic() - started > 2 * DEADLINE
        assert read_response(sock).startswith(b"HTTP/1.1 401 ")


def test_a_body_that_stops_after_an_early_answer_closes_the_connection(
    server: ServerProcess,
) -> None:
    with connection(server) as sock:
        # No token: refused before the body is read, which then never comes.
        sock.sendall(_post_head("/api/usage/import", 6, "Content-Type: text/csv"))
        assert read_response(sock).startswith(b"HTTP/1.1 401 ")
        started = time.monotonic()
        assert read_to_close(sock) == b""  # answered already: nothing more to say
        assert time.monotonic() - started < LATE


async def test_a_client_that_leaves_mid_import_is_no_server_error(
    server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    """Found by the fuzz benchmark: the import's read of a body whose client had gone was
    logged as an unhandled error (a traceback) and counted as ``internal``."""
    session = await sessions(server.url)
    head = _post_head(
        "/api/usage/import",
        1000,
        "Content-Type: text/csv",
        f"Authorization: {session.auth['Authorization']}",
    )
    with connection(server) as sock:
        sock.sendall(head + b"timestamp,provider\n")
        time.sleep(DEADLINE / 4)  # noqa: ASYNC251 - the server is another process
    deadline = time.monotonic() + unit(5)
    while "the client left before its request's body had arrived" not in server.log():
        assert time.monotonic() < deadline, server.log()[-3000:]
        time.sleep(0.02)  # noqa: ASYNC251
    async with httpx.AsyncClient(base_url=server.url, timeout=unit(5)) as client:
        scrape = (await client.get("/metrics")).text
    assert 'runwire_errors_total{code="internal"}' not in scrape
    assert "Traceback" not in server.log() and "unhandled error" not in server.log()
