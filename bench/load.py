"""Load benchmark (issue 12, R1): many users' runs on two nodes, sockets cut and resumed.

Two `runwire serve` processes (bench/throughput.py's `Runwire`) share a PostgreSQL database of
their own (created for the run, dropped afterwards) and Redis. ``--users`` users (default 200),
each with the generated sample data, send ``--runs`` messages in all (default 1,000), one after
another, each user on one socket, user i first on node i % 2. A share of the runs
(``--cut-share``, default 10%, chosen by a seeded draw) have their socket cut mid-stream: after
a random number of the run's events the client aborts the TCP connection (no close frame), opens
a new socket on the other node (every second cut: the same node) with a new ticket, sends
`resume {run_id, after_seq, epoch}` from the last event it holds, and reads the run to its end;
that socket carries the user's next messages. Runs are paced (``--delay-ms`` a chunk, default
2 ms) so that a cut usually lands while the run still streams on the node that executes it.

What every client checks, as docs/protocol.md promises, and the benchmark asserts (exit 1 when
any fails):

- no gap: each run's events are seq 1 to its terminal event's seq, none missing;
- no duplicate within an epoch: no (run, epoch, seq) received twice, across the cut;
- no event of another user: every run event a client receives belongs to a run it started;
- every run reaches its terminal event: the root's `agent_completed`, or `agent_error` `timeout`
  (a run past its time limit on an overloaded machine, counted apart); no `error` frame and no
  change of epoch (no node is lost here, so nothing may be renumbered). A client gives up on a
  run after ``--stall-s`` (300 s) without a frame; a socket a node closes (its idle timeout is
  300 s without a message from the client, too) ends the run it carried, counted by close code,
  and the user's next message goes on a new socket, so the report is still written.

Reported: runs/s and events/s over the timed phase (all users start together), first-event
latency p50/p99 (message sent to the run's first event), and how many resumes found their run
still running.

Usage: python bench/load.py [--users 200] [--runs 1000] [--cut-share 0.1] [--delay-ms 2]
                            [--redis-url redis://127.0.0.1:6379/3] [--seed 12] [--logs DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from throughput import (
    TERMINAL,
    Runwire,
    fresh_database,
    machine_busy_s,
    percentile,
    process_cpu_s,
)

CONTENT = "Where can we cut our LLM costs?"
# Its own Redis database: the tests' nodes (database 0) share the run queue's stream otherwise.
REDIS_URL = "redis://127.0.0.1:6379/3"
HANDSHAKE_ATTEMPTS = 5
EXPECTED_ENDS = {"agent_completed", "agent_error timeout"}


@dataclass
class Run:
    """What one client saw of one of its runs."""

    cut_after: int | None  # the run's events read before the socket is cut (None: no cut)
    elsewhere: bool = False  # resumed on the other node (else on the same one)
    run_id: str = ""
    sent: float = 0.0
    first_event_ms: float | None = None
    seqs: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    epoch: str | None = None  # the first epoch seen
    held: int = 0  # the last seq held without a gap, in that epoch
    terminal: tuple[str, int, str] | None = None  # (epoch, seq, type) of the root's last event
    ended: float | None = None  # the terminal event's timestamp (Unix seconds)
    resumed_at: float | None = None  # when the client sent `resume` (Unix seconds)
    resumed_after: int = 0  # the `after_seq` it sent
    end_code: str | None = None  # the terminal event's `code` (agent_error, agent_stopped)

    def add(self, frame: dict[str, Any]) -> None:
        epoch, seq = frame["epoch"], frame["seq"]
        if self.epoch is None:
            self.epoch = epoch
        counts = self.seqs[epoch]
        counts[seq] += 1
        if epoch == self.epoch:
            while counts[self.held + 1]:
                self.held += 1
        if frame["type"] in TERMINAL and frame["parent_agent"] is None:
            self.terminal = (epoch, seq, frame["type"])
            self.end_code = frame.get("code")
            self.ended = datetime.fromisoformat(frame["timestamp"]).timestamp()

    @property
    def complete(self) -> bool:
        return self.terminal is not None and self.held >= self.terminal[1]

    def missing(self) -> int:
        """Seqs of the terminal event's epoch below it that never arrived."""
        if self.terminal is None:
            return 0
        epoch, last, _ = self.terminal
        return sum(1 for seq in range(1, last + 1) if not self.seqs[epoch][seq])

    def duplicates(self) -> int:
        """Receptions of a (epoch, seq) beyond the first."""
        return sum(n - 1 for counts in self.seqs.values() for n in counts.values() if n > 1)

    def describe(self) -> str:
        """What went wrong with this run, for the report."""
        epoch, last, kind = self.terminal or ("", 0, "no terminal event")
        holes = [seq for seq in range(1, last + 1) if not self.seqs[epoch][seq]] if last else []
        said = f"{self.run_id}: {kind}"
        said += f" ({self.end_code})" if self.end_code else ""
        said += f" at seq {last}" if last else f", held {self.held}"
        if self.resumed_at is not None:
            where = "the other node" if self.elsewhere else "the same node"
            said += f"; cut after {self.cut_after}, resumed after {self.resumed_after} on {where}"
        if holes:
            said += f"; missing seqs {holes[0]}-{holes[-1]} ({len(holes)})"
        return said

    def beyond_end(self) -> int:
        """Events of the terminal event's epoch numbered after it."""
        if self.terminal is None:
            return 0
        epoch, last, _ = self.terminal
        return sum(n for seq, n in self.seqs[epoch].items() if seq > last)


