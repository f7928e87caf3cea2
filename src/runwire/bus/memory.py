"""The in-process bus: subscribers and active-run history live in this process's memory."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

from runwire.bus.base import BatchHandler, EventBus, EventHandler, GapHandler
from runwire.events.model import RunEvent

__all__ = ["MemoryBus"]

log = logging.getLogger(__name__)


class _Subscription:
    __slots__ = ("_bus", "_user_id", "handler", "on_batch")

    def __init__(
        self, bus: MemoryBus, user_id: str, handler: EventHandler, on_batch: BatchHandler | None
    ) -> None:
        self._bus = bus
        self._user_id = user_id
        self.handler = handler
        self.on_batch = on_batch

    def close(self) -> None:
        self._bus._drop(self._user_id, self)


class MemoryBus(EventBus):
    """Delivery and history in one process. Nothing is ever missed, so ``on_gap`` is not called."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[_Subscription]] = defaultdict(list)
        self._history: dict[str, list[RunEvent]] = {}
        # Runs renumbered and not yet released: their epoch. One process has no late writer of
        # an old numbering; this keeps the contract the Redis bus keeps.
        self._fences: dict[str, str] = {}

    async def publish(self, user_id: str, event: RunEvent) -> None:
        held = self._history.get(event.run_id)
        if held is None or held[-1].epoch != event.epoch:
            if self._fenced(event):
                return
            # A new numbering (a lost run's close) replaces the old one, as on Redis: held
            # together, a read by seq mixed the dead node's events with the closing ones.
            self._history[event.run_id] = [event]
        else:
            held.append(event)
        for sub in tuple(self._subscribers.get(user_id, ())):
            try:
                sub.handler(event)
            except Exception:  # one broken connection must not stop the others' delivery
                log.exception("event handler failed")

    async def publish_batch(self, user_id: str, events: Sequence[RunEvent]) -> None:
        if not events:
            return
        first = events[0]
        held = self._history.get(first.run_id)
        if held is None or held[-1].epoch != first.epoch:  # as in publish: one numbering held
            if self._fenced(first):
                return
            self._history[first.run_id] = list(events)
        else:
            held.extend(events)
        for sub in tuple(self._subscribers.get(user_id, ())):
            if sub.on_batch is not None:
                try:
                    sub.on_batch(events)
                except Exception:  # as in publish: the other connections still get theirs
                    log.exception("event handler failed")
                continue
            for event in events:
                try:
                    sub.handler(event)
                except Exception:
                    log.exception("event handler failed")

    async def subscribe(
        self,
        user_id: str,
        handler: EventHandler,
        on_gap: GapHandler | None = None,
        on_batch: BatchHandler | None = None,
    ) -> _Subscription:
        sub = _Subscription(self, user_id, handler, on_batch)
        self._subscribers[user_id].append(sub)
        return sub

    def _drop(self, user_id: str, sub: _Subscription) -> None:
        subs = self._subscribers.get(user_id)
        if subs is None:
            return
        try:
            subs.remove(sub)
        except ValueError:
            return
        if not subs:
            del self._subscribers[user_id]

    async def history(self, run_id: str, after_seq: int) -> list[RunEvent] | None:
        held = self._history.get(run_id)
        if held is None:
            return None
        # Held seqs are contiguous from the first one (a recovered run starts past 1), so the
        # answer is a slice, with no scan.
        first = held[0].seq
        if first > after_seq + 1:
            return None
        return held[after_seq + 1 - first :]

    def _fenced(self, event: RunEvent) -> bool:
        """``event`` is of a numbering its run no longer has (see :meth:`renumber`)."""
        fence = self._fences.get(event.run_id)
        return fence is not None and fence != event.epoch

    async def renumber(self, run_id: str, epoch: str) -> None:
        self._history.pop(run_id, None)
        self._fences[run_id] = epoch

    async def release(self, run_id: str) -> None:
        self._history.pop(run_id, None)
        self._fences.pop(run_id, None)

    def subscriber_count(self, user_id: str | None = None) -> int:
        if user_id is not None:
            return len(self._subscribers.get(user_id, ()))
        return sum(len(h) for h in self._subscribers.values())

    @property
    def held_runs(self) -> int:
        return len(self._history)

    @property
    def backlog(self) -> int:
        return 0  # delivered as published: nothing waits

    async def ping(self) -> None:
        """The process is its own backend: it always answers."""
