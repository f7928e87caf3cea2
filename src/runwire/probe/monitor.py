"""The probe as a monitor: walk the golden path every N seconds and serve the result as
Prometheus metrics, from a registry of its own (nothing of the process's global one)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from runwire.probe.report import Outcome, Report

__all__ = ["Metrics", "Monitor"]


class Metrics:
    """The last walk's health: ``runwire_check_success`` (1 or 0),
    ``runwire_check_step_seconds{step}`` (each step that ran) and
    ``runwire_check_last_success_timestamp_seconds`` (0 until a walk passes)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.success = Gauge(
            "runwire_check_success",
            "1 when the last walk of the golden path passed, 0 when it did not",
            registry=self.registry,
        )
        self.step_seconds = Gauge(
            "runwire_check_step_seconds",
            "How long each step of the last walk took (steps not run are absent)",
            ["step"],
            registry=self.registry,
        )
        self.last_success = Gauge(
            "runwire_check_last_success_timestamp_seconds",
            "When a walk of the golden path last passed, in seconds since the Unix epoch",
            registry=self.registry,
        )

    def record(self, report: Report, now: float) -> None:
        """Show ``report``, a walk that ended at ``now`` (Unix time)."""
        self.success.set(1 if report.outcome is Outcome.PASSED else 0)
        # A step the last walk did not run has no time: a stale one would mislead.
        self.step_seconds.clear()
        for step in report.steps:
            if step.ran:
                self.step_seconds.labels(step=step.name).set(step.seconds)
        if report.outcome is Outcome.PASSED:
            self.last_success.set(now)

    @asynccontextmanager
    async def served(self, host: str, port: int) -> AsyncIterator[int]:
        """Serve the metrics over HTTP on ``host:port`` (0: a free port) while the block runs;
        yields the port. An address that cannot be bound raises ``OSError``."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        try:
            yield int(server.server_port)
        finally:
            # shutdown() waits for the serving loop's next poll (up to half a second).
            await asyncio.to_thread(server.shutdown)
            server.server_close()
            thread.join()


class Monitor:
    """Walk every ``every`` seconds (start to start; at once when a walk took longer) until
    SIGINT or SIGTERM, or ``count`` walks when given. Each report goes to ``metrics`` (when
    given) and to ``on_report``."""

    def __init__(
        self,
        walk: Callable[[], Awaitable[Report]],
        *,
        every: float,
        count: int | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._walk = walk
        self._every = every
        self._count = count
        self._metrics = metrics
        self._clock = clock
        self._wall = wall

    async def run(self, on_report: Callable[[Report], None]) -> Outcome:
        """Walk until stopped; the outcome is the last walk's after ``count`` walks, and
        :attr:`Outcome.PASSED` when a signal stopped it (stopping is not a failure)."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        for signum in signals:
            loop.add_signal_handler(signum, stop.set)
        try:
            return await self._loop(stop, on_report)
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)

    async def _loop(self, stop: asyncio.Event, on_report: Callable[[Report], None]) -> Outcome:
        walks = 0
        while True:
            started = self._clock()
            walking = asyncio.ensure_future(self._walk())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({walking, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not walking.done():
                walking.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await walking
                return Outcome.PASSED
            report = walking.result()
            if self._metrics is not None:
                self._metrics.record(report, self._wall())
            on_report(report)
            walks += 1
            if self._count is not None and walks >= self._count:
                return report.outcome
            pause = max(0.0, self._every - (self._clock() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
                return Outcome.PASSED
