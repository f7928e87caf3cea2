import json

import pytest

from runwire.domain.concurrency import ConcurrencyPolicy
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
    ("text", "code", "message"),
    [
        ("not json", "bad_json", "frame is not valid JSON"),
        ("[1, 2]", "bad_frame", "frame must be a JSON object"),
        (frame(content="x"), "missing_field", "frame has no 'type'"),
        (frame(type="teleport"), "unknown_type", "unknown message type 'teleport'"),
        (frame(type=5), "invalid_field", "'type' must be a string"),
        (
            frame(type="user_message", content=5),
            "invalid_field",
            "'content' must be a string of Unicode text",
        ),
        (
            frame(type="user_message"),
            "missing_field",
            "'content' is required and must not be blank",
        ),
        (
            frame(type="user_message", content="   "),
            "missing_field",
            "'content' is required and must not be blank",
        ),
        (
            frame(type="user_message", content="x" * 40_000),
            "invalid_field",
            "'content' is longer than 32000 characters",
        ),
        (
            frame(type="user_message", content="x", thread_id=7),
            "invalid_field",
            "'thread_id' must be a non-empty string of at most 100 characters",
        ),
        (
            frame(type="user_message", content="x", policy="shove"),
            "invalid_field",
            "'policy' must be one of: enqueue, reject, interrupt",
        ),
        (frame(type="stop_agent"), "missing_field", "'run_id' is required"),
        (
            frame(type="resume", run_id="r", after_seq=-1),
            "invalid_field",
            "'after_seq' must be an integer from 0 to 2147483647",
        ),
        (
            frame(type="resume", run_id="r", after_seq=True),
            "invalid_field",
            "'after_seq' must be an integer from 0 to 2147483647",
        ),
        (
            frame(type="resume", run_id="r", after_seq="3"),
            "invalid_field",
            "'after_seq' must be an integer from 0 to 2147483647",
        ),
        (
            frame(type="resume", run_id="r", epoch=5),
            "invalid_field",
            "'epoch' must be a non-empty string of at most 100 characters",
        ),
        (
            frame(type="resume", run_id="r", epoch=""),
            "invalid_field",
            "'epoch' must be a non-empty string of at most 100 characters",
        ),
        (
            frame(type="resume", run_id="r", epoch="e" * 101),
            "invalid_field",
            "'epoch' must be a non-empty string of at most 100 characters",
        ),
        (
            frame(type="ping", request_id="x" * 101),
            "invalid_field",
            "'request_id' must be a non-empty string of at most 100 characters",
        ),
        (
            frame(type="resume", run_id="r", after_seq=2**31),
            "invalid_field",
            "'after_seq' must be an integer from 0 to 2147483647",
        ),
        # NUL: no database backend can keep it (PostgreSQL refuses it in text).
        (
            frame(type="user_message", content="a\u0000b"),
            "invalid_field",
            "'content' must not contain the NUL character (U+0000)",
        ),
        (
            frame(type="user_message", content="x", thread_id="thr_\u0000"),
            "invalid_field",
            "'thread_id' must not contain the NUL character (U+0000)",
        ),
        (
            frame(type="user_message", content="x", client_message_id="\u0000"),
            "invalid_field",
            "'client_message_id' must not contain the NUL character (U+0000)",
        ),
        (
            frame(type="stop_agent", run_id="run\u0000"),
            "invalid_field",
            "'run_id' must not contain the NUL character (U+0000)",
        ),
        (
            frame(type="resume", run_id="r", epoch="e\u0000"),
            "invalid_field",
            "'epoch' must not contain the NUL character (U+0000)",
        ),
        (
            frame(type="get_thread_history", thread_id="\u0000"),
            "invalid_field",
            "'thread_id' must not contain the NUL character (U+0000)",
        ),
        (
            frame(type="ping", request_id="r\u0000"),
            "invalid_field",
            "'request_id' must not contain the NUL character (U+0000)",
        ),
        (frame(type="validate_content", content="$5"), "missing_field", "'run_id' is required"),
        (
            frame(type="validate_content", run_id="r"),
            "missing_field",
            "'content' is required: the text to score, not blank",
        ),
        (
            frame(type="validate_content", run_id="r", content=" "),
            "missing_field",
            "'content' is required: the text to score, not blank",
        ),
        (
            frame(type="validate_content", run_id="r", content=5),
            "missing_field",
            "'content' is required: the text to score, not blank",
        ),
        (
            frame(type="validate_content", run_id="r", content="x" * 40_000),
            "invalid_field",
            "'content' is longer than 32000 characters",
        ),
    ],
)
def test_bad_frames_name_the_problem(text: str, code: str, message: str) -> None:
    # The message is what the client's error frame shows its user: it names the field and the rule.
    with pytest.raises(ProtocolError) as caught:
        parse_frame(text, MAX)
    assert (caught.value.code, caught.value.message) == (code, message)


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


