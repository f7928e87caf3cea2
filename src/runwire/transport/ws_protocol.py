"""``/ws`` served directly on the socket: runwire's WebSocket protocol beside the ASGI app.

uvicorn hands every upgrade request to the protocol class it is given; this one answers ``/ws``
itself, with the ``websockets`` library's sans-I/O core and a :class:`Session`, instead of going
through uvicorn's ASGI adapter and Starlette. Delivering a run's events is runwire's hot path,
and measured side by side (docs/benchmarks.md) the ASGI layers cost more than everything
runwire does per event. HTTP requests still go to the ASGI app.

What the adapter does itself, and why:

- Frames written during one turn of the event loop leave in one ``write`` (a burst of events
  costs one system call; a lone event still leaves in the same turn). The connections that
  have frames waiting are written together, by one callback of the loop (the server's
  :class:`~runwire.transport.flusher.Flusher`, in its ``Services``), at the earliest point any of them would have been alone: the sockets' writes leave in one
  burst, so a client process reading many of them wakes once for the burst, not once a write.
- The outbound limit is in bytes earlier turns left waiting in the transport, judged by
  :class:`OutboundLimit` (a turn's own frames are never refused for their size): past it the
  client is not reading, and the session closes it (4008) without stalling anyone else. A cut
  drops what this turn queued except the frames the session keeps (runs' terminal events), and
  the close frame follows them at the end of the turn.
- Inbound messages are handled one at a time, in order, by a task that exists only while there
  is something to handle (an idle connection holds no task); a client sending faster than its
  messages are handled is paused at the socket.
- Keepalive pings find peers that vanished; the idle timeout closes silent ones (4000).
- At shutdown each connection is told, the user's runs get the configured grace to finish
  while the client still watches, and only then is the socket closed (1012).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import struct
from collections import deque
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, cast

from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from runwire.protocol.outbound import OutboundLimit
from runwire.transport.errors import CLOSE_CODES
from runwire.transport.flusher import Flusher
from runwire.transport.handshake import Credentials, Denial, admit, credentials_of, ticket_of
from runwire.transport.services import Services
from runwire.transport.session import Session, encode

__all__ = ["RunwireWebSocketProtocol"]

log = logging.getLogger(__name__)


class _CoreLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The sans-I/O core's log without its debug lines, whatever the level: they print every
    request header (a bearer token), the handshake's URL (a ticket) and every frame."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and super().isEnabledFor(level)


_core_log = _CoreLog(log)

WS_PATH = "/ws"
CLOSE_TIMEOUT_S = 5.0  # a peer that does not answer our close frame in time is cut off
_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")
_HEADERS_7 = tuple(bytes((0x81, size)) for size in range(126))  # a short text frame's, by size
_PAUSE_AT = 64  # inbound messages waiting to be handled before the socket stops reading
_RESUME_AT = 16


class RunwireWebSocketProtocol(asyncio.Protocol):
    """One upgraded connection. uvicorn constructs it with its config and shared state."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._loop = _loop or asyncio.get_event_loop()
        self._connections: set[Any] = server_state.connections
        self._tasks: set[asyncio.Task[Any]] = server_state.tasks
        self._services: Services | None = app_state.get("services")
        max_size = (
            self._services.settings.max_frame_bytes
            if self._services is not None
            else config.ws_max_size
        )
        self._max_size: int = max_size
        self._ws = ServerProtocol(max_size=max_size, logger=_core_log)
        self._transport: asyncio.Transport | None = None
        self._session: Session | None = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._kept: list[bytes] = []  # the keep frames among _pending (header, payload, ...)
        self._flush_scheduled = False
        # The server's one writer of waiting sockets (a bare protocol, in tests, has its own).
        self._flusher = self._services.flusher if self._services is not None else Flusher()
        self._close_with: tuple[int, str] | None = None  # a close frame due at the next flush
        self._eof = False
        self._closing = False
        self._lost = False
        self._inbox: deque[str | bytes] = deque()
        self._reader: asyncio.Task[None] | None = None
        self._read_paused = False
        self._fragments: list[bytes] = []
        self._fragment_text = False
        self._fragment_size = 0
        self._last_seen = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._ping_payload: bytes | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        settings = self._services.settings if self._services is not None else None
        self._outbound = OutboundLimit(settings.outbound_buffer_bytes if settings else 1)
        self._idle_s = settings.ws_idle_timeout_s if settings else 0.0
        self._ping_interval_s = settings.ws_ping_interval_s if settings else 0.0
        self._ping_timeout_s = settings.ws_ping_timeout_s if settings else 0.0

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast(asyncio.Transport, transport)
        self._connections.add(self)

    def data_received(self, data: bytes) -> None:
        self._ws.receive_data(data)
        for event in self._ws.events_received():
            if isinstance(event, Frame):
                self._on_frame(event)
            elif isinstance(event, Request):
                self._on_request(event)
        self._collect()
        if self._ws.parser_exc is not None:
            # A protocol violation (a frame over the limit: 1009; invalid UTF-8: 1007; …): the
            # core has already queued its close frame; send it and let go of the socket.
            self._eof = True
        self.flush()

    def eof_received(self) -> bool | None:
        self._ws.receive_eof()
        self._collect()
        self.flush()
        return None

    def pause_writing(self) -> None:
        # The outbound limit is checked on each write (``write`` below), not by flow control.
        pass

    def resume_writing(self) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._connections.discard(self)
        for timer in (self._idle_timer, self._ping_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._idle_timer = self._ping_timer = self._close_timer = None
        self._inbox.clear()
        self._pending.clear()
        self._kept.clear()
        self._pending_bytes = 0
        if self._session is not None:
            self._session.release()

    def shutdown(self) -> None:
        """uvicorn is shutting down: tell the client, give its runs their grace, then close."""
        session = self._session
        if session is None or not session.is_open or self._services is None:
            self._abort()
            return
        services = self._services
        session.notify(
            {
                "type": "server_closing",
                "reason": "shutdown",
                "grace_s": services.settings.shutdown_grace_s,
            }
        )
        self._track(self._loop.create_task(self._close_after_drain(session, services)))

    async def _close_after_drain(self, session: Session, services: Services) -> None:
        await services.executor.drain(services.settings.shutdown_grace_s)
        session.close(CLOSE_CODES["service_restart"], "server restarting; reconnect and resume")

    # -- the Outlet a Session writes to --

    def write(self, frame: str | bytes, *, keep: bool = False) -> bool:
        if self._lost or (self._closing and not (keep and self._close_with is not None)):
            return True  # the socket is going; nothing more is delivered on it
        assert self._transport is not None
        if not keep and not self._outbound.admits(self._transport.get_write_buffer_size()):
            return False
        # A server's text frame is a header and the payload as it is (RFC 6455 5.2: servers do
        # not mask). Framing it here rather than through the sans-I/O core saves a copy and
        # most of the cost per event; control frames (pong, close) still come from the core.
        payload = frame if isinstance(frame, bytes) else frame.encode()
        header = _header(len(payload))
        self._pending.append(header)
        self._pending.append(payload)
        self._pending_bytes += len(header) + len(payload)
        if keep:
            self._kept += (header, payload)
        self._schedule_flush()
        return True

    def write_many(self, frames: Sequence[bytes]) -> bool:
        if self._lost or self._closing:
            return True
        assert self._transport is not None
        # One check for the batch: it judges what earlier turns left waiting, the same for
        # every frame of this turn.
        if not self._outbound.admits(self._transport.get_write_buffer_size()):
            return False
        pending = self._pending
        queued = 0
        for payload in frames:
            header = _header(len(payload))
            pending.append(header)
            pending.append(payload)
            queued += len(header) + len(payload)
        self._pending_bytes += queued
        self._schedule_flush()
        return True

    def close(self, code: int, reason: str, *, drop: bool) -> None:
        if self._closing or self._lost:
            return
        self._closing = True
        if drop:
            self._pending, self._kept = self._kept, []
            self._pending_bytes = sum(map(len, self._pending))
        # The close frame goes at the end of the turn, after the frames kept until then.
        self._close_with = (code, reason)
        self._schedule_flush()

    # -- handshake --

    def _on_request(self, request: Request) -> None:
        services = self._services
        path = request.path.partition("?")[0]
        if services is None or path != WS_PATH:
            status, detail, code = (
                (503, "the server is not ready", "unavailable")
                if services is None
                else (404, f"no WebSocket endpoint at {path}", "not_found")
            )
            self._refuse(status, encode({"detail": detail, "code": code}).encode())
            return
        credentials = credentials_of(request.headers.raw_items())
        if isinstance(credentials, Denial):
            self._refuse(credentials.status, credentials.body())
            return
        response = self._ws.accept(request)
        if response.status_code != 101:  # not a valid WebSocket upgrade
            self._ws.send_response(response)
            self._eof = True
            return
        ticket = ticket_of(request.path.partition("?")[2])
        self._track(self._loop.create_task(self._admit(credentials, ticket, response, services)))

    async def _admit(
        self, credentials: Credentials, ticket: str | None, response: Response, services: Services
    ) -> None:
        # Every handshake gets an answer: one left unanswered would hold its socket open with
        # no timer running (the idle timer starts with the session).
        try:
            await self._open(credentials, ticket, response, services)
        except Exception:
            log.exception("a WebSocket handshake failed")
            if self._session is None and not self._lost:
                body = {"detail": "the server failed; the error was logged", "code": "internal"}
                self._refuse(500, encode(body).encode())

    async def _open(
        self, credentials: Credentials, ticket: str | None, response: Response, services: Services
    ) -> None:
        admitted = await admit(services, credentials, ticket=ticket)
        if isinstance(admitted, Denial):
            if not self._lost:
                self._refuse(admitted.status, admitted.body())
            return
        session = Session(admitted.principal, services, self, seat=admitted.seat)
        if self._lost:
            session.release()
            return
        try:
            await session.subscribe()
        except BaseException:
            session.release()
            raise
        if self._lost:
            session.release()
            return
        self._ws.send_response(response)
        self._collect()
        self._session = session
        self._last_seen = self._loop.time()
        self._idle_timer = self._loop.call_later(self._idle_s, self._check_idle)
        if self._ping_interval_s > 0:
            self._ping_timer = self._loop.call_later(self._ping_interval_s, self._send_ping)
        session.open()
        self.flush()

    def _refuse(self, status: int, body: bytes) -> None:
        headers = Headers(
            [
                ("Date", email.utils.formatdate(usegmt=True)),
                ("Connection", "close"),
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
            ]
        )
        self._ws.send_response(Response(status, _phrase(status), headers, body))
        self._collect()
        self._eof = True
        self.flush()

    # -- inbound --

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            self._fragments = [bytes(frame.data)]
            self._fragment_text = opcode is Opcode.TEXT
            self._fragment_size = len(frame.data)
        elif opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
            self._fragment_size += len(frame.data)
        elif opcode is Opcode.PONG:
            if self._ping_payload is not None and bytes(frame.data) == self._ping_payload:
                self._ping_payload = None
            return
        elif opcode is Opcode.CLOSE:
            # The core has queued the echo of the client's close; the server ends the TCP side.
            self._closing = True
            return
        else:  # PING: the core has queued the pong
            return
        if self._fragment_size > self._max_size:
            self._ws.fail(CLOSE_CODES["too_big"], "message too big")
            self._eof = True
            return
        if not frame.fin:
            return
        data = b"".join(self._fragments) if len(self._fragments) > 1 else self._fragments[0]
        self._fragments = []
        if self._session is None or self._closing:
            return
        message: str | bytes = data
        if self._fragment_text:
            try:
                message = data.decode()
            except UnicodeDecodeError:
                self._ws.fail(1007, "invalid UTF-8")
                self._eof = True
                return
        self._last_seen = self._loop.time()
        self._inbox.append(message)
        if self._reader is None:
            self._reader = self._loop.create_task(self._read())
        elif len(self._inbox) >= _PAUSE_AT and not self._read_paused:
            self._read_paused = True
            assert self._transport is not None
            self._transport.pause_reading()

    async def _read(self) -> None:
        session = self._session
        assert session is not None
        try:
            while self._inbox:
                try:
                    await session.handle(self._inbox.popleft())
                except Exception:
                    # Session.handle answers every error it knows of; anything else is a bug
                    # that must not leave later frames unread on an open socket.
                    log.exception("handling a frame failed")
                if self._read_paused and len(self._inbox) <= _RESUME_AT and not self._lost:
                    self._read_paused = False
                    assert self._transport is not None
                    self._transport.resume_reading()
        finally:
            self._reader = None

    # -- timers --

    def _check_idle(self) -> None:
        self._idle_timer = None
        if self._session is None or self._closing or self._lost:
            return
        left = self._last_seen + self._idle_s - self._loop.time()
        if left > 0:
            self._idle_timer = self._loop.call_later(left, self._check_idle)
            return
        self._session.close(CLOSE_CODES["idle"], "idle timeout")

    def _send_ping(self) -> None:
        self._ping_timer = None
        if self._closing or self._lost:
            return
        self._ping_payload = os.urandom(4)
        self._ws.send_ping(self._ping_payload)
        self._collect()
        self.flush()
        self._ping_timer = self._loop.call_later(self._ping_timeout_s, self._check_pong)

    def _check_pong(self) -> None:
        self._ping_timer = None
        if self._closing or self._lost:
            return
        if self._ping_payload is not None:
            # No pong in time: the peer vanished without closing. Let go of it now.
            self._ws.fail(CLOSE_CODES["internal"], "keepalive ping timeout")
            self._closing = True
            self._eof = True
            self._collect()
            self.flush()
            return
        self._ping_timer = self._loop.call_later(
            max(0.0, self._ping_interval_s - self._ping_timeout_s), self._send_ping
        )

    # -- output --

    def _collect(self) -> None:
        for chunk in self._ws.data_to_send():
            if chunk:
                self._pending.append(chunk)
                self._pending_bytes += len(chunk)
            else:
                self._eof = True  # the core says the TCP connection should end now

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._flusher.add(self)

    @property
    def flush_due(self) -> bool:
        """Frames wait for :meth:`flush` (it is with the server's :class:`Flusher`)."""
        return self._flush_scheduled

    def flush(self) -> None:
        """Write every frame waiting, in one ``write``."""
        self._flush_scheduled = False
        self._kept.clear()
        if self._close_with is not None and not self._lost:
            code, reason = self._close_with
            self._close_with = None
            self._ws.send_close(code, reason)
            self._collect()
            self._close_timer = self._loop.call_later(CLOSE_TIMEOUT_S, self._abort)
        transport = self._transport
        if transport is None or transport.is_closing():
            self._pending.clear()
            self._pending_bytes = 0
            return
        if self._pending:
            transport.write(b"".join(self._pending))
            self._outbound.queued(self._pending_bytes)
            self._pending.clear()
            self._pending_bytes = 0
        if self._eof:
            transport.close()

    def _abort(self) -> None:
        self._close_timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _header(size: int) -> bytes:
    """A text frame's header for a payload of ``size`` bytes."""
    if size < 126:
        return _HEADERS_7[size]
    if size < 65536:
        return _HEADER_16.pack(0x81, 126, size)
    return _HEADER_64.pack(0x81, 127, size)


def _phrase(status: int) -> str:
    return HTTPStatus(status).phrase
