"""What the agents of one run know, passed from agent to agent and filled in as they go."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from runwire.domain.usage import UsageRecord

if TYPE_CHECKING:
    from runwire.agents.question import Question

__all__ = ["Action", "Blackboard", "Focus"]


class Focus(StrEnum):
    """What the question is mainly about; the answer leads with it (docs/agents.md)."""

    COST = "cost"  # savings: where to cut (also the overall report, for a question naming none)
    SPEND = "spend"  # what the calls cost, by model, provider or feature
    LATENCY = "latency"
    ERRORS = "errors"
    CACHING = "caching"
    COMPARE = "compare"  # two or more models, providers or features side by side
    TREND = "trend"  # the last days of the data against the days before
    SUBJECT = "subject"  # one model, provider or feature ("tell me about gpt-4o")
    DATA = "data"  # what the usage data holds
    OFF_TOPIC = "off_topic"  # outside what usage records can tell
    UNCLEAR = "unclear"  # needs a clarifying question

    @property
    def analyses(self) -> bool:
        """Whether answering takes the analysis agents (data, optimization, actions)."""
        return self not in (Focus.DATA, Focus.OFF_TOPIC, Focus.UNCLEAR)


@dataclass(frozen=True, slots=True)
class Action:
    """One concrete thing to do, with the monthly saving it is estimated to bring (may be 0)."""

    kind: str  # switch_model | cache | reliability | latency
    title: str
    detail: str
    monthly_savings_usd: float

    def public(self) -> dict[str, Any]:
        """The action as a JSON-able dict (tool results, LLM facts)."""
        return {
            "kind": self.kind,
            "title": self.title,
            "detail": self.detail,
            "monthly_savings_usd": self.monthly_savings_usd,
        }


@dataclass
class Blackboard:
    """The run's working memory: triage fills the first fields, each later agent adds its part.

    ``facts`` holds tool results by tool name (``usage_overview``, ``cost_breakdown``, ...), which
    the reporting agent writes the answer from and hands to the LLM as its only source of figures.
    """

    question: str
    asked: Question | None = None  # triage's reading of the question, once it has one
    focus: Focus = Focus.COST
    focus_asked: bool = False  # the question named the focus (rather than the default applying)
    records: Sequence[UsageRecord] = ()
    record_count: int = 0
    has_data: bool = False
    facts: dict[str, Any] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)
    answer: str = ""

    def restarted(self) -> Blackboard:
        """A state holding only what triage found (the data and the reading of the question),
        for the offline agents to answer afresh when the model's answer is replaced."""
        kept = ("check_usage_data", "classify_question")
        return Blackboard(
            question=self.question,
            asked=self.asked,
            focus=self.focus,
            focus_asked=self.focus_asked,
            records=self.records,
            record_count=self.record_count,
            has_data=self.has_data,
            facts={name: self.facts[name] for name in kept if name in self.facts},
        )
