"""A deadline for every test: a test that hangs fails, saying where it waited, and the suite goes
on, instead of holding the whole run (and CI) until an outside limit kills it without a word.

A watchdog thread gives each test's call ``RUNWIRE_TEST_DEADLINE_UNITS`` time units (default 180,
far above the slowest test's ~40 s on a loaded machine). Past it, the watchdog writes to stderr
(shown in the test's report) the stack of every thread and of every asyncio task of every running
loop, then cancels the test's own task: the test fails with a ``CancelledError`` whose traceback
ends where it waited. A synchronous test cannot be interrupted safely; its stacks are written and
it goes on waiting.

Registered by tests/conftest.py (``pytest_plugins``).
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

import pytest

from tests.timing import unit

__all__ = ["deadline_s"]


def deadline_s() -> float:
    """How long one test's call may take, in seconds."""
    return unit(float(os.environ.get("RUNWIRE_TEST_DEADLINE_UNITS", "180")))


def _running_loops() -> list[asyncio.AbstractEventLoop]:
    # Only when a deadline passes: walking every object is slow, but nothing else names the loop
    # another thread runs.
    return [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, asyncio.AbstractEventLoop) and obj.is_running()
    ]


def _report_and_cancel(test_name: str, out: TextIO) -> None:
    """On the loop's own thread: every task's stack, then cancel the test's task."""
    tasks = asyncio.all_tasks()
    for task in tasks:
        out.write(f"--- {task!r}\n")
        task.print_stack(limit=40, file=out)
    out.flush()
    for task in tasks:
        if getattr(task.get_coro(), "__name__", None) == test_name:
            task.cancel(f"the test ran past its deadline of {deadline_s():.0f} s")


def _fire(item: pytest.Item) -> None:
    err = sys.__stderr__  # fd 2: what the test's captured output shows, even from this thread
    if err is None:
        return
    err.write(f"\n=== {item.nodeid} still runs after {deadline_s():.0f} s: its stacks ===\n")
    err.flush()
    faulthandler.dump_traceback(file=err, all_threads=True)
    name = getattr(item, "originalname", item.name)
    for loop in _running_loops():
        loop.call_soon_threadsafe(_report_and_cancel, name, err)


class _Watchdog:
    """One thread for the whole session. It looks at the running test every twentieth of the
    deadline (a test past it is caught within 5% of it), rather than being woken as each test
    starts and ends: two wake-ups a test, each handing the GIL to this thread and back, cost the
    unit layer (1,100 short tests) 5,000-7,000 context switches and 4-5% of its CPU."""

    def __init__(self) -> None:
        # The running test's turn, item and start, replaced whole (one reference written under
        # the GIL): the thread reads one test's or none, never a mix of two.
        self._current: tuple[int, pytest.Item, float] | None = None
        self._turn = 0
        self._thread: threading.Thread | None = None

    def begin(self, item: pytest.Item) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="test-deadline")
            self._thread.start()
        self._turn += 1
        self._current = (self._turn, item, time.monotonic())

    def end(self) -> None:
        self._current = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
        self.begin(item)
        try:
            return (yield)
        finally:
            self.end()

    def _run(self) -> None:
        limit = deadline_s()
        fired = 0  # the turn whose stacks were written: once a test
        while True:
            time.sleep(max(limit / 20, 0.001))
            current = self._current
            if current is None:
                continue
            turn, item, started = current
            if turn != fired and time.monotonic() - started >= limit:
                fired = turn
                _fire(item)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_Watchdog(), "runwire-test-deadline")
