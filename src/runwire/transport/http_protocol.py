"""HTTP/1.1 on the socket for ``runwire serve``: uvicorn's httptools protocol with a deadline for
each request's head, and one for each pause in its body.

uvicorn bounds the idle time between requests of a kept-alive connection, and nothing else: a
connection that never sends a byte, or sends its head a byte at a time (slowloris), holds a
socket and its memory for as long as it likes. Here every head must be whole within
``RUNWIRE_HTTP_HEAD_TIMEOUT_S``, counted from the moment the connection is made (its first
request) or from the first byte after a response (the next one). A connection past it is closed;
one that had begun a head is told so first (``408``). The head of ``GET /ws`` is parsed here too
before the socket is handed to the WebSocket protocol, so the deadline covers both paths.

A body is bounded by its size (``body_limit.py``), not by how long it takes (a 20 MiB import on a
slow link takes a while), but a body that stops arriving would hold its connection, and the
request's task waiting for it, for ever: once the head is whole, a body that goes
``RUNWIRE_HTTP_BODY_TIMEOUT_S`` without a byte closes the connection, answered ``408`` if nothing
was answered yet. Time the server itself is not reading (uvicorn pauses a connection whose
request has more body buffered than the app took, or that pipelines behind an unanswered one)
does not count, nor does a client waiting for ``100 Continue``.

A refusal answered before its body was read (``413``, see ``body_limit.py``) ends with a
*lingering close*, as Apache and nginx end theirs: closing a socket with unread bytes makes the
kernel send a reset, and a reset can reach the client before the answer does, which then sees
"connection reset" instead of the 413. Instead the server half-closes (the client reads the
answer, then end of stream) and reads and drops what more the client sends, for up to
``LINGER_S`` or ``LINGER_BYTES``, whichever comes first, before it closes. (A TLS connection
served by uvicorn itself cannot half-close, and closes at once; behind a proxy that ends TLS,
as docs/scaling.md has it, the proxy's connection to runwire is plain and lingers.)
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["LINGER_BYTES", "LINGER_S", "RunwireHttpProtocol"]

LINGER_S = 2.0
"""How long a connection answered before its body was read keeps draining before it closes:
Apache's figure, long enough for a client that writes its whole body before it reads."""

LINGER_BYTES = 4 * 1024 * 1024
"""How much of an unread body a lingering connection drops before it closes regardless: the
drain is not a way to make the server read a body it refused."""


class RunwireHttpProtocol(HttpToolsProtocol):
    """One HTTP connection. uvicorn constructs it with its config and shared state; the deadline
    comes from the settings in the lifespan state (``app_state``), as the WebSocket protocol's
    limits do."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_timeout_s: float = app_state["services"].settings.http_head_timeout_s
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_begun = False
        self._in_message = False  # a request's head or body is still arriving
        self._body_timeout_s: float = app_state["services"].settings.http_body_timeout_s
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_seen = 0.0  # when a byte last arrived while a body was due
        self._linger_left = 0  # bytes a lingering close still drops; 0 when not lingering
        self._linger_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._linger_left:
            self._linger_left = max(0, self._linger_left - len(data))
            if not self._linger_left:
                self.transport.close()
            return
        # Between requests (before the first, or after a response) any byte starts the clock,
        # even bytes that begin no request (the empty lines a parser skips): uvicorn stops its
        # keep-alive timer on every byte, so otherwise they would hold the connection for ever.
        # The rest of a body answered early (a refusal before it was read) is not a head.
        idle = self.cycle is None or self.cycle.response_complete
        if self._head_timer is None and idle and not self._in_message:
            self._start_head_timer()
        super().data_received(data)
        if self._in_message and not self._head_begun:
            # A body is due: a head is whole and its message is not (checked after parsing:
            # a request without a body ends in the same call and costs no timer).
            self._body_seen = self.loop.time()
            if self._body_timer is None and self.transport.get_protocol() is self:
                self._body_timer = self.loop.call_later(self._body_timeout_s, self._body_check)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begun = self._in_message = True
        if self._head_timer is None:  # pipelined after a request that is still being answered
            self._start_head_timer()

    def on_headers_complete(self) -> None:
        self._head_begun = False
        self._stop_head_timer()
        before = self.cycle
        super().on_headers_complete()
        if self.cycle is not None and self.cycle is not before:
            # The request's cycle closes the connection after an answer that says so; it closes
            # through here, to linger when the request's body was not read whole.
            self.cycle.transport = cast("asyncio.Transport", _CycleTransport(self))

    def on_message_complete(self) -> None:
        self._in_message = False
        self._stop_body_timer()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        self._stop_body_timer()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        self._linger_left = 0
        super().connection_lost(exc)

    def close_after_answer(self) -> None:
        """Close the connection once an answer is written: at once when its request was read
        whole, else lingering (see the module's docstring)."""
        transport = self.transport
        if not self._in_message or transport.is_closing() or not transport.can_write_eof():
            transport.close()
            return
        self._stop_body_timer()
        self._linger_left = LINGER_BYTES
        transport.write_eof()
        transport.resume_reading()  # flow control may have paused it while the body was unread
        self._linger_timer = self.loop.call_later(LINGER_S, transport.close)

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self._head_timeout_s, self._head_expired)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _stop_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_check(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or not self._in_message:
            return
        now = self.loop.time()
        cycle = self.cycle
        waiting_for_us = self.flow.read_paused or (
            cycle is not None and cycle.waiting_for_100_continue and not cycle.response_started
        )
        if waiting_for_us:
            self._body_seen = now  # the server is not reading, or not yet asking for the body
        left = self._body_seen + self._body_timeout_s - now
        if left > 0:
            self._body_timer = self.loop.call_later(left, self._body_check)
            return
        if cycle is None or not cycle.response_started:
            detail = (
                f"the request's body stopped arriving: nothing came for {self._body_timeout_s:g} s"
            )
            self._write_408(detail)
        # The request's task, waiting for the rest of its body, is told the client has gone.
        self.transport.close()

    def _write_408(self, detail: str) -> None:
        body = orjson.dumps({"detail": detail, "code": "request_timeout"})
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._head_begun and not self.transport.is_closing():
            self._write_408(
                f"the request's head did not arrive whole within {self._head_timeout_s:g} s"
            )
        # A connection that has sent nothing is closed without a word, as an idle kept-alive
        # one is: a browser that opened it ahead of need opens another.
        self.transport.close()


class _CycleTransport:
    """The transport a request's cycle writes its answer to: the connection's own, but closed
    through :meth:`RunwireHttpProtocol.close_after_answer`."""

    def __init__(self, protocol: RunwireHttpProtocol) -> None:
        self._protocol = protocol
        self._transport = protocol.transport

    def close(self) -> None:
        self._protocol.close_after_answer()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
