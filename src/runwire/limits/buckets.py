"""Rate limits: how often something may happen, per key, with bounded memory. Pure: no I/O.

The algorithm is GCRA (the generic cell rate algorithm), which behaves exactly like a token
bucket of ``burst`` tokens refilled at ``per_second``, but keeps a single number per key: the
*theoretical arrival time* (TAT), the moment the bucket will be full again. A key whose TAT has
passed holds a full bucket, which is the same as never having been seen, so its entry can be
forgotten. That is what keeps memory bounded.

Time comes from an injected clock (monotonic seconds), so tests step a fake clock instead of
sleeping. Inside, times are whole nanoseconds: with floats, ``t + i + i - t`` need not equal
``2 * i``, and a burst asked for at one instant could be refused a nanosecond short.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Bucket", "Clock", "Decision", "KeyedLimiter", "Rate"]

Clock = Callable[[], float]
"""Seconds from a monotonic clock (``time.monotonic`` in the server)."""

_NS = 1_000_000_000


def _ns(seconds: float) -> int:
    return round(seconds * _NS)


@dataclass(frozen=True, slots=True)
class Rate:
    """``burst`` events at once, then one more every ``1 / per_second`` seconds."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if not (self.per_second > 0 and math.isfinite(self.per_second)):
            raise ValueError(f"a rate must be a positive number per second, got {self.per_second}")
        if self.burst < 1:
            raise ValueError(f"a burst must allow at least one event, got {self.burst}")

    @classmethod
    def per_window(cls, events: int, window_s: float) -> Rate:
        """``events`` at once, refilled in full over ``window_s`` seconds."""
        if not (window_s > 0 and math.isfinite(window_s)):
            raise ValueError(f"a window must be a positive number of seconds, got {window_s}")
        return cls(per_second=events / window_s, burst=events)

    @property
    def interval_s(self) -> float:
        """The time one event's token takes to come back."""
        return 1.0 / self.per_second

    @property
    def interval_ns(self) -> int:
        """:attr:`interval_s` in whole nanoseconds (at least one), the unit limiters count in."""
        return max(1, _ns(self.interval_s))

    @property
    def window_s(self) -> float:
        """The time an empty bucket takes to fill again."""
        return self.burst * self.interval_s


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one request: allowed, or refused until ``retry_after_s`` have passed."""

    allowed: bool
    retry_after_s: float = 0.0


def _admit(tat: int, now: int, rate: Rate) -> tuple[int | None, float]:
    """GCRA for one event: ``(new TAT, 0)`` if it is allowed, ``(None, wait in s)`` if not."""
    # ``lead`` is how long until the bucket is full; one more token fits while that is at most
    # ``burst - 1`` intervals.
    lead = max(tat - now, 0)
    tolerance = (rate.burst - 1) * rate.interval_ns
    if lead > tolerance:
        return None, (lead - tolerance) / _NS
    return now + lead + rate.interval_ns, 0.0


class Bucket:
    """One rate limit for one thing (say, the frames of one connection)."""

    def __init__(self, rate: Rate, clock: Clock) -> None:
        self.rate = rate
        self._clock = clock
        self._tat: int | None = None

    def acquire(self) -> Decision:
        """Take one event's token if there is one; refused calls take nothing."""
        now = _ns(self._clock())
        new_tat, wait = _admit(now if self._tat is None else self._tat, now, self.rate)
        if new_tat is None:
            return Decision(False, wait)
        self._tat = new_tat
        return Decision(True)


class KeyedLimiter:
    """One rate limit applied separately to each key (an account, an address, a connection).

    Memory is bounded twice over: a key whose bucket is full again is forgotten (the entries
    are kept in order of last use, so the stale ones are found at the front in O(1)), and no
    more than ``max_keys`` are kept: when a new key arrives at the cap, the least recently used
    key is forgotten, which hands that key a full bucket. A key under attack is used often and so
    is the last to go; forgetting one therefore takes ``max_keys`` other keys in between.
    """

    def __init__(self, rate: Rate, clock: Clock, *, max_keys: int) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self.rate = rate
        self.max_keys = max_keys
        self._clock = clock
        self._tats: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        """How many keys are remembered now."""
        return len(self._tats)

    def acquire(self, key: str) -> Decision:
        """Take one token from ``key``'s bucket if there is one; refused calls take nothing."""
        now = _ns(self._clock())
        self._forget_full(now)
        tat = self._tats.get(key)
        if tat is None:  # a key not remembered has a full bucket
            while len(self._tats) >= self.max_keys:
                self._tats.popitem(last=False)
            self._tats[key] = now + self.rate.interval_ns
            return Decision(True)
        # A refused call counts as use too: a key under attack stays at the back.
        self._tats.move_to_end(key)
        new_tat, wait = _admit(tat, now, self.rate)
        if new_tat is None:
            return Decision(False, wait)
        self._tats[key] = new_tat
        return Decision(True)

    def refund(self, key: str) -> None:
        """Give back one token taken by :meth:`acquire` (the event turned out not to count)."""
        tat = self._tats.get(key)
        if tat is None:
            return
        tat -= self.rate.interval_ns
        if tat <= _ns(self._clock()):
            del self._tats[key]
        else:
            self._tats[key] = tat

    def reset(self, key: str) -> None:
        """Forget ``key``: its bucket is full again."""
        self._tats.pop(key, None)

    def _forget_full(self, now: int) -> None:
        # Entries are in order of last use and a bucket is full at most one window after its
        # last use, so every entry older than that is at the front.
        while self._tats:
            key, tat = next(iter(self._tats.items()))
            if tat > now:
                return
            del self._tats[key]
