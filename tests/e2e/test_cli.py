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
    again = runwire(
        "user",
        "create",
        "ada@example.com",
        "--password-stdin",
        data_dir=tmp_path,
        stdin="correct horse\n",
    )
    assert again.returncode == 1 and "already registered" in again.stderr
    short = runwire(
        "user", "create", "b@example.com", "--password-stdin", data_dir=tmp_path, stdin="short\n"
    )
    assert short.returncode == 1 and "at least 8" in short.stderr
    # The HTTP API's rule (422 there): refused before the password is asked for, in one line.
    for bad in ("not-an-email", "Ada <ada@example.com>"):
        refused = runwire(
            "user", "create", bad, "--password-stdin", data_dir=tmp_path, stdin="correct horse\n"
        )
        assert refused.returncode == 1, (bad, refused.stdout)
        assert refused.stderr.startswith("error: email is not a valid address: "), refused.stderr
        assert refused.stderr.count("\n") == 1 and refused.stdout == "", refused.stderr

    good = {
        "timestamp": "2026-11-01T10:00:00Z",
        "provider": "openai",
        "model": "gpt-4o",
        "prompt_tokens": 1000,
        "completion_tokens": 200,
        "latency_ms": 850,
    }
    data = tmp_path / "calls.jsonl"
    data.write_text(
        "\n".join(
            [
                json.dumps(good),
                "not json",
                json.dumps({**good, "latency_ms": -3}),
                # Each of these three once stopped the whole import with a traceback.
                '{"x":' + "[" * 5000 + "]" * 5000 + "}",
                json.dumps(good)[:-1] + ', "latency_ms": ' + "9" * 5000 + "}",
                json.dumps(good)[:-1] + ', "feature": "\\ud800"}',
                json.dumps({**good, "timestamp": "2026-11-01T10:00:01Z"}),
                "",
            ]
        )
    )
    imported = runwire("usage", "import", str(data), "--user", "ada@example.com", data_dir=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "imported 2 records" in imported.stdout
    assert (
        "line 2:" in imported.stderr
        and "line 3:" in imported.stderr
        and "latency_ms" in imported.stderr
    )
    assert "line 4: invalid JSON: nested too deeply" in imported.stderr
    assert "line 5: invalid JSON: a number longer than 4300 digits" in imported.stderr
    assert "line 6: feature must be valid Unicode" in imported.stderr

    csv_file = tmp_path / "calls.csv"
    csv_file.write_text("timestamp,provider,model\n2026-11-01T10:00:00Z,openai,gpt-4o\n")
    with_errors = runwire(
        "usage", "import", str(csv_file), "--user", "ada@example.com", data_dir=tmp_path
    )
    assert with_errors.returncode == 1 and "prompt_tokens" in with_errors.stderr

    odd = tmp_path / "calls[1].txt"
    odd.write_text("x")
    refused = runwire("usage", "import", str(odd), "--user", "ada@example.com", data_dir=tmp_path)
    # In a file's terms (its name), not an upload's (a content type).
    assert refused.returncode == 1 and refused.stderr == (
        "error: cannot import 'calls[1].txt': a usage file is JSON Lines, named *.jsonl "
        "(or *.ndjson), or CSV, named *.csv\n"
    )

    nobody = runwire("usage", "sample", "--user", "nobody@example.com", data_dir=tmp_path)
    assert nobody.returncode == 1 and "runwire user create" in nobody.stderr
    sample = runwire("usage", "sample", "--user", "ada@example.com", data_dir=tmp_path)
    assert sample.returncode == 0 and "loaded" in sample.stdout
    loaded = int(sample.stdout.split()[1])
    assert f"({loaded} new, 0 already present; batch smp_" in sample.stdout
    twice = runwire("usage", "sample", "--user", "ada@example.com", data_dir=tmp_path)
    # Loaded once: the second time names the batch that holds it.
    assert (
        f"loaded {loaded} sample records for ada@example.com (0 new, {loaded} already present; batch smp_"
        in twice.stdout
    )

    # The same file again adds nothing; the batches list what each import added.
    again = runwire("usage", "import", str(data), "--user", "ada@example.com", data_dir=tmp_path)
    assert "imported 2 records" in again.stdout and "(0 new, 2 already present)" in again.stdout
    listed = runwire("usage", "batches", "--user", "ada@example.com", data_dir=tmp_path)
    assert listed.returncode == 0, listed.stderr
    [sample_line, file_line] = listed.stdout.strip().splitlines()
    assert sample_line.startswith("smp_") and f"{loaded} records  sample" in sample_line
    assert file_line.startswith("imp_") and "2 records  import" in file_line
    assert file_line.endswith("calls.jsonl")

    neither = runwire("usage", "delete", "--user", "ada@example.com", data_dir=tmp_path)
    assert neither.returncode == 2 and "--batch ID or --all" in neither.stderr
    unknown = runwire(
        "usage", "delete", "--user", "ada@example.com", "--batch", "imp_x", data_dir=tmp_path
    )
    assert unknown.returncode == 1 and "no such usage batch" in unknown.stderr
    one = runwire(
        "usage",
        "delete",
        "--user",
        "ada@example.com",
        "--batch",
        file_line.split()[0],
        data_dir=tmp_path,
    )
    assert one.returncode == 0 and "deleted 2 records" in one.stdout
    everything = runwire("usage", "delete", "--user", "ada@example.com", "--all", data_dir=tmp_path)
    assert f"deleted {loaded} records (all usage data of ada@example.com)" in everything.stdout
    empty = runwire("usage", "batches", "--user", "ada@example.com", data_dir=tmp_path)
    assert "ada@example.com has no usage batches" in empty.stdout


def test_migrate_and_refusal_of_a_bad_production_config(tmp_path: Path) -> None:
    migrated = runwire("migrate", data_dir=tmp_path)
    assert migrated.returncode == 0 and "revision 0007" in migrated.stdout
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
    none = runwire("auth", "keys", data_dir=tmp_path, env=production)
    assert none.returncode == 0 and "no keys in" in none.stdout
    made = runwire("auth", "rotate-keys", data_dir=tmp_path, env=production)
    assert made.returncode == 0, made.stderr
    kid = made.stdout.split()[3]
    assert made.stdout.startswith(f"new signing key {kid} (EdDSA) in {tmp_path / 'keys'}")
    (pem,) = (tmp_path / "keys").iterdir()
    assert pem.name == f"{kid}.pem" and pem.stat().st_mode & 0o777 == 0o600
    second = runwire(
        "auth", "rotate-keys", "--algorithm", "ES256", data_dir=tmp_path, env=production
    )
    assert second.returncode == 0, second.stderr
    assert f"{kid} verifies the tokens it signed until " in second.stdout
    listed = runwire("auth", "keys", data_dir=tmp_path, env=production).stdout.splitlines()
    assert [line.split()[1:3] for line in listed] == [["ES256", "signing"], ["EdDSA", "published"]]
    assert listed[1].startswith(kid) and " retires " in listed[1]


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
