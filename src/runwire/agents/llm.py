"""The LLM port: how the agents ask a language model to write, and the two providers.

The agents compute every figure themselves and write a complete draft answer; the LLM is asked only
to rewrite that draft from the facts. So the offline provider can stream the draft as it is and the
answer stays correct and deterministic, while an OpenAI-compatible endpoint, when configured,
improves the prose without being trusted with the arithmetic.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from runwire.errors import RunFailure, RunTimeout

__all__ = ["LLMProvider", "LLMRequest", "OfflineProvider", "OpenAICompatibleProvider"]

_LLM_FAILED = "llm_failed"
_REWRITE_INSTRUCTION = (
    "Rewrite the draft answer below for the user. Keep its Markdown structure, every number, "
    "model name and date exactly as given, and add no figure that is not in the facts."
)


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """What the agents ask of an LLM: rewrite ``draft`` (grounded in ``facts``) for the chat."""

    system: str
    messages: list[tuple[str, str]]  # (role, content), oldest first, ending with the question
    draft: str
    facts: dict[str, Any] = field(default_factory=dict)


class LLMProvider(Protocol):
    """A source of streamed answer text."""

    name: str

    def stream(self, request: LLMRequest) -> AsyncIterator[str]:
        """Yield the answer in chunks, as they arrive."""
        ...


_YIELD_EVERY = 16


class OfflineProvider:
    """Streams the draft itself, a few words per chunk: deterministic, no network, no key.

    ``delay_ms`` paces the chunks like a real model would; 0 streams as fast as the consumer takes
    them (each chunk still yields to the event loop, so a stop request is seen at once).
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
        for i, chunk in enumerate(self.chunks(request.draft)):
            if self._delay_s:
                # Sleep between chunks, not before the first.
                await asyncio.sleep(self._delay_s if i else 0)
            elif i % _YIELD_EVERY == 0:
                # Unpaced: give the loop a turn every few chunks (so a stop is seen within
                # microseconds) rather than after each, so the socket writes go out in batches.
                await asyncio.sleep(0)
            yield chunk


class OpenAICompatibleProvider:
    """Streams from an OpenAI-compatible ``/chat/completions`` endpoint (Server-Sent Events).

    Failures raise :class:`RunFailure` with code ``llm_failed`` (or :class:`RunTimeout`) and a
    message naming only the status or the kind of failure: never the API key, and never the
    response body, which some gateways fill with the request's headers.
    """

    name = "openai-compatible"

    def __init__(self, base_url: str, api_key: str, model: str, timeout_s: float) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http(s) URL")
        if not model:
            raise ValueError("model must be named")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self._model = model
        self._timeout_s = timeout_s
        # Building a TLS context (loading the CA bundle) takes tens of milliseconds: once, not
        # once per answer. Each call still opens its own client, so nothing outlives a call.
        self._tls = httpx.create_ssl_context()

    def __repr__(self) -> str:  # the key must not reach logs through a repr
        return f"OpenAICompatibleProvider(url={self._url!r}, model={self._model!r})"

    def payload(self, request: LLMRequest) -> dict[str, Any]:
        """The JSON body sent for ``request``."""
        facts = json.dumps(request.facts, ensure_ascii=False, default=str)
        messages = [{"role": "system", "content": request.system}]
        messages += [{"role": role, "content": content} for role, content in request.messages]
        messages.append(
            {
                "role": "user",
                "content": f"{_REWRITE_INSTRUCTION}\n\nFacts (JSON):\n{facts}\n\n"
                f"Draft answer:\n{request.draft}",
            }
        )
        return {"model": self._model, "messages": messages, "stream": True}

    async def stream(self, request: LLMRequest) -> AsyncIterator[str]:
        """Yield the content deltas of one streamed completion of :meth:`payload`."""
        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            async with (
                httpx.AsyncClient(timeout=self._timeout_s, verify=self._tls) as client,
                client.stream(
                    "POST", self._url, json=self.payload(request), headers=headers
                ) as response,
            ):
                if response.status_code >= 400:
                    raise RunFailure(
                        f"the LLM endpoint answered HTTP {response.status_code}", code=_LLM_FAILED
                    )
                async for line in response.aiter_lines():
                    text = _sse_data(line)
                    if text is None:
                        continue
                    if text == "[DONE]":
                        return
                    delta = _delta(text)
                    if delta:
                        yield delta
        except httpx.TimeoutException:
            raise RunTimeout(
                f"the LLM endpoint did not answer within {self._timeout_s:g}s"
            ) from None
        except httpx.HTTPError as exc:
            # The exception's text can carry the URL; its class says enough (ConnectError, ...).
            raise RunFailure(
                f"could not reach the LLM endpoint ({type(exc).__name__})", code=_LLM_FAILED
            ) from None


def _sse_data(line: str) -> str | None:
    """The payload of an SSE ``data:`` line; None for comments, other fields and blank lines."""
    if not line.startswith("data:"):
        return None
    return line[5:].strip()


def _delta(text: str) -> str:
    try:
        chunk = json.loads(text)
    except json.JSONDecodeError:
        chunk = None
    if not isinstance(chunk, dict):
        raise RunFailure("the LLM endpoint sent a malformed stream event", code=_LLM_FAILED)
    if "error" in chunk:
        # The error object may quote the request; report that it failed, not what it said.
        raise RunFailure("the LLM endpoint reported an error mid-stream", code=_LLM_FAILED)
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""  # e.g. a final usage-only chunk
    delta = choices[0].get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""
