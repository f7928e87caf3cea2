"""The probe's checks of one run's events: each fault a server could make is named, and a good
run passes."""

from __future__ import annotations

from typing import Any

import pytest

from runwire.errors import CheckFailed
from runwire.probe.transcript import (
    check_nesting,
    check_resumed,
    check_sequence,
    check_text,
    in_seq_order,
)

Frame = dict[str, Any]


def run(
    deltas: tuple[str, ...] = ("## Save ", "$40 ", "a month."), answer: str | None = None
) -> list[Frame]:
    """A run as the protocol describes one: the root plans, a sub-agent calls a tool, the
    reporting agent streams the answer, the root completes."""
    events: list[Frame] = []

    def add(kind: str, agent: str, **fields: Any) -> None:
        parent = None if agent == "supervisor" else "supervisor"
        events.append(
            {"type": kind, "run_id": "run_1", "thread_id": "thr_1", "seq": len(events) + 1,
             "epoch": "e1", "agent_name": agent, "parent_agent": parent, **fields}
        )  # fmt: skip

    add("agent_started", "supervisor")
    add("agent_thinking", "supervisor", reasoning="plan")
    add("agent_started", "data")
    add("tool_executing", "data", tool_name="cost_breakdown", tool_call_id="call_1")
    add("tool_completed", "data", tool_name="cost_breakdown", tool_call_id="call_1")
    add("agent_completed", "data", final_response="measured")
    add("agent_started", "reporting")
    for delta in deltas:
        add("text_delta", "reporting", delta=delta)
    add("agent_completed", "reporting", final_response="wrote it")
    final = "".join(deltas) if answer is None else answer
    add("agent_completed", "supervisor", final_response=final, message_id="msg_1")
    return events


