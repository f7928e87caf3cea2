"""The model loop: a chat model chooses the agents' tools, and its streamed text is the answer.

Each turn the model is given the conversation and every :class:`Tool` as a function definition.
The tool calls it makes run through :meth:`AgentContext.call_tool` under the agent that owns the
tool, so they are the same ``tool_executing``/``tool_completed`` pairs, with the same redaction,
as the offline agents'; their results go back to the model, and the loop goes on until the model
answers without calling a tool. Its text streams as ``text_delta`` events of the ``reporting``
agent. An owning agent is opened (``agent_started``) at its first call and closed when the loop
ends; a tool that fails is reported to the model, which may try again or answer without it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from runwire.agents.blackboard import Blackboard
from runwire.agents.chat_model import ChatModel, TextPiece, ToolCall
from runwire.agents.context import SUPERVISOR, AgentContext
from runwire.agents.formatting import format_count
from runwire.agents.model_tools import Tool, check_arguments, parse_arguments
from runwire.agents.model_usage import ModelUsage
from runwire.errors import InputError, ModelFailed, RunTimeout, ToolFailed

__all__ = ["INSTRUCTIONS", "SYSTEM_PROMPT", "WRITER", "ModelLoop"]

#: The agent whose events carry the model's answer text.
WRITER = "reporting"
TIMED_OUT = "model_timeout"
#: A tool result longer than this (as JSON) is cut before it goes back to the model.
RESULT_MAX_CHARS = 24_000

SYSTEM_PROMPT = (
    "You are runwire's analyst. You help a team cut the cost, latency and failures of its own LLM "
    "usage. Call the tools to measure the user's usage data; every figure in your answer must "
    "come from a tool result. Answer in Markdown, concisely, leading with what was asked."
)
#: What the system prompt tells the model to do: an answer restating it is no answer (the quality
#: gate's ``echoes_instructions``). The rest of the prompt, the data's summary and triage's
#: reading (names, a clarifying question), is what an answer may well say.
INSTRUCTIONS: tuple[str, ...] = (SYSTEM_PROMPT,)


class ModelLoop:
    """One run's conversation with the model: ``await ModelLoop(...).run(ctx, state)``.

    ``max_rounds`` bounds the turns that may call tools; the turn after them must answer.
    After :meth:`run`, ``streamed`` says whether any answer text went out (a caller falling
    back to the offline agents must not, once it has) and ``usage`` holds the tokens spent; the
    totals so far are emitted (``model_usage``) and kept after each turn that reported usage.
    ``instructions`` are what the model was told to do, for the quality gate to check the answer
    does not restate them.
    """

    def __init__(
        self,
        model: ChatModel,
        tools: Mapping[str, Sequence[Tool]],
        *,
        max_rounds: int = 6,
        result_max_chars: int = RESULT_MAX_CHARS,
    ) -> None:
        if max_rounds < 0:
            raise ValueError("max_rounds must be >= 0")
        if result_max_chars < 1:
            raise ValueError("result_max_chars must be >= 1")
        self._result_max_chars = result_max_chars
        self._model = model
        self._tools = {tool.name: (agent, tool) for agent, group in tools.items() for tool in group}
        self._max_rounds = max_rounds
        self._opened: dict[str, int] = {}  # agent -> tool calls made, in the order opened
        self._parts: list[str] = []
        self.streamed = False
        self.usage = ModelUsage(model.name)
        self.instructions = INSTRUCTIONS

    async def run(self, ctx: AgentContext, state: Blackboard) -> str:
        """Converse until the model answers; return the answer. Raises :class:`ModelFailed`
        (after closing the agents it opened) when the model fails or answers nothing."""
        await ctx.thinking(
            SUPERVISOR,
            f"Asking the model {self._model.name} to answer, with {len(self._tools)} tools it "
            f"may call over your {format_count(state.record_count)} calls.",
        )
        try:
            answer = await self._converse(ctx, state)
        except ModelFailed as exc:
            await self._close(ctx, exc)
            raise
        await self._close(ctx, None)
        return answer

    async def _converse(self, ctx: AgentContext, state: Blackboard) -> str:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": _system_prompt(state)},
            *({"role": role, "content": content} for role, content in ctx.history),
            {"role": "user", "content": ctx.question},
        ]
        specs = [tool for _, tool in self._tools.values()]
        rounds = 0
        while True:
            allow_tools = rounds < self._max_rounds
            text, calls = await self._turn(ctx, messages, specs, allow_tools)
            if not calls or not allow_tools:
                break  # answered; calls made against tool_choice "none" are not run
            rounds += 1
            messages.append(
                {
                    "role": "assistant",
                    "content": text or None,
                    "tool_calls": [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments},
                        }
                        for call in calls
                    ],
                }
            )
            for call in calls:
                content = await self._execute(ctx, call)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
        answer = "".join(self._parts)
        if not answer.strip():
            raise ModelFailed("the model answered with no text", code="model_error")
        return answer

    async def _turn(
        self,
        ctx: AgentContext,
        messages: list[dict[str, Any]],
        specs: list[Tool],
        allow_tools: bool,
    ) -> tuple[str, list[ToolCall]]:
        counted = self.usage.requests
        with ctx.span(f"model {self._model.name}", **{"runwire.model": self._model.name}):
            text, calls = await self._stream(ctx, messages, specs, allow_tools)
        if self.usage.requests > counted:
            # The run's totals so far, after each turn: a run stopped or timed out later (when
            # nothing more may be emitted) still has what it spent, in its events and its row.
            await ctx.model_usage(self.usage.public())
        return text, calls

    async def _stream(
        self,
        ctx: AgentContext,
        messages: list[dict[str, Any]],
        specs: list[Tool],
        allow_tools: bool,
    ) -> tuple[str, list[ToolCall]]:
        text: list[str] = []
        calls: list[ToolCall] = []
        turn = self._model.turn(messages, specs, allow_tools=allow_tools)
        try:
            async with asyncio.timeout(ctx.llm_timeout_s):
                async for event in turn:
                    if isinstance(event, TextPiece):
                        if not self.streamed:
                            self.streamed = True
                            await self._open(ctx, WRITER)
                        text.append(event.text)
                        self._parts.append(event.text)
                        await ctx.text_delta(WRITER, event.text)
                    elif isinstance(event, ToolCall):
                        calls.append(event)
                    else:
                        self.usage.add(event, ctx.pricing)
        except TimeoutError:
            raise ModelFailed(
                f"the model {self._model.name} did not finish its turn within "
                f"{ctx.llm_timeout_s:g}s",
                code=TIMED_OUT,
            ) from None
        finally:
            # Close the stream (its HTTP response) now, not when it is garbage-collected.
            await turn.aclose()  # type: ignore[attr-defined]
        return "".join(text), calls

    async def _execute(self, ctx: AgentContext, call: ToolCall) -> str:
        """Run one tool call as its pair of events; what goes back to the model as the result."""
        agent, tool = self._tools.get(call.name, (WRITER, None))
        await self._open(ctx, agent)
        args, problem = parse_arguments(call.arguments)
        if tool is None:
            problem = f"there is no tool named {call.name!r}"
        elif problem is None:
            problem = check_arguments(tool.parameters, args)
        fn = tool.call if tool is not None and problem is None else _refusing(problem or "")
        try:
            result = await ctx.call_tool(agent, call.name, args, fn)
        except (ToolFailed, RunTimeout) as exc:
            # Told to the model, which may call again with other arguments or answer without it.
            return json.dumps({"error": exc.message})
        text = json.dumps(result, ensure_ascii=False, default=str)
        if len(text) > self._result_max_chars:
            text = text[: self._result_max_chars] + " …(cut)"
        return text

    async def _open(self, ctx: AgentContext, agent: str) -> None:
        if agent not in self._opened:
            self._opened[agent] = 0
            await ctx.started(agent)
        if agent != WRITER:
            self._opened[agent] += 1

    async def _close(self, ctx: AgentContext, failure: ModelFailed | None) -> None:
        for agent, calls in self._opened.items():
            if agent == WRITER and failure is not None:
                await ctx.failed(agent, failure.code, failure.message)
            elif agent == WRITER:
                await ctx.completed(
                    agent,
                    f"The model {self._model.name} wrote the answer "
                    f"({format_count(len(''.join(self._parts)))} characters).",
                )
            else:
                await ctx.completed(
                    agent, f"Ran {calls} tool call{'s' if calls != 1 else ''} for the model."
                )
        self._opened.clear()


def _system_prompt(state: Blackboard) -> str:
    facts = state.facts.get("check_usage_data")
    if not facts:
        return SYSTEM_PROMPT
    prompt = (
        f"{SYSTEM_PROMPT}\n\nThe user's data holds {facts['calls']} calls from "
        f"{facts['first_call'][:10]} to {facts['last_call'][:10]} across {facts['models']} models."
    )
    reading = state.facts.get("classify_question")
    if reading:
        # Triage's reading of the question (docs/agents.md), so the answer leads with it.
        prompt += f"\nTriage read the question as (JSON): {json.dumps(reading)}"
    return prompt


def _refusing(problem: str) -> Callable[..., Awaitable[Any]]:
    async def refuse(**_: Any) -> Any:
        raise InputError(problem)

    return refuse
