"""Inbound frames under fuzzing: any input is a command or a documented error, nothing else.

docs/protocol.md ("Error codes") lists what a bad frame can get: ``bad_json``, ``bad_frame``,
``missing_field``, ``invalid_field``, ``unknown_type``, and ``too_large`` for a frame over the
limit. Whatever arrives, ``parse_frame`` returns one of the five commands or raises a
``RunwireError`` with one of those codes, and ``request_id_of`` (used to answer a frame that
failed) never raises. What it returns must also survive the trip back out: every string of a
command, of an error message or of an echoed ``request_id`` is valid Unicode, so it can be
encoded into a reply; and a command's strings hold no NUL, so every database backend can store
them.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from runwire.domain.concurrency import ConcurrencyPolicy
from runwire.errors import RunwireError
from runwire.events.model import MAX_SEQ
from runwire.protocol.inbound import (
    MAX_CONTENT_CHARS,
    MAX_ID_CHARS,
    Command,
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
DOCUMENTED_CODES = {
    "bad_json",
    "bad_frame",
    "missing_field",
    "invalid_field",
    "unknown_type",
    "too_large",
}
COMMANDS = (
    UserMessage,
    ValidateContent,
    StopAgent,
    Resume,
    GetQualityMetrics,
    GetThreadHistory,
    Ping,
    GetQualityMetrics,
    ValidateContent,
)
FIELDS = {
    "user_message": ("content", "thread_id", "client_message_id", "policy"),
    "stop_agent": ("run_id",),
    "resume": ("run_id", "after_seq", "epoch"),
    "get_thread_history": ("thread_id",),
    "ping": (),
    "get_quality_metrics": (),
    "validate_content": ("run_id", "content"),
}
# Fast enough for the unit layer (well under a second each), with no wall-clock deadline: the
# machine is shared, and a slow example is not a failure of the parser.
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable(text: str) -> bool:
    """Text every database backend keeps as sent: Unicode without NUL (PostgreSQL refuses it)."""
    return encodable(text) and "\x00" not in text


# -- what hostile frames are made of --

# Lone surrogates (U+D800..U+DFFF) reach Python strings through JSON escapes like "\udc00".
any_text = st.text(st.characters(codec=None) | st.characters(categories=["Cs"]), max_size=30)
sized_text = st.sampled_from([0, 1, MAX_ID_CHARS, MAX_ID_CHARS + 1, 2000]).map(lambda n: "x" * n)
huge_number = st.sampled_from([2**63 - 1, 2**63, -(2**63), 10**30, 10**300, -1, 1.5, 1e308])
blank = st.sampled_from(["", " ", "\t\n", "\u3000", "\u200b"])


def json_values(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | huge_number
        | st.floats(allow_nan=True, allow_infinity=True)
        | text
        | sized_text,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
        max_leaves=12,
    )


json_value = json_values(any_text)
field_value = (
    json_value
    | blank
    | st.sampled_from([*(p.value for p in ConcurrencyPolicy), "ENQUEUE", "shove"])
    | st.sampled_from(["thr_1", "run_1", "r"])
)
frame_type = st.sampled_from(sorted(FIELDS)) | any_text | json_value


@st.composite
def message_like(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON object shaped like a real message: some of its fields, of any value, and more."""
    kind = draw(frame_type)
    body: dict[str, Any] = {}
    if draw(st.booleans()):
        body["type"] = kind
    names = FIELDS.get(kind, ()) if isinstance(kind, str) else ()
    for name in names:
        if draw(st.booleans()):
            body[name] = draw(field_value)
    if draw(st.booleans()):
        body["request_id"] = draw(field_value)
    extra = draw(st.dictionaries(any_text, json_value, max_size=3))
    return {**extra, **body} if draw(st.booleans()) else {**body, **extra}


def nested(depth: int) -> str:
    return '{"type":"ping","request_id":"deep","x":' + "[" * depth + "]" * depth + "}"


@st.composite
def as_frame(draw: st.DrawFn, body: Any) -> str | bytes:
    """A JSON value as a client could send it: text or binary, escaped or not, maybe damaged."""
    text = json.dumps(body, ensure_ascii=draw(st.booleans()), allow_nan=True)
    damage = draw(st.sampled_from(["none", "none", "cut", "insert"]))
    if damage == "cut" and text:
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif damage == "insert":
        at = draw(st.integers(0, len(text)))
        text = (
            text[:at]
            + draw(st.sampled_from(["\x00", "\\", '"', "{", "]", ",", "\ufeff"]))
            + text[at:]
        )
    if draw(st.booleans()):
        # Binary frames: UTF-8, or bytes that are not UTF-8 (a lone surrogate cannot be encoded).
        return text.encode("utf-8", "surrogatepass")
    return text


hostile_frame = (
    message_like().flatmap(as_frame)
    | json_value.flatmap(as_frame)
    | st.text(max_size=60)
    | st.binary(max_size=60)
    | st.integers(1, 20_000).map(lambda n: nested(n))
    | st.integers(1, 20_000).map(lambda n: '{"a":' * n + "1" + "}" * n)
)


