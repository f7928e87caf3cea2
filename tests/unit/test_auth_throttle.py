"""The auth throttle's rules on a fake clock (the HTTP behaviour is in test_login_throttling.py)."""

from __future__ import annotations

import pytest

from runwire.auth.throttle import AuthLimits, AuthThrottle
from runwire.errors import RateLimited
from runwire.limits.buckets import Rate
from runwire.limits.memory import MemoryRateLimiter
from tests.clock import FakeClock

pytestmark = pytest.mark.unit

LIMITS = AuthLimits.of(
    login_account=Rate.per_window(3, 60.0),  # a token back every 20 s
    login_address=Rate.per_window(5, 100.0),  # every 20 s
    register_address=Rate.per_window(2, 10.0),
    refresh_address=Rate.per_window(2, 10.0),
)


def make(clock: FakeClock) -> AuthThrottle:
    return AuthThrottle(LIMITS, MemoryRateLimiter(clock))


async def fail(throttle: AuthThrottle, account: str, address: str) -> None:
    await throttle.login_attempt(account, address)  # counted, never shown to have succeeded


async def test_failures_lock_the_account_and_nothing_is_counted_while_locked() -> None:
    clock = FakeClock()
    throttle = make(clock)
    for _ in range(3):
        await fail(throttle, "a@x.io", "192.0.2.1")
    with pytest.raises(RateLimited) as caught:
        await throttle.login_attempt("a@x.io", "192.0.2.1")
    assert caught.value.code == "rate_limited"
    assert caught.value.retry_after_s == pytest.approx(20.0)
    assert caught.value.message == "too many failed logins for this account; try again in 20 s"
    # The refused attempt did not use the address's budget: two more accounts can still fail.
    await fail(throttle, "b@x.io", "192.0.2.1")
    await fail(throttle, "c@x.io", "192.0.2.1")
    with pytest.raises(RateLimited, match="from your network address"):
        await throttle.login_attempt("d@x.io", "192.0.2.1")
    clock.advance(20.0)
    await throttle.login_attempt("a@x.io", "192.0.2.1")


async def test_a_success_clears_the_account_and_gives_the_address_its_token_back() -> None:
    throttle = make(FakeClock())
    for _ in range(2):
        await fail(throttle, "a@x.io", "192.0.2.1")
    await (await throttle.login_attempt("a@x.io", "192.0.2.1")).succeeded()
    for _ in range(3):  # the account starts afresh: three failures again before the lockout
        await fail(throttle, "a@x.io", "192.0.2.2")
    with pytest.raises(RateLimited):
        await throttle.login_attempt("a@x.io", "192.0.2.2")
    # 192.0.2.1 used 2 failures and 1 success: 3 tokens left of 5.
    for account in ("p@x.io", "q@x.io", "r@x.io"):
        await fail(throttle, account, "192.0.2.1")
    with pytest.raises(RateLimited):
        await throttle.login_attempt("s@x.io", "192.0.2.1")


async def test_an_attempt_the_server_could_not_decide_counts_for_nothing() -> None:
    throttle = make(FakeClock())
    for _ in range(10):
        await (await throttle.login_attempt("a@x.io", "192.0.2.1")).void()
    await fail(throttle, "a@x.io", "192.0.2.1")


async def test_sign_ups_and_refreshes_are_limited_per_address() -> None:
    clock = FakeClock()
    throttle = make(clock)
    await throttle.register("192.0.2.1")
    await throttle.register("192.0.2.1")
    with pytest.raises(RateLimited, match="too many sign-ups") as caught:
        await throttle.register("192.0.2.1")
    assert caught.value.retry_after_whole_s == 5
    await throttle.register("192.0.2.2")
    await throttle.refresh("192.0.2.1")  # a separate budget
    await throttle.refresh("192.0.2.1")
    with pytest.raises(RateLimited, match="too many token refreshes"):
        await throttle.refresh("192.0.2.1")
    clock.advance(5.0)
    await throttle.register("192.0.2.1")
    await throttle.refresh("192.0.2.1")


def test_over_http_a_wait_under_a_second_is_announced_as_one_second() -> None:
    error = RateLimited("slow down", retry_after_s=0.2)
    assert error.retry_after_whole_s == 1
    assert error.message == "slow down; try again in 1 s"
    assert RateLimited("x", retry_after_s=179.01).retry_after_whole_s == 180


def test_in_milliseconds_the_message_says_the_wait_the_field_carries() -> None:
    error = RateLimited("slow down", retry_after_s=0.1000001)
    assert error.retry_after_ms == 101
    assert error.message_in_ms == "slow down; try again in 101 ms"
    assert RateLimited("x", retry_after_s=1e-9).retry_after_ms == 1
