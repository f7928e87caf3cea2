"""When a client counts as not reading (close 4008): by what earlier turns left unread, with room
for the largest answer it is still reading."""

from __future__ import annotations

import pytest

from runwire.protocol.outbound import OutboundLimit


def test_a_client_within_the_limit_is_reading() -> None:
    limit = OutboundLimit(1000)
    assert limit.admits(0) and limit.admits(1000)
    assert not limit.admits(1001)


def test_a_client_may_be_behind_by_its_largest_answer_plus_the_limit() -> None:
    limit = OutboundLimit(1000)
    limit.queued(50_000)  # a replay, one turn
    limit.queued(300)  # then live events
    assert limit.admits(51_000)
    assert not limit.admits(51_001)


def test_a_client_that_caught_up_starts_afresh() -> None:
    limit = OutboundLimit(1000)
    limit.queued(50_000)
    assert limit.admits(900)  # it has read the replay
    assert not limit.admits(2000)  # so the replay no longer counts


def test_the_limit_is_positive() -> None:
    with pytest.raises(ValueError, match="above 0"):
        OutboundLimit(0)


def test_a_client_with_exactly_the_limit_waiting_has_caught_up() -> None:
    limit = OutboundLimit(1000)
    limit.queued(50_000)
    assert limit.admits(1000)
    assert not limit.admits(1001)  # the replay it has read no longer counts


def test_the_smallest_limit_is_one_byte() -> None:
    limit = OutboundLimit(1)
    assert limit.admits(1) and not limit.admits(2)
