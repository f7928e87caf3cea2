"""The SSE encoding of run events and the positions a reconnecting client names (pure)."""

import json

import pytest

from runwire.errors import InputError
from runwire.events import EventType, RunEvent
from runwire.transport.event_stream import parse_last_event_id, sse_frame, wants_event_stream

pytestmark = pytest.mark.unit


def test_each_event_is_one_message_whose_id_is_its_epoch_and_seq() -> None:
    event = RunEvent(
        EventType.TEXT_DELTA,
        "run_1",
        "thr_1",
        41,
        "reporting",
        "ts",
        {"delta": "a\nb"},
        "s",
        epoch="3f9a01c2",
    )
    frame = sse_frame(event)
    assert frame.endswith("\n\n") and frame.count("\n") == 3  # the data stays on one line
    id_line, data_line = frame.rstrip("\n").split("\n")
    assert id_line == "id: 3f9a01c2:41"
    assert json.loads(data_line.removeprefix("data: ")) == event.to_wire()
    assert parse_last_event_id(id_line.removeprefix("id: ")) == ("3f9a01c2", 41)


@pytest.mark.parametrize(
    "value", ["", "41", ":41", "e:", "e:-1", "e:4.5", "e:x", "e:٤", "e:" + "9" * 200]
)
def test_a_last_event_id_this_server_never_sent_is_refused(value: str) -> None:
    with pytest.raises(InputError, match="Last-Event-ID"):
        parse_last_event_id(value)


def test_the_stream_is_chosen_by_the_accept_header() -> None:
    assert wants_event_stream("text/event-stream")
    assert wants_event_stream("application/json, Text/Event-Stream; q=0.9")
    assert not wants_event_stream(None)
    assert not wants_event_stream("application/json")
    assert not wants_event_stream("*/*")
