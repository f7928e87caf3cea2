"""Stopping a lifecycle's background tasks (background.py): their cancellations are swallowed, the
caller's is not."""

from __future__ import annotations

import asyncio

import pytest

from runwire.background import stop

pytestmark = pytest.mark.unit


async def _forever() -> None:
    await asyncio.Event().wait()


async def _slow_to_stop(cleaning: asyncio.Event, cleaned: asyncio.Event) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        cleaning.set()
        await cleaned.wait()  # a listener closing its connection, a writer draining


async def test_tasks_that_end_by_their_cancellation_stop_quietly() -> None:
    tasks = [asyncio.create_task(_forever()) for _ in range(3)]
    await asyncio.sleep(0)
    await stop(tasks[0], None, *tasks[1:])
    assert all(task.cancelled() for task in tasks)
    await stop()  # nothing to stop
    await stop(None)


async def test_a_caller_cancelled_while_its_tasks_stop_is_cancelled() -> None:
    """The flaw of ``suppress(CancelledError): await task``: the caller's own cancellation,
    landing while it waits for a task that takes its time to stop, was swallowed there."""
    cleaning, cleaned = asyncio.Event(), asyncio.Event()
    worker = asyncio.create_task(_slow_to_stop(cleaning, cleaned))
    await asyncio.sleep(0)
    went_on = False

    async def lifecycle_exit() -> None:
        nonlocal went_on
        await stop(worker)
        went_on = True  # what a swallowed cancellation lets run: the rest of the shutdown

    caller = asyncio.create_task(lifecycle_exit())
    await cleaning.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert caller.cancelled() and not went_on
    assert not worker.done()  # it ends on its own, already cancelled
    cleaned.set()
    with pytest.raises(asyncio.CancelledError):
        await worker


async def test_a_task_that_failed_raises_its_error_after_every_task_has_ended() -> None:
    async def broken() -> None:
        raise LookupError("the listener's link was gone")

    failed = asyncio.create_task(broken())
    other = asyncio.create_task(_forever())
    await asyncio.sleep(0)
    with pytest.raises(LookupError, match="link was gone"):
        await stop(failed, other)
    assert other.cancelled()


async def test_a_task_that_fails_while_stopping_raises_its_error() -> None:
    async def fails_on_cancel() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("flush failed") from None

    task = asyncio.create_task(fails_on_cancel())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="flush failed"):
        await stop(task)


async def test_tasks_already_done_are_waited_without_a_cancel_taking_effect() -> None:
    async def done() -> int:
        return 1

    task = asyncio.create_task(done())
    await task
    await stop(task)
    assert task.result() == 1
