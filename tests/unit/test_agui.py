"""AG-UI (pure): what runwire reads of a ``RunAgentInput``, and a run's events as AG-UI events."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from ag_ui.core import BaseEvent
from ag_ui.encoder import EventEncoder
from pydantic import ValidationError

from runwire.errors import NotFound
from runwire.events import EventType, RunEvent
from runwire.protocol.agui import AguiTranslation, refusal
from runwire.protocol.agui_input import AguiInput, read_input
from runwire.protocol.inbound import MAX_CONTENT_CHARS
from runwire.transport.agui_routes import AguiFraming
from runwire.transport.event_stream import EventStream

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
    event = e("progress_report", "reporting", done=0.2)
    [custom] = through([event])
    assert custom["type"] == "CUSTOM" and custom["name"] == "runwire.progress_report"
    assert custom["value"] == json.loads(event.wire)


def test_a_quality_warning_names_the_text_message_it_replaces() -> None:
    e = Run()
    warning = e(EventType.QUALITY_WARNING, outcome="replaced", replaced=True, score=0.667)
    said = through(
        [
            e(EventType.AGENT_STARTED),
            e(EventType.TEXT_DELTA, "reporting", delta="It costs $999."),
            warning,
            e(EventType.TEXT_DELTA, "reporting", delta="## You spend $49.61"),
        ]
    )
    assert [m["type"] for m in said] == [
        "RUN_STARTED",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",  # the model's answer ends before the warning about it
        "CUSTOM",
        "TEXT_MESSAGE_START",  # the replacement is a message of its own
        "TEXT_MESSAGE_CONTENT",
    ]
    custom = said[4]
    assert custom["name"] == "runwire.quality_warning"
    assert custom["value"] == {**json.loads(warning.wire), "message_id": said[1]["messageId"]}
    assert said[5]["messageId"] != said[1]["messageId"]


def test_a_refusal_is_a_run_error_with_the_code_and_message() -> None:
    [said] = wire([refusal(NotFound("no such thread"))])
    assert said == {"type": "RUN_ERROR", "message": "no such thread", "code": "not_found"}


def agui_input(**overrides: Any) -> AguiInput:
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
    return AguiInput.model_validate(body)


def test_the_question_is_the_last_user_messages_text_and_the_rest_is_not_read() -> None:
    asked = read_input(agui_input())
    assert asked.thread_id == "0b6f3c1e-7d7a-4c7e-9a3f-2f1d5e6b7c8d"
    assert asked.run_id == "r-1"
    assert asked.question == "Where can we cut costs?"


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"messages": []}, 'no message with role "user"'),
        (
            {"messages": [{"id": "1", "role": "assistant", "content": "hi"}]},
            'no message with role "user"',
        ),
        ({"messages": [{"id": "1", "role": "user", "content": " \n"}]}, "messages.0.user.content"),
        (
            {"messages": [{"id": "1", "role": "user", "content": "x" * (MAX_CONTENT_CHARS + 1)}]},
            "a user message needs text: 1 to 32000 characters",
        ),
        (  # content parts (media) are not read: a question is text
            {"messages": [{"id": "1", "role": "user", "content": [{"type": "text", "text": "a"}]}]},
            "messages.0.user.content\n  Input should be a valid string",
        ),
        ({"messages": [{"id": "1", "content": "no role"}]}, "Unable to extract tag"),
        (
            {
                "messages": [
                    {"id": "1", "role": "user", "content": "a question"},
                    {"id": "2", "role": "user", "content": "a\x00b"},
                ]
            },
            "messages.1.user.content\n  Value error, a user message needs text",
        ),
        ({"threadId": ""}, "1 to 40 of the characters"),
        ({"threadId": "x" * 41}, "1 to 40 of the characters"),
        ({"threadId": "a/b"}, "1 to 40 of the characters"),
        ({"runId": ""}, "1 to 100 characters"),
        ({"runId": "r" * 101}, "1 to 100 characters"),
        ({"runId": "r\x00"}, "1 to 100 characters"),
    ],
)
def test_an_input_runwire_cannot_answer_is_refused_naming_what_is_wrong(
    overrides: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        agui_input(**overrides)
    assert says in str(refused.value)


def test_the_api_document_says_what_is_refused() -> None:
    schema = AguiInput.model_json_schema(by_alias=True)["properties"]
    assert schema["threadId"]["pattern"] == "^[A-Za-z0-9_.~-]{1,40}$"
    assert (schema["runId"]["minLength"], schema["runId"]["maxLength"]) == (1, 100)
    messages = schema["messages"]
    assert messages["contains"]["properties"]["role"] == {"const": "user"}
    assert messages["items"]["required"] == ["role"]
    assert messages["items"]["discriminator"]["mapping"]["user"] == "#/$defs/AguiUserMessage"
    user = AguiInput.model_json_schema(by_alias=True)["$defs"]["AguiUserMessage"]
    content = user["properties"]["content"]
    assert (content["type"], content["maxLength"]) == ("string", MAX_CONTENT_CHARS)
    assert content["pattern"] == "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"


class _Closed:
    """A subscription or watch that only records being closed."""

    closed = False

    def close(self) -> None:
        self.closed = True


async def test_an_event_ag_ui_has_nothing_to_say_of_writes_nothing_to_the_stream() -> None:
    stream = EventStream(
        bus=cast(Any, None),
        chat=cast(Any, None),
        user_id="usr_1",
        run_id=RUN,
        revocations=cast(Any, None),
        session_id="s",
        keepalive_s=1,
        max_pending_bytes=1000,
        framing=AguiFraming(translation()),
    )
    e = Run()
    events = [
        e(EventType.AGENT_STARTED),
        e(EventType.TEXT_DELTA, "reporting", delta=""),
        e(EventType.AGENT_COMPLETED, final_response="", message_id="msg_a"),
    ]
    subscription, watch = _Closed(), _Closed()
    frames = [
        frame
        async for frame in stream._frames(
            events, cast(Any, subscription), cast(Any, watch), ended=True
        )
    ]
    assert [json.loads(f.removeprefix("data: "))["type"] for f in frames] == [
        "RUN_STARTED",
        "RUN_FINISHED",
    ]
    assert subscription.closed and watch.closed


def stamp(ms: int) -> str:
    return f"2026-12-06T13:00:00.{ms:03d}Z"


def test_every_ag_ui_event_carries_the_time_of_the_run_event_it_comes_from() -> None:
    """A client orders and shows AG-UI events by their ``timestamp``: each is its source's."""
    e = Run()
    events = [
        e(EventType.AGENT_STARTED, ts=stamp(1)),
        e(EventType.AGENT_THINKING, reasoning="Planning.", ts=stamp(2)),
        e(EventType.AGENT_STARTED, "data", ts=stamp(3)),
        e(EventType.TOOL_EXECUTING, "data", tool_name="t", tool_call_id="c1", ts=stamp(4)),
        e(EventType.TOOL_COMPLETED, "data", tool_call_id="c1", success=True, ts=stamp(5)),
        e(EventType.AGENT_COMPLETED, "data", ts=stamp(6)),
        e(EventType.TEXT_DELTA, "reporting", delta="a", ts=stamp(7)),
        e(EventType.TEXT_DELTA, "reporting", delta="b", ts=stamp(8)),
        e(EventType.QUALITY_WARNING, outcome="replaced", ts=stamp(9)),
        e("progress_report", "reporting", ts=stamp(10)),
        e(EventType.AGENT_ERROR, "reporting", code="x", ts=stamp(11)),
        e(EventType.AGENT_COMPLETED, final_response="whole", ts=stamp(12)),
    ]
    t = translation()
    for event in events:
        said = wire(t.translate(event))
        assert said, event.type
        assert {m["timestamp"] for m in said} == {T0_MS + event.seq}, event.type


