"""The LLM providers: the offline one's chunking and pacing, and the OpenAI-compatible one
against a real HTTP server on 127.0.0.1 (no mocks: real sockets, real SSE framing)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runwire.agents.llm import LLMRequest, OfflineProvider, OpenAICompatibleProvider
from runwire.errors import RunFailure, RunTimeout

pytestmark = pytest.mark.unit

KEY = "sk-test-0123456789abcdef0123"
DRAFT = "## Savings\n\nMove  classify-tickets to gpt-4o-mini:\nabout $7.96 a month. \n"


def _request(draft: str = DRAFT) -> LLMRequest:
    return LLMRequest(
        system="be brief",
        messages=[("user", "earlier"), ("assistant", "reply"), ("user", "how do I save?")],
        draft=draft,
        facts={"total_cost_usd": 49.61},
    )


async def _collect(chunks: AsyncIterator[str]) -> list[str]:
    return [chunk async for chunk in chunks]


# --- offline ----------------------------------------------------------------------------------


async def test_offline_streams_the_draft_exactly_in_chunks_of_a_few_words() -> None:
    chunks = await _collect(OfflineProvider(0).stream(_request()))
    assert "".join(chunks) == DRAFT
    assert len(chunks) == 4  # 11 words, 3 per chunk
    assert chunks[0] == "## Savings\n\nMove  "
    assert await _collect(OfflineProvider(0).stream(_request(""))) == []
    assert OfflineProvider(0, words_per_chunk=1).chunks("a b") == ["a ", "b"]


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(" \t\n\r\u00a0\u2003ab.$"), max_size=40),
    words=st.integers(min_value=1, max_value=5),
)
def test_offline_chunks_hold_the_text_exactly_a_few_words_each(text: str, words: int) -> None:
    chunks = OfflineProvider(0, words_per_chunk=words).chunks(text)
    assert "".join(chunks) == text
    # A chunk holds `words` pieces (the last one up to that many): a word with the whitespace
    # after it, or the whitespace the text starts with.
    pieces = [len(chunk.split()) for chunk in chunks]
    if text[:1].isspace():
        pieces[0] += 1
    assert all(1 <= n <= words for n in pieces)
    assert all(n == words for n in pieces[:-1])
    assert all(not chunk[0].isspace() for chunk in chunks[1:])


async def test_offline_without_delay_is_instant() -> None:
    started = time.perf_counter()
    chunks = await _collect(OfflineProvider(0).stream(_request("word " * 2000)))
    assert len(chunks) == 667
    assert time.perf_counter() - started < 0.5


async def test_offline_delay_paces_the_chunks() -> None:
    started = time.perf_counter()
    chunks = await _collect(OfflineProvider(15).stream(_request("a b c d e f g h i")))
    assert len(chunks) == 3
    assert time.perf_counter() - started >= 0.03  # two pauses, none before the first chunk


async def test_offline_stream_can_be_cancelled_even_without_delay() -> None:
    seen: list[str] = []

    async def consume() -> None:
        async for chunk in OfflineProvider(0).stream(_request("w " * 100_000)):
            seen.append(chunk)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 0 < len(seen) < 100


def test_offline_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="delay_ms"):
        OfflineProvider(-1)
    with pytest.raises(ValueError, match="words_per_chunk"):
        OfflineProvider(0, words_per_chunk=0)


# --- OpenAI-compatible, against a real local server -------------------------------------------


@dataclass
class Canned:
    """What the local server answers, and what it received."""

    status: int = 200
    events: list[bytes] = field(default_factory=list)
    body: bytes = b""
    hang: bool = False
    requests: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)


def sse(payload: Any) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {text}\n\n".encode()


def delta(text: str) -> bytes:
    return sse({"choices": [{"index": 0, "delta": {"content": text}}]})


@asynccontextmanager
async def llm_server(canned: Canned) -> AsyncIterator[str]:
    """An HTTP/1.1 server on 127.0.0.1 speaking just enough of /chat/completions."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode().split("\r\n")
            headers = {
                k.strip().lower(): v.strip()
                for k, v in (h.split(":", 1) for h in header_lines if ":" in h)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            canned.requests.append((request_line, headers, json.loads(body)))
            if canned.hang:
                await reader.read()  # until the client gives up and closes
                return
            reason = "OK" if canned.status < 400 else "Error"
            writer.write(
                f"HTTP/1.1 {canned.status} {reason}\r\nContent-Type: text/event-stream\r\n"
                "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
            )
            for piece in [canned.body] if canned.body else canned.events:
                writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1/"
    finally:
        server.close()
        await server.wait_closed()


async def test_streams_content_deltas_until_done() -> None:
    canned = Canned(
        events=[
            b": keep-alive comment\n\n",
            sse({"choices": [{"delta": {"role": "assistant"}}]}),
            delta("You could "),
            delta("save $7.96"),
            sse({"choices": []}),
            b"event: ping\n\n",
            delta(" a month."),
            sse("[DONE]"),
            delta(" never read"),
        ]
    )
    async with llm_server(canned) as url:
        provider = OpenAICompatibleProvider(url, KEY, "gpt-4o-mini", timeout_s=5)
        chunks = await _collect(provider.stream(_request()))
    assert chunks == ["You could ", "save $7.96", " a month."]
    [(request_line, headers, body)] = canned.requests
    assert request_line == "POST /v1/chat/completions HTTP/1.1"
    assert headers["authorization"] == f"Bearer {KEY}"
    assert body["model"] == "gpt-4o-mini" and body["stream"] is True
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "user", "user"]
    assert body["messages"][0]["content"] == "be brief"
    assert DRAFT in body["messages"][-1]["content"]
    assert '"total_cost_usd": 49.61' in body["messages"][-1]["content"]


