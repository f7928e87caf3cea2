"""Traces: OpenTelemetry spans of what a message sets off, exported over OTLP when asked for.

One trace follows a message from the socket to its run's last event: the WebSocket message's
span, the run's (a child of the message's, on whichever node executes the run: the run queue
carries the W3C ``traceparent`` with the job), each agent's and each tool call's. HTTP requests
get a span each too, continuing a caller's trace when the request carries a ``traceparent``.

Each app instance owns a :class:`Tracing` with a tracer provider of its own (never the global
one). With no exporter (``OTEL_EXPORTER_OTLP_ENDPOINT`` unset), :meth:`Tracing.span` hands back
one shared do-nothing context manager: tracing then costs a method call per span, nothing per
event, and the OTLP exporter is never imported.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:  # the SDK is imported only when spans are recorded
    from opentelemetry.sdk.trace import SpanProcessor

__all__ = ["SpanKind", "Tracing", "otlp_processor"]

_NOTHING: contextlib.nullcontext[None] = contextlib.nullcontext()
_PROPAGATOR = TraceContextTextMapPropagator()  # W3C traceparent; stateless
_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"  # the traces' own URL, whole


def otlp_processor(endpoint: str) -> Callable[[], SpanProcessor]:
    """What makes a processor that batches spans and sends them over OTLP/HTTP to the collector
    at ``endpoint`` (``Settings.otlp_endpoint``): to its ``/v1/traces``, or to
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` if that is set, as OpenTelemetry's own variables
    would. The endpoint is handed to the exporter: left to read it from the environment, it
    ignored an endpoint given to :class:`~runwire.config.Settings` as a keyword. The other
    ``OTEL_EXPORTER_OTLP_*`` variables (headers, timeout, compression) it still reads itself."""

    def make() -> SpanProcessor:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        url = os.environ.get(_TRACES_ENDPOINT) or f"{endpoint.removesuffix('/')}/v1/traces"
        return BatchSpanProcessor(OTLPSpanExporter(endpoint=url))

    return make


class Tracing:
    """The spans of one app instance, or none.

    ``processor`` makes the span processor when :meth:`running` starts (a batch processor starts
    a thread: not before); None records nothing. Spans started before :meth:`running` or after
    it are not recorded.
    """

    def __init__(self, processor: Callable[[], SpanProcessor] | None = None) -> None:
        self._processor = processor
        self._tracer: Tracer | None = None

    @property
    def enabled(self) -> bool:
        """Whether spans are recorded now."""
        return self._tracer is not None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Tracing]:
        """Record spans until the block ends; then send what is left and stop the processor."""
        if self._processor is None:
            yield self
            return
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider

        # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; runwire is the
        # name unless they give one.
        resource = Resource.create()
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: "runwire"}))
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(self._processor())
        self._tracer = provider.get_tracer("runwire")
        try:
            yield self
        finally:
            self._tracer = None
            provider.shutdown()

    def span(
        self,
        name: str,
        attributes: Mapping[str, str | int | float | bool] | None = None,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        parent: Context | None = None,
    ) -> contextlib.AbstractContextManager[Span | None]:
        """A span named ``name``, current within the block (None: not recording). An exception
        leaving the block marks it failed. ``parent``: a context from :meth:`extract` instead of
        the current one."""
        tracer = self._tracer
        if tracer is None:
            return _NOTHING
        return tracer.start_as_current_span(
            name, context=parent, kind=kind, attributes=dict(attributes) if attributes else None
        )

    def carrier(self) -> str:
        """The current span as a W3C ``traceparent`` value, to start a span elsewhere under it
        (another node); "" when nothing is recorded."""
        if self._tracer is None:
            return ""
        headers: dict[str, str] = {}
        _PROPAGATOR.inject(headers)
        return headers.get("traceparent", "")

    def extract(self, traceparent: str | None) -> Context | None:
        """The context a :meth:`carrier` value (or an incoming ``traceparent`` header) names;
        None when there is none or it does not parse."""
        if self._tracer is None or not traceparent:
            return None
        context = _PROPAGATOR.extract({"traceparent": traceparent})
        span_context = trace.get_current_span(context).get_span_context()
        return context if span_context.is_valid else None

    @staticmethod
    def current_trace_id() -> str | None:
        """The current span's trace id (32 hex digits), for log lines; None outside a span."""
        span_context = trace.get_current_span().get_span_context()
        return format(span_context.trace_id, "032x") if span_context.is_valid else None

    @staticmethod
    def failed(span: Span | None, reason: str) -> None:
        """Mark ``span`` (from :meth:`span`) failed without an exception (a refused message)."""
        if span is not None:
            span.set_status(Status(StatusCode.ERROR, reason))

    @staticmethod
    def annotate(span: Span | None, **attributes: Any) -> None:
        """Add attributes learnt after the span started (a status, a route)."""
        if span is not None:
            span.set_attributes(attributes)
