import dataclasses
import enum
import json
import time

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runwire.events import EventType, Redactor, RunEvent
from runwire.events.model import EventDraft, Stamper, TextDrafts, encode_alike, stamp_ms, utc_now
from runwire.events.redaction import REDACTED, _scrub

pytestmark = pytest.mark.unit


def event(
    seq: int = 1, kind: EventType = EventType.AGENT_THINKING, parent: str | None = None
) -> RunEvent:
    return RunEvent(
        kind,
        "run_1",
        "thr_1",
        seq,
        "data",
        "2026-01-01T00:00:00.000Z",
        {"reasoning": "because"},
        parent,
        epoch="e1",
    )


def test_wire_form_has_the_protocol_fields_and_round_trips() -> None:
    e = event(parent="supervisor")
    body = json.loads(e.json)
    assert body == {
        "type": "agent_thinking",
        "run_id": "run_1",
        "thread_id": "thr_1",
        "seq": 1,
        "epoch": "e1",
        "agent_name": "data",
        "parent_agent": "supervisor",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "reasoning": "because",
    }
    assert RunEvent.from_wire(body) == e


def test_a_stored_body_is_read_under_the_runs_current_epoch() -> None:
    stored = json.loads(event().json)  # written under epoch e1
    reread = RunEvent.from_wire(stored, epoch="e2")
    assert reread.epoch == "e2" and json.loads(reread.json) == {**stored, "epoch": "e2"}
    legacy = {k: v for k, v in stored.items() if k != "epoch"}  # stored before epochs existed
    assert RunEvent.from_wire(legacy, epoch="e2") == reread
    with pytest.raises(KeyError):
        RunEvent.from_wire(legacy)  # an event is never made without an epoch


def test_data_cannot_overwrite_identity_fields() -> None:
    e = RunEvent(
        EventType.AGENT_STARTED,
        "run_1",
        "thr_1",
        3,
        "x",
        "t",
        {"seq": 99, "run_id": "evil", "epoch": "forged"},
        epoch="e1",
    )
    assert e.to_wire()["seq"] == 3
    assert e.to_wire()["run_id"] == "run_1"
    assert e.to_wire()["epoch"] == "e1"


def test_only_the_roots_closing_event_is_terminal() -> None:
    assert event(kind=EventType.AGENT_COMPLETED).is_terminal
    assert not event(kind=EventType.AGENT_COMPLETED, parent="supervisor").is_terminal
    assert not event(kind=EventType.AGENT_THINKING).is_terminal


def test_secret_keys_are_redacted_at_any_depth() -> None:
    cleaned = Redactor().clean(
        {
            "api_key": "sk-1",
            "nested": {"Password": "p", "list": [{"access_token": "t"}]},
            "authorization": "Bearer x",
            "model": "gpt-4o",
            "session_id": "s",
            "credentials": 1,
            "prompt_tokens": 10,
            "tokens": 12,
            "x-token": "t",
            "token": "t",
        }
    )
    assert cleaned == {
        "api_key": REDACTED,
        "nested": {"Password": REDACTED, "list": [{"access_token": REDACTED}]},
        "authorization": REDACTED,
        "model": "gpt-4o",
        "session_id": REDACTED,
        "credentials": REDACTED,
        "prompt_tokens": 10,
        "tokens": 12,
        "x-token": REDACTED,
        "token": REDACTED,
    }


def test_secret_looking_values_are_redacted_under_any_key() -> None:
    text = "call with Bearer abcdefghijklmnop and sk-abcdefghijklmnopqrstuv please"
    cleaned = Redactor().clean({"note": text})["note"]
    assert "abcdefghijklmnop" not in cleaned
    assert cleaned.count(REDACTED) == 2


def test_values_are_bounded() -> None:
    r = Redactor(max_chars=10, max_items=3, max_depth=2)
    assert r.clean("x" * 25).startswith("x" * 10 + "... [TRUNCATED: 25 chars]")
    assert r.clean(list(range(5))) == [0, 1, 2, "[TRUNCATED: 2 more items]"]
    assert r.clean({str(i): i for i in range(5)})["[TRUNCATED]"] == "2 more keys"
    assert r.clean({"a": {"b": {"c": 1}}}) == {"a": {"b": "[TRUNCATED: too deep]"}}
    assert r.clean({"a": [[1]]}) == {"a": ["[TRUNCATED: too deep]"]}
    assert r.clean((None, True, 2.5)) == [None, True, 2.5]
    assert r.clean(object()).startswith("<object ob... [TRUNCATED")


@pytest.mark.parametrize(
    ("ms", "stamp"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1_764_590_400_123, "2025-12-01T12:00:00.123Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        # Any stored integer has a stamp: RFC 3339 writes years 1 to 9999, the rest are cut to it.
        (-62_135_596_800_000 - 14 * 3_600_000, "0001-01-01T00:00:00.000Z"),
        (-(2**63), "0001-01-01T00:00:00.000Z"),
        (2**63 - 1, "9999-12-31T23:59:59.999Z"),
    ],
)
def test_every_millisecond_count_has_a_stamp(ms: int, stamp: str) -> None:
    assert stamp_ms(ms) == stamp


