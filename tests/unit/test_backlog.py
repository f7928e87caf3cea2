"""The queued/done count that the event writer and the Redis bus wait on (backlog.py)."""

from __future__ import annotations

import asyncio

import pytest

from runwire.backlog import Backlog

pytestmark = pytest.mark.unit


async def test_a_wait_ends_when_what_was_queued_before_it_is_done() -> None:
    backlog = Backlog()
    backlog.add(3)
    first = asyncio.create_task(backlog.caught_up())
    await asyncio.sleep(0)  # its target is what was queued when it began: 3
    backlog.add(2)
    second = asyncio.create_task(backlog.caught_up())
    await asyncio.sleep(0)
    backlog.finish(2)
    await asyncio.sleep(0)
    assert not first.done() and backlog.pending == 3
    backlog.finish(1)
    await asyncio.wait_for(first, 1)
    assert not second.done()  # the later wait needs the later work too
    backlog.finish(2)
    await asyncio.wait_for(second, 1)
    await backlog.caught_up()  # nothing queued: no wait


async def test_release_lets_every_wait_go_and_a_cancelled_wait_costs_nothing() -> None:
    backlog = Backlog()
    backlog.add()
    gone = asyncio.create_task(backlog.caught_up())
    kept = asyncio.create_task(backlog.caught_up())
    await asyncio.sleep(0)
    gone.cancel()
    backlog.release()
    await asyncio.wait_for(kept, 1)
    assert gone.cancelled() and backlog.pending == 1
    backlog.finish(1)  # settling after a release finds nothing left to settle


async def test_a_wait_for_room_ends_once_what_was_queued_before_it_is_under_the_bound() -> None:
    backlog = Backlog()
    backlog.add(5)
    everything = asyncio.create_task(backlog.caught_up())  # needs all 5 done
    room = asyncio.create_task(backlog.below(3))  # needs 3 done (2 pending < 3)
    await asyncio.sleep(0)
    backlog.add(10)  # queued by others after it began: not its to wait for
    backlog.finish(2)
    await asyncio.sleep(0)
    assert not room.done() and not everything.done()
    backlog.finish(1)
    await asyncio.wait_for(room, 1)  # settled though an earlier wait still waits
    assert not everything.done()
    backlog.finish(2)
    await asyncio.wait_for(everything, 1)
    await backlog.below(11)  # 10 pending: under the bound, no wait
