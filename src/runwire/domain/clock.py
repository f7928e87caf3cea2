"""The wall clock, as stored and compared: integer milliseconds since the Unix epoch."""

from __future__ import annotations

import time

__all__ = ["now_ms"]


def now_ms() -> int:
    """Now, in epoch milliseconds."""
    return int(time.time() * 1000)
