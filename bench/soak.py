"""Soak benchmark (issue 12, R5): connection churn against one server, then its resources.

One `runwire serve` (bench/throughput.py's `Runwire`: SQLite, in-process bus, offline agents
paced at ``--delay-ms`` a chunk), started by bench/soak_server.py, which adds one thing to the
CLI: on SIGUSR1 it runs a full garbage collection (``gc.collect()``), has glibc's malloc give its
free memory back (``malloc_trim(0)``), and writes an account of the heap, so that memory is
compared with the collectable garbage gone and without the free memory the allocator keeps
for later (reported apart). ``--workers`` clients (default 40), each its own user with the sample
data, loop over actions picked at random, each on a new connection:

  complete  a socket: a message, its run read to the end, a normal close
  cut       a socket: a message, a random number of the run's events, then the TCP connection
            aborted (no close frame), the run still going
  stop      a socket: a message, `stop_agent` at its first event, read to `agent_stopped`
  leave     a socket: a message, closed at `message_accepted` (the run goes on, followed by none)
  resume    a socket: `resume` of one of the worker's earlier runs from a random seq, to its end
  idle      a socket opened and closed again (half of them aborted) without a message
  sse       GET /api/runs/{id}/events as server-sent events, dropped after a few events
  junk      raw TCP: a handshake with two Host headers (400), a head cut off half-way, or a
            connection closed before a byte is sent

First ``--warmup`` seconds of that churn (caches filled, allocator arenas grown), then the
server settles (no connection, no active run, nothing waiting to be stored, the task count
steady), a full collection, and the **baseline**: asyncio tasks (`runwire_asyncio_tasks` from
/metrics), open file descriptors and the sockets among them (/proc/PID/fd), resident memory
(VmRSS, after the trim; and before it), the objects Python's collector tracks, and the size of
SQLite's WAL file. Then ``--seconds`` of churn (default 300) in
``--rounds`` (default 5), each followed by the same settling, collection and readings (a leak
grows from round to round; the allocator's one-off growth does not). Exit 1 when the last
readings are past their tolerance:

  tasks     exactly the baseline
  fds       the baseline + 2 (a scrape's own connection may still be closing)
  sockets   the baseline + 2 (the same)
  RSS       the baseline + ``--rss-mib`` (default 16 MiB), after the collection and the trim
  objects   the baseline + 2,000 (measured: -452 to +215 from ~186,000 at the rounds; a leak
            of one object per connection is several thousand)
  WAL       under 64 MiB (SQLite's write-ahead log, emptied each time it passes 16 MiB)

and when any action had an outcome other than the one expected (a refused handshake, an error
frame, a malformed handshake not answered 400, no answer within 60 s).

Usage: python bench/soak.py [--seconds 300] [--rounds 5] [--warmup 30] [--workers 40]
                            [--delay-ms 2] [--rss-mib 16] [--log FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from throughput import TERMINAL, Runwire

CONTENT = "Where can we cut our LLM costs?"
# `runwire serve`, with SIGUSR1 as a request for a full garbage collection and an account of the
# heap (bench/soak_server.py).
COLLECTING_LAUNCHER = [str(Path(__file__).with_name("soak_server.py"))]
HEAP_FILE = "heap.json"
FD_SLACK = 2
OBJECT_SLACK = 2000
WAL_LIMIT_MIB = 64
GAUGES = (
    "runwire_asyncio_tasks",
    "runwire_connections",
    "runwire_runs_active",
    "runwire_bus_held_runs",
    "runwire_store_backlog_events",
)


# -- what the server holds ------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    tasks: int
    fds: int
    sockets: int
    rss_kib: int
    wal_bytes: int
    gauges: dict[str, float]
    memory: dict[str, int] = field(default_factory=dict)  # /proc status: RssAnon, RssFile, ...
    heap: dict[str, Any] = field(default_factory=dict)  # soak_server.py's account, collected

    def line(self) -> str:
        return (
            f"tasks {self.tasks}, fds {self.fds}, sockets {self.sockets}, "
            f"RSS {self.rss_kib / 1024:.1f} MiB, WAL {self.wal_bytes / 2**20:.1f} MiB"
        )

    def memory_line(self) -> str:
        """Where the RSS is, and what the heap holds (after a collection)."""
        mib = {k: v / 1024 for k, v in self.memory.items()}
        said = (
            f"RSS anon {mib.get('RssAnon', 0):.1f}, file {mib.get('RssFile', 0):.1f}, "
            f"shmem {mib.get('RssShmem', 0):.1f} MiB"
        )
        heap = self.heap
        if heap:
            said += f" (RSS before the trim {heap['rss_untrimmed_kib'] / 1024:.1f} MiB)"
            said += f"; {heap['gc_objects']:,} objects, {heap['allocated_blocks']:,} blocks"
            if "malloc_in_use" in heap:
                said += (
                    f", malloc in use {heap['malloc_in_use'] / 2**20:.1f} MiB, "
                    f"free {heap['malloc_free'] / 2**20:.1f} MiB"
                )
        return said


def proc_status(pid: int) -> dict[str, int]:
    """The memory lines of /proc/PID/status (VmRSS, RssAnon, RssFile, RssShmem), in KiB."""
    wanted = ("VmRSS", "RssAnon", "RssFile", "RssShmem")
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in wanted:
            found[name] = int(value.split()[0])
    if "VmRSS" not in found:
        raise RuntimeError("no VmRSS")
    return found


def heap_account(server: Runwire) -> dict[str, Any]:
    """soak_server.py's last account of the heap; {} before its first."""
    path = server.data_dir / HEAP_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def descriptors(pid: int) -> tuple[int, int]:
    """(open file descriptors, how many of them are sockets) of process ``pid``."""
    fds = sockets = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):  # closed while listed
            sockets += os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:")
            fds += 1
    return fds, sockets