@dataclass
class Client:
    """One user: its runs, and every run event its sockets received."""

    index: int
    auth: dict[str, str]
    runs: dict[str, Run] = field(default_factory=dict)  # by run id
    plan: list[Run] = field(default_factory=list)
    received: Counter[str] = field(default_factory=Counter)  # run events, by run id
    errors: list[dict[str, Any]] = field(default_factory=list)
    sockets: int = 0
    retried: int = 0  # handshakes answered 503 and tried again
    cuts: int = 0
    stalled: int = 0
    closed: Counter[str] = field(default_factory=Counter)  # sockets a node closed, by code


class Cluster:
    """The nodes, and one HTTP client for every user's tickets."""

    def __init__(self, nodes: list[Runwire], http: httpx.AsyncClient) -> None:
        self.nodes = nodes
        self.http = http

    async def open(self, client: Client, node: int) -> ClientConnection:
        for attempt in range(1, HANDSHAKE_ATTEMPTS + 1):
            try:
                url = await self.nodes[node].ticket_url(self.http, client.auth)
                ws = await connect(url, max_size=2**22, compression=None, open_timeout=60)
                break
            except (InvalidStatus, httpx.HTTPStatusError) as exc:
                # 503 (auth_timeout: the ticket's check took over 10 s; unavailable): retry,
                # with a new ticket (the first redemption spends one), as docs/protocol.md says.
                if exc.response.status_code != 503 or attempt == HANDSHAKE_ATTEMPTS:
                    raise
                client.retried += 1
                await asyncio.sleep(attempt)
        hello = json.loads(await ws.recv())
        assert hello["type"] == "connection_established", hello
        client.sockets += 1
        return ws


