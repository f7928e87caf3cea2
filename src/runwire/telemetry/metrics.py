"""Metrics: what one server process measures about itself, for Prometheus to scrape.

Each app instance owns a :class:`Metrics` (built by app.py's factory) with a registry of its
own, never the library's global one: several apps in one process (the tests) never share a
count, and each worker process or node exposes its own figures, which Prometheus adds up.

What is counted where, and what it costs:

- An event delivered to a client adds 1 to a plain ``int`` (:attr:`Metrics.events_delivered`),
  read by the registry only when it is scraped: delivery is the hot path (tens of thousands of
  events a second), and a library counter (a lock and a method call per event) would cost more
  than the rest of the count's bookkeeping together. docs/benchmarks.md has the measured cost.
- Runs, errors and store writes happen a few times per run: those use the library's counters and
  histograms directly.
- Gauges (connections, active runs, backlogs) are read at scrape time from the parts that hold
  them (:meth:`Metrics.read`), so keeping them costs nothing between scrapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Prometheus's text exposition format, which :meth:`Metrics.exposition` writes."""

# Idle, the first event comes within a millisecond; under load, or queued behind the thread's
# previous run, it can take seconds.
_FIRST_EVENT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
# A run of the offline agents takes tenths of a second; with an LLM, up to the run timeout.
_RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
_WRITE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    """The measurements of one app instance, and the registry that exposes them.

    With ``count_events`` False, :attr:`events_delivered` is left alone by the delivery path
    (RUNWIRE_METRICS=false: the benchmark measures what counting costs against it).
    """

    def __init__(self, *, count_events: bool = True) -> None:
        self.registry = CollectorRegistry()
        self.count_events = count_events
        self.events_delivered = 0
        """Run events sent to clients (each socket or stream counts its own copy)."""
        registry = self.registry
        self.runs = Counter(
            "runwire_runs",
            "Runs that ended on this node, by how they ended (completed, failed, cancelled).",
            ["status"],
            registry=registry,
        )
        self.errors = Counter(
            "runwire_errors",
            "Errors sent to clients (WebSocket error frames, HTTP error bodies, refused "
            "handshakes), by their code.",
            ["code"],
            registry=registry,
        )
        self.first_event = Histogram(
            "runwire_first_event_seconds",
            "From a message accepted to the first event of its run.",
            buckets=_FIRST_EVENT_BUCKETS,
            registry=registry,
        )
        self.run_duration = Histogram(
            "runwire_run_duration_seconds",
            "From a run's start to its last event, for runs that ended on this node.",
            buckets=_RUN_BUCKETS,
            registry=registry,
        )
        self.store_write = Histogram(
            "runwire_store_write_seconds",
            "Database writes (a message accepted, a run ended, a batch of events), from queued "
            "to committed.",
            buckets=_WRITE_BUCKETS,
            registry=registry,
        )
        registry.register(_Delivered(self))
        self._gauges: dict[str, Gauge] = {}
        ProcessCollector(registry=registry)
        GCCollector(registry=registry)

    def read(self, name: str, documentation: str, reading: Callable[[], float]) -> None:
        """Expose the gauge ``name``, read by calling ``reading`` at each scrape. Reading it
        again later (the app started once more) replaces the reading."""
        gauge = self._gauges.get(name)
        if gauge is None:
            gauge = self._gauges[name] = Gauge(name, documentation, registry=self.registry)
        gauge.set_function(reading)

    def exposition(self) -> bytes:
        """Everything measured, in Prometheus's text format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)


class _Delivered(Collector):
    """``runwire_events_delivered_total``, read from the plain counter at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily(
            "runwire_events_delivered",
            "Run events sent to clients (each WebSocket or SSE stream counts its own copy).",
            value=self._metrics.events_delivered,
        )
