"""What an operator watches: the gauges read at each scrape, what /ready checks besides the
database, and the listener of RUNWIRE_METRICS_PORT.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AbstractAsyncContextManager, nullcontext

from runwire.bus.base import EventBus
from runwire.config import Settings
from runwire.readiness import BusProbe, LLMProbe, Probe
from runwire.runs.event_writer import EventWriter
from runwire.runs.executor import RunExecutor
from runwire.telemetry.metrics import Metrics
from runwire.transport.scrape import MetricsListener

__all__ = ["build_metrics_listener", "build_probes", "read_gauges"]

log = logging.getLogger(__name__)


def read_gauges(
    metrics: Metrics, bus: EventBus, executor: RunExecutor, writer: EventWriter
) -> None:
    """The gauges, read from the parts that hold them at each scrape. Each returns to its
    baseline when clients leave and runs end (the leak tests read them)."""
    metrics.read(
        "runwire_connections",
        "Open connections on this node that receive run events (WebSockets and SSE streams).",
        bus.subscriber_count,
    )
    metrics.read(
        "runwire_runs_active", "Runs executing on this node.", lambda: executor.active_count
    )
    metrics.read(
        "runwire_bus_backlog",
        "Event bus writes queued for Redis and not sent yet (0 with the in-process bus).",
        lambda: bus.backlog,
    )
    metrics.read(
        "runwire_bus_held_runs",
        "Runs whose events this node's bus holds (active runs, until their events are stored).",
        lambda: bus.held_runs,
    )
    metrics.read(
        "runwire_store_backlog_events",
        "Run events waiting to be stored.",
        lambda: writer.backlog,
    )
    metrics.read(
        "runwire_asyncio_tasks", "Tasks on the event loop.", lambda: len(asyncio.all_tasks())
    )


def build_probes(settings: Settings, bus: EventBus) -> list[Probe]:
    """What /ready checks besides the database: Redis and the LLM endpoint, when configured."""
    probes: list[Probe] = []
    if settings.redis_url is not None:
        probes.append(BusProbe(bus))
    llm = LLMProbe.configured(settings)
    if llm is not None:
        probes.append(llm)
    return probes


def build_metrics_listener(
    settings: Settings, metrics: Metrics
) -> AbstractAsyncContextManager[MetricsListener | None]:
    """The listener of RUNWIRE_METRICS_PORT, or nothing."""
    if settings.metrics_port is None:
        if settings.metrics and settings.is_production and settings.metrics_token is None:
            log.info(
                "/metrics is off: in production set RUNWIRE_METRICS_TOKEN or RUNWIRE_METRICS_PORT"
            )
        return nullcontext(None)
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    return MetricsListener(
        metrics,
        host=settings.metrics_host or settings.host,
        port=settings.metrics_port,
        token=token,
    ).running()
