"""The data helper: when there is too little usage data, says exactly how to add some."""

from __future__ import annotations

from typing import Any

from runwire.agents.blackboard import Blackboard
from runwire.agents.context import AgentContext
from runwire.agents.formatting import format_count

__all__ = ["DataHelper", "import_guide"]


def import_guide() -> dict[str, Any]:
    """The usage-file format and every way to import a file or load the sample set."""
    return {
        "formats": ["JSON Lines (.jsonl, one object per line)", "CSV (.csv, header row)"],
        "required_fields": {
            "timestamp": "RFC 3339, e.g. 2025-03-01T12:00:00Z",
            "provider": "e.g. openai",
            "model": "e.g. gpt-4o",
            "prompt_tokens": "integer >= 0",
            "completion_tokens": "integer >= 0",
            "latency_ms": "number >= 0",
        },
        "optional_fields": {
            "cost_usd": "computed from the price table when absent",
            "status": "ok or error (default ok)",
            "prompt_hash": "a fingerprint of the prompt, to find repeats a cache would serve",
            "feature": "the product feature that made the call",
        },
        "import": {
            "cli": "runwire usage import FILE --user EMAIL",
            "http": "POST /api/usage/import (body: the file; Content-Type application/x-ndjson "
            "or text/csv)",
        },
        "sample": {
            "cli": "runwire usage sample --user EMAIL",
            "web": 'the "Load sample data" button on the chat page',
            "http": "POST /api/usage/sample",
        },
    }


class DataHelper:
    """Explains the import format and the sample set; fills ``state.next_steps``."""

    name = "data_helper"

    async def run(self, ctx: AgentContext, state: Blackboard) -> str:
        """Fetch the import guide and turn it into ``state.next_steps``."""
        guide = await ctx.call_tool(self.name, "describe_import_formats", {}, import_guide)
        state.facts["describe_import_formats"] = guide
        have = (
            "You have no usage records yet"
            if not state.record_count
            else f"You have only {format_count(state.record_count)} usage records"
        )
        await ctx.thinking(
            self.name,
            f"{have}. The quickest way to a real answer is to import an export of your LLM calls "
            f"({', '.join(guide['required_fields'])}), or to try the generated sample set first.",
        )
        required = ", ".join(f"`{name}`" for name in guide["required_fields"])
        optional = ", ".join(f"`{name}`" for name in guide["optional_fields"])
        state.next_steps = [
            f"Export your LLM calls as JSON Lines or CSV with the fields {required} "
            f"(optional: {optional}; `cost_usd` is computed from list prices when absent).",
            f"Import the file with `{guide['import']['cli']}` or `{guide['import']['http']}`.",
            f"Or try the generated sample set: {guide['sample']['web']}, "
            f"`{guide['sample']['cli']}` or `{guide['sample']['http']}`.",
            "Then ask again, e.g. *Where can I cut my LLM costs?*",
        ]
        return "Explained how to import usage data or load the sample set."
