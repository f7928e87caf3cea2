"""Runs: one agent execution per accepted message, as a task with a numbered event log."""

from runwire.runs.executor import AgentFn, RunExecutor, RunInput

__all__ = ["AgentFn", "RunExecutor", "RunInput"]
