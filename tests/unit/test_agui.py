"""AG-UI (pure): what runwire reads of a ``RunAgentInput``, and a run's events as AG-UI events."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from ag_ui.core import BaseEvent, RunAgentInput
from ag_ui.encoder import EventEncoder

from runwire.errors import InputError, NotFound
from runwire.events import EventType, RunEvent
from runwire.protocol.agui import AguiTranslation, read_input, refusal
from runwire.protocol.inbound import MAX_CONTENT_CHARS

pytestmark = pytest.mark.unit

RUN = "run_abc"
T0 = "2026-12-06T13:00:00.000Z"
T0_MS = 1796562000000


class Run:
    """A run's events, numbered as the journal numbers them."""

    def __init__(self) -> None:
        self.seq = 0

    def __call__(
        self, kind: EventType | str, agent: str = "supervisor", ts: str = T0, **data: Any
    ) -> RunEvent:
        self.seq += 1
        return RunEvent(
            cast(EventType, kind),
            RUN,
            "thr_1",
            self.seq,
            agent,
            ts,
            data,
            None if agent == "supervisor" else "supervisor",
            epoch="e1",
        )


def translation() -> AguiTranslation:
    return AguiTranslation(
        thread_id="client-thread", run_id="client-run", runwire_run_id=RUN, message_id="msg_q"
    )


def wire(events: list[BaseEvent]) -> list[dict[str, Any]]:
    """The events as the client reads them: each SSE message's JSON (camelCase, no nulls)."""
    encoder = EventEncoder()
    return [json.loads(encoder.encode(e).removeprefix("data: ")) for e in events]


def through(events: list[RunEvent]) -> list[dict[str, Any]]:
    t = translation()
    return wire([out for event in events for out in t.translate(event)])


def test_a_completed_run_reads_as_one_ag_ui_run_of_steps_tools_reasoning_and_the_answer() -> None:
    e = Run()
    said = through(
        [
            e(EventType.AGENT_STARTED),
            e(EventType.AGENT_THINKING, reasoning="Planning."),
            e(EventType.AGENT_STARTED, "data"),
            e(
                EventType.TOOL_EXECUTING,
                "data",
                tool_name="cost_breakdown",
                tool_call_id="call_1",
                tool_args={"top": 5},
            ),
            e(
                EventType.TOOL_COMPLETED,
                "data",
                tool_name="cost_breakdown",
                tool_call_id="call_1",
                result={"total": 1.5},
                success=True,
                duration_ms=0.4,
            ),
            e(EventType.AGENT_COMPLETED, "data", final_response="Measured."),
            e(EventType.AGENT_STARTED, "reporting"),
            e(EventType.TEXT_DELTA, "reporting", delta="## You "),
            e(EventType.TEXT_DELTA, "reporting", delta=""),  # nothing to say: nothing sent
            e(EventType.TEXT_DELTA, "reporting", delta="could save"),
            e(EventType.AGENT_COMPLETED, "reporting", final_response="Wrote it."),
            e(EventType.AGENT_COMPLETED, final_response="## You could save", message_id="msg_a"),
        ]
    )
    assert [m["type"] for m in said] == [
        "RUN_STARTED",
        "REASONING_START",
        "REASONING_MESSAGE_START",
        "REASONING_MESSAGE_CONTENT",
        "REASONING_MESSAGE_END",
        "REASONING_END",
        "STEP_STARTED",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
        "TOOL_CALL_RESULT",
        "STEP_FINISHED",
        "STEP_STARTED",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "STEP_FINISHED",
        "RUN_FINISHED",
    ]
    started, finished = said[0], said[-1]
    assert started == {
        "type": "RUN_STARTED",
        "timestamp": T0_MS,
        "metadata": {"runwire": {"run_id": RUN, "thread_id": "thr_1", "message_id": "msg_q"}},
        "threadId": "client-thread",
        "runId": "client-run",
        "protocolVersion": "1.0",
    }
    assert finished == {
        "type": "RUN_FINISHED",
        "timestamp": T0_MS,
        "threadId": "client-thread",
        "runId": "client-run",
        "result": {"message_id": "msg_a"},
    }
    reasoning = said[3]
    assert reasoning["messageId"] == f"{RUN}:reasoning:2" and reasoning["delta"] == "Planning."
    assert said[6]["stepName"] == said[11]["stepName"] == "data"
    call = f"{RUN}:call_1"
    assert said[7]["toolCallId"] == call and said[7]["toolCallName"] == "cost_breakdown"
    assert json.loads(said[8]["delta"]) == {"top": 5}
    assert said[10] == {
        "type": "TOOL_CALL_RESULT",
        "timestamp": T0_MS,
        "metadata": {"runwire": {"success": True, "duration_ms": 0.4}},
        "messageId": f"{call}:result",
        "toolCallId": call,
        "content": '{"total":1.5}',
        "role": "tool",
    }
    text = said[13]
    assert text["role"] == "assistant" and text["messageId"] == f"{RUN}:text:8"
    assert {m["messageId"] for m in said[13:17]} == {text["messageId"]}
    assert "".join(m["delta"] for m in said[14:16]) == "## You could save"


