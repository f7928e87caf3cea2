"""The run-queue port: offers runs to the nodes, leases each run to the one node that runs it.

Implementations: ``runwire.run_queue.memory.MemoryRunQueue`` (one process) and
``runwire.run_queue.redis.RedisRunQueue`` (several nodes on one Redis: a Stream with a consumer
group, a lease key per run renewed by a heartbeat, a pub/sub channel for stop requests). One
contract test suite (tests/integration/test_run_queue_contract.py) runs against each.

The queue is not the record of what must run: the store is (a run is ``queued`` there until a node
claims it). The queue makes a node hear of a run quickly; a job it loses (a node died holding it,
Redis lost it) is offered again by the dispatcher's sweep of the store. So jobs may arrive more
than once, and the store's claim decides which node runs a run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Job", "LostHandler", "RunQueue", "StopHandler"]


@dataclass(frozen=True, slots=True)
class Job:
    """A run offered to the nodes: enough to find it in the store."""

    run_id: str
    thread_id: str
    user_id: str
    ref: str = field(default="", compare=False)  # the queue's handle for acknowledging it
    # The W3C traceparent of the message that asked for the run ("" when none is recorded): the
    # node that runs it continues that trace.
    trace: str = field(default="", compare=False)


StopHandler = Callable[[str, str], None]
"""Called with ``(run_id, reason)`` when some node asks for a run to stop; must not block."""

LostHandler = Callable[[str], None]
"""Called with a run id whose lease this node failed to renew (another node may have taken it
over): the run must stop at once without emitting anything. Must not block."""


class RunQueue(ABC):
    @property
    @abstractmethod
    def node_id(self) -> str:
        """This node's name: lease holder and consumer name."""

    @property
    @abstractmethod
    def shared(self) -> bool:
        """True when other nodes may share the queue (so a run without a lease here may be
        running elsewhere); False for one process, where it is known to be lost."""

    @abstractmethod
    async def submit(self, job: Job) -> None:
        """Offer ``job`` to the nodes. Raises DependencyUnavailable when it cannot be sent
        (the run stays queued in the store, and the dispatcher's sweep offers it again)."""

    @abstractmethod
    async def take(self, limit: int, wait_s: float | None = None) -> list[Job]:
        """Wait for jobs for this node and return at most ``limit`` (at least one) of them, or
        ``[]`` once ``wait_s`` seconds have passed without any (None: wait as long as it takes).

        A job goes to one node at a time; one a node took and never acknowledged with
        :meth:`ack` (it died) is handed to another after the lease time. Cancelling a take
        loses no job (one already read is handed out again after the lease time).
        """

    @abstractmethod
    async def ack(self, job: Job) -> None:
        """The job is dealt with (claimed, or found claimed or ended): do not hand it out again."""

    @abstractmethod
    async def acquire(self, run_id: str) -> bool:
        """Take the run's lease for this node; False when another node holds it. Once taken, the
        queue renews it until :meth:`release`, and calls the lost handler if it cannot."""

    @abstractmethod
    async def release(self, run_id: str) -> None:
        """Give the run's lease up, if it is still this node's (the run has ended here, or was
        abandoned here), and stop renewing it."""

    @abstractmethod
    def holds(self, run_id: str) -> bool:
        """Whether this node may still act for the run: it holds the lease and its last renewal
        is recent enough that no other node can have taken it over. Checked before each event,
        so it does no I/O."""

    @abstractmethod
    async def confirm(self, run_id: str) -> bool:
        """Renew the run's lease now if it is still this node's, and say so: for a run this
        node has stopped trusting the lease of (:meth:`holds` is False: the node was paused,
        or the heartbeat was slow), before giving it up. False when another node holds it,
        nobody does, this node has let go of it, or the backend does not answer."""

    @abstractmethod
    async def expired(self, run_ids: list[str]) -> list[str]:
        """Those of ``run_ids`` that no node holds a lease on."""

    @abstractmethod
    async def stop(self, run_id: str, reason: str) -> None:
        """Ask whichever node runs ``run_id`` to stop it (the stop handler there is called)."""

    @abstractmethod
    def on_stop(self, handler: StopHandler) -> None:
        """Set the handler for stop requests addressed to runs (on any node)."""

    @abstractmethod
    def on_lost(self, handler: LostHandler) -> None:
        """Set the handler for leases this node lost."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise DependencyUnavailable when the queue's backend does not answer."""
