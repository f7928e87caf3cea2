"""The rate-limit core on a fake clock: bursts, refill, refusals, and memory that stays bounded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runwire.limits.buckets import Bucket, Decision, KeyedLimiter, Rate
from tests.clock import FakeClock

pytestmark = pytest.mark.unit


FIVE_PER_MINUTE = Rate.per_window(5, 60.0)  # one token back every 12 s


def test_a_burst_asked_for_at_one_instant_is_allowed_whole() -> None:
    # 1/8.75 s: a float interval that adds up unevenly, which once refused the third call.
    for burst in range(1, 20):
        limiter = KeyedLimiter(Rate(per_second=8.75, burst=burst), FakeClock(), max_keys=1)
        assert [limiter.acquire("k").allowed for _ in range(burst + 1)] == [True] * burst + [False]


def test_a_burst_is_allowed_then_refused_until_one_token_is_back() -> None:
    clock = FakeClock()
    limiter = KeyedLimiter(FIVE_PER_MINUTE, clock, max_keys=10)
    assert [limiter.acquire("a").allowed for _ in range(5)] == [True] * 5
    sixth = limiter.acquire("a")
    assert not sixth.allowed
    assert sixth.retry_after_s == pytest.approx(12.0)
    clock.advance(11.9)
    refused = limiter.acquire("a")
    assert not refused.allowed and refused.retry_after_s == pytest.approx(0.1)
    clock.advance(0.1)
    assert limiter.acquire("a").allowed
    assert not limiter.acquire("a").allowed  # one token came back, not more


def test_refused_calls_take_nothing_so_hammering_does_not_extend_the_wait() -> None:
    clock = FakeClock()
    limiter = KeyedLimiter(FIVE_PER_MINUTE, clock, max_keys=10)
    for _ in range(5):
        limiter.acquire("a")
    for _ in range(100):
        clock.advance(0.1)
        assert not limiter.acquire("a").allowed
    clock.advance(2.0)  # 12 s after the burst
    assert limiter.acquire("a").allowed


def test_the_bucket_is_full_again_one_window_after_the_last_use() -> None:
    clock = FakeClock()
    limiter = KeyedLimiter(FIVE_PER_MINUTE, clock, max_keys=10)
    for _ in range(5):
        limiter.acquire("a")
    clock.advance(60.0)
    assert [limiter.acquire("a").allowed for _ in range(6)] == [True] * 5 + [False]


def test_keys_are_limited_separately() -> None:
    clock = FakeClock()
    limiter = KeyedLimiter(Rate.per_window(1, 10.0), clock, max_keys=10)
    assert limiter.acquire("a").allowed
    assert not limiter.acquire("a").allowed
    assert limiter.acquire("b").allowed


def test_refund_gives_one_token_back_and_reset_forgets_the_key() -> None:
    clock = FakeClock()
    limiter = KeyedLimiter(FIVE_PER_MINUTE, clock, max_keys=10)
    for _ in range(5):
        limiter.acquire("a")
    limiter.refund("a")
    assert limiter.acquire("a").allowed
    assert not limiter.acquire("a").allowed
    limiter.reset("a")
    assert len(limiter) == 0
    assert [limiter.acquire("a").allowed for _ in range(6)] == [True] * 5 + [False]
    limiter.refund("never-seen")  # nothing to give back: no error, nothing remembered
    limiter.reset("never-seen")
    assert len(limiter) == 1


def test_a_refund_that_fills_the_bucket_forgets_the_key() -> None:
    limiter = KeyedLimiter(FIVE_PER_MINUTE, FakeClock(), max_keys=10)
    limiter.acquire("a")
    limiter.refund("a")
    assert len(limiter) == 0


def test_a_flood_of_distinct_keys_cannot_grow_memory_past_the_cap() -> None:
    clock = FakeClock()
    limiter = KeyedLimiter(FIVE_PER_MINUTE, clock, max_keys=100)
    for _ in range(5):
        limiter.acquire("victim")
    for i in range(10_000):
        assert limiter.acquire(f"flood-{i}").allowed
        if i % 50 == 0:
            # The key under attack is used all along, so the flood evicts others first.
            assert not limiter.acquire("victim").allowed
        assert len(limiter) <= 100
    assert len(limiter) == 100
    assert not limiter.acquire("victim").allowed


def test_the_least_recently_used_key_is_the_one_forgotten_at_the_cap() -> None:
    clock = FakeClock()
    limiter = KeyedLimiter(Rate.per_window(1, 60.0), clock, max_keys=3)
    for key in ("a", "b", "c"):
        limiter.acquire(key)
    limiter.acquire("a")  # refused, but it is a use: "b" is now the oldest
    limiter.acquire("d")
    assert not limiter.acquire("a").allowed
    assert not limiter.acquire("c").allowed
    assert limiter.acquire("b").allowed  # forgotten, so its bucket was full again


def test_keys_whose_bucket_is_full_again_are_forgotten() -> None:
    clock = FakeClock()
    limiter = KeyedLimiter(FIVE_PER_MINUTE, clock, max_keys=10_000)
    for i in range(1000):
        limiter.acquire(f"k{i}")
    assert len(limiter) == 1000
    clock.advance(12.0)  # one token's refill: every key's bucket is full again
    limiter.acquire("late")
    assert len(limiter) == 1


def test_a_single_bucket_behaves_like_one_key() -> None:
    clock = FakeClock()
    bucket = Bucket(Rate(per_second=2.0, burst=3), clock)
    assert [bucket.acquire().allowed for _ in range(4)] == [True, True, True, False]
    assert bucket.acquire() == Decision(False, pytest.approx(0.5))
    clock.advance(0.5)
    assert bucket.acquire().allowed


@pytest.mark.parametrize(
    ("per_second", "burst"), [(0.0, 1), (-1.0, 1), (float("inf"), 1), (float("nan"), 1), (1.0, 0)]
)
def test_a_rate_that_means_nothing_is_refused(per_second: float, burst: int) -> None:
    with pytest.raises(ValueError):
        Rate(per_second=per_second, burst=burst)


def test_a_window_rate_refills_the_burst_over_the_window() -> None:
    rate = Rate.per_window(5, 900.0)
    assert rate.burst == 5
    assert rate.interval_s == pytest.approx(180.0)
    assert rate.window_s == pytest.approx(900.0)
    with pytest.raises(ValueError):
        Rate.per_window(5, 0.0)
    with pytest.raises(ValueError):
        KeyedLimiter(rate, FakeClock(), max_keys=0)


def _after(rate: Rate, allowed_at: list[float], at: float) -> Decision:
    """What a limiter that allowed calls at ``allowed_at`` answers a call at ``at``."""
    clock = FakeClock()
    limiter = KeyedLimiter(rate, clock, max_keys=4)
    for t in allowed_at:
        clock.now = t
        assert limiter.acquire("k").allowed
    clock.now = at
    return limiter.acquire("k")


@settings(max_examples=200, deadline=None)
@given(
    burst=st.integers(min_value=1, max_value=8),
    per_second=st.floats(min_value=0.1, max_value=10.0),
    gaps=st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=60),
)
def test_no_stretch_of_time_sees_more_than_the_burst_plus_the_refill(
    burst: int, per_second: float, gaps: list[float]
) -> None:
    """The token-bucket promise, for any pattern of calls: at most ``burst + rate * span``
    calls are allowed in any span, and a refused call is told a wait that is exactly enough."""
    clock = FakeClock()
    rate = Rate(per_second=per_second, burst=burst)
    limiter = KeyedLimiter(rate, clock, max_keys=4)
    allowed_at: list[float] = []
    for gap in gaps:
        clock.advance(gap)
        decision = limiter.acquire("k")
        if decision.allowed:
            allowed_at.append(clock.now)
            continue
        wait = decision.retry_after_s
        assert wait > 0
        # (Give or take the nanosecond a float time rounds to.)
        assert _after(rate, allowed_at, clock.now + wait + 1e-9).allowed
        if wait > 2e-9:
            assert not _after(rate, allowed_at, clock.now + wait - 2e-9).allowed
    for i, start in enumerate(allowed_at):
        for j in range(i, len(allowed_at)):
            span = allowed_at[j] - start
            assert j - i + 1 <= burst + rate.per_second * span + 1e-6
