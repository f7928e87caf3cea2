"""The supervisor: runs triage, then the analysis agents or the data helper, then reporting;
with a model configured and enough data, the model loop instead of analysis and reporting.

The supervisor is the run's root agent. It emits its own reasoning but not its ``agent_started``
or its closing event: the run owner emits those, because the closing event carries the id of the
stored reply. Each sub-agent's events are bracketed here, so every ``agent_started`` is closed by
``agent_completed`` or, when the sub-agent raises, ``agent_error``; a cancellation (stop) closes
nothing and propagates, and the run owner closes what it left open.
"""

from __future__ import annotations

from typing import Any, Protocol

from runwire.agents.actions import ActionsAgent
from runwire.agents.blackboard import Blackboard, Focus
from runwire.agents.context import SUPERVISOR, AgentContext
from runwire.agents.data import DataAgent
from runwire.agents.data_helper import DataHelper
from runwire.agents.formatting import format_count
from runwire.agents.model_loop import ModelLoop
from runwire.agents.model_tools import analysis_tools
from runwire.agents.optimization import OptimizationAgent
from runwire.agents.quality import Verdict, assess
from runwire.agents.reporting import ReportingAgent
from runwire.agents.triage import MIN_RECORDS, Triage
from runwire.errors import ModelFailed, RunwireError

__all__ = ["SubAgent", "Supervisor"]


class SubAgent(Protocol):
    """A step of the supervisor's plan."""

    name: str

    async def run(self, ctx: AgentContext, state: Blackboard) -> str:
        """Do the step, updating ``state``; return the ``final_response`` summary."""
        ...


class Supervisor:
    """The root agent: ``await Supervisor().run(ctx)`` returns the answer's text."""

    name = SUPERVISOR

    def __init__(self, *, min_records: int = MIN_RECORDS) -> None:
        self._triage = Triage(min_records)
        self._analysis: tuple[SubAgent, ...] = (DataAgent(), OptimizationAgent(), ActionsAgent())
        self._data_helper = DataHelper()
        self._reporting = ReportingAgent()

    async def run(self, ctx: AgentContext) -> str:
        """Run the whole plan for ``ctx.question``; return the answer (also streamed as deltas).

        Raises what a sub-agent raised (a :class:`RunwireError` such as ToolFailed or
        RunTimeout, after that sub-agent's ``agent_error``), for the run owner to report.
        """
        with ctx.span(f"agent {SUPERVISOR}", **{"runwire.agent": SUPERVISOR}):
            return await self._plan(ctx)

    async def _plan(self, ctx: AgentContext) -> str:
        state = Blackboard(question=ctx.question)
        await ctx.thinking(
            SUPERVISOR,
            f"Plan for “{_quote(ctx.question)}”: triage checks your usage data and reads the "
            "question; "
            + (
                f"with enough data, the model {ctx.model.name} chooses which of the data, "
                "optimization and actions tools to run and writes the answer; otherwise the data "
                "helper explains how to add data and reporting writes the next steps."
                if ctx.model is not None
                else "with enough data, the data, optimization and actions agents measure what it "
                "asks and look for savings; otherwise the data helper explains how to add data. "
                "Reporting then writes the answer, leading with what you asked."
            ),
        )
        await self._delegate(ctx, self._triage, state)
        replaced: Verdict | None = None
        if state.has_data and ctx.model is not None:
            loop = ModelLoop(ctx.model, analysis_tools(state, ctx.pricing))
            try:
                answer = await loop.run(ctx, state)
            except ModelFailed as exc:
                # Once answer text went out, a second answer would be appended to it: fail.
                if not ctx.model_fallback or loop.streamed:
                    raise
                await ctx.thinking(
                    SUPERVISOR,
                    f"The model failed ({exc.message}): answering with the offline analysis "
                    "instead.",
                )
            else:
                # Judged against what the model was told too: restating it is no answer.
                verdict = _assess(ctx, state, answer, loop.instructions)
                if verdict.passed:
                    await ctx.quality(_kept(verdict, PASSED), warn=False)
                    return answer
                # The model's text went out as deltas: the warning tells the client to drop it,
                # and the offline answer that follows is the one stored (docs/protocol.md).
                replaced = verdict
                await ctx.quality(_kept(verdict, REPLACED), warn=True)
                await ctx.thinking(
                    SUPERVISOR,
                    f"The model's answer failed the quality gate "
                    f"({'; '.join(p.message for p in verdict.problems)}): answering with the "
                    "offline analysis instead.",
                )
                state = state.restarted()
        answer = await self._offline(ctx, state)
        if replaced is None:
            verdict = _assess_offline(ctx, state, answer)
            # The offline answer passes by construction; were it ever not to, it is still the
            # best answer there is: kept, and the warning says so.
            await ctx.quality(
                _kept(verdict, PASSED if verdict.passed else FAILED), warn=not verdict.passed
            )
        return answer

    async def _offline(self, ctx: AgentContext, state: Blackboard) -> str:
        """The deterministic plan after triage: analysis (or the data helper), then reporting."""
        if state.has_data and state.focus.analyses:
            await ctx.thinking(
                SUPERVISOR,
                f"Triage found {format_count(state.record_count)} calls: analysing them, leading "
                f"with {state.focus.value}.",
            )
            for agent in self._analysis:
                await self._delegate(ctx, agent, state)
        elif state.has_data and state.focus is Focus.DATA:
            await ctx.thinking(
                SUPERVISOR,
                "You asked what data I have: the data agent describes it; no analysis needed.",
            )
            await self._delegate(ctx, self._analysis[0], state)
        elif state.has_data:
            why = (
                "The question is ambiguous"
                if state.focus is Focus.UNCLEAR
                else "The question is outside what usage records can tell"
            )
            await ctx.thinking(
                SUPERVISOR, f"{why}: reporting answers it directly, without an analysis."
            )
        else:
            have = (
                f"Only {format_count(state.record_count)} usage records"
                if state.record_count
                else "No usage records yet"
            )
            await ctx.thinking(
                SUPERVISOR, f"{have}: asking the data helper for next steps instead of analysing."
            )
            await self._delegate(ctx, self._data_helper, state)
        await self._delegate(ctx, self._reporting, state)
        return state.answer

    async def _delegate(self, ctx: AgentContext, agent: SubAgent, state: Blackboard) -> None:
        with ctx.span(f"agent {agent.name}", **{"runwire.agent": agent.name}):
            await self._run_agent(ctx, agent, state)

    async def _run_agent(self, ctx: AgentContext, agent: SubAgent, state: Blackboard) -> None:
        await ctx.started(agent.name)
        try:
            summary = await agent.run(ctx, state)
        except RunwireError as exc:
            await ctx.failed(agent.name, exc.code, exc.message)
            raise
        except Exception:
            # The message reaches the user: no exception text, which may hold anything.
            await ctx.failed(agent.name, "internal", f"the {agent.name} agent failed unexpectedly")
            raise
        await ctx.completed(agent.name, summary)


