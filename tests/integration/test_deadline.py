"""The suite's deadline per test (tests/deadline.py): a test that hangs fails, naming where it
waited, and the tests after it still run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.timing import unit

ROOT = Path(__file__).resolve().parents[2]

HANGING = """
import asyncio

async def waits_for_nothing():
    await asyncio.Event().wait()

async def test_hangs():
    await waits_for_nothing()

def test_after():
    pass
"""


def test_a_hanging_test_fails_where_it_waits_and_the_next_one_runs(tmp_path: Path) -> None:
    (tmp_path / "test_hanging.py").write_text(HANGING)
    env = {**os.environ, "RUNWIRE_TEST_DEADLINE_UNITS": "0.3", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(tmp_path),
            "-p",
            "tests.deadline",
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_mode=auto",
            "--rootdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=unit(60),
        check=False,
    )
    out = done.stdout
    assert done.returncode == 1, out
    assert "1 failed, 1 passed" in out
    assert "test_hanging.py::test_hangs still runs after" in out
    assert "CancelledError" in out and "in waits_for_nothing" in out