def test_a_stream_of_stamps_reads_the_clock_at_each_event(monkeypatch: pytest.MonkeyPatch) -> None:
    # The stamper reuses the formatted date and time within a second: every event still gets
    # the stamp of its own millisecond, across seconds, minutes and days alike.
    moments = [
        1_764_590_399_998,
        1_764_590_399_999,
        1_764_590_400_000,
        1_764_590_400_000,
        1_764_590_400_001,
        1_764_590_400_999,
        1_764_590_401_000,
        1_764_676_800_042,
    ]
    clock = iter(moments)
    monkeypatch.setattr("runwire.events.model.time.time_ns", lambda: next(clock) * 1_000_000)
    stamper = Stamper()
    assert [stamper.now() for _ in moments] == [stamp_ms(ms) for ms in moments]
    assert stamp_ms(moments[1]) == "2025-12-01T11:59:59.999Z"
    assert stamp_ms(moments[2]) == "2025-12-01T12:00:00.000Z"


@pytest.mark.parametrize("first", [-1, -2, 0, 1, 999, 1000, -1000, -1001])
def test_a_new_stamper_stamps_its_first_event_whatever_the_clock_reads(
    monkeypatch: pytest.MonkeyPatch, first: int
) -> None:
    monkeypatch.setattr("runwire.events.model.time.time_ns", lambda: first * 1_000_000)
    assert Stamper().now() == stamp_ms(first)


