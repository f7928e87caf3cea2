"""Run events: what agents say while they work, numbered per run.

Agents produce :class:`EventDraft` objects (what happened, by whom). The run's sequencer turns
each draft into a :class:`RunEvent` with the run's identity, the next ``seq`` and a timestamp.
A ``RunEvent`` is immutable and encodes itself to JSON once, however many sockets receive it.

A position in a run's stream is its ``epoch`` and a ``seq``: the epoch names one numbering of the
run's events, and changes when the run's log is rewritten (a restart closing a run the crashed
process left open), so a ``seq`` held under an older epoch is known to mean something else now.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, overload

import orjson

__all__ = [
    "MAX_SEQ",
    "TERMINAL_EVENTS",
    "EventDraft",
    "EventType",
    "RunEvent",
    "Stamper",
    "TextDrafts",
    "encode_alike",
    "stamp_ms",
    "utc_now",
]


class EventType(StrEnum):
    AGENT_STARTED = "agent_started"
    AGENT_THINKING = "agent_thinking"
    TOOL_EXECUTING = "tool_executing"
    TOOL_COMPLETED = "tool_completed"
    AGENT_COMPLETED = "agent_completed"
    AGENT_ERROR = "agent_error"
    AGENT_STOPPED = "agent_stopped"
    TEXT_DELTA = "text_delta"
    MODEL_USAGE = "model_usage"  # the tokens and cost a run's model turns took
    QUALITY_WARNING = "quality_warning"  # the answer failed the quality gate (agents/quality.py)


MAX_SEQ = 2**31 - 1
"""The highest ``seq`` a run can reach: seqs are stored as 32-bit integers (PostgreSQL
``integer``), so a position past it cannot exist and is refused as input, never sent to a query."""

TERMINAL_EVENTS = frozenset(
    {EventType.AGENT_COMPLETED, EventType.AGENT_ERROR, EventType.AGENT_STOPPED}
)


def utc_now() -> str:
    """RFC 3339 UTC timestamp with millisecond precision, e.g. ``2026-11-23T19:50:03.123Z``."""
    return stamp_ms(time.time_ns() // 1_000_000)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
# RFC 3339 writes years 0001 to 9999 (datetime's range too): what lies beyond is shown at the edge.
_FIRST_MS = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _MS
_LAST_MS = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _MS


def stamp_ms(ms: int) -> str:
    """RFC 3339 UTC string for epoch milliseconds ``ms``; any integer has one (a time before
    year 1 or after year 9999, which RFC 3339 cannot write, is shown as the nearest it can)."""
    moment = _EPOCH + min(max(ms, _FIRST_MS), _LAST_MS) * _MS
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_MILLIS = tuple(f".{i:03d}Z" for i in range(1000))  # the stamp's tail for each millisecond


class Stamper:
    """Timestamps for a stream of events: formats the date and time once per second, and each
    millisecond's stamp by appending its tail (a lookup), not once per event (profiled: the
    formatting was 5-7% of the server's per-event CPU when it ran once per millisecond)."""

    __slots__ = ("_head", "_ms", "_second", "_text")
    _head: str  # "YYYY-MM-DDTHH:MM:SS" of _second; both set by the first reading
    _text: str  # the stamp of _ms

    def __init__(self) -> None:
        # None, not a number: any integer is a clock reading (-1 ms is 1969-12-31T23:59:59.999).
        self._ms: int | None = None
        self._second: int | None = None

    def now(self) -> str:
        ms = time.time_ns() // 1_000_000
        if ms != self._ms:
            second, millis = divmod(ms, 1000)
            if second != self._second:
                self._second, self._head = second, stamp_ms(second * 1000)[:-5]
            self._ms, self._text = ms, self._head + _MILLIS[millis]
        return self._text


@dataclass(slots=True)
class EventDraft:
    """An event before it is numbered: its type, the agent that emits it, and type-specific data.

    Treat it as immutable (not declared frozen for the same reason as :class:`RunEvent`: one is
    made per event)."""

    type: EventType
    agent_name: str
    data: dict[str, Any] = field(default_factory=dict)
    parent_agent: str | None = None


class TextDrafts(Sequence[EventDraft]):
    """A streamed answer's chunks that are ready at once, as the drafts of their ``text_delta``
    events (``{"delta": chunk}`` each), made only when one is asked for: a run's journal
    numbers the chunks straight from the strings, one object fewer per event (making the
    drafts was ~10% of the offline agents' CPU per run: docs/benchmarks.md, "Hot path,
    session 13"). Any other emitter sees a sequence of drafts like any other."""

    __slots__ = ("agent_name", "deltas", "parent_agent")

    def __init__(self, agent_name: str, deltas: Sequence[str], parent_agent: str | None) -> None:
        self.agent_name = agent_name
        self.deltas = deltas
        self.parent_agent = parent_agent

    def __len__(self) -> int:
        return len(self.deltas)

    @overload
    def __getitem__(self, index: int) -> EventDraft: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[EventDraft]: ...

    def __getitem__(self, index: int | slice) -> EventDraft | Sequence[EventDraft]:
        if isinstance(index, slice):
            return TextDrafts(self.agent_name, self.deltas[index], self.parent_agent)
        delta = self.deltas[index]
        return EventDraft(
            EventType.TEXT_DELTA, self.agent_name, {"delta": delta}, self.parent_agent
        )


