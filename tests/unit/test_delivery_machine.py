"""A model of runs, clients and their connections, driving ``Delivery`` through any interleaving.

Runs publish seq 1..n (the last one terminal). Clients connect (a fresh ``Delivery``), disconnect
(keeping what they received), begin a resume after a seq they hold, and have its replay read at
some moment (what the store returns then) and handed over, or failed, while live events keep
arriving in between. After every step the model checks what docs/protocol.md ("Per-run
guarantees and resume") and docs/decisions.md ("No repeats on a connection") promise:

- a connection never sends one seq of a run twice;
- a replay goes out in increasing seq order, all after the position asked for;
- live events go out in order: each is above every seq the connection sent of its run, and
  none goes out while a resume of its run is pending there (the replay comes first);
- once a resume is handed over (and no other resume of the run is pending on the connection),
  the connection has sent every seq from ``after_seq + 1`` to the highest published, and keeps
  doing so as the run goes on;
- a connection open since before a run started sends it from seq 1 with no gap;
- a client that keeps the reconnect rule (each new connection resumes every run at once, after
  the last contiguous seq it holds) receives seq 1, 2, 3, ... of each run, each once, in order,
  across all its connections.

A run may also be taken over (its node lost): another node renumbers it under a new epoch, after
a prefix of its events that was stored, and closes it with a terminal event under the reused
seq that follows. Then, per docs/protocol.md ("Epochs: whole or refused", "Live notice"):

- the seqs above hold per numbering (a seq may go out once under each epoch);
- a connection is told ``reload_required`` exactly when it sends an event of a numbering other
  than the one it sent (or the client resumed from) before;
- every connection open at the takeover sends the new numbering's terminal event once no resume
  of the run is pending there, however it followed the run: live, through a resume, or both.

Otherwise a client may receive a seq again on another connection: that is what ``resume`` is
for, and the client rule (apply only ``last + 1``) absorbs it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from runwire.events import EventType, RunEvent
from runwire.protocol.delivery import Delivery

# Hypothesis' pytest plugin marks @given tests `hypothesis`; a state machine's TestCase it cannot
# see, so this module says it (`make test-unit` leaves it out, `make test-properties` runs it).
pytestmark = [pytest.mark.unit, pytest.mark.hypothesis]

T = TypeVar("T")

RUNS = ("a", "b")
CLIENTS = 2
MAX_RUN_LENGTH = 7
# Every choice is drawn through this one strategy (an index, reduced modulo the options): making
# a fresh strategy per draw costs more than the rest of a step, and shrinking still goes to 0.
PICK = st.integers(0, 255)


def ev(seq: int, run: str, terminal: bool = False, epoch: str = "e1") -> RunEvent:
    kind = EventType.AGENT_COMPLETED if terminal else EventType.AGENT_THINKING
    return RunEvent(kind, run, "t", seq, "supervisor", "ts", epoch=epoch)


@dataclass
class PendingResume:
    run: str
    after: int
    epoch: str | None  # the numbering of what the client holds, named in the resume
    stored: list[RunEvent] | None = None  # what the replay read, once it has read
    refused: bool = False  # the read found the run renumbered past ``epoch``


@dataclass
class Connection:
    delivery: Delivery
    from_start: set[str]  # runs that had not begun when it opened
    sent: dict[str, list[int]] = field(default_factory=dict)  # run -> seqs, in sending order
    pending: list[PendingResume] = field(default_factory=list)
    # run -> lowest after handed over, and the numbering the replay was of
    resumed_from: dict[str, tuple[int, str]] = field(default_factory=dict)
    epochs: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # run -> (epoch, seq)
    shown: dict[str, str] = field(default_factory=dict)  # run -> the numbering the client has
    at_takeover: set[str] = field(default_factory=set)  # runs taken over while it was open


@dataclass
class Client:
    received: dict[str, set[int]]  # across all its connections
    log: dict[str, list[int]]  # the same, in the order received
    # Runs this client has followed by the reconnect rule alone (every new connection resumes
    # each run at once, after its last contiguous seq): it must have seen 1, 2, 3, ... once each.
    strict: dict[str, bool]
    connection: Connection | None = None
    epoch: dict[str, str] = field(default_factory=dict)  # run -> the numbering it holds

    def last_contiguous(self, run: str) -> int:
        have = self.received[run]
        n = 0
        while n + 1 in have:
            n += 1
        return n


class DeliveryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.length: dict[str, int] = {}
        self.published: dict[str, list[RunEvent]] = {run: [] for run in RUNS}
        self.epoch = dict.fromkeys(RUNS, "e1")
        # Every event published, under any numbering: (run, epoch, seq) -> the event.
        self.ever: dict[tuple[str, str, int], RunEvent] = {}
        self.clients = [
            Client(
                {run: set() for run in RUNS}, {run: [] for run in RUNS}, dict.fromkeys(RUNS, True)
            )
            for _ in range(CLIENTS)
        ]

    @staticmethod
    def _choose(data: st.DataObject, options: Sequence[T], label: str) -> T:
        return options[data.draw(PICK, label=label) % len(options)]

    @initialize(data=st.data())
    def history(self, data: st.DataObject) -> None:
        """Runs may be under way already, and clients may hold a prefix of them from an
        earlier connection: this reaches the reconnect states in a few steps."""
        for run in RUNS:
            self.length[run] = self._choose(data, range(1, MAX_RUN_LENGTH + 1), f"length {run}")
            done = self._choose(data, range(self.length[run] + 1), f"published {run}")
            self.published[run] = [
                ev(seq, run, terminal=seq == self.length[run]) for seq in range(1, done + 1)
            ]
            self._publish_all(self.published[run])
            for client in self.clients:
                held = self._choose(data, range(done + 1), f"held {run}")
                client.received[run] = set(range(1, held + 1))
                if held:
                    client.epoch[run] = "e1"
                client.log[run] = list(range(1, held + 1))

    def _publish_all(self, events: list[RunEvent]) -> None:
        self.ever.update({(e.run_id, e.epoch, e.seq): e for e in events})

    # -- what goes out, checked as it goes --

    def _take(self, client: Client, run: str, out: list[RunEvent]) -> None:
        conn = client.connection
        assert conn is not None
        sent = conn.epochs.setdefault(run, [])
        for event in out:
            assert event.run_id == run
            position = (event.epoch, event.seq)
            assert position not in sent, f"{position} of {run} sent twice (after {sent})"
            assert self.ever.get((run, *position)) == event, f"{position} of {run} never published"
            shown = conn.shown.get(run)
            told = conn.delivery.renumbered(event)
            assert told == (shown is not None and shown != event.epoch), (
                f"{run}: {position} after {shown}: reload_required {'sent' if told else 'missing'}"
            )
            conn.shown[run] = event.epoch
            if told:  # the client drops what it holds of the run
                client.received[run] = set()
                client.log[run] = []
                conn.sent[run] = []
            client.epoch[run] = event.epoch
            sent.append(position)
            conn.sent.setdefault(run, []).append(event.seq)
            client.received[run].add(event.seq)
            client.log[run].append(event.seq)

    def _take_live(self, client: Client, run: str, out: list[RunEvent]) -> None:
        conn = client.connection
        assert conn is not None
        for event in out:
            before = conn.sent.get(run, []) if conn.shown.get(run) == event.epoch else []
            assert not before or event.seq > max(before), (
                f"live seq {event.seq} of {run} out of order (after {before})"
            )
            self._take(client, run, [event])

    # -- what can be chosen --

    def _over(self, run: str) -> bool:
        return len(self.published[run]) == self.length[run]

    def _open_runs(self) -> list[str]:
        return [run for run in RUNS if len(self.published[run]) < self.length[run]]

    def _clients(self, *, connected: bool) -> list[int]:
        return [
            c
            for c, client in enumerate(self.clients)
            if (client.connection is not None) == connected
        ]

    def _pending(self, *, read: bool | None = None) -> list[tuple[int, int]]:
        """Pending resumes of open connections, as (client, resume) indexes."""
        return [
            (c, i)
            for c, client in enumerate(self.clients)
            if client.connection is not None
            for i, p in enumerate(client.connection.pending)
            if read is None or (p.stored is not None) == read
        ]

    def _pick(self, data: st.DataObject, read: bool | None = None) -> tuple[Client, Connection]:
        c, i = self._choose(data, self._pending(read=read), "client, resume")
        conn = self.clients[c].connection
        assert conn is not None
        # The picked resume goes to the front: finish and abandon pop it from there.
        conn.pending.insert(0, conn.pending.pop(i))
        return self.clients[c], conn

    # -- the event source --

    @precondition(lambda self: self._open_runs())
    @rule(data=st.data())
    def publish(self, data: st.DataObject) -> None:
        """The run's next event, or (as a run's journal publishes a streamed answer's chunks) its
        next few at once, handed to each connection together (``Delivery.live_batch``)."""
        run = self._choose(data, self._open_runs(), "run")
        first = len(self.published[run]) + 1
        count = self._choose(data, range(1, min(3, self.length[run] - first + 1) + 1), "batch")
        events = [
            ev(seq, run, terminal=seq == self.length[run], epoch=self.epoch[run])
            for seq in range(first, first + count)
        ]
        self.published[run] += events  # stored (or held by the bus) as they are published
        self._deliver(run, *events)

    def _deliver(self, run: str, *events: RunEvent) -> None:
        self._publish_all(list(events))
        for client in self.clients:
            conn = client.connection
            if conn is None:
                continue
            out = (
                conn.delivery.live(events[0])
                if len(events) == 1
                else conn.delivery.live_batch(events)
            )
            if any(p.run == run for p in conn.pending):
                # Held back until the replay is in, so the replay is not overtaken.
                assert out == [], (
                    f"live {[e.seq for e in events]} of {run} sent while its resume is pending"
                )
            self._take_live(client, run, out)

    @precondition(lambda self: [r for r in self._open_runs() if self.epoch[r] == "e1"])
    @rule(data=st.data())
    def take_over(self, data: st.DataObject) -> None:
        """The run's node is lost: another node renumbers it after the events that were stored
        (any prefix of those published: the rest were sent live only) and closes it."""
        run = self._choose(data, [r for r in self._open_runs() if self.epoch[r] == "e1"], "run")
        stored = self._choose(data, range(len(self.published[run]) + 1), "stored")
        self.epoch[run] = "e2"
        self.length[run] = stored + 1
        self.published[run] = [
            dataclasses.replace(e, epoch="e2") for e in self.published[run][:stored]
        ]
        self._publish_all(self.published[run])  # a resume may read them now
        closing = ev(stored + 1, run, terminal=True, epoch="e2")
        self.published[run].append(closing)
        for client in self.clients:
            client.strict[run] = False  # the promises hold per numbering
            if client.connection is not None:
                client.connection.at_takeover.add(run)
        self._deliver(run, closing)

    # -- clients and their connections --

    @precondition(lambda self: self._clients(connected=False))
    @rule(data=st.data())
    def connect(self, data: st.DataObject) -> None:
        c = self._choose(data, self._clients(connected=False), "client")
        client = self.clients[c]
        for run in RUNS:
            if not self._over(run) and client.last_contiguous(run) < len(self.published[run]):
                client.strict[run] = False  # live events may come before what it lacks
        not_begun = {run for run in RUNS if not self.published[run]}
        client.connection = Connection(Delivery(), not_begun)

    @rule(data=st.data())
    def reconnect_and_resume(self, data: st.DataObject) -> None:
        """The client rule: a new connection, and at once a resume of each run after the last
        contiguous seq held (here before any live event can reach the connection)."""
        c = self._choose(data, range(CLIENTS), "client")
        client = self.clients[c]
        not_begun = {run for run in RUNS if not self.published[run]}
        client.connection = Connection(Delivery(), not_begun)
        for run in RUNS:
            last = client.last_contiguous(run)
            if not (self._over(run) and last == self.length[run]):
                self._begin(client, run, last)

    @precondition(lambda self: self._clients(connected=True))
    @rule(data=st.data())
    def disconnect(self, data: st.DataObject) -> None:
        c = self._choose(data, self._clients(connected=True), "client")
        self.clients[c].connection = None  # its pending resumes go with it

    @precondition(lambda self: self._clients(connected=True))
    @rule(data=st.data())
    def begin_resume(self, data: st.DataObject) -> None:
        c = self._choose(data, self._clients(connected=True), "client")
        client = self.clients[c]
        assert client.connection is not None
        # A run already being resumed here is picked more often: resumes racing each other.
        racing = [p.run for p in client.connection.pending]
        run = self._choose(data, [*racing, *RUNS], "run")
        last = client.last_contiguous(run)
        # Mostly after the last seq held (the client rule); also from the start or from anywhere
        # before, which asks again for seqs this very connection may have sent.
        after = self._choose(data, [last, 0, -1], "after_seq")
        if after < 0:
            after = self._choose(data, range(last + 1), "after_seq")
        if after != last:
            client.strict[run] = False  # it asks again for seqs it has
        self._begin(client, run, after)

    @staticmethod
    def _begin(client: Client, run: str, after: int) -> None:
        conn = client.connection
        assert conn is not None
        epoch = client.epoch.get(run) if after > 0 else None
        if epoch is not None:
            conn.shown.setdefault(run, epoch)  # what it holds, until this connection sends
        conn.pending.append(PendingResume(run, after, epoch))
        conn.delivery.begin_resume(run, after, epoch)

    def _read(self, p: PendingResume) -> list[RunEvent]:
        """What a replay reads now: refused (RunStream) if the client named a numbering no
        longer the run's, or a position the run has not reached."""
        p.refused = (p.epoch is not None and p.epoch != self.epoch[p.run]) or p.after > len(
            self.published[p.run]
        )
        return [] if p.refused else list(self.published[p.run][p.after :])

    @precondition(lambda self: self._pending(read=False))
    @rule(data=st.data())
    def read_replay(self, data: st.DataObject) -> None:
        """The store (or the bus history) is read now; the replay is handed over later."""
        _client, conn = self._pick(data, read=False)
        p = conn.pending[0]
        p.stored = self._read(p)

    @precondition(lambda self: self._pending())
    @rule(data=st.data())
    def finish_resume(self, data: st.DataObject) -> None:
        """The replay is handed over: what was read earlier or, if not read yet, what is there."""
        client, conn = self._pick(data)
        p = conn.pending.pop(0)
        stored = p.stored if p.stored is not None else self._read(p)
        if p.refused:
            client.strict[p.run] = False
            self._take_live(client, p.run, conn.delivery.abandon_resume(p.run))
            return
        epoch = stored[0].epoch if stored else self.epoch[p.run]
        out = conn.delivery.finish_resume(p.run, list(stored))
        replayed = [e.seq for e in out if e.epoch == epoch]
        assert replayed == sorted(set(replayed)), f"replay of {p.run} out of order: {replayed}"
        assert all(seq > p.after for seq in replayed), f"replay after {p.after} sent {replayed}"
        self._take(client, p.run, out)
        held = conn.resumed_from.get(p.run)
        if held is None or held[1] != epoch or p.after < held[0]:
            conn.resumed_from[p.run] = (p.after, epoch)

    @precondition(lambda self: self._pending())
    @rule(data=st.data())
    def abandon_resume(self, data: st.DataObject) -> None:
        """The replay could not be read (the run is not found, the store failed)."""
        client, conn = self._pick(data)
        p = conn.pending.pop(0)
        client.strict[p.run] = False  # what it lacked is still missing; live events go on
        # What was held back is live events: they go out as live ones would have.
        self._take_live(client, p.run, conn.delivery.abandon_resume(p.run))

    # -- what holds between steps --

    @invariant()
    def a_client_keeping_the_rule_sees_each_seq_once_in_order(self) -> None:
        for c, client in enumerate(self.clients):
            for run in RUNS:
                log = client.log[run]
                if client.strict[run]:
                    assert log == list(range(1, len(log) + 1)), f"client {c}, {run}: {log}"

    @invariant()
    def no_gap_after_a_resume_or_from_the_start(self) -> None:
        for client in self.clients:
            conn = client.connection
            if conn is None:
                continue
            for run in RUNS:
                if any(p.run == run for p in conn.pending):
                    continue  # live events are held until the replay is in
                # Per numbering: a renumbered run's earlier seqs name other events.
                epoch = self.epoch[run]
                resumed = conn.resumed_from.get(run)
                starts = [resumed[0]] if resumed is not None and resumed[1] == epoch else []
                if run in conn.from_start and epoch == "e1":
                    starts.append(0)
                sent = {seq for e, seq in conn.epochs.get(run, []) if e == epoch}
                for start in starts:
                    missing = set(range(start + 1, len(self.published[run]) + 1)) - sent
                    assert not missing, (
                        f"{run}: seqs {sorted(missing)} after {start} never sent "
                        f"(sent {conn.epochs.get(run, [])}, published {len(self.published[run])})"
                    )

    @invariant()
    def a_renumbered_run_ends_on_every_connection_open_at_its_takeover(self) -> None:
        for client in self.clients:
            conn = client.connection
            if conn is None:
                continue
            for run in conn.at_takeover:
                if any(p.run == run for p in conn.pending):
                    continue
                end = (self.epoch[run], self.length[run])
                assert end in conn.epochs.get(run, []), (
                    f"{run}: the new numbering's terminal event {end} never sent "
                    f"(sent {conn.epochs.get(run, [])})"
                )


DeliveryMachine.TestCase.settings = settings(
    max_examples=120,
    stateful_step_count=25,
    deadline=None,  # wall-clock limits on a shared 2-core machine would only make it flaky
    suppress_health_check=[HealthCheck.too_slow],
)
test_delivery_machine = DeliveryMachine.TestCase
