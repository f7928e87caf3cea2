"""Runs: one agent execution per accepted message, as a task with a numbered event log."""

from runwire.runs.executor import AgentFn, RunExecutor, RunInput
from runwire.runs.state import RunState, RunStatus

__all__ = ["AgentFn", "RunExecutor", "RunInput", "RunState", "RunStatus"]
