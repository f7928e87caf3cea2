"""Delivery of run events to the user's connections, and the history of active runs."""

from runwire.bus.base import EventBus, EventHandler, Subscription

__all__ = ["EventBus", "EventHandler", "Subscription"]
