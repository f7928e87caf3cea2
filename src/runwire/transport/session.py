"""One authenticated WebSocket session: what runwire says and does on ``/ws``, whatever carries it.

A :class:`Session` owns the connection's state machine, its bus subscription and its
per-connection delivery state; it turns inbound frames into commands (through one router table)
and run events into outbound frames. It does not own the socket: an adapter feeds it frames
(:meth:`Session.handle`) and gives it an :class:`~runwire.transport.outlet.Outlet` to write to.
There are two adapters, the direct protocol under ``runwire serve`` (``ws_protocol.py``) and the
ASGI endpoint (``websocket.py``), so both speak exactly the same protocol.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from runwire.auth.service import Principal
from runwire.bus.base import Subscription
from runwire.connections.base import Seat
from runwire.errors import PayloadTooLarge, RateLimited, ReloadReason, ReloadRequired, RunwireError
from runwire.events.model import RunEvent
from runwire.limits.buckets import Bucket, Rate
from runwire.protocol.connection import ConnectionState, ConnectionStateMachine
from runwire.protocol.delivery import Delivery
from runwire.protocol.inbound import (
    GetQualityMetrics,
    GetThreadHistory,
    Ping,
    Resume,
    StopAgent,
    UserMessage,
    ValidateContent,
    parse_frame,
    request_id_of,
)
from runwire.revocations.base import Watch
from runwire.telemetry.logs import log_context
from runwire.telemetry.traces import SpanKind, Tracing
from runwire.transport.errors import CLOSE_CODES
from runwire.transport.outlet import Outlet
from runwire.transport.services import Services

__all__ = ["Session"]

log = logging.getLogger(__name__)


_INTERNAL = {
    "type": "error",
    "code": "internal",
    "message": "the server failed to handle this message; it was logged",
}


_WIRE_TYPES: dict[type[Any], str] = {
    UserMessage: "user_message",
    StopAgent: "stop_agent",
    Resume: "resume",
    GetThreadHistory: "get_thread_history",
    Ping: "ping",
    GetQualityMetrics: "get_quality_metrics",
    ValidateContent: "validate_content",
}
"""Each command's ``type`` on the wire (docs/protocol.md), to name its span and log line."""


def encode(body: dict[str, Any]) -> str:
    return orjson.dumps(body).decode()


