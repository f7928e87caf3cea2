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

Otherwise a client may receive a seq again on another connection: that is what ``resume`` is
for, and the client rule (apply only ``last + 1``) absorbs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from runwire.events import EventType, RunEvent
from runwire.protocol.delivery import Delivery

pytestmark = pytest.mark.unit

T = TypeVar("T")

RUNS = ("a", "b")
CLIENTS = 2
MAX_RUN_LENGTH = 7
# Every choice is drawn through this one strategy (an index, reduced modulo the options): making
# a fresh strategy per draw costs more than the rest of a step, and shrinking still goes to 0.
PICK = st.integers(0, 255)


def ev(seq: int, run: str, terminal: bool = False) -> RunEvent:
    kind = EventType.AGENT_COMPLETED if terminal else EventType.AGENT_THINKING
    return RunEvent(kind, run, "t", seq, "supervisor", "ts", epoch="e1")


@dataclass
class PendingResume:
    run: str
    after: int
    stored: list[RunEvent] | None = None  # what the replay read, once it has read


@dataclass
class Connection:
    delivery: Delivery
    from_start: set[str]  # runs that had not begun when it opened
    sent: dict[str, list[int]] = field(default_factory=dict)  # run -> seqs, in sending order
    pending: list[PendingResume] = field(default_factory=list)
    resumed_from: dict[str, int] = field(default_factory=dict)  # run -> lowest after handed over


@dataclass
class Client:
    received: dict[str, set[int]]  # across all its connections
    log: dict[str, list[int]]  # the same, in the order received
    # Runs this client has followed by the reconnect rule alone (every new connection resumes
    # each run at once, after its last contiguous seq): it must have seen 1, 2, 3, ... once each.
    strict: dict[str, bool]
    connection: Connection | None = None

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
            for client in self.clients:
                held = self._choose(data, range(done + 1), f"held {run}")
                client.received[run] = set(range(1, held + 1))
                client.log[run] = list(range(1, held + 1))

    # -- what goes out, checked as it goes --

    def _take(self, client: Client, run: str, out: list[RunEvent]) -> None:
        conn = client.connection
        assert conn is not None
        sent = conn.sent.setdefault(run, [])
        for event in out:
            assert event.run_id == run
            assert event.seq not in sent, f"seq {event.seq} of {run} sent twice (after {sent})"
            assert event.seq <= len(self.published[run]), "sent a seq not published yet"
            assert event == self.published[run][event.seq - 1]
            sent.append(event.seq)
            client.received[run].add(event.seq)
            client.log[run].append(event.seq)

    def _take_live(self, client: Client, run: str, out: list[RunEvent]) -> None:
        conn = client.connection
        assert conn is not None
        for event in out:
            before = conn.sent.get(run, [])
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
        run = self._choose(data, self._open_runs(), "run")
        seq = len(self.published[run]) + 1
        event = ev(seq, run, terminal=seq == self.length[run])
        self.published[run].append(event)  # stored (or held by the bus) as it is published
        for client in self.clients:
            conn = client.connection
            if conn is None:
                continue
            out = conn.delivery.live(event)
            if any(p.run == run for p in conn.pending):
                # Held back until the replay is in, so the replay is not overtaken.
                assert out == [], f"live seq {seq} of {run} sent while its resume is pending"
            self._take_live(client, run, out)

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
                client.connection.pending.append(PendingResume(run, last))
                client.connection.delivery.begin_resume(run, last)

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
        client.connection.pending.append(PendingResume(run, after))
        client.connection.delivery.begin_resume(run, after)

    @precondition(lambda self: self._pending(read=False))
    @rule(data=st.data())
    def read_replay(self, data: st.DataObject) -> None:
        """The store (or the bus history) is read now; the replay is handed over later."""
        _client, conn = self._pick(data, read=False)
        p = conn.pending[0]
        p.stored = self.published[p.run][p.after :]

    @precondition(lambda self: self._pending())
    @rule(data=st.data())
    def finish_resume(self, data: st.DataObject) -> None:
        """The replay is handed over: what was read earlier or, if not read yet, what is there."""
        client, conn = self._pick(data)
        p = conn.pending.pop(0)
        stored = p.stored if p.stored is not None else self.published[p.run][p.after :]
        out = conn.delivery.finish_resume(p.run, list(stored))
        got = [e.seq for e in out]
        assert got == sorted(set(got)), f"replay of {p.run} out of order: {got}"
        assert all(seq > p.after for seq in got), f"replay after {p.after} sent {got}"
        self._take(client, p.run, out)
        conn.resumed_from[p.run] = min(conn.resumed_from.get(p.run, p.after), p.after)

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
                starts = [conn.resumed_from[run]] if run in conn.resumed_from else []
                if run in conn.from_start:
                    starts.append(0)
                sent = set(conn.sent.get(run, []))
                for start in starts:
                    missing = set(range(start + 1, len(self.published[run]) + 1)) - sent
                    assert not missing, (
                        f"{run}: seqs {sorted(missing)} after {start} never sent "
                        f"(sent {conn.sent.get(run, [])}, published {len(self.published[run])})"
                    )


DeliveryMachine.TestCase.settings = settings(
    max_examples=120,
    stateful_step_count=25,
    deadline=None,  # wall-clock limits on a shared 2-core machine would only make it flaky
    suppress_health_check=[HealthCheck.too_slow],
)
test_delivery_machine = DeliveryMachine.TestCase
