"""The throughput benchmark with the system calls of its client and server counted per event.

Runs bench/throughput.py (same options) with ``perf stat`` on the syscall tracepoints attached
to the client process (this one) and to the server over each variant's timed phase, and prints
per event delivered: the client's reads (``recvfrom``), sleeps (``epoll_wait``) and pauses of
a socket (``epoll_ctl``), and the server's writes. How often the client sleeps is what made it
pay more per runwire event than per bare one (docs/benchmarks.md, "Hot path, session 12").
Needs ``perf`` and permission to trace (root, or a low ``perf_event_paranoid``).

Usage: python bench/wakeups.py --variants direct,bare [throughput.py's other options]
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import throughput

CALLS = ("sendto", "recvfrom", "epoll_wait", "epoll_ctl", "write", "writev", "read")
_timed = throughput._timed


def _counts(path: Path) -> dict[str, int]:
    """``perf stat -x,`` output: each tracepoint's count, by system call."""
    counts: dict[str, int] = {}
    for line in path.read_text().splitlines():
        fields = line.split(",")
        if len(fields) > 2 and "sys_enter_" in fields[2] and fields[0].isdigit():
            counts[fields[2].split("sys_enter_")[1]] = int(fields[0])
    return counts


async def counted(result: throughput.Result, *args: Any, **kwargs: Any) -> throughput.Result:
    """throughput._timed with perf attached to the client and the server (``pids[0]``)."""
    pids: list[int] | None = args[4]
    watched = [("client", os.getpid())] + ([("server", pids[0])] if pids else [])
    events = ",".join(f"syscalls:sys_enter_{call}" for call in CALLS)
    with tempfile.TemporaryDirectory() as tmp:
        perfs = []
        for who, pid in watched:
            out = Path(tmp) / f"{who}.txt"
            command = ["perf", "stat", "-x,", "-o", str(out), "-e", events, "-p", str(pid)]
            perfs.append((who, subprocess.Popen(command), out))  # noqa: ASYNC220 - before the phase
        # No wait for perf to attach: the clients are already sending, and the phase's time and
        # CPU are measured from now (a wait here once left its first 0.3 s out of both). perf
        # misses what the first few milliseconds call, so the counts are a little under.
        done = await _timed(result, *args, **kwargs)
        for who, perf, out in perfs:
            perf.send_signal(signal.SIGINT)
            perf.wait(30)
            per = {k: v / done.events for k, v in _counts(out).items() if v}
            line = " ".join(f"{k} {v:.3f}" for k, v in per.items())
            print(f"{done.name:8} {who} syscalls per event: {line}", flush=True)
    return done


if __name__ == "__main__":
    throughput._timed = counted
    asyncio.run(throughput.main())
