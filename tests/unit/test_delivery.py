"""The per-connection delivery core: each seq exactly once, in order, across resume races.

These are worked cases and regressions; test_delivery_machine.py explores any interleaving.
"""

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runwire.events import EventType, RunEvent
from runwire.protocol.delivery import Delivery

pytestmark = pytest.mark.unit


def ev(seq: int, run: str = "r", terminal: bool = False) -> RunEvent:
    kind = EventType.AGENT_COMPLETED if terminal else EventType.AGENT_THINKING
    return RunEvent(kind, run, "t", seq, "supervisor", "ts", epoch="e1")


def seqs(events: list[RunEvent]) -> list[int]:
    return [e.seq for e in events]


def test_live_events_pass_and_repeats_are_dropped() -> None:
    d = Delivery()
    assert seqs(d.live(ev(1))) == [1]
    assert seqs(d.live(ev(1))) == []
    assert seqs(d.live(ev(2))) == [2]


def test_resume_merges_replay_with_live_events_that_raced_it() -> None:
    d = Delivery()
    d.begin_resume("r", 2)
    assert d.live(ev(6)) == []  # buffered while the replay is read
    assert d.live(ev(7)) == []
    out = d.finish_resume("r", [ev(3), ev(4), ev(5), ev(6)])
    assert seqs(out) == [3, 4, 5, 6, 7]
    assert seqs(d.live(ev(8))) == [8]


def test_resume_never_repeats_what_this_connection_already_sent() -> None:
    d = Delivery()
    d.live(ev(1))
    d.live(ev(2))
    d.begin_resume("r", 0)
    assert seqs(d.finish_resume("r", [ev(1), ev(2), ev(3)])) == [3]


def test_a_connection_that_joined_mid_run_can_fill_the_start() -> None:
    d = Delivery()
    assert seqs(d.live(ev(46))) == [46]  # connected mid-run: live events from 46
    assert seqs(d.live(ev(47))) == [47]
    d.begin_resume("r", 10)
    d.live(ev(48))
    out = d.finish_resume("r", [ev(n) for n in range(11, 48)])
    assert seqs(out) == [*range(11, 46), 48]
    assert seqs(d.live(ev(48))) == [] and seqs(d.live(ev(49))) == [49]


def test_replay_and_buffer_overlap_is_sent_once() -> None:
    d = Delivery()
    d.begin_resume("r", 0)
    d.live(ev(3))
    d.live(ev(4))
    assert seqs(d.finish_resume("r", [ev(1), ev(2), ev(3)])) == [1, 2, 3, 4]


def test_nested_resumes_keep_buffering_until_the_last() -> None:
    d = Delivery()
    d.begin_resume("r", 0)
    d.begin_resume("r", 1)
    assert d.live(ev(3)) == []
    assert seqs(d.finish_resume("r", [ev(1), ev(2)])) == [1, 2]
    assert seqs(d.finish_resume("r", [ev(2)])) == [3]


def test_a_finished_run_keeps_one_range_and_is_not_sent_again() -> None:
    d = Delivery()
    d.live(ev(1))
    d.live(ev(2, terminal=True))
    d.begin_resume("r", 0)  # asks again for a run this connection already delivered
    assert d.finish_resume("r", [ev(1), ev(2, terminal=True)]) == []
    d.begin_resume("x", 0)
    assert d.live(ev(1, run="x")) == []
    assert seqs(d.abandon_resume("x")) == [1]  # what was held back goes out
    d.live(ev(2, run="x", terminal=True))
    assert d.tracked_runs == 2  # one range per run, however many events it had
    assert d.abandon_resume("nothing") == []


def test_the_live_tail_of_a_run_that_ended_before_the_resume_is_not_repeated() -> None:
    """Regression: the range of a run was dropped at its terminal event, so a resume processed
    after the run ended live on this connection replayed that live tail a second time."""
    d = Delivery()  # reconnected; the client holds seq 1..2 from its previous connection
    assert seqs(d.live(ev(3))) == [3]
    assert seqs(d.live(ev(4, terminal=True))) == [4]
    d.begin_resume("r", 2)
    assert d.finish_resume("r", [ev(3), ev(4, terminal=True)]) == []


def test_nested_resumes_finishing_out_of_order_leave_no_gap() -> None:
    """Regression (found by test_delivery_machine): a nested resume's replay was taken to cover
    everything from the lowest position asked, so the lower resume then sent nothing of it."""
    d = Delivery()  # reconnected; the client holds seq 1 and asks twice, after 1 and after 0
    d.begin_resume("r", 1)
    d.begin_resume("r", 0)
    assert seqs(d.finish_resume("r", [ev(2), ev(3)])) == [2, 3]
    assert seqs(d.finish_resume("r", [ev(1), ev(2), ev(3)])) == [1]


