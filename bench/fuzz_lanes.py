"""The fuzz benchmark's clients: a WebSocket client written on a bare TCP stream (so it can break
every rule of RFC 6455) and an HTTP client, each a *lane* that sends its cases one after another
as one user and judges every answer.

A frame case is followed by a ``ping`` with a request id of its own (the *sentinel*): frames are
handled in order, so its ``pong`` says every frame before it was handled. The case is answered
when the pong comes or the server closes the socket, within the deadline; anything else is a
hang. A request is answered when its whole response has arrived within the deadline.

What counts as a server error: an HTTP status of 500 or more, an ``error`` frame with the code
``internal``, a close frame with 1011 (the server's internal error), a refused handshake with a
status of 500 or more, or a reply that is not JSON. Closing a socket for a bad frame (1002,
1007, 1009, ...) or refusing a request (4xx) is the server doing its job; both are counted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import re
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from websockets.utils import apply_mask

from fuzz_cases import (
    CLOSE,
    PING,
    PONG,
    TEXT,
    FrameCase,
    HttpCase,
    Json,
    Piece,
    Ref,
    Wire,
    percent,
)

PASSWORD = "correct horse battery"


@dataclass
class Account:
    """A lane's user, and the real ids its cases may name."""

    email: str
    token: str
    user_id: str
    done_run: str = ""
    done_seq: int = 0
    epoch: str = ""
    thread: str = ""
    batch: str = ""
    live_runs: list[str] = field(default_factory=list)


@dataclass
class Tally:
    """What the lanes saw, added up; ``errors`` and ``hangs`` must stay empty."""

    frames: int = 0
    frame_cases: int = 0
    requests: int = 0
    bodies: int = 0
    errors: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    unsent: int = 0
    replies: Counter[str] = field(default_factory=Counter)
    closes: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    cut_requests: Counter[str] = field(default_factory=Counter)
    connects: int = 0
    runs_started: int = 0
    events: int = 0
    slowest_case_s: float = 0.0

    def error(self, what: str) -> None:
        self.errors.append(what[:2000])

    def hang(self, what: str) -> None:
        self.hangs.append(what[:2000])


def fill(value: Any, refs: dict[str, Any]) -> Any:
    """``value`` with each :class:`Ref` replaced by its value now."""
    if isinstance(value, Ref):
        return refs[value.name]
    if isinstance(value, dict):
        return {fill(k, refs): fill(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, refs) for v in value]
    return value


def written(body: Json, refs: dict[str, Any]) -> bytes:
    text = json.dumps(fill(body.body, refs), ensure_ascii=body.ascii, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


def frame_bytes(wire: Wire, payload: bytes) -> bytes:
    """The frame as a client writes it (masked unless the case says not)."""
    first = (0x80 if wire.fin else 0) | (wire.rsv << 4) | wire.opcode
    size = len(payload) if wire.claimed is None else wire.claimed
    mask_bit = 0x80 if wire.masked else 0
    if size < 126:
        head = bytes((first, mask_bit | size))
    elif size < 65536:
        head = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, size)
    if not wire.masked:
        return head + payload
    key = os.urandom(4)
    return head + key + apply_mask(payload, key)


class Closed(Exception):
    """The server closed the socket (with a close frame, or without)."""