class Follower:
    """A user's socket, which it keeps from one message to the next (and replaces after a cut)."""

    def __init__(self, cluster: Cluster, client: Client, stall_s: float) -> None:
        self.cluster = cluster
        self.client = client
        self.stall_s = stall_s
        self.node = client.index % len(cluster.nodes)
        self.ws: ClientConnection | None = None

    async def start(self) -> None:
        self.ws = await self.cluster.open(self.client, self.node)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    async def follow(self, run: Run) -> None:
        """Send ``run``'s message and read the run to its end (every seq up to its terminal
        event), cutting the socket after ``run.cut_after`` of its events and resuming. A socket
        the node closes ends the run here (judged at the end: it did not end); the user's next
        run opens a new one."""
        if self.ws is None:
            await self.start()
        try:
            await self._follow(run)
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            self.client.closed[f"{rcvd.code} {rcvd.reason}" if rcvd else "no close frame"] += 1
            self.ws = None

    async def _follow(self, run: Run) -> None:
        assert self.ws is not None
        run.sent = time.perf_counter()
        await self.ws.send(
            json.dumps(
                {"type": "user_message", "content": CONTENT, "client_message_id": uuid.uuid4().hex}
            )
        )
        read = 0
        while not run.complete:
            try:
                frame = json.loads(await asyncio.wait_for(self.ws.recv(), self.stall_s))
            except TimeoutError:
                self.client.stalled += 1  # judged at the end: a gap, or a run that never ended
                return
            if frame["type"] == "message_accepted":
                run.run_id = frame["run_id"]
                self.client.runs[run.run_id] = run
            elif frame["type"] == "error":
                self.client.errors.append(frame)
                if not run.run_id:
                    return  # the message was refused: judged at the end
            elif "seq" in frame:
                read += self._take(frame, run)
                if read == run.cut_after and run.resumed_at is None:
                    await self._cut_and_resume(run)

    def _take(self, frame: dict[str, Any], current: Run) -> int:
        """Record a run event; 1 if it is of the ``current`` run."""
        self.client.received[frame["run_id"]] += 1
        run = self.client.runs.get(frame["run_id"])
        if run is None:
            return 0  # not a run this user started: judged at the end
        if run.first_event_ms is None:
            run.first_event_ms = (time.perf_counter() - run.sent) * 1000
        run.add(frame)
        return 1 if run is current else 0

    async def _cut_and_resume(self, run: Run) -> None:
        assert self.ws is not None
        self.ws.transport.abort()  # as a dropped network does: no close frame
        with contextlib.suppress(ConnectionClosed):
            await self.ws.wait_closed()
        self.client.cuts += 1
        if run.elsewhere:
            self.node = 1 - self.node
        self.ws = await self.cluster.open(self.client, self.node)
        run.resumed_at = time.time()
        run.resumed_after = run.held
        resume = {"type": "resume", "run_id": run.run_id, "after_seq": run.held, "epoch": run.epoch}
        await self.ws.send(json.dumps(resume))


async def user(client: Client, follower: Follower, ready: asyncio.Barrier) -> None:
    await follower.start()
    await ready.wait()
    try:
        for run in client.plan:
            await follower.follow(run)
    finally:
        await follower.close()


@dataclass
class Verdict:
    """The invariants over every client, and what was measured."""

    runs: int = 0
    ends: Counter[str] = field(default_factory=Counter)  # terminal events, by type (and code)
    unfinished: int = 0  # no terminal event, or not every seq up to it
    gaps: int = 0  # seqs missing below a terminal event
    duplicates: int = 0
    beyond_end: int = 0
    foreign: int = 0  # events of runs another user (or nobody) started
    renumbered: int = 0  # runs seen in more than one epoch
    errors: Counter[str] = field(default_factory=Counter)
    closed: Counter[str] = field(default_factory=Counter)  # sockets a node closed, by code
    cut: int = 0
    resumed_elsewhere: int = 0
    resumed_running: int = 0
    events: int = 0
    first_event_ms: list[float] = field(default_factory=list)
    # Each user's first run reads its usage data cold (all 200 at once); the later ones do not.
    first_event_cold_ms: list[float] = field(default_factory=list)
    first_event_warm_ms: list[float] = field(default_factory=list)
    failed_runs: list[str] = field(default_factory=list)  # described, the first 10

    @property
    def failures(self) -> list[str]:
        checks = {
            "gaps": self.gaps,
            "duplicates within an epoch": self.duplicates,
            "events after the terminal event": self.beyond_end,
            "events of another user": self.foreign,
            "runs that did not reach their terminal event": self.unfinished,
            "runs renumbered (no node was lost)": self.renumbered,
            "error frames": sum(self.errors.values()),
            "sockets closed by a node": sum(self.closed.values()),
            # A run timed out on an overloaded machine still ended as promised; anything else
            # (an internal error, a stop nobody asked for) is a fault.
            "runs that ended otherwise than completed or timed out": sum(
                n for end, n in self.ends.items() if end not in EXPECTED_ENDS
            ),
        }
        return [f"{name}: {n}" for name, n in checks.items() if n]


