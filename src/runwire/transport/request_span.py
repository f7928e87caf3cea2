"""A span for each HTTP request, named by its route (``GET /api/runs/{run_id}``), continuing the
caller's trace when the request carries a W3C ``traceparent``. Nothing at all when no trace is
recorded. The query string is never recorded: a WebSocket ticket travels there."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runwire.telemetry.traces import SpanKind, Tracing

__all__ = ["RequestSpanMiddleware"]


class RequestSpanMiddleware:
    """A plain ASGI middleware: the handler runs inside the span, in the request's own task."""

    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self._app = app
        self._tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracing = self._tracing
        if scope["type"] != "http" or not tracing.enabled:
            await self._app(scope, receive, send)
            return
        method = scope["method"]
        traceparent = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"traceparent"), None
        )
        attributes = {"http.request.method": method, "url.path": scope["path"]}
        with tracing.span(
            f"HTTP {method}", attributes, kind=SpanKind.SERVER, parent=tracing.extract(traceparent)
        ) as span:

            async def send_status(message: Message) -> None:
                if message["type"] == "http.response.start" and span is not None:
                    status = message["status"]
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        Tracing.failed(span, f"HTTP {status}")
                await send(message)

            try:
                await self._app(scope, receive, send_status)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if span is not None and isinstance(route, str):
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
