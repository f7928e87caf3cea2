"""The tools a chat model may call: their definitions, the analysis tools over a run's records by
owning agent, and the checks on the arguments a model sends.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runwire.agents import analytics
from runwire.agents.actions import rank_actions
from runwire.agents.blackboard import Action, Blackboard
from runwire.agents.toolbox import Toolbox, with_records
from runwire.agents.tools import TOOLS
from runwire.usage.pricing import PricingTable

__all__ = ["Tool", "analysis_tools", "check_arguments", "parse_arguments"]


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool the model may call: its name, what it does, its arguments as a JSON schema, and
    the async callable that runs it with those arguments as keywords."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    call: Callable[..., Awaitable[Any]]


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def check_arguments(schema: Mapping[str, Any], args: Mapping[str, Any]) -> str | None:
    """What is wrong with ``args`` for the object ``schema`` (required, unknown and wrongly
    typed properties, integer bounds), or None. Enough of JSON Schema for the tools' arguments."""
    properties: Mapping[str, Any] = schema.get("properties", {})
    for name in schema.get("required", ()):
        if name not in args:
            return f"missing argument {name!r}"
    for name, value in args.items():
        prop = properties.get(name)
        if prop is None:
            return f"unknown argument {name!r}"
        kind = prop.get("type")
        # bool is an int in Python, never in JSON.
        is_bool = isinstance(value, bool) and kind != "boolean"
        if kind in _JSON_TYPES and (is_bool or not isinstance(value, _JSON_TYPES[kind])):
            return f"argument {name!r} must be of type {kind}"
        if kind == "integer" and not (
            prop.get("minimum", value) <= value <= prop.get("maximum", value)
        ):
            return f"argument {name!r} must be between {prop['minimum']} and {prop['maximum']}"
        if kind == "array" and prop.get("items", {}).get("type") == "integer":
            items = prop["items"]
            low, high = items.get("minimum", -(2**63)), items.get("maximum", 2**63)
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in value) or not all(
                low <= v <= high for v in value
            ):
                return f"argument {name!r} must be a list of integers from {low} to {high}"
    return None


# Which agent owns each registry tool the model may call (the events name it). Triage's
# classify_question has run already, and describe_import_formats is for a user without data.
_OWNERS = {
    "usage_overview": "data",
    "describe_data": "data",
    "cost_breakdown": "data",
    "latency_percentiles": "data",
    "error_rates": "data",
    "breakdown": "data",
    "compare_usage": "data",
    "usage_trend": "data",
    "describe_subject": "data",
    "find_cache_candidates": "optimization",
    "find_cheaper_models": "optimization",
}


def analysis_tools(state: Blackboard, pricing: PricingTable) -> dict[str, list[Tool]]:
    """The analysis tools by owning agent, over ``state.records``: those of the registry
    (:data:`runwire.agents.tools.TOOLS`, the very functions the offline agents call) and
    ``rank_actions``; each result is also kept in ``state.facts`` under the tool's name, as the
    offline agents keep it."""
    records = state.records
    toolbox = Toolbox(records, pricing)

    def kept(name: str, fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        async def call(**args: Any) -> Any:
            result = fn(**args)
            if inspect.isawaitable(result):
                result = await result
            state.facts[name] = result
            return result

        return call

    async def actions(max_actions: int = 5) -> list[dict[str, Any]]:
        subjects = [s.name for s in state.asked.subjects] if state.asked else []

        def rank() -> list[Action]:
            facts = {
                "find_cheaper_models": analytics.cheaper_models(records, pricing),
                "find_cache_candidates": analytics.cache_candidates(records),
                "error_rates": analytics.error_rate(records),
                "latency_percentiles": analytics.latency_percentiles(records),
            }
            return rank_actions(facts, records, state.focus, max_actions, subjects)

        state.actions = await with_records(records, rank)
        return [action.public() for action in state.actions]

    owned: dict[str, list[Tool]] = {"data": [], "optimization": []}
    for tool in TOOLS:
        owner = _OWNERS.get(tool.name)
        if owner is not None:
            call = kept(tool.name, toolbox.function(tool.name))
            owned[owner].append(Tool(tool.name, tool.description, tool.parameters, call))
    owned["actions"] = [
        Tool(
            "rank_actions",
            "Concrete actions (switch model, cache, reliability, latency) ranked by estimated "
            "monthly saving, those about the question's subject first.",
            {
                "type": "object",
                "properties": {
                    "max_actions": {"type": "integer", "minimum": 1, "maximum": 10},
                },
            },
            kept("rank_actions", actions),
        ),
    ]
    return owned


def parse_arguments(arguments: str) -> tuple[dict[str, Any], str | None]:
    """The arguments a model sent (JSON text) as keywords, and what is wrong with them, or None."""
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return {"arguments": arguments}, "the arguments are not valid JSON"
    if not isinstance(value, dict):
        return {"arguments": value}, "the arguments must be a JSON object"
    return value, None
