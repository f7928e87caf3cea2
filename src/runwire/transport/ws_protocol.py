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
  :class:`~runwire.transport.flusher.Flusher`), at the earliest point any of them would have
  been alone, so a client reading many sockets wakes once for the burst, not once a write.
- The outbound limit is in bytes earlier turns left waiting in the transport, judged by
  :class:`OutboundLimit` (a turn's own frames are never refused for their size): past it the
  client is not reading, and the session closes it (4008) without stalling anyone else. A cut
  drops what this turn queued except the frames the session keeps (runs' terminal events), and
  the close frame follows them at the end of the turn.
- The handshake is answered by an ``Upgrade`` (``ws_upgrade``): a refusal is an HTTP response,
  and the session is subscribed before the 101 goes out.
- Inbound messages are handled in order, by a task only while there are any (``ws_inbox``);
  keepalive pings and the idle timeout (4000) find vanished and silent peers (``ws_keepalive``).
- Where the socket is in its life is one ``SocketPhase`` (``ws_phase``), read on every frame by
  identity and moved through its table only when it changes.
- At shutdown each connection is told, the user's runs get the configured grace to finish
  while the client still watches, and only then is the socket closed (1012).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, cast

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from runwire.protocol.outbound import OutboundLimit
from runwire.transport.errors import CLOSE_CODES
from runwire.transport.flusher import Flusher
from runwire.transport.services import Services
from runwire.transport.session import Session
from runwire.transport.ws_inbox import Fragments, Inbox
from runwire.transport.ws_keepalive import Keepalive
from runwire.transport.ws_phase import SocketPhase, SocketPhases
from runwire.transport.ws_upgrade import Upgrade
from runwire.transport.ws_wire import CoreLog, text_header

__all__ = ["RunwireWebSocketProtocol"]

log = logging.getLogger(__name__)


_core_log = CoreLog(log)

CLOSE_TIMEOUT_S = 5.0  # a peer that does not answer our close frame in time is cut off
# Read on every frame: a module global is one lookup, where ``SocketPhase.OPEN`` is two.
_OPEN = SocketPhase.OPEN
_CLOSE_DUE = SocketPhase.CLOSE_DUE
_ENDING = SocketPhase.ENDING
_LOST = SocketPhase.LOST


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
        settings = self._services.settings if self._services is not None else None
        self._max_size: int = settings.max_frame_bytes if settings else config.ws_max_size
        self._ws = ServerProtocol(max_size=self._max_size, logger=_core_log)
        self._transport: asyncio.Transport | None = None
        self._session: Session | None = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._kept: list[bytes] = []  # the keep frames among _pending (header, payload, ...)
        # Whether this socket is in the Flusher's pass (it joins once until written). Not a
        # phase: a mark of the output, set and cleared every turn, orthogonal to the phase.
        self._flush_scheduled = False
        # The server's one writer of waiting sockets (a bare protocol, in tests, has its own).
        self._flusher = self._services.flusher if self._services is not None else Flusher()
        self._phase = SocketPhases()
        self._close_with: tuple[int, str] | None = None  # the close frame of CLOSE_DUE
        self._inbox: Inbox | None = None  # the session's, from its opening
        self._fragments = Fragments()
        self._close_timer: asyncio.TimerHandle | None = None
        self._outbound = OutboundLimit(settings.outbound_buffer_bytes if settings else 1)
        self._keepalive = Keepalive(
            self._loop,
            self,
            idle_s=settings.ws_idle_timeout_s if settings else 0.0,
            ping_interval_s=settings.ws_ping_interval_s if settings else 0.0,
            ping_timeout_s=settings.ws_ping_timeout_s if settings else 0.0,
        )

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
                # Made for the one request a socket gets, and gone with its admission: an open
                # socket holds nothing of its handshake.
                admission = Upgrade(self._ws, self._services, self).request(event)
                if admission is not None:
                    self._track(self._loop.create_task(admission))
        self._collect()
        if self._ws.parser_exc is not None:
            # A protocol violation (a frame over the limit: 1009; invalid UTF-8: 1007; …): the
            # core has already queued its close frame; send it and let go of the socket.
            self._phase.end()
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
        self._phase.move(SocketPhase.LOST)
        self._connections.discard(self)
        self._keepalive.stop()
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self._inbox is not None:
            self._inbox.close()
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
        grace_s = services.settings.shutdown_grace_s
        session.notify({"type": "server_closing", "reason": "shutdown", "grace_s": grace_s})
        self._track(self._loop.create_task(self._close_after_drain(session, services)))

    async def _close_after_drain(self, session: Session, services: Services) -> None:
        await services.executor.drain(services.settings.shutdown_grace_s)
        session.close(CLOSE_CODES["service_restart"], "server restarting; reconnect and resume")

    # -- the Outlet a Session writes to --

    def write(self, frame: str | bytes, *, keep: bool = False) -> bool:
        phase = self._phase.state
        if phase is not _OPEN and not (keep and phase is _CLOSE_DUE):
            return True  # the socket is going; nothing more is delivered on it
        assert self._transport is not None
        if not keep and not self._outbound.admits(self._transport.get_write_buffer_size()):
            return False
        # Framed here, not by the sans-I/O core: a copy less, most of the cost per event (ws_wire).
        payload = frame if isinstance(frame, bytes) else frame.encode()
        header = text_header(len(payload))
        self._pending.append(header)
        self._pending.append(payload)
        self._pending_bytes += len(header) + len(payload)
        if keep:
            self._kept += (header, payload)
        self._schedule_flush()
        return True

    def write_many(self, frames: Sequence[bytes]) -> bool:
        if self._phase.state is not _OPEN:
            return True
        assert self._transport is not None
        # One check for the batch: it judges what earlier turns left waiting, the same for
        # every frame of this turn.
        if not self._outbound.admits(self._transport.get_write_buffer_size()):
            return False
        pending = self._pending
        queued = 0
        for payload in frames:
            header = text_header(len(payload))
            pending.append(header)
            pending.append(payload)
            queued += len(header) + len(payload)
        self._pending_bytes += queued
        self._schedule_flush()
        return True

    def close(self, code: int, reason: str, *, drop: bool) -> None:
        if not self._phase.close():
            return  # closing, ending or gone already
        if drop:
            self._pending, self._kept = self._kept, []
            self._pending_bytes = sum(map(len, self._pending))
        # The close frame goes at the end of the turn, after the frames kept until then.
        self._close_with = (code, reason)
        self._schedule_flush()

    # -- inbound --

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            self._fragments.first(frame.data, text=opcode is Opcode.TEXT)
        elif opcode is Opcode.CONT:
            self._fragments.add(frame.data)
        elif opcode is Opcode.PONG:
            self._keepalive.pong(bytes(frame.data))
            return
        elif opcode is Opcode.CLOSE:
            # The core has queued the echo of the client's close; the server ends the TCP side.
            self._phase.peer_closed()
            return
        else:  # PING: the core has queued the pong
            return
        if self._fragments.size > self._max_size:
            self._ws.fail(CLOSE_CODES["too_big"], "message too big")
            self._phase.end()
            return
        if not frame.fin:
            return
        data = self._fragments.message()
        inbox = self._inbox
        if self._phase.state is not _OPEN or inbox is None:
            return
        message: str | bytes = data
        if self._fragments.text:
            try:
                message = data.decode()
            except UnicodeDecodeError:
                self._ws.fail(1007, "invalid UTF-8")
                self._phase.end()
                return
        self._keepalive.seen()
        inbox.put(message)

    # -- what the Upgrade does to the socket --

    @property
    def lost(self) -> bool:
        """The socket is gone."""
        return self._phase.state is _LOST

    def refused(self) -> None:
        self._collect()
        self._phase.end()
        self.flush()

    def opened(self, session: Session) -> None:
        self._collect()
        self._session = session
        assert self._transport is not None
        self._inbox = Inbox(self._loop, session.handle, self._transport)
        self._keepalive.start()
        self._phase.open()
        session.open()
        self.flush()

    # -- what the Keepalive does to the socket --

    @property
    def is_open(self) -> bool:
        """The session is open and its frames go out (neither closing nor gone)."""
        return self._phase.state is _OPEN

    def ping(self, payload: bytes) -> None:
        self._ws.send_ping(payload)
        self._collect()
        self.flush()

    def vanished(self) -> None:
        # No pong in time: the peer vanished without closing. Let go of it now.
        self._ws.fail(CLOSE_CODES["internal"], "keepalive ping timeout")
        self._phase.end()
        self._collect()
        self.flush()

    def idle(self) -> None:
        assert self._session is not None
        self._session.close(CLOSE_CODES["idle"], "idle timeout")

    # -- output --

    def _collect(self) -> None:
        for chunk in self._ws.data_to_send():
            if chunk:
                self._pending.append(chunk)
                self._pending_bytes += len(chunk)
            else:
                self._phase.end()  # the core says the TCP connection should end now

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
        if self._phase.state is _CLOSE_DUE and self._close_with is not None:
            code, reason = self._close_with
            self._close_with = None
            self._phase.move(SocketPhase.CLOSING)
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
        if self._phase.state is _ENDING:
            transport.close()

    def _abort(self) -> None:
        self._close_timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
