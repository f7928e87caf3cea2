"""Server-sent events: ``GET /api/runs/{id}/events`` with ``Accept: text/event-stream``.

The stream is a resume over HTTP. It subscribes to the user's live events *before* it reads the
run's history and merges the two through a :class:`~runwire.protocol.delivery.Delivery`, as a
WebSocket ``resume`` does, so racing a live run leaves no gap and sends no seq twice. It sends the
held or stored events after the position, then live ones until the run's last event, and ends.
Each event's SSE ``id`` is ``<epoch>:<seq>``, so a browser reconnecting with ``Last-Event-ID``
names its whole position, and a position from an older epoch is refused, not misread. A stream
whose session ends (a logout, on any node) ends at once; the reconnect is refused with 401.

The same stream carries ``POST /ag-ui``'s answer: a :class:`Framing` decides how each event is
written (runwire's JSON here, AG-UI's events there) and what a stream cut short says.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol

from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from runwire.bus.base import EventBus, Subscription
from runwire.chat import ChatService
from runwire.errors import InputError
from runwire.events.model import MAX_SEQ, RunEvent
from runwire.protocol.delivery import Delivery
from runwire.revocations.base import Revocations, Watch
from runwire.telemetry.metrics import Metrics

__all__ = [
    "KEEPALIVE",
    "MEDIA_TYPE",
    "EventStream",
    "Framing",
    "RunwireFraming",
    "parse_last_event_id",
    "sse_frame",
    "wants_event_stream",
]

log = logging.getLogger(__name__)

MEDIA_TYPE = "text/event-stream"
KEEPALIVE = ": keep-alive\n\n"
"""An SSE comment: clients ignore it; it keeps proxies from closing a quiet stream."""
MAX_LAST_EVENT_ID_CHARS = 120


def wants_event_stream(accept: str | None) -> bool:
    """True when the ``Accept`` header lists ``text/event-stream`` (parameters ignored)."""
    if not accept:
        return False
    return any(part.split(";", 1)[0].strip().lower() == MEDIA_TYPE for part in accept.split(","))


def parse_last_event_id(value: str) -> tuple[str, int]:
    """``(epoch, seq)`` from a ``Last-Event-ID`` this server sent (``<epoch>:<seq>``)."""
    epoch, colon, seq = value.strip().rpartition(":")
    if (
        len(value) > MAX_LAST_EVENT_ID_CHARS
        or not colon
        or not epoch
        or not (seq.isascii() and seq.isdigit())
        or int(seq) > MAX_SEQ
    ):
        raise InputError("Last-Event-ID must be the id of an event this stream sent: <epoch>:<seq>")
    return epoch, int(seq)


def sse_frame(event: RunEvent) -> str:
    """One SSE message: ``id: <epoch>:<seq>`` and the event's wire JSON (one line) as data."""
    return f"id: {event.epoch}:{event.seq}\ndata: {event.json}\n\n"


class Framing(Protocol):
    """How a stream writes a run's events: runwire's own SSE messages, or another protocol's."""

    def frame(self, event: RunEvent) -> str:
        """One event, as the SSE message(s) of this protocol."""

    def cut(self) -> str:
        """What the stream writes when it ends before the run's last event ("" for nothing)."""


class RunwireFraming:
    """runwire's own stream: each event as one SSE message (:func:`sse_frame`), nothing else."""

    def frame(self, event: RunEvent) -> str:
        return sse_frame(event)

    def cut(self) -> str:
        return ""


