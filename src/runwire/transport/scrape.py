"""``GET /metrics``: the app's measurements for Prometheus, on the app's port or a port of its own.

Who may scrape (docs/operating.md has the table):

- On the app's port when ``Settings.metrics_on_app``: open outside production; behind
  ``Authorization: Bearer $RUNWIRE_METRICS_TOKEN`` whenever a token is set (in production it must
  be). Otherwise the path answers 404 exactly as an unknown path does.
- With ``RUNWIRE_METRICS_PORT``, a second listener (:class:`MetricsListener`) serves ``/metrics``
  and nothing else, behind the token too when one is set; the app's port then has no /metrics.

A wrong or missing token is 401 (not 404): the path of a known program is no secret, and a
scraper set up with a stale token should be told so. Tokens are compared in constant time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from runwire.errors import AuthError
from runwire.telemetry.metrics import CONTENT_TYPE, Metrics
from runwire.transport.errors import error_responses
from runwire.transport.principal import bearer_token
from runwire.transport.services import services_of

__all__ = ["MetricsListener", "authorized", "router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

_HEAD_LIMIT = 8 * 1024  # a scrape's request head is a few hundred bytes
_READ_TIMEOUT_S = 10.0  # a client that sends no complete request head in time is dropped


def authorized(authorization: str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header value passes: always when no token is set; otherwise
    only ``Bearer <token>``, compared in constant time."""
    if token is None:
        return True
    given = bearer_token(authorization)
    if given is None:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


@router.get(
    "/metrics",
    summary="Prometheus metrics (text format); see docs/operating.md for who may read them",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE: {}}},
        **error_responses(
            401,
            descriptions={
                401: "`RUNWIRE_METRICS_TOKEN` is set and was not given (`unauthorized`)."
            },
        ),
    },
)
async def metrics(request: Request) -> Response:
    services = services_of(request)
    settings = services.settings
    if not settings.metrics_on_app:
        raise StarletteHTTPException(404, "Not Found")  # as any path the app does not have
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if not authorized(request.headers.get("authorization"), token):
        raise AuthError("metrics need Authorization: Bearer <RUNWIRE_METRICS_TOKEN>")
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE)


class MetricsListener:
    """A second HTTP listener that answers ``GET /metrics`` only (one request per connection).

    It runs on the app's event loop, so a scrape reads the gauges where they live. Nothing
    listens until :meth:`running`; :attr:`port` is the port bound (useful with port 0).
    """

    def __init__(self, metrics: Metrics, *, host: str, port: int, token: str | None) -> None:
        self._metrics = metrics
        self._host = host
        self._token = token
        self.port = port
        self._handlers: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[MetricsListener]:
        server = await asyncio.start_server(self._serve, self._host, self.port, limit=_HEAD_LIMIT)
        self.port = int(server.sockets[0].getsockname()[1])
        log.info("metrics on http://%s:%d/metrics", self._host, self.port)
        try:
            yield self
        finally:
            server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            status, body, content_type, extra = await self._answer(reader)
            head = [
                f"HTTP/1.1 {status}",
                f"Content-Type: {content_type}",
                f"Content-Length: {len(body)}",
                "Connection: close",
                *extra,
            ]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[str, bytes, str, list[str]]:
        try:
            async with asyncio.timeout(_READ_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
        except (TimeoutError, asyncio.LimitOverrunError):
            return _plain("400 Bad Request", "send one complete HTTP request head")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return _plain("400 Bad Request", "not an HTTP/1.x request")
        method, target = parts[0], parts[1]
        if target.partition("?")[0] != "/metrics":
            return _plain("404 Not Found", "this port serves /metrics only")
        if method != "GET":
            return _plain("405 Method Not Allowed", "use GET", ["Allow: GET"])
        authorization = next(
            (
                value.strip()
                for name, _, value in (line.partition(":") for line in lines[1:])
                if name.strip().lower() == "authorization"
            ),
            None,
        )
        if not authorized(authorization, self._token):
            return _plain(
                "401 Unauthorized",
                "metrics need Authorization: Bearer <RUNWIRE_METRICS_TOKEN>",
                ["WWW-Authenticate: Bearer"],
            )
        return "200 OK", self._metrics.exposition(), CONTENT_TYPE, []


def _plain(
    status: str, message: str, extra: list[str] | None = None
) -> tuple[str, bytes, str, list[str]]:
    return status, (message + "\n").encode(), "text/plain; charset=utf-8", extra or []
