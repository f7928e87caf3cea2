"""The in-process run queue: one node, so every lease is this process's and a stop is a call."""

from __future__ import annotations

import asyncio

from runwire.run_queue.base import Job, LostHandler, RunQueue, StopHandler

__all__ = ["MemoryRunQueue"]


class MemoryRunQueue(RunQueue):
    def __init__(self, node_id: str = "local") -> None:
        self._node_id = node_id
        self._jobs: asyncio.Queue[Job] = asyncio.Queue()
        self._leases: set[str] = set()
        self._stop_handler: StopHandler | None = None

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def shared(self) -> bool:
        return False

    async def submit(self, job: Job) -> None:
        self._jobs.put_nowait(job)

    async def take(self, limit: int, wait_s: float | None = None) -> list[Job]:
        try:
            async with asyncio.timeout(wait_s):
                jobs = [await self._jobs.get()]
        except TimeoutError:
            return []
        while len(jobs) < limit and not self._jobs.empty():
            jobs.append(self._jobs.get_nowait())
        return jobs

    async def ack(self, job: Job) -> None:
        """Nothing to do: a job taken here is gone from the queue."""

    async def acquire(self, run_id: str) -> bool:
        if run_id in self._leases:
            return False
        self._leases.add(run_id)
        return True

    async def release(self, run_id: str) -> None:
        self._leases.discard(run_id)

    def holds(self, run_id: str) -> bool:
        return run_id in self._leases

    async def confirm(self, run_id: str) -> bool:
        return run_id in self._leases

    async def expired(self, run_ids: list[str]) -> list[str]:
        return [r for r in run_ids if r not in self._leases]

    async def stop(self, run_id: str, reason: str) -> None:
        if self._stop_handler is not None:
            self._stop_handler(run_id, reason)

    def on_stop(self, handler: StopHandler) -> None:
        self._stop_handler = handler

    def on_lost(self, handler: LostHandler) -> None:
        """Leases held in this process are never lost."""

    async def ping(self) -> None:
        """Always answers: there is no backend."""
