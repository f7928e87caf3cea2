"""`runwire serve` for bench/soak.py: the same CLI, plus one signal handler.

On SIGUSR1 it runs a full garbage collection (``gc.collect()``), so that the soak compares
memory with the collectable garbage gone; notes the resident memory; has glibc's malloc give
the free memory it keeps in its arenas back to the system (``malloc_trim(0)``), so that the soak
compares memory in use rather than what the allocator happens to keep; and writes what the
process holds to ``$RUNWIRE_DATA_DIR/heap.json``: the resident memory before the trim, the
objects the collector tracks (in all, and per type, and what weak references point to), the
blocks Python's allocator has handed out, and what malloc holds (in use, and free in its
arenas). RSS alone cannot tell a leak from an allocator that keeps freed memory for later;
these can. Nothing of this is in runwire itself.

Usage (as bench/soak.py starts it): python bench/soak_server.py serve --port N
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import signal
import sys
import weakref
from collections import Counter
from pathlib import Path
from typing import Any

from runwire.cli import main

HEAP_FILE = "heap.json"


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (2.33 and later): every field a size_t, in bytes."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",  # bytes in the main arena's heap (sbrk)
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",  # bytes in blocks mapped on their own (mmap)
            "usmblks",
            "fsmblks",
            "uordblks",  # bytes in use
            "fordblks",  # bytes free in the arenas, kept for later
            "keepcost",
        )
    ]


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        libc.malloc_trim.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None  # not glibc 2.33 or later: RSS and Python's own counts only
    return libc


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _malloc(libc: ctypes.CDLL | None) -> dict[str, int]:
    if libc is None:
        return {}
    info = libc.mallinfo2()
    return {
        "malloc_in_use": info.uordblks + info.hblkhd,
        "malloc_free": info.fordblks,
    }


def _heap(seq: int, libc: ctypes.CDLL | None) -> dict[str, Any]:
    objects = gc.get_objects()
    types = Counter(_name(o) for o in objects)
    # What weak references point to ("dead" once their object is gone): a weak reference
    # that outlives its use is a leak no referent shows.
    referents = Counter(
        _name(o()) if o() is not None else "dead" for o in objects if type(o) is weakref.ref
    )
    del objects
    return {
        "seq": seq,
        "gc_objects": sum(types.values()),
        "allocated_blocks": sys.getallocatedblocks(),
        **_malloc(libc),
        "types": dict(types),
        "weakref_referents": dict(referents),
    }


def _name(o: object) -> str:
    return f"{type(o).__module__}.{type(o).__qualname__}"


def _install() -> None:
    target = Path(os.environ["RUNWIRE_DATA_DIR"]) / HEAP_FILE
    libc = _libc()
    seq = 0

    def on_signal(*_: object) -> None:
        nonlocal seq
        gc.collect()
        seq += 1
        untrimmed = _rss_kib()
        if libc is not None:
            libc.malloc_trim(0)
        account = {**_heap(seq, libc), "rss_untrimmed_kib": untrimmed}
        partial = target.with_suffix(".tmp")
        partial.write_text(json.dumps(account))
        partial.replace(target)  # the soak never reads half a file

    signal.signal(signal.SIGUSR1, on_signal)


if __name__ == "__main__":
    _install()
    main()
