"""The Redis bus's channel states (runwire/bus/redis_channels.py), without Redis: every move from
every state, table-driven, and what the echo's safety rests on (a channel stops being held the
moment its last socket leaves; its UNSUBSCRIBE waits for the writes queued before that)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from runwire.bus.redis_channels import (
    AlreadyWanted,
    ChannelState,
    ChannelTable,
    NotWanted,
    UnexpectedReply,
)
from runwire.errors import InvalidTransition

pytestmark = pytest.mark.unit

U = "usr_a"
WANTED = ChannelState.WANTED
SUBSCRIBING = ChannelState.SUBSCRIBING
SUBSCRIBED = ChannelState.SUBSCRIBED
LEAVING = ChannelState.LEAVING
UNSUBSCRIBING = ChannelState.UNSUBSCRIBING


def sent(table: ChannelTable, done: int = 0) -> tuple[list[str], list[str]]:
    return table.commands(done)


# Each start: how a channel gets there (a table made afresh by the steps), and the replies
# Redis still owes for it then.
STARTS: dict[str, tuple[list[Callable[[ChannelTable], object]], int]] = {
    "none": ([], 0),
    "wanted": ([lambda t: t.want(U)], 0),
    "wanted, a reply due": (
        [
            lambda t: t.want(U),
            sent,
            lambda t: t.replied(U),
            lambda t: t.unwant(U, 0),
            sent,  # UNSUBSCRIBE sent
            lambda t: t.want(U),
        ],
        1,
    ),
    "subscribing": ([lambda t: t.want(U), sent], 1),
    "subscribed": ([lambda t: t.want(U), sent, lambda t: t.replied(U)], 0),
    "leaving": ([lambda t: t.want(U), sent, lambda t: t.replied(U), lambda t: t.unwant(U, 5)], 0),
    "leaving, a reply due": ([lambda t: t.want(U), sent, lambda t: t.unwant(U, 5)], 1),
    "unsubscribing": (
        [lambda t: t.want(U), sent, lambda t: t.replied(U), lambda t: t.unwant(U, 0), sent],
        1,
    ),
}


def made(start: str) -> ChannelTable:
    table = ChannelTable()
    steps, _ = STARTS[start]
    for step in steps:
        step(table)
    return table


def test_each_start_is_the_state_it_names() -> None:
    expected = {
        "none": None,
        "wanted": WANTED,
        "wanted, a reply due": WANTED,
        "subscribing": SUBSCRIBING,
        "subscribed": SUBSCRIBED,
        "leaving": LEAVING,
        "leaving, a reply due": LEAVING,
        "unsubscribing": UNSUBSCRIBING,
    }
    assert {start: made(start).state(U) for start in STARTS} == expected


Outcome = ChannelState | None | type[InvalidTransition]

# start -> what want(), unwant(), commands() (with every write answered) and a reply lead to.
MOVES: dict[str, tuple[Outcome, Outcome, Outcome, Outcome]] = {
    "none": (WANTED, NotWanted, None, UnexpectedReply),
    "wanted": (AlreadyWanted, None, SUBSCRIBING, UnexpectedReply),
    "wanted, a reply due": (AlreadyWanted, UNSUBSCRIBING, SUBSCRIBING, WANTED),
    "subscribing": (AlreadyWanted, LEAVING, SUBSCRIBING, SUBSCRIBED),
    "subscribed": (AlreadyWanted, LEAVING, SUBSCRIBED, UnexpectedReply),
    "leaving": (SUBSCRIBED, NotWanted, UNSUBSCRIBING, UnexpectedReply),
    "leaving, a reply due": (SUBSCRIBING, NotWanted, UNSUBSCRIBING, LEAVING),
    "unsubscribing": (WANTED, NotWanted, UNSUBSCRIBING, None),
}
MOVE_NAMES = ("want", "unwant", "commands", "reply")


def move(table: ChannelTable, name: str) -> object:
    if name == "want":
        return table.want(U)
    if name == "unwant":
        return table.unwant(U, 5)
    if name == "commands":
        return table.commands(5)
    return table.replied(U)


@pytest.mark.parametrize(
    ("start", "name", "outcome"),
    [
        (start, name, outcome)
        for start, outcomes in MOVES.items()
        for name, outcome in zip(MOVE_NAMES, outcomes, strict=True)
    ],
)
def test_every_move_from_every_state(start: str, name: str, outcome: Outcome) -> None:
    table = made(start)
    before = table.state(U)
    if isinstance(outcome, type):
        with pytest.raises(outcome):
            move(table, name)
        assert table.state(U) == before  # a refused move changes nothing
        return
    move(table, name)
    assert table.state(U) == outcome
    # The views follow the state.
    assert table.in_effect(U) == (outcome is SUBSCRIBED)
    assert (U in table.held) == (outcome is SUBSCRIBED)
    assert table.leaving == (outcome is LEAVING)


def test_a_channel_leaves_once_the_writes_queued_before_its_last_socket_left_are_answered() -> None:
    table = made("subscribed")
    assert U in table.held
    assert not table.unwant(U, queued=10)
    assert U not in table.held  # at once: writes built from now on say "not held"
    assert table.leaving and table.due
    assert table.commands(done=9) == ([], [])  # a write that said "held" may not have run
    assert table.state(U) is LEAVING and table.leaving
    assert table.commands(done=10) == ([], [U])
    assert table.state(U) is UNSUBSCRIBING and not table.leaving and not table.due
    assert table.replied(U)  # settled: forgotten
    assert table.state(U) is None


def test_a_channel_wanted_again_before_it_left_is_held_again_without_a_command() -> None:
    table = made("leaving")
    table.want(U)
    assert table.in_effect(U) and U in table.held
    assert table.commands(done=100) == ([], [])


def test_a_subscription_left_before_it_was_answered_is_let_go_once_answered() -> None:
    table = made("leaving, a reply due")
    assert table.replied(U)  # settled (a subscriber waiting for it goes on), still leaving
    assert table.state(U) is LEAVING and not table.in_effect(U)
    assert table.commands(done=5) == ([], [U])


def test_replies_of_commands_in_flight_settle_only_with_the_last() -> None:
    table = made("unsubscribing")
    table.want(U)  # back before the UNSUBSCRIBE was answered
    assert table.commands(done=0) == ([U], [])
    assert not table.replied(U)  # the UNSUBSCRIBE's
    assert table.state(U) is SUBSCRIBING and not table.in_effect(U)
    assert table.replied(U)  # the SUBSCRIBE's
    assert table.in_effect(U)


def test_a_wanted_channel_answered_before_its_subscribe_went_is_not_settled() -> None:
    table = made("wanted, a reply due")
    assert not table.replied(U)  # the UNSUBSCRIBE's reply: the SUBSCRIBE is still to go
    assert table.state(U) is WANTED and table.due


def test_a_channel_let_go_of_before_anything_was_sent_is_forgotten_at_once() -> None:
    table = made("wanted")
    assert table.unwant(U, 0)
    assert table.state(U) is None and not table.due
    assert table.commands(0) == ([], [])


def test_a_lost_connection_keeps_only_the_wanted_channels_to_subscribe_afresh() -> None:
    tables = {start: made(start) for start in STARTS}
    for start, table in tables.items():
        table.presence = b"runwire:node:n:1"
        table.link_lost()
        assert table.presence is None
        assert not table.held and not table.leaving
        wanted = start in ("wanted", "wanted, a reply due", "subscribing", "subscribed")
        assert table.state(U) == (WANTED if wanted else None), start
        assert table.commands(0) == (([U], []) if wanted else ([], [])), start


def test_channels_move_independently() -> None:
    table = ChannelTable()
    table.want("a")
    table.want("b")
    assert sorted(table.commands(0)[0]) == ["a", "b"]
    assert table.replied("a")
    assert table.in_effect("a") and not table.in_effect("b")
    table.unwant("a", 3)
    assert table.state("b") is SUBSCRIBING and table.held == set()
    assert table.commands(2) == ([], [])
    assert table.replied("b")
    assert set(table.held) == {"b"}
