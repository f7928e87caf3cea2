"""The checks of one run's events, as a client receives them (docs/protocol.md, "Run events",
"Agents, tools and event nesting", "Per-run guarantees and resume").

Pure functions of the frames (JSON objects, read with ``.get`` so a frame of the wrong shape is a
failed check, never a crash). Each returns a short line saying what it saw, or raises
:class:`~runwire.errors.CheckFailed` naming what it expected and what came instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from runwire.errors import CheckFailed

__all__ = [
    "FIVE_KINDS",
    "TERMINAL_KINDS",
    "check_nesting",
    "check_resumed",
    "check_sequence",
    "check_text",
    "describe",
    "in_seq_order",
    "is_terminal",
]

Frame = dict[str, Any]

# The run-event kinds PROTOCOL.md v1 names for a run that completes.
FIVE_KINDS = (
    "agent_started",
    "agent_thinking",
    "tool_executing",
    "tool_completed",
    "agent_completed",
)
TERMINAL_KINDS = frozenset({"agent_completed", "agent_error", "agent_stopped"})
_SUB_AGENT_ENDS = frozenset({"agent_completed", "agent_error"})


def is_terminal(frame: Frame) -> bool:
    """The run's last event: the root's ``agent_completed``, ``agent_error`` or ``agent_stopped``."""
    return (
        "seq" in frame and frame.get("parent_agent") is None and frame.get("type") in TERMINAL_KINDS
    )


def describe(frame: Frame) -> str:
    """One event in a few words, for a report line."""
    parent = frame.get("parent_agent")
    return (
        f"seq {frame.get('seq')} {frame.get('type')} of {frame.get('agent_name')!r} "
        f"(parent_agent {'null' if parent is None else repr(parent)})"
    )


def check_sequence(events: Sequence[Frame]) -> str:
    """``seq`` is 1, 2, 3, … in the order given, with no gap and no repeat, and every event
    carries the run's one ``thread_id`` and ``epoch``."""
    if not events:
        raise CheckFailed("events with seq 1..n", "no events")
    seen: set[Any] = set()
    for position, event in enumerate(events, start=1):
        seq = event.get("seq")
        if seq != position:
            before = "the start" if position == 1 else f"seq {position - 1}"
            if seq in seen:
                raise CheckFailed(f"seq {position} after {before}", f"seq {seq} again")
            raise CheckFailed(f"seq {position} after {before}", f"seq {seq}")
        seen.add(seq)
    for key in ("thread_id", "epoch"):
        values = {str(event.get(key)) for event in events}
        if len(values) != 1:
            raise CheckFailed(
                f"one {key} on every event of the run", f"{', '.join(sorted(values))}"
            )
    return f"seq 1..{len(events)}, no gap, no repeat"


def check_resumed(after_seq: int, resumed: Sequence[Frame]) -> str:
    """After a cut at ``after_seq``, the resumed stream holds each of ``after_seq + 1`` … the
    terminal event's seq exactly once. Live events may come before replayed ones (the protocol
    allows it; a client orders them by seq), so order is not checked here."""
    seqs = [event.get("seq") for event in resumed]
    terminal = [event for event in resumed if is_terminal(event)]
    if not terminal:
        raise CheckFailed("the run's terminal event after resume", "none")
    last = terminal[-1].get("seq")
    if not isinstance(last, int) or last <= after_seq:
        raise CheckFailed(f"a terminal event after seq {after_seq}", describe(terminal[-1]))
    repeated = [
        s for s, n in Counter(seqs).items() if n > 1 or (isinstance(s, int) and s <= after_seq)
    ]
    if repeated:
        raise CheckFailed(
            f"seq {after_seq + 1}..{last}, each once", f"seq {_ranges(repeated)} again (repeated)"
        )
    missing = list(set(range(after_seq + 1, last + 1)) - set(seqs))
    if missing:
        raise CheckFailed(f"seq {after_seq + 1}..{last}, each once", f"seq {_ranges(missing)} lost")
    extra = list(set(seqs) - set(range(after_seq + 1, last + 1)))
    if extra:
        raise CheckFailed(f"seq {after_seq + 1}..{last}, each once", f"seq {_ranges(extra)} too")
    in_order = seqs == list(range(after_seq + 1, last + 1))
    return (
        f"seq {after_seq + 1}..{last}, each once{'' if in_order else ' (live events came first)'}"
    )


