"""Open connections per user, counted across every node, for the per-user connection cap."""

from runwire.connections.base import ConnectionRegistry, Seat

__all__ = ["ConnectionRegistry", "Seat"]
