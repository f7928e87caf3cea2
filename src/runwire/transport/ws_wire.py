"""What the ``/ws`` adapter writes on the wire itself, beside the ``websockets`` sans-I/O core.

A run event's text frame is framed here, a header before the payload as it is (RFC 6455 5.2:
servers do not mask): through the core it would cost a copy and most of the cost per event.
A refused handshake is answered with an HTTP response and a JSON body, never a socket accepted
only to be closed. Control frames (pong, close) and the 101 response still come from the core,
whose log goes through :class:`CoreLog`.
"""

from __future__ import annotations

import email.utils
import logging
import struct
from http import HTTPStatus

from websockets.datastructures import Headers
from websockets.http11 import Response

__all__ = ["CoreLog", "refusal", "text_header"]

_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")
_HEADERS_7 = tuple(bytes((0x81, size)) for size in range(126))  # a short text frame's, by size


def text_header(size: int) -> bytes:
    """A final text frame's header for a payload of ``size`` bytes."""
    if size < 126:
        return _HEADERS_7[size]
    if size < 65536:
        return _HEADER_16.pack(0x81, 126, size)
    return _HEADER_64.pack(0x81, 127, size)


def refusal(status: int, body: bytes) -> Response:
    """The HTTP answer refusing a handshake with ``status`` and a JSON ``body``; the connection
    closes after it."""
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
        ]
    )
    return Response(status, HTTPStatus(status).phrase, headers, body)


class CoreLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The sans-I/O core's log without its debug lines, whatever the level: they print every
    request header (a bearer token), the handshake's URL (a ticket) and every frame."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and super().isEnabledFor(level)
