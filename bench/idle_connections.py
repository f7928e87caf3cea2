"""Memory of idle connections: N authenticated WebSocket connections held open in one process.

Starts `runwire serve` (its own process, embedded defaults), opens N connections (default
10,000) spread over a few users with a Bearer header, waits for each `connection_established`,
and reads the server's resident memory (VmRSS) before and after; prints KiB per connection.
The clients are the `websockets` library in this process (which needs N file descriptors).

Usage: python bench/idle_connections.py [--connections 10000] [--users 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def steady_rss(pid: int) -> int:
    """The server's RSS once it stops moving (two readings 0.5 s apart within 1%)."""
    last = rss_kib(pid)
    for _ in range(20):
        await asyncio.sleep(0.5)
        now = rss_kib(pid)
        if abs(now - last) <= last * 0.01:
            return now
        last = now
    return last


def start_server(data_dir: str, connections: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "RUNWIRE_DATA_DIR": data_dir,
        "RUNWIRE_ENV": "test",
        "RUNWIRE_ARGON2_TIME_COST": "1",
        "RUNWIRE_ARGON2_MEMORY_KIB": "64",
        "RUNWIRE_MAX_CONNECTIONS_PER_USER": str(connections),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "runwire", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                return proc, port
        time.sleep(0.05)
    raise RuntimeError("runwire did not start")


async def measure(pid: int, port: int, connections: int, users: int) -> None:
    base = f"http://127.0.0.1:{port}"
    held: list[Any] = []
    try:
        tokens = []
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            for _ in range(users):
                email = f"idle-{uuid.uuid4().hex[:10]}@example.com"
                cred = {"email": email, "password": "benchmark-pass"}
                await http.post("/auth/register", json=cred)
                tokens.append((await http.post("/auth/login", json=cred)).json()["access_token"])
        url = f"ws://127.0.0.1:{port}/ws"

        async def open_one(i: int) -> None:
            ws = await connect(
                url,
                additional_headers={"Authorization": f"Bearer {tokens[i % len(tokens)]}"},
                ping_interval=None,
                open_timeout=60,
            )
            hello = json.loads(await ws.recv())
            assert hello["type"] == "connection_established", hello
            held.append(ws)

        # A first batch, so what every connection shares (code paths warmed, caches and
        # allocator arenas filled) is in the baseline rather than charged to the others.
        await asyncio.gather(*(open_one(i) for i in range(100)))
        gc.collect()
        before = await steady_rss(pid)
        started = time.perf_counter()
        batch = 200
        for start in range(100, connections, batch):
            await asyncio.gather(
                *(open_one(i) for i in range(start, min(start + batch, connections)))
            )
        opened = time.perf_counter() - started
        after = await steady_rss(pid)
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            exposition = (await http.get("/metrics")).text
        seen = next(
            s.value
            for family in text_string_to_metric_families(exposition)
            for s in family.samples
            if s.name == "runwire_connections"
        )
        added = len(held) - 100
        print(
            f"{len(held)} connections open ({seen:.0f} seen by the server); "
            f"{added} opened in {opened:.1f} s"
        )
        print(f"server RSS: {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after")
        print(f"per connection above baseline: {(after - before) / added:.1f} KiB")
    finally:
        for ws in held:
            with contextlib.suppress(Exception):
                ws.transport.abort()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=10)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections + 200
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_server(tmp, args.connections)
        try:
            asyncio.run(measure(proc.pid, port, args.connections, args.users))
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)


if __name__ == "__main__":
    main()