def test_an_answer_that_was_not_streamed_still_reaches_the_client_as_a_message() -> None:
    e = Run()
    said = through([e(EventType.AGENT_STARTED), e(EventType.AGENT_COMPLETED, final_response="Hi")])
    assert [m["type"] for m in said] == [
        "RUN_STARTED",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "RUN_FINISHED",
    ]
    assert said[2]["delta"] == "Hi" and said[2]["messageId"] == f"{RUN}:answer"


def test_text_interleaved_with_tool_calls_is_one_text_message_per_stretch() -> None:
    e = Run()
    said = through(
        [
            e(EventType.AGENT_STARTED),
            e(EventType.TEXT_DELTA, "reporting", delta="a"),
            e(EventType.TOOL_EXECUTING, "reporting", tool_name="t", tool_call_id="call_1"),
            e(EventType.TEXT_DELTA, "reporting", delta="b"),
        ]
    )
    kinds = [m["type"] for m in said]
    assert kinds == [
        "RUN_STARTED",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",  # a tool_executing without arguments: "{}"
        "TOOL_CALL_END",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
    ]
    assert said[5]["delta"] == "{}"
    assert said[1]["messageId"] != said[7]["messageId"]


def test_a_failure_ends_the_step_and_then_the_run_with_its_code_and_message() -> None:
    e = Run()
    said = through(
        [
            e(EventType.AGENT_STARTED),
            e(EventType.AGENT_STARTED, "data"),
            e(EventType.AGENT_THINKING, "data"),  # no reasoning text: an empty message
            e(
                EventType.TOOL_COMPLETED,
                "data",
                tool_name="cost_breakdown",
                tool_call_id="call_1",
                result=None,
                success=False,
                error="ValueError: bad",
                duration_ms=0.4,
            ),
            e(EventType.AGENT_ERROR, "data", code="tool_failed", message="it failed"),
            e(EventType.AGENT_ERROR, code="tool_failed", message="the data agent failed"),
        ]
    )
    assert [m["type"] for m in said] == [
        "RUN_STARTED",
        "STEP_STARTED",
        "REASONING_START",
        "REASONING_MESSAGE_START",
        "REASONING_MESSAGE_END",
        "REASONING_END",
        "TOOL_CALL_RESULT",
        "STEP_FINISHED",
        "RUN_ERROR",
    ]
    result = said[6]
    assert result["content"] == "ValueError: bad"
    assert result["metadata"] == {"runwire": {"success": False, "duration_ms": 0.4}}
    assert said[7]["metadata"] == {"runwire": {"code": "tool_failed", "message": "it failed"}}
    assert said[8] == {
        "type": "RUN_ERROR",
        "timestamp": T0_MS,
        "message": "the data agent failed",
        "code": "tool_failed",
    }


def test_a_stopped_run_finishes_cancelled_after_closing_its_open_text() -> None:
    e = Run()
    t = translation()
    events = [
        e(EventType.AGENT_STARTED),
        e(EventType.TEXT_DELTA, "reporting", delta="partial"),
        e(EventType.AGENT_STOPPED, code="stopped", message="stopped at the user's request"),
    ]
    said = wire([out for event in events for out in t.translate(event)])
    assert [m["type"] for m in said] == [
        "RUN_STARTED",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "RUN_FINISHED",
    ]
    assert said[-1]["outcome"] == {"type": "cancelled"}
    assert said[-1]["result"] == {"code": "stopped", "message": "stopped at the user's request"}
    assert t.cut() == []  # the run ended: nothing more to say


