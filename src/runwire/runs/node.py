"""This node's runs, as the rest of runwire sees them: one entry point, and the lifecycle behind it.

:class:`Runs` is what the chat service calls: :meth:`Runs.accept` stores a message with the run
it asks for and sees that the run happens, :meth:`Runs.stop` stops a run wherever it is, and
:meth:`Runs.live_status` tells how a run executing here is doing. Who may send what (thread
ownership, the concurrency policy, the per-user cap) is the caller's to decide: it hands
``accept`` the check to run in the accepting transaction.

Accepting a run, in the order it happens:

1. **Admit**: with room on this node the run gets a place here and its lease
   (:meth:`Dispatcher.admit`), before anything is stored.
2. **Store**: the message and its run in one transaction (``Conversations.accept_run``), in
   which the caller's check may refuse it. An admitted run is stored already claimed when
   nothing of its thread is unfinished: the common case costs that one write and no trip
   through the run queue.
3. **Start** a run stored claimed here at once (:meth:`Dispatcher.start_admitted`). Otherwise
   the place and lease go back (:meth:`Dispatcher.withdraw`); under the ``interrupt`` policy the
   thread's runs before it are asked to stop (without waiting for the answer: the new run waits
   for them anyway); and the run, stored ``queued``, is offered (:meth:`Dispatcher.offer`): here
   if there is room, else to the run queue. From then on it happens whatever becomes of this
   node (a sweep offers it again if the offer is lost).

:meth:`Runs.running` builds the parts (the :class:`EventWriter`, the :class:`RunExecutor` and the
:class:`Dispatcher`), wires them to each other and to the run queue once, and runs them for as
long as its context lasts; nothing starts work before it is entered.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from runwire.bus.base import EventBus
from runwire.domain.clock import now_ms
from runwire.domain.ids import new_epoch, new_id
from runwire.events.model import RunEvent
from runwire.run_queue.base import Job, RunQueue
from runwire.runs.dispatcher import HISTORY_TURNS, Dispatcher
from runwire.runs.event_writer import LINGER_S, MAX_BACKLOG, EventWriter
from runwire.runs.executor import AgentFn, RunExecutor, RunInput
from runwire.store.records import Message, ThreadRecord
from runwire.store.store import Store
from runwire.telemetry.metrics import Metrics
from runwire.telemetry.traces import Tracing

__all__ = ["AcceptedRun", "Check", "Runs"]

Check = Callable[[list[tuple[str, str]]], None]
"""Called in the accepting transaction with the user's unfinished runs, as ``(run_id,
thread_id)`` in the order they start; raises to refuse the message (nothing is stored then)."""


@dataclass(frozen=True, slots=True)
class AcceptedRun:
    """A message stored with its run: the run happens from here on."""

    run_id: str
    thread: ThreadRecord  # the message's thread (a new one, if it started one)
    message: Message


class Runs:
    """This node's runs: accept, stop, live status. Built and run by :meth:`running`."""

    def __init__(
        self,
        store: Store,
        writer: EventWriter,
        executor: RunExecutor,
        dispatcher: Dispatcher,
        *,
        tracing: Tracing | None = None,
    ) -> None:
        self._store = store
        self._writer = writer
        self._executor = executor
        self._dispatcher = dispatcher
        self._tracing = tracing or Tracing()

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls,
        *,
        store: Store,
        bus: EventBus,
        queue: RunQueue,
        agent: AgentFn,
        run_timeout_s: float,
        capacity: int,
        sweep_interval_s: float,
        stop_wait_s: float = 5.0,
        grace_s: float = 0.0,
        sink: Callable[[Sequence[RunEvent]], Awaitable[None]] | None = None,
        max_backlog: int = MAX_BACKLOG,
        linger_s: float = LINGER_S,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> AsyncIterator[Runs]:
        """Build this node's writer, executor and dispatcher on ``store``, ``bus`` and ``queue``
        (both open for longer than this context) and run them until the context ends.

        Entering closes what earlier processes left (with the in-process queue) and starts
        taking runs; leaving stops taking them, gives the runs executing here ``grace_s`` to
        finish and stops the rest (each still emits its closing events), then stores the last
        events. ``sink`` stores a batch of events (default: the store's run log);
        ``capacity``, ``sweep_interval_s`` and ``stop_wait_s`` are the :class:`Dispatcher`'s,
        ``run_timeout_s`` the :class:`RunExecutor`'s, ``max_backlog`` and
        ``linger_s`` (its ``linger``) the :class:`EventWriter`'s."""
        writer = EventWriter(
            sink or store.runs.append_events, max_backlog=max_backlog, linger=linger_s
        )
        dispatcher: Dispatcher

        async def ended(run: RunInput, abandoned: bool, following: str | None) -> None:
            # The dispatcher drives the executor, so it is built after it: bound here, called
            # only once a run has ended, which no run can before the dispatcher starts it.
            await dispatcher.ended(run, abandoned, following)

        executor = RunExecutor(
            runs=store.runs,
            bus=bus,
            writer=writer,
            agent=agent,
            run_timeout_s=run_timeout_s,
            holds=queue.holds,
            confirm=queue.confirm,
            on_ended=ended,
            metrics=metrics,
            tracing=tracing,
        )
        dispatcher = Dispatcher(
            store=store,
            queue=queue,
            executor=executor,
            capacity=capacity,
            sweep_interval_s=sweep_interval_s,
            stop_wait_s=stop_wait_s,
        )
        queue.on_lost(executor.abandon)
        # Left in reverse: the dispatcher takes no more runs before the executor drains, and
        # the writer stores the runs' closing events before it stops.
        async with writer.running(), executor.running(grace_s), dispatcher.running():
            yield cls(store, writer, executor, dispatcher, tracing=tracing)

    @property
    def accepting(self) -> bool:
        """False once this node is shutting down: a message accepted now might not get its run
        started before the node stops, so the caller refuses it before storing anything."""
        return self._executor.accepting

    @property
    def writer(self) -> EventWriter:
        """The event writer (its backlog is a gauge)."""
        return self._writer

    @property
    def executor(self) -> RunExecutor:
        """The executor of the runs on this node (its count is a gauge; a socket's shutdown
        drains it; tests wait on its runs)."""
        return self._executor

    @property
    def dispatcher(self) -> Dispatcher:
        """The dispatcher (tests drive its offers, sweeps and reaps directly)."""
        return self._dispatcher

    async def accept(
        self,
        user_id: str,
        thread: ThreadRecord | None,
        content: str,
        *,
        check: Check | None = None,
        interrupt: bool = False,
        client_message_id: str | None = None,
        new_thread_id: str | None = None,
    ) -> AcceptedRun:
        """Store ``content`` as ``user_id``'s message on ``thread`` (the caller's, checked;
        None: a new thread, of id ``new_thread_id`` if given) with the run it asks for, and see
        that the run happens (the steps in the module's docstring).

        ``check`` runs in the accepting transaction and refuses by raising; a
        ``client_message_id`` used before raises :class:`Conflict`. Either way nothing is
        stored, this node's place is given back, and the error propagates. ``interrupt``: the
        thread's runs before this one are asked to stop."""
        conversations = self._store.conversations
        dispatcher = self._dispatcher
        run_id, epoch = new_id("run"), new_epoch()
        now = await dispatcher.admit(run_id)
        history: list[tuple[str, str]] = []
        try:
            if now and thread is not None:
                history = await conversations.recent(thread.id, HISTORY_TURNS)
            started_at = now_ms()
            accepted = await conversations.accept_run(
                user_id=user_id,
                thread=thread,
                content=content,
                run_id=run_id,
                epoch=epoch,
                client_message_id=client_message_id,
                claim_at=started_at if now else None,
                check=check,
                new_thread_id=new_thread_id,
            )
        except BaseException:
            if now:
                await dispatcher.withdraw(run_id)
            raise
        stored = AcceptedRun(run_id, accepted.thread, accepted.message)
        if accepted.claimed:
            dispatcher.start_admitted(
                RunInput(
                    run_id=run_id,
                    thread_id=stored.thread.id,
                    user_id=user_id,
                    question=content,
                    history=history,
                    epoch=epoch,
                    accepted_at=time.time(),
                    usage_version=accepted.usage_version,
                ),
                started_at,
            )
            return stored
        if now:
            await dispatcher.withdraw(run_id)
        if interrupt:
            for older in accepted.waiting:
                await dispatcher.stop(user_id, older, confirm=False)
        job = Job(
            run_id=run_id,
            thread_id=stored.thread.id,
            user_id=user_id,
            trace=self._tracing.carrier(),
        )
        await dispatcher.offer(job)
        return stored

    async def stop(self, user_id: str, run_id: str) -> bool:
        """Stop the user's run wherever it is: True when it ends stopped, False when it has
        ended (or had decided how it ends); :class:`NotFound` if it is not the user's;
        :class:`DependencyUnavailable` when the node running it neither ends it nor lets it go
        in time (see :meth:`Dispatcher.stop`)."""
        return await self._dispatcher.stop(user_id, run_id)

    def live_status(self, run_id: str) -> tuple[str, int | None] | None:
        """``(status, started_at)`` of a run executing on this node; None for any other (its
        stored status is current)."""
        return self._executor.live_status(run_id)
