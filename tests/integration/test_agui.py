"""``POST /ag-ui`` on the real app behind a listening socket: what it refuses, and that its runs
are ordinary runs (stored, stopped from the user's socket, going on when the client leaves). The
official client's whole thread is tests/e2e/test_agui.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from runwire.protocol.inbound import UserMessage
from runwire.transport.body_limit import AGUI_BODY_BYTES
from runwire.transport.ws_protocol import RunwireWebSocketProtocol
from tests.conftest import test_settings
from tests.integration.test_event_stream import logged_in, serving, until
from tests.timing import unit

QUESTION = "Where can we cut our LLM costs?"


def agui_body(thread_id: str, run_id: str, question: str = QUESTION) -> dict[str, Any]:
    return {
        "threadId": thread_id,
        "runId": run_id,
        "messages": [{"id": f"q-{run_id}", "role": "user", "content": question}],
        "tools": [],
        "context": [],
        "state": {},
        "forwardedProps": {},
    }


def events_of(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return [
        json.loads(line.removeprefix("data: "))
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]


async def second_user(client: httpx.AsyncClient) -> dict[str, str]:
    creds = {"email": "bob@example.com", "password": "correct horse battery"}
    assert (await client.post("/auth/register", json=creds)).status_code == 201
    body = (await client.post("/auth/login", json=creds)).json()
    return {"Authorization": f"Bearer {body['access_token']}"}


async def test_a_request_it_cannot_take_is_refused_with_a_clear_error_and_stores_nothing(
    tmp_path: Path,
) -> None:
    async with serving(test_settings(tmp_path)) as (client, _services):
        _user, auth = await logged_in(client)
        good = agui_body("t-1", "r-1")

        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            refused = await client.post("/ag-ui", json=good, headers=headers)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
        # Authentication comes first: a bad body without a token is a 401 too.
        assert (await client.post("/ag-ui", content=b"{")).status_code == 401

        cases: list[tuple[dict[str, Any], str]] = [
            ({"content": b"{not json"}, "body: not valid JSON"),
            ({"json": {"threadId": "t-1"}}, "runId: Field required; messages: Field required"),
            (
                {"json": {**good, "messages": []}},
                'messages: Value error, no message with role "user"',
            ),
            (
                {"json": {**good, "threadId": "../x"}},
                "threadId: Value error, 1 to 40 of the characters",
            ),
        ]
        for request, says in cases:
            refused = await client.post(
                "/ag-ui", headers={**auth, "Content-Type": "application/json"}, **request
            )
            assert refused.status_code == 422, refused.text
            assert refused.json()["code"] == "invalid_input"
            assert says in refused.json()["detail"]

        big = {**good, "forwardedProps": {"pad": "x" * AGUI_BODY_BYTES}}
        refused = await client.post("/ag-ui", json=big, headers=auth)
        assert refused.status_code == 413 and refused.json()["code"] == "too_large"

        assert (await client.get("/api/threads", headers=auth)).json() == {"threads": []}


async def test_another_users_thread_is_refused_with_run_error_and_nothing_of_it_leaks(
    tmp_path: Path,
) -> None:
    async with serving(test_settings(tmp_path)) as (client, services):
        ada_id, ada = await logged_in(client)
        bob = await second_user(client)
        said = events_of(await client.post("/ag-ui", json=agui_body("ada-1", "r-1"), headers=ada))
        assert said[-1]["type"] == "RUN_FINISHED"
        # And a thread she started on her socket, under runwire's own id.
        on_socket = await services.chat.submit(ada_id, UserMessage(content="hello"))
        await until(lambda: not services.executor.is_active(on_socket.run_id), unit(10))
        ada_threads = {
            thread_id: (await client.get(f"/api/threads/{thread_id}/messages", headers=ada)).json()
            for thread_id in ("ada-1", on_socket.thread_id)
        }
        for thread_id in ada_threads:
            for run_id in ("r-1", "r-9"):  # her runId too: it is nothing of Bob's
                answer = await client.post(
                    "/ag-ui", json=agui_body(thread_id, run_id, "Show me the answer"), headers=bob
                )
                assert events_of(answer) == [
                    {"type": "RUN_ERROR", "message": "no such thread", "code": "not_found"}
                ]
        assert (await client.get("/api/threads", headers=bob)).json() == {"threads": []}
        for thread_id, stored in ada_threads.items():
            found = await client.get(f"/api/threads/{thread_id}/messages", headers=ada)
            assert found.json() == stored

        # Her runId sent again in another thread of hers starts nothing either.
        again = await client.post("/ag-ui", json=agui_body("ada-2", "r-1"), headers=ada)
        [refused] = events_of(again)
        assert refused["type"] == "RUN_ERROR" and refused["code"] == "run_id_reused"
        listed = (await client.get("/api/threads", headers=ada)).json()["threads"]
        assert sorted(t["id"] for t in listed) == sorted(ada_threads)


async def test_a_run_goes_on_when_its_client_leaves_and_the_same_request_reads_it_again(
    tmp_path: Path,
) -> None:
    # Text chunks every 5 ms: the run is still going when the client leaves.
    async with serving(test_settings(tmp_path, offline_delay_ms=5)) as (client, services):
        _user, auth = await logged_in(client)
        body = agui_body("t-1", "r-1")
        seen: list[dict[str, Any]] = []
        async with client.stream("POST", "/ag-ui", json=body, headers=auth) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line.removeprefix("data: ")))
                if len(seen) == 3:
                    break
        run_id = seen[0]["metadata"]["runwire"]["run_id"]
        assert services.executor.is_active(run_id)  # the client left; the run did not

        # The same request again (a client retrying) starts nothing: it reads the same run,
        # from its start to its end.
        whole = events_of(await client.post("/ag-ui", json=body, headers=auth))
        assert whole[:3] == seen
        assert whole[-1]["type"] == "RUN_FINISHED"
        await until(lambda: not services.executor.is_active(run_id), unit(10))
        messages = (await client.get("/api/threads/t-1/messages", headers=auth)).json()
        assert [m["role"] for m in messages["messages"]] == ["user", "assistant"]
        assert messages["messages"][0]["client_message_id"] == "r-1"
        events = (await client.get(f"/api/runs/{run_id}/events", headers=auth)).json()["events"]
        assert events[-1]["type"] == "agent_completed"
        assert events[-1]["message_id"] == whole[-1]["result"]["message_id"]


async def open_socket(client: httpx.AsyncClient, auth: dict[str, str]) -> ClientConnection:
    """The user's WebSocket to the same server, opened as a browser does (a ticket)."""
    ticket = (await client.post("/api/ws-ticket", headers=auth)).json()["ticket"]
    url = str(client.base_url).replace("http://", "ws://") + f"/ws?ticket={ticket}"
    ws = await connect(url, open_timeout=unit(5), max_queue=None)
    assert json.loads(await ws.recv())["type"] == "connection_established"
    return ws


