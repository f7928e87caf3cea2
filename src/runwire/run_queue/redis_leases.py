"""The run queue's leases in Redis: ``{prefix}lease:{run_id}`` names the node running the run,
with an expiry (``PX``).

The node renews all its leases in one script call every fifth of the lease time; a lease found
missing (Redis restarted) is put back, one found held by another node is lost (the run stops
here). A node trusts a lease for four fifths of its time after the last renewal was sent, so it
has stopped acting for a run well before another node can see the lease expire. A run that finds
its lease no longer trusted (the node was paused, its heartbeat late) asks Redis once
(``confirm``): a lease still this node's is renewed and the run goes on; only one another node
holds, or one that is gone, stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from runwire.errors import DependencyUnavailable
from runwire.run_queue.base import LostHandler
from runwire.run_queue.redis_lane import command

__all__ = ["CONFIRM", "RELEASE", "RENEW", "Leases"]

log = logging.getLogger(__name__)

RENEW = """
local out = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder == false or holder == ARGV[1] then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""
"""KEYS: the leases to renew. ARGV[1]: this node; ARGV[2]: lease ms. Returns, per key, 1
(renewed or put back) or 0 (another node holds it)."""

CONFIRM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
"""KEYS[1]: a lease. ARGV[1]: this node; ARGV[2]: lease ms. Renews it only if it is this node's
(never puts back one that expired: another node may have ended the run meanwhile)."""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
"""KEYS[1]: a lease. ARGV[1]: this node. Deletes it only if it is this node's."""

_RELEASE_BYTES = RELEASE.encode()

Packed = Callable[[bytes], Awaitable[Any]]
"""Sends one command packed in RESP on the run queue's lane; its reply."""
Call = Callable[[Callable[[Redis], Any]], Awaitable[Any]]
"""Runs one call of the client library; its result (DependencyUnavailable if Redis fails)."""


class Leases:
    """This node's leases. Nothing runs until the run queue runs :meth:`heartbeat` (its task)."""

    def __init__(
        self,
        *,
        prefix: str,
        node_id: str,
        lease_s: float,
        clock: Callable[[], float],
        packed: Packed,
        call: Call,
    ) -> None:
        self._prefix = prefix
        self._node_id = node_id
        self._node_bulk = node_id.encode()
        self._lease_s = lease_s
        self._lease_ms = max(1, int(lease_s * 1000))
        self._lease_ms_bytes = str(self._lease_ms).encode()
        self._clock = clock
        self._packed = packed
        self._call = call
        # Run id -> until when it is trusted: four fifths of the lease after its last good
        # renewal was sent (kept as that end, as :meth:`holds` runs before every event).
        self._renewed: dict[str, float] = {}
        self._trust_s = lease_s * 0.8
        self.lost_handler: LostHandler | None = None
        """Told of each lease the heartbeat found lost."""

    def key(self, run_id: str) -> str:
        """The run's lease."""
        return f"{self._prefix}lease:{run_id}"

    async def acquire(self, run_id: str) -> bool:
        sent = self._clock()
        key = self.key(run_id).encode()
        taken = await self._packed(
            command(b"SET", key, self._node_bulk, b"PX", self._lease_ms_bytes, b"NX")
        )
        if taken:
            self._renewed[run_id] = sent + self._trust_s
        return bool(taken)

    async def release(self, run_id: str) -> None:
        self._renewed.pop(run_id, None)
        key = self.key(run_id).encode()
        # The script's text each time (as EVAL): Redis keeps it compiled, and one Redis
        # restarted has it at once.
        await self._packed(command(b"EVAL", _RELEASE_BYTES, b"1", key, self._node_bulk))

    def holds(self, run_id: str) -> bool:
        until = self._renewed.get(run_id)
        return until is not None and self._clock() < until

    async def confirm(self, run_id: str) -> bool:
        if run_id not in self._renewed:
            return False  # let go of, or found lost by the heartbeat: never taken back here
        sent = self._clock()
        try:
            kept = await self._call(
                lambda r: r.eval(CONFIRM, 1, self.key(run_id), self._node_id, self._lease_ms)
            )
        except DependencyUnavailable:
            return False
        if not kept or run_id not in self._renewed:
            return False
        # Still this node's in Redis: no other node can have taken the run, so it may go on.
        self._renewed[run_id] = max(self._renewed[run_id], sent + self._trust_s)
        return True

    async def expired(self, run_ids: list[str]) -> list[str]:
        gone: list[str] = []
        for start in range(0, len(run_ids), 500):
            chunk = run_ids[start : start + 500]
            keys = [self.key(r) for r in chunk]
            holders = await self._mget(keys)
            gone.extend(run for run, holder in zip(chunk, holders, strict=True) if holder is None)
        return gone

    async def _mget(self, keys: list[str]) -> list[Any]:
        return list(await self._call(lambda r: r.mget(keys)))

    async def heartbeat(self) -> None:
        """The heartbeat task: renew every lease each fifth of the lease time, until cancelled."""
        interval = self._lease_s / 5
        while True:
            await asyncio.sleep(interval)
            runs = list(self._renewed)
            if not runs:
                continue
            sent = self._clock()
            try:
                held = await self._call(
                    lambda r, runs=runs: r.eval(  # type: ignore[misc]
                        RENEW,
                        len(runs),
                        *[self.key(x) for x in runs],
                        self._node_id,
                        str(self._lease_ms),
                    )
                )
            except DependencyUnavailable:
                held = None
            for i, run_id in enumerate(runs):
                if run_id not in self._renewed:
                    continue  # released meanwhile
                if held is not None and held[i] == 1:
                    self._renewed[run_id] = sent + self._trust_s
                elif held is not None or not self.holds(run_id):
                    # Another node holds it, or Redis has been away for most of the lease.
                    self._renewed.pop(run_id, None)
                    log.warning("lost the lease of run %s; stopping it here", run_id)
                    if self.lost_handler is not None:
                        self.lost_handler(run_id)

    async def release_all(self) -> None:
        """Let go of every lease this node holds (it is stopping)."""
        for run_id in list(self._renewed):
            with contextlib.suppress(DependencyUnavailable):
                await self.release(run_id)
