"""The one backoff of the loops that retry a shared backend (runwire/backoff.py), timed by a
sleep that only records: no real time passes."""

from __future__ import annotations

import pytest

from runwire.backoff import Backoff

pytestmark = pytest.mark.unit


class Recorder:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, delay_s: float) -> None:
        self.waits.append(delay_s)


async def test_failures_in_a_row_wait_twice_as_long_each_time_up_to_the_ceiling() -> None:
    sleep = Recorder()
    backoff = Backoff(0.05, 0.5, sleep=sleep)
    for _ in range(6):
        await backoff.wait()
    assert sleep.waits == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]


async def test_a_success_starts_again_from_the_first_delay() -> None:
    sleep = Recorder()
    backoff = Backoff(0.1, 10.0, sleep=sleep)
    await backoff.wait()
    await backoff.wait()
    assert backoff.delay_s == 0.4
    backoff.reset()
    assert backoff.delay_s == 0.1
    await backoff.wait()
    assert sleep.waits == [0.1, 0.2, 0.1]


async def test_the_defaults_are_the_loops_own() -> None:
    sleep = Recorder()
    backoff = Backoff(sleep=sleep)
    for _ in range(8):
        await backoff.wait()
    assert sleep.waits == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]


@pytest.mark.parametrize(("first_s", "max_s"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_a_backoff_that_could_not_wait_is_refused(first_s: float, max_s: float) -> None:
    with pytest.raises(ValueError, match="first_s"):
        Backoff(first_s, max_s)


async def test_it_waits_with_asyncio_sleep_by_default() -> None:
    backoff = Backoff(0.001, 0.001)
    await backoff.wait()  # the real sleep: a millisecond
    assert backoff.delay_s == 0.001
