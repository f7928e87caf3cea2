"""How a run ends: its closing events, its end recorded, then its last event published.

The executor hands each run's end here, whichever way it comes: the agent's answer
(:meth:`RunCloser.close` with ``agent_completed``), or an early end (:meth:`RunCloser.end_early`:
a timeout, an error, a stop, a shutdown, or a run no node runs any more), which first closes what
the run left open and keeps the text already streamed as a partial reply.
"""

from __future__ import annotations

import logging
import time

from runwire.domain.clock import now_ms
from runwire.domain.run_status import RunStatus
from runwire.errors import LeaseLost
from runwire.events.model import EventDraft, EventType
from runwire.runs.active_run import ActiveRun
from runwire.runs.journal import ROOT_AGENT
from runwire.runs.run_input import RunInput
from runwire.store.records import Message
from runwire.store.run_log import RunLog
from runwire.telemetry.metrics import Metrics

__all__ = ["RunCloser"]

log = logging.getLogger(__name__)


class RunCloser:
    """Ends the runs of one executor: records each end in ``runs`` and counts it in ``metrics``
    (with the time to each run's first event)."""

    def __init__(self, runs: RunLog, metrics: Metrics | None) -> None:
        self._runs = runs
        self._metrics = metrics

    async def end_early(self, active: ActiveRun, kind: EventType, code: str, message: str) -> None:
        run, journal = active.input, active.journal
        if journal.closed:
            return
        if journal.last_seq == 0:  # stopped before it started: the root opens before it closes
            await journal.emit(EventDraft(EventType.AGENT_STARTED, ROOT_AGENT))
            self.first_event(run)
        await journal.close_open(code, message)
        data: dict[str, object] = {"code": code, "message": message}
        reply = None
        if journal.text:
            # What the user already watched stream in is kept, marked as cut short.
            reply = active.reply(journal.text, partial=True)
            data["partial_message_id"] = reply.id
        status = RunStatus.CANCELLED if kind is EventType.AGENT_STOPPED else RunStatus.FAILED
        error = (code, message) if status is RunStatus.FAILED else None
        await self.close(active, EventDraft(kind, ROOT_AGENT, data), status, error, reply)

    async def close(
        self,
        active: ActiveRun,
        last: EventDraft,
        status: RunStatus,
        error: tuple[str, str] | None = None,
        reply: Message | None = None,
    ) -> None:
        """Record the run's end (and its reply), then publish its last event: whoever sees that
        event and asks finds the run ended and the reply stored (the events themselves are
        served from the bus's history until they are stored)."""
        if not await active.journal.holds():
            raise LeaseLost(f"run {active.input.run_id} is no longer this node's")
        active.decide_end(status)
        if self._metrics is not None:
            self._metrics.runs.labels(status.value).inc()
            if active.started_at is not None:
                self._metrics.run_duration.observe(max(0, now_ms() - active.started_at) / 1000)
        try:
            active.following = await self._runs.finish(
                active.input.run_id,
                status.value,
                last_seq=active.journal.last_seq + 1,
                started_at=active.started_at,
                error_code=error[0] if error else None,
                error_message=error[1] if error else None,
                reply=reply,
                thread_id=active.input.thread_id,
                quality=active.input.keeps.quality,
            )
        except Exception:
            # The watchers still get the run's last event; the stored row says what it can.
            log.exception("could not record the end of run %s", active.input.run_id)
        await active.journal.emit(last)

    def first_event(self, run: RunInput) -> None:
        if self._metrics is not None and run.accepted_at is not None:
            self._metrics.first_event.observe(max(0.0, time.time() - run.accepted_at))
