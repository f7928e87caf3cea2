"""The in-process revocations: the ended sessions and their watchers in this process's memory.

It is also the local mirror the Redis implementation keeps (``record`` is how an ended session
learnt from Redis enters it)."""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable

from runwire.revocations.base import Revocations, RevokedHandler, Watch

__all__ = ["MemoryRevocations"]

log = logging.getLogger(__name__)


class _Watch:
    __slots__ = ("_owner", "handler", "sid")

    def __init__(self, owner: MemoryRevocations, sid: str, handler: RevokedHandler) -> None:
        self._owner = owner
        self.sid = sid
        self.handler = handler

    def close(self) -> None:
        self._owner._drop(self)


class MemoryRevocations(Revocations):
    """Ended sessions known to this process; right when there is one node.

    ``wall`` (epoch seconds) tells when an entry stops mattering; tests pass their own."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._until: dict[str, float] = {}
        self._expiries: list[tuple[float, str]] = []  # a heap: the next entry to forget first
        self._watches: dict[str, list[_Watch]] = {}

    async def revoke(self, sid: str, until: float) -> None:
        self.record(sid, until)

    def is_revoked(self, sid: str) -> bool:
        until = self._until.get(sid)
        return until is not None and until > self._wall()

    def watch(self, sid: str, handler: RevokedHandler) -> Watch:
        watch = _Watch(self, sid, handler)
        if self.is_revoked(sid):
            _call(handler)
            return watch  # closed already, in effect: a session ends once
        self._watches.setdefault(sid, []).append(watch)
        return watch

    @property
    def watching(self) -> int:
        return sum(len(watches) for watches in self._watches.values())

    @property
    def revoked_count(self) -> int:
        """Ended sessions held (those past their ``until`` are dropped as new ones come)."""
        return len(self._until)

    def record(self, sid: str, until: float) -> bool:
        """Enter ``sid`` as ended until ``until`` and call its watchers; False (and nothing
        called) when it was known already or is past mattering."""
        now = self._wall()
        self._forget_expired(now)
        known = self._until.get(sid)
        if until <= now or (known is not None and known >= until):
            return False
        self._until[sid] = until
        heapq.heappush(self._expiries, (until, sid))
        if known is not None:
            return False
        for watch in self._watches.pop(sid, ()):
            _call(watch.handler)
        return True

    def _forget_expired(self, now: float) -> None:
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            until, sid = heapq.heappop(expiries)
            if self._until.get(sid) == until:
                del self._until[sid]

    def _drop(self, watch: _Watch) -> None:
        watches = self._watches.get(watch.sid)
        if watches is None or watch not in watches:
            return
        watches.remove(watch)
        if not watches:
            del self._watches[watch.sid]


def _call(handler: RevokedHandler) -> None:
    try:
        handler()
    except Exception:  # one broken watcher must not keep the others open
        log.exception("revocation handler failed")
