"""Delivery benchmark: runwire beside a bare `websockets` server, same client code, one run.

What it measures (offline agents, delay 0, SQLite, in-process bus):
  1. first-event latency: a client sends `user_message`; the time until the run's first event
     (`agent_started`) arrives. Measured one message at a time on an idle server (p50, p99).
  2. throughput: N concurrent clients (default 100), each its own user with the sample data,
     each sending messages back to back; events/s delivered to all of them together.
  3. the same client code against a bare `websockets` server that answers each message with
     frames of exactly the sizes of a real runwire run's events; the ratio runwire / bare.

Every client first sends one warm-up message (its user's usage data is then read and cached),
then all start together; a run that does not complete aborts the benchmark.
The client offers no permessage-deflate, and the bare server does not use it either.

Usage: python bench/throughput.py [--clients 100] [--messages 5] [--latency-samples 200]
"""

from __future__ import annotations

import argparse
import asyncio
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


async def _one_message(ws: Any, content: str) -> tuple[int, float, list[int], str]:
    """Send one user message; read its run to the end. Returns (events, first-event latency ms,
    frame sizes, the terminal event's type)."""
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
        if "seq" not in frame:
            continue
        if not sizes:
            latency = (time.perf_counter() - sent) * 1000
        sizes.append(len(raw))
        if frame["type"] in TERMINAL and frame.get("parent_agent") is None:
            return len(sizes), latency, sizes, frame["type"]


async def converse(
    url: str, messages: int, content: str, ready: asyncio.Barrier | None = None
) -> tuple[int, list[float], list[int]]:
    """One client: (after one warm-up message and the barrier, if given) send ``messages`` user
    messages one after another. Returns (events, first-event latencies, first run's sizes)."""
    events = 0
    latencies: list[float] = []
    first_sizes: list[int] = []
    async with connect(url, max_size=2**22, compression=None) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "connection_established", hello
        if ready is not None:
            await _one_message(ws, content)  # warm-up: the user's data is read and cached
            await ready.wait()
        for _ in range(messages):
            count, latency, sizes, last = await _one_message(ws, content)
            if last != "agent_completed":
                raise SystemExit(f"a run ended with {last}: the benchmark would be meaningless")
            events += count
            latencies.append(latency)
            first_sizes = first_sizes or sizes
    return events, latencies, first_sizes


async def throughput(urls: list[str], messages: int, content: str) -> tuple[float, int, float]:
    """Events/s delivered to all clients together, timed from when every client is warm."""
    ready = asyncio.Barrier(len(urls) + 1)
    clients = [asyncio.create_task(converse(u, messages, content, ready)) for u in urls]
    await ready.wait()
    started = time.perf_counter()
    results = await asyncio.gather(*clients)
    elapsed = time.perf_counter() - started
    total = sum(r[0] for r in results)
    return total / elapsed, total, elapsed


# -- runwire --------------------------------------------------------------------------------------


class Runwire:
    def __init__(self, data_dir: Path) -> None:
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
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runwire", "serve", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(600):
            try:
                if httpx.get(self.base + "/ready").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("runwire did not start")

    async def user_url(self, http: httpx.AsyncClient, sample: bool) -> str:
        email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
        await http.post("/auth/register", json={"email": email, "password": "benchmark-pass"})
        tokens = (
            await http.post("/auth/login", json={"email": email, "password": "benchmark-pass"})
        ).json()
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        if sample:
            await http.post("/api/usage/sample", headers=auth)
        ticket = (await http.post("/api/ws-ticket", headers=auth)).json()["ticket"]
        return f"ws://127.0.0.1:{self.port}/ws?ticket={ticket}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)


# -- the bare websockets server -------------------------------------------------------------------


def bare_server(sizes: list[int]):  # type: ignore[no-untyped-def]
    """Answers each message with frames of the given sizes (JSON with a `seq`, padded)."""
    template = []
    for i, size in enumerate(sizes, start=1):
        kind = "agent_completed" if i == len(sizes) else "agent_thinking"
        body = {"type": kind, "run_id": "run_x", "seq": i, "parent_agent": None, "pad": ""}
        pad = max(0, size - len(json.dumps(body, separators=(",", ":"))))
        body["pad"] = "x" * pad
        template.append(body)

    async def handler(ws: Any) -> None:
        await ws.send(json.dumps({"type": "connection_established"}))
        async for _message in ws:
            for body in template:
                await ws.send(json.dumps(body, separators=(",", ":")))

    return handler


async def serve_bare(port: int, sizes: list[int]) -> None:
    async with serve(bare_server(sizes), "127.0.0.1", port, max_size=2**22, compression=None):
        await asyncio.Future()


async def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-bare":
        await serve_bare(int(sys.argv[2]), [int(x) for x in sys.argv[3].split(",")])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument(
        "--no-sample-data",
        action="store_true",
        help="clients without usage data (the data-helper path: fewer tool calls)",
    )
    args = parser.parse_args()
    content = "Where can we cut our LLM costs?"
    sample = not args.no_sample_data

    with tempfile.TemporaryDirectory() as tmp:
        server = Runwire(Path(tmp))
        try:
            async with httpx.AsyncClient(base_url=server.base, timeout=60) as http:
                # Latency on an idle server, one message at a time.
                url = await server.user_url(http, sample)
                _, latencies, sizes = await converse(url, args.latency_samples, content)
                urls = [await server.user_url(http, sample) for _ in range(args.clients)]
            rw_rate, rw_events, rw_elapsed = await throughput(urls, args.messages, content)
        finally:
            server.stop()

    # The bare server runs in a process of its own, as runwire does, so neither shares a core
    # with the clients. Like runwire, it does not negotiate permessage-deflate.
    port = free_port()
    bare = subprocess.Popen(  # noqa: ASYNC220 - started once, before the timed phase
        [sys.executable, __file__, "--serve-bare", str(port), ",".join(map(str, sizes))]
    )
    try:
        bare_url = f"ws://127.0.0.1:{port}/"
        for _ in range(600):
            try:
                async with connect(bare_url, compression=None):
                    break
            except OSError:
                await asyncio.sleep(0.05)
        _, bare_lat, _ = await converse(bare_url, args.latency_samples, content)
        bare_rate, bare_events, bare_elapsed = await throughput(
            [bare_url] * args.clients, args.messages, content
        )
    finally:
        bare.terminate()
        bare.wait(30)

    print(f"events per run: {len(sizes)}; mean frame {statistics.mean(sizes):.0f} B")
    print(
        f"first-event latency (idle, n={len(latencies)}): runwire p50 {percentile(latencies, 50):.2f} ms, "
        f"p99 {percentile(latencies, 99):.2f} ms | bare p50 {percentile(bare_lat, 50):.2f} ms, "
        f"p99 {percentile(bare_lat, 99):.2f} ms"
    )
    print(
        f"throughput, {args.clients} clients x {args.messages} messages: runwire {rw_rate:,.0f} events/s "
        f"({rw_events} in {rw_elapsed:.2f} s) | bare websockets {bare_rate:,.0f} events/s "
        f"({bare_events} in {bare_elapsed:.2f} s)"
    )
    print(f"ratio runwire / bare: {rw_rate / bare_rate:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
