"""The WebSocket endpoint ``/ws``: a thin adapter around the protocol core.

One :class:`Connection` per socket owns three things and closes all of them when it ends: its
bus subscription, its outbound queue and the writer task that drains it. Frames are read in one
loop and dispatched through a router table; agent runs are tasks of the executor, so reading
never waits for an agent and ``stop_agent`` works mid-run. Every frame sent goes through the
bounded outbound queue, so one slow socket cannot stall delivery to anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from runwire.auth.service import Principal
from runwire.bus.base import Subscription
from runwire.errors import AuthError, PayloadTooLarge, RunwireError
from runwire.events.model import RunEvent
from runwire.protocol.connection import ConnectionState, ConnectionStateMachine
from runwire.protocol.delivery import Delivery
from runwire.protocol.inbound import (
    GetThreadHistory,
    Ping,
    Resume,
    StopAgent,
    UserMessage,
    parse_frame,
    request_id_of,
)
from runwire.transport.errors import CLOSE_CODES
from runwire.transport.principal import bearer_token
from runwire.transport.services import Services, services_of

__all__ = ["websocket_endpoint"]

log = logging.getLogger(__name__)

_CLOSE = object()  # sentinel in the outbound queue: close after what is queued before it


def _encode(body: dict[str, Any]) -> str:
    return orjson.dumps(body).decode()


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """Browsers always send Origin; programs usually do not. A browser page may open the socket
    only from an allowed origin (or, when none are configured, from the server's own host)."""
    if origin is None:
        return True
    if allowed:
        return origin in allowed or "*" in allowed
    return bool(host) and urlsplit(origin).netloc == host


async def _authenticate(ws: WebSocket, services: Services) -> Principal:
    ticket = ws.query_params.get("ticket")
    if ticket:
        return await services.auth.redeem_ticket(ticket)
    token = bearer_token(ws.headers.get("authorization"))
    if token:
        return await services.auth.authenticate(token)
    raise AuthError("missing credentials: pass ?ticket=… or an Authorization: Bearer header")


async def websocket_endpoint(ws: WebSocket) -> None:
    services = services_of(ws)
    settings = services.settings
    if not origin_allowed(
        ws.headers.get("origin"), ws.headers.get("host"), settings.allowed_origins
    ):
        await ws.send_denial_response(
            JSONResponse({"detail": "origin not allowed", "code": "forbidden_origin"}, 403)
        )
        return
    try:
        principal = await _authenticate(ws, services)
    except AuthError as exc:
        await ws.send_denial_response(JSONResponse({"detail": exc.message, "code": exc.code}, 401))
        return
    await Connection(ws, principal, services).serve()


class Connection:
    """One authenticated socket, from accept to close."""

    def __init__(self, ws: WebSocket, principal: Principal, services: Services) -> None:
        self.id = "conn_" + secrets.token_hex(8)
        self._ws = ws
        self._principal = principal
        self._services = services
        self._settings = services.settings
        self._machine = ConnectionStateMachine()
        self._delivery = Delivery()
        self._outbox: asyncio.Queue[str | object] = asyncio.Queue(
            self._settings.outbound_queue_size
        )
        self._subscription: Subscription | None = None
        self._close_code = CLOSE_CODES["normal"]
        self._close_reason = ""
        self._routes: dict[type[Any], Callable[[Any], Awaitable[None]]] = {
            UserMessage: self._on_user_message,
            StopAgent: self._on_stop,
            Resume: self._on_resume,
            GetThreadHistory: self._on_history,
            Ping: self._on_ping,
        }

    @property
    def user_id(self) -> str:
        return self._principal.user_id

    async def serve(self) -> None:
        await self._ws.accept()
        self._machine.move(ConnectionState.OPEN)
        writer = asyncio.create_task(self._write_loop(), name=f"ws-writer-{self.id}")
        try:
            self._subscription = self._services.bus.subscribe(self.user_id, self._on_event)
            self._send(
                {
                    "type": "connection_established",
                    "connection_id": self.id,
                    "user_id": self.user_id,
                }
            )
            await self._read_loop()
        finally:
            if self._subscription is not None:
                self._subscription.close()
            self._close(CLOSE_CODES["normal"], "")
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(writer, timeout=1.0)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            self._machine.state = ConnectionState.CLOSED

    async def _read_loop(self) -> None:
        idle = self._settings.ws_idle_timeout_s
        max_bytes = self._settings.max_frame_bytes
        while self._machine.is_open:
            try:
                async with asyncio.timeout(idle):
                    message = await self._ws.receive()
            except TimeoutError:
                self._close(CLOSE_CODES["idle"], "idle timeout")
                return
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes") or b""
            await self._handle(raw, max_bytes)

    async def _handle(self, raw: str | bytes, max_bytes: int) -> None:
        try:
            command = parse_frame(raw, max_bytes)
        except PayloadTooLarge as exc:
            self._error(exc, None)
            self._close(CLOSE_CODES["too_big"], "frame too large")
            return
        except RunwireError as exc:
            text = raw if isinstance(raw, str) else ""
            self._error(exc, request_id_of(text) if len(text) <= max_bytes else None)
            return
        try:
            await self._routes[type(command)](command)
        except RunwireError as exc:
            self._error(exc, command.request_id)
        except Exception:
            log.exception("handler for %s failed", type(command).__name__)
            self._send(
                {
                    "type": "error",
                    "code": "internal",
                    "message": "the server failed to handle this message; it was logged",
                    "request_id": command.request_id,
                }
            )

    # -- handlers (the router table above maps command types to these) --

    async def _on_user_message(self, cmd: UserMessage) -> None:
        accepted = await self._services.chat.submit(self.user_id, cmd)
        self._reply(cmd.request_id, {"type": "message_accepted", **accepted.public()})

    async def _on_stop(self, cmd: StopAgent) -> None:
        stopping = await self._services.chat.stop(self.user_id, cmd.run_id)
        if not stopping:
            self._reply(
                cmd.request_id,
                {
                    "type": "error",
                    "code": "run_finished",
                    "message": "the run has already ended",
                    "run_id": cmd.run_id,
                },
            )

    async def _on_resume(self, cmd: Resume) -> None:
        self._delivery.begin_resume(cmd.run_id, cmd.after_seq)
        try:
            stored = await self._services.chat.events(self.user_id, cmd.run_id, cmd.after_seq)
        except BaseException:
            for event in self._delivery.abandon_resume(cmd.run_id):
                self._send_event(event)
            raise
        for event in self._delivery.finish_resume(cmd.run_id, stored):
            self._send_event(event)

    async def _on_history(self, cmd: GetThreadHistory) -> None:
        messages = await self._services.chat.messages(self.user_id, cmd.thread_id)
        self._reply(
            cmd.request_id,
            {
                "type": "thread_history",
                "thread_id": cmd.thread_id,
                "messages": [m.public() for m in messages],
            },
        )

    async def _on_ping(self, cmd: Ping) -> None:
        self._reply(cmd.request_id, {"type": "pong"})

    # -- outbound --

    def _on_event(self, event: RunEvent) -> None:
        for ready in self._delivery.live(event):
            self._send_event(ready)

    def _send_event(self, event: RunEvent) -> None:
        self._enqueue(event.json)

    def _reply(self, request_id: str | None, body: dict[str, Any]) -> None:
        if request_id is not None:
            body["request_id"] = request_id
        self._send(body)

    def _error(self, exc: RunwireError, request_id: str | None) -> None:
        self._reply(request_id, {"type": "error", "code": exc.code, "message": exc.message})

    def _send(self, body: dict[str, Any]) -> None:
        self._enqueue(_encode(body))

    def _enqueue(self, frame: str) -> None:
        if not self._machine.is_open:
            return
        try:
            self._outbox.put_nowait(frame)
        except asyncio.QueueFull:
            # The client stopped reading. Its runs go on; it can reconnect and resume.
            log.warning("connection %s is not reading; closing it", self.id)
            self._close(
                CLOSE_CODES["slow_consumer"], "client too slow; reconnect and resume", drop=True
            )

    def _close(self, code: int, reason: str, *, drop: bool = False) -> None:
        """Close after the frames already queued, or (``drop``) instead of them."""
        if not self._machine.close():
            return
        self._close_code = code
        self._close_reason = reason
        if drop:
            # A stalled client gets no more frames, only the close; resume recovers the rest.
            while not self._outbox.empty():
                self._outbox.get_nowait()
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(_CLOSE)

    async def _write_loop(self) -> None:
        ws = self._ws
        try:
            while True:
                frame = await self._outbox.get()
                if frame is _CLOSE:
                    await ws.close(self._close_code, self._close_reason)
                    return
                assert isinstance(frame, str)
                await ws.send_text(frame)
        except (WebSocketDisconnect, RuntimeError, OSError):
            # The peer vanished mid-send; the read loop sees the disconnect and cleans up.
            self._machine.close()