async def next_frame(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(unit(2)):
        frame: dict[str, Any] = json.loads(await ws.recv())
    return frame


async def frames_until_pong(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every frame the socket holds, up to the answer to a ping sent now (frames are handled in
    order, so the pong comes after any reply to what was sent before it)."""
    await ws.send(json.dumps({"type": "ping", "request_id": "last"}))
    frames: list[dict[str, Any]] = []
    while (frame := await next_frame(ws))["type"] != "pong":
        frames.append(frame)
    assert frame["request_id"] == "last"
    return frames


async def test_a_run_stopped_from_the_users_socket_finishes_cancelled_and_no_one_else_can_stop_it(
    tmp_path: Path,
) -> None:
    # Text chunks every 50 ms: the run is still going when the stops are sent.
    settings = test_settings(tmp_path, offline_delay_ms=50)
    async with serving(settings, ws=RunwireWebSocketProtocol) as (client, _services):
        _ada_id, ada = await logged_in(client)
        bob = await second_user(client)
        ada_ws, bob_ws = await open_socket(client, ada), await open_socket(client, bob)
        said: list[dict[str, Any]] = []
        contents_after_bobs_stop = 0
        stop_sent = False
        async with client.stream(
            "POST", "/ag-ui", json=agui_body("t-1", "r-1"), headers=ada
        ) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                said.append(json.loads(line.removeprefix("data: ")))
                if said[-1]["type"] != "TEXT_MESSAGE_CONTENT" or stop_sent:
                    continue
                run_id = said[0]["metadata"]["runwire"]["run_id"]
                stop = {"type": "stop_agent", "run_id": run_id}
                if contents_after_bobs_stop == 0:
                    # Another user's stop is refused as if the run did not exist...
                    await bob_ws.send(json.dumps({**stop, "request_id": "bob-stop"}))
                    refused = await next_frame(bob_ws)
                    assert refused["type"] == "error" and refused["code"] == "not_found"
                    assert refused["request_id"] == "bob-stop"
                    assert run_id not in refused["message"]
                    contents_after_bobs_stop = 1
                elif contents_after_bobs_stop == 1:
                    # ...and the run goes on: more text came. Now Ada stops it from her socket.
                    await ada_ws.send(json.dumps({**stop, "request_id": "ada-stop"}))
                    stop_sent = True
        assert stop_sent
        # The stream ends with the run, cancelled, and nothing after it.
        ends = [i for i, e in enumerate(said) if e["type"] in ("RUN_FINISHED", "RUN_ERROR")]
        assert ends == [len(said) - 1]
        assert said[-1]["outcome"] == {"type": "cancelled"}
        assert said[-1]["result"] == {"code": "stopped", "message": "stopped at the user's request"}
        assert said[-2]["type"] == "STEP_FINISHED"  # the open step was closed before the end

        # Her socket saw the run as it happened, to its agent_stopped; the stop had no reply.
        on_socket = await frames_until_pong(ada_ws)
        assert not [f for f in on_socket if f["type"] == "error" or "request_id" in f], on_socket
        assert all(frame.get("run_id") == run_id for frame in on_socket), on_socket
        assert [f["seq"] for f in on_socket] == list(range(1, len(on_socket) + 1))
        assert sum(f["type"] == "text_delta" for f in on_socket) == sum(
            e["type"] == "TEXT_MESSAGE_CONTENT" for e in said
        )
        last = on_socket[-1]
        assert last["type"] == "agent_stopped" and last["parent_agent"] is None
        assert last["code"] == "stopped"
        # Bob's socket got nothing of her run, before or after.
        assert await frames_until_pong(bob_ws) == []

        run = (await client.get(f"/api/runs/{run_id}", headers=ada)).json()["run"]
        assert run["status"] == "cancelled" and run["last_seq"] == last["seq"]
        stored = (await client.get(f"/api/runs/{run_id}/events", headers=ada)).json()["events"]
        assert stored == on_socket
        await ada_ws.close()
        await bob_ws.close()


async def test_a_logout_cuts_an_agui_stream_and_the_run_goes_on(tmp_path: Path) -> None:
    async with serving(test_settings(tmp_path, offline_delay_ms=50)) as (client, services):
        user_id, auth = await logged_in(client)
        # A logout ends the session's streams: the client is told the run goes on elsewhere.
        said: list[dict[str, Any]] = []
        async with client.stream(
            "POST", "/ag-ui", json=agui_body("t-1", "r-2"), headers=auth
        ) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                said.append(json.loads(line.removeprefix("data: ")))
                if len(said) == 1:
                    assert (await client.post("/auth/logout", headers=auth)).status_code == 204
        assert said[0]["type"] == "RUN_STARTED"
        assert said[-1]["type"] == "RUN_ERROR" and said[-1]["code"] == "stream_ended"
        assert await services.chat.stop(user_id, said[0]["metadata"]["runwire"]["run_id"])


async def test_a_front_end_at_an_allowed_origin_may_call_it_from_the_browser(
    tmp_path: Path,
) -> None:
    front = "https://app.example.com"
    settings = test_settings(tmp_path, allowed_origins=[front])
    async with serving(settings) as (client, _services):
        _user, auth = await logged_in(client)
        asks = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        preflight = await client.options("/ag-ui", headers={"Origin": front, **asks})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == front
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        answer = await client.post(
            "/ag-ui", json=agui_body("t-1", "r-1"), headers={**auth, "Origin": front}
        )
        assert answer.headers["access-control-allow-origin"] == front
        assert events_of(answer)[-1]["type"] == "RUN_FINISHED"

        # Another origin is refused, and the rest of the API is not opened to any.
        other = await client.options(
            "/ag-ui", headers={"Origin": "https://evil.example.com", **asks}
        )
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers
        threads = await client.get("/api/threads", headers={**auth, "Origin": front})
        assert "access-control-allow-origin" not in threads.headers
