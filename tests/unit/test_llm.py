"""The offline writer's chunking and pacing (the model that drives the tools: test_model.py and
test_chat_model.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runwire.agents.llm import LLMRequest, OfflineProvider

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
