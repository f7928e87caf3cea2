"""The bus port: publish a run's events to every connection of its user; hold active runs' history.

Implementations: ``runwire.bus.memory.MemoryBus`` (one process). A Redis Streams bus for several
nodes implements the same interface; one contract test suite runs against each.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Protocol

from runwire.events.model import RunEvent

__all__ = ["EventBus", "EventHandler", "Subscription"]

EventHandler = Callable[[RunEvent], None]
"""Called for each event of the subscribed user's runs; must not block (it enqueues)."""


class Subscription(Protocol):
    def close(self) -> None:
        """Stop delivery to this handler. Idempotent."""


class EventBus(ABC):
    @abstractmethod
    async def publish(self, user_id: str, event: RunEvent) -> None:
        """Append ``event`` to its run's history and deliver it to ``user_id``'s subscribers."""

    @abstractmethod
    def subscribe(self, user_id: str, handler: EventHandler) -> Subscription:
        """Deliver every later event of ``user_id``'s runs to ``handler`` until closed."""

    @abstractmethod
    def history(self, run_id: str, after_seq: int) -> list[RunEvent] | None:
        """Held events of ``run_id`` with ``seq > after_seq``; None when the bus holds no history
        for the run (it ended and was released: read the store instead)."""

    @abstractmethod
    def release(self, run_id: str) -> None:
        """The run's events are all stored; drop its history."""

    @abstractmethod
    def subscriber_count(self, user_id: str | None = None) -> int:
        """Open subscriptions (of one user, or in all); for limits and leak checks."""

    @property
    @abstractmethod
    def held_runs(self) -> int:
        """Runs whose history the bus still holds; for leak checks."""