def failure(check: Any, *args: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(CheckFailed) as failed:
        check(*args, **kwargs)
    return failed.value.expected, failed.value.got


def test_a_faithful_run_passes_every_check() -> None:
    events = run()
    assert check_sequence(events) == "seq 1..12, no gap, no repeat"
    assert check_nesting(events, completed=True) == (
        "'supervisor' > 'data', 'reporting'; 1 tool calls, all closed"
    )
    assert check_text(events) == ("## Save $40 a month.", 3)
    assert check_resumed(3, events[3:]) == "seq 4..12, each once"


def test_a_gap_and_a_repeat_in_seq_are_named() -> None:
    events = run()
    assert failure(check_sequence, events[:3] + events[4:]) == ("seq 4 after seq 3", "seq 5")
    assert failure(check_sequence, events[:3] + events[2:]) == ("seq 4 after seq 3", "seq 3 again")
    assert failure(check_sequence, events[1:]) == ("seq 1 after the start", "seq 2")
    assert failure(check_sequence, []) == ("events with seq 1..n", "no events")


def test_a_run_renumbered_midway_fails_the_sequence() -> None:
    events = run()
    events[5]["epoch"] = "e2"
    assert failure(check_sequence, events) == ("one epoch on every event of the run", "e1, e2")


def test_a_resume_must_give_each_event_after_the_cut_once() -> None:
    events = run()
    lost = failure(check_resumed, 3, events[3:6] + events[8:])
    assert lost == ("seq 4..12, each once", "seq 7..8 lost")
    repeated = failure(check_resumed, 3, events[2:])
    assert repeated == ("seq 4..12, each once", "seq 3 again (repeated)")
    twice = failure(check_resumed, 3, [*events[3:], events[6]])
    assert twice == ("seq 4..12, each once", "seq 7 again (repeated)")
    assert failure(check_resumed, 3, events[3:-1]) == (
        "the run's terminal event after resume",
        "none",
    )
    # Live events may come before the replayed ones: allowed, and said.
    shuffled = events[9:] + events[3:9]
    assert check_resumed(3, shuffled) == "seq 4..12, each once (live events came first)"


def test_nesting_faults_are_named_with_the_event_that_broke_it() -> None:
    orphan = run()
    orphan[3]["parent_agent"] = None
    assert failure(check_nesting, orphan, completed=True) == (
        "parent_agent 'supervisor' on events of 'data'",
        "seq 4 tool_executing of 'data' (parent_agent null)",
    )
    unclosed_tool = [e for e in run() if e["seq"] != 5]
    assert failure(check_nesting, unclosed_tool, completed=True) == (
        "the tool calls of 'data' closed before it ends",
        "seq 6 agent_completed of 'data' (parent_agent 'supervisor')",
    )
    two_at_once = [e for e in run() if e["seq"] != 6]
    expected, _ = failure(check_nesting, two_at_once, completed=True)
    assert expected == "one sub-agent at a time, each started once ('data' is open)"
    after_end = run()
    after_end.append(dict(after_end[1], seq=13))
    assert (
        failure(check_nesting, after_end, completed=True)[0] == "nothing after the terminal event"
    )
    no_end = run()[:-1]
    assert failure(check_nesting, no_end, completed=True)[0] == "the root's terminal event last"
    outside = run()
    outside[7]["agent_name"] = "data"  # a delta from an agent that has already completed
    assert failure(check_nesting, outside, completed=True)[0] == (
        "events of 'data' between its agent_started and its end"
    )
    headless = run()[1:]
    assert failure(check_nesting, headless, completed=True)[0] == (
        "the root's agent_started (parent_agent null) first"
    )


def test_a_stopped_run_nests_but_is_not_a_completed_one() -> None:
    events = run()
    stopped = [*events[:4]]
    stopped.append(dict(events[4], success=False, result=None))
    stopped.append(dict(events[5], type="agent_error", code="stopped"))
    stopped.append(dict(events[-1], seq=7, type="agent_stopped", code="stopped"))
    assert check_nesting(stopped, completed=False).endswith("1 tool calls, all closed")
    assert failure(check_nesting, stopped, completed=True)[0] == "the root's agent_completed last"
    no_tools = [e for e in run() if e["type"] not in ("tool_executing", "tool_completed")]
    assert failure(check_nesting, in_seq_order(no_tools), completed=True)[1] == (
        "no tool_executing, tool_completed"
    )


def test_streamed_text_must_equal_the_final_answer() -> None:
    expected, got = failure(check_text, run(answer="## Save $41 a month."))
    assert expected == "the streamed text equal to the final answer (20 characters)"
    assert (
        got
        == "20 characters, differing from character 10: '0 a month.' where the answer has '1 a month.'"
    )
    assert failure(check_text, run(deltas=()))[1] == "no text_delta"
    assert failure(check_text, run()[:-1])[1] == "none"  # no final answer to compare


def test_a_replaced_answer_is_the_text_after_the_quality_warning() -> None:
    events = run(deltas=("It costs $999.",), answer="## Save $40 a month.")
    warning = {**events[-3], "type": "quality_warning", "agent_name": "supervisor"}
    warning.update(parent_agent=None, replaced=True, outcome="replaced")
    replacement = [{**events[7], "delta": d} for d in ("## Save ", "$40 a month.")]
    events = [*events[:-2], warning, *replacement, *events[-2:]]
    assert check_text(events) == ("## Save $40 a month.", 2)
    # A warning that replaced nothing leaves the text whole.
    warning["replaced"] = False
    assert failure(check_text, events)[1].startswith("34 characters")


def test_events_are_ordered_by_seq_whatever_a_server_sends() -> None:
    events = run()
    odd = [events[2], {"type": "x", "seq": "7"}, events[0], events[1]]
    assert [e["seq"] for e in in_seq_order(odd)] == [1, 2, 3, "7"]


def test_odd_shapes_a_server_could_send_are_failures_not_crashes() -> None:
    events = run()
    assert failure(check_nesting, [], completed=False) == (
        "the root's agent_started first",
        "no events",
    )
    reused = run()
    reused[4]["type"] = "tool_executing"  # call_1 opened twice
    assert failure(check_nesting, reused, completed=True)[0] == "tool_call_id 'call_1' used once"
    mismatched = run()
    mismatched[4]["tool_name"] = "another_tool"
    assert failure(check_nesting, mismatched, completed=True)[0] == (
        "tool_completed after the tool_executing of 'call_1' by the same agent"
    )
    still_open = [*run()[:4], dict(run()[-1], seq=5)]  # the root ends with data and its tool open
    assert failure(check_nesting, still_open, completed=False)[0] == (
        "'data' closed before the root's terminal event"
    )
    terminal_at_cut = dict(events[-1], seq=2)
    assert failure(check_resumed, 3, [terminal_at_cut]) == (
        "a terminal event after seq 3",
        "seq 2 agent_completed of 'supervisor' (parent_agent null)",
    )
    beyond = [*events[3:], dict(events[5], seq=40)]
    assert failure(check_resumed, 3, beyond) == ("seq 4..12, each once", "seq 40 too")
