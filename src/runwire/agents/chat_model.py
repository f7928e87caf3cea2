"""The model that drives the tools: the :class:`ChatModel` port, what a turn yields, and the
retry rules.

One *turn* is one streamed chat completion: the model is given the conversation and the tools,
and answers with text, tool calls, or both, as :data:`TurnEvent` values: text as it arrives, each
tool call once its streamed pieces are whole, and the turn's token usage. The implementation for
OpenAI-compatible servers is ``openai_model.OpenAIChatModel``, in a module of its own so that only
a server with a model configured imports the SDK (seconds of start-up on a busy machine).

Failures become :class:`~runwire.errors.ModelFailed` with a message naming the status or the kind
of failure only: never the API key, and never the server's error text, which may quote the request.
"""

from __future__ import annotations

import contextlib
import email.utils
import math
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "FAILED",
    "RATE_LIMITED",
    "TIMED_OUT",
    "UNREACHABLE",
    "ChatModel",
    "RetryPolicy",
    "TextPiece",
    "TokenUsage",
    "ToolCall",
    "ToolSpec",
    "TurnEvent",
    "retry_after_s",
]

UNREACHABLE = "model_unreachable"
RATE_LIMITED = "model_rate_limited"
TIMED_OUT = "model_timeout"
FAILED = "model_error"


class ToolSpec(Protocol):
    """What the model is told of a tool: its name, what it does and its JSON-schema arguments."""

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def parameters(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class TextPiece:
    """A piece of the model's answer text, as it streamed."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the model made, whole: ``arguments`` is the JSON text it wrote (may be bad)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """The tokens one turn took, as the server counted them."""

    model: str
    prompt_tokens: int
    completion_tokens: int


TurnEvent = TextPiece | ToolCall | TokenUsage
"""What a turn yields: text pieces as they stream, then its tool calls and its usage."""


class ChatModel(Protocol):
    """A model that answers a conversation, calling tools when it chooses to."""

    name: str  # the model's name, as configured

    def turn(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[ToolSpec],
        *,
        allow_tools: bool = True,
    ) -> AsyncIterator[TurnEvent]:
        """Stream one completion of ``messages`` (chat-completions message objects): its text
        pieces as they arrive, then its tool calls, then its usage (when the server counts
        it). The text pieces keep :class:`~runwire.agents.llm.LLMProvider`'s promises (they
        join to the answer, come as they arrive, never hold the loop, and ``aclose()`` ends the
        turn and its HTTP stream). Failures raise :class:`~runwire.errors.ModelFailed`."""
        ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a turn is retried on 429, 5xx and connection failures.

    The wait before retry ``n`` (1-based) is the server's ``Retry-After`` when it sent one, else
    ``base_s * 2 ** (n - 1)`` less up to a quarter (jitter, so that many runs do not retry in
    step). A wait that would end past the turn's deadline is not taken: the turn fails at once.
    """

    retries: int = 2
    base_s: float = 0.5

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError("retries must be >= 0")
        if not (self.base_s >= 0 and math.isfinite(self.base_s)):
            raise ValueError("base_s must be a finite number >= 0")

    def backoff_s(self, attempt: int, jitter: float) -> float:
        """The wait before retry ``attempt`` (1-based) with no Retry-After; ``jitter`` in [0, 1)."""
        return self.base_s * 2.0 ** (attempt - 1) * (1 - jitter / 4)


def retry_after_s(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait a response asks for: ``retry-after-ms``, or ``Retry-After`` in seconds or as an
    HTTP date; None when absent or unreadable. Never negative."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        with contextlib.suppress(ValueError):
            value = float(ms) / 1000
            if math.isfinite(value):
                return max(value, 0.0)
    text = headers.get("retry-after")
    if text is None:
        return None
    with contextlib.suppress(ValueError):
        value = float(text)
        return max(value, 0.0) if math.isfinite(value) else None
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        return None
    return max(parsed.timestamp() - (time.time() if now is None else now), 0.0)