_TYPES: dict[str, EventType] = {kind.value: kind for kind in EventType}
"""Each event type by its wire value: a lookup, where ``EventType(value)`` costs ~1 µs (an
event decoded from another node's block, or read from the store, pays it once)."""

_IDENTITY = frozenset(
    {"type", "run_id", "thread_id", "seq", "epoch", "agent_name", "parent_agent", "timestamp"}
)


@dataclass(slots=True)
class RunEvent:
    """A numbered event of one run, as stored and as sent. Treat it as immutable: it is shared by
    the store, the bus and every recipient (not declared frozen because a frozen dataclass's
    ``__init__`` costs three times as much, and one is made per event)."""

    type: EventType
    run_id: str
    thread_id: str
    seq: int
    agent_name: str
    timestamp: str
    data: dict[str, Any] = field(default_factory=dict)
    parent_agent: str | None = None
    epoch: str = field(kw_only=True)
    _wire: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def is_terminal(self) -> bool:
        """True for the root agent's closing event; nothing of the run follows it."""
        return self.parent_agent is None and self.type in TERMINAL_EVENTS

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,  # a str (StrEnum): encoders write its value
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "seq": self.seq,
            "epoch": self.epoch,
            "agent_name": self.agent_name,
            "parent_agent": self.parent_agent,
            "timestamp": self.timestamp,
        }
        data = self.data
        if _IDENTITY.isdisjoint(data):  # one lookup per key of data (the keys of body above)
            body.update(data)
        else:  # the identity fields win over anything in data of the same name
            body = {**data, **body}
        return body

    @property
    def wire(self) -> bytes:
        """The wire frame as UTF-8 JSON, encoded once and shared by every recipient."""
        # Kept in a slot by hand: functools.cached_property takes a lock per read on Python
        # 3.11, and this is read once per recipient of every event.
        cached = self._wire
        if cached is None:
            cached = self._wire = orjson.dumps(self.to_wire())
        return cached

    @property
    def json(self) -> str:
        """The wire frame as text (what is stored)."""
        return self.wire.decode()

    @classmethod
    def from_wire(cls, body: dict[str, Any], *, epoch: str | None = None) -> RunEvent:
        """The event a wire body describes; ``epoch`` (the run's current one) replaces the body's,
        as a stored body keeps the epoch it was written under."""
        kind = body["type"]
        return cls(
            type=_TYPES.get(kind) or EventType(kind),  # the call raises for an unknown type
            run_id=str(body["run_id"]),
            thread_id=str(body["thread_id"]),
            seq=int(body["seq"]),
            agent_name=str(body["agent_name"]),
            timestamp=str(body["timestamp"]),
            parent_agent=body.get("parent_agent"),
            data={k: v for k, v in body.items() if k not in _IDENTITY},
            epoch=str(body["epoch"]) if epoch is None else epoch,
        )

    @classmethod
    def decode(cls, wire: bytes) -> RunEvent:
        """The event whose wire frame is ``wire`` (as :attr:`wire` made it, e.g. on another node);
        it keeps those bytes as its frame, so its recipients do not encode it again."""
        event = cls.from_wire(orjson.loads(wire))
        event._wire = wire
        return event


def encode_alike(events: Sequence[RunEvent]) -> None:
    """Encode the wire frames of a batch of one run's events numbered together (one epoch, one
    timestamp), as :attr:`RunEvent.wire` would, byte for byte: those alike the first one (its
    type, agent and parent, and ``data`` of its one key, a streamed answer's chunks) from one
    template, each encoding only its ``seq`` and that value; any other is left to encode
    itself. The template saves building each one's dict (about half of its encoding)."""
    first = events[0]
    if len(first.data) != 1:
        return
    (key,) = first.data
    if key in _IDENTITY:
        return
    kind, agent, parent = first.type, first.agent_name, first.parent_agent
    identity = {"type": kind, "run_id": first.run_id, "thread_id": first.thread_id, "seq": 0}
    head = orjson.dumps(identity)[:-2]  # up to '"seq":'
    rest: dict[str, Any] = {
        "epoch": first.epoch,
        "agent_name": agent,
        "parent_agent": parent,
        "timestamp": first.timestamp,
    }
    rest[key] = None
    tail = orjson.dumps(rest)[1:-5]  # from '"epoch"' up to the key's ':'
    dumps = orjson.dumps
    for event in events:
        data = event.data
        if (
            event.type is kind
            and event.agent_name == agent
            and event.parent_agent == parent
            and len(data) == 1
            and key in data
        ):
            event._wire = b"%s%d,%s%s}" % (head, event.seq, tail, dumps(data[key]))
