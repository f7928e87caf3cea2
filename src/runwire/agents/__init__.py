"""The agents: a supervisor and its sub-agents analysing a user's LLM usage, and the LLM port."""

from runwire.agents.context import SUPERVISOR, AgentContext
from runwire.agents.llm import LLMProvider, LLMRequest, OfflineProvider, OpenAICompatibleProvider
from runwire.agents.state import Action, Focus, RunState
from runwire.agents.supervisor import SubAgent, Supervisor

__all__ = [
    "SUPERVISOR",
    "Action",
    "AgentContext",
    "Focus",
    "LLMProvider",
    "LLMRequest",
    "OfflineProvider",
    "OpenAICompatibleProvider",
    "RunState",
    "SubAgent",
    "Supervisor",
]
