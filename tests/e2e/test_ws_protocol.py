"""The edges of runwire's own WebSocket protocol (``runwire serve``'s /ws), over real sockets:
fragmented messages, bad UTF-8, oversized fragmented messages, other paths, bad upgrades, and a
client that sends faster than its frames are handled."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
from collections.abc import Awaitable, Callable

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.conftest import ServerProcess
from tests.e2e.wire import Session, answer_and_close, handshake_head, raw_socket, tcp_to
from tests.timing import unit


def masked(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A client frame (clients must mask), built by hand to send what libraries refuse to."""
    mask = os.urandom(4)
    head = bytes([(0x80 if fin else 0) | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", size)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def close_code_of(sock: socket.socket) -> int:
    """Read server frames until its close frame; return the close code."""
    buf = b""
    while True:
        chunk = sock.recv(65536)
        assert chunk, "connection ended without a close frame"
        buf += chunk
        while len(buf) >= 2:
            opcode, size = buf[0] & 0x0F, buf[1] & 0x7F
            at = 2
            if size == 126:
                size, at = struct.unpack("!H", buf[2:4])[0], 4
            elif size == 127:
                size, at = struct.unpack("!Q", buf[2:10])[0], 10
            if len(buf) < at + size:
                break
            if opcode == 0x8:
                return int(struct.unpack("!H", buf[at : at + 2])[0])
            buf = buf[at + size :]


async def test_a_fragmented_message_is_one_message(
    server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(server.url)
    sock = await session.connect()
    await sock.ws.send(iter(['{"type":"ping",', '"request_id":"frag"}']))
    assert await sock.recv() == {"type": "pong", "request_id": "frag"}


async def test_invalid_utf8_closes_with_1007_and_a_big_fragmented_message_with_1009(
    server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(server.url)
    sock, head = raw_socket(server.url, session.access)
    assert head.startswith(b"HTTP/1.1 101")
    sock.sendall(masked(0x1, b'{"type":"ping","x":"\xff\xfe"}'))
    assert close_code_of(sock) == 1007
    sock.close()

    sock, head = raw_socket(server.url, session.access)
    assert head.startswith(b"HTTP/1.1 101")
    part = b"x" * 40_000  # each fragment is under 64 KiB; the message is not
    sock.sendall(masked(0x1, part, fin=False) + masked(0x0, part, fin=False))
    assert close_code_of(sock) == 1009
    sock.close()


async def test_other_paths_and_bad_upgrades_are_refused(
    server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(server.url)
    with pytest.raises(InvalidStatus) as other:
        await connect(server.url.replace("http", "ws") + "/elsewhere", open_timeout=unit(10))
    assert other.value.response.status_code == 404
    assert json.loads(bytes(other.value.response.body))["code"] == "not_found"

    sock, host = tcp_to(server.url)
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {session.access}\r\n\r\n"
        ).encode()  # no Sec-WebSocket-Key
    )
    assert sock.recv(4096).startswith(b"HTTP/1.1 400")
    sock.close()


async def test_a_flood_of_frames_is_handled_in_order_and_the_socket_stays_usable(
    server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    """More frames than the server handles at once: it stops reading for a while (so the
    client is slowed down, not the server) and answers every one, in order."""
    session = await sessions(server.url)
    sock = await session.connect()
    sent = 100  # past the read pause threshold (64 waiting) and past the rate limit's burst
    await asyncio.gather(
        *(sock.ws.send(json.dumps({"type": "ping", "request_id": f"f{i}"})) for i in range(sent))
    )
    replies = [await sock.recv() for _ in range(sent)]
    assert [r["request_id"] for r in replies] == [f"f{i}" for i in range(sent)]
    kinds = {r["type"] if r["type"] == "pong" else r["code"] for r in replies}
    assert kinds == {"pong", "rate_limited"}
    await sock.close()
    with pytest.raises(ConnectionClosed):
        await sock.recv()


@pytest.mark.parametrize(
    ("headers", "status", "says"),
    [
        (("Host: 127.0.0.1", "Host: evil.example"), 400, b"Host"),
        (
            ("Host: 127.0.0.1", "Authorization: Bearer a", "Authorization: Bearer b"),
            400,
            b"Authorization",
        ),
        (
            ("Host: 127.0.0.1", "Origin: http://127.0.0.1", "Origin: http://127.0.0.1"),
            400,
            b"Origin",
        ),
        (("Host: 127.0.0.1", "Sec-WebSocket-Key: abc"), 400, b"Sec-WebSocket-Key"),
        (("Host: 127.0.0.1", "Sec-WebSocket-Version: 13"), 400, b"Sec-WebSocket-Version"),
        (("Host: 127.0.0.1", "X-Long: " + "a" * 10_000), 431, b""),
        (("Host: 127.0.0.1", *(f"X-{i}: a" for i in range(200))), 431, b""),
    ],
    ids=[
        "two-hosts",
        "two-authorizations",
        "two-origins",
        "two-keys",
        "two-versions",
        "long-header",
        "many-headers",
    ],
)
def test_a_malformed_handshake_is_answered_and_closed(
    server: ServerProcess, headers: tuple[str, ...], status: int, says: bytes
) -> None:
    # A deployment's log is not readable from here (--base-url): only a local server's is checked.
    log_before = len(server.log()) if isinstance(server, ServerProcess) else None
    received, took = answer_and_close(server.port, handshake_head(*headers))
    assert received.startswith(f"HTTP/1.1 {status} ".encode()), received
    assert says in received.partition(b"\r\n\r\n")[2], received
    assert took < unit(2)
    if isinstance(server, ServerProcess) and log_before is not None:
        assert "Traceback" not in server.log()[log_before:]
