"""The seam between a run and the agent that answers it: what the agent is given.

The executor (``runwire.runs.executor``) calls an :data:`AgentFn` with the run's
:class:`RunInput` and an :class:`Emit`, the run's journal, through which the agent's events
reach the run's watchers; the agent's answer is the run's reply. ``app.build_agent`` adapts
the supervisor to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from runwire.events.model import EventDraft, RunEvent

__all__ = ["AgentFn", "Emit", "RunInput", "RunKeeps"]


class Emit(Protocol):
    """How an agent hands its run the events it emits (the run's journal): ``await
    emit(draft)`` for one, ``await emit.emit_batch(drafts)`` for several ready at once (a
    streamed answer's chunks), each still its own event."""

    def __call__(self, draft: EventDraft, /) -> Awaitable[RunEvent]: ...

    def emit_batch(self, drafts: Sequence[EventDraft], /) -> Awaitable[list[RunEvent]]: ...


@dataclass(slots=True)
class RunKeeps:
    """What a run's agent hands over to be kept with the run's end: the quality gate's verdict,
    written in the statement that records the end rather than in a write of its own (on
    PostgreSQL a round trip and a commit; docs/decisions.md, "Session 14: pg2"). Whoever sees
    the run ended finds it stored. (What the run's model turns took is written at once: it was
    spent even if the run never ends here.)"""

    quality: dict[str, Any] | None = None  # the verdict, as ``RunLog.finish`` takes it

    async def keep_quality(self, verdict: dict[str, Any]) -> None:
        """An agent's ``keep_quality``: the verdict is kept with the run's end."""
        self.quality = verdict


@dataclass(frozen=True, slots=True)
class RunInput:
    run_id: str
    thread_id: str
    user_id: str
    question: str
    history: list[tuple[str, str]] = field(default_factory=list)
    epoch: str = field(kw_only=True)  # the run's epoch as stored with it; every event carries it
    # When its message was accepted (time.time(), seconds), for runwire_first_event_seconds.
    accepted_at: float | None = field(default=None, kw_only=True)
    # The W3C traceparent of the message that asked for it, when it came through the run queue
    # (a run started where it was accepted is inside the message's span already).
    trace: str = field(default="", kw_only=True)
    # The user's usage version as the run was stored and claimed in one transaction (its
    # message accepted here), or as its message was read when it was claimed later: its first
    # read of their data needs no read of the version. None: read then.
    usage_version: int | None = field(default=None, kw_only=True)
    # Filled in by the agent as it runs; read by the executor as it records the run's end.
    keeps: RunKeeps = field(default_factory=RunKeeps, kw_only=True, compare=False)


AgentFn = Callable[[RunInput, Emit], Awaitable[str]]
"""The agent pipeline: given the run's input and an emitter, produce the answer text."""
