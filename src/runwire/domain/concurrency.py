"""What a message does when its thread already has an active run."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ConcurrencyPolicy"]


class ConcurrencyPolicy(StrEnum):
    """What a message does when its thread already has an active run (the server's default is
    ``RUNWIRE_CONCURRENCY_POLICY``; a ``user_message`` frame may name its own)."""

    ENQUEUE = "enqueue"  # start after the active run ends
    REJECT = "reject"  # refuse with error code thread_busy
    INTERRUPT = "interrupt"  # stop the active run, then start
