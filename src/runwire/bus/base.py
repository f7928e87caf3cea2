"""The bus port: publish a run's events to every connection of its user; hold active runs' history.

Implementations: ``runwire.bus.memory.MemoryBus`` (one process) and ``runwire.bus.redis.RedisBus``
(several nodes sharing one Redis). One contract test suite (tests/integration/test_bus_contract.py)
runs against each; what it checks is what this module promises.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Protocol

from runwire.events.model import RunEvent

__all__ = ["BatchHandler", "EventBus", "EventHandler", "GapHandler", "Subscription"]

EventHandler = Callable[[RunEvent], None]
"""Called for each event of the subscribed user's runs; must not block (it enqueues)."""

BatchHandler = Callable[[Sequence[RunEvent]], None]
"""Called, when a bus delivers them together, with the events of one :meth:`EventBus.publish_batch`
(of one run and one numbering, in ``seq`` order), instead of the :data:`EventHandler` once each.
A bus may also hand over together a run's consecutive events of several publishes of one
numbering (the Redis bus does, on other nodes, with what reached Redis in one block). Must not
block."""

GapHandler = Callable[[], None]
"""Called when the bus may have failed to deliver some events to a subscription (its link to a
shared backend was lost and is back): the subscriber must catch up from history (the transport
closes the socket with a "reconnect and resume" code). Must not block."""


class Subscription(Protocol):
    def close(self) -> None:
        """Stop delivery to this handler. Idempotent."""


class EventBus(ABC):
    @abstractmethod
    async def publish(self, user_id: str, event: RunEvent) -> None:
        """Append ``event`` to its run's history and deliver it to ``user_id``'s subscribers.

        Events of one run are published one after another (each awaited) in ``seq`` order, and
        every subscriber receives them in that order. Once it returns, :meth:`history` on this
        node includes the event (delivery may still be on its way). Never raises for an
        unreachable backend: the event is stored by the run's writer in any case, and the bus
        either delivers it late (in order) or tells the subscribers that missed it (see
        :data:`GapHandler`).
        """

    @abstractmethod
    async def publish_batch(self, user_id: str, events: Sequence[RunEvent]) -> None:
        """:meth:`publish` each of ``events`` (of one run and one numbering, in ``seq`` order,
        as a run's journal numbers a batch), as one step: each subscriber receives them in that
        order, as it would had they been published one by one (through its ``on_batch`` all at
        once, if it has one and the bus delivers them together, else through its handler one
        by one), and a wait (back-pressure) comes only after every event is handed over, so a
        run stopped in it has published each event it numbered."""

    @abstractmethod
    async def subscribe(
        self,
        user_id: str,
        handler: EventHandler,
        on_gap: GapHandler | None = None,
        on_batch: BatchHandler | None = None,
    ) -> Subscription:
        """Deliver every later event of ``user_id``'s runs to ``handler`` until closed (a batch
        published together may go to ``on_batch`` instead, see :meth:`publish_batch`).

        The handler counts in :meth:`subscriber_count` as soon as this is called, before its first
        ``await``. When it returns, delivery is in effect: every event published afterwards (on
        any node) reaches ``handler``, so subscribing and then reading :meth:`history` leaves no
        gap. If the bus cannot promise that (its backend is unreachable), it returns anyway and
        calls ``on_gap`` once it can again.
        """

    @abstractmethod
    async def history(self, run_id: str, after_seq: int) -> list[RunEvent] | None:
        """Held events of ``run_id`` with ``seq > after_seq``, in order and without a hole.

        ``[]`` when the bus holds the run but nothing after ``after_seq`` yet. None when the bus
        cannot serve the whole answer: it holds no history for the run (not started, or ended and
        released), or no longer holds ``seq = after_seq + 1`` (trimmed); read the store instead.
        """

    @abstractmethod
    async def release(self, run_id: str) -> None:
        """The run's events are all stored; drop its history, so :meth:`history` answers None
        (after the run's events, in order). Never raises for an unreachable backend (held
        history is bounded in time there)."""

    @abstractmethod
    async def renumber(self, run_id: str, epoch: str) -> None:
        """The run's log is rewritten under ``epoch`` (a lost run is being closed): drop what is
        held of it, and from then on neither hold nor deliver its events of another epoch (a lost
        node back late with events queued for the backend), for as long as a run's history may
        be held. Call before publishing the new numbering's first event. Never raises for an
        unreachable backend."""

    @abstractmethod
    def subscriber_count(self, user_id: str | None = None) -> int:
        """Open subscriptions on this node (of one user, or in all); for limits and leak checks."""

    @property
    @abstractmethod
    def held_runs(self) -> int:
        """Runs published on this node and not yet released; for leak checks."""

    @property
    @abstractmethod
    def backlog(self) -> int:
        """Writes queued on this node for the bus's backend and not sent yet (0 for a bus
        without one); for the metrics: it grows while the backend is slow or away."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise :class:`~runwire.errors.DependencyUnavailable` when the bus's backend does not
        answer (for readiness checks)."""