def judge(clients: list[Client]) -> Verdict:
    owner = {run_id: c.index for c in clients for run_id in c.runs}
    v = Verdict()
    for client in clients:
        v.errors.update(str(e.get("code")) for e in client.errors)
        v.closed.update(client.closed)
        v.events += sum(client.received.values())
        v.foreign += sum(n for r, n in client.received.items() if owner.get(r) != client.index)
        for n, run in enumerate(client.plan):
            v.runs += 1
            v.unfinished += not run.complete
            if run.terminal is not None:
                v.ends[run.terminal[2] + (f" {run.end_code}" if run.end_code else "")] += 1
            v.gaps += run.missing()
            v.duplicates += run.duplicates()
            v.beyond_end += run.beyond_end()
            v.renumbered += len(run.seqs) > 1
            ok = run.complete and run.terminal is not None and run.terminal[2] == "agent_completed"
            if (not ok or run.missing() or run.duplicates()) and len(v.failed_runs) < 10:
                v.failed_runs.append(run.describe())
            if run.first_event_ms is not None:
                v.first_event_ms.append(run.first_event_ms)
                (v.first_event_warm_ms if n else v.first_event_cold_ms).append(run.first_event_ms)
            if run.resumed_at is not None:
                v.cut += 1
                v.resumed_elsewhere += run.elsewhere
                v.resumed_running += run.ended is not None and run.ended > run.resumed_at
    return v


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def sample_load(into: list[float]) -> None:
    """The machine's 1-minute load average every 5 s, until cancelled."""
    while True:
        into.append(float(load_average().split()[0]))
        await asyncio.sleep(5)


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--cut-share", type=float, default=0.1)
    parser.add_argument("--delay-ms", type=int, default=2)
    parser.add_argument(
        "--stall-s", type=float, default=300.0, help="a run with no frame for this long is lost"
    )
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--logs", type=Path, help="keep each node's log lines in this directory")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"load average before: {load_average()}")
    async with fresh_database() as database_url:
        with tempfile.TemporaryDirectory() as tmp:
            return await measure(args, rng, database_url, Path(tmp))


async def measure(
    args: argparse.Namespace, rng: random.Random, database_url: str, tmp: Path
) -> int:
    env = {
        "RUNWIRE_WS_PATH": "direct",
        "RUNWIRE_DATABASE_URL": database_url,
        "RUNWIRE_REDIS_URL": args.redis_url,
        # One key set for the cluster (the first node makes it), as a deployment shares its
        # own: a node verifies the access tokens the other issued.
        "RUNWIRE_AUTH_KEYS_DIR": str(tmp / "keys"),
        "RUNWIRE_OFFLINE_DELAY_MS": str(args.delay_ms),
    }
    nodes: list[Runwire] = []
    try:
        for i in range(args.nodes):
            (tmp / f"node-{i}").mkdir()
            log = args.logs / f"node-{i}.log" if args.logs else None
            nodes.append(Runwire(tmp / f"node-{i}", env, log=log))  # the first one migrates
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=nodes[0].base, timeout=120, limits=limits) as http:
            started = time.perf_counter()
            emails = await asyncio.gather(
                *(nodes[i % args.nodes].create_user(http, True) for i in range(args.users))
            )
            auths = [await nodes[0].auth(http, e) for e in emails]
            print(
                f"{args.users} users with the sample data in {time.perf_counter() - started:.0f} s"
            )
            cluster = Cluster(nodes, http)
            # One run first, to learn how many events a run has: each cut lands at a random one.
            probe = Client(-1, auths[0])
            follower = Follower(cluster, probe, args.stall_s)
            await follower.start()
            await follower.follow(first := Run(None))
            await follower.close()
            length = first.terminal[1] if first.terminal else 0
            if not first.complete or length < 3:
                raise SystemExit(f"the first run did not end whole: {first}")
            clients = [Client(i, auths[i]) for i in range(args.users)]
            cut = sorted(rng.sample(range(args.runs), round(args.runs * args.cut_share)))
            # Every second cut resumes on the same node, the others on the other one.
            elsewhere = {n for i, n in enumerate(cut) if i % 2 == 0 and args.nodes > 1}
            for n in range(args.runs):
                at = rng.randint(1, length - 1) if n in cut else None
                clients[n % args.users].plan.append(Run(at, n in elsewhere))
            ready = asyncio.Barrier(args.users + 1)
            tasks = [
                asyncio.create_task(user(c, Follower(cluster, c, args.stall_s), ready))
                for c in clients
            ]
            await ready.wait()
            before = [await n.metrics() for n in nodes]
            pids = [n.proc.pid for n in nodes]
            cpu_before, started = process_cpu_s(pids), time.perf_counter()
            busy_before = machine_busy_s()
            loads: list[float] = []
            sampling = asyncio.create_task(sample_load(loads))
            try:
                await asyncio.gather(*tasks)
            finally:
                sampling.cancel()
            elapsed = time.perf_counter() - started
            server_cpu = process_cpu_s(pids) - cpu_before
            machine_cpu = machine_busy_s() - busy_before
            print(
                f"machine during the timed phase: 1-minute load {min(loads, default=0):.1f} to "
                f"{max(loads, default=0):.1f}; CPU busy {machine_cpu:.0f} s of "
                f"{elapsed * (os.cpu_count() or 1):.0f} (runwire nodes {server_cpu:.0f} s)"
            )
            for i, node in enumerate(nodes):
                print(f"node {i}: {server_side(before[i], await node.metrics())}")
    finally:
        for node in nodes:
            node.stop()
    verdict = judge(clients)
    report(args, verdict, length, elapsed, server_cpu, clients)
    for failure in verdict.failures:
        print(f"FAILED: {failure}")
    for described in verdict.failed_runs:
        print(f"  {described}")
    return 1 if verdict.failures else 0


