import json

import pytest

from runwire.config import ConcurrencyPolicy
from runwire.errors import PayloadTooLarge, ProtocolError
from runwire.protocol.inbound import (
    GetQualityMetrics,
    GetThreadHistory,
    Ping,
    Resume,
    StopAgent,
    UserMessage,
    ValidateContent,
    parse_frame,
    request_id_of,
)

pytestmark = pytest.mark.unit
MAX = 64 * 1024


def frame(**body: object) -> str:
    return json.dumps(body)


def test_user_message_with_every_field() -> None:
    cmd = parse_frame(
        frame(
            type="user_message",
            content="hi",
            thread_id="thr_1",
            client_message_id="c1",
            policy="reject",
            request_id="r1",
            unknown="ignored",
        ),
        MAX,
    )
    assert cmd == UserMessage("hi", "thr_1", "c1", ConcurrencyPolicy.REJECT, "r1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (frame(type="stop_agent", run_id="run_1"), StopAgent("run_1")),
        (frame(type="resume", run_id="run_1", after_seq=4), Resume("run_1", 4)),
        (frame(type="resume", run_id="run_1"), Resume("run_1", 0)),
        (
            frame(type="resume", run_id="run_1", after_seq=7, epoch="3f9a01c2"),
            Resume("run_1", 7, epoch="3f9a01c2"),
        ),
        (frame(type="get_thread_history", thread_id="t"), GetThreadHistory("t")),
        (frame(type="ping", request_id="x"), Ping("x")),
        (frame(type="get_quality_metrics", request_id="q"), GetQualityMetrics("q")),
        (
            frame(type="validate_content", run_id="run_1", content="It costs $5."),
            ValidateContent("run_1", "It costs $5."),
        ),
    ],
)
def test_each_command_parses(text: str, expected: object) -> None:
    assert parse_frame(text, MAX) == expected


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_frame"),
        (frame(content="x"), "missing_field"),
        (frame(type="teleport"), "unknown_type"),
        (frame(type=5), "invalid_field"),
        (frame(type="user_message", content=5), "invalid_field"),
        (frame(type="user_message"), "missing_field"),
        (frame(type="user_message", content="   "), "missing_field"),
        (frame(type="user_message", content="x" * 40_000), "invalid_field"),
        (frame(type="user_message", content="x", thread_id=7), "invalid_field"),
        (frame(type="user_message", content="x", policy="shove"), "invalid_field"),
        (frame(type="stop_agent"), "missing_field"),
        (frame(type="resume", run_id="r", after_seq=-1), "invalid_field"),
        (frame(type="resume", run_id="r", after_seq=True), "invalid_field"),
        (frame(type="resume", run_id="r", after_seq="3"), "invalid_field"),
        (frame(type="resume", run_id="r", epoch=5), "invalid_field"),
        (frame(type="resume", run_id="r", epoch=""), "invalid_field"),
        (frame(type="resume", run_id="r", epoch="e" * 101), "invalid_field"),
        (frame(type="ping", request_id="x" * 101), "invalid_field"),
        (frame(type="resume", run_id="r", after_seq=2**31), "invalid_field"),
        # NUL: no database backend can keep it (PostgreSQL refuses it in text).
        (frame(type="user_message", content="a\u0000b"), "invalid_field"),
        (frame(type="user_message", content="x", thread_id="thr_\u0000"), "invalid_field"),
        (frame(type="user_message", content="x", client_message_id="\u0000"), "invalid_field"),
        (frame(type="stop_agent", run_id="run\u0000"), "invalid_field"),
        (frame(type="resume", run_id="r", epoch="e\u0000"), "invalid_field"),
        (frame(type="get_thread_history", thread_id="\u0000"), "invalid_field"),
        (frame(type="ping", request_id="r\u0000"), "invalid_field"),
        (frame(type="validate_content", content="$5"), "missing_field"),
        (frame(type="validate_content", run_id="r"), "missing_field"),
        (frame(type="validate_content", run_id="r", content=" "), "missing_field"),
        (frame(type="validate_content", run_id="r", content=5), "missing_field"),
        (frame(type="validate_content", run_id="r", content="x" * 40_000), "invalid_field"),
    ],
)
def test_bad_frames_name_the_problem(text: str, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_frame(text, MAX)
    assert caught.value.code == code
    assert caught.value.message


def test_binary_frames_are_read_as_utf8_json() -> None:
    assert parse_frame(b'{"type":"ping"}', MAX) == Ping()
    with pytest.raises(ProtocolError) as caught:
        parse_frame(b"\xff\xfe", MAX)
    assert caught.value.code == "bad_json"


def test_oversized_frames_are_refused() -> None:
    with pytest.raises(PayloadTooLarge):
        parse_frame(b"x" * 101, 100)
    with pytest.raises(PayloadTooLarge):
        parse_frame("é" * 60, 100)


def test_nul_and_the_largest_seq_are_named_in_the_error() -> None:
    with pytest.raises(ProtocolError) as nul:
        parse_frame(frame(type="user_message", content="a\u0000b"), MAX)
    assert nul.value.message == "'content' must not contain the NUL character (U+0000)"
    with pytest.raises(ProtocolError) as past:
        parse_frame(frame(type="resume", run_id="r", after_seq=2**31), MAX)
    assert past.value.message == "'after_seq' must be an integer from 0 to 2147483647"
    assert parse_frame(frame(type="resume", run_id="r", after_seq=2**31 - 1), MAX) == Resume(
        "r", 2**31 - 1
    )


def test_request_id_is_recovered_from_bad_frames_when_possible() -> None:
    assert request_id_of(frame(type="ping", request_id="r\u0000")) is None
    assert request_id_of(frame(type="nope", request_id="r9")) == "r9"
    assert request_id_of("garbage") is None
    assert request_id_of("[]") is None
    assert request_id_of(frame(type="ping", request_id="")) is None