def test_a_failed_lower_resume_does_not_count_as_delivered() -> None:
    d = Delivery()
    d.begin_resume("r", 0)
    d.begin_resume("r", 2)
    assert d.abandon_resume("r") == []  # the resume after 0 failed; the other is still pending
    assert seqs(d.finish_resume("r", [ev(3), ev(4)])) == [3, 4]
    d.begin_resume("r", 0)
    assert seqs(d.finish_resume("r", [ev(n) for n in range(1, 5)])) == [1, 2]


def test_finish_without_begin_passes_through() -> None:
    assert seqs(Delivery().finish_resume("r", [ev(1), ev(2)])) == [1, 2]


def sent(d: Delivery, events: list[RunEvent]) -> list[int | str]:
    """What the client gets, as the adapters send it: each event's seq, after a ``reload``
    notice (``reload_required``, ``epoch_changed``) when its numbering is not the one before."""
    out: list[int | str] = []
    for event in events:
        if d.renumbered(event):
            out.append(f"reload {event.epoch}")
        out.append(event.seq)
    return out


def e2(seq: int, terminal: bool = False) -> RunEvent:
    """An event of the run's new numbering, under epoch e2 (another node closed the run)."""
    return dataclasses.replace(ev(seq, terminal=terminal), epoch="e2")


def test_a_run_renumbered_under_a_new_epoch_is_flagged_once_and_its_new_events_pass() -> None:
    d = Delivery()
    assert sent(d, [x for seq in (1, 2, 3, 4) for x in d.live(ev(seq))]) == [1, 2, 3, 4]
    # Another node closed the run after its stored events (up to 2), under epoch e2: the client
    # is told once, and gets the new numbering, seqs it had too.
    assert sent(d, d.live(e2(3))) == ["reload e2", 3]
    assert sent(d, [*d.live(e2(4)), *d.live(e2(5, terminal=True))]) == [4, 5]
    # Its resume from the start under e2 then sends only what it lacks.
    d.begin_resume("r", 0, "e2")
    assert sent(d, d.finish_resume("r", [e2(seq) for seq in (1, 2, 3, 4, 5)])) == [1, 2]
    assert not d.renumbered(ev(9, run="other"))  # a run seen for the first time


def test_a_run_followed_only_through_a_resume_is_renumbered_like_a_live_one() -> None:
    """Regression: the epoch was learnt from live events only. A connection that had a run
    only through a resume was not told of its renumbering, and the new numbering's events,
    whose seqs the replay had sent under the old epoch, were dropped: terminal event included,
    so the client heard nothing more of the run."""
    d = Delivery()  # reconnected; the client holds seq 1..2 of e1
    d.begin_resume("r", 2, "e1")
    # The lost node's held history: seq 3..5, of which only 1..3 were stored.
    assert sent(d, d.finish_resume("r", [ev(3), ev(4), ev(5)])) == [3, 4, 5]
    # Another node closes the run after seq 3, under e2.
    assert sent(d, d.live(e2(4))) == ["reload e2", 4]
    assert sent(d, d.live(e2(5, terminal=True))) == [5]


def test_a_client_that_resumed_holding_all_is_told_of_a_renumbering() -> None:
    d = Delivery()  # reconnected holding seq 1..5 of e1: nothing to replay
    d.begin_resume("r", 5, "e1")
    assert d.finish_resume("r", []) == []
    assert sent(d, d.live(e2(4, terminal=True))) == ["reload e2", 4]


def test_a_renumbering_that_races_a_replay_comes_after_it() -> None:
    """The run is taken over while the replay (of the old numbering) is being read: its new
    events wait in the buffer, then go out after the replay, behind the notice."""
    d = Delivery()
    d.begin_resume("r", 0, None)
    assert d.live(ev(6)) == []  # the lost node's last event, live
    assert d.live(e2(4)) == [] and d.live(e2(5, terminal=True)) == []
    out = d.finish_resume("r", [ev(n) for n in range(1, 6)])
    assert sent(d, out) == [1, 2, 3, 4, 5, 6, "reload e2", 4, 5]


def test_a_replay_of_the_new_numbering_read_before_its_events_arrived_goes_first() -> None:
    d = Delivery()
    d.begin_resume("r", 0, None)
    assert d.live(ev(6)) == []  # the lost node's last event, before the takeover
    # Read after the takeover renumbered the run, before its closing events were published.
    out = d.finish_resume("r", [e2(n) for n in range(1, 4)])
    assert sent(d, out) == [1, 2, 3, "reload e1", 6]
    # Its closing events then come live: the client is told again, and gets them.
    assert sent(d, d.live(e2(4, terminal=True))) == ["reload e2", 4]