async def read(server: Runwire) -> Reading:
    pid = server.proc.pid
    wal = server.data_dir / "runwire.db-wal"
    fds, sockets = descriptors(pid)  # before the scrape opens its connection
    samples = await server.metrics()
    memory = proc_status(pid)
    return Reading(
        tasks=int(samples["runwire_asyncio_tasks"]),
        fds=fds,
        sockets=sockets,
        rss_kib=memory.pop("VmRSS"),
        wal_bytes=wal.stat().st_size if wal.exists() else 0,
        gauges={name: samples[name] for name in GAUGES},
        memory=memory,
        heap=heap_account(server),
    )


async def settle(server: Runwire, seconds: float) -> Reading:
    """Wait (at most ``seconds``) until nothing is left to do for a client or a run and two
    readings a second apart agree; then a full collection, and the reading after it."""
    deadline = time.monotonic() + seconds
    last = await read(server)
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        now = await read(server)
        idle = all(now.gauges[g] == 0 for g in GAUGES if g != "runwire_asyncio_tasks")
        if idle and (now.tasks, now.fds, now.sockets) == (last.tasks, last.fds, last.sockets):
            break
        last = now
    else:
        print(f"  not settled after {seconds:.0f} s: {now.line()}, {now.gauges}")
    accounted = heap_account(server).get("seq", 0)
    server.proc.send_signal(signal.SIGUSR1)
    for _ in range(300):
        await asyncio.sleep(0.1)
        if heap_account(server).get("seq", 0) > accounted:
            break
    else:
        raise RuntimeError("the server did not collect on SIGUSR1")
    await asyncio.sleep(0.5)
    return await read(server)


# -- the churn ------------------------------------------------------------------------------------


def _is_end(frame: dict[str, Any]) -> bool:
    """Whether ``frame`` is a run's terminal event (the root agent's last)."""
    return frame["type"] in TERMINAL and frame.get("parent_agent", "") is None


class Refused(Exception):
    """The server answered a message with an error frame."""


@dataclass
class Tally:
    actions: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    runs: int = 0
    unexpected: Counter[str] = field(default_factory=Counter)


