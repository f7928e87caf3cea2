"""The connection registry port: how many sockets a user has open, on every node, so
``RUNWIRE_MAX_CONNECTIONS_PER_USER`` caps them all, not each node's share.

Implementations: ``runwire.connections.memory.MemoryConnections`` (one process) and
``runwire.connections.redis.RedisConnections`` (several nodes sharing one Redis). One contract test
suite (tests/integration/test_connections_contract.py) runs against each; what it checks is what
this module promises.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

__all__ = ["ConnectionRegistry", "Seat"]


class Seat(Protocol):
    """One open connection's place in its user's count."""

    def release(self) -> None:
        """The connection is gone: it stops counting (on other nodes too, within moments).
        Idempotent; never blocks."""


class ConnectionRegistry(ABC):
    """At most ``max_per_user`` seats per user at once, over every node sharing the registry."""

    max_per_user: int

    @abstractmethod
    async def claim(self, user_id: str) -> Seat | None:
        """A seat for one more connection of ``user_id``, or None when the user has
        ``max_per_user`` already. Checking and taking are one step: two claims racing for the
        last seat (on any nodes) cannot both get it.

        Never raises for an unreachable backend: a shared implementation then counts this node's
        seats only until it answers again (docs/decisions.md says why).
        """

    @abstractmethod
    async def count(self, user_id: str) -> int:
        """The seats of ``user_id`` held now, on every node."""