class Session:
    """The protocol of one open socket, from ``connection_established`` to its release."""

    def __init__(
        self, principal: Principal, services: Services, outlet: Outlet, *, seat: Seat
    ) -> None:
        self.id = "conn_" + secrets.token_hex(8)
        self._principal = principal
        self._seat = seat  # its place in the user's connection cap, given back by release
        self._services = services
        self._outlet = outlet
        self._metrics = services.metrics
        self._tracing = services.tracing
        # None when events are not counted (RUNWIRE_METRICS=false): delivery is the hot path.
        self._counted = services.metrics if services.metrics.count_events else None
        settings = services.settings
        self._max_frame = settings.max_frame_bytes
        self._frames = Bucket(
            Rate(settings.ws_messages_per_second, settings.ws_message_burst), services.clock
        )
        self._machine = ConnectionStateMachine()
        self._delivery = Delivery()
        self._subscription: Subscription | None = None
        self._watch: Watch | None = None
        self._gap_before_open = False
        self._ended = False  # its session was revoked: nothing more is sent, the socket closes
        # Events that arrive between subscribing and opening: sent right after the greeting
        # (Delivery counts them as sent, so they must not be dropped).
        self._before_open: list[str | bytes] = []
        self._routes: dict[type[Any], Callable[[Any], Awaitable[None]]] = {
            UserMessage: self._on_user_message,
            StopAgent: self._on_stop,
            Resume: self._on_resume,
            GetThreadHistory: self._on_history,
            Ping: self._on_ping,
            GetQualityMetrics: self._on_quality_metrics,
            ValidateContent: self._on_validate_content,
        }

    @property
    def user_id(self) -> str:
        return self._principal.user_id

    @property
    def is_open(self) -> bool:
        return self._machine.is_open

    async def subscribe(self) -> None:
        """Subscribe to the user's runs, before the socket is accepted: the client's first frame
        (a ``resume``, say) then finds live delivery in effect, so nothing falls between the
        two."""
        self._subscription = await self._services.bus.subscribe(
            self.user_id, self._on_event, self._on_gap, self._on_events
        )
        # Watched after the handshake's check: a session revoked in between is caught here.
        self._watch = self._services.revocations.watch(
            self._principal.family_id, self._on_session_ended
        )

    def open(self) -> None:
        """The socket is accepted: greet the client."""
        self._machine.move(ConnectionState.OPEN)
        if self._ended:
            self._close_ended()
            return
        self._send(
            {"type": "connection_established", "connection_id": self.id, "user_id": self.user_id}
        )
        early, self._before_open = self._before_open, []
        for frame in early:
            self._write(frame)
        if self._gap_before_open:
            self._on_gap()

    def release(self) -> None:
        """The socket is gone: stop receiving events, free its seat. Idempotent."""
        self._seat.release()
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        self._machine.end()

    def notify(self, body: dict[str, Any]) -> None:
        """Send a server notice (not a reply, not a run event) if the socket is open."""
        self._send(body)

    def close(self, code: int, reason: str, *, drop: bool = False) -> None:
        """Close the socket (once); ``drop`` discards frames still queued."""
        if self._machine.close():
            self._outlet.close(code, reason, drop=drop)

    async def handle(self, raw: str | bytes) -> None:
        """One inbound frame: parse it, route it, answer errors with an ``error`` frame."""
        if not self._machine.is_open:
            return
        with log_context(user_id=self.user_id, connection_id=self.id):
            await self._handle(raw)

    async def _handle(self, raw: str | bytes) -> None:
        allowed = self._frames.acquire()
        if not allowed.allowed:
            # Refused, not handled: the client is told to send it again, more slowly.
            text = raw if isinstance(raw, str) and len(raw) <= self._max_frame else ""
            limited = RateLimited(
                "too many messages on this connection", retry_after_s=allowed.retry_after_s
            )
            self._error(limited, request_id_of(text) if text else None)
            return
        try:
            command = parse_frame(raw, self._max_frame)
        except PayloadTooLarge as exc:
            self._error(exc, None)
            self.close(CLOSE_CODES["too_big"], "frame too large")
            return
        except RunwireError as exc:
            text = raw if isinstance(raw, str) else ""
            self._error(exc, request_id_of(text) if len(text) <= self._max_frame else None)
            return
        except Exception:
            # A parser bug must cost one frame its answer, not the connection its reader.
            log.exception("could not parse a frame")
            self._send(_INTERNAL)
            return
        kind = _WIRE_TYPES[type(command)]
        attributes = {"runwire.connection_id": self.id, "runwire.user_id": self.user_id}
        if command.request_id is not None:
            attributes["runwire.request_id"] = command.request_id
        with (
            log_context(request_id=command.request_id),
            self._tracing.span(f"ws {kind}", attributes, kind=SpanKind.SERVER) as span,
        ):
            log.debug("%s received", kind)
            try:
                await self._routes[type(command)](command)
            except RunwireError as exc:
                Tracing.failed(span, exc.code)
                self._error(exc, command.request_id)
            except Exception:
                log.exception("handler for %s failed", kind)
                Tracing.failed(span, "internal")
                self._reply(command.request_id, dict(_INTERNAL))

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
        self._delivery.begin_resume(cmd.run_id, cmd.after_seq, cmd.epoch)
        try:
            stored = await self._services.chat.events(
                self.user_id, cmd.run_id, cmd.after_seq, cmd.epoch
            )
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

    async def _on_quality_metrics(self, cmd: GetQualityMetrics) -> None:
        metrics = await self._services.chat.quality_metrics(self.user_id)
        self._reply(cmd.request_id, {"type": "quality_metrics", **metrics})

    async def _on_validate_content(self, cmd: ValidateContent) -> None:
        verdict = await self._services.chat.validate_content(self.user_id, cmd.run_id, cmd.content)
        self._reply(cmd.request_id, {"type": "content_validated", "run_id": cmd.run_id, **verdict})

    # -- outbound --

    def _on_event(self, event: RunEvent) -> None:
        for ready in self._delivery.live(event):
            self._send_event(ready)

    def _on_events(self, events: Sequence[RunEvent]) -> None:
        # A batch of one run's events published together (a streamed answer's chunks): one
        # delivery check, one count and one write for the batch; each is still its own frame.
        ready = self._delivery.live_batch(events)
        if not ready or ready[-1].is_terminal or not self._machine.is_open or self._ended:
            for event in ready:  # the rarer paths (a run's end, a closing socket): one by one
                self._send_event(event)
            return
        if self._delivery.renumbered(ready[0]):  # the batch is of one numbering
            self._error(
                ReloadRequired(ready[0].run_id, ReloadReason.EPOCH_CHANGED, ready[0].epoch), None
            )
        counted = self._counted
        if counted is not None:
            counted.events_delivered += len(ready)
        if not self._outlet.write_many([event.wire for event in ready]):
            self._not_reading()

    def _on_gap(self) -> None:
        # The bus may have lost events on their way here (its link to Redis dropped): the
        # client fills the hole with a resume on a new connection, which reads history.
        if self._machine.state is ConnectionState.ACCEPTING:
            self._gap_before_open = True  # closed as soon as it opens
            return
        log.warning("connection %s may have missed events; asking it to resume", self.id)
        self.close(CLOSE_CODES["resync"], "events may have been missed; reconnect and resume")

    def _on_session_ended(self) -> None:
        # Logged out, a refresh token reused, or the password changed (on any node): the
        # socket closes and carries nothing more. The user's runs go on.
        self._ended = True
        if self._machine.state is ConnectionState.ACCEPTING:
            return  # closed as soon as it opens
        self._close_ended()

    def _close_ended(self) -> None:
        log.info("connection %s: its session has ended; closing it", self.id)
        self.close(CLOSE_CODES["session_ended"], "session ended; sign in again", drop=True)

    def _send_event(self, event: RunEvent) -> None:
        if self._delivery.renumbered(event):
            # The run was ended by another node under a new epoch: what this client holds of it
            # (live or replayed) is void. It is told so; the new numbering's events follow.
            self._error(ReloadRequired(event.run_id, ReloadReason.EPOCH_CHANGED, event.epoch), None)
        counted = self._counted
        if counted is not None:
            counted.events_delivered += 1
        # A run's terminal event is never dropped, even by a cut for not reading: the client
        # learns how each run it was following ended (its answer included) before the close.
        self._write(event.wire, keep=event.is_terminal)

    def _reply(self, request_id: str | None, body: dict[str, Any]) -> None:
        if request_id is not None:
            body["request_id"] = request_id
        self._send(body)

    def _error(self, exc: RunwireError, request_id: str | None) -> None:
        body: dict[str, Any] = {"type": "error", "code": exc.code, "message": exc.message}
        body.update(exc.wire_fields())
        if isinstance(exc, RateLimited):
            # Milliseconds, in the field and in the message alike.
            body["message"] = exc.message_in_ms
            body["retry_after_ms"] = exc.retry_after_ms
        self._reply(request_id, body)

    def _send(self, body: dict[str, Any]) -> None:
        if body.get("type") == "error":
            self._metrics.errors.labels(body["code"]).inc()
        self._write(encode(body))

    def _write(self, frame: str | bytes, *, keep: bool = False) -> None:
        if self._ended:
            return
        if not self._machine.is_open:
            if self._machine.state is ConnectionState.ACCEPTING:
                self._before_open.append(frame)
            elif keep:
                self._outlet.write(frame, keep=True)  # before the close frame, if still in time
            return
        if not self._outlet.write(frame, keep=keep):
            self._not_reading()

    def _not_reading(self) -> None:
        # The client stopped reading. Its runs go on; it can reconnect and resume.
        log.warning("connection %s is not reading; closing it", self.id)
        self.close(CLOSE_CODES["slow_consumer"], "client too slow; reconnect and resume", drop=True)
