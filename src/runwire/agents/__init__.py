"""The agents: a supervisor and its sub-agents analysing a user's LLM usage, and the LLM port."""

from runwire.agents.blackboard import Action, Blackboard, Focus
from runwire.agents.chat_model import ChatModel
from runwire.agents.context import SUPERVISOR, AgentContext
from runwire.agents.llm import LLMProvider, LLMRequest, OfflineProvider
from runwire.agents.model_loop import ModelLoop
from runwire.agents.model_tools import Tool
from runwire.agents.supervisor import SubAgent, Supervisor

__all__ = [
    "SUPERVISOR",
    "Action",
    "AgentContext",
    "Blackboard",
    "ChatModel",
    "Focus",
    "LLMProvider",
    "LLMRequest",
    "ModelLoop",
    "OfflineProvider",
    "SubAgent",
    "Supervisor",
    "Tool",
]
