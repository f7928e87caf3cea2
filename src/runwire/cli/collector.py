"""How a serving process tunes Python's cyclic garbage collector.

CPython starts a young-generation collection every 700 net allocations of container objects.
A streaming server allocates a few dicts per event, and objects that live a few milliseconds (an
event waiting in a batch, a frame in a send buffer) outlive two such collections and are moved
to the oldest generation. Every time those promotions add up to a quarter of the old objects,
the collector walks the whole heap, which here holds every cached usage record: about 150 ms
with 100 users' sample sets, once every few seconds under load (bench/throughput.py measured
the collector at ~20% of the event loop's time).

A larger young threshold lets short-lived objects die by reference counting before any
collection sees them, so few are promoted and full collections become rare. Reference counting
frees everything that is not part of a cycle at once, whatever the threshold, so memory is not
held longer; only cyclic garbage waits for the (rarer) collections. ``freeze`` moves what exists
at start-up (modules, classes, the app's wiring), which lives as long as the process, out of
the collector's sight for good.
"""

from __future__ import annotations

import gc

__all__ = ["tune_collector"]


def tune_collector(young_threshold: int) -> None:
    """Set the young generation's threshold (``0`` keeps Python's default) and freeze what the
    process holds now. Call once, after start-up and before serving."""
    if young_threshold <= 0:
        return
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
    gc.collect()  # what is garbage now would otherwise be frozen with the rest, never freed
    gc.freeze()