class FrameLane:
    """One user's raw WebSocket connection, reopened whenever the server closes it."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        me: Account,
        other: Account,
        tally: Tally,
        deadline_s: float,
        rng: random.Random,
    ) -> None:
        self.name = name
        self.host, self.port = host, port
        self.me, self.other = me, other
        self.tally = tally
        self.deadline_s = deadline_s
        self.rng = rng
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.sent = 0
        self.kind = ""
        self.sent_close: bytes | None = None  # the close frame this case sent, if any

    def refs(self) -> dict[str, Any]:
        me, other = self.me, self.other
        return {
            "own_run": me.live_runs[-1] if me.live_runs else me.done_run,
            "done_run": me.done_run,
            "own_thread": me.thread,
            "own_seq": self.rng.randint(0, me.done_seq + 2),
            "own_epoch": me.epoch,
            "foreign_run": other.done_run,
            "foreign_thread": other.thread,
            "foreign_epoch": other.epoch,
        }

    def payload(self, wire: Wire, refs: dict[str, Any]) -> bytes:
        if isinstance(wire.payload, Json):
            return written(wire.payload, refs)
        if isinstance(wire.payload, Piece):
            whole = written(wire.payload.whole, refs)
            n = len(whole)
            return whole[int(wire.payload.start * n) : int(wire.payload.end * n)]
        return wire.payload

    async def run(self, cases: AsyncIterator[FrameCase]) -> None:
        async for case in cases:
            await self.one(case)
        await self.disconnect()

    async def one(self, case: FrameCase) -> None:
        refs = self.refs()
        payloads = [self.payload(w, refs) for w in case.frames]
        data = b"".join(frame_bytes(w, p) for w, p in zip(case.frames, payloads, strict=True))
        self.kind = case.kind
        closes = [p for w, p in zip(case.frames, payloads, strict=True) if w.opcode == CLOSE]
        self.sent_close = closes[0] if closes else None
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.deadline_s):
                if case.early:
                    await self.disconnect()
                    await self.connect(early=data)
                else:
                    if self.writer is None:
                        await self.connect()
                    assert self.writer is not None
                    self.writer.write(data)
                self.tally.frames += len(case.frames)
                self.tally.frame_cases += 1
                await self.sentinel()
        except TimeoutError:
            self.tally.hang(f"{self.name}: no answer within {self.deadline_s} s to {case!r}")
            await self.disconnect(abort=True)
        except Closed:
            await self.disconnect()
        self.tally.slowest_case_s = max(self.tally.slowest_case_s, time.perf_counter() - started)

    async def sentinel(self) -> None:
        """Ping with a request id of its own; read until its pong (or the socket closes)."""
        self.sent += 1
        rid = f"{self.name}-{self.sent}"
        assert self.writer is not None
        body = json.dumps({"type": "ping", "request_id": rid}).encode()
        self.writer.write(frame_bytes(Wire(TEXT), body))
        while True:
            frame = await self.read_frame()
            if frame.get("type") == "pong" and frame.get("request_id") == rid:
                return

    async def connect(self, early: bytes = b"") -> None:
        """Open a socket with the user's bearer token (tickets are the golden path's); ``early``
        frames go with the upgrade request. A refused handshake is judged (429: tried again
        shortly)."""
        for _ in range(50):
            reader, writer = await asyncio.open_connection(self.host, self.port)
            key = base64.b64encode(os.urandom(16)).decode()
            head = (
                f"GET /ws HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {self.me.token}\r\n\r\n"
            )
            writer.write(head.encode() + early)
            self.tally.connects += 1
            try:
                answer = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                writer.close()
                self.tally.error(f"{self.name}: the handshake got no answer ({exc!r})")
                raise Closed from exc
            status = int(answer.split(b" ", 2)[1])
            if status == 101:
                self.reader, self.writer = reader, writer
                hello = await self.read_frame()
                if hello.get("type") != "connection_established":
                    self.tally.error(f"{self.name}: first frame {hello!r}")
                return
            body = await reader.read(4096)
            writer.close()
            if status >= 500:
                self.tally.error(f"{self.name}: handshake answered {status}: {body!r}")
                raise Closed
            if status != 429:
                self.tally.error(f"{self.name}: handshake answered {status}: {body!r}")
                raise Closed
            await asyncio.sleep(0.1)  # the user's sockets cut a moment ago are not yet released
        raise Closed

    async def disconnect(self, abort: bool = False) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is None:
            return
        if not abort and not writer.is_closing():
            # A normal close: the server answers it, and the user's seat is given back.
            try:
                writer.write(frame_bytes(Wire(CLOSE), struct.pack("!H", 1000)))
                await writer.drain()
            except ConnectionError:
                pass
        if abort:
            writer.transport.abort()
        else:
            writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()

    async def read_frame(self) -> dict[str, Any]:
        """The next text frame as JSON, answering pings and noting closes on the way."""
        reader = self.reader
        assert reader is not None and self.writer is not None
        while True:
            try:
                first, second = await reader.readexactly(2)
                size = second & 0x7F
                if size == 126:
                    (size,) = struct.unpack("!H", await reader.readexactly(2))
                elif size == 127:
                    (size,) = struct.unpack("!Q", await reader.readexactly(8))
                payload = await reader.readexactly(size)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                self.tally.closes[f"cut without a close frame (after a {self.kind} case)"] += 1
                raise Closed from exc
            opcode = first & 0x0F
            if opcode == TEXT:
                return self.judge(payload)
            if opcode == PING:
                self.writer.write(frame_bytes(Wire(PONG), payload))
            elif opcode == CLOSE:
                if payload == self.sent_close:
                    # The server answers a client's close with the same code and reason.
                    self.tally.closes["the client's close, echoed"] += 1
                    raise Closed
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                reason = payload[2:].decode(errors="replace")
                self.tally.closes[f"{code} {re.sub(r'[0-9]+', 'N', reason)}"] += 1
                if code == 1011:
                    self.tally.error(f"{self.name}: closed 1011 {reason!r} after {self.kind}")
                raise Closed
            elif opcode != PONG:
                self.tally.error(f"{self.name}: the server sent opcode {opcode}")

    def judge(self, payload: bytes) -> dict[str, Any]:
        try:
            frame = json.loads(payload)
        except ValueError:
            self.tally.error(f"{self.name}: a frame that is not JSON: {payload[:300]!r}")
            return {}
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            self.tally.error(f"{self.name}: a frame without a type: {payload[:300]!r}")
            return {}
        kind = frame["type"]
        if "seq" in frame:
            self.tally.events += 1
            return frame
        if kind == "error":
            self.tally.replies[f"error {frame.get('code')}"] += 1
            if frame.get("code") == "internal":
                self.tally.error(f"{self.name}: {frame!r}")
        else:
            self.tally.replies[kind] += 1
        if kind == "message_accepted" and not frame.get("duplicate"):
            self.tally.runs_started += 1
            self.me.live_runs[:] = [*self.me.live_runs[-4:], frame["run_id"]]
        return frame


class HttpLane:
    """One user's HTTP client, sending its cases one after another."""

    def __init__(
        self,
        name: str,
        base: str,
        me: Account,
        other: Account,
        tally: Tally,
        deadline_s: float,
        rng: random.Random,
    ) -> None:
        self.name = name
        self.base = base
        self.me, self.other = me, other
        self.tally = tally
        self.deadline_s = deadline_s
        self.rng = rng
        self.http = httpx.AsyncClient(base_url=base, timeout=deadline_s)

    async def fresh_session(self) -> tuple[str, str]:
        """A new session of the lane's user: its access and refresh tokens."""
        r = await self.http.post("/auth/login", json={"email": self.me.email, "password": PASSWORD})
        if r.status_code != 200:
            self.tally.error(f"{self.name}: login for a fresh session answered {r.status_code}")
            return "", ""
        body = r.json()
        return body["access_token"], body["refresh_token"]

    async def refs(self, case: HttpCase) -> dict[str, Any]:
        me, other = self.me, self.other
        refs: dict[str, Any] = {
            "own_run": me.live_runs[-1] if me.live_runs else me.done_run,
            "done_run": me.done_run,
            "own_thread": me.thread,
            "own_batch": me.batch,
            "foreign_run": other.done_run,
            "foreign_thread": other.thread,
            "foreign_batch": other.batch,
            "refresh_token": "",
        }
        if isinstance(case.body, Json) and "refresh_token" in repr(case.body):
            refs["refresh_token"] = (await self.fresh_session())[1]
        return refs

    async def run(self, cases: AsyncIterator[HttpCase]) -> None:
        async for case in cases:
            await self.one(case)
        await self.http.aclose()

    async def one(self, case: HttpCase) -> None:
        if case.kind in ("stalled", "abandoned"):
            await self.stalled(case)
            return
        refs = await self.refs(case)
        path = (
            quote(case.path, safe="/%:@!$&'()*+,;=-._~")
            if isinstance(case.path, str)
            else "".join(
                percent(str(fill(part, refs))) if isinstance(part, Ref) else str(part)
                for part in case.path
            )
        )
        headers = dict(case.headers)
        if case.auth == "fresh":
            headers["Authorization"] = "Bearer " + (await self.fresh_session())[0]
        elif case.auth == "lane" or (case.auth == "lane_or_drawn" and self.rng.random() < 0.7):
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            headers["Authorization"] = f"Bearer {self.me.token}"
        body = written(case.body, refs) if isinstance(case.body, Json) else case.body
        content: Any = body
        if case.chunked and body is not None:

            async def pieces(data: bytes = body) -> AsyncIterator[bytes]:
                for at in range(0, len(data), 997):
                    yield data[at : at + 997]

            content = pieces()
        what = f"{case.method} {path} ({case.kind}, {case.extra.get('operation', '')})"
        started = time.perf_counter()
        try:
            request = self.http.build_request(
                case.method, path, params=list(case.params), headers=headers, content=content
            )
        except (ValueError, TypeError, httpx.HTTPError, httpx.InvalidURL):
            self.tally.unsent += 1  # nothing a client library would send (a header with "\n")
            return
        self.tally.requests += 1
        self.tally.bodies += body is not None
        try:
            async with asyncio.timeout(self.deadline_s):
                response = await self.http.send(request, stream=True)
                data = await response.aread()
                await response.aclose()
        except TimeoutError:
            self.tally.hang(f"{self.name}: no answer within {self.deadline_s} s: {what}")
            return
        except httpx.LocalProtocolError:
            # Refused by the client library itself as it wrote the request (a header h11 will
            # not send): nothing reached the server.
            self.tally.requests -= 1
            self.tally.bodies -= body is not None
            self.tally.unsent += 1
            return
        except httpx.HTTPError as exc:
            # The server closed the connection without an answer: fine for a body it refused
            # before reading it (413 closes the connection while the client still writes).
            self.tally.cut_requests[f"{type(exc).__name__} on {case.kind}"] += 1
            return
        finally:
            took = time.perf_counter() - started
            self.tally.slowest_case_s = max(self.tally.slowest_case_s, took)
        self.tally.statuses[response.status_code] += 1
        if response.status_code >= 500:
            self.tally.error(
                f"{self.name}: {response.status_code} for {what}: {data[:500]!r}; "
                f"body {(body or b'')[:500]!r}"
            )

    async def stalled(self, case: HttpCase) -> None:
        """A body that stops (on a socket of its own: no client library sends one)."""
        assert isinstance(case.body, bytes)
        host, _, port = self.base.removeprefix("http://").partition(":")
        lines = [f"{case.method} {case.path} HTTP/1.1", f"Host: {host}:{port}"]
        lines += [f"{name}: {value}" for name, value in case.headers]
        if case.auth == "lane":
            lines.append(f"Authorization: Bearer {self.me.token}")
        if case.chunked:
            lines.append("Transfer-Encoding: chunked")
            body = f"{len(case.body):x}\r\n".encode() + case.body + b"\r\n" if case.body else b""
        else:
            lines.append(f"Content-Length: {case.extra['declared']}")
            body = case.body
        self.tally.requests += 1
        self.tally.bodies += 1
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        if case.kind == "abandoned":
            await asyncio.sleep(0.05)
            writer.transport.abort()
            self.tally.cut_requests["client hung up mid-body"] += 1
            return
        try:
            async with asyncio.timeout(self.deadline_s):
                said = await reader.read()  # to the close: the server's answer, if any
        except TimeoutError:
            self.tally.hang(f"{self.name}: a stalled body held its connection: {case!r}")
            return
        finally:
            writer.transport.abort()
        status = int(said.split(b" ", 2)[1]) if said.startswith(b"HTTP/1.1 ") else 0
        self.tally.cut_requests[f"stalled body closed, answered {status or 'nothing'}"] += 1
        if status >= 500:
            self.tally.error(f"{self.name}: {status} for a stalled body: {said[:500]!r}")
