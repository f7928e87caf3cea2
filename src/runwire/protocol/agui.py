"""AG-UI, the Agent User Interaction protocol (1.0): what ``POST /ag-ui`` says.

Pure code, no I/O. What it reads (a client's ``RunAgentInput``) is in
:mod:`runwire.protocol.agui_input`.

:class:`AguiTranslation` turns one run's events into AG-UI events as they come: the root agent's
span is the AG-UI run (``RUN_STARTED`` … ``RUN_FINISHED`` or ``RUN_ERROR``), each sub-agent a
step, each tool call a ``TOOL_CALL_*`` sequence with its result, each ``agent_thinking`` a
reasoning message, and the streamed answer a text message. docs/protocol.md ("AG-UI") has the
table.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from ag_ui.core import (
    BaseEvent,
    CustomEvent,
    ReasoningEndEvent,
    ReasoningMessageContentEvent,
    ReasoningMessageEndEvent,
    ReasoningMessageStartEvent,
    ReasoningStartEvent,
    RunErrorEvent,
    RunFinishedCancelledOutcome,
    RunFinishedEvent,
    RunStartedEvent,
    StepFinishedEvent,
    StepStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)

from runwire.errors import RunwireError
from runwire.events.model import EventType, RunEvent

__all__ = ["PROTOCOL_VERSION", "AguiTranslation", "refusal"]

PROTOCOL_VERSION = "1.0"
"""The AG-UI version runwire speaks (``RUN_STARTED.protocolVersion``)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def refusal(exc: RunwireError) -> RunErrorEvent:
    """The ``RUN_ERROR`` that refuses a run before it starts (a thread that is not the caller's,
    a full run cap, a busy thread): its code and message, as the WebSocket's ``error`` has."""
    return RunErrorEvent(message=exc.message, code=exc.code)


def _ms(timestamp: str) -> int:
    """Epoch milliseconds of a run event's RFC 3339 timestamp (AG-UI's ``timestamp``)."""
    return (datetime.fromisoformat(timestamp) - _EPOCH) // _MS


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


