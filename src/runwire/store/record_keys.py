"""The key each usage record is stored under, which makes an import idempotent per record."""

from __future__ import annotations

import asyncio
import hashlib

import orjson

from runwire.domain.usage import UsageRecord

__all__ = ["RecordKeys"]


class RecordKeys:
    """The key of each record of one import, in order: a SHA-256 of the record's content (every
    field but ``cost_usd``, which is derived: a price-table update must not make a call new
    again) and of how many equal records came before it in this import.

    The key is stable across versions (migration 0006 keys older records with a copy of it): a
    change here would make every earlier record new again.
    """

    def __init__(self) -> None:
        # Counts of the contents seen, in 256 dicts rather than one: growing a dict rehashes
        # all of it at once, which at 100,000 records held the event loop for 10-20 ms.
        self._seen: list[dict[bytes, int]] = [{} for _ in range(256)]

    def __call__(self, r: UsageRecord) -> str:
        content = orjson.dumps(
            [
                r.timestamp,
                r.provider,
                r.model,
                r.prompt_tokens,
                r.completion_tokens,
                float(r.latency_ms),  # as the store gives it back: 850 and 850.0 are one call
                r.status,
                r.prompt_hash,
                r.feature,
            ]
        )
        seen = self._seen[hash(content) & 255]
        count = seen.get(content, 0)
        seen[content] = count + 1
        return hashlib.sha256(content + b"#%d" % count).hexdigest()

    async def forget(self) -> None:
        """Let go of what was seen, a part at a time: freeing 100,000 contents at once held the
        event loop for about 40 ms."""
        for index, seen in enumerate(self._seen):
            seen.clear()
            if index % 8 == 7:
                await asyncio.sleep(0)