def test_an_unstreamed_answer_and_a_stopped_run_are_stamped_too() -> None:
    e = Run()
    t = translation()
    t.translate(e(EventType.AGENT_STARTED, ts=stamp(1)))
    answered = wire(t.translate(e(EventType.AGENT_COMPLETED, final_response="Hi", ts=stamp(2))))
    assert [m["timestamp"] for m in answered] == [T0_MS + 2] * 4
    assert answered[0]["role"] == "assistant"
    e2 = Run()
    t2 = translation()
    t2.translate(e2(EventType.AGENT_STARTED, ts=stamp(1)))
    t2.translate(e2(EventType.TEXT_DELTA, "reporting", delta="part", ts=stamp(2)))
    stopped = wire(t2.translate(e2(EventType.AGENT_STOPPED, ts=stamp(3))))
    assert [m["timestamp"] for m in stopped] == [T0_MS + 3] * 2
    errored = wire(translation().translate(Run()(EventType.AGENT_ERROR, ts=stamp(4))))
    assert [m["timestamp"] for m in errored] == [T0_MS + 4]


def test_a_run_error_without_code_or_message_still_says_one() -> None:
    e = Run()
    t = translation()
    t.translate(e(EventType.AGENT_STARTED))
    [error] = wire(t.translate(e(EventType.AGENT_ERROR)))
    assert (error["code"], error["message"]) == ("error", "the run failed")
    assert t.cut() == []  # the run ended: nothing more to say


