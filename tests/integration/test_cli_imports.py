"""``runwire`` loads what a command needs when it runs: the command line itself, and
``runwire check`` all the way through a walk, load nothing of the server (docs/architecture.md,
``cli/``): no web framework, database layer or server package, which would cost a second."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.ports import closed_port
from tests.timing import unit

# Runs `runwire check URL` in process as `python -m runwire` runs it, then prints, as JSON, its
# exit code and the modules it loaded.
_CHECK = """
import json, sys
from runwire.cli import app
loaded_by_the_cli = sorted(sys.modules)
try:
    app(["check", sys.argv[1], "--timeout", sys.argv[2]], prog_name="runwire")
except SystemExit as exit:
    code = exit.code
print(json.dumps([code, loaded_by_the_cli, sorted(sys.modules)]))
"""
SERVER = ("sqlalchemy", "starlette", "uvicorn", "alembic", "aiosqlite", "asyncpg", "redis")
SERVER_PACKAGES = ("runwire.app", "runwire.store", "runwire.transport", "runwire.runs")


def server_modules(modules: list[str]) -> list[str]:
    return [
        name for name in modules if name.split(".")[0] in SERVER or name.startswith(SERVER_PACKAGES)
    ]


def test_the_command_line_and_a_check_load_nothing_of_the_server() -> None:
    with closed_port() as port:
        done = subprocess.run(
            [sys.executable, "-c", _CHECK, f"http://127.0.0.1:{port}", str(unit(5))],
            capture_output=True,
            text=True,
            timeout=unit(60),
            check=True,
        )
    code, by_the_cli, by_the_check = json.loads(done.stdout.splitlines()[-1])
    assert code == 2, done.stderr  # nothing answers there: unreachable
    assert "runwire.probe.walk" in by_the_check  # the walk ran
    assert server_modules(by_the_cli) == []
    assert server_modules(by_the_check) == []
    assert not any(name.startswith("runwire.probe") for name in by_the_cli)