# -- the properties --


def check_parse(raw: str | bytes) -> Command | RunwireError:
    try:
        command = parse_frame(raw, MAX)
    except RunwireError as exc:
        assert exc.code in DOCUMENTED_CODES, f"undocumented code {exc.code!r}: {exc.message}"
        assert exc.message and encodable(exc.message)
        return exc
    assert isinstance(command, COMMANDS)
    for f in dataclasses.fields(command):
        value = getattr(command, f.name)
        assert not isinstance(value, str) or storable(value), f"{f.name}={value!r}"
    if command.request_id is not None:
        assert 0 < len(command.request_id) <= MAX_ID_CHARS
    return command


def check_request_id(raw: str | bytes, outcome: Command | RunwireError) -> None:
    if not isinstance(raw, str):
        return  # the socket handler echoes no request_id for a binary frame that failed
    rid = request_id_of(raw)
    assert rid is None or (0 < len(rid) <= MAX_ID_CHARS and storable(rid))
    if isinstance(outcome, RunwireError):
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            return
        sent = body.get("request_id") if isinstance(body, dict) else None
        if isinstance(sent, str) and 0 < len(sent) <= MAX_ID_CHARS and storable(sent):
            assert rid == sent  # a readable request_id is echoed in the error


@settings(FUZZ)
@given(raw=hostile_frame)
@example(raw=nested(5000))  # deeper than the JSON decoder recurses
@example(raw="[" * 3000)
@example(raw='{"type":"ping","request_id":"\\ud800"}')  # echoed, it could not be encoded
@example(raw='{"type":"\\udc00"}')  # quoted in the error message
@example(raw='{"type":"user_message","content":"hi \\udfff"}')  # stored, it could not be
@example(raw='{"type":"user_message","content":"hi \\u0000","request_id":"\\u0000"}')  # nor NUL
@example(raw="\ud800" * 20_000)  # a long text holding raw surrogates: measured, not encoded
@example(raw='{"type":"resume","run_id":"r","after_seq":' + "9" * 5000 + "}")
@example(raw='{"type":"resume","run_id":"r","after_seq":NaN}')
@example(raw=b"\xef\xbb\xbf" + b'{"type":"ping"}')
@example(raw=b'{"type":"ping","request_id":"\xed\xa0\x80"}')  # UTF-8 of a surrogate: not UTF-8
def test_any_frame_is_a_command_or_a_documented_error(raw: str | bytes) -> None:
    check_request_id(raw, check_parse(raw))


# -- valid frames round-trip --

# Valid text: Unicode without NUL (refused in every field: no database backend can keep it).
ident = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1,
    max_size=100,
)
content = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=300
).filter(str.strip)
unknown_fields = st.dictionaries(
    st.text(max_size=10).filter(
        lambda k: k not in {"type", "request_id", *(n for f in FIELDS.values() for n in f)}
    ),
    json_values(st.text(st.characters(codec="utf-8"), max_size=10)),
    max_size=3,
)
valid_command = st.one_of(
    st.builds(
        UserMessage,
        content=content,
        thread_id=st.none() | ident,
        client_message_id=st.none() | ident,
        policy=st.none() | st.sampled_from(ConcurrencyPolicy),
        request_id=st.none() | ident,
    ),
    st.builds(StopAgent, run_id=ident, request_id=st.none() | ident),
    st.builds(
        Resume,
        run_id=ident,
        after_seq=st.integers(0, MAX_SEQ),
        request_id=st.none() | ident,
        epoch=st.none() | ident,
    ),
    st.builds(GetThreadHistory, thread_id=ident, request_id=st.none() | ident),
    st.builds(Ping, request_id=st.none() | ident),
)
TYPE_OF = {
    UserMessage: "user_message",
    StopAgent: "stop_agent",
    Resume: "resume",
    GetThreadHistory: "get_thread_history",
    Ping: "ping",
}


@settings(FUZZ)
@given(
    command=valid_command,
    extra=unknown_fields,
    ascii_only=st.booleans(),
    binary=st.booleans(),
    explicit_nulls=st.booleans(),
)
def test_every_valid_message_round_trips(
    command: Command, extra: dict[str, Any], ascii_only: bool, binary: bool, explicit_nulls: bool
) -> None:
    """A frame written from the command's fields parses back to the same command; unknown
    fields are ignored and an optional field sent as null is the same as leaving it out."""
    body: dict[str, Any] = {**extra, "type": TYPE_OF[type(command)]}
    for f in dataclasses.fields(command):
        value = getattr(command, f.name)
        if value is not None or explicit_nulls:
            body[f.name] = value
    text = json.dumps(body, ensure_ascii=ascii_only)
    assert parse_frame(text.encode() if binary else text, MAX) == command


def test_the_largest_content_fits_a_frame() -> None:
    body = {"type": "user_message", "content": "x" * MAX_CONTENT_CHARS, "request_id": "r" * 100}
    assert parse_frame(json.dumps(body), MAX) == UserMessage(
        "x" * MAX_CONTENT_CHARS, request_id="r" * 100
    )
