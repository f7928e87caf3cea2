"""The ASGI adapter for ``/ws``: a :class:`Session` on a Starlette WebSocket.

``runwire serve`` answers ``/ws`` with its own protocol (``ws_protocol.py``) and never reaches
this route; it serves the app under any other ASGI server. Frames are read in one loop and
handed to the session one at a time; frames out go through a bounded queue drained by a writer
task, so one slow socket cannot stall delivery to anyone else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from runwire.background import stop
from runwire.protocol.outbound import OutboundLimit
from runwire.transport.errors import CLOSE_CODES
from runwire.transport.handshake import Denial, admit, credentials_of
from runwire.transport.services import services_of
from runwire.transport.session import Session

__all__ = ["websocket_endpoint"]

# Sentinel in the outbound queue (by identity): close after what is queued before it.
_CLOSE: tuple[str | bytes, bool] = ("", False)


async def websocket_endpoint(ws: WebSocket) -> None:
    services = services_of(ws)
    credentials = credentials_of(
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in ws.headers.raw
    )
    admitted = (
        credentials
        if isinstance(credentials, Denial)
        else await admit(services, credentials, ticket=ws.query_params.get("ticket"))
    )
    if isinstance(admitted, Denial):
        await ws.send_denial_response(
            Response(admitted.body(), admitted.status, media_type="application/json")
        )
        return
    outlet = _QueueOutlet(services.settings.outbound_buffer_bytes)
    session = Session(admitted.principal, services, outlet, seat=admitted.seat)
    try:
        await session.subscribe()
        await ws.accept()
    except BaseException:
        session.release()
        raise
    writer = asyncio.create_task(outlet.drain(ws), name=f"ws-writer-{session.id}")
    try:
        session.open()
        idle = services.settings.ws_idle_timeout_s
        while session.is_open:
            try:
                async with asyncio.timeout(idle):
                    message = await ws.receive()
            except TimeoutError:
                session.close(CLOSE_CODES["idle"], "idle timeout")
                break
            if message["type"] == "websocket.disconnect":
                break
            raw = message.get("text")
            await session.handle(raw if raw is not None else message.get("bytes") or b"")
    finally:
        session.release()
        outlet.close(CLOSE_CODES["normal"], "", drop=False)
        # The writer sends what is queued and the close frame; after a second it is stopped. A
        # cancellation of this handler (the server's shutdown) is not swallowed on the way.
        await asyncio.wait({writer}, timeout=1.0)
        await stop(writer)


class _QueueOutlet:
    """Frames waiting for the writer task, judged by an :class:`OutboundLimit` on what earlier
    turns of the event loop left queued (a turn's own frames are never refused for their size)."""

    def __init__(self, limit_bytes: int) -> None:
        self._queue: asyncio.Queue[tuple[str | bytes, bool]] = asyncio.Queue()  # (frame, keep)
        self._outbound = OutboundLimit(limit_bytes)
        self._queued_bytes = 0
        self._turn_bytes = 0  # queued during this turn of the loop, counted as one burst after it
        self._closing = False
        self._close_due = False  # the close is queued at the end of this turn
        self._code = CLOSE_CODES["normal"]
        self._reason = ""

    def write(self, frame: str | bytes, *, keep: bool = False) -> bool:
        if self._closing and not (keep and self._close_due):
            return True
        if not keep and not self._outbound.admits(self._queued_bytes - self._turn_bytes):
            return False
        if not self._turn_bytes:
            asyncio.get_running_loop().call_soon(self._end_turn)
        self._turn_bytes += len(frame)
        self._queued_bytes += len(frame)
        self._queue.put_nowait((frame, keep))
        return True

    def write_many(self, frames: Sequence[bytes]) -> bool:
        # The limit judges what earlier turns left queued, the same for every frame of this
        # turn: the first frame refused means none is queued.
        return all(self.write(frame) for frame in frames)

    def close(self, code: int, reason: str, *, drop: bool) -> None:
        if self._closing:
            return
        self._closing = self._close_due = True
        self._code, self._reason = code, reason
        if drop:
            # A stalled client gets no more frames but those kept (runs' ends), then the close;
            # resume recovers the rest.
            waiting = [self._queue.get_nowait() for _ in range(self._queue.qsize())]
            for frame, keep in waiting:
                if keep:
                    self._queue.put_nowait((frame, keep))
                else:
                    self._queued_bytes -= len(frame)
        asyncio.get_running_loop().call_soon(self._queue_close)

    def _queue_close(self) -> None:
        self._close_due = False
        self._queue.put_nowait(_CLOSE)

    def _end_turn(self) -> None:
        self._outbound.queued(self._turn_bytes)
        self._turn_bytes = 0

    async def drain(self, ws: WebSocket) -> None:
        try:
            while True:
                item = await self._queue.get()
                if item is _CLOSE:
                    await ws.close(self._code, self._reason)
                    return
                frame = item[0]
                self._queued_bytes -= len(frame)
                await ws.send_text(frame if isinstance(frame, str) else frame.decode())
        except (WebSocketDisconnect, RuntimeError, OSError):
            # The peer vanished mid-send; the read loop sees the disconnect and cleans up.
            self._closing = True
