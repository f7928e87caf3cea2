"""The agents: a supervisor and its sub-agents analysing a user's LLM usage, and the LLM port."""

from runwire.agents.chat_model import ChatModel
from runwire.agents.context import SUPERVISOR, AgentContext
from runwire.agents.llm import LLMProvider, LLMRequest, OfflineProvider
from runwire.agents.model_loop import ModelLoop
from runwire.agents.model_tools import Tool
from runwire.agents.state import Action, Focus, RunState
from runwire.agents.supervisor import SubAgent, Supervisor

__all__ = [
    "SUPERVISOR",
    "Action",
    "AgentContext",
    "ChatModel",
    "Focus",
    "LLMProvider",
    "LLMRequest",
    "ModelLoop",
    "OfflineProvider",
    "RunState",
    "SubAgent",
    "Supervisor",
    "Tool",
]
