"""The command line, run as a person runs it: a real process, real files, real SQLite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.timing import unit

pytestmark = pytest.mark.local_only

BASE = {"RUNWIRE_ENV": "test", "RUNWIRE_ARGON2_TIME_COST": "1", "RUNWIRE_ARGON2_MEMORY_KIB": "64"}


def runwire(
    *args: str, data_dir: Path, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        **BASE,
        "RUNWIRE_DATA_DIR": str(data_dir),
        "COLUMNS": "200",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "runwire", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=unit(60),
        check=False,
    )


def test_user_usage_import_and_sample(tmp_path: Path) -> None:
    # The flow a person runs, each a process of its own; every case of each command is in
    # tests/integration/test_cli_commands.py, in process.
    made = runwire(
        "user",
        "create",
        "Ada@Example.com",
        "--password-stdin",
        data_dir=tmp_path,
        stdin="correct horse\n",
    )
    assert made.returncode == 0, made.stderr
    assert "created user ada@example.com" in made.stdout
    good = {
        "timestamp": "2026-11-01T10:00:00Z",
        "provider": "openai",
        "model": "gpt-4o",
        "prompt_tokens": 1000,
        "completion_tokens": 200,
        "latency_ms": 850,
    }
    data = tmp_path / "calls.jsonl"
    data.write_text("\n".join([json.dumps(good), "not json", ""]))
    imported = runwire("usage", "import", str(data), "--user", "ada@example.com", data_dir=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "imported 1 records" in imported.stdout and "line 2:" in imported.stderr
    sample = runwire("usage", "sample", "--user", "ada@example.com", data_dir=tmp_path)
    assert sample.returncode == 0 and "loaded" in sample.stdout
    listed = runwire("usage", "batches", "--user", "ada@example.com", data_dir=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.strip().splitlines()) == 2


def test_migrate_and_refusal_of_a_bad_production_config(tmp_path: Path) -> None:
    migrated = runwire("migrate", data_dir=tmp_path)
    assert migrated.returncode == 0 and "revision 0011" in migrated.stdout
    test_key = "a-staging-test-token-key-" + "t" * 16
    refused = runwire(
        "serve",
        data_dir=tmp_path,
        env={"RUNWIRE_ENV": "production", "RUNWIRE_TEST_TOKEN_KEY": test_key},
    )
    assert refused.returncode == 2
    said = " ".join(refused.stderr.split())
    assert "RUNWIRE_TEST_TOKEN_KEY must not be set in production" in said
    assert "RUNWIRE_ALLOWED_ORIGINS" in said
    assert test_key not in refused.stderr + refused.stdout


def test_production_needs_signing_keys_and_the_cli_makes_them(tmp_path: Path) -> None:
    production = {
        "RUNWIRE_ENV": "production",
        "RUNWIRE_ALLOWED_ORIGINS": "https://chat.example",
        "RUNWIRE_ARGON2_MEMORY_KIB": "19456",
        "RUNWIRE_AUTH_KEYS_DIR": str(tmp_path / "keys"),
    }
    refused = runwire("serve", "--port", "0", data_dir=tmp_path, env=production)
    assert refused.returncode == 2
    said = " ".join(refused.stderr.split())
    assert f"no access-token signing key in {tmp_path / 'keys'} (RUNWIRE_AUTH_KEYS_DIR)" in said
    assert "`RUNWIRE_ENV=production runwire auth rotate-keys`" in said
    assert "runwire is starting" not in refused.stdout
    # The command it names makes the key (its every case: tests/integration/test_cli_commands.py).
    made = runwire("auth", "rotate-keys", data_dir=tmp_path, env=production)
    assert made.returncode == 0, made.stderr
    (pem,) = (tmp_path / "keys").iterdir()
    assert pem.stat().st_mode & 0o777 == 0o600


def commands() -> list[tuple[list[str], Any]]:
    """Every command and group of the real ``runwire`` app with its path, from typer's own tree:
    a command added later is checked without anyone listing it here."""
    from typer.main import get_command

    from runwire.cli import app

    found: list[tuple[list[str], Any]] = []

    def walk(command: Any, path: list[str]) -> None:
        found.append((path, command))
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            if not sub.hidden:
                walk(sub, [*path, name])

    walk(get_command(app), [])
    return found


def flat(text: str) -> str:
    return " ".join(text.split())


# Prints, as JSON, the exit code, stdout and stderr of `runwire PATH... --help` for each path read
# from stdin, each run as `python -m runwire` runs it: every help from one process (a process per
# command cost a Python start each).
_EVERY_HELP = """
import contextlib, io, json, sys
from runwire.cli import app
shown = []
for path in json.load(sys.stdin):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            app([*path, "--help"], prog_name="python -m runwire")
            code = 0
        except SystemExit as exit:
            code = exit.code
    shown.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(shown))
