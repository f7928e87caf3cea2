"""A run's journal: numbers its events, keeps the protocol's nesting promises, delivers them.

Every event of a run goes through :meth:`RunJournal.emit`: it gets the next ``seq``, is
published on the bus (live delivery + in-memory history) and queued for storage. The journal
tracks which sub-agents and tool calls are open, so when a run is stopped, times out or fails,
:meth:`close_open` closes each of them before the root's last event, as PROTOCOL.md promises.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from runwire.bus.base import EventBus
from runwire.errors import InvalidTransition, LeaseLost
from runwire.events.model import (
    EventDraft,
    EventType,
    RunEvent,
    Stamper,
    TextDrafts,
    encode_alike,
)
from runwire.runs.event_writer import EventWriter

__all__ = ["ROOT_AGENT", "RunJournal"]

ROOT_AGENT = "supervisor"

# Read once: a member read through the class costs ~0.2 µs on Python 3.11 (EnumType has a
# __getattr__, which takes every class attribute read off the fast path), and it was asked
# per event (docs/benchmarks.md, "Hot path, session 13").
_TEXT_DELTA = EventType.TEXT_DELTA
_AGENT_STARTED = EventType.AGENT_STARTED
_AGENT_ENDS = (EventType.AGENT_COMPLETED, EventType.AGENT_ERROR)
_TOOL_EXECUTING = EventType.TOOL_EXECUTING
_TOOL_COMPLETED = EventType.TOOL_COMPLETED


class RunJournal:
    def __init__(
        self,
        *,
        run_id: str,
        thread_id: str,
        user_id: str,
        epoch: str,
        bus: EventBus,
        writer: EventWriter,
        fence: Callable[[], bool] | None = None,
        confirm: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        """``fence()`` False means this node no longer trusts its hold on the run (no I/O: it is
        asked before every event); ``confirm()`` is then asked, which may look (the lease may
        still be this node's: a paused node, a late heartbeat), and False from it (or no
        ``confirm``) makes :meth:`emit` raise LeaseLost instead of numbering an event another
        node may number too."""
        self.run_id = run_id
        self.thread_id = thread_id
        self.user_id = user_id
        self.epoch = epoch
        self._bus = bus
        self._writer = writer
        self._fence = fence
        self._confirm = confirm
        self.last_seq = 0
        self.closed = False
        self._open_agents: list[str] = []
        self._open_tools: dict[str, tuple[str, str]] = {}  # call id -> (agent, tool name)
        self._text: list[str] = []
        self._clock = Stamper()

    def restore(self, stored: list[RunEvent]) -> None:
        """Continue a run's journal from its stored events (after the server restarted)."""
        for event in stored:
            self.last_seq = event.seq
            self._track(event)

    @property
    def text(self) -> str:
        """The answer text streamed so far (kept as a partial answer if the run is cut short)."""
        return "".join(self._text)

    async def emit(self, draft: EventDraft) -> RunEvent:
        """Number ``draft`` as the run's next event, queue it for storage and publish it.

        Waits first while the store's backlog is full (back-pressure: the run streams at the
        store's pace; no event is dropped), and checks the lease after that wait, since the
        lease may have been lost meanwhile."""
        if self.closed:
            raise InvalidTransition(f"run {self.run_id} has ended; no event may follow")
        writer = self._writer
        if writer.backlog >= writer.max_backlog:  # checked here: most events need no wait
            await writer.room()
        if self._fence is not None and not self._fence() and not await self.holds():
            raise LeaseLost(f"run {self.run_id} is no longer this node's")
        self.last_seq += 1
        event = RunEvent(  # positional: a dataclass's __init__ by keyword costs ~50% more
            draft.type,
            self.run_id,
            self.thread_id,
            self.last_seq,
            draft.agent_name,
            self._clock.now(),
            draft.data,
            draft.parent_agent,
            epoch=self.epoch,
        )
        self._track(event)
        self._writer.append(event)
        await self._bus.publish(self.user_id, event)
        return event

    # An agent calls the journal itself to emit one event (the executor hands it over as the
    # agents' ``Emit``): the same method, no wrapper between.
    __call__ = emit

    async def emit_batch(self, drafts: Sequence[EventDraft]) -> list[RunEvent]:
        """Number ``drafts`` as the run's next events, in order, as :meth:`emit` would one by
        one, and queue and publish them together: one pass through the store's queue, the bus
        and each connection for a batch of ready events (a streamed answer's chunks), instead
        of one per event. Each is still its own event, with its own ``seq``.

        The events share one timestamp (they are numbered in the same instant). A batch that
        would pass the store's backlog bound goes one event at a time, each waiting its turn as
        :meth:`emit` does; so does a batch of one."""
        writer = self._writer
        if len(drafts) < 2 or writer.backlog + len(drafts) > writer.max_backlog:
            return [await self.emit(draft) for draft in drafts]
        if self.closed:
            raise InvalidTransition(f"run {self.run_id} has ended; no event may follow")
        if self._fence is not None and not self._fence() and not await self.holds():
            raise LeaseLost(f"run {self.run_id} is no longer this node's")
        seq = self.last_seq
        run_id, thread_id, epoch = self.run_id, self.thread_id, self.epoch
        timestamp = self._clock.now()
        if type(drafts) is TextDrafts:  # a streamed answer's chunks: no draft object each
            agent, parent, deltas = drafts.agent_name, drafts.parent_agent, drafts.deltas
            events = [
                RunEvent(
                    _TEXT_DELTA,
                    run_id,
                    thread_id,
                    seq + i,
                    agent,
                    timestamp,
                    {"delta": delta},
                    parent,
                    epoch=epoch,
                )
                for i, delta in enumerate(deltas, 1)
            ]
            self._text += deltas  # as _track keeps each chunk (a chunk never ends a run)
            return await self._publish_batch(events)
        events = []
        text = self._text
        for draft in drafts:
            if self.closed:  # a terminal event in the batch: what came before it still goes out
                break
            seq += 1
            kind, data = draft.type, draft.data
            event = RunEvent(
                kind,
                run_id,
                thread_id,
                seq,
                draft.agent_name,
                timestamp,
                data,
                draft.parent_agent,
                epoch=epoch,
            )
            if kind is _TEXT_DELTA:  # a streamed chunk, as _track keeps it (nearly every one)
                text.append(str(data.get("delta", "")))
            else:
                self._track(event)
            events.append(event)
        await self._publish_batch(events)
        if len(events) < len(drafts):
            raise InvalidTransition(f"run {self.run_id} has ended; no event may follow")
        return events

    async def _publish_batch(self, events: list[RunEvent]) -> list[RunEvent]:
        """Queue numbered ``events`` (not empty: the journal was open for the first) for
        storage and publish them; the run's last seq is the last one's."""
        self.last_seq = events[-1].seq
        encode_alike(events)
        self._writer.extend(events)
        await self._bus.publish_batch(self.user_id, events)
        return events

    async def holds(self) -> bool:
        """Whether this node may still act for the run (see ``fence`` and ``confirm``)."""
        if self._fence is None or self._fence():
            return True
        return self._confirm is not None and await self._confirm()

    def _track(self, event: RunEvent) -> None:
        kind = event.type
        if kind is _TEXT_DELTA:  # most events: asked first (a chunk never ends a run)
            self._text.append(str(event.data.get("delta", "")))
        elif event.is_terminal:
            self.closed = True
        elif event.parent_agent is None:
            return
        elif kind is _AGENT_STARTED:
            self._open_agents.append(event.agent_name)
        elif kind in _AGENT_ENDS:
            if event.agent_name in self._open_agents:
                self._open_agents.remove(event.agent_name)
        elif kind is _TOOL_EXECUTING:
            call_id = str(event.data.get("tool_call_id"))
            self._open_tools[call_id] = (event.agent_name, str(event.data.get("tool_name")))
        elif kind is _TOOL_COMPLETED:
            self._open_tools.pop(str(event.data.get("tool_call_id")), None)

    async def close_open(self, code: str, message: str) -> None:
        """Close every open tool call, then every open sub-agent, innermost first."""
        for call_id, (agent, tool) in reversed(list(self._open_tools.items())):
            await self.emit(
                EventDraft(
                    EventType.TOOL_COMPLETED,
                    agent,
                    {
                        "tool_name": tool,
                        "tool_call_id": call_id,
                        "result": None,
                        "success": False,
                        "duration_ms": None,
                        "error": message,
                    },
                    parent_agent=ROOT_AGENT,
                )
            )
        for agent in reversed(list(self._open_agents)):
            await self.emit(
                EventDraft(
                    EventType.AGENT_ERROR,
                    agent,
                    {"code": code, "message": message},
                    parent_agent=ROOT_AGENT,
                )
            )
