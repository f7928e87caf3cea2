"""The revocations port: sessions (token families, ``sid``) that ended before their access
tokens expired (a logout, a refresh token presented twice, a password change), known on every
node, so a request with such a token is refused everywhere and the session's sockets close.

Implementations: ``runwire.revocations.memory.MemoryRevocations`` (one process) and
``runwire.revocations.redis.RedisRevocations`` (several nodes sharing one Redis). One contract
test suite (tests/integration/test_revocations_contract.py) runs against each; what it checks is
what this module promises.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Protocol

__all__ = ["Revocations", "RevokedHandler", "Watch"]

RevokedHandler = Callable[[], None]
"""Called once when the watched session is revoked (on any node); must not block."""


class Watch(Protocol):
    def close(self) -> None:
        """Stop watching; the handler is not called after this. Idempotent."""


class Revocations(ABC):
    """The ended sessions, each kept until the last access token it may hold has expired."""

    @abstractmethod
    async def revoke(self, sid: str, until: float) -> None:
        """Record that session ``sid`` has ended. ``until`` (epoch seconds) is when it stops
        mattering: the expiry of the last access token it can hold. Revoking again is harmless.

        When it returns, :meth:`is_revoked` answers True on this node and this node's watchers
        of ``sid`` have been called; every other node sharing the backend learns it within
        moments (and calls its own watchers), and a node that starts later learns it as it
        starts. Never raises for an unreachable backend: this node knows at once, and the
        others once the backend answers again.
        """

    @abstractmethod
    def is_revoked(self, sid: str) -> bool:
        """Whether ``sid`` was revoked (and is not past its ``until``): from this node's memory,
        with no I/O, so it can be asked on every request."""

    @abstractmethod
    def watch(self, sid: str, handler: RevokedHandler) -> Watch:
        """Call ``handler`` once when ``sid`` is revoked, on any node, until the watch is
        closed. If ``sid`` is revoked already, ``handler`` is called before this returns (so
        checking and watching leave no gap)."""

    @property
    @abstractmethod
    def watching(self) -> int:
        """Open watches on this node; for leak checks."""