def test_live_events_keep_waiting_while_a_nested_resume_is_pending_after_one_failed() -> None:
    d = Delivery()
    d.begin_resume("r", 0)
    d.begin_resume("r", 2)
    assert d.abandon_resume("r") == []
    assert d.live(ev(5)) == []  # the other resume's replay is still being read
    assert seqs(d.finish_resume("r", [ev(3), ev(4)])) == [3, 4, 5]


def test_a_client_resuming_from_its_first_event_is_told_of_a_renumbering() -> None:
    d = Delivery()  # reconnected holding seq 1 of e1, which is all there is
    d.begin_resume("r", 1, "e1")
    assert d.finish_resume("r", []) == []
    assert sent(d, d.live(e2(2))) == ["reload e2", 2]


def test_a_client_holding_nothing_is_not_told_to_reload() -> None:
    d = Delivery()  # a resume from the start names an epoch, but the client holds no event
    d.begin_resume("r", 0, "e1")
    assert sent(d, d.finish_resume("r", [e2(1), e2(2)])) == [1, 2]


def test_a_resume_naming_its_epoch_after_one_that_did_not_is_still_told() -> None:
    d = Delivery()  # the client holds 1..3 of e1; its first resume (an older client) named none
    d.begin_resume("r", 3)
    assert d.abandon_resume("r") == []
    d.begin_resume("r", 3, "e1")
    assert d.finish_resume("r", []) == []
    assert sent(d, d.live(e2(4))) == ["reload e2", 4]


def test_a_live_event_repeated_from_inside_what_was_sent_is_dropped() -> None:
    d = Delivery()
    assert seqs([x for n in (1, 2, 3) for x in d.live(ev(n))]) == [1, 2, 3]
    assert d.live(ev(2)) == []  # a bus redelivery of an event before the last one sent
    assert d.live(ev(1)) == []


def test_a_live_event_below_a_gap_is_not_taken_as_sent() -> None:
    d = Delivery()
    assert seqs([*d.live(ev(1)), *d.live(ev(2)), *d.live(ev(5))]) == [1, 2, 5]
    assert seqs(d.live(ev(3))) == [3]  # 3 and 4 were never sent: they go out when they come
    assert seqs(d.live(ev(4))) == [4]


def test_a_replay_right_after_a_live_stretch_joins_it_so_nothing_is_sent_twice() -> None:
    d = Delivery()
    assert seqs([x for n in (1, 2, 3) for x in d.live(ev(n))]) == [1, 2, 3]
    d.begin_resume("r", 3)
    assert seqs(d.finish_resume("r", [ev(4), ev(5)])) == [4, 5]
    d.begin_resume("r", 0)  # the client asks for the whole run again: it has all of it
    assert d.finish_resume("r", [ev(n) for n in range(1, 6)]) == []


def test_an_event_the_client_had_that_raced_its_resume_does_not_count_as_sent() -> None:
    d = Delivery()  # reconnected holding 1..5
    d.begin_resume("r", 5, "e1")
    assert d.live(ev(5)) == []  # a late live copy of its last event
    assert d.finish_resume("r", []) == []
    assert seqs(d.live(ev(6))) == [6]
    d.begin_resume("r", 0)  # later it asks for the start: everything but 6 goes out
    assert seqs(d.finish_resume("r", [ev(n) for n in range(1, 7)])) == [1, 2, 3, 4, 5]


def test_a_renumbered_runs_events_below_the_old_position_reach_a_resuming_client() -> None:
    """The run was taken over while the client resumed: its new numbering restarts below the
    client's position, and those events must not be taken as ones it already holds."""
    d = Delivery()  # reconnected holding 1..5 of e1
    d.begin_resume("r", 5, "e1")
    assert d.live(e2(3)) == [] and d.live(e2(4)) == []
    assert sent(d, d.finish_resume("r", [])) == ["reload e2", 3, 4]


def test_a_nested_resume_naming_the_epoch_counts_for_both() -> None:
    d = Delivery()  # the first resume (an older client) named no epoch, the second does
    d.begin_resume("r", 5)
    d.begin_resume("r", 5, "e1")
    assert d.live(e2(3)) == []
    assert d.finish_resume("r", []) == []
    assert sent(d, d.finish_resume("r", [])) == ["reload e2", 3]