def test_utc_now_is_the_current_millisecond() -> None:
    before = stamp_ms(time.time_ns() // 1_000_000)
    now = utc_now()
    after = stamp_ms(time.time_ns() // 1_000_000)
    assert before <= now <= after  # same fixed-width format: text order is time order
    assert len(now) == len("2026-01-01T00:00:00.000Z")


def test_an_event_decoded_from_another_nodes_frame_is_that_event_and_keeps_its_bytes() -> None:
    sent = event(parent="supervisor")
    wire = sent.wire
    received = RunEvent.decode(wire)
    assert received == sent
    # Its recipients get the very bytes that came in: nothing is encoded again on this node.
    assert received.wire is wire
    assert received.type is sent.type  # the member itself, not a string equal to it


def test_a_frame_of_an_event_type_this_node_does_not_know_is_refused() -> None:
    body = json.loads(event().wire)
    with pytest.raises(ValueError, match="tool_renamed"):
        RunEvent.decode(json.dumps({**body, "type": "tool_renamed"}).encode())


def test_redaction_bounds_are_exact() -> None:
    r = Redactor(max_chars=10, max_items=3, max_depth=2)
    assert r.clean("x" * 10) == "x" * 10  # exactly the limit: kept whole
    assert r.clean("x" * 11) == "x" * 10 + "... [TRUNCATED: 11 chars]"
    assert r.clean({str(i): i for i in range(3)}) == {"0": 0, "1": 1, "2": 2}
    assert r.clean({str(i): i for i in range(4)}) == {
        "0": 0,
        "1": 1,
        "2": 2,
        "[TRUNCATED]": "1 more keys",
    }
    assert r.clean([["a"]]) == [["a"]]
    assert r.clean([[["a"]]]) == [["[TRUNCATED: too deep]"]]


def test_keys_that_are_not_strings_become_strings() -> None:
    assert Redactor().clean({5: "five", None: [1], 2.5: {"k": 1}}) == {
        "5": "five",
        "None": [1],
        "2.5": {"k": 1},
    }


def test_a_long_text_is_redacted_too() -> None:
    text = "x" * 300 + " Bearer abcdefghijklmnop " + "y" * 300
    cleaned = Redactor(max_chars=1000).clean(text)
    assert cleaned == "x" * 300 + f" {REDACTED} " + "y" * 300


def test_a_long_text_is_bounded_exactly() -> None:
    # Texts over 200 characters take another path than short ones (their verdicts are not cached).
    r = Redactor(max_chars=300)
    assert r.clean("x" * 300) == "x" * 300  # exactly the limit: kept whole
    assert r.clean("x" * 301) == "x" * 300 + "... [TRUNCATED: 301 chars]"
    # The bound is on the redacted text: the credential is gone before the text is measured.
    text = "Bearer abcdefghijklmnop " + "y" * 400
    assert r.clean(text) == REDACTED + " " + "y" * 289 + "... [TRUNCATED: 411 chars]"


def test_long_texts_are_not_kept_in_the_verdict_cache() -> None:
    # The cache of short strings' verdicts holds thousands of entries: long tool results kept
    # there would hold on to megabytes once the run is over.
    _scrub.cache_clear()
    Redactor().clean(["x" * 10_000, "y" * 201])
    assert _scrub.cache_info().currsize == 0
    Redactor().clean(["model", "x" * 200])
    assert _scrub.cache_info().currsize == 2


def test_a_tool_result_of_none_stays_null() -> None:
    r = Redactor()
    assert r.clean(None) is None
    assert r.clean({"result": None}) == {"result": None}
    assert r.clean([None]) == [None]


class _Mode(enum.StrEnum):
    FAST = "fast"
    LEAKY = "Bearer abcdefghijklmnop"


def test_a_string_enum_is_cleaned_as_its_text() -> None:
    # A str subclass is not a plain str: it takes the general path, redacted and bounded the same.
    r = Redactor(max_chars=3)
    assert r.clean(_Mode.FAST) == "fas... [TRUNCATED: 4 chars]"
    assert Redactor().clean({"mode": _Mode.FAST, "auth": _Mode.LEAKY}) == {
        "mode": "fast",
        "auth": REDACTED,
    }


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)


def test_only_the_events_alike_the_first_are_encoded_from_its_template() -> None:
    # Worked cases of the property below: the events that differ from the first in one way each,
    # type, agent, parent, a second key or another key, get the frames they would encode alone.
    def draft(
        seq: int,
        data: dict[str, object],
        kind: EventType = EventType.TEXT_DELTA,
        agent: str = "reporting",
        parent: str | None = "supervisor",
    ) -> RunEvent:
        return RunEvent(
            kind, "run_1", "thr_1", seq, agent, "2026-01-01T00:00:00.000Z", data, parent, epoch="e1"
        )

    batch = [
        draft(7, {"delta": "Hel"}),
        draft(8, {"delta": "lo"}),
        draft(9, {"delta": "a"}, kind=EventType.AGENT_THINKING),
        draft(10, {"delta": "b"}, agent="data"),
        draft(11, {"delta": "c"}, parent=None),
        draft(12, {"delta": "d", "more": 1}),
        draft(13, {"text": "e"}),
    ]
    encode_alike(batch)
    assert [event._wire is not None for event in batch] == [True, True] + [False] * 5
    for event in batch:
        assert event.wire == orjson.dumps(dataclasses.replace(event).to_wire())


@settings(max_examples=300, deadline=None)
@given(
    ids=st.tuples(st.text(), st.text(), st.text(), st.text()),
    agents=st.lists(st.sampled_from(["reporting", "data", 'a"\u2028']), min_size=1, max_size=4),
    parent=st.none() | st.just("supervisor"),
    kinds=st.lists(st.sampled_from([EventType.TEXT_DELTA, EventType.AGENT_THINKING]), min_size=4),
    keys=st.lists(st.sampled_from(["delta", "reasoning", "seq", "x\n"]), min_size=4),
    values=st.lists(_JSONISH, min_size=4, max_size=4),
    first=st.integers(1, 2**31 - 5),
    other=st.integers(0, 3),
)
def test_a_batch_encoded_from_one_template_is_what_each_event_encodes_alone(
    ids: tuple[str, str, str, str],
    agents: list[str],
    parent: str | None,
    kinds: list[EventType],
    keys: list[str],
    values: list[object],
    first: int,
    other: int,
) -> None:
    run_id, thread_id, epoch, stamp = ids
    batch = [
        RunEvent(
            kinds[i],
            run_id,
            thread_id,
            first + i,
            agents[i % len(agents)],
            stamp,
            {keys[i]: values[i]} if i != other else {keys[i]: values[i], "more": 1},
            parent,
            epoch=epoch,
        )
        for i in range(4)
    ]
    encode_alike(batch)
    templated = [event._wire is not None for event in batch]
    # Data named like an identity field, or not of one key, is encoded the usual way.
    assert templated[0] == (keys[0] != "seq" and other != 0)
    assert not templated[other]
    for event in batch:
        assert event.wire == orjson.dumps(dataclasses.replace(event).to_wire())


def test_ready_answer_chunks_read_as_the_drafts_of_their_text_deltas() -> None:
    # The journal numbers TextDrafts from its strings; any other emitter reads them as drafts.
    chunks = TextDrafts("reporting", ["Hel", "lo", " world"], "supervisor")
    assert len(chunks) == 3
    assert chunks[0] == EventDraft(
        EventType.TEXT_DELTA, "reporting", {"delta": "Hel"}, "supervisor"
    )
    assert chunks[-1].data == {"delta": " world"}
    assert [d.data["delta"] for d in chunks] == ["Hel", "lo", " world"]
    tail = chunks[1:]
    assert isinstance(tail, TextDrafts) and len(tail) == 2
    assert (tail.agent_name, tail.parent_agent) == ("reporting", "supervisor")
    assert list(tail) == [chunks[1], chunks[2]]
    at_root = TextDrafts("supervisor", ["x"], None)[0]
    assert (at_root.agent_name, at_root.parent_agent) == ("supervisor", None)
    with pytest.raises(IndexError):
        chunks[3]
