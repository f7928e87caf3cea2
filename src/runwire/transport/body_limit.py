"""A cap on the size of every HTTP request body, checked before the app reads it.

The JSON endpoints (log in, sign up, refresh) take bodies of a few hundred bytes, and FastAPI
reads a body whole before validating it: without a cap a 30 MB login body was held in memory and
parsed before its 422. Here a body whose ``Content-Length`` is over the cap is refused before a
byte of it is read, and a body without one (chunked) is counted as it arrives and refused once
past the cap; no more than the cap is ever held. The refusal is ``413 too_large`` and closes the
connection, so the rest of the body is never read. Paths with a larger cap of their own (the
usage import, which reads its body as a stream) pass untouched; paths under a prefix with a
cap of its own (the API for services, whose messages may be as long as a WebSocket's; AG-UI's
``POST /ag-ui``, whose clients send their whole conversation) are held to that one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AGUI_BODY_BYTES", "MAX_BODY_BYTES", "SERVICE_BODY_BYTES", "BodyLimit"]

MAX_BODY_BYTES = 16 * 1024
"""The cap on a request body, except where a path has its own (docs/protocol.md, Limits). The
largest body a client needs is a sign-up with the longest password (1024 characters) escaped as
JSON escapes text outside the BMP, twelve bytes a character: about 12.4 KB."""

SERVICE_BODY_BYTES = 400 * 1024
"""The cap under ``/internal/``: a message of 32,000 characters (a WebSocket message's most)
escaped as JSON escapes text outside the BMP, twelve bytes a character, is about 384 KB."""


AGUI_BODY_BYTES = 2 * 1024 * 1024
"""The cap on ``POST /ag-ui``: an AG-UI client sends the whole conversation it holds with every
question (its answers, reasoning, tool calls and their results), though only the last question is
read. Each question on the sample data adds about 21 KB (measured with ``@ag-ui/client`` 1.0), so
2 MiB holds a thread of about 100 questions."""


class BodyLimit:
    """ASGI middleware: bodies over ``limit`` bytes are refused with 413, except on ``exempt``
    paths (which enforce their own cap) and under the path prefixes of ``prefixes``, each held
    to its own cap."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        exempt: Collection[str],
        prefixes: Mapping[str, int] | None = None,
    ) -> None:
        self._app = app
        self._limit = limit
        self._exempt = frozenset(exempt)
        self._prefixes = dict(prefixes or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._exempt:
            await self._app(scope, receive, send)
            return
        limit = next(
            (cap for prefix, cap in self._prefixes.items() if scope["path"].startswith(prefix)),
            self._limit,
        )
        if _declared_length(scope) > limit:
            await self._refuse(send, limit)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before its body ended: nobody to answer
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self._app(scope, _Replay(b"".join(chunks), receive), send)

    async def _refuse(self, send: Send, limit: int) -> None:
        body = orjson.dumps(
            {"detail": f"the body is larger than {limit} bytes", "code": "too_large"}
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    # The rest of the body is not read: the connection cannot carry a next request.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _Replay:
    """The ``receive`` the app gets: the body read already, then the connection's own messages
    (a disconnect, which streaming responses watch for)."""

    def __init__(self, body: bytes, receive: Receive) -> None:
        self._body: bytes | None = body
        self._receive = receive

    async def __call__(self) -> Message:
        if self._body is None:
            return await self._receive()
        body, self._body = self._body, None
        return {"type": "http.request", "body": body, "more_body": False}


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            # uvicorn's parser refuses a malformed one before the app sees it; the body is
            # counted as it comes in any case.
            return int(value) if value.isdigit() else 0
    return 0