def test_a_frame_of_exactly_the_byte_limit_is_read_and_one_byte_more_is_not() -> None:
    ping = frame(type="ping", pad="é" * 10)  # two bytes a character: bytes and characters differ
    limit = len(ping.encode())
    assert parse_frame(ping, limit) == Ping()
    assert parse_frame(ping.encode(), limit) == Ping()
    for text in (ping, ping.encode()):
        with pytest.raises(PayloadTooLarge) as caught:
            parse_frame(text, limit - 1)
        assert caught.value.message == f"frame is larger than {limit - 1} bytes"


def test_binary_frames_that_are_not_utf8_say_so() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_frame(b'{"type":"ping","x":"\xff"}', MAX)
    assert caught.value.message == "frames must be UTF-8 JSON text"


def test_a_frame_nested_too_deeply_is_bad_json_not_a_crash() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_frame("[" * 100_000 + "]" * 100_000, 1_000_000)
    assert (caught.value.code, caught.value.message) == ("bad_json", "frame is nested too deeply")


def test_an_unknown_type_is_shown_cut_to_40_characters_and_escaped() -> None:
    with pytest.raises(ProtocolError) as long:
        parse_frame(frame(type="t" * 50), MAX)
    assert long.value.message == f"unknown message type '{'t' * 40}'"
    with pytest.raises(ProtocolError) as surrogate:
        parse_frame('{"type": "x\\udc00"}', MAX)
    assert surrogate.value.message == "unknown message type 'x\\udc00'"


def test_ids_and_content_of_exactly_the_limit_are_accepted() -> None:
    rid = "r" * 100
    assert parse_frame(frame(type="ping", request_id=rid), MAX) == Ping(rid)
    assert parse_frame(frame(type="ping", request_id="r"), MAX) == Ping("r")
    assert parse_frame(frame(type="stop_agent", run_id="x" * 100), MAX) == StopAgent("x" * 100)
    content = "x" * 32_000
    assert parse_frame(frame(type="user_message", content=content), MAX * 2) == UserMessage(content)
    assert parse_frame(
        frame(type="validate_content", run_id="r", content=content, request_id="q"), MAX * 2
    ) == ValidateContent("r", content, "q")
    with pytest.raises(ProtocolError):
        parse_frame(frame(type="validate_content", run_id="r", content="x" * 32_001), MAX * 2)


def test_the_request_id_of_a_bad_frame_is_echoed_only_when_it_is_a_valid_one() -> None:
    assert request_id_of(frame(type="nope", request_id="r")) == "r"
    assert request_id_of(frame(type="nope", request_id="r" * 100)) == "r" * 100
    assert request_id_of(frame(type="nope", request_id="r" * 101)) is None
    assert request_id_of('{"type": "nope", "request_id": "r\\udc00"}') is None
    assert request_id_of(frame(type="nope", request_id=7)) is None