class _EventStreamResponse(StreamingResponse):
    """A streaming response that releases the stream's bus subscription however it ends
    (the run ended, the client went away, the server cancelled the request)."""

    def __init__(
        self, frames: AsyncIterator[str], subscription: Subscription, watch: Watch
    ) -> None:
        super().__init__(
            frames,
            media_type=MEDIA_TYPE,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self._subscription = subscription
        self._watch = watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._subscription.close()
            self._watch.close()


class EventStream:
    """One client's SSE stream of one run, from a position to the run's last event."""

    def __init__(
        self,
        *,
        bus: EventBus,
        chat: ChatService,
        user_id: str,
        run_id: str,
        revocations: Revocations,
        session_id: str,
        keepalive_s: float,
        max_pending_bytes: int,
        metrics: Metrics | None = None,
        framing: Framing | None = None,
    ) -> None:
        self._bus = bus
        self._framing = framing or RunwireFraming()
        self._counted = metrics if metrics is not None and metrics.count_events else None
        self._chat = chat
        self._user_id = user_id
        self._run_id = run_id
        self._revocations = revocations
        self._session_id = session_id
        self._ended = False  # the caller's session ended (a logout, on any node)
        self._keepalive_s = keepalive_s
        self._max_pending_bytes = max_pending_bytes
        self._delivery = Delivery()
        self._pending: deque[RunEvent] = deque()
        self._pending_bytes = 0
        self._wake = asyncio.Event()
        self._overflow = False
        self._gap = False
        self._renumbered = False  # the run was renumbered: nothing more of it goes out here

    async def open(self, after_seq: int, epoch: str | None) -> Response:
        """Subscribe, read the replay, and answer: the stream, ``204`` when the run has ended
        and the client has all of it, or (raised before anything is sent) a refusal."""
        self._delivery.begin_resume(self._run_id, after_seq, epoch)
        subscription = await self._bus.subscribe(self._user_id, self._on_event, self._on_gap)
        watch = self._revocations.watch(self._session_id, self._on_session_ended)
        try:
            replay = await self._chat.replay(self._user_id, self._run_id, after_seq, epoch)
        except BaseException:
            subscription.close()
            watch.close()
            raise
        first = self._delivery.finish_resume(self._run_id, replay.events)
        for at, event in enumerate(first):
            if self._delivery.renumbered(event):
                # Live events that raced the read are of a new numbering: the stream ends before
                # them, and its reconnect, under the old epoch, is refused.
                first = first[:at]
                self._renumbered = self._gap = True
                break
        if replay.finished and not first:
            # Nothing will follow. 204 also tells a browser's EventSource to stop reconnecting.
            subscription.close()
            watch.close()
            return Response(status_code=204)
        frames = self._frames(first, subscription, watch, ended=replay.finished)
        return _EventStreamResponse(frames, subscription, watch)

    def _on_event(self, event: RunEvent) -> None:
        if event.run_id != self._run_id or self._overflow or self._renumbered:
            return
        for ready in self._delivery.live(event):
            if self._delivery.renumbered(ready):
                # Renumbered under a new epoch: end the stream, sending nothing of the new
                # numbering; the reconnect (Last-Event-ID under the old epoch) is refused with
                # reload_required before any event.
                self._renumbered = self._gap = True
                break
            self._pending_bytes += len(ready.wire)
            if self._pending_bytes > self._max_pending_bytes:
                # The client reads slower than the run writes: end the stream rather than hold
                # an unbounded backlog; it reconnects with Last-Event-ID and loses nothing.
                self._overflow = True
                break
            self._pending.append(ready)
        self._wake.set()

    def _on_gap(self) -> None:
        # Live events may have been lost on the way here: end the stream; the browser
        # reconnects with Last-Event-ID and the replay fills the hole.
        self._gap = True
        self._wake.set()

    def _on_session_ended(self) -> None:
        self._ended = True
        self._wake.set()

    def _count(self) -> None:
        if self._counted is not None:
            self._counted.events_delivered += 1

    async def _frames(
        self, first: list[RunEvent], subscription: Subscription, watch: Watch, *, ended: bool
    ) -> AsyncIterator[str]:
        framing = self._framing
        try:
            async for event in self._events(first, ended=ended):
                if event is None:
                    yield KEEPALIVE
                    continue
                self._count()
                frame = framing.frame(event)
                if frame:  # an AG-UI stream may have nothing to say of an event
                    yield frame
                if event.is_terminal:
                    return
            cut = framing.cut()  # the stream ends before the run's last event
            if cut:
                yield cut
        finally:
            subscription.close()
            watch.close()

    async def _events(
        self, first: list[RunEvent], *, ended: bool
    ) -> AsyncIterator[RunEvent | None]:
        """The events to send, in order, up to the run's last one or until the stream must end
        before it; None when a keep-alive is due."""
        for event in first:
            if self._ended:
                return
            yield event
            if event.is_terminal:
                return
        if ended:  # the replay reached the run's recorded end: nothing can follow
            return
        while True:
            while self._pending and not self._ended:
                event = self._pending.popleft()
                self._pending_bytes -= len(event.wire)
                yield event
                if event.is_terminal:
                    return
            if self._overflow:
                log.warning("SSE client of run %s is not reading; ending its stream", self._run_id)
                return
            if self._gap:
                log.warning("SSE stream of run %s may have missed events; ending it", self._run_id)
                return
            if self._ended:
                log.info("SSE stream of run %s: its session has ended", self._run_id)
                return
            self._wake.clear()
            try:
                async with asyncio.timeout(self._keepalive_s):
                    await self._wake.wait()
            except TimeoutError:
                yield None
