"""What a run's model turns took: tokens and list-price cost, added up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runwire.agents.chat_model import TokenUsage
from runwire.usage.pricing import PricingTable

__all__ = ["ModelUsage"]


@dataclass
class ModelUsage:
    """The tokens and list-price cost of a run's model turns, added up."""

    model: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None  # None while no turn's model is in the price table

    def add(self, usage: TokenUsage, pricing: PricingTable) -> None:
        """Count one turn's usage (priced by the configured model's name, else the server's)."""
        self.requests += 1
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        cost = pricing.cost("", self.model, usage.prompt_tokens, usage.completion_tokens)
        if cost is None:
            cost = pricing.cost("", usage.model, usage.prompt_tokens, usage.completion_tokens)
        if cost is not None:
            self.cost_usd = round((self.cost_usd or 0.0) + cost, 8)

    def public(self) -> dict[str, Any]:
        """As the ``model_usage`` event and the run's ``model_usage`` field show it."""
        return {
            "model": self.model,
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cost_usd": self.cost_usd,
        }
