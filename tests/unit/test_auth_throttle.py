"""The auth throttle's rules on a fake clock (the HTTP behaviour is in test_login_throttling.py)."""

from __future__ import annotations

import pytest

from runwire.auth.throttle import AuthLimits, AuthThrottle
from runwire.errors import RateLimited
from runwire.ratelimit import Rate
from tests.clock import FakeClock

pytestmark = pytest.mark.unit

LIMITS = AuthLimits(
    login_account=Rate.per_window(3, 60.0),  # a token back every 20 s
    login_address=Rate.per_window(5, 100.0),  # every 20 s
    register_address=Rate.per_window(2, 10.0),
    refresh_address=Rate.per_window(2, 10.0),
)


def fail(throttle: AuthThrottle, account: str, address: str) -> None:
    throttle.login_attempt(account, address)  # counted, never shown to have succeeded


def test_failures_lock_the_account_and_nothing_is_counted_while_locked() -> None:
    clock = FakeClock()
    throttle = AuthThrottle(LIMITS, clock)
    for _ in range(3):
        fail(throttle, "a@x.io", "192.0.2.1")
    with pytest.raises(RateLimited) as caught:
        throttle.login_attempt("a@x.io", "192.0.2.1")
    assert caught.value.code == "rate_limited"
    assert caught.value.retry_after_s == pytest.approx(20.0)
    assert caught.value.message == "too many failed logins for this account; try again in 20 s"
    # The refused attempt did not use the address's budget: two more accounts can still fail.
    fail(throttle, "b@x.io", "192.0.2.1")
    fail(throttle, "c@x.io", "192.0.2.1")
    with pytest.raises(RateLimited, match="from your network address"):
        throttle.login_attempt("d@x.io", "192.0.2.1")
    clock.advance(20.0)
    throttle.login_attempt("a@x.io", "192.0.2.1")


def test_a_success_clears_the_account_and_gives_the_address_its_token_back() -> None:
    throttle = AuthThrottle(LIMITS, FakeClock())
    for _ in range(2):
        fail(throttle, "a@x.io", "192.0.2.1")
    throttle.login_attempt("a@x.io", "192.0.2.1").succeeded()
    for _ in range(3):  # the account starts afresh: three failures again before the lockout
        fail(throttle, "a@x.io", "192.0.2.2")
    with pytest.raises(RateLimited):
        throttle.login_attempt("a@x.io", "192.0.2.2")
    # 192.0.2.1 used 2 failures and 1 success: 3 tokens left of 5.
    for account in ("p@x.io", "q@x.io", "r@x.io"):
        fail(throttle, account, "192.0.2.1")
    with pytest.raises(RateLimited):
        throttle.login_attempt("s@x.io", "192.0.2.1")


def test_an_attempt_the_server_could_not_decide_counts_for_nothing() -> None:
    throttle = AuthThrottle(LIMITS, FakeClock())
    for _ in range(10):
        throttle.login_attempt("a@x.io", "192.0.2.1").void()
    fail(throttle, "a@x.io", "192.0.2.1")


def test_sign_ups_and_refreshes_are_limited_per_address() -> None:
    clock = FakeClock()
    throttle = AuthThrottle(LIMITS, clock)
    throttle.register("192.0.2.1")
    throttle.register("192.0.2.1")
    with pytest.raises(RateLimited, match="too many sign-ups") as caught:
        throttle.register("192.0.2.1")
    assert caught.value.retry_after_whole_s == 5
    throttle.register("192.0.2.2")
    throttle.refresh("192.0.2.1")  # a separate budget
    throttle.refresh("192.0.2.1")
    with pytest.raises(RateLimited, match="too many token refreshes"):
        throttle.refresh("192.0.2.1")
    clock.advance(5.0)
    throttle.register("192.0.2.1")
    throttle.refresh("192.0.2.1")


def test_a_wait_under_a_second_is_announced_as_one_second() -> None:
    error = RateLimited("slow down", retry_after_s=0.2)
    assert error.retry_after_whole_s == 1
    assert error.message == "slow down; try again in 1 s"
    assert RateLimited("x", retry_after_s=179.01).retry_after_whole_s == 180
