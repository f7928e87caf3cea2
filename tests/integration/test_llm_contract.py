"""The contract of streamed answer text (runwire/agents/llm.py, ``LLMProvider``): what a run
relies on from whatever writes its answer, checked against each writer runwire has:

- ``offline``: ``OfflineProvider.stream``, the offline agents' writer;
- ``offline-batches``: its ``batches``, the lists flattened (the reporting agent's path);
- ``openai``: the text of ``OpenAIChatModel.turn`` (the ``ChatModel`` a configured model is),
  through the openai SDK to a server on loopback that speaks the exact wire format, replaying
  recorded responses (tests/model_server.py).

Each source gives the same answer whole, a stream that stalls after its first piece (the offline
writer: paced slower than the test; the server: silent after two events), and a stream far
longer than any test reads (the offline writer: a long draft; the server: the stalled one).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest

from runwire.agents.chat_model import RetryPolicy, TextPiece
from runwire.agents.llm import LLMRequest, OfflineProvider
from runwire.agents.openai_model import OpenAIChatModel
from tests.model_server import ReplayServer, recording, stall
from tests.timing import unit

RECORDED = "figures_answer.sse.http"


@dataclass
class Source:
    """One writer, as the suite drives it."""

    name: str  # the writer's own ``name``
    answer: str  # what a whole stream joins to
    streams: Callable[[int], list[AsyncIterator[str]]]  # that many streams of the answer
    stalled: Callable[[], AsyncIterator[str]]  # its first piece, then nothing for long
    endless: Callable[[], tuple[AsyncIterator[str], int]]  # a long stream and its piece count


def recorded_text(name: str) -> str:
    """The answer a recorded stream carries: its chunks' text, joined."""
    _, _, _, body = recording(name)
    text = []
    for event in body.decode().split("\n\n"):
        data = event.strip().removeprefix("data: ")
        if data and data != "[DONE]":
            for choice in json.loads(data)["choices"]:
                text.append(choice["delta"].get("content") or "")
    return "".join(text)


ANSWER = recorded_text(RECORDED)  # the same answer from every writer


def asked(draft: str) -> LLMRequest:
    return LLMRequest(system="", messages=[("user", "What does it cost?")], draft=draft)


async def flattened(batches: AsyncIterator[list[str]]) -> AsyncIterator[str]:
    try:
        async for batch in batches:
            for piece in batch:
                yield piece
    finally:
        await batches.aclose()  # type: ignore[attr-defined]


async def model_text(model: OpenAIChatModel) -> AsyncIterator[str]:
    """A turn's text pieces, as the model loop reads them (and closes the turn after)."""
    turn = model.turn([{"role": "user", "content": "What does it cost?"}], [])
    try:
        async for event in turn:
            if isinstance(event, TextPiece):
                yield event.text
    finally:
        await turn.aclose()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def server() -> Iterator[ReplayServer]:
    with ReplayServer.running() as running:
        yield running


@pytest.fixture(params=["offline", "offline-batches", "openai"])
async def source(request: pytest.FixtureRequest, server: ReplayServer) -> AsyncIterator[Source]:
    long_draft = "word " * 100_000
    if request.param in ("offline", "offline-batches"):
        writer = OfflineProvider(0)
        paced = OfflineProvider(delay_ms=int(unit(60) * 1000))  # its second piece: a minute on

        def of(provider: OfflineProvider, draft: str) -> AsyncIterator[str]:
            if request.param == "offline":
                return provider.stream(asked(draft))
            return flattened(provider.batches(asked(draft)))

        yield Source(
            writer.name,
            ANSWER,
            lambda count: [of(writer, ANSWER) for _ in range(count)],
            lambda: of(paced, ANSWER),
            lambda: (of(writer, long_draft), len(writer.chunks(long_draft))),
        )
        return
    async with OpenAIChatModel(
        base_url=server.base_url,
        api_key="sk-test",
        model="gpt-4o-mini",
        timeout_s=unit(30),
        retry=RetryPolicy(0),
    ) as model:

        def streams(count: int) -> list[AsyncIterator[str]]:
            server.play(*[RECORDED] * count)
            return [model_text(model) for _ in range(count)]

        def stalled() -> AsyncIterator[str]:
            server.play(stall(RECORDED))
            return model_text(model)

        pieces = sum(1 for _ in recorded_pieces(RECORDED))
        try:
            yield Source(model.name, ANSWER, streams, stalled, lambda: (stalled(), pieces))
        finally:
            server.release()  # a stalled response still open ends


def recorded_pieces(name: str) -> Iterator[str]:
    _, _, _, body = recording(name)
    for event in body.decode().split("\n\n"):
        data = event.strip().removeprefix("data: ")
        if data and data != "[DONE]":
            for choice in json.loads(data)["choices"]:
                if choice["delta"].get("content"):
                    yield choice["delta"]["content"]


async def test_the_pieces_are_text_that_joins_back_to_the_answer_exactly(source: Source) -> None:
    assert isinstance(source.name, str) and source.name
    (stream,) = source.streams(1)
    pieces = [piece async for piece in stream]
    assert len(pieces) > 1  # streamed, not handed over whole
    assert all(isinstance(piece, str) and piece for piece in pieces)
    assert "".join(pieces) == source.answer


async def test_a_piece_is_handed_over_while_the_rest_is_still_to_come(source: Source) -> None:
    stream = source.stalled()
    try:
        first = await asyncio.wait_for(anext(stream), unit(5))
        assert first and source.answer.startswith(first) and first != source.answer
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


async def test_a_consumers_timeout_ends_a_stalled_stream_at_once(source: Source) -> None:
    # What the run does (asyncio.timeout around the stream): the source waits without holding
    # the loop, so the timeout is on time however long the source would have waited.
    stream = source.stalled()
    got: list[str] = []
    began = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            async for piece in stream:
                got.append(piece)
    assert asyncio.get_running_loop().time() - began < unit(2)
    assert len(got) == 1
    await asyncio.wait_for(stream.aclose(), unit(2))  # type: ignore[attr-defined]


async def test_aclose_ends_a_stream_at_once_and_nothing_comes_after(source: Source) -> None:
    stream = source.stalled()
    assert await asyncio.wait_for(anext(stream), unit(5))
    await asyncio.wait_for(stream.aclose(), unit(2))  # type: ignore[attr-defined]
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    # The source is still whole: a new stream gives the whole answer.
    (again,) = source.streams(1)
    assert "".join([piece async for piece in again]) == source.answer


async def test_a_cancelled_consumer_stops_within_a_few_pieces(source: Source) -> None:
    # A source that never let the loop run would be read to its end before the cancellation
    # (or anything else) could happen.
    stream, total = source.endless()
    read = 0
    started = asyncio.Event()

    async def consume() -> None:
        nonlocal read
        try:
            async for _ in stream:
                read += 1
                started.set()
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), unit(5))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, unit(5))
    assert 1 <= read < total, (read, total)


async def test_streams_at_once_each_get_the_whole_answer(source: Source) -> None:
    first, second = source.streams(2)
    pieces: dict[int, list[str]] = {0: [], 1: []}
    done: set[int] = set()
    while len(done) < 2:  # in turns: a piece of one, then of the other
        for index, stream in enumerate((first, second)):
            if index in done:
                continue
            try:
                pieces[index].append(await asyncio.wait_for(anext(stream), unit(5)))
            except StopAsyncIteration:
                done.add(index)
    assert "".join(pieces[0]) == "".join(pieces[1]) == source.answer
