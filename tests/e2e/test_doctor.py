"""``runwire doctor`` as an operator runs it: a real process, a real database, exit codes. Its other
cases run in process: tests/integration/test_doctor.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_cli import runwire
from tests.services import redis_url

pytestmark = pytest.mark.local_only


def lines(text: str) -> dict[str, str]:
    """Each check's line, by the check's name (the word after ok/failing)."""
    found = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("ok", "failing"):
            found[words[1]] = line
    return found


def test_doctor_passes_on_a_migrated_sqlite_database_and_creates_none(tmp_path: Path) -> None:
    missing = runwire("doctor", data_dir=tmp_path)
    assert missing.returncode == 1, missing.stdout
    shown = lines(missing.stdout)
    assert shown["settings"].startswith("ok")
    assert shown["database"].startswith("failing") and "no database file yet" in missing.stdout
    assert "fix: run `runwire migrate`" in missing.stdout
    assert not (tmp_path / "runwire.db").exists()  # doctor looks; it changes nothing

    assert runwire("migrate", data_dir=tmp_path).returncode == 0
    # With RUNWIRE_REDIS_URL set, Redis (the bus of several nodes) is checked too.
    fine = runwire("doctor", data_dir=tmp_path, env={"RUNWIRE_REDIS_URL": redis_url()})
    assert fine.returncode == 0, fine.stdout + fine.stderr
    shown = lines(fine.stdout)
    assert list(shown) == ["settings", "database", "schema", "redis"]
    assert all(line.startswith("ok") for line in shown.values()), fine.stdout
    assert "sqlite answers" in shown["database"] and "at 0011" in shown["schema"]
    assert fine.stdout.rstrip().endswith("ready")
