"""AG-UI's official client against the running server: ``@ag-ui/client`` 1.0's ``HttpAgent``
(from the npm registry, tests/agui/package-lock.json), run by Node, asks a thread of two
questions at ``POST /ag-ui``. Its event verifier checks every stream it reads; the runs are
ordinary runs, seen on the user's WebSocket and stored in the thread the client named.

``make test`` installs the client (``npm ci`` in tests/agui) when Node and npm are there. Without
them the test skips, saying how to run it; in CI (``CI=true``) it fails instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.wire import Session
from tests.services import missing
from tests.timing import unit

CLIENT_DIR = Path(__file__).parent.parent / "agui"
HOW = (
    "install Node.js and npm (apt-get install nodejs npm), then `make test` installs the "
    "client (or run `npm ci` in tests/agui)"
)
QUESTIONS = ["Where can we cut our LLM costs?", "Which models are slowest at p95?"]


def node() -> str:
    """Node, with the AG-UI client installed (a skip, or in CI a failure, otherwise)."""
    found = shutil.which("node")
    if found is None:
        missing("node is not installed", HOW)
    if not (CLIENT_DIR / "node_modules" / "@ag-ui" / "client").is_dir():
        missing("the npm package @ag-ui/client is not installed in tests/agui", HOW)
    return found


async def ask(base: str, token: str, questions: list[str]) -> dict[str, Any]:
    """What ``tests/agui/ask.mjs`` saw asking ``questions`` in one new thread."""
    proc = await asyncio.create_subprocess_exec(
        node(),  # checked again: ask may be called without the fixture
        "ask.mjs",
        cwd=CLIENT_DIR,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AGUI_URL": f"{base}/ag-ui",
            "AGUI_TOKEN": token,
            "AGUI_QUESTIONS": json.dumps(questions),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(unit(60)):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    seen: dict[str, Any] = json.loads(out)
    return seen


@pytest.fixture
async def user(server_url: str) -> AsyncIterator[Session]:
    node()  # skip (or in CI fail) before making a user the test cannot use
    session = await Session.new(server_url)
    try:
        assert (await session.post("/api/usage/sample")).status_code == 201
        yield session
    finally:
        await session.aclose()


async def test_the_official_client_asks_a_thread_of_two_questions(user: Session) -> None:
    sock = await user.connect()  # the user's own socket, open while the client asks
    seen = await ask(user.base, user.access, QUESTIONS)

    thread_id = seen["threadId"]
    first, second = seen["runs"]
    for run, question in zip(seen["runs"], QUESTIONS, strict=True):
        # runAgent resolved: the client's verifier found nothing wrong in the stream.
        assert run["error"] is None, run["error"]
        assert run["runError"] is None
        types = run["types"]
        assert types[0] == "RUN_STARTED" and types[-1] == "RUN_FINISHED"
        assert run["started"]["threadId"] == thread_id
        for kind in (
            "STEP_STARTED",
            "STEP_FINISHED",
            "REASONING_MESSAGE_CONTENT",
            "TOOL_CALL_START",
            "TOOL_CALL_ARGS",
            "TOOL_CALL_END",
            "TOOL_CALL_RESULT",
            "TEXT_MESSAGE_CONTENT",
        ):
            assert kind in types, (question, kind)
        assert run["steps"][0] == "triage" and run["steps"][-1] == "reporting"
        assert "tool" in run["roles"] and "reasoning" in run["roles"]
        assert run["answer"].startswith("## ")

    # Ordinary runs: the user's socket saw them, whole, and the thread the client named holds
    # both questions and the answers the client assembled, in order.
    for run in seen["runs"]:
        ids = run["started"]["metadata"]["runwire"]
        events = await sock.run_to_end(ids["run_id"])
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert events[-1]["type"] == "agent_completed"
        assert events[-1]["message_id"] == run["finished"]["result"]["message_id"]
        assert "".join(e["delta"] for e in events if e["type"] == "text_delta") == run["answer"]
    threads = (await user.get("/api/threads")).json()["threads"]
    assert [t["id"] for t in threads] == [thread_id]
    stored = (await user.get(f"/api/threads/{thread_id}/messages")).json()["messages"]
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", QUESTIONS[0]),
        ("assistant", first["answer"]),
        ("user", QUESTIONS[1]),
        ("assistant", second["answer"]),
    ]
    # The client sent the whole conversation it held; only its last question was read.
    assert second["requestBytes"] > first["requestBytes"]
