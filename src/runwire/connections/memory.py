"""The in-process connection registry: seats are counted in this process's memory."""

from __future__ import annotations

from runwire.connections.base import ConnectionRegistry, Seat

__all__ = ["MemoryConnections"]


class _Seat:
    __slots__ = ("_registry", "_user_id", "released")

    def __init__(self, registry: MemoryConnections, user_id: str) -> None:
        self._registry = registry
        self._user_id = user_id
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._registry._drop(self._user_id)


class MemoryConnections(ConnectionRegistry):
    """One node's connections; right when there is one node."""

    def __init__(self, max_per_user: int) -> None:
        if max_per_user < 1:
            raise ValueError(f"max_per_user must be at least 1, got {max_per_user}")
        self.max_per_user = max_per_user
        self._held: dict[str, int] = {}

    async def claim(self, user_id: str) -> Seat | None:
        held = self._held.get(user_id, 0)
        if held >= self.max_per_user:
            return None
        self._held[user_id] = held + 1
        return _Seat(self, user_id)

    async def count(self, user_id: str) -> int:
        return self._held.get(user_id, 0)

    def _drop(self, user_id: str) -> None:
        held = self._held[user_id] - 1
        if held:
            self._held[user_id] = held
        else:
            del self._held[user_id]
