"""Background tasks of a lifecycle, and how to stop them.

A lifecycle (an ``async with`` block that starts loops: a heartbeat, a listener, a refresher)
stops its tasks on the way out by cancelling them and waiting for them to end. The usual spelling,
``task.cancel()`` then ``with suppress(CancelledError): await task``, has a flaw: the
``CancelledError`` it suppresses may be the *caller's* own, when the caller is itself cancelled
while it waits (a server shutting down within a timeout, a test's deadline). Suppressed, that
cancellation is lost and the caller goes on as if nothing had asked it to stop. :func:`stop`
swallows only the tasks' own cancellations.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["stop"]


async def stop(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel ``tasks`` (``None`` entries are skipped) and wait until every one has ended.

    A task that ends by its cancellation is what was asked for and raises nothing; one that
    ended with another exception (before or while stopping) raises it here, the first in order.
    If the caller is cancelled while it waits, that cancellation propagates at once (the tasks
    are already cancelled and end on their own).
    """
    running = [task for task in tasks if task is not None]
    if not running:
        return
    for task in running:
        task.cancel()
    # asyncio.wait raises nothing of the tasks', so a CancelledError out of it is the caller's.
    await asyncio.wait(running)
    for task in running:
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error
