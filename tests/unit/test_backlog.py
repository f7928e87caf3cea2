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
