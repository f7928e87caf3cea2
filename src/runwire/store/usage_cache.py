"""The usage store's cache of recently read views, bounded by the records they hold."""

from __future__ import annotations

from collections import OrderedDict

from runwire.domain.usage import UsageView

__all__ = ["UsageCache"]


class UsageCache:
    """Each user's last view with the usage version it is of, least recently read first out once
    the views hold more than ``records`` records together (about 150 bytes each; a view counts
    its records whether read yet or not: the bound is what it may hold). The user read last is
    kept however many records it has."""

    def __init__(self, records: int) -> None:
        self._bound = records
        self._total = 0
        self._views: OrderedDict[str, tuple[int, UsageView]] = OrderedDict()

    @property
    def records(self) -> int:
        """How many records the cached views hold (or will, once read)."""
        return self._total

    def get(self, user_id: str, version: int, limit: int) -> UsageView | None:
        """The user's view if it is of ``version`` and holds at most ``limit`` records."""
        cached = self._views.get(user_id)
        if cached is None or cached[0] != version or len(cached[1]) > limit:
            return None
        self._views.move_to_end(user_id)
        return cached[1]

    def put(self, user_id: str, version: int, view: UsageView) -> None:
        """Keep ``view`` as the user's, of ``version``; drop the least recently read beyond the
        bound."""
        old = self._views.pop(user_id, None)
        if old is not None:
            self._total -= len(old[1])
        self._views[user_id] = (version, view)
        self._total += len(view)
        while self._total > self._bound and len(self._views) > 1:
            _, (_, dropped) = self._views.popitem(last=False)
            self._total -= len(dropped)
