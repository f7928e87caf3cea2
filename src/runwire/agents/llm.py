"""The offline writer: how the offline agents stream the answer they composed.

Offline, the agents compute every figure themselves and the reporting agent writes a complete
answer; :class:`OfflineProvider` streams it in chunks, paced like a model, so the page shows the
same stream of ``text_delta`` events whichever path answers. A configured model does not rewrite
this draft: it chooses the tools and writes its own answer (``chat_model.py``, ``model_loop.py``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["BatchingProvider", "LLMProvider", "LLMRequest", "OfflineProvider"]


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """What the reporting agent asks the writer: stream ``draft`` (grounded in ``facts``)."""

    system: str
    messages: list[tuple[str, str]]  # (role, content), oldest first, ending with the question
    draft: str
    facts: dict[str, Any] = field(default_factory=dict)


class LLMProvider(Protocol):
    """A source of streamed answer text: what the reporting agent writes the answer with.

    What a run relies on of :meth:`stream` (a model's text, ``ChatModel.turn``'s
    :class:`~runwire.agents.chat_model.TextPiece` values, keeps the same promises; both are
    checked by tests/integration/test_llm_contract.py):

    - Every piece is a non-empty string, and the pieces joined are the answer, exactly.
    - A piece is handed over as soon as it is there: a source waiting for more has yielded
      what it had.
    - It never holds the event loop for long: a consumer's stop, cancellation or timeout takes
      effect within a few pieces, not at the end of the stream.
    - It is an async generator: ``aclose()`` ends it at once and lets go of what it holds (an
      HTTP stream); nothing comes after.
    - Streams of one source are independent: several may run at once.
    """

    name: str  # named in what the run says of the answer, and in its errors

    def stream(self, request: LLMRequest) -> AsyncIterator[str]:
        """Yield the answer in pieces, as they arrive (see the class's promises)."""
        ...


@runtime_checkable
class BatchingProvider(LLMProvider, Protocol):
    """A source that can also hand over the pieces that are ready at once, as lists."""

    def batches(self, request: LLMRequest) -> AsyncIterator[list[str]]:
        """Yield what :meth:`stream` would, grouped: each list's pieces are ready together
        (never an empty list); the same promises, a list for a piece."""
        ...


# Chunks the unpaced stream emits per turn of the event loop. 64 rather than 16: each turn's
# frames leave a socket in one write, and fewer, larger writes cost the server (a system call
# each) and the client (a read each) less per event (docs/benchmarks.md, "The embedded hot
# path"); a turn of 64 chunks is still well under a millisecond of the loop's time.
_YIELD_EVERY = 64


class OfflineProvider:
    """Streams the draft itself, a few words per chunk: deterministic, no network, no key.

    ``delay_ms`` paces the chunks like a real model would; 0 streams as fast as the consumer takes
    them (giving the event loop a turn every 64 chunks, so a stop request is seen at once).
    """

    name = "offline"

    def __init__(self, delay_ms: int = 0, words_per_chunk: int = 3) -> None:
        if delay_ms < 0:
            raise ValueError("delay_ms must be >= 0")
        if words_per_chunk < 1:
            raise ValueError("words_per_chunk must be >= 1")
        self._delay_s = delay_ms / 1000
        # Up to that many words a match, each with the whitespace after it (and any whitespace
        # the text starts with before the first), so the chunks join back to the text exactly.
        self._chunk = re.compile(r"(?:\S+\s*|\s+){1," + str(words_per_chunk) + "}")

    def chunks(self, text: str) -> list[str]:
        """The chunks :meth:`stream` yields for ``text``; they join back to ``text`` exactly."""
        chunks: list[str] = self._chunk.findall(text)
        return chunks

    async def stream(self, request: LLMRequest) -> AsyncIterator[str]:
        """Yield :meth:`chunks` of the draft, paced by ``delay_ms``."""
        async for batch in self.batches(request):
            for chunk in batch:
                yield chunk

    async def batches(self, request: LLMRequest) -> AsyncIterator[list[str]]:
        """:meth:`stream`'s chunks, as the lists of them that are ready at once: one chunk a
        list when paced, up to a turn's worth (64) a list when not. The reporting agent emits
        each list in one pass (``AgentContext.text_deltas``)."""
        chunks = self.chunks(request.draft)
        if self._delay_s:
            for i, chunk in enumerate(chunks):
                # Sleep between chunks, not before the first.
                await asyncio.sleep(self._delay_s if i else 0)
                yield [chunk]
            return
        for first in range(0, len(chunks), _YIELD_EVERY):
            # Unpaced: give the loop a turn every few chunks (so a stop is seen within
            # microseconds) rather than after each, so the socket writes go out in batches.
            await asyncio.sleep(0)
            yield chunks[first : first + _YIELD_EVERY]