class Worker:
    """One user's client, looping over random actions until a deadline."""

    def __init__(self, server: Runwire, token: str, rng: random.Random, tally: Tally) -> None:
        self.server = server
        self.headers = {"Authorization": f"Bearer {token}"}
        self.rng = rng
        self.tally = tally
        self.run_ids: list[str] = []
        self.actions: dict[str, tuple[float, Callable[[], Awaitable[None]]]] = {
            "complete": (30, self.complete),
            "cut": (20, self.cut),
            "stop": (10, self.stop),
            "leave": (10, self.leave),
            "resume": (10, self.resume),
            "idle": (8, self.idle),
            "sse": (6, self.sse),
            "junk": (6, self.junk),
        }

    async def churn(self, until: float) -> None:
        names = list(self.actions)
        weights = [self.actions[n][0] for n in names]
        while time.monotonic() < until:
            name = self.rng.choices(names, weights)[0]
            self.tally.actions[name] += 1
            try:
                await asyncio.wait_for(self.actions[name][1](), 60)
            except Refused as e:
                self.tally.unexpected[f"{name}: error {e}"] += 1
            except InvalidStatus as e:
                self.tally.unexpected[f"{name}: HTTP {e.response.status_code}"] += 1
            except (OSError, ConnectionClosed, TimeoutError, httpx.HTTPError) as e:
                self.tally.unexpected[f"{name}: {type(e).__name__}"] += 1

    async def _open(self) -> ClientConnection:
        ws = await connect(
            f"ws://127.0.0.1:{self.server.port}/ws",
            additional_headers=self.headers,
            max_size=2**22,
            compression=None,
            open_timeout=30,
        )
        self.tally.connections += 1
        hello = json.loads(await ws.recv())
        assert hello["type"] == "connection_established", hello
        return ws

    async def _message(self, ws: ClientConnection) -> str:
        """Send a message; its run's id (frames before `message_accepted` are others' runs)."""
        await ws.send(
            json.dumps(
                {"type": "user_message", "content": CONTENT, "client_message_id": uuid.uuid4().hex}
            )
        )
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "message_accepted":
                self.tally.runs += 1
                self.run_ids = [*self.run_ids[-19:], frame["run_id"]]
                return str(frame["run_id"])
            if frame["type"] == "error":
                raise Refused(frame["code"])

    async def _read(self, ws: ClientConnection, run_id: str, events: int | None = None) -> None:
        """Read ``run_id``'s events: ``events`` of them, or (None) to its terminal event."""
        seen = 0
        while events is None or seen < events:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if frame.get("run_id") != run_id or "seq" not in frame:
                continue
            seen += 1
            if _is_end(frame):
                return

    async def complete(self) -> None:
        async with await self._open() as ws:
            await self._read(ws, await self._message(ws))

    async def cut(self) -> None:
        ws = await self._open()
        await self._read(ws, await self._message(ws), self.rng.randint(1, 120))
        ws.transport.abort()
        with contextlib.suppress(ConnectionClosed):
            await ws.wait_closed()

    async def stop(self) -> None:
        async with await self._open() as ws:
            run_id = await self._message(ws)
            await self._read(ws, run_id, 1)
            await ws.send(json.dumps({"type": "stop_agent", "run_id": run_id}))
            await self._read(ws, run_id)

    async def leave(self) -> None:
        async with await self._open() as ws:
            await self._message(ws)

    async def resume(self) -> None:
        if not self.run_ids:
            return
        run_id = self.rng.choice(self.run_ids)
        async with await self._open() as ws:
            after = self.rng.choice((0, 1, 10, 100))
            await ws.send(json.dumps({"type": "resume", "run_id": run_id, "after_seq": after}))
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "error":  # past the end of a short run: position_unknown
                    if frame.get("reason") != "position_unknown":
                        raise Refused(frame["code"])
                    return
                if frame.get("run_id") == run_id and _is_end(frame):
                    return

    async def idle(self) -> None:
        ws = await self._open()
        if self.rng.random() < 0.5:
            ws.transport.abort()
        else:
            await ws.close()

    async def sse(self) -> None:
        if not self.run_ids:
            return
        url = f"{self.server.base}/api/runs/{self.rng.choice(self.run_ids)}/events"
        headers = {**self.headers, "Accept": "text/event-stream"}
        async with (
            httpx.AsyncClient(timeout=30) as http,
            http.stream("GET", url, headers=headers) as response,
        ):
            self.tally.connections += 1
            lines = 0
            async for _ in response.aiter_lines():
                lines += 1
                if lines > self.rng.randint(1, 40):
                    break  # leaving the block drops the connection mid-stream

    async def junk(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        self.tally.connections += 1
        kind = self.rng.randrange(3)
        if kind == 0:  # a malformed handshake: answered 400 and closed
            writer.write(
                b"GET /ws HTTP/1.1\r\nHost: a\r\nHost: b\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            answer = await reader.read()  # to the server's close
            if not answer.startswith(b"HTTP/1.1 400 "):
                raise Refused(f"a malformed handshake answered {answer[:30]!r}")
        elif kind == 1:  # half a head, then gone
            writer.write(b"GET /api/threads HTTP/1.1\r\nHost: 127.0")
            await writer.drain()
            writer.transport.abort()
            return
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def grown(before: dict[str, Any], after: dict[str, Any], top: int = 8, key: str = "types") -> str:
    """The object types whose count grew most between two heap accounts (``key``: of every
    object, or of the objects weak references point to)."""
    was: dict[str, int] = before.get(key, {})
    now: dict[str, int] = after.get(key, {})
    deltas = sorted(((n - was.get(t, 0), t) for t, n in now.items()), reverse=True)[:top]
    return ", ".join(f"{t} {d:+,}" for d, t in deltas if d > 0) or "none"


async def churn(workers: list[Worker], seconds: float) -> None:
    until = time.monotonic() + seconds
    await asyncio.gather(*(w.churn(until) for w in workers))


# -- the benchmark --------------------------------------------------------------------------------


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def soak(server: Runwire, args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    async with httpx.AsyncClient(base_url=server.base, timeout=120) as http:
        emails = [await server.create_user(http, True) for _ in range(args.workers)]
        tokens = [(await server.auth(http, e))["Authorization"][7:] for e in emails]
    warm, main = Tally(), Tally()
    workers = [Worker(server, t, random.Random(rng.random()), warm) for t in tokens]
    print(f"warm-up: {args.warmup:.0f} s of churn by {args.workers} clients")
    await churn(workers, args.warmup)
    base = await settle(server, args.settle)
    print(f"baseline after warm-up and a collection: {base.line()}")
    print(f"  {base.memory_line()}")
    for w in workers:
        w.tally = main
    # The churn in rounds, each followed by the same settling and collection: a leak shows as
    # growth from round to round, where the allocator's one-off growth does not.
    for n in range(1, args.rounds + 1):
        await churn(workers, args.seconds / args.rounds)
        end = await settle(server, args.settle)
        print(
            f"  round {n}: {end.line()}; {main.connections:,} connections, {main.runs:,} runs "
            f"so far; load {load_average()}"
        )
        print(f"    {end.memory_line()}; grown most: {grown(base.heap, end.heap, 4)}")
    print(f"after {args.seconds:.0f} s of churn, settled and collected: {end.line()}")
    print(
        f"churn: {main.connections:,} connections, {main.runs:,} runs "
        f"({main.connections / args.seconds:.0f} connections/s); "
        + ", ".join(f"{k} {v}" for k, v in sorted(main.actions.items()))
    )
    unexpected = main.unexpected + warm.unexpected
    if unexpected:
        print(f"unexpected outcomes: {dict(unexpected)}")
    rss_mib = (end.rss_kib - base.rss_kib) / 1024
    # (baseline, end, the most the end may be)
    checks = {
        "tasks": (base.tasks, end.tasks, base.tasks),
        "fds": (base.fds, end.fds, base.fds + FD_SLACK),
        "sockets": (base.sockets, end.sockets, base.sockets + FD_SLACK),
        "RSS MiB": (base.rss_kib / 1024, end.rss_kib / 1024, base.rss_kib / 1024 + args.rss_mib),
        "WAL MiB": (base.wal_bytes / 2**20, end.wal_bytes / 2**20, WAL_LIMIT_MIB),
    }
    if base.heap and end.heap:
        objects = (base.heap["gc_objects"], end.heap["gc_objects"])
        checks["objects"] = (*objects, objects[0] + OBJECT_SLACK)
    failed = ["unexpected outcomes"] if unexpected else []
    for name, (before, after, most) in checks.items():
        verdict = "ok" if after <= most else "FAILED"
        print(f"{name:8} {before:8.1f} -> {after:8.1f} (at most {most:.1f}): {verdict}")
        if verdict != "ok":
            failed.append(name)
    print(f"RSS per 1,000 connections: {rss_mib * 1000 / max(main.connections, 1):+.2f} MiB")
    if base.heap and end.heap:
        untrimmed = (end.heap["rss_untrimmed_kib"] - base.heap["rss_untrimmed_kib"]) / 1024
        print(
            f"RSS before the trim (what the allocator keeps counted in): "
            f"{base.heap['rss_untrimmed_kib'] / 1024:.1f} -> "
            f"{end.heap['rss_untrimmed_kib'] / 1024:.1f} MiB ({untrimmed:+.1f}; not judged)"
        )
    print(f"objects by type, most grown from the baseline: {grown(base.heap, end.heap)}")
    referents = grown(base.heap, end.heap, key="weakref_referents")
    print(f"what weak references point to, most grown: {referents}")
    # And the golden path still works.
    await workers[0].complete()
    print(f"load average: {load_average()}")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--warmup", type=float, default=30)
    parser.add_argument("--workers", type=int, default=40)
    parser.add_argument("--delay-ms", type=int, default=2)
    parser.add_argument("--settle", type=float, default=30, help="seconds to wait for quiet")
    parser.add_argument("--rounds", type=int, default=5, help="settled readings in the churn")
    parser.add_argument("--rss-mib", type=float, default=16, help="RSS tolerance")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--log", type=Path, help="keep the server's log lines in this file")
    args = parser.parse_args()
    print(f"load average before: {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "RUNWIRE_OFFLINE_DELAY_MS": str(args.delay_ms),
            "RUNWIRE_ACCESS_TOKEN_TTL_S": str(86_400),  # one login per client, however long
        }
        server = Runwire(Path(tmp), env, COLLECTING_LAUNCHER, log=args.log)
        try:
            return asyncio.run(soak(server, args))
        finally:
            server.stop()


if __name__ == "__main__":
    if sys.platform != "linux":
        raise SystemExit("reads /proc: Linux only")
    sys.exit(main())