async def test_a_stream_that_ends_without_done_is_still_complete() -> None:
    async with llm_server(Canned(events=[delta("a"), delta("b")])) as url:
        chunks = await _collect(OpenAICompatibleProvider(url, "", "m", 5).stream(_request()))
    assert chunks == ["a", "b"]


async def test_no_key_sends_no_authorization_header() -> None:
    canned = Canned(events=[sse("[DONE]")])
    async with llm_server(canned) as url:
        await _collect(OpenAICompatibleProvider(url, "", "m", 5).stream(_request()))
    assert "authorization" not in canned.requests[0][1]


async def test_http_error_names_the_status_but_not_the_key_or_body() -> None:
    echo = json.dumps({"error": {"message": f"bad key {KEY}"}}).encode()
    async with llm_server(Canned(status=401, body=echo)) as url:
        with pytest.raises(RunFailure) as info:
            await _collect(OpenAICompatibleProvider(url, KEY, "m", 5).stream(_request()))
    assert info.value.code == "llm_failed"
    assert info.value.message == "the LLM endpoint answered HTTP 401"
    assert KEY not in str(info.value)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (b"data: {not json\n\n", "malformed stream event"),
        (sse([1, 2]), "malformed stream event"),
        (sse({"error": {"message": f"quota for {KEY}"}}), "reported an error mid-stream"),
    ],
)
async def test_a_broken_stream_fails_without_echoing_it(event: bytes, message: str) -> None:
    async with llm_server(Canned(events=[delta("partial"), event])) as url:
        provider = OpenAICompatibleProvider(url, KEY, "m", 5)
        seen: list[str] = []
        with pytest.raises(RunFailure) as info:
            async for chunk in provider.stream(_request()):
                seen.append(chunk)
    assert seen == ["partial"]
    assert info.value.code == "llm_failed" and message in info.value.message
    assert KEY not in str(info.value)


async def test_an_unreachable_endpoint_is_a_failure() -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = OpenAICompatibleProvider(f"http://127.0.0.1:{port}", KEY, "m", 5)
    with pytest.raises(RunFailure) as info:
        await _collect(provider.stream(_request()))
    assert info.value.code == "llm_failed"
    assert info.value.message == "could not reach the LLM endpoint (ConnectError)"


async def test_a_silent_endpoint_times_out() -> None:
    async with llm_server(Canned(hang=True)) as url:
        provider = OpenAICompatibleProvider(url, KEY, "m", timeout_s=0.05)
        with pytest.raises(RunTimeout, match=r"did not answer within 0\.05s"):
            await _collect(provider.stream(_request()))


def test_configuration_is_checked_and_the_key_stays_out_of_repr() -> None:
    provider = OpenAICompatibleProvider("https://llm.example/v1", KEY, "gpt-4o-mini", 30)
    assert KEY not in repr(provider) and "llm.example" in repr(provider)
    assert provider.payload(_request())["stream"] is True
    with pytest.raises(ValueError, match="base_url"):
        OpenAICompatibleProvider("llm.example", KEY, "m", 1)
    with pytest.raises(ValueError, match="model"):
        OpenAICompatibleProvider("http://x", KEY, "", 1)
    with pytest.raises(ValueError, match="timeout_s"):
        OpenAICompatibleProvider("http://x", KEY, "m", 0)
