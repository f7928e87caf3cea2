"""``runwire doctor``'s cases in process (typer's runner, as tests/integration/test_cli_commands.py):
real databases, a real Redis, closed ports for services that are down, the exit codes and lines an
operator reads. tests/e2e/test_doctor.py runs it as a process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.databases import fresh_postgres_database
from tests.e2e.test_doctor import lines
from tests.integration.test_cli_commands import runwire
from tests.ports import closed_port

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-Pa55word"


def test_doctor_names_runwire_migrate_for_an_unmigrated_postgresql_database(
    tmp_path: Path,
) -> None:
    with fresh_postgres_database(migrate=False) as url:
        env = {"RUNWIRE_DATABASE_URL": url}
        before = runwire("doctor", data_dir=tmp_path, env=env)
        assert before.returncode == 1, before.stdout + before.stderr
        shown = lines(before.stdout)
        assert shown["database"].startswith("ok") and "postgresql answers" in shown["database"]
        assert shown["schema"].startswith("failing")
        assert "at nothing, needs 0011: run `runwire migrate`" in shown["schema"]
        assert "not ready: schema failing" in before.stdout

        assert runwire("migrate", data_dir=tmp_path, env=env).returncode == 0
        after = runwire("doctor", data_dir=tmp_path, env=env)
        assert after.returncode == 0, after.stdout
        assert lines(after.stdout)["schema"].startswith("ok")


def test_doctor_names_unreachable_services_without_their_passwords(tmp_path: Path) -> None:
    with closed_port() as port, closed_port() as redis_port:
        url = f"postgresql+asyncpg://runwire:{PASSWORD}@127.0.0.1:{port}/runwire"
        redis = f"redis://:{PASSWORD}@127.0.0.1:{redis_port}/0"
        env = {"RUNWIRE_DATABASE_URL": url, "RUNWIRE_REDIS_URL": redis}
        done = runwire("doctor", data_dir=tmp_path, env=env)
        # The commands that need the database say the same in one line, not with a traceback.
        migrated = runwire("migrate", data_dir=tmp_path, env={"RUNWIRE_DATABASE_URL": url})
    assert done.returncode == 1, done.stdout + done.stderr
    shown = lines(done.stdout)
    assert list(shown) == ["settings", "database", "redis"]  # the schema needs the database
    assert "database unreachable (ConnectionRefusedError)" in shown["database"]
    assert f"runwire:***@127.0.0.1:{port}/runwire" in done.stdout  # where it looked
    assert "Connect call failed" in done.stdout  # and what the driver said
    assert "fix: start the database server" in done.stdout
    assert shown["redis"].startswith("failing") and "does not answer" in shown["redis"]
    assert "fix: start Redis, or point RUNWIRE_REDIS_URL" in done.stdout
    assert "not ready: database, redis failing" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr
    assert migrated.returncode == 1
    said = " ".join(migrated.stderr.split())  # the console wraps long lines
    assert said.startswith("error: cannot reach the database at postgresql+asyncpg://runwire:***@")
    assert "ConnectionRefusedError" in said and "`runwire doctor`" in said
    assert "Traceback" not in said and PASSWORD not in migrated.stdout + migrated.stderr


def test_doctor_names_bad_settings(tmp_path: Path) -> None:
    done = runwire(
        "doctor", data_dir=tmp_path, env={"RUNWIRE_DATABASE_URL": "mysql://root@db/runwire"}
    )
    assert done.returncode == 1
    assert lines(done.stdout)["settings"].startswith("failing")
    assert "RUNWIRE_DATABASE_URL must start with" in done.stdout


def test_doctor_checks_the_llm_endpoint_when_one_is_configured(tmp_path: Path) -> None:
    assert runwire("migrate", data_dir=tmp_path).returncode == 0
    with closed_port() as port:
        env = {
            "RUNWIRE_LLM_BASE_URL": f"http://127.0.0.1:{port}/v1",
            "RUNWIRE_LLM_API_KEY": PASSWORD,
        }
        down = runwire("doctor", data_dir=tmp_path, env=env)
    assert down.returncode == 1, down.stdout + down.stderr
    shown = lines(down.stdout)
    assert list(shown) == ["settings", "database", "schema", "llm"]
    assert shown["llm"].startswith("failing") and "llm unreachable (ConnectError)" in shown["llm"]
    assert f"127.0.0.1:{port}/v1/models: ConnectError" in down.stdout  # where, for the operator
    assert "fix: start the LLM endpoint" in down.stdout and PASSWORD not in down.stdout
