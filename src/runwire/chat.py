"""The chat service: accepts messages, starts their runs, and serves threads, runs and events.

It decides who may send what (the thread is the caller's; the concurrency policy and the
per-user cap, checked in the accepting transaction) and hands the rest to this node's runs
(``runwire.runs.node.Runs``), which store the message with its run and see that the run happens.

Every read takes the caller's user id and answers "not found" for anything that is not theirs,
so another user's thread or run is indistinguishable from one that does not exist. A run's events
are served whole after a client's position, or refused (``reload_required``): see
``runwire.protocol.recovery``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from runwire.agents.model_loop import INSTRUCTIONS
from runwire.agents.quality import assess
from runwire.bus.base import EventBus
from runwire.domain.concurrency import ConcurrencyPolicy
from runwire.errors import Conflict, DependencyUnavailable, NotFound, ReloadRequired
from runwire.events.model import EventType, RunEvent
from runwire.protocol.inbound import UserMessage
from runwire.protocol.recovery import RunStream
from runwire.runs.node import Check, Runs
from runwire.store.records import Message, RunRecord, ThreadRecord
from runwire.store.store import Store
from runwire.usage.pricing import PricingTable

__all__ = ["Accepted", "ChatService", "Replay"]


@dataclass(frozen=True, slots=True)
class Accepted:
    thread_id: str
    message_id: str
    run_id: str
    duplicate: bool = False

    def public(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "thread_id": self.thread_id,
            "message_id": self.message_id,
            "run_id": self.run_id,
        }
        if self.duplicate:
            body["duplicate"] = True
        return body


@dataclass(frozen=True, slots=True)
class Replay:
    """The rest of a run's stream after a client's position, as far as it has gone."""

    run: RunRecord  # as stored (its epoch; status and last_seq once it has ended)
    events: list[RunEvent]
    finished: bool  # the run has ended and these events take the client to its last one


class ChatService:
    def __init__(
        self,
        store: Store,
        runs: Runs,
        bus: EventBus,
        *,
        default_policy: ConcurrencyPolicy = ConcurrencyPolicy.ENQUEUE,
        max_active_runs_per_user: int = 3,
        pricing: PricingTable | None = None,
    ) -> None:
        self._pricing = pricing  # its date and source are texts an answer may quote
        self._store = store
        self._runs = runs
        self._bus = bus
        self._default_policy = default_policy
        self._max_runs = max_active_runs_per_user

    async def submit(
        self, user_id: str, msg: UserMessage, *, start_named_thread: bool = False
    ) -> Accepted:
        """Persist the message and start its run; a repeated ``client_message_id`` starts nothing.

        ``start_named_thread``: a ``thread_id`` that no thread has yet starts a new thread of that
        id (AG-UI clients name their threads) instead of being ``NotFound``; another user's
        thread is still ``NotFound``."""
        if not self._runs.accepting:
            # Refused before anything is stored: an accepted message always gets its run.
            raise DependencyUnavailable(
                "the server is shutting down; send the message again once it is back",
                code="server_closing",
            )
        thread = await self._thread_for(user_id, msg.thread_id)
        new_thread_id = None
        if thread is None and msg.thread_id is not None:
            if not start_named_thread or await self._store.conversations.thread_exists(
                msg.thread_id
            ):
                raise NotFound("no such thread")
            new_thread_id = msg.thread_id
        policy = msg.policy or self._default_policy
        try:
            accepted = await self._runs.accept(
                user_id,
                thread,
                msg.content,
                check=_policy_check(policy, thread, self._max_runs),
                interrupt=policy is ConcurrencyPolicy.INTERRUPT,
                client_message_id=msg.client_message_id,
                new_thread_id=new_thread_id,
            )
        except Conflict:
            if msg.client_message_id is None:
                raise
            # A client retrying a message it already sent gets its acknowledgement, not a
            # refusal; two sockets that raced with one client_message_id get the winner's.
            seen = await self._store.conversations.message_by_client_id(
                user_id, msg.client_message_id
            )
            if seen is None:
                raise
            return self._duplicate(seen)
        return Accepted(
            thread_id=accepted.thread.id, message_id=accepted.message.id, run_id=accepted.run_id
        )

    async def submit_on_behalf(self, user_id: str, msg: UserMessage) -> Accepted:
        """:meth:`submit` for a service acting for ``user_id`` (who is not signed in here, so
        may not exist): :class:`NotFound` for an unknown user."""
        if await self._store.accounts.user_by_id(user_id) is None:
            raise NotFound("no such user")
        return await self.submit(user_id, msg)

    def _duplicate(self, seen: Message) -> Accepted:
        return Accepted(
            thread_id=seen.thread_id, message_id=seen.id, run_id=seen.run_id or "", duplicate=True
        )

    async def _thread_for(self, user_id: str, thread_id: str | None) -> ThreadRecord | None:
        """The caller's thread ``thread_id``; None when it is not theirs (or not given)."""
        if thread_id is None:
            return None
        return await self._store.conversations.thread(user_id, thread_id)

    async def threads(self, user_id: str) -> list[ThreadRecord]:
        return await self._store.conversations.threads_of(user_id)

    async def messages(self, user_id: str, thread_id: str) -> list[Message]:
        if await self._store.conversations.thread(user_id, thread_id) is None:
            raise NotFound("no such thread")
        return await self._store.conversations.messages_of(thread_id)

    async def run(self, user_id: str, run_id: str) -> RunRecord:
        """The stored run; while it is active, its live status and start time are overlaid."""
        record = await self._store.runs.get(user_id, run_id)
        if record is None:
            raise NotFound("no such run")
        live = self._runs.live_status(run_id)
        if live is not None and not record.status_is_final:
            status, started_at = live
            record = dataclasses.replace(record, status=status, started_at=started_at)
        return record

    async def events(
        self, user_id: str, run_id: str, after_seq: int, epoch: str | None = None
    ) -> list[RunEvent]:
        """The run's events with ``seq > after_seq``, all of them, or ReloadRequired."""
        return (await self.replay(user_id, run_id, after_seq, epoch)).events

    async def replay(
        self, user_id: str, run_id: str, after_seq: int, epoch: str | None = None
    ) -> Replay:
        """The run's events after the position ``(epoch, after_seq)``: held live history first,
        else the store. ``epoch`` None accepts any (PROTOCOL.md v1 resumes carry none).

        Raises ReloadRequired when the position cannot be served whole: ``epoch`` is not the
        run's current one, the run never reached ``after_seq``, or its events are gone.
        """
        # The stored record, not the live overlay: its last_seq is only trusted once it is final.
        record = await self._store.runs.get(user_id, run_id)
        if record is None:
            raise NotFound("no such run")
        stream = _stream_of(record)
        events: list[RunEvent] = []
        if stream.check(after_seq, epoch):
            start = stream.read_after(after_seq)
            held = await self._bus.history(run_id, start)
            # A lost run between its new epoch and its first closing event: the bus still holds
            # the dead node's numbering, some of it never stored, which the closing events are
            # about to replace. Served, it answered a position under the new epoch with the old
            # one's events (an ended run even as whole, without its end). The store serves the
            # run under its epoch instead, and live delivery brings the close.
            stale = held is not None and not _of_epoch(held, record.epoch)
            if stale:
                held = None
            read = held if held is not None else await self._store.runs.events_after(run_id, start)
            if held is None and read and not _reaches_the_end(record, read):
                # The bus holds only the run's later part and the store lags the run by a batch:
                # what the bus holds from there on fills the rest. The bus lost the run's start
                # (Redis restarted empty; live delivery would only bring the rest from this
                # moment on), or the run was closed after its node was lost: its closing events
                # follow its stored ones under a new epoch, the bus holds only them, and they
                # are stored after the run's end is recorded and its last event sent. A client
                # that asked on seeing that event was refused the events it had just watched.
                tail = await self._bus.history(run_id, read[-1].seq)
                if tail and _of_epoch(tail, record.epoch):
                    read = [*read, *tail]
            try:
                # While the dead node's numbering is held, the run's last event is still to be
                # published (its end is recorded first): the read may lag it, as a held one may.
                events = stream.whole(after_seq, read, from_store=held is None and not stale)
            except ReloadRequired:
                # Retention may have trimmed the run between the two reads: judge it as trimmed.
                again = await self._store.runs.get(user_id, run_id)
                if again is None or again.trimmed_at is None:
                    raise
                record = again
                _stream_of(record).check(after_seq, epoch)
        reached = events[-1].seq if events else after_seq
        return Replay(record, events, record.status_is_final and reached >= record.last_seq)

    async def quality_metrics(self, user_id: str) -> dict[str, Any]:
        """What the quality gate found on the user's answers: checked, passed, replaced,
        failed, and the rejected ones by reason."""
        return await self._store.runs.quality_metrics(user_id)

    async def validate_content(self, user_id: str, run_id: str, content: str) -> dict[str, Any]:
        """Score ``content`` with the quality gate against the figures the tools of the user's
        run ``run_id`` computed (its ``tool_completed`` results, as stored) and triage's reading
        of its question, and against the instructions runwire gives a model (a text restating
        them fails, as a model's answer does); NotFound when the run is not the user's."""
        events = await self.events(user_id, run_id, 0)
        results: list[tuple[str, Any]] = []
        question = ""
        for event in events:
            data = event.data
            if event.type == EventType.TOOL_COMPLETED and data.get("success"):
                results.append((str(data.get("tool_name")), data.get("result")))
            elif event.type == EventType.TOOL_EXECUTING and data.get("tool_name") == (
                "classify_question"
            ):
                question = str((data.get("tool_args") or {}).get("question", ""))
        reading = next((r for name, r in results if name == "classify_question"), None)
        pricing = self._pricing
        verdict = assess(
            content,
            results,
            question=question,
            reading=reading if isinstance(reading, dict) else None,
            references=(pricing.as_of, pricing.source) if pricing is not None else (),
            instructions=INSTRUCTIONS,
        )
        return verdict.public()

    async def stop(self, user_id: str, run_id: str) -> bool:
        """Stop the user's run on whichever node runs it; False if it has ended."""
        return await self._runs.stop(user_id, run_id)


