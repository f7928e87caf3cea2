"""Input no database could keep gets a clear error, the same on SQLite and PostgreSQL.

PostgreSQL refuses the NUL character in text and numbers past its column types where SQLite
would take them; runwire refuses both at the edge on every backend, so a client gets
``invalid_field`` (WebSocket), 422 (HTTP) or a rejected import line, never ``internal``, and the
connection goes on working.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from tests.e2e.wire import Session

NUL = "\u0000"
MAX_INT32 = 2**31 - 1


async def test_nul_and_oversized_numbers_in_frames_get_invalid_field(
    backend_url: str, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(backend_url)
    sock = await session.connect()
    for frame, field in [
        ({"type": "user_message", "content": f"hello{NUL}world"}, "content"),
        (
            {"type": "user_message", "content": "hi", "client_message_id": f"c{NUL}"},
            "client_message_id",
        ),
        ({"type": "user_message", "content": "hi", "thread_id": f"thr_{NUL}"}, "thread_id"),
        ({"type": "get_thread_history", "thread_id": f"thr_{NUL}"}, "thread_id"),
        ({"type": "stop_agent", "run_id": f"run_{NUL}"}, "run_id"),
        ({"type": "resume", "run_id": f"run_{NUL}", "after_seq": 0}, "run_id"),
        ({"type": "resume", "run_id": "run_x", "after_seq": MAX_INT32 + 1}, "after_seq"),
        ({"type": "ping", "request_id": f"r{NUL}"}, "request_id"),
    ]:
        await sock.ws.send(json.dumps(frame))
        reply = await sock.recv()
        assert reply["type"] == "error" and reply["code"] == "invalid_field", (frame, reply)
        assert f"'{field}'" in reply["message"], reply
        assert "request_id" not in reply  # an invalid request_id is not echoed
    # Nothing was stored, and the socket still works.
    assert (await session.get("/api/threads")).json()["threads"] == []
    ack = await sock.ask("hello world", request_id="after")
    assert ack["request_id"] == "after"
    events = await sock.run_to_end(ack["run_id"])
    assert events[-1]["type"] == "agent_completed"
    await sock.close()


async def test_nul_and_oversized_numbers_over_http_get_422(
    backend_url: str, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(backend_url)
    sock = await session.connect()
    ack = await sock.ask("hello")
    await sock.run_to_end(ack["run_id"])
    await sock.close()
    nul = quote(NUL)
    for path in [
        f"/api/threads/thr_{nul}/messages",
        f"/api/runs/run_{nul}",
        f"/api/runs/run_{nul}/events",
        f"/api/runs/{ack['run_id']}/events?after={MAX_INT32 + 1}",
    ]:
        r = await session.get(path)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["code"] == "invalid_input"
    assert "NUL" in (await session.get(f"/api/runs/run_{nul}")).json()["detail"]
    r = await session.http.get(
        f"/api/runs/{ack['run_id']}/events",
        headers={
            **session.auth,
            "Accept": "text/event-stream",
            "Last-Event-ID": f"e:{MAX_INT32 + 1}",
        },
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid_input"
    login = await session.http.post(
        "/auth/login", json={"email": f"a{NUL}@example.com", "password": "whatever1"}
    )
    assert login.status_code == 422 and "NUL" in login.json()["detail"]
    register = await session.http.post(
        "/auth/register", json={"email": f"a{NUL}@example.com", "password": "whatever1"}
    )
    assert register.status_code == 422
    # The largest position is a position like any other: past this run's end, so refused.
    r = await session.get(f"/api/runs/{ack['run_id']}/events?after={MAX_INT32}")
    assert r.status_code == 409 and r.json()["reason"] == "position_unknown"


async def test_an_import_rejects_the_lines_no_database_could_keep(
    backend_url: str, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(backend_url)
    good = {
        "timestamp": "2026-11-01T10:00:00Z",
        "provider": "openai",
        "model": "gpt-4o",
        "prompt_tokens": MAX_INT32,
        "completion_tokens": 0,
        "latency_ms": 850,
        "feature": "p" * 200,
    }
    lines = [
        good,
        {**good, "model": f"gpt{NUL}4o", "cost_usd": 1},
        {**good, "provider": "p" * 101, "cost_usd": 1},
        {**good, "prompt_tokens": MAX_INT32 + 1},
        {**good, "feature": "f" * 201},
    ]
    body = "\n".join(json.dumps(line) for line in lines)
    r = await session.post(
        "/api/usage/import", content=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["imported"] == 1
    assert report["rejected"] == [
        {"line": 2, "error": "model must not contain the NUL character (U+0000)"},
        {"line": 3, "error": "provider is longer than 100 characters"},
        {"line": 4, "error": f"prompt_tokens must be at most {MAX_INT32}, got {MAX_INT32 + 1}"},
        {"line": 5, "error": "feature is longer than 200 characters"},
    ]
    assert (await session.get("/api/usage/summary")).json() == {"records": 1}


async def test_a_line_that_once_lost_a_whole_import_is_rejected_alone(
    backend_url: str, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(backend_url)
    good = json.dumps(
        {
            "timestamp": "2026-11-01T10:00:00Z",
            "provider": "openai",
            "model": "gpt-4o",
            "prompt_tokens": 10,
            "completion_tokens": 1,
            "latency_ms": 850,
        }
    )
    # Each of these answered 500 and kept none of the good lines (issue 12, finding 3).
    for bad, error in [
        ('{"x":' + "[" * 5000 + "]" * 5000 + "}", "invalid JSON: nested too deeply"),
        (good[:-1] + ', "latency_ms": ' + "9" * 5000 + "}", "invalid JSON: a number longer"),
        (good[:-1] + ', "model": "gpt-4o\\ud800"}', "model must be valid Unicode"),
    ]:
        r = await session.post(
            "/api/usage/import",
            content="\n".join([good, bad, good.replace("10:00:00", "10:00:01")]),
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["imported"] == 2
        [rejection] = r.json()["rejected"]
        assert rejection["line"] == 2 and rejection["error"].startswith(error), rejection