#: What the gate's verdict meant for the answer, as kept with the run.
PASSED, REPLACED, FAILED = "passed", "replaced", "failed"


def _assess(
    ctx: AgentContext, state: Blackboard, answer: str, instructions: tuple[str, ...] = ()
) -> Verdict:
    """The gate's verdict on ``answer``; ``instructions``: what its writer, the model, was told
    (the offline writer is told nothing it could restate)."""
    reading = state.facts.get("classify_question")
    return assess(
        answer,
        ctx.results,
        question=ctx.question,
        reading=reading,
        references=(ctx.pricing.as_of, ctx.pricing.source),
        instructions=instructions,
    )


def _assess_offline(ctx: AgentContext, state: Blackboard, answer: str) -> Verdict:
    """The offline answer's verdict, kept in the records' memo (a ``UsageSet``): over unchanged
    data the same question gets the same answer from the same tool results, so the same verdict,
    and the next run asking it does not check it again (docs/decisions.md, "Cost")."""
    memo: dict[Any, Any] | None = getattr(state.records, "memo", None)
    key = ("quality_verdict", ctx.question, answer)
    if memo is not None and key in memo:
        kept: Verdict = memo[key]
        return kept
    verdict = _assess(ctx, state, answer)
    if memo is not None:
        memo[key] = verdict
    return verdict


def _kept(verdict: Verdict, outcome: str) -> dict[str, Any]:
    """The verdict as the ``quality_warning`` event carries it and the run keeps it."""
    why = "; ".join(p.message for p in verdict.problems)
    message = (
        f"The model's answer failed the quality check ({why}): it was replaced by the offline "
        "analysis."
        if outcome == REPLACED
        else f"This answer failed the quality check ({why})."
        if outcome == FAILED
        else "This answer passed the quality check."
    )
    return {
        **verdict.public(),
        "outcome": outcome,
        "replaced": outcome == REPLACED,
        "message": message,
    }


def _quote(question: str, limit: int = 120) -> str:
    text = " ".join(question.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
