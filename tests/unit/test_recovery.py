"""Whole or refused: the judgement of a client's position in a run's stream (pure)."""

import pytest

from runwire.errors import ReloadReason, ReloadRequired
from runwire.events import EventType, RunEvent
from runwire.protocol.recovery import RunStream
from runwire.transport.errors import http_status

pytestmark = pytest.mark.unit


def events(*seqs: int) -> list[RunEvent]:
    return [
        RunEvent(EventType.AGENT_THINKING, "run_1", "thr_1", s, "data", "ts", epoch="e2")
        for s in seqs
    ]


LIVE = RunStream("run_1", "e2", last_seq=None)
ENDED = RunStream("run_1", "e2", last_seq=6)
TRIMMED = RunStream("run_1", "e2", last_seq=6, trimmed=True)


def refusal(call: object, *args: object, **kw: object) -> ReloadRequired:
    with pytest.raises(ReloadRequired) as caught:
        call(*args, **kw)  # type: ignore[operator]
    return caught.value


def test_a_position_under_another_epoch_is_refused_with_the_current_one() -> None:
    refused = refusal(ENDED.check, 3, "e1")
    assert refused.reason is ReloadReason.EPOCH_CHANGED
    assert refused.wire_fields() == {"run_id": "run_1", "reason": "epoch_changed", "epoch": "e2"}
    assert refused.code == "reload_required" and http_status(refused) == 409
    assert ENDED.check(3, "e2") is True
    assert ENDED.check(3, None) is True  # v1 resumes name no epoch: any is accepted


def test_a_position_past_the_end_of_an_ended_run_is_unknown() -> None:
    assert refusal(ENDED.check, 7, None).reason is ReloadReason.POSITION_UNKNOWN
    assert ENDED.check(6, None) is True


def test_a_trimmed_run_is_whole_only_for_a_client_that_has_all_of_it() -> None:
    assert refusal(TRIMMED.check, 0, None).reason is ReloadReason.HISTORY_EXPIRED
    assert refusal(TRIMMED.check, 5, "e2").reason is ReloadReason.HISTORY_EXPIRED
    assert refusal(TRIMMED.check, 7, None).reason is ReloadReason.POSITION_UNKNOWN
    assert refusal(TRIMMED.check, 6, "old").reason is ReloadReason.EPOCH_CHANGED
    assert TRIMMED.check(6, None) is False  # nothing is missing: nothing to read


def test_the_read_starts_at_the_clients_last_event_so_it_proves_the_position() -> None:
    assert RunStream.read_after(0) == 0
    assert RunStream.read_after(5) == 4
    assert LIVE.whole(3, events(3, 4, 5), from_store=False) == events(4, 5)
    assert LIVE.whole(5, events(5), from_store=False) == []
    assert LIVE.whole(0, events(1, 2), from_store=False) == events(1, 2)
    assert LIVE.whole(0, [], from_store=True) == []  # queued: nothing yet


def test_a_live_run_that_never_reached_the_position_is_refused() -> None:
    assert refusal(LIVE.whole, 9, [], from_store=False).reason is ReloadReason.POSITION_UNKNOWN
    assert refusal(LIVE.whole, 2, [], from_store=True).reason is ReloadReason.POSITION_UNKNOWN


def test_missing_events_are_refused_never_skipped() -> None:
    incomplete = ReloadReason.HISTORY_INCOMPLETE
    # a hole inside the replay
    assert refusal(ENDED.whole, 2, events(2, 3, 5, 6), from_store=True).reason is incomplete
    # the client's own last event is missing although the run went past it
    assert refusal(ENDED.whole, 2, events(3, 4, 5, 6), from_store=True).reason is incomplete
    assert refusal(ENDED.whole, 2, [], from_store=True).reason is incomplete
    # the stored tail stops short of the run's last event
    assert refusal(ENDED.whole, 0, events(1, 2, 3), from_store=True).reason is incomplete
    assert ENDED.whole(0, events(1, 2, 3, 4, 5, 6), from_store=True) == events(1, 2, 3, 4, 5, 6)


def test_held_history_may_lag_the_recorded_end_by_the_last_event() -> None:
    # The end is recorded just before the last event is published: live delivery brings it.
    assert ENDED.whole(2, events(2, 3, 4, 5), from_store=False) == events(3, 4, 5)


def test_a_resume_from_the_first_event_gets_the_rest() -> None:
    assert LIVE.whole(1, events(1, 2, 3), from_store=False) == events(2, 3)
    assert ENDED.whole(1, events(1, 2, 3, 4, 5, 6), from_store=True) == events(2, 3, 4, 5, 6)
    assert refusal(LIVE.whole, 1, events(2, 3), from_store=False).reason is (
        ReloadReason.HISTORY_INCOMPLETE
    )