def test_a_replay_the_store_had_not_caught_up_with_fills_the_start_once() -> None:
    d = Delivery()  # joined mid-run: 3..5 came live
    assert seqs([x for n in (3, 4, 5) for x in d.live(ev(n))]) == [3, 4, 5]
    d.begin_resume("r", 0)
    assert seqs(d.finish_resume("r", [ev(1), ev(2)])) == [1, 2]  # the store was behind
    d.begin_resume("r", 0)
    assert d.finish_resume("r", [ev(n) for n in range(1, 6)]) == []


def test_an_event_never_sent_between_two_sent_stretches_still_goes_out() -> None:
    d = Delivery()
    assert seqs([*d.live(ev(4)), *d.live(ev(5))]) == [4, 5]
    d.begin_resume("r", 0)
    assert seqs(d.finish_resume("r", [ev(1), ev(2)])) == [1, 2]  # read before 3 was stored
    d.begin_resume("r", 0)
    assert 3 in seqs(d.finish_resume("r", [ev(n) for n in range(1, 6)]))


def test_an_event_the_client_said_it_had_is_sent_when_it_asks_from_the_start() -> None:
    d = Delivery()
    assert seqs([x for n in (1, 2, 3) for x in d.live(ev(n))]) == [1, 2, 3]
    d.begin_resume("r", 4)  # the client says it holds 4, which this connection never sent
    assert seqs(d.finish_resume("r", [ev(5), ev(6)])) == [5, 6]
    d.begin_resume("r", 0)  # then it asks for everything
    assert 4 in seqs(d.finish_resume("r", [ev(n) for n in range(1, 7)]))


def test_an_empty_read_with_live_events_that_raced_it_sends_them() -> None:
    d = Delivery()
    d.begin_resume("r", 2)
    assert d.live(ev(3)) == []
    assert seqs(d.finish_resume("r", [])) == [3]


def test_an_old_numberings_last_events_go_out_before_a_replay_of_the_new_one() -> None:
    d = Delivery()
    d.begin_resume("r", 0)
    assert d.live(ev(6)) == []  # the lost node's last event
    assert d.live(e2(4)) == []  # then the new numbering's, live
    out = d.finish_resume("r", [e2(1), e2(2), e2(3)])  # read after the takeover
    assert sent(d, out) == [6, "reload e2", 1, 2, 3, 4]


# --- batches (a streamed answer's chunks, published together) ---------------------------------


@settings(max_examples=300, deadline=None)
@given(
    before=st.lists(st.tuples(st.integers(1, 12), st.booleans()), max_size=6),
    first=st.integers(1, 12),
    count=st.integers(1, 5),
    renumbered=st.booleans(),
    resuming=st.booleans(),
)
def test_a_batch_goes_out_as_its_events_would_one_by_one(
    before: list[tuple[int, bool]], first: int, count: int, renumbered: bool, resuming: bool
) -> None:
    """Whatever the connection sent of the run before (of either numbering), and whether a
    resume of it is under way: a batch sends what its events one by one would, and leaves the
    connection where they would have."""

    def at(seq: int, new: bool) -> RunEvent:
        return e2(seq) if new else ev(seq)

    def prepared() -> Delivery:
        d = Delivery()
        for seq, new in before:
            d.live(at(seq, new))
        if resuming:
            d.begin_resume("r", 0)
        return d

    batch = [at(seq, renumbered) for seq in range(first, first + count)]
    one_by_one, together = prepared(), prepared()
    expected = [out for event in batch for out in one_by_one.live(event)]
    assert together.live_batch(batch) == expected
    if resuming:
        stored = [at(seq, renumbered) for seq in range(1, first)]
        assert together.finish_resume("r", stored) == one_by_one.finish_resume("r", stored)
    later = [at(seq, renumbered) for seq in range(1, first + count + 3)]
    assert [together.live(e) for e in later] == [one_by_one.live(e) for e in later]


def test_a_batch_that_follows_what_was_sent_extends_it() -> None:
    d = Delivery()
    d.live(ev(1))
    d.live(ev(2))
    assert seqs(d.live_batch([ev(3), ev(4)])) == [3, 4]
    assert [seqs(d.live(ev(n))) for n in range(1, 6)] == [[], [], [], [], [5]]


def test_a_batch_past_a_gap_or_with_one_inside_leaves_the_gap_open() -> None:
    d = Delivery()
    d.live(ev(1))
    assert seqs(d.live_batch([ev(3), ev(4)])) == [3, 4]  # seq 2 has not been sent here
    assert seqs(d.live(ev(2))) == [2]
    e = Delivery()
    assert seqs(e.live_batch([ev(1), ev(4)])) == [1, 4]
    assert seqs(e.live(ev(2))) == [2] and seqs(e.live(ev(3))) == [3]
