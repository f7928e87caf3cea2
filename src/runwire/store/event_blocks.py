"""How a run's events are stored: in blocks, the consecutive events of one run that one batch
writes sharing a row (see ``schema.run_events``), and how a replay reads them back. Pure: the
rows are built and read here, written and fetched by :class:`~runwire.store.event_log.EventLog`.

Blocks of two writers can overlap when a node that lost a run's lease still stores what it
published before it knew; a read then keeps, for each seq, the event written under the run's
current epoch (the numbering of the node that took the run over), and the first one read when
neither or both are.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from runwire.events.model import RunEvent

__all__ = ["BLOCK_EVENTS", "Row", "blocks", "replay"]

Row = tuple[str, int, str, str, int | None]
"""A stored row: ``run_id``, ``seq`` (its first event's), ``type`` (its first event's), ``body``
(the events' frames joined by newlines) and ``last_seq`` (None for a row of one event)."""

BLOCK_EVENTS = 256  # events in one stored row, at most (a row stays under ~100 KB)


def blocks(events: Iterable[RunEvent]) -> list[Row]:
    """``events`` (in the order they were emitted, runs interleaved) as rows: each run's
    consecutive events in one, up to ``BLOCK_EVENTS``."""
    groups: dict[str, list[RunEvent]] = {}
    rows: list[Row] = []

    def close(group: list[RunEvent]) -> None:
        first = group[0]
        if len(group) == 1:
            rows.append((first.run_id, first.seq, first.type.value, first.json, None))
        else:
            body = b"\n".join([e.wire for e in group]).decode()
            rows.append((first.run_id, first.seq, first.type.value, body, group[-1].seq))

    for event in events:
        group = groups.get(event.run_id)
        if group is not None and (event.seq != group[-1].seq + 1 or len(group) >= BLOCK_EVENTS):
            close(group)
            group = None
        if group is None:
            groups[event.run_id] = [event]
        else:
            group.append(event)
    for group in groups.values():
        close(group)
    return rows


def replay(
    rows: Iterable[tuple[str, int | None, str]], after_seq: int, limit: int
) -> list[RunEvent]:
    """The events of one run's stored rows (each its ``body``, ``last_seq`` and the run's current
    epoch, in ``seq`` order) with ``seq > after_seq`` in order, at most ``limit``: each seq once
    (the event written under the current epoch, else the first read), every event under the
    current epoch."""
    kept: dict[int, tuple[dict[str, object], bool]] = {}
    epoch: str | None = None
    for body, last_seq, epoch in rows:
        for frame in body.split("\n") if last_seq is not None else (body,):
            wire = orjson.loads(frame)
            seq = wire["seq"]
            if seq <= after_seq:
                continue
            current = wire.get("epoch") == epoch
            held = kept.get(seq)
            if held is None or (current and not held[1]):
                kept[seq] = (wire, current)
    return [RunEvent.from_wire(kept[seq][0], epoch=epoch) for seq in sorted(kept)[:limit]]
