"""Delivery benchmark: runwire beside a bare `websockets` server, same client code, one run.

What it measures (offline agents, delay 0, SQLite, in-process bus):
  1. first-event latency: a client sends `user_message`; the time until the run's first event
     (`agent_started`) arrives. Measured one message at a time on an idle server (p50, p99),
     and again while the other clients' runs stream (p99 under load).
  2. throughput: N concurrent clients (default 100), each its own user with the sample data,
     each sending messages back to back; events/s delivered to all of them together.
  3. the same client code against a bare `websockets` server that answers each message with
     frames of exactly the sizes of a real runwire run's events, and against a do-nothing
     Starlette + uvicorn handler that sends the same frames (the floor of the ASGI path).

Variants of runwire, each a fresh `runwire serve` on the same data (same users):
  direct  the default: /ws served by runwire's own protocol beside the ASGI app
  asgi    RUNWIRE_WS_PATH=asgi: /ws through uvicorn's ASGI adapter and Starlette
  nokeep  direct with RUNWIRE_KEEP_EVENTS=false: what storing every event for resume costs
  nometrics  direct with RUNWIRE_METRICS=false: what counting each delivered event costs
  cold    the cold burst of issue 15: a fresh `runwire serve` whose clients are each a new user
          with a fresh sample set (loaded through POST /api/usage/sample before the server starts,
          by the setup process, so nothing of it was read or analysed in this one), all sending
          their first message at once, timed from that message: first-event p50/p99 of those
          first messages, and events/s of all messages, beside the warm `direct` figure
  pygc    direct with RUNWIRE_GC_YOUNG_THRESHOLD=0: Python's default garbage-collector
          thresholds, to measure what runwire's tuning (cli/collector.py) buys
  redis   direct with RUNWIRE_REDIS_URL=redis://127.0.0.1:6379/0: the Redis bus (several nodes)
          instead of the in-process one (it needs a running Redis)
  split   the deployment of docs/auth.md ("Roles"): a `--role auth` process signs the clients in,
          and a `--role chat` process (no key; it verifies tokens against the auth process's
          JWKS) serves their sockets and runs, on the same SQLite file; the chat node's figure
  pg1     one node on PostgreSQL and Redis (bus and run queue): the per-node figure of a cluster
  pg2     two nodes on the same PostgreSQL and Redis, clients spread over them as a load
          balancer without sticky sessions would (client i on node i % 2); runs execute on the
          node of the client that asked. Both need RUNWIRE_BENCH_POSTGRES_URL (default the
          local `test` database's server, on this machine) and make a database of their own,
          dropped afterwards. pg2 is in the default list: issue 15's target is its CPU per
          event (both nodes' and PostgreSQL's, over all its events) against direct's server's.

With RUNWIRE_BENCH_PROFILE=<dir>, py-spy samples the server of each single-node variant (the
thread holding the GIL) over its timed phase (from when every client is warm) into
<dir>/<variant>.txt. The CPU line splits out the server's kernel
time (system time: its sockets, mostly).

Every client first sends one warm-up message (its user's usage data is then read and cached),
then all start together; a run that does not complete aborts the benchmark.
The client offers no permessage-deflate, and the bare server does not use it either.

Usage: python bench/throughput.py [--clients 100] [--messages 5] [--latency-samples 200]
                                  [--variants bare,floor,direct,cold,asgi,nokeep,nometrics,pygc,redis,paced,split,pg1,pg2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

TERMINAL = {"agent_completed", "agent_error", "agent_stopped"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


# -- the client code, shared by both servers ------------------------------------------------------


async def _one_message(ws: Any, content: str) -> tuple[int, float, list[int], str, float]:
    """Send one user message; read its run to the end. Returns (events, first-event latency ms,
    frame sizes, the terminal event's type, ms from sending to the terminal event)."""
    sent = time.perf_counter()
    await ws.send(
        json.dumps(
            {"type": "user_message", "content": content, "client_message_id": uuid.uuid4().hex}
        )
    )
    latency = 0.0
    sizes: list[int] = []
    while True:
        raw = await ws.recv()
        frame = json.loads(raw)
        if frame["type"] == "error":
            raise SystemExit(f"the server refused a message: {frame}")
        if "seq" not in frame:
            continue
        if not sizes:
            latency = (time.perf_counter() - sent) * 1000
        sizes.append(len(raw))
        if frame["type"] in TERMINAL and frame.get("parent_agent") is None:
            took = (time.perf_counter() - sent) * 1000
            return len(sizes), latency, sizes, frame["type"], took


async def _first_event_then_stop(ws: Any, content: str) -> float:
    """Send one message, time its run's first event, then stop the run (so a paced run's
    seconds of streaming do not limit how many samples fit in the timed phase)."""
    sent = time.perf_counter()
    await ws.send(json.dumps({"type": "user_message", "content": content}))
    latency = 0.0
    run_id = ""
    while True:
        frame = json.loads(await ws.recv())
        if frame["type"] == "error":
            raise SystemExit(f"the server refused a message: {frame}")
        if "seq" not in frame:
            continue
        if not run_id:
            latency = (time.perf_counter() - sent) * 1000
            run_id = frame["run_id"]
            await ws.send(json.dumps({"type": "stop_agent", "run_id": run_id}))
        if frame["type"] in TERMINAL and frame.get("parent_agent") is None:
            return latency


async def converse(
    url: str, messages: int, content: str, ready: asyncio.Barrier | None = None
) -> tuple[int, list[float], list[int], list[float]]:
    """One client: (after one warm-up message and the barrier, if given) send ``messages`` user
    messages one after another. Returns (events, first-event latencies, first run's sizes, each
    run's duration from message to terminal event)."""
    events = 0
    latencies: list[float] = []
    first_sizes: list[int] = []
    durations: list[float] = []
    async with connect(url, max_size=2**22, compression=None) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "connection_established", hello
        if ready is not None:
            await _one_message(ws, content)  # warm-up: the user's data is read and cached
            await ready.wait()
        for _ in range(messages):
            count, latency, sizes, last, took = await _one_message(ws, content)
            if last != "agent_completed":
                raise SystemExit(f"a run ended with {last}: the benchmark would be meaningless")
            events += count
            latencies.append(latency)
            durations.append(took)
            first_sizes = first_sizes or sizes
    return events, latencies, first_sizes, durations


@dataclass
class Result:
    name: str
    rate: float = 0.0
    events: int = 0
    elapsed: float = 0.0
    idle_latencies: list[float] = field(default_factory=list)
    load_latencies: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    server_cpu_s: float | None = None  # CPU time of the runwire processes in the timed phase
    server_sys_s: float = 0.0  # of which in the kernel (system time: sockets, mostly)
    redis_cpu_s: float | None = None  # CPU time of Redis in the timed phase
    # CPU time of PostgreSQL in the timed phase: the backends of the variant's own database and
    # the server's WAL writer, checkpointer and background writer (pg variants only)
    postgres_cpu_s: float | None = None
    nodes: int = 1  # runwire processes serving the clients
    client_cpu_s: float = 0.0  # CPU time of this (the clients') process in the timed phase
    machine_cpu_s: float = 0.0  # busy CPU time of the whole machine in the timed phase
    run_ms: list[float] = field(default_factory=list)  # each timed run, message to terminal event
    burst_latencies: list[float] = field(default_factory=list)  # cold: each client's first message
    first_run_ms: list[float] = field(default_factory=list)  # cold: each client's first run
    # cold: the server's CPU while the new users connected (tickets, handshakes), before the
    # burst: in server_cpu_s, not in the timed phase's events/s
    connect_cpu_s: float | None = None


def process_cpu_s(pids: list[int], *, kernel_only: bool = False) -> float:
    """User + system (or only system) CPU seconds used so far by these processes (Linux /proc)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        # utime, stime (clock ticks)
        total += int(fields[12]) if kernel_only else int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores, every process; /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def postgres_pids(url: str) -> set[int]:
    """The PostgreSQL processes working for the database of ``url`` now (its backends, and the
    server's WAL writer, checkpointer and background writer, which its commits keep busy). The
    server must run on this machine (its processes' CPU is read from /proc)."""
    import asyncpg  # type: ignore[import-untyped]  # the `postgres` extra

    database = url.rpartition("/")[2]
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE (datname = $1 AND pid <> pg_backend_pid())"
            " OR backend_type IN ('walwriter', 'checkpointer', 'background writer')",
            database,
        )
    finally:
        await conn.close()
    return {int(row["pid"]) for row in rows}


def postgres_cpu_s(pids: set[int]) -> dict[int, float]:
    """CPU seconds used so far by each of ``pids`` still alive."""
    used = {}
    for pid in pids:
        with contextlib.suppress(OSError):  # a backend that has exited since
            used[pid] = process_cpu_s([pid])
    return used


async def watch_postgres(url: str, seen: dict[int, float]) -> None:
    """Until cancelled, every half second: the CPU so far of each PostgreSQL process working
    for ``url``'s database, into ``seen`` (so a backend that ends before the phase does still
    counts, up to its last look)."""
    while True:
        seen.update(postgres_cpu_s(await postgres_pids(url) | set(seen)))
        await asyncio.sleep(0.5)


def redis_cpu_s() -> float:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        info = client.info("cpu")
    finally:
        client.close()
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def measure(
    name: str,
    urls: list[str],
    messages: int,
    samples: int,
    content: str,
    *,
    probe: bool = False,
    pids: list[int] | None = None,
    with_redis: bool = False,
    postgres: str | None = None,
    profile: bool = False,
) -> Result:
    """Idle latency on ``urls[0]``; then throughput of the clients ``urls[2:]``, timed from when
    every one is warm, while (``probe``) ``urls[1]`` keeps sampling latency under that load.
    ``profile``: py-spy samples the server (``pids[0]``) over the timed phase (see sampled).
    ``postgres``: the URL of the database the servers use, whose PostgreSQL CPU is measured."""
    result = Result(name)
    _, result.idle_latencies, result.sizes, _ = await converse(urls[0], samples, content)
    ready = asyncio.Barrier(len(urls) - 1)
    clients = [asyncio.create_task(converse(u, messages, content, ready)) for u in urls[2:]]
    async with contextlib.AsyncExitStack() as stack:
        if profile and pids:
            # Sampled from when every client is warm (their data read and prepared), so the
            # profile is of the phase the figures are of.
            while ready.n_waiting < len(urls) - 2:  # noqa: ASYNC110 - a Barrier has no event
                await asyncio.sleep(0.05)
            await stack.enter_async_context(sampled(name, pids[0]))
        await ready.wait()
        return await _timed(result, clients, urls, content, probe, pids, with_redis, postgres)


async def _timed(
    result: Result,
    clients: list[asyncio.Task[tuple[int, list[float], list[int], list[float]]]],
    urls: list[str],
    content: str,
    probe: bool,
    pids: list[int] | None,
    with_redis: bool,
    postgres: str | None = None,
) -> Result:
    pg_before = postgres_cpu_s(await postgres_pids(postgres)) if postgres else {}
    pg_seen = dict(pg_before)
    watching = asyncio.create_task(watch_postgres(postgres, pg_seen)) if postgres else None
    cpu_before = process_cpu_s(pids) if pids else 0.0
    sys_before = process_cpu_s(pids, kernel_only=True) if pids else 0.0
    redis_before = redis_cpu_s() if with_redis else 0.0
    client_before, machine_before = time.process_time(), machine_busy_s()
    started = time.perf_counter()
    done = asyncio.gather(*clients)
    if probe:
        async with connect(urls[1], max_size=2**22, compression=None) as ws:
            await ws.recv()
            while not done.done():
                result.load_latencies.append(await _first_event_then_stop(ws, content))
    results = await done
    result.elapsed = time.perf_counter() - started
    result.client_cpu_s = time.process_time() - client_before
    result.machine_cpu_s = machine_busy_s() - machine_before
    if pids:
        result.server_cpu_s = process_cpu_s(pids) - cpu_before
        result.server_sys_s = process_cpu_s(pids, kernel_only=True) - sys_before
    if with_redis:
        result.redis_cpu_s = redis_cpu_s() - redis_before
    if postgres:
        # A backend started in the timed phase counts whole; one that ended in it, up to the
        # last look at it (one that lived under half a second may be missed).
        if watching is not None:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
        pg_seen.update(postgres_cpu_s(await postgres_pids(postgres) | set(pg_seen)))
        result.postgres_cpu_s = sum(t - pg_before.get(pid, 0.0) for pid, t in pg_seen.items())
    if pids:
        result.nodes = len(pids)
    result.events = sum(r[0] for r in results)
    result.burst_latencies = [r[1][0] for r in results]  # every client's first, sent at once
    result.run_ms = [ms for r in results for ms in r[3]]
    result.rate = result.events / result.elapsed
    return result


async def cold_client(
    url: str, messages: int, content: str, ready: asyncio.Barrier
) -> tuple[int, list[float], list[float], list[int]]:
    """One cold client: connect, wait for the others, then send ``messages`` messages back to back
    with no warm-up. Returns (events, first-event latencies, run durations, first run's sizes)."""
    events = 0
    latencies: list[float] = []
    durations: list[float] = []
    first_sizes: list[int] = []
    async with connect(url, max_size=2**22, compression=None) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "connection_established", hello
        await ready.wait()
        for _ in range(messages):
            count, latency, sizes, last, took = await _one_message(ws, content)
            if last != "agent_completed":
                raise SystemExit(f"a run ended with {last}: the benchmark would be meaningless")
            events += count
            latencies.append(latency)
            durations.append(took)
            first_sizes = first_sizes or sizes
    return events, latencies, durations, first_sizes


async def measure_cold(urls: list[str], messages: int, content: str, pids: list[int]) -> Result:
    """Every client of ``urls`` (each a user whose data this server never read) sends its first
    message at once; timed from then to the last run's end."""
    result = Result("cold")
    ready = asyncio.Barrier(len(urls) + 1)
    clients = [asyncio.create_task(cold_client(u, messages, content, ready)) for u in urls]
    cpu_before = process_cpu_s(pids)
    sys_before = process_cpu_s(pids, kernel_only=True)
    client_before, machine_before = time.process_time(), machine_busy_s()
    await ready.wait()
    started = time.perf_counter()
    result.connect_cpu_s = process_cpu_s(pids) - cpu_before
    results = await asyncio.gather(*clients)
    result.elapsed = time.perf_counter() - started
    result.client_cpu_s = time.process_time() - client_before
    result.machine_cpu_s = machine_busy_s() - machine_before
    result.server_cpu_s = process_cpu_s(pids) - cpu_before
    result.server_sys_s = process_cpu_s(pids, kernel_only=True) - sys_before
    result.events = sum(r[0] for r in results)
    result.burst_latencies = [r[1][0] for r in results]
    result.load_latencies = [ms for r in results for ms in r[1][1:]]
    result.run_ms = [ms for r in results for ms in r[2]]
    result.first_run_ms = [r[2][0] for r in results]
    result.sizes = results[0][3]
    result.rate = result.events / result.elapsed
    return result


# -- runwire --------------------------------------------------------------------------------------

PASSWORD = "benchmark-pass"


class Runwire:
    """``runwire serve`` in its own process, on a data directory that outlives it.

    ``launcher`` replaces ``-m runwire`` in the command line (bench/soak.py starts the same CLI
    from a line of Python that adds a signal handler). ``log`` keeps the server's output (its
    log lines) in that file; else it is discarded."""

    def __init__(
        self,
        data_dir: Path,
        extra_env: dict[str, str],
        launcher: list[str] | None = None,
        *,
        log: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "RUNWIRE_DATA_DIR": str(data_dir),
            "RUNWIRE_OFFLINE_DELAY_MS": "0",
            "RUNWIRE_ENV": "test",
            "RUNWIRE_ARGON2_TIME_COST": "1",
            "RUNWIRE_ARGON2_MEMORY_KIB": "64",
            "RUNWIRE_MAX_ACTIVE_RUNS_PER_USER": "10",
            # Every benchmark user signs up and logs in from this one address.
            "RUNWIRE_REGISTER_IP_REQUESTS": "100000",
            "RUNWIRE_LOGIN_IP_FAILURES": "100000",
            # A client here sends its next message the moment a run ends (every few ms).
            "RUNWIRE_WS_MESSAGES_PER_SECOND": "100000",
            "RUNWIRE_WS_MESSAGE_BURST": "1000",
            **extra_env,
        }
        command = [sys.executable, *(launcher or ["-m", "runwire"]), "serve"]
        command += ["--port", str(self.port)]
        if log is None:
            self.proc = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        else:
            with log.open("ab") as output:  # the child keeps its own copy
                self.proc = subprocess.Popen(command, env=env, stdout=output, stderr=output)
        for _ in range(600):
            try:
                if httpx.get(self.base + "/ready").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("runwire did not start")

    async def create_user(self, http: httpx.AsyncClient, sample: bool) -> str:
        """A new user (with the sample data if asked); returns its email."""
        email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
        await http.post("/auth/register", json={"email": email, "password": PASSWORD})
        if sample:
            auth = await self.auth(http, email)
            await http.post("/api/usage/sample", headers=auth)
        return email

    async def auth(self, http: httpx.AsyncClient, email: str) -> dict[str, str]:
        """Logs ``email`` in: the Authorization header of its new session."""
        tokens = (
            await http.post("/auth/login", json={"email": email, "password": PASSWORD})
        ).json()
        return {"Authorization": f"Bearer {tokens['access_token']}"}

    async def ws_url(self, http: httpx.AsyncClient, email: str) -> str:
        return await self.ticket_url(http, await self.auth(http, email))

    async def ticket_url(self, http: httpx.AsyncClient, auth: dict[str, str]) -> str:
        """A /ws URL with a new single-use ticket of the session ``auth`` (any node's)."""
        answer = await http.post(f"{self.base}/api/ws-ticket", headers=auth)
        answer.raise_for_status()
        ticket = answer.json()["ticket"]
        return f"ws://127.0.0.1:{self.port}/ws?ticket={ticket}"

    async def metrics(self) -> dict[str, float]:
        """Every sample of its /metrics, by name (labels appended as ``[('k', 'v')]``), on a
        connection of its own, closed after."""
        from prometheus_client.parser import text_string_to_metric_families

        async with httpx.AsyncClient(base_url=self.base, timeout=30) as http:
            response = await http.get("/metrics")
        response.raise_for_status()
        return {
            s.name + (str(sorted(s.labels.items())) if s.labels else ""): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples
        }

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)


RUNWIRE_VARIANTS = {
    "direct": {"RUNWIRE_WS_PATH": "direct"},
    "asgi": {"RUNWIRE_WS_PATH": "asgi"},
    "nokeep": {"RUNWIRE_WS_PATH": "direct", "RUNWIRE_KEEP_EVENTS": "false"},
    "nometrics": {"RUNWIRE_WS_PATH": "direct", "RUNWIRE_METRICS": "false"},
    "pygc": {"RUNWIRE_WS_PATH": "direct", "RUNWIRE_GC_YOUNG_THRESHOLD": "0"},
    # The Redis bus (a local Redis 7): each event goes to a Redis Stream and a pub/sub channel and
    # comes back to this process before its sockets get it. Needs Redis at that URL.
    "redis": {"RUNWIRE_WS_PATH": "direct", "RUNWIRE_REDIS_URL": "redis://127.0.0.1:6379/0"},
    # Runs streamed at the offline default pace (15 ms a chunk), as a user watches them: the
    # first-event latency of one more message while 100 runs stream (the clients keep up here,
    # so it measures the server, not a saturated benchmark process).
    "paced": {"RUNWIRE_WS_PATH": "direct", "RUNWIRE_OFFLINE_DELAY_MS": "15"},
}


REDIS_URL = "redis://127.0.0.1:6379/0"
CLUSTERS = {"pg1": 1, "pg2": 2}


async def _admin(sql: str, url: str) -> None:
    import asyncpg  # type: ignore[import-untyped]  # the `postgres` extra

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A PostgreSQL database of its own (its URL), on the server of RUNWIRE_BENCH_POSTGRES_URL
    (default the local `test` database's), dropped afterwards: nothing the tests use is touched."""
    admin_url = os.environ.get(
        "RUNWIRE_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    database = f"runwire_bench_{uuid.uuid4().hex[:10]}"  # hex digits, never input
    base, _, _ = admin_url.rpartition("/")
    await _admin(f'CREATE DATABASE "{database}"', admin_url)
    try:
        yield f"{base}/{database}"
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)', admin_url)


async def run_cluster(name: str, tmp: Path, args: argparse.Namespace, content: str) -> Result:
    """``CLUSTERS[name]`` nodes on a fresh PostgreSQL database and the local Redis."""
    async with fresh_database() as url:
        return await _run_cluster(name, url, tmp, args, content)


async def _run_cluster(
    name: str, url: str, tmp: Path, args: argparse.Namespace, content: str
) -> Result:
    env = {
        "RUNWIRE_WS_PATH": "direct",
        "RUNWIRE_DATABASE_URL": url,
        "RUNWIRE_REDIS_URL": REDIS_URL,
        # One key set for the cluster (the first node makes it), as a deployment shares its own.
        "RUNWIRE_AUTH_KEYS_DIR": str(tmp / f"{name}-keys"),
    }
    nodes: list[Runwire] = []
    try:
        for i in range(CLUSTERS[name]):
            (tmp / f"{name}-{i}").mkdir()
            nodes.append(Runwire(tmp / f"{name}-{i}", env))  # the first one migrates
        async with httpx.AsyncClient(base_url=nodes[0].base, timeout=60) as http:
            emails = [
                await nodes[0].create_user(http, not args.no_sample_data)
                for _ in range(args.clients + 1)
            ]
        urls = []
        for i, email in enumerate([emails[0], *emails]):
            node = nodes[i % len(nodes)]
            async with httpx.AsyncClient(base_url=node.base, timeout=60) as http:
                urls.append(await node.ws_url(http, email))
        return await measure(
            name,
            urls,
            args.messages,
            args.latency_samples,
            content,
            pids=[n.proc.pid for n in nodes],
            with_redis=True,
            postgres=url,
            profile=True,  # the first node
        )
    finally:
        for node in nodes:
            node.stop()


async def run_runwire(
    name: str, data_dir: Path, emails: list[str], args: argparse.Namespace, content: str
) -> Result:
    server = Runwire(data_dir, RUNWIRE_VARIANTS[name])
    try:
        async with httpx.AsyncClient(base_url=server.base, timeout=60) as http:
            urls = [await server.ws_url(http, emails[0])]
            urls += [await server.ws_url(http, e) for e in emails]
        paced = name == "paced"  # a paced run takes seconds: few idle samples, two messages
        return await measure(
            name,
            urls,
            2 if paced else args.messages,
            5 if paced else args.latency_samples,
            content,
            probe=paced,
            pids=[server.proc.pid],
            with_redis="RUNWIRE_REDIS_URL" in RUNWIRE_VARIANTS[name],
            profile=True,
        )
    finally:
        server.stop()


async def run_cold(
    data_dir: Path, warm: str, emails: list[str], args: argparse.Namespace, content: str
) -> Result:
    """A fresh server over users whose sample sets it never read: all ask at once. One other
    user (``warm``) asks first, so the process itself is warm (its imports, first-use caches), as
    a server that has been up a while is: only the users' data is cold."""
    server = Runwire(data_dir, {"RUNWIRE_WS_PATH": "direct"})
    try:
        async with httpx.AsyncClient(base_url=server.base, timeout=60) as http:
            await converse(await server.ws_url(http, warm), 1, content)
            urls = [await server.ws_url(http, e) for e in emails]
        async with sampled("cold", server.proc.pid):
            return await measure_cold(urls, args.messages, content, [server.proc.pid])
    finally:
        server.stop()


def _profile_files(where: str, name: str) -> tuple[Path, Path]:
    """<where>/<name>.txt (none yet) and <where>/<name>.log, the directory made if missing."""
    folder = Path(where).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    output = folder / f"{name}.txt"
    output.unlink(missing_ok=True)
    return output, folder / f"{name}.log"


@asynccontextmanager
async def sampled(name: str, pid: int) -> AsyncIterator[None]:
    """With RUNWIRE_BENCH_PROFILE=<dir>, py-spy samples the server ``pid`` (every thread: the
    event loop and its workers) for as long as the block runs, into <dir>/<name>.txt as collapsed
    stacks (one line a stack, its sample count last; `--format raw`).

    The directory is made if missing: py-spy samples the whole phase and only then fails to
    write into a directory that does not exist (how a session once got no profile at all, its
    error lost in the benchmark's output). Its own output goes to <dir>/<name>.log, and a line
    says so when it wrote no profile."""
    where = os.environ.get("RUNWIRE_BENCH_PROFILE")
    if not where:
        yield
        return
    output, log = _profile_files(where, name)
    with log.open("wb") as spy_log:
        spy = subprocess.Popen(  # noqa: ASYNC220 - started before the timed phase
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(pid),
                "--gil",  # only the thread holding the GIL: where the CPU went
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                str(output),
            ],
            stdout=spy_log,
            stderr=subprocess.STDOUT,
        )
    await asyncio.sleep(1)  # py-spy attaches
    try:
        yield
    finally:
        if spy.poll() is None:
            spy.send_signal(signal.SIGINT)
        code = spy.wait(60)
        if code != 0 or not output.exists():
            print(f"py-spy wrote no profile of {name} (exit {code}); see {log}", file=sys.stderr)
        else:
            print(f"profile of {name}: {output}", file=sys.stderr)


async def run_split(
    data_dir: Path, emails: list[str], args: argparse.Namespace, content: str
) -> Result:
    """An auth process on ``data_dir`` (its keys, its database) and a chat process beside it on
    the same database; sign-in at the first, tickets and sockets at the second."""
    auth = Runwire(data_dir, {"RUNWIRE_ROLE": "auth"})
    chat: Runwire | None = None
    try:
        (data_dir / "split-chat").mkdir(exist_ok=True)
        chat = Runwire(
            data_dir / "split-chat",
            {
                "RUNWIRE_WS_PATH": "direct",
                "RUNWIRE_ROLE": "chat",
                "RUNWIRE_AUTH_ISSUER_URL": auth.base,
                "RUNWIRE_DATABASE_URL": f"sqlite+aiosqlite:///{(data_dir / 'runwire.db').resolve()}",
            },
        )
        async with httpx.AsyncClient(base_url=auth.base, timeout=60) as http:
            urls = [await chat.ticket_url(http, await auth.auth(http, emails[0]))]
            urls += [await chat.ticket_url(http, await auth.auth(http, e)) for e in emails]
        return await measure(
            "split", urls, args.messages, args.latency_samples, content, pids=[chat.proc.pid]
        )
    finally:
        if chat is not None:
            chat.stop()
        auth.stop()


# -- the servers that send the same frames and do nothing else ------------------------------------


def frames_of(sizes: list[int]) -> list[str]:
    """JSON frames of exactly ``sizes`` bytes, each with a `seq`, the last one terminal."""
    frames = []
    for i, size in enumerate(sizes, start=1):
        kind = "agent_completed" if i == len(sizes) else "agent_thinking"
        body = {"type": kind, "run_id": "run_x", "seq": i, "parent_agent": None, "pad": ""}
        pad = max(0, size - len(json.dumps(body, separators=(",", ":"))))
        body["pad"] = "x" * pad
        frames.append(json.dumps(body, separators=(",", ":")))
    return frames


async def serve_bare(port: int, sizes: list[int]) -> None:
    """The bare `websockets` server: answers each message with the frames."""
    frames = frames_of(sizes)

    async def handler(ws: Any) -> None:
        await ws.send(json.dumps({"type": "connection_established"}))
        async for _message in ws:
            for frame in frames:
                await ws.send(frame)

    async with serve(handler, "127.0.0.1", port, max_size=2**22, compression=None):
        await asyncio.Future()


def serve_floor(port: int, sizes: list[int]) -> None:
    """A do-nothing Starlette route under uvicorn (its websockets-sansio protocol, no deflate)
    that answers each message with the frames: what the ASGI path costs before any work."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    frames = frames_of(sizes)

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(json.dumps({"type": "connection_established"}))
        async for _message in ws.iter_text():
            for frame in frames:
                await ws.send_text(frame)

    app = Starlette(routes=[WebSocketRoute("/", endpoint)])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        log_level="warning",
    )


async def run_reference(
    name: str, sizes: list[int], args: argparse.Namespace, content: str
) -> Result:
    # Each runs in a process of its own, as runwire does, so none shares a core with the clients.
    port = free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before the timed phase
        [sys.executable, __file__, f"--serve-{name}", str(port), ",".join(map(str, sizes))]
    )
    try:
        url = f"ws://127.0.0.1:{port}/"
        for _ in range(600):
            try:
                async with connect(url, compression=None):
                    break
            except OSError:
                await asyncio.sleep(0.05)
        return await measure(
            name,
            [url] * (args.clients + 2),
            args.messages,
            args.latency_samples,
            content,
            pids=[proc.pid],
        )
    finally:
        proc.terminate()
        proc.wait(30)


def report(results: list[Result], args: argparse.Namespace) -> None:
    sizes = next(r.sizes for r in results if r.name not in ("bare", "floor"))
    print(f"events per run: {len(sizes)}; mean frame {statistics.mean(sizes):.0f} B")
    print(
        f"{args.clients} clients x {args.messages} messages (paced: x 2); latency: one more "
        "client, idle, then (paced) while the others' runs stream"
    )
    bare = next((r for r in results if r.name == "bare"), None)
    print(
        f"{'server':8} {'events/s':>10} {'x bare':>7} {'idle p50':>9} {'idle p99':>9} {'load p50':>9} {'load p99':>9}"
    )
    for r in results:
        ratio = f"{r.rate / bare.rate:7.2f}" if bare else "      -"
        if not r.idle_latencies:  # cold: no idle probe; its burst has a line of its own below
            print(f"{r.name:8} {r.rate:10,.0f} {ratio}")
            continue
        load = (
            f"{percentile(r.load_latencies, 50):8.2f}ms {percentile(r.load_latencies, 99):8.2f}ms"
            f" (n={len(r.load_latencies)})"
            if r.load_latencies
            else ""
        )
        print(
            f"{r.name:8} {r.rate:10,.0f} {ratio} {percentile(r.idle_latencies, 50):8.2f}ms "
            f"{percentile(r.idle_latencies, 99):8.2f}ms {load}"
        )
    # Where the machine's cores went, per event delivered: the servers, Redis, the clients, and
    # everything else busy (PostgreSQL, other tenants); "cores" is the machine's mean busy count.
    for r in results:
        if not r.events:
            continue
        per = 1e6 / r.events
        line = f"{r.name:8} CPU us/event:"
        if r.server_cpu_s is not None:
            line += f" server {r.server_cpu_s * per:5.1f} (kernel {r.server_sys_s * per:4.1f})"
        if r.redis_cpu_s is not None:
            line += f", Redis {r.redis_cpu_s * per:4.1f}"
        if r.postgres_cpu_s is not None:
            line += f", PostgreSQL {r.postgres_cpu_s * per:4.1f}"
        other = r.machine_cpu_s - r.client_cpu_s - (r.server_cpu_s or 0) - (r.redis_cpu_s or 0)
        other -= r.postgres_cpu_s or 0
        line += f", clients {r.client_cpu_s * per:4.1f}, rest {other * per:4.1f}"
        line += f"; machine {r.machine_cpu_s / r.elapsed:.2f} cores busy"
        print(line)
    # A stall shows here before it shows anywhere else: one slow run holds the timed phase open.
    for r in results:
        if r.run_ms:
            print(
                f"{r.name:8} runs under load: p50 {percentile(r.run_ms, 50):.0f} ms, "
                f"slowest {max(r.run_ms):.0f} ms"
            )
    by_name = {r.name: r for r in results}
    if "cold" in by_name:
        cold = by_name["cold"]
        burst = cold.burst_latencies
        line = (
            f"cold burst: {len(burst)} new users asking at once: first event p50 "
            f"{percentile(burst, 50):.1f} ms, p99 {percentile(burst, 99):.1f} ms "
            f"(target <= 100 ms); {cold.rate:,.0f} events/s"
        )
        if "direct" in by_name:
            line += f" = {cold.rate / by_name['direct'].rate:.2f} x direct (target >= 0.85)"
        print(line)
        first = cold.first_run_ms
        print(
            f"cold burst: first runs p50 {percentile(first, 50):.0f} ms, p99 "
            f"{percentile(first, 99):.0f} ms; the timed phase took {cold.elapsed * 1000:.0f} ms"
        )
        if cold.connect_cpu_s is not None and cold.server_cpu_s is not None and cold.events:
            timed = (cold.server_cpu_s - cold.connect_cpu_s) / cold.events * 1e6
            print(
                f"cold burst: the server's CPU while the users connected (before the burst): "
                f"{cold.connect_cpu_s * 1000:.0f} ms, {cold.connect_cpu_s / len(burst) * 1000:.2f} "
                f"ms a user; the timed phase alone {timed:.1f} us/event"
            )
    if "direct" in by_name:
        burst = by_name["direct"].burst_latencies
        print(
            f"warm burst (direct): the first timed message of {len(burst)} warm users at once: "
            f"first event p50 {percentile(burst, 50):.1f} ms, p99 {percentile(burst, 99):.1f} ms"
        )
    if "direct" in by_name and "nokeep" in by_name:
        cost = 1 - by_name["direct"].rate / by_name["nokeep"].rate
        print(f"keeping every event costs {cost:.0%} of throughput (direct vs nokeep)")
    if "direct" in by_name:
        several_nodes(by_name)
    if "direct" in by_name and "split" in by_name:
        ratio = by_name["split"].rate / by_name["direct"].rate
        print(
            f"a chat node of a split deployment: {ratio:.2f} x the events/s of one process (split vs direct)"
        )


def several_nodes(by_name: dict[str, Result]) -> None:
    """Issue 15's second target: a Redis-mode node's CPU per event, and a cluster's on
    PostgreSQL + Redis (its nodes' and PostgreSQL's together), against the embedded server's."""
    direct = by_name["direct"]
    if direct.server_cpu_s is None or not direct.events:
        return
    embedded = direct.server_cpu_s / direct.events * 1e6
    if "redis" in by_name and by_name["redis"].server_cpu_s is not None:
        redis = by_name["redis"]
        used = (redis.server_cpu_s or 0.0) / redis.events * 1e6
        print(
            f"Redis mode: server {used:.1f} us/event = {used / embedded:.2f} x direct's "
            f"{embedded:.1f} (target <= 1.25)"
        )
    for name in (n for n in CLUSTERS if n in by_name):
        cluster = by_name[name]
        nodes = (cluster.server_cpu_s or 0.0) / cluster.events * 1e6
        postgres = (cluster.postgres_cpu_s or 0.0) / cluster.events * 1e6
        target = " (target <= 1.4)" if name == "pg2" else ""
        ratio = (nodes + postgres) / embedded
        # The "over the node count" read a second way: the same sum, also divided by
        # the nodes (each node's share of the work per event). The first is the headline.
        shared = f"; over its {cluster.nodes} nodes {ratio / cluster.nodes:.2f} x" * (
            cluster.nodes > 1
        )
        print(
            f"{name}: {cluster.nodes} node(s) on PostgreSQL + Redis: nodes {nodes:.1f} + "
            f"PostgreSQL {postgres:.1f} = {nodes + postgres:.1f} us/event = "
            f"{ratio:.2f} x direct{target}{shared}"
        )


async def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-bare":
        await serve_bare(int(sys.argv[2]), [int(x) for x in sys.argv[3].split(",")])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument(
        "--variants", default="bare,floor,direct,cold,asgi,nokeep,redis,paced,split,pg2"
    )
    parser.add_argument(
        "--no-sample-data",
        action="store_true",
        help="clients without usage data (the data-helper path: fewer tool calls)",
    )
    args = parser.parse_args()
    variants = args.variants.split(",")
    content = "Where can we cut our LLM costs?"
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        setup = Runwire(data_dir, {})
        try:
            async with httpx.AsyncClient(base_url=setup.base, timeout=60) as http:
                emails = [
                    await setup.create_user(http, not args.no_sample_data)
                    for _ in range(args.clients + 1)
                ]
            # The cold variant's users: new ones, their sample sets loaded by this process.
            cold_emails = []
            if "cold" in variants:
                async with httpx.AsyncClient(base_url=setup.base, timeout=60) as http:
                    cold_emails = [
                        await setup.create_user(http, not args.no_sample_data)
                        for _ in range(args.clients)
                    ]
        finally:
            setup.stop()
        for name in variants:
            if name in RUNWIRE_VARIANTS:
                results.append(await run_runwire(name, data_dir, emails, args, content))
            elif name == "cold":
                results.append(await run_cold(data_dir, emails[0], cold_emails, args, content))
        if "split" in variants:
            results.append(await run_split(data_dir, emails, args, content))
        for name in (v for v in variants if v in CLUSTERS):
            results.append(await run_cluster(name, data_dir, args, content))
    sizes = results[0].sizes if results else [300] * 321
    references = [
        await run_reference(n, sizes, args, content) for n in ("bare", "floor") if n in variants
    ]
    results = references + results
    report(results, args)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-floor":
        serve_floor(int(sys.argv[2]), [int(x) for x in sys.argv[3].split(",")])
    else:
        asyncio.run(main())
