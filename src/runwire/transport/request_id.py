"""Each HTTP request's id: taken from ``X-Request-ID`` when a proxy sent a sane one, made here
otherwise, sent back in the response's ``X-Request-ID``, and set as the ``request_id`` of every
log line written while the request is handled (uvicorn's access line included)."""

from __future__ import annotations

import re
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runwire.telemetry.logs import log_context

__all__ = ["HEADER", "RequestIdMiddleware"]

HEADER = "x-request-id"
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # what may go into a log line as it came


class RequestIdMiddleware:
    """A plain ASGI middleware (no task of its own, so the handler's context is the request's)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == HEADER.encode()), b"")
        text = given.decode("latin-1")
        request_id = text if _SANE.fullmatch(text) else "req_" + secrets.token_hex(8)
        raw = request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (HEADER.encode(), raw)],
                }
            await send(message)

        with log_context(request_id=request_id):
            await self._app(scope, receive, send_with_id)
