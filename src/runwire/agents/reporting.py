"""The reporting agent: writes the Markdown answer from the facts and streams it through the LLM.

The draft (:mod:`runwire.agents.answer`) is complete and correct on its own: every figure comes
from the tools' results. The LLM (offline: the draft as it is) only rewrites it, so the answer is
right whichever provider runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from runwire.agents.answer import SECTION_ORDER, compose_next_steps, compose_report
from runwire.agents.blackboard import Blackboard, Focus
from runwire.agents.context import AgentContext
from runwire.agents.formatting import format_count, format_usd
from runwire.agents.llm import LLMRequest
from runwire.errors import RunTimeout
from runwire.usage.pricing import PricingTable

__all__ = ["ReportingAgent"]

SYSTEM_PROMPT = (
    "You are runwire's reporting agent. You help a team cut the cost and latency of its LLM "
    "usage. Answer in Markdown, concisely, using only the figures given to you."
)


class ReportingAgent:
    """Writes the answer and streams it as ``text_delta`` events; sets ``state.answer``."""

    name = "reporting"

    async def run(self, ctx: AgentContext, state: Blackboard) -> str:
        """Compose the draft, stream it through ``ctx.llm`` within ``ctx.llm_timeout_s``."""
        if state.has_data:
            await ctx.thinking(self.name, _plan_sentence(state))
        else:
            await ctx.thinking(
                self.name,
                "No analysis is possible yet, so the answer lists the next steps to add usage "
                "data, with the exact commands.",
            )
        sections = list(SECTION_ORDER[state.focus]) if state.has_data else ["next_steps"]

        def compose_answer(focus: str, sections: list[str]) -> dict[str, Any]:
            if state.has_data:
                state.answer = compose_report(state, ctx.pricing)
            else:
                state.answer = compose_next_steps(state)
            return {
                "focus": focus,
                "sections": sections,
                "headline": state.answer.split("\n", 1)[0].removeprefix("## "),
                "characters": len(state.answer),
            }

        await ctx.call_tool(
            self.name,
            "compose_answer",
            {"focus": state.focus.value, "sections": sections},
            compose_answer,
        )
        draft = state.answer
        request = LLMRequest(
            system=SYSTEM_PROMPT,
            messages=[*ctx.history, ("user", ctx.question)],
            draft=draft,
            facts=_llm_facts(state, ctx.pricing),
        )
        parts: list[str] = []
        llm = ctx.llm
        # A writer that hands over the chunks ready at once has each batch go through the run in
        # one pass, each chunk still its own event (docs/benchmarks.md, "Batched chunks").
        # Asked by its attribute: an isinstance against the runtime-checkable protocol
        # (BatchingProvider) cost ~20 µs a run (docs/benchmarks.md, "Hot path, session 13").
        batching: Callable[[LLMRequest], AsyncIterator[list[str]]] | None = getattr(
            llm, "batches", None
        )
        batches = batching(request) if batching is not None else None
        chunks = llm.stream(request) if batches is None else None
        try:
            async with asyncio.timeout(ctx.llm_timeout_s):
                if batches is not None:
                    async for batch in batches:
                        parts += batch
                        await ctx.text_deltas(self.name, batch)
                else:
                    assert chunks is not None
                    async for chunk in chunks:
                        parts.append(chunk)
                        await ctx.text_delta(self.name, chunk)
        except TimeoutError:
            raise RunTimeout(
                f"the language model ({ctx.llm.name}) did not finish the answer within "
                f"{ctx.llm_timeout_s:g}s"
            ) from None
        finally:
            # Close the provider's generator now (its HTTP stream, if any), not when it is
            # garbage-collected; a plain AsyncIterator has no aclose, hence the lookup.
            close = getattr(batches if batches is not None else chunks, "aclose", None)
            if close is not None:
                await close()
        answer = "".join(parts)
        if not answer.strip():
            # An LLM that returns nothing must not leave the user with an empty reply.
            answer = draft
            await ctx.text_delta(self.name, draft)
        state.answer = answer
        return f"Wrote the answer ({format_count(len(answer))} characters; writer: {ctx.llm.name})."


def _plan_sentence(state: Blackboard) -> str:
    if state.focus is Focus.UNCLEAR:
        return "Writing a clarifying question, with examples of what I can answer."
    if state.focus is Focus.OFF_TOPIC:
        return "Writing a short answer: what your usage data holds and what I can tell from it."
    if state.focus is Focus.DATA:
        return "Writing what your usage data holds and what you can ask about it."
    savings = sum(a.monthly_savings_usd for a in state.actions)
    lead = "cost and savings" if state.focus is Focus.COST else state.focus.value
    return (
        f"Writing the answer, leading with {lead}: {len(state.actions)} ranked actions worth up "
        f"to {format_usd(savings)} a month, then {', '.join(SECTION_ORDER[state.focus][1:])}."
    )


def _llm_facts(state: Blackboard, pricing: PricingTable) -> dict[str, Any]:
    """The facts a rewriting LLM may use: the tools' results, the actions, the price source."""
    if not state.has_data:
        return {"usage_records": state.record_count, "next_steps": state.next_steps}
    facts: dict[str, Any] = {
        name: value
        for name, value in state.facts.items()
        if name != "rank_actions"  # given below, as the actions themselves
    }
    if state.focus.analyses:
        facts["actions"] = [action.public() for action in state.actions]
    facts["pricing"] = {"as_of": pricing.as_of, "source": pricing.source}
    return facts
