"""The :class:`~runwire.agents.chat_model.ChatModel` of OpenAI-compatible servers, through the
official ``openai`` SDK.

:class:`OpenAIChatModel` speaks to any server of the OpenAI chat-completions API (OpenAI, vLLM,
Ollama, LiteLLM, llama.cpp's server) with ``openai.AsyncOpenAI``, streaming with
``stream_options.include_usage``, and turns the stream's chunks into turn events. Imported only
when a model is configured (``app.agent.build_chat_model``).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, cast

import openai
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)

from runwire.agents.chat_model import (
    FAILED,
    RATE_LIMITED,
    TIMED_OUT,
    UNREACHABLE,
    RetryPolicy,
    TextPiece,
    TokenUsage,
    ToolCall,
    ToolSpec,
    TurnEvent,
    retry_after_s,
)
from runwire.errors import ModelFailed

__all__ = ["OpenAIChatModel"]


class OpenAIChatModel:
    """A :class:`ChatModel` on an OpenAI-compatible server, through ``openai.AsyncOpenAI``.

    The SDK's own retries are off (``max_retries=0``): retries are done here, so that a wait
    asked by ``Retry-After`` is measured against the turn's deadline (``timeout_s``, the
    RUNWIRE_LLM_TIMEOUT_S below the run's timeout) and a turn that has streamed text is never
    repeated. Use as an async context manager: it holds the SDK's connection pool.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        timeout_s: float,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http(s) URL")
        if not model:
            raise ValueError("model must be named")
        if not (timeout_s > 0 and math.isfinite(timeout_s)):
            raise ValueError("timeout_s must be a finite number > 0")
        self.name = model
        self._timeout_s = timeout_s
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._jitter = jitter
        # A local server (Ollama, llama.cpp) wants no key, but the SDK insists on one; it is sent
        # as a bearer token nobody checks.
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "unused",
            timeout=timeout_s,
            max_retries=0,
        )

    def __repr__(self) -> str:  # the key must not reach logs through a repr
        return f"OpenAIChatModel(base_url={str(self._client.base_url)!r}, model={self.name!r})"

    async def __aenter__(self) -> OpenAIChatModel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._client.close()

    async def turn(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[ToolSpec],
        *,
        allow_tools: bool = True,
    ) -> AsyncIterator[TurnEvent]:
        """Stream one completion: text pieces as they arrive, then each whole tool call (in the
        order the model numbered them), then the usage when the server reports it.

        Raises :class:`ModelFailed`; a cancellation closes the HTTP stream.
        """
        stream = await self._open(messages, tools, allow_tools)
        calls: dict[int, dict[str, Any]] = {}
        usage: TokenUsage | None = None
        try:
            async for chunk in stream:
                usage = _usage(chunk) or usage
                for choice in chunk.choices:  # one choice: n is never asked for
                    delta = choice.delta
                    if delta.content:
                        yield TextPiece(delta.content)
                    for piece in delta.tool_calls or ():
                        _add_piece(calls, piece)
        except openai.APITimeoutError:
            raise _timed_out(self._timeout_s) from None
        except openai.APIConnectionError:
            raise ModelFailed(
                "the connection to the model server broke mid-answer", code=UNREACHABLE
            ) from None
        except openai.APIError:
            # An error object in the stream (`data: {"error": …}`): its text may quote the
            # request, so only the fact is reported.
            raise ModelFailed(
                "the model server reported an error mid-answer", code=FAILED
            ) from None
        except ValueError:
            # A `data:` line that is not JSON (the SDK parses each event as it comes).
            raise ModelFailed(
                "the model server sent a malformed stream event", code=FAILED
            ) from None
        finally:
            await stream.close()
        for index in sorted(calls):
            call = calls[index]
            # A call without a name is refused by the loop as a tool that does not exist.
            yield ToolCall(
                id=call["id"] or f"call_{index}", name=call["name"], arguments="".join(call["args"])
            )
        if usage is not None:
            yield usage

    async def _open(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[ToolSpec], allow_tools: bool
    ) -> openai.AsyncStream[ChatCompletionChunk]:
        """The response stream, once the server accepted the request (retried as the policy
        says); the body has not been read yet."""
        deadline = time.monotonic() + self._timeout_s
        specs = [_tool_param(spec) for spec in tools]
        # Without tools, neither field is sent: some servers refuse a tool_choice without tools.
        choice: Literal["auto", "none"] | openai.Omit = (
            ("auto" if allow_tools else "none") if specs else openai.omit
        )
        attempt = 0
        while True:
            try:
                return await self._client.chat.completions.create(
                    model=self.name,
                    messages=cast("list[ChatCompletionMessageParam]", list(messages)),
                    stream=True,
                    stream_options={"include_usage": True},
                    tools=specs if specs else openai.omit,
                    tool_choice=choice,
                )
            except openai.APIStatusError as exc:
                status = exc.status_code
                if status != 429 and status < 500:
                    raise ModelFailed(_status_message(status), code=FAILED) from None
                code = RATE_LIMITED if status == 429 else FAILED
                failure = f"the model server answered HTTP {status}"
                asked = retry_after_s(exc.response.headers)
            except openai.APITimeoutError:
                code, failure, asked = TIMED_OUT, "the model server did not answer in time", None
            except openai.APIConnectionError:
                code, failure, asked = UNREACHABLE, "the model server cannot be reached", None
            attempt += 1
            tries = f"{attempt} {'try' if attempt == 1 else 'tries'}"
            if attempt > self._retry.retries:
                raise ModelFailed(f"{failure} ({tries})", code=code)
            wait = asked if asked is not None else self._retry.backoff_s(attempt, self._jitter())
            if time.monotonic() + wait >= deadline:
                raise ModelFailed(
                    f"{failure} ({tries}); the next try, in {wait:g}s, would be past the "
                    f"{self._timeout_s:g}s limit",
                    code=code,
                )
            await self._sleep(wait)


def _status_message(status: int) -> str:
    if status in (401, 403):
        return f"the model server refused the API key (HTTP {status}): check RUNWIRE_LLM_API_KEY"
    if status == 404:
        return (
            "the model server does not know the model or the path (HTTP 404): check "
            "RUNWIRE_LLM_MODEL and RUNWIRE_LLM_BASE_URL"
        )
    return f"the model server refused the request (HTTP {status})"


def _timed_out(timeout_s: float) -> ModelFailed:
    return ModelFailed(f"the model server did not answer within {timeout_s:g}s", code=TIMED_OUT)


def _tool_param(spec: ToolSpec) -> ChatCompletionToolParam:
    return cast(
        "ChatCompletionToolParam",
        {
            "type": "function",
            "function": {
                "name": spec.name,
                "description": spec.description,
                "parameters": dict(spec.parameters),
            },
        },
    )


def _add_piece(calls: dict[int, dict[str, Any]], piece: Any) -> None:
    """Fold one streamed tool-call delta into ``calls``: the first piece of an index brings the
    id and the name, later ones pieces of the arguments (some servers repeat the name)."""
    call = calls.setdefault(piece.index, {"id": "", "name": "", "args": []})
    if piece.id:
        call["id"] = piece.id
    function = piece.function
    if function is not None:
        if function.name:
            call["name"] = function.name
        if function.arguments:
            call["args"].append(function.arguments)


def _usage(chunk: ChatCompletionChunk) -> TokenUsage | None:
    if chunk.usage is None:
        return None
    return TokenUsage(
        model=chunk.model,
        prompt_tokens=chunk.usage.prompt_tokens,
        completion_tokens=chunk.usage.completion_tokens,
    )
