"""A small runwire client written from docs/protocol.md alone (httpx + websockets)."""

from __future__ import annotations

import base64
import functools
import json
import os
import socket
import ssl
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.timing import unit


@functools.cache
def tls() -> ssl.SSLContext:
    """The TLS settings of the tests' HTTP clients (httpx's defaults), made once: httpx makes them
    anew for each client it builds, loading the CA bundle again (about 30 ms of CPU), and the e2e
    layer builds a client per user, hundreds in a run."""
    return httpx.create_ssl_context()


@dataclass
class Session:
    base: str
    email: str
    password: str
    access: str = ""
    refresh: str = ""
    user_id: str = ""
    http: httpx.AsyncClient = field(init=False)
    sockets: list[Socket] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(base_url=self.base, timeout=unit(10), verify=tls())

    @classmethod
    async def new(cls, base: str) -> Session:
        """A new user, signed in: signed up, or at a deployment given a test-token key
        (``--test-token-key``), a fresh e2e test user from ``POST /auth/test-token``."""
        key = os.environ.get("RUNWIRE_E2E_TEST_TOKEN_KEY", "")
        if key and base.rstrip("/") == os.environ.get("RUNWIRE_E2E_BASE_URL", "").rstrip("/"):
            return await cls.test_user(base, key)
        s = cls(base, f"user-{uuid.uuid4().hex[:10]}@example.com", "correct horse battery")
        r = await s.http.post("/auth/register", json={"email": s.email, "password": s.password})
        assert r.status_code == 201, r.text
        await s.login()
        return s

    @classmethod
    async def test_user(cls, base: str, key: str) -> Session:
        """A session of a new e2e test user (it has no password: :meth:`login` cannot work)."""
        s = cls(base, "", "")
        r = await s.http.post("/auth/test-token", headers={"X-Runwire-Test-Key": key})
        assert r.status_code == 200, r.text
        body = r.json()
        s.email = body["user"]["email"]
        s.access, s.refresh, s.user_id = (
            body["access_token"],
            body["refresh_token"],
            body["user"]["id"],
        )
        return s

    async def login(self) -> None:
        r = await self.http.post(
            "/auth/login", json={"email": self.email, "password": self.password}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        self.access, self.refresh, self.user_id = (
            body["access_token"],
            body["refresh_token"],
            body["user"]["id"],
        )

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(path, headers=self.auth)

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        return await self.http.post(path, headers={**self.auth, **kw.pop("headers", {})}, **kw)

    async def sse(
        self, path: str, *, headers: dict[str, str] | None = None, **params: Any
    ) -> tuple[httpx.Response, list[tuple[str, dict[str, Any]]]]:
        """GET ``path`` as server-sent events, read to the end of the stream; returns the response
        and each message's ``(id, data)``. A non-200 answer is read whole and has no messages."""
        sent = {**self.auth, "Accept": "text/event-stream", **(headers or {})}
        messages: list[tuple[str, dict[str, Any]]] = []
        async with self.http.stream("GET", path, headers=sent, params=params) as response:
            if response.status_code != 200:
                await response.aread()
                return response, messages
            event_id, data = "", ""
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    continue  # a comment (keep-alive)
                if line == "":
                    if data:
                        messages.append((event_id, json.loads(data)))
                    event_id, data = "", ""
                    continue
                field_name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field_name == "id":
                    event_id = value
                elif field_name == "data":
                    data = f"{data}\n{value}" if data else value
        return response, messages

    async def ticket(self) -> str:
        r = await self.post("/api/ws-ticket")
        assert r.status_code == 201, r.text
        return str(r.json()["ticket"])

    def ws_url(self, ticket: str | None = None) -> str:
        url = self.base.replace("http://", "ws://") + "/ws"
        return f"{url}?ticket={ticket}" if ticket else url

    async def connect(self) -> Socket:
        # max_queue=None: the client never stops reading from the network. With websockets' default
        # (pause past 16 unread frames) a socket left with unread events mid-run does not see
        # the server's close frame, and closing it waits out close_timeout (10 s) for nothing.
        ws = await connect(self.ws_url(await self.ticket()), open_timeout=unit(10), max_queue=None)
        sock = Socket(ws)
        self.sockets.append(sock)
        hello = await sock.recv()
        assert hello["type"] == "connection_established" and hello["user_id"] == self.user_id
        return sock

    async def aclose(self) -> None:
        """Close every socket this session opened and its HTTP client (safe after failures)."""
        for sock in self.sockets:
            await sock.close()
        await self.http.aclose()


class Socket:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        # Frames ``ask`` read past on its way to the acknowledgement, for ``recv`` to give
        # next: a run's events may come before the acknowledgement of a later message.
        self.backlog: list[dict[str, Any]] = []

    async def send(self, **body: Any) -> None:
        await self.ws.send(json.dumps(body))

    async def ask(self, content: str, **extra: Any) -> dict[str, Any]:
        """Send a ``user_message``; return its ``message_accepted`` reply."""
        await self.send(type="user_message", content=content, **extra)
        frames = await self.until("message_accepted")
        self.backlog.extend(frames[:-1])
        return frames[-1]

    async def recv(self, timeout: float | None = None) -> dict[str, Any]:
        import asyncio

        if self.backlog:
            return self.backlog.pop(0)
        raw = await asyncio.wait_for(self.ws.recv(), timeout or unit(10))
        frame: dict[str, Any] = json.loads(raw)
        return frame

    async def until(self, kind: str, timeout: float | None = None) -> list[dict[str, Any]]:
        """Frames up to and including the first of type ``kind``."""
        frames = []
        while True:
            frame = await self.recv(timeout)
            frames.append(frame)
            if frame["type"] == kind:
                return frames

    async def run_to_end(self, run_id: str) -> list[dict[str, Any]]:
        """This run's events, up to its terminal event (the root's completed/error/stopped)."""
        events = []
        while True:
            frame = await self.recv()
            if frame.get("run_id") != run_id or "seq" not in frame:
                continue
            events.append(frame)
            if frame["parent_agent"] is None and frame["type"] in (
                "agent_completed",
                "agent_error",
                "agent_stopped",
            ):
                return events

    async def close(self) -> None:
        await self.ws.close()
        await self.ws.wait_closed()


def tcp_to(base: str) -> tuple[socket.socket, str]:
    """A plain stream to the server at ``base`` (TLS when it is https), for hand-written HTTP;
    returns it and the value of its Host header."""
    parts = urlsplit(base)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    sock = socket.create_connection((host, port), timeout=unit(5))
    if parts.scheme == "https":
        sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
    return sock, f"{host}:{port}"


def raw_socket(base: str, token: str, path: str = "/ws") -> tuple[socket.socket, bytes]:
    """A handshake by hand; returns the socket and the response head (plus anything after)."""
    sock, host = tcp_to(base)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return sock, data


def handshake_head(*headers: str, path: str = "/ws") -> bytes:
    """An upgrade request for ``path`` with the standard headers and then ``headers``."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer_and_close(port: int, head: bytes) -> tuple[bytes, float]:
    """Send ``head`` on a new socket; return everything the server sent until it closed the
    socket, and how long that took (a socket the server keeps open fails the read's timeout)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=unit(3)) as sock:
        sock.sendall(head)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            pytest.fail(f"the socket is still open {unit(3)} s later; it said {received!r}")
    return received, time.monotonic() - started