"""


def test_every_help_shows_what_its_text_says(tmp_path: Path) -> None:
    every = commands()
    paths = [path for path, _ in every]
    assert ["serve"] in paths and ["user", "create"] in paths and ["usage", "import"] in paths
    # The top level as a person runs it; then every help (it too, the same) in one process.
    top = runwire("--help", data_dir=tmp_path)
    assert top.returncode == 0, top.stderr
    done = subprocess.run(
        [sys.executable, "-c", _EVERY_HELP],
        input=json.dumps(paths),
        capture_output=True,
        text=True,
        env={**os.environ, **BASE, "RUNWIRE_DATA_DIR": str(tmp_path), "COLUMNS": "200"},
        timeout=unit(60),
        check=True,
    )
    shown = json.loads(done.stdout)
    assert shown[paths.index([])] == [0, top.stdout, ""]
    for (path, command), (code, stdout, stderr) in zip(every, shown, strict=True):
        assert code == 0, (path, stderr)
        out = flat(stdout)
        # A flag takes no value: no metavar after it.
        assert "<bool>" not in out and "BOOLEAN" not in out, (path, stdout)
        assert "\\[" not in out, (path, stdout)  # markup's escape, shown as text
        if command.help:
            assert flat(command.help.split("\n\n")[0]) in out, (path, stdout)
        for param in command.params:
            if getattr(param, "help", None) and not getattr(param, "hidden", False):
                assert flat(param.help) in out, (path, param.name, stdout)
        if any(param.name == "data_dir" for param in command.params):
            assert "[env var: RUNWIRE_DATA_DIR; default: .runwire]" in out, path
    serve = flat(shown[paths.index(["serve"])][1])
    assert "Interface to listen on. [env var: RUNWIRE_HOST; default: 127.0.0.1]" in serve
    assert "Port to listen on. [env var: RUNWIRE_PORT; default: 8000]" in serve


def test_a_misspelled_variable_is_named_at_start_up(tmp_path: Path) -> None:
    typo = {"RUNWIRE_METRICS_TOKN": "s" * 40}
    warned = runwire("migrate", data_dir=tmp_path, env=typo)
    assert warned.returncode == 0, warned.stderr
    assert (
        "RUNWIRE_METRICS_TOKN is not a runwire setting (did you mean RUNWIRE_METRICS_TOKEN?); "
        "it is ignored"
    ) in warned.stderr
    production = {
        "RUNWIRE_ENV": "production",
        "RUNWIRE_ALLOWED_ORIGINS": "https://chat.example",
        "RUNWIRE_ARGON2_MEMORY_KIB": "19456",
    }
    refused = runwire("serve", "--port", "0", data_dir=tmp_path, env={**production, **typo})
    assert refused.returncode == 2
    said = " ".join(refused.stderr.split())
    assert (
        "RUNWIRE_METRICS_TOKN is not a runwire setting (did you mean RUNWIRE_METRICS_TOKEN?)"
        in said
    )
    assert "s" * 40 not in refused.stderr
