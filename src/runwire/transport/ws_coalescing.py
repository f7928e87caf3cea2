"""The ASGI WebSocket path (``RUNWIRE_WS_PATH=asgi``): uvicorn's sans-I/O implementation, coalescing.

ASGI sends one WebSocket message per ``send`` call, and uvicorn writes each to the socket at
once: one system call per event, which was the largest single cost of delivering a run's
events (a quarter of the server's time in our profiles). This subclass keeps the frames sent
during one turn of the event loop and writes them together at the end of that turn, so a burst
of events costs one write; a lone event still leaves within the same turn (no added latency
worth measuring). Everything else (handshake, close, keepalive pings) is uvicorn's own code.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

__all__ = ["CoalescingWebSocketProtocol"]


class CoalescingWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol with text/binary frames written once a turn."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list[bytes] = []
        self._flush_scheduled = False

    async def send(self, message: Any) -> None:
        if (
            message["type"] == "websocket.send"
            and self.handshake_complete
            and not self.close_sent
            and self.initial_response is None
        ):
            await self.writable.wait()
            if self.disconnected:
                raise ClientDisconnected()
            try:
                data = message.get("bytes")
                if data is not None:
                    self.conn.send_binary(data)
                else:
                    self.conn.send_text(message["text"].encode())
            except InvalidState:
                raise ClientDisconnected() from None
            self._pending.extend(self.conn.data_to_send())
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self.loop.call_soon(self._flush)
            return
        # Anything else (accept, close, denial): what was queued goes first, in order.
        self._flush()
        await super().send(message)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._pending and not self.transport.is_closing():
            self.transport.write(b"".join(self._pending))
        self._pending.clear()
