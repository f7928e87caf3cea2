"""A clock for tests: monotonic seconds that move only when the test says so (no sleeping)."""

from __future__ import annotations


class FakeClock:
    """Pass it where the server takes a ``Clock``; call :meth:`advance` to let time pass."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
