"""An OpenAI-compatible server on loopback that replays recorded responses, for the model tests.

Each recording in ``tests/recordings/openai/`` is one HTTP response as the server sent it: the
status line, the headers, a blank line and the body (for a stream, the ``data:`` events of
``chat.completion.chunk`` objects ending with ``data: [DONE]``). :meth:`ReplayServer.play` queues
the recordings the next requests get, one each, in order; the server sends a stream event by
event (one HTTP chunk each, flushed), so the client sees the pieces arrive apart as from a real
model. Pseudo-recordings stand for what cannot be recorded: ``HANG`` answers nothing until the
client gives up, ``DROP`` closes the connection without an answer, and ``stall(name)`` and
``cut(name)`` send a stream's first two events, then fall silent or close the connection.

The server runs in a thread of its own, so one instance serves every test of a module whatever
event loop each test has; it keeps every request it was sent (path, headers, JSON body).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RECORDINGS = Path(__file__).parent / "recordings" / "openai"
HANG = "!hang"
DROP = "!drop"


def stall(name: str) -> str:
    """``name``'s first two events, then silence until :meth:`ReplayServer.release`."""
    return f"!stall:{name}"


def cut(name: str) -> str:
    """``name``'s first two events, then the connection closed in the middle of the stream."""
    return f"!cut:{name}"


@dataclass(frozen=True)
class Received:
    """One request the server was sent."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def recording(name: str) -> tuple[int, str, list[tuple[str, str]], bytes]:
    """A recording's status, reason, headers and body, as stored."""
    text = (RECORDINGS / name).read_text()
    head, _, body = text.partition("\n\n")
    status_line, *header_lines = head.split("\n")
    _, status, reason = status_line.split(" ", 2)
    headers = [(k.strip(), v.strip()) for k, v in (h.split(":", 1) for h in header_lines)]
    return int(status), reason, headers, body.encode()


class ReplayServer:
    """``with ReplayServer.running() as server``: ``server.base_url`` is its ``/v1`` root."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._queue: deque[str] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                # What runwire's readiness check asks (GET {base}/models): always the list.
                self.answer(*recording("models.http"))

            def answer(
                self, status: int, reason: str, headers: list[tuple[str, str]], payload: bytes
            ) -> None:
                self.send_response(status, reason)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with owner._lock:
                    owner.requests.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    name = owner._queue.popleft() if owner._queue else "missing"
                if name == HANG:
                    owner._release.wait(30)
                    self.close_connection = True
                    return
                if name == DROP or name == "missing":
                    self.close_connection = True
                    return
                mode, _, name = name.rpartition(":")
                status, reason, headers, payload = recording(name)
                if not dict(headers)["content-type"].startswith("text/event-stream"):
                    self.answer(status, reason, headers, payload)
                    return
                self.send_response(status, reason)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                events = [e + b"\n\n" for e in payload.split(b"\n\n") if e.strip()]
                if mode:
                    events = events[:2]
                try:
                    for piece in events:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        self.wfile.flush()
                    if mode == "!stall":
                        owner._release.wait(30)
                    if mode:
                        self.close_connection = True
                        return
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    # The client stopped reading (a stopped run, or one that had all it
                    # needed): a real model server just ends the stream too.
                    self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[ReplayServer]:
        """The server, answering until the block ends."""
        server = cls()
        thread = threading.Thread(target=server._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server
        finally:
            server._release.set()
            server._server.shutdown()
            server._server.server_close()
            thread.join()

    def play(self, *names: str) -> None:
        """The recordings the next requests get, in order; forget what was sent before."""
        with self._lock:
            self._queue = deque(names)
            self.requests = []
            self._release.clear()

    def release(self) -> None:
        """End the wait of every ``HANG``."""
        self._release.set()