def test_a_stream_cut_before_the_run_ends_says_so_once_and_where_to_read_the_rest() -> None:
    e = Run()
    t = translation()
    t.translate(e(EventType.AGENT_STARTED))
    [cut] = wire(t.cut())
    assert cut["type"] == "RUN_ERROR" and cut["code"] == "stream_ended"
    assert f"/api/runs/{RUN}/events" in cut["message"]
    assert t.cut() == []


def test_an_event_type_newer_than_the_mapping_is_passed_on_as_a_custom_event() -> None:
    e = Run()
    event = e("quality_warning", "reporting", score=0.2)
    [custom] = through([event])
    assert custom["type"] == "CUSTOM" and custom["name"] == "runwire.quality_warning"
    assert custom["value"] == json.loads(event.wire)


def test_a_refusal_is_a_run_error_with_the_code_and_message() -> None:
    [said] = wire([refusal(NotFound("no such thread"))])
    assert said == {"type": "RUN_ERROR", "message": "no such thread", "code": "not_found"}


def agui_input(**overrides: Any) -> RunAgentInput:
    body: dict[str, Any] = {
        "threadId": "0b6f3c1e-7d7a-4c7e-9a3f-2f1d5e6b7c8d",
        "runId": "r-1",
        "messages": [
            {"id": "1", "role": "user", "content": "an earlier question"},
            {"id": "2", "role": "assistant", "content": "an earlier answer"},
            {"id": "3", "role": "user", "content": "Where can we cut costs?"},
            {"id": "4", "role": "tool", "content": "{}", "toolCallId": "c"},
        ],
        "tools": [{"name": "x", "description": "a front-end tool"}],
        "state": {},
        "context": [],
        "forwardedProps": {},
        **overrides,
    }
    return RunAgentInput.model_validate(body)


def test_the_question_is_the_last_user_messages_text_and_the_rest_is_not_read() -> None:
    asked = read_input(agui_input())
    assert asked.thread_id == "0b6f3c1e-7d7a-4c7e-9a3f-2f1d5e6b7c8d"
    assert asked.run_id == "r-1"
    assert asked.question == "Where can we cut costs?"
    parts = [
        {"type": "text", "text": "Where can"},
        {"type": "image", "source": {"type": "url", "value": "https://example.com/a.png"}},
        {"type": "text", "text": "we cut costs?"},
    ]
    multi = read_input(agui_input(messages=[{"id": "1", "role": "user", "content": parts}]))
    assert multi.question == "Where can\nwe cut costs?"


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"messages": []}, 'no message with role "user"'),
        (
            {"messages": [{"id": "1", "role": "assistant", "content": "hi"}]},
            'no message with role "user"',
        ),
        ({"messages": [{"id": "1", "role": "user", "content": "  "}]}, "has no text"),
        ({"messages": [{"id": "1", "role": "user", "content": []}]}, "has no text"),
        (
            {"messages": [{"id": "1", "role": "user", "content": "x" * (MAX_CONTENT_CHARS + 1)}]},
            f"over {MAX_CONTENT_CHARS} characters",
        ),
        ({"messages": [{"id": "1", "role": "user", "content": "a\x00b"}]}, "NUL"),
        ({"threadId": ""}, "threadId: 1 to 40"),
        ({"threadId": "x" * 41}, "threadId: 1 to 40"),
        ({"threadId": "a/b"}, "threadId: 1 to 40"),
        ({"runId": ""}, "runId: 1 to 100"),
        ({"runId": "r" * 101}, "runId: 1 to 100"),
        ({"runId": "r\x00"}, "runId: 1 to 100"),
    ],
)
def test_an_input_runwire_cannot_answer_is_refused_naming_what_is_wrong(
    overrides: dict[str, Any], says: str
) -> None:
    with pytest.raises(InputError, match=says.replace("(", r"\(")):
        read_input(agui_input(**overrides))


def test_every_problem_of_an_input_is_named_at_once() -> None:
    with pytest.raises(InputError) as refused:
        read_input(agui_input(threadId="a b", runId="", messages=[]))
    assert refused.value.message.count("; ") == 2