def server_side(before: dict[str, float], after: dict[str, float]) -> str:
    """What a node measured of itself over the timed phase: its mean wait for a database write
    (from queued to committed: a message accepted, a run's end, a batch of events) and for a
    run's first event after its message was accepted, and how its runs ended."""
    m = {k: v - before.get(k, 0.0) for k, v in after.items()}

    def mean_ms(name: str) -> str:
        count = m[f"{name}_count"]
        return f"{m[f'{name}_sum'] / count * 1000:.0f} ms (n={count:.0f})" if count else "-"

    ended = {k.split("'")[3]: int(v) for k, v in m.items() if k.startswith("runwire_runs_total[")}
    return (
        f"database write {mean_ms('runwire_store_write_seconds')}, accepted to first event "
        f"{mean_ms('runwire_first_event_seconds')}; runs ended here {ended}"
    )


def report(
    args: argparse.Namespace,
    v: Verdict,
    length: int,
    elapsed: float,
    server_cpu: float,
    clients: list[Client],
) -> None:
    sockets = sum(c.sockets for c in clients)
    retried = sum(c.retried for c in clients)
    print(
        f"{v.runs} runs by {args.users} users on {args.nodes} nodes ({length} events a run, "
        f"{args.delay_ms} ms a chunk); {sockets} sockets opened"
        + (f" ({retried} handshakes answered 503 and tried again)" if retried else "")
    )
    print(
        f"cut mid-stream and resumed: {v.cut} runs ({v.cut / max(v.runs, 1):.0%}); "
        f"{v.resumed_elsewhere} on the other node; {v.resumed_running} still running when resumed"
    )
    print(
        f"{v.runs / elapsed:.1f} runs/s, {v.events / elapsed:,.0f} events/s over {elapsed:.1f} s; "
        f"server CPU {server_cpu * 1e6 / max(v.events, 1):.1f} us/event"
    )
    for name, values in (
        ("first event", v.first_event_ms),
        ("  users' first runs", v.first_event_cold_ms),
        ("  later runs", v.first_event_warm_ms),
    ):
        if values:
            print(
                f"{name}: p50 {percentile(values, 50):.1f} ms, p99 {percentile(values, 99):.1f} "
                f"ms, max {max(values):.1f} ms (n={len(values)})"
            )
    print(
        f"ended: {dict(v.ends)}; gaps {v.gaps}; duplicates {v.duplicates}; "
        f"after the end {v.beyond_end}; foreign {v.foreign}; unfinished {v.unfinished}; "
        f"renumbered {v.renumbered}; stalled {sum(c.stalled for c in clients)}; "
        f"errors {dict(v.errors) or 0}; "
        f"sockets closed by a node {dict(v.closed) or 0}"
    )
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    if sys.platform != "linux":
        raise SystemExit("reads /proc: Linux only")
    sys.exit(asyncio.run(main()))
