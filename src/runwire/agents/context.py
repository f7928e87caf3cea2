"""What an agent run works with, and the one way its agents emit events and call tools.

Every event of the agent tree goes through :class:`AgentContext`, so the shape of the events is
decided in one place: sub-agents are children of ``supervisor``, tool calls get ids unique within
the run, tool arguments and results are redacted and bounded, and every ``tool_executing`` gets its
``tool_completed``, whether the tool succeeds, raises or times out.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from runwire.agents.chat_model import ChatModel
from runwire.agents.llm import LLMProvider
from runwire.domain.usage import UsageRecord
from runwire.errors import RunTimeout, RunwireError, ToolFailed
from runwire.events.model import EventDraft, EventType, TextDrafts
from runwire.events.redaction import Redactor
from runwire.telemetry.traces import Tracing
from runwire.usage.pricing import PricingTable

__all__ = ["SUPERVISOR", "AgentContext"]

#: The root agent's name; every other agent's events name it as ``parent_agent``.
SUPERVISOR = "supervisor"


@dataclass
class AgentContext:
    """One run's inputs, ports and limits, handed to every agent of the run.

    ``history`` holds the thread's earlier messages as ``(role, content)``, oldest first, without
    the current ``question``. ``load_usage`` returns the run's user's usage records (from the
    store, a :class:`~runwire.domain.usage.UsageView`: its records are read when a tool needs
    them, see :func:`runwire.agents.toolbox.with_records`). ``emit`` hands
    an event draft to the run owner, which numbers, stores and delivers it.
    """

    run_id: str
    question: str
    history: list[tuple[str, str]]
    load_usage: Callable[[], Awaitable[Sequence[UsageRecord]]]
    emit: Callable[[EventDraft], Awaitable[object]]
    llm: LLMProvider
    tool_timeout_s: float
    llm_timeout_s: float
    redactor: Redactor
    pricing: PricingTable
    tracing: Tracing | None = None  # spans of each agent and tool call, when recorded
    # The model that chooses the tools and writes the answer (None: the offline agents do), and
    # whether the offline agents answer when it fails before writing (RUNWIRE_LLM_FALLBACK).
    model: ChatModel | None = None
    model_fallback: bool = False
    # Keeps the run's model usage with the run (the runs table), after its event.
    keep_model_usage: Callable[[dict[str, Any]], Awaitable[object]] | None = None
    # Keeps the quality gate's verdict on the answer with the run (the runs table).
    keep_quality: Callable[[dict[str, Any]], Awaitable[object]] | None = None
    # Hands the run several drafts at once, each its own event (the journal's emit_batch);
    # without it, text_deltas emits them one by one.
    emit_batch: Callable[[Sequence[EventDraft]], Awaitable[object]] | None = None
    # Every tool result of the run, as ``(tool name, result)`` in the order the calls ended:
    # what the quality gate checks an answer's figures against (agents/quality.py).
    results: list[tuple[str, Any]] = field(default_factory=list, init=False, repr=False)
    _tool_calls: int = field(default=0, init=False, repr=False)

    def span(self, name: str, **attributes: str) -> contextlib.AbstractContextManager[object]:
        """A span of the run's trace around an agent's or a tool's work (or nothing)."""
        if self.tracing is None:
            return contextlib.nullcontext()
        return self.tracing.span(name, attributes)

    async def started(self, agent: str) -> None:
        """Emit ``agent_started`` for ``agent``."""
        await self._emit(EventType.AGENT_STARTED, agent, {})

    async def thinking(self, agent: str, text: str) -> None:
        """Emit ``agent_thinking``: a sentence of the agent's reasoning."""
        await self._emit(EventType.AGENT_THINKING, agent, {"reasoning": text})

    async def completed(self, agent: str, final_response: str) -> None:
        """Emit ``agent_completed`` with a short summary of what the agent did."""
        await self._emit(EventType.AGENT_COMPLETED, agent, {"final_response": final_response})

    async def failed(self, agent: str, code: str, message: str) -> None:
        """Emit ``agent_error`` for a sub-agent (``message`` must be fit for the user to read)."""
        await self._emit(EventType.AGENT_ERROR, agent, {"code": code, "message": message})

    async def text_delta(self, agent: str, delta: str) -> None:
        """Emit a chunk of streamed answer text."""
        # Most of a run's events are these: the draft is made here rather than through _emit,
        # one coroutine fewer per chunk (docs/benchmarks.md, "The embedded hot path").
        parent = None if agent == SUPERVISOR else SUPERVISOR
        await self.emit(EventDraft(EventType.TEXT_DELTA, agent, {"delta": delta}, parent))

    async def text_deltas(self, agent: str, deltas: Sequence[str]) -> None:
        """Emit chunks of streamed answer text that are ready at once, one event each, in one
        pass through the run's journal, bus and connections (docs/benchmarks.md, "Batched
        chunks")."""
        parent = None if agent == SUPERVISOR else SUPERVISOR
        drafts = TextDrafts(agent, deltas, parent)  # drafts made only if asked for one by one
        if self.emit_batch is not None:
            await self.emit_batch(drafts)
            return
        for draft in drafts:
            await self.emit(draft)

    async def model_usage(self, usage: dict[str, Any]) -> None:
        """Emit ``model_usage`` (tokens and cost of the run's model turns) and keep it."""
        await self._emit(EventType.MODEL_USAGE, SUPERVISOR, usage)
        if self.keep_model_usage is not None:
            await self.keep_model_usage(usage)

    async def quality(self, verdict: dict[str, Any], *, warn: bool) -> None:
        """Keep the quality gate's ``verdict`` on the answer; ``warn``: also emit it as a
        ``quality_warning`` event (the answer failed the gate)."""
        if warn:
            await self._emit(EventType.QUALITY_WARNING, SUPERVISOR, verdict)
        if self.keep_quality is not None:
            await self.keep_quality(verdict)

    async def call_tool(
        self,
        agent: str,
        tool_name: str,
        args: dict[str, Any],
        fn: Callable[..., Awaitable[Any]] | Callable[..., Any],
    ) -> Any:
        """Run the tool ``fn(**args)`` on behalf of ``agent``, bracketed by its two events.

        ``tool_executing`` carries the redacted ``args``; ``tool_completed`` the redacted, bounded
        result, ``success`` and ``duration_ms``. A coroutine function is awaited under the tool
        timeout (and a stop interrupts it); a plain function runs inline, so it must be quick
        (the analytics tools take milliseconds) — slow work belongs in a coroutine.

        On failure ``tool_completed`` has ``success: false`` and an ``error`` message, then
        :class:`ToolFailed` is raised; past ``tool_timeout_s`` the same, with :class:`RunTimeout`.
        On cancellation nothing more is emitted and the cancellation propagates: the run owner
        closes what a stopped run left open.
        """
        self._tool_calls += 1
        call_id = f"call_{self._tool_calls}"
        attributes = {"runwire.agent": agent, "runwire.tool_call_id": call_id}
        with self.span(f"tool {tool_name}", **attributes):
            return await self._call_tool(agent, tool_name, call_id, args, fn)

    async def _call_tool(
        self,
        agent: str,
        tool_name: str,
        call_id: str,
        args: dict[str, Any],
        fn: Callable[..., Awaitable[Any]] | Callable[..., Any],
    ) -> Any:
        base = {"tool_name": tool_name, "tool_call_id": call_id}
        await self._emit(
            EventType.TOOL_EXECUTING, agent, {**base, "tool_args": self.redactor.clean(args)}
        )
        # One turn of the event loop before the tool runs: sockets write what they were given
        # once per turn, and a plain tool runs inline, so without it the user would see this
        # tool_executing (and everything before it) only when the tool is done.
        await asyncio.sleep(0)
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.tool_timeout_s

        async def finish(success: bool, extra: dict[str, Any]) -> None:
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            data = {**base, **extra, "success": success, "duration_ms": duration_ms}
            await self._emit(EventType.TOOL_COMPLETED, agent, data)

        try:
            # The timeout is armed only when the tool has something to wait for: a plain
            # function runs inline, where no timeout can fire anyway, and arming one (a timer
            # of the loop, set and cancelled) cost ~5 µs a call (docs/benchmarks.md, "Hot path,
            # session 13"). The deadline still counts from the call.
            result = fn(**args)
            if inspect.isawaitable(result):
                async with asyncio.timeout_at(deadline):
                    result = await result
        except TimeoutError:
            message = f"{tool_name} did not finish within {self.tool_timeout_s:g}s"
            await finish(False, {"result": None, "error": message})
            raise RunTimeout(message) from None
        except RunwireError as exc:
            message = self.redactor.clean(exc.message)
            await finish(False, {"result": None, "error": message})
            raise ToolFailed(f"{tool_name} failed: {message}") from exc
        except Exception as exc:
            # str(exc) may hold anything; the redactor strips credentials and bounds the length.
            message = self.redactor.clean(f"{type(exc).__name__}: {exc}")
            await finish(False, {"result": None, "error": message})
            raise ToolFailed(f"{tool_name} failed: {message}") from exc
        self.results.append((tool_name, result))
        await finish(True, {"result": self.redactor.clean(result)})
        return result

    async def _emit(self, kind: EventType, agent: str, data: dict[str, Any]) -> None:
        parent = None if agent == SUPERVISOR else SUPERVISOR
        await self.emit(EventDraft(kind, agent, data, parent))
