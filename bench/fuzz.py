"""Fuzzing a real ``runwire serve`` (issue 12, R3): WebSocket frames and HTTP bodies by the
hundred thousand, then the golden path.

Starts ``runwire serve`` (its own process, SQLite in a temp dir, test settings with the per-address
and per-user rate limits lifted so that every case reaches the code it is aimed at; the frame and
body caps stay at their defaults), makes one user per lane (each with one imported record, one
finished run and one import batch, whose ids the cases name), and sends:

- ``--frames`` WebSocket frames over ``--lanes`` raw connections (fuzz_lanes.FrameLane), drawn
  by hypothesis (fuzz_cases.FRAME_MIX): the unit layer's hostile frames, valid commands,
  protocol messages naming real ids in any order, frames that break RFC 6455, fragments,
  oversized frames, frames sent before the handshake is answered;
- ``--bodies`` HTTP requests over ``--http-lanes`` clients (fuzz_lanes.HttpLane): every operation
  of the live /openapi.json drawn by schemathesis (valid and invalid), usage imports made of the
  unit layer's hostile lines (JSON Lines and CSV), /auth/* bodies of any JSON and none, and the
  id-taking operations with real and made-up ids.

Cases are drawn in ``--workers`` processes while the lanes send. It passes when there are 0
server errors (no status >= 500, no ``internal`` error frame or 1011 close, no traceback or
ERROR line in the server's log, no ``internal`` count in /metrics), 0 hangs (every case answered
or its socket closed within ``--deadline`` seconds; /health asked every half second throughout),
and the golden path works afterwards: sign up, log in, sample data, ticket, /ws, user_message,
the run ends in agent_completed with seq 1..n, and GET /api/runs/{id} agrees.

Usage: python bench/fuzz.py [--frames 60000] [--bodies 40000] [--seed 12]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the unit layer's strategies

from websockets.asyncio.client import connect

from fuzz_cases import frame_cases, http_cases
from fuzz_lanes import PASSWORD, Account, FrameLane, HttpLane, Tally

TERMINAL = {"agent_completed", "agent_error", "agent_stopped"}
SERVER_ENV = {
    "RUNWIRE_ENV": "test",
    "RUNWIRE_OFFLINE_DELAY_MS": "0",
    "RUNWIRE_ARGON2_TIME_COST": "1",
    "RUNWIRE_ARGON2_MEMORY_KIB": "64",
    # Lifted, so that cases reach the code they aim at rather than a rate limit.
    "RUNWIRE_REGISTER_IP_REQUESTS": "1000000",
    "RUNWIRE_LOGIN_IP_FAILURES": "1000000",
    "RUNWIRE_REFRESH_IP_REQUESTS": "1000000",
    "RUNWIRE_USAGE_IMPORT_USER_REQUESTS": "1000000",
    "RUNWIRE_WS_MESSAGES_PER_SECOND": "1000000",
    "RUNWIRE_WS_MESSAGE_BURST": "1000000",
    # A run of the benchmark may outlast the default 15 minutes of an access token.
    "RUNWIRE_ACCESS_TOKEN_TTL_S": "86400",
    # Bodies that stop are cut after 1 s rather than 30: a lane waits for each.
    "RUNWIRE_HTTP_BODY_TIMEOUT_S": "1",
}
LISTENING = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")
# Lines begin with their level (uvicorn's format); a fuzzed path in an access line does not.
BAD_LINE = re.compile(r"^(ERROR|CRITICAL)[: ]|Traceback \(most recent call last\)")
GOOD_RECORD = {
    "timestamp": "2026-11-01T09:30:00Z",
    "provider": "openai",
    "model": "gpt-4o",
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "latency_ms": 850,
}


def start_server(data_dir: Path, database_url: str | None) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, **SERVER_ENV, "RUNWIRE_DATA_DIR": str(data_dir)}
    if database_url:
        env["RUNWIRE_DATABASE_URL"] = database_url
    log = (data_dir / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "runwire", "serve", "--port", "0"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    for _ in range(1200):
        if proc.poll() is not None:
            break
        found = LISTENING.search((data_dir / "server.log").read_bytes())
        if found:
            url = f"http://127.0.0.1:{found[1].decode()}"
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("runwire did not start:\n" + (data_dir / "server.log").read_text())


async def a_user(http: httpx.AsyncClient, base: str, label: str) -> Account:
    """A user with one import batch (a record: the sample's month would make each of the
    lane's runs a hundred times dearer) and one finished run."""
    email = f"fuzz-{label}-{uuid.uuid4().hex[:8]}@example.com"
    cred = {"email": email, "password": PASSWORD}
    r = await http.post("/auth/register", json=cred)
    assert r.status_code == 201, r.text
    r = await http.post("/auth/login", json=cred)
    assert r.status_code == 200, r.text
    body = r.json()
    me = Account(email, body["access_token"], body["user"]["id"])
    auth = {"Authorization": f"Bearer {me.token}"}
    r = await http.post(
        "/api/usage/import",
        headers={**auth, "Content-Type": "application/x-ndjson"},
        content=json.dumps({**GOOD_RECORD, "feature": label}).encode(),
    )
    assert r.status_code == 200, r.text
    me.batch = r.json()["batch_id"]
    events = await golden_run(http, base, auth)
    me.done_run, me.thread = events[0]["run_id"], events[0]["thread_id"]
    me.done_seq, me.epoch = events[-1]["seq"], events[-1]["epoch"]
    return me


async def golden_run(
    http: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> list[dict[str, Any]]:
    """Ticket, /ws, a question: the run's events, checked to end in agent_completed with seq
    1..n, and the stored run to agree."""
    r = await http.post("/api/ws-ticket", headers=auth)
    assert r.status_code == 201, r.text
    url = base.replace("http://", "ws://") + "/ws?ticket=" + r.json()["ticket"]
    events: list[dict[str, Any]] = []
    async with connect(url, max_size=2**22, max_queue=None, open_timeout=30) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "connection_established", hello
        await ws.send(json.dumps({"type": "user_message", "content": "Where can we cut costs?"}))
        async with asyncio.timeout(60):
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "message_accepted":
                    run_id = frame["run_id"]
                elif "seq" in frame and frame["run_id"] == run_id:
                    events.append(frame)
                    if frame["type"] in TERMINAL and frame["parent_agent"] is None:
                        break
    seqs = [e["seq"] for e in events]
    assert events[-1]["type"] == "agent_completed", events[-1]
    assert seqs == list(range(1, len(events) + 1)), seqs
    r = await http.get(f"/api/runs/{run_id}", headers=auth)
    assert r.status_code == 200, r.text
    run = r.json()["run"]
    assert run["status"] == "completed" and run["last_seq"] == len(events), run
    return events


async def golden_path(base: str) -> str:
    """A new user's whole golden path after the fuzzing; what it saw."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        for path in ("/health", "/ready"):
            r = await http.get(path)
            assert r.status_code == 200, r.text
        email = f"golden-{uuid.uuid4().hex[:8]}@example.com"
        cred = {"email": email, "password": PASSWORD}
        assert (await http.post("/auth/register", json=cred)).status_code == 201
        r = await http.post("/auth/login", json=cred)
        assert r.status_code == 200, r.text
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = await http.post("/api/usage/sample", headers=auth)
        assert r.status_code == 201, r.text
        events = await golden_run(http, base, auth)
        return f"agent_completed, seq 1..{len(events)}, run stored as completed"


class Source:
    """Cases drawn in worker processes, in seeded chunks, handed to the lanes as they come,
    until the lanes have sent ``target`` (``sent`` counts it: WebSocket frames, or requests)."""

    def __init__(
        self,
        pool: concurrent.futures.ProcessPoolExecutor,
        draw: Callable[..., list[Any]],
        args: tuple[Any, ...],
        sent: Callable[[], int],
        target: int,
        seed: int,
        chunk: int,
    ) -> None:
        self.pool, self.draw, self.args = pool, draw, args
        self.sent, self.target, self.seed, self.chunk = sent, target, seed, chunk
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=chunk)
        self.drawn = 0
        self.distinct: set[int] = set()

    async def feed(self, ahead: int) -> None:
        """Runs until cancelled, once the lanes are done; ``ahead`` chunks are drawn at once
        (a source whose lanes are done stops drawing, leaving the workers to the other)."""
        loop = asyncio.get_running_loop()
        drawing: list[asyncio.Future[list[Any]]] = []
        index = 0
        while True:
            while len(drawing) < ahead:
                args = (*self.args, self.chunk, self.seed * 1_000_000 + index)
                drawing.append(loop.run_in_executor(self.pool, self.draw, *args))
                index += 1
            for case in await drawing.pop(0):
                self.drawn += 1
                self.distinct.add(hash(repr(case)))
                await self.queue.put(case)

    async def cases(self) -> AsyncIterator[Any]:
        while self.sent() < self.target:
            yield await self.queue.get()


async def watch_health(base: str, stop: asyncio.Event, seen: list[float], tally: Tally) -> None:
    """Ask /health every half second: the server stays usable throughout."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                r = await http.get("/health")
                if r.status_code != 200:
                    tally.error(f"/health answered {r.status_code}")
            except httpx.HTTPError as exc:
                tally.hang(f"/health did not answer: {exc!r}")
            seen.append(time.perf_counter() - started)
            await asyncio.sleep(0.5)


async def progress(tally: Tally, started: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(15)
        took = time.perf_counter() - started
        print(
            f"  {took:6.0f} s: {tally.frames} frames, {tally.requests} requests, "
            f"{len(tally.errors)} errors, {len(tally.hangs)} hangs",
            flush=True,
        )


def cpu_s(pid: int) -> float:
    """CPU seconds (user and system) a live process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metrics_internal(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("runwire_errors_total") and 'code="internal"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def fuzz(base: str, args: argparse.Namespace, pool: Any) -> tuple[Tally, list[float], float]:
    host, port = base.removeprefix("http://").split(":")
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        document = (await http.get("/openapi.json")).json()
        users = max(args.lanes, args.http_lanes, 2)
        accounts = [await a_user(http, base, f"lane{i}") for i in range(users)]
    tally = Tally()
    frames = Source(pool, frame_cases, (), lambda: tally.frames, args.frames, args.seed, args.chunk)
    bodies = Source(
        pool,
        http_cases,
        (document,),
        lambda: tally.requests,
        args.bodies,
        args.seed + 1,
        3 * args.chunk,
    )
    rng = random.Random(args.seed)
    frame_lanes = [
        FrameLane(
            f"ws{i}",
            host,
            int(port),
            accounts[i],
            accounts[(i + 1) % users],
            tally,
            args.deadline,
            random.Random(rng.random()),
        )
        for i in range(args.lanes)
    ]
    http_lanes = [
        HttpLane(
            f"http{i}",
            base,
            accounts[i],
            accounts[(i + 1) % users],
            tally,
            args.deadline,
            random.Random(rng.random()),
        )
        for i in range(args.http_lanes)
    ]
    stop = asyncio.Event()
    health: list[float] = []
    started = time.perf_counter()
    watchers = [
        asyncio.create_task(watch_health(base, stop, health, tally)),
        asyncio.create_task(progress(tally, started, stop)),
    ]
    feeders = [
        asyncio.create_task(frames.feed(args.workers)),
        asyncio.create_task(bodies.feed(args.workers)),
    ]
    await asyncio.gather(
        *(lane.run(frames.cases()) for lane in frame_lanes),
        *(lane.run(bodies.cases()) for lane in http_lanes),
    )
    took = time.perf_counter() - started
    stop.set()
    for task in [*watchers, *feeders]:
        task.cancel()
    print(
        f"drew {frames.drawn} frame cases ({len(frames.distinct)} distinct) and "
        f"{bodies.drawn} requests ({len(bodies.distinct)} distinct)"
    )
    return tally, health, took


def report(tally: Tally, health: list[float], took: float, log: str, internal: float) -> bool:
    bad_lines = [line for line in log.splitlines() if BAD_LINE.search(line)]
    warnings = [line for line in log.splitlines() if line.startswith("WARNING")]
    print(
        f"\nsent {tally.frames} WebSocket frames ({tally.frame_cases} cases) and "
        f"{tally.requests} HTTP requests ({tally.bodies} with a body) in {took:.0f} s "
        f"({(tally.frames + tally.requests) / took:.0f} a second)"
    )
    print(
        f"  WebSocket: {tally.connects} connections, {tally.runs_started} runs started, "
        f"{tally.events} run events"
    )
    print("  replies: " + ", ".join(f"{k} {v}" for k, v in tally.replies.most_common()))
    print("  closes: " + ", ".join(f"{k!r} {v}" for k, v in tally.closes.most_common()))
    print("  HTTP statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.statuses.items())))
    if tally.cut_requests:
        print(
            "  closed before an answer: "
            + ", ".join(f"{k} {v}" for k, v in tally.cut_requests.most_common())
        )
    print(f"  not sendable by the client library (skipped): {tally.unsent}")
    print(
        f"  slowest case {tally.slowest_case_s:.2f} s; /health asked {len(health)} times, "
        f"slowest {max(health, default=0) * 1000:.0f} ms"
    )
    print(f"  server log: {len(bad_lines)} traceback/ERROR lines, {len(warnings)} warnings")
    for line in bad_lines[:40]:
        print("    " + line)
    for line in warnings[:10]:
        print("    " + line)
    print(f'  /metrics runwire_errors_total{{code="internal"}}: {internal:g}')
    print(f"server errors: {len(tally.errors)}")
    for error in tally.errors[:30]:
        print("  " + error)
    print(f"hangs: {len(tally.hangs)}")
    for hang in tally.hangs[:30]:
        print("  " + hang)
    return not (tally.errors or tally.hangs or bad_lines or internal)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=60_000)
    parser.add_argument("--bodies", type=int, default=40_000)
    parser.add_argument("--lanes", type=int, default=4, help="WebSocket connections")
    parser.add_argument("--http-lanes", type=int, default=4, help="HTTP clients")
    parser.add_argument("--workers", type=int, default=2, help="processes drawing cases")
    parser.add_argument(
        "--chunk", type=int, default=400, help="frame cases drawn per seed (3x requests)"
    )
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--deadline", type=float, default=30.0, help="seconds for an answer")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--keep-log", default=None, help="copy the server's log here")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; seed {args.seed}")
    # The workers fork before any thread or event loop exists.
    pool = concurrent.futures.ProcessPoolExecutor(
        args.workers, mp_context=multiprocessing.get_context("fork")
    )
    list(pool.map(abs, range(args.workers)))
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = start_server(Path(tmp), args.database_url)
        try:
            tally, health, took = asyncio.run(fuzz(base, args, pool))
            try:
                golden = asyncio.run(golden_path(base))
            except (AssertionError, OSError, TimeoutError, httpx.HTTPError) as exc:
                golden = f"FAILED: {exc!r}"
            print(f"golden path afterwards: {golden}")
            internal = metrics_internal(httpx.get(f"{base}/metrics", timeout=30).text)
            server_cpu = cpu_s(proc.pid)
        finally:
            pool.shutdown(cancel_futures=True)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(60)
            log = (Path(tmp) / "server.log").read_text(errors="replace")
            if args.keep_log:
                Path(args.keep_log).write_text(log)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"CPU: server {server_cpu:.0f} s, drawing cases "
        f"{children.ru_utime + children.ru_stime - server_cpu:.0f} s, "
        f"clients {me.ru_utime + me.ru_stime:.0f} s"
    )
    ok = report(tally, health, took, log, internal)
    # uvicorn ends on SIGTERM by raising it again once it has shut down.
    print(f"server exit code {code}")
    ok = ok and code in (0, -signal.SIGTERM) and not golden.startswith("FAILED")
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
