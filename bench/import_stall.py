"""How long a large usage import holds the server's event loop: /health answered during an import.

Starts `runwire serve` (its own process, embedded defaults: SQLite in a temp dir), signs a user
up, and posts a JSON Lines body of about ``--megabytes`` MB of distinct, valid records to
/api/usage/import while a second connection asks GET /health back to back. A /health that waits
is the event loop held by something else: the slowest /health during the import is the longest
stall a user of the server would notice. Then the same body again (every record already
present), and the same figures.

Usage: python bench/import_stall.py [--megabytes 20] [--database-url URL]
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

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: str, database_url: str | None) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "RUNWIRE_DATA_DIR": data_dir,
        "RUNWIRE_ENV": "test",
        "RUNWIRE_ARGON2_TIME_COST": "1",
        "RUNWIRE_ARGON2_MEMORY_KIB": "64",
        "RUNWIRE_MAX_IMPORT_BYTES": str(64 * 1024 * 1024),
    }
    if database_url:
        env["RUNWIRE_DATABASE_URL"] = database_url
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


def body_of(megabytes: float) -> bytes:
    """Distinct, valid records (each call a millisecond apart) up to ``megabytes`` MB."""
    lines: list[str] = []
    size = 0
    start_ms = int(time.time() * 1000) - 20 * 86_400_000
    i = 0
    while size < megabytes * 1_000_000:
        moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((start_ms + i * 997) / 1000))
        line = json.dumps(
            {
                "timestamp": f"{moment}.{(start_ms + i * 997) % 1000:03d}Z",
                "provider": "openai",
                "model": ("gpt-4o", "gpt-4o-mini", "gpt-4.1")[i % 3],
                "prompt_tokens": 1000 + i % 5000,
                "completion_tokens": 10 + i % 700,
                "latency_ms": 300 + (i * 37) % 4000,
                "status": "error" if i % 50 == 0 else "ok",
                "prompt_hash": f"h{i % 20_000:08x}",
                "feature": ("support-chat", "summarize", "classify-tickets")[i % 3],
            }
        )
        lines.append(line)
        size += len(line) + 1
        i += 1
    return ("\n".join(lines) + "\n").encode()


async def probe(http: httpx.AsyncClient, stop: asyncio.Event, seen: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        r = await http.get("/health")
        r.raise_for_status()
        seen.append(time.perf_counter() - started)


async def one_import(base: str, token: str, body: bytes) -> tuple[dict[str, object], float]:
    async with (
        httpx.AsyncClient(base_url=base, timeout=300) as importer,
        httpx.AsyncClient(base_url=base, timeout=300) as prober,
    ):
        await prober.get("/health")  # connected and warm before the import starts
        seen: list[float] = []
        stop = asyncio.Event()
        probing = asyncio.create_task(probe(prober, stop, seen))
        await asyncio.sleep(0.2)
        idle = list(seen)
        seen.clear()
        started = time.perf_counter()
        r = await importer.post(
            "/api/usage/import",
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
        )
        took = time.perf_counter() - started
        stop.set()
        await probing
    report = r.json()
    print(
        f"  HTTP {r.status_code} in {took:.2f} s: "
        + ", ".join(f"{k} {v}" for k, v in report.items() if not isinstance(v, list))
    )
    print(
        f"  /health while idle: max {max(idle) * 1000:.1f} ms; during the import: "
        f"{len(seen)} answers, median {statistics.median(seen) * 1000:.1f} ms, "
        f"max {max(seen) * 1000:.1f} ms"
    )
    return report, max(seen)


async def measure(port: int, megabytes: float) -> None:
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        cred = {"email": f"stall-{uuid.uuid4().hex[:10]}@example.com", "password": "bench-pass"}
        await http.post("/auth/register", json=cred)
        token = (await http.post("/auth/login", json=cred)).json()["access_token"]
    body = body_of(megabytes)
    lines = body.count(b"\n")
    print(f"body: {len(body) / 1e6:.1f} MB, {lines} lines")
    print("first import (every record new):")
    await one_import(base, token, body)
    print("the same body again (every record already present):")
    await one_import(base, token, body)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--megabytes", type=float, default=20)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_server(tmp, args.database_url)
        try:
            asyncio.run(measure(port, args.megabytes))
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)


if __name__ == "__main__":
    main()