def _policy_check(policy: ConcurrencyPolicy, thread: ThreadRecord | None, max_runs: int) -> Check:
    """The check of a message on ``thread`` (None: a new one) under ``policy``, run in the
    accepting transaction with the user's unfinished runs: refuse when the thread is busy and the
    policy says reject, or when the user has ``max_runs`` unfinished runs (queued ones count too:
    a cap on running ones only would let one thread queue without limit; those an interrupt is
    about to stop do not)."""
    thread_id = thread.id if thread is not None else None

    def check(mine: list[tuple[str, str]]) -> None:
        on_thread = sum(1 for _, on in mine if on == thread_id)
        if on_thread and policy is ConcurrencyPolicy.REJECT:
            raise Conflict("a run is already active on this thread", code="thread_busy")
        counted = len(mine) - (on_thread if policy is ConcurrencyPolicy.INTERRUPT else 0)
        if counted >= max_runs:
            raise Conflict(
                f"you already have {max_runs} runs in progress; wait or stop one",
                code="too_many_runs",
            )

    return check


def _of_epoch(held: list[RunEvent], epoch: str) -> bool:
    """``held`` (the bus's, of one numbering) is of ``epoch``; an empty read is of any."""
    return not held or held[-1].epoch == epoch


def _reaches_the_end(record: RunRecord, read: list[RunEvent]) -> bool:
    """The run has ended and ``read`` holds its last event."""
    return record.status_is_final and read[-1].seq >= record.last_seq


def _stream_of(record: RunRecord) -> RunStream:
    return RunStream(
        run_id=record.id,
        epoch=record.epoch,
        last_seq=record.last_seq if record.status_is_final else None,
        trimmed=record.trimmed_at is not None,
    )