def test_a_finished_run_has_nothing_to_add_when_its_stream_is_cut() -> None:
    e = Run()
    t = translation()
    t.translate(e(EventType.AGENT_STARTED))
    t.translate(e(EventType.AGENT_COMPLETED, final_response="Hi"))
    assert t.cut() == []


def test_a_failed_tool_without_an_error_text_says_failed() -> None:
    e = Run()
    [result] = through([e(EventType.TOOL_COMPLETED, "data", tool_call_id="c1", success=False)])
    assert result["content"] == "failed"


def test_a_text_delta_without_text_writes_nothing() -> None:
    e = Run()
    assert through([e(EventType.AGENT_STARTED), e(EventType.TEXT_DELTA, "reporting")])[1:] == []


def test_a_quality_warning_before_any_text_names_no_message() -> None:
    e = Run()
    said = through([e(EventType.AGENT_STARTED), e(EventType.QUALITY_WARNING, outcome="x")])
    assert said[1]["value"]["message_id"] is None


def test_the_cut_message_says_what_happened_and_where_the_rest_is() -> None:
    t = translation()
    [cut] = wire(t.cut())
    assert cut["message"] == (
        "the stream ended before the run did (the client read too slowly, the session ended, "
        "or events may have been lost on the way); the run goes on: read it at "
        f"/api/runs/{RUN}/events"
    )


def test_ids_and_a_question_of_exactly_the_limits_are_taken() -> None:
    longest = "x" * MAX_CONTENT_CHARS
    asked = read_input(
        agui_input(runId="r" * 100, messages=[{"id": "1", "role": "user", "content": longest}])
    )
    assert (asked.run_id, asked.question) == ("r" * 100, longest)
    assert read_input(agui_input(runId="r")).run_id == "r"


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"messages": []}, 'no message with role "user": the last one is the question'),
        (
            {"messages": [{"id": "1", "role": "user", "content": " "}]},
            "a user message needs text: 1 to 32000 characters, not blank, without NUL",
        ),
        (
            {"threadId": "a/b"},
            "1 to 40 of the characters A-Z, a-z, 0-9, '_', '.', '~' and '-' (a thread of yours, "
            "or a new thread's id)",
        ),
    ],
)
def test_each_refusal_of_an_input_reads_whole(overrides: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError) as refused:
        agui_input(**overrides)
    assert [e["msg"] for e in refused.value.errors()] == [f"Value error, {says}"]


def test_the_api_document_says_a_user_message_is_required() -> None:
    schema = AguiInput.model_json_schema(by_alias=True)["properties"]["messages"]
    assert schema["contains"] == {
        "type": "object",
        "properties": {"role": {"const": "user"}},
        "required": ["role"],
    }
