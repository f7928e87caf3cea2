"""One scalable time unit for every wait in the tests.

Set ``RUNWIRE_TEST_TIME_UNIT`` (seconds, default 1.0) higher on a slow or loaded machine; every
timeout in the suite is a multiple of it, so nothing is tuned by hand in one place only.
"""

from __future__ import annotations

import os


def unit(n: float = 1.0) -> float:
    """``n`` time units, in seconds."""
    return n * float(os.environ.get("RUNWIRE_TEST_TIME_UNIT", "1.0"))