class AguiTranslation:
    """One run's events as AG-UI events, in order. Feed it every event of the run from its first
    (:meth:`translate`); :meth:`cut` ends a stream that stops before the run does.

    ``thread_id`` and ``run_id`` are the client's (``RUN_STARTED``, ``RUN_FINISHED``);
    ``runwire_run_id`` is the run's id here (for ``stop_agent`` and ``/api/runs/{id}``), sent in
    ``RUN_STARTED.metadata`` and the prefix of every message and tool call id, so they are unique
    in the thread."""

    def __init__(
        self, *, thread_id: str, run_id: str, runwire_run_id: str, message_id: str
    ) -> None:
        self._thread_id = thread_id
        self._run_id = run_id
        self._prefix = runwire_run_id
        self._message_id = message_id
        self._text: str | None = None  # the answer's text message while it is open
        self._last_text: str | None = None  # the last text message started
        self._streamed = False  # some answer text was sent
        self._ended = False

    def translate(self, event: RunEvent) -> list[BaseEvent]:
        """The AG-UI events of ``event``: none, one or several."""
        out: list[BaseEvent] = []
        at = _ms(event.timestamp)
        if self._text is not None and event.type is not EventType.TEXT_DELTA:
            # A text message is open only while deltas follow one another: whatever comes
            # next (a tool call of a model that interleaves them, the end) closes it.
            out.append(TextMessageEndEvent(message_id=self._text, timestamp=at))
            self._text = None
        root = event.parent_agent is None
        data = event.data
        match event.type:
            case EventType.AGENT_STARTED if root:
                out.append(
                    RunStartedEvent(
                        thread_id=self._thread_id,
                        run_id=self._run_id,
                        protocol_version=PROTOCOL_VERSION,
                        timestamp=at,
                        metadata={
                            "runwire": {
                                "run_id": self._prefix,
                                "thread_id": event.thread_id,
                                "message_id": self._message_id,
                            }
                        },
                    )
                )
            case EventType.AGENT_STARTED:
                out.append(StepStartedEvent(step_name=event.agent_name, timestamp=at))
            case EventType.AGENT_THINKING:
                out.extend(self._reasoning(event, at))
            case EventType.TOOL_EXECUTING:
                call = f"{self._prefix}:{data['tool_call_id']}"
                out += [
                    ToolCallStartEvent(
                        tool_call_id=call, tool_call_name=str(data["tool_name"]), timestamp=at
                    ),
                    ToolCallArgsEvent(
                        tool_call_id=call, delta=_json(data.get("tool_args", {})), timestamp=at
                    ),
                    ToolCallEndEvent(tool_call_id=call, timestamp=at),
                ]
            case EventType.TOOL_COMPLETED:
                out.append(self._result(event, at))
            case EventType.TEXT_DELTA:
                out.extend(self._delta(event, at))
            case EventType.QUALITY_WARNING:
                # AG-UI has no event for it: a CUSTOM one naming the text message it concerns
                # (closed just above); a replacement answer follows as a new text message.
                value = {**event.to_wire(), "message_id": self._last_text}
                out.append(CustomEvent(name="runwire.quality_warning", value=value, timestamp=at))
            case EventType.AGENT_COMPLETED if root:
                answer = data.get("final_response")
                if not self._streamed and isinstance(answer, str) and answer:
                    # An answer that was not streamed still reaches the client as a message.
                    text = f"{self._prefix}:answer"
                    out += [
                        TextMessageStartEvent(message_id=text, role="assistant", timestamp=at),
                        TextMessageContentEvent(message_id=text, delta=answer, timestamp=at),
                        TextMessageEndEvent(message_id=text, timestamp=at),
                    ]
                out.append(
                    RunFinishedEvent(
                        thread_id=self._thread_id,
                        run_id=self._run_id,
                        result={"message_id": data.get("message_id")},
                        timestamp=at,
                    )
                )
                self._ended = True
            case EventType.AGENT_ERROR if root:
                out.append(
                    RunErrorEvent(
                        message=str(data.get("message", "the run failed")),
                        code=str(data.get("code", "error")),
                        timestamp=at,
                    )
                )
                self._ended = True
            case EventType.AGENT_STOPPED:
                out.append(
                    RunFinishedEvent(
                        thread_id=self._thread_id,
                        run_id=self._run_id,
                        outcome=RunFinishedCancelledOutcome(),
                        result={"code": data.get("code"), "message": data.get("message")},
                        timestamp=at,
                    )
                )
                self._ended = True
            case EventType.AGENT_COMPLETED | EventType.AGENT_ERROR:
                # A sub-agent's end; its error, if any, ends the run with RUN_ERROR next.
                finished = StepFinishedEvent(step_name=event.agent_name, timestamp=at)
                if event.type is EventType.AGENT_ERROR:
                    finished.metadata = {
                        "runwire": {"code": data.get("code"), "message": data.get("message")}
                    }
                out.append(finished)
            case _:
                # An event type newer than this mapping: passed on, not dropped.
                out.append(
                    CustomEvent(name=f"runwire.{event.type}", value=event.to_wire(), timestamp=at)
                )
        return out

    def cut(self) -> list[BaseEvent]:
        """The end of a stream that stops before the run's last event: ``RUN_ERROR``
        ``stream_ended`` saying where the rest is (the run itself goes on)."""
        if self._ended:
            return []
        self._ended = True
        return [
            RunErrorEvent(
                message="the stream ended before the run did (the client read too slowly, the "
                "session ended, or events may have been lost on the way); the run goes on: "
                f"read it at /api/runs/{self._prefix}/events",
                code="stream_ended",
            )
        ]

    def _reasoning(self, event: RunEvent, at: int) -> list[BaseEvent]:
        said = str(event.data.get("reasoning", ""))
        message = f"{self._prefix}:reasoning:{event.seq}"
        out: list[BaseEvent] = [
            ReasoningStartEvent(message_id=message, timestamp=at),
            ReasoningMessageStartEvent(message_id=message, timestamp=at),
        ]
        if said:
            out.append(ReasoningMessageContentEvent(message_id=message, delta=said, timestamp=at))
        out += [
            ReasoningMessageEndEvent(message_id=message, timestamp=at),
            ReasoningEndEvent(message_id=message, timestamp=at),
        ]
        return out

    def _result(self, event: RunEvent, at: int) -> ToolCallResultEvent:
        data = event.data
        call = f"{self._prefix}:{data['tool_call_id']}"
        success = bool(data.get("success"))
        content = _json(data.get("result")) if success else str(data.get("error") or "failed")
        return ToolCallResultEvent(
            message_id=f"{call}:result",
            tool_call_id=call,
            content=content,
            role="tool",
            timestamp=at,
            metadata={"runwire": {"success": success, "duration_ms": data.get("duration_ms")}},
        )

    def _delta(self, event: RunEvent, at: int) -> list[BaseEvent]:
        delta = str(event.data.get("delta", ""))
        if not delta:
            return []
        out: list[BaseEvent] = []
        if self._text is None:
            self._text = self._last_text = f"{self._prefix}:text:{event.seq}"
            out.append(TextMessageStartEvent(message_id=self._text, role="assistant", timestamp=at))
        self._streamed = True
        out.append(TextMessageContentEvent(message_id=self._text, delta=delta, timestamp=at))
        return out