def check_nesting(events: Sequence[Frame], *, completed: bool) -> str:
    """The root's ``agent_started`` comes first and its terminal event last; sub-agents run one at
    a time, each between its ``agent_started`` and its ``agent_completed`` or ``agent_error``,
    with ``parent_agent`` naming the root; each ``tool_executing`` is closed by the
    ``tool_completed`` of the same ``tool_call_id`` before its agent ends.

    ``completed``: the run must also end with ``agent_completed`` and hold the five v1 kinds.
    """
    if not events:
        raise CheckFailed("the root's agent_started first", "no events")
    first = events[0]
    if first.get("type") != "agent_started" or first.get("parent_agent") is not None:
        raise CheckFailed("the root's agent_started (parent_agent null) first", describe(first))
    root = first.get("agent_name")
    open_agent: Any = None
    open_tools: dict[Any, tuple[Any, Any]] = {}
    agents: list[Any] = []
    for index, event in enumerate(events[1:], start=1):
        kind, name, parent = event.get("type"), event.get("agent_name"), event.get("parent_agent")
        expected_parent = None if name == root else root
        if parent != expected_parent:
            shown = "null" if expected_parent is None else repr(expected_parent)
            raise CheckFailed(f"parent_agent {shown} on events of {name!r}", describe(event))
        if is_terminal(event):
            if index != len(events) - 1:
                raise CheckFailed("nothing after the terminal event", describe(events[index + 1]))
            if open_agent is not None or open_tools:
                still = open_agent if open_agent is not None else next(iter(open_tools))
                raise CheckFailed(
                    f"{still!r} closed before the root's terminal event", describe(event)
                )
            break
        if kind == "agent_started":
            if name == root or open_agent is not None:
                raise CheckFailed(
                    "one sub-agent at a time, each started once"
                    + ("" if open_agent is None else f" ({open_agent!r} is open)"),
                    describe(event),
                )
            open_agent = name
            agents.append(name)
            continue
        if name != root and name != open_agent:
            raise CheckFailed(
                f"events of {name!r} between its agent_started and its end", describe(event)
            )
        if kind in _SUB_AGENT_ENDS:
            if any(agent == name for agent, _ in open_tools.values()):
                raise CheckFailed(
                    f"the tool calls of {name!r} closed before it ends", describe(event)
                )
            open_agent = None
        elif kind == "tool_executing":
            call = event.get("tool_call_id")
            if call in open_tools:
                raise CheckFailed(f"tool_call_id {call!r} used once", describe(event))
            open_tools[call] = (name, event.get("tool_name"))
        elif kind == "tool_completed":
            call = event.get("tool_call_id")
            if open_tools.pop(call, None) != (name, event.get("tool_name")):
                raise CheckFailed(
                    f"tool_completed after the tool_executing of {call!r} by the same agent",
                    describe(event),
                )
    else:
        raise CheckFailed("the root's terminal event last", describe(events[-1]))
    kinds = {event.get("type") for event in events}
    if completed:
        if events[-1].get("type") != "agent_completed":
            raise CheckFailed("the root's agent_completed last", describe(events[-1]))
        missing = [kind for kind in FIVE_KINDS if kind not in kinds]
        if missing:
            raise CheckFailed(f"all of {', '.join(FIVE_KINDS)}", f"no {', '.join(missing)}")
    calls = sum(1 for event in events if event.get("type") == "tool_completed")
    return f"{root!r} > {', '.join(map(repr, agents)) or 'no sub-agents'}; {calls} tool calls, all closed"


def check_text(ordered: Sequence[Frame]) -> tuple[str, int]:
    """The ``text_delta`` chunks of events given in seq order, joined, equal the root's
    ``final_response``. Returns that text and how many chunks made it.

    A ``quality_warning`` with ``replaced: true`` voids the text before it (a model's answer the
    quality gate rejected): the answer is the text streamed after the last one."""
    start = max(
        (
            i + 1
            for i, event in enumerate(ordered)
            if event.get("type") == "quality_warning" and event.get("replaced") is True
        ),
        default=0,
    )
    deltas = [
        str(event.get("delta", ""))
        for event in ordered[start:]
        if event.get("type") == "text_delta"
    ]
    answer = ordered[-1].get("final_response") if ordered and is_terminal(ordered[-1]) else None
    if not isinstance(answer, str):
        raise CheckFailed("the root's final_response", "none")
    if not deltas:
        raise CheckFailed("the answer streamed as text_delta events", "no text_delta")
    streamed = "".join(deltas)
    if streamed != answer:
        at = next(
            (i for i, (a, b) in enumerate(zip(streamed, answer, strict=False)) if a != b),
            min(len(streamed), len(answer)),
        )
        raise CheckFailed(
            f"the streamed text equal to the final answer ({len(answer)} characters)",
            f"{len(streamed)} characters, differing from character {at}: "
            f"{streamed[at : at + 30]!r} where the answer has {answer[at : at + 30]!r}",
        )
    return streamed, len(deltas)


def in_seq_order(events: Sequence[Frame]) -> list[Frame]:
    """The events ordered by ``seq`` (a frame whose ``seq`` is not a number goes last)."""
    return sorted(events, key=lambda event: _seq_key(event.get("seq")))


def _seq_key(value: Any) -> tuple[int, int, str]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, str(value))


def _ranges(numbers: Sequence[Any]) -> str:
    """``[3, 4, 5, 9]`` as ``3..5, 9`` (the first five pieces)."""
    pieces: list[list[Any]] = []
    for n in sorted(numbers, key=_seq_key):
        if (
            pieces
            and isinstance(n, int)
            and isinstance(pieces[-1][1], int)
            and pieces[-1][1] == n - 1
        ):
            pieces[-1][1] = n
        else:
            pieces.append([n, n])
    text = [str(a) if a == b else f"{a}..{b}" for a, b in pieces]
    return ", ".join(text[:5]) + (f" and {len(text) - 5} more" if len(text) > 5 else "")
