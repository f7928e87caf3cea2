"""The model price table: list prices per 1M tokens, a quality tier per model, and lookups.

The table ships as package data (``pricing.json``) with the date the prices were taken and where
from, so every estimate built on it can say how old its prices are. Model names are matched
leniently: case, a ``provider/`` or ``models/`` prefix and dated or versioned suffixes
(``gpt-4o-2024-08-06``, ``claude-3-5-sonnet-20241022``, ``gemini-1.5-pro-002``,
``mistral-large-latest``) all resolve to the table's base name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from runwire.errors import InputError

__all__ = ["ModelPrice", "PricingTable", "normalize_model_name"]

_PER_TOKENS = 1_000_000
# Suffixes that name a release of a model rather than a different model. Stripped one at a time
# from the end, so "gpt-4o-mini" never loses "-mini" but "gpt-4o-mini-2024-07-18" loses the date.
_RELEASE_SUFFIX = re.compile(
    r"(?:-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{4}|-\d{3}|-latest|-preview|-exp|-v\d+(?:\.\d+)?)$"
)
_VENDOR_PREFIX = re.compile(r"^(?:[a-z]+\.)+")
# Spellings of model names a table keeps the entry of (about 100 bytes each).
_KEPT_SPELLINGS = 10_000
# Blended rate used only to order candidates: typical chat traffic sends ~3 input tokens per output.
_INPUT_WEIGHT = 3


def normalize_model_name(model: str) -> str:
    """Reduce a model name as providers and gateways spell it to the table's base name."""
    name = model.strip().lower()
    name = name.rsplit("/", 1)[-1]  # "openai/gpt-4o", "models/gemini-1.5-pro"
    name = name.split("@", 1)[0].split(":", 1)[0]  # Vertex "@20240620", Bedrock ":0"
    name = _VENDOR_PREFIX.sub("", name)  # Bedrock "us.anthropic.claude-..."
    while True:
        shorter = _RELEASE_SUFFIX.sub("", name)
        if shorter == name or not shorter:
            return name
        name = shorter


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One model's list prices (USD per 1M tokens) and quality tier."""

    provider: str
    model: str
    input_per_mtok: float
    output_per_mtok: float
    tier: str

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for one call with these token counts, at list price."""
        return (
            prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok
        ) / _PER_TOKENS

    @property
    def blended_per_mtok(self) -> float:
        """USD per 1M tokens at a 3:1 input/output mix, to order models by price."""
        return (_INPUT_WEIGHT * self.input_per_mtok + self.output_per_mtok) / (_INPUT_WEIGHT + 1)


class PricingTable:
    """Model prices with the date and source they were taken from.

    Build it with :meth:`load` (the packaged table) or :meth:`from_mapping` (a table of your own,
    same shape as ``pricing.json``). Immutable once built.
    """

    def __init__(
        self, *, as_of: str, source: str, tiers: tuple[str, ...], models: tuple[ModelPrice, ...]
    ) -> None:
        self._as_of = as_of
        self._source = source
        self._tiers = tiers
        self._models = models
        self._by_name = {m.model: m for m in models}
        # What lookup and cheaper_candidates found, kept (the table never changes): every new
        # user's first question asks them again for each of its models, and normalizing a name
        # (a few regular expressions) was most of reading the cheaper models from a digest.
        self._found: dict[str, ModelPrice | None] = {}
        self._cheaper: dict[str, tuple[ModelPrice, ...]] = {}

    @classmethod
    def load(cls) -> PricingTable:
        """The table shipped with runwire (``runwire/usage/pricing.json``)."""
        text = resources.files("runwire.usage").joinpath("pricing.json").read_text("utf-8")
        return cls.from_mapping(json.loads(text))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PricingTable:
        """Validate and build a table; raise :class:`InputError` naming the first problem."""
        as_of, source, tiers = data.get("as_of"), data.get("source"), data.get("tiers")
        if not isinstance(as_of, str) or not as_of:
            raise InputError("pricing table: 'as_of' must be a non-empty date string")
        if not isinstance(source, str) or not source:
            raise InputError("pricing table: 'source' must be a non-empty string")
        if not isinstance(tiers, list) or not tiers or not all(isinstance(t, str) for t in tiers):
            raise InputError("pricing table: 'tiers' must list tier names, best first")
        entries = data.get("models")
        if not isinstance(entries, list):
            raise InputError("pricing table: 'models' must be a list")
        models: list[ModelPrice] = []
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            models.append(_model_price(i, entry, tiers))
            if models[-1].model in seen:
                raise InputError(f"pricing table: model {models[-1].model!r} is listed twice")
            seen.add(models[-1].model)
        return cls(as_of=as_of, source=source, tiers=tuple(tiers), models=tuple(models))

    @property
    def as_of(self) -> str:
        """The date the prices were taken (ISO 8601 date)."""
        return self._as_of

    @property
    def source(self) -> str:
        """Where the prices come from, and what kind of prices they are."""
        return self._source

    @property
    def tiers(self) -> tuple[str, ...]:
        """Quality tiers, best first."""
        return self._tiers

    @property
    def models(self) -> tuple[ModelPrice, ...]:
        """Every entry, in the table's order."""
        return self._models

    def lookup(self, provider: str, model: str) -> ModelPrice | None:
        """The price entry for a model, or None when the table does not know it.

        Model names are unique across the table, so the provider is not required to match: hosts
        such as Azure OpenAI, Amazon Bedrock or Vertex AI list these models at the same rates.
        ``provider`` is accepted so callers need not know that.
        """
        del provider  # see the docstring: the model name alone identifies the entry
        try:
            return self._found[model]
        except KeyError:
            pass
        price = self._by_name.get(normalize_model_name(model))
        if len(self._found) < _KEPT_SPELLINGS:  # names come from users' data: bounded
            self._found[model] = price
        return price

    def cost(
        self, provider: str, model: str, prompt_tokens: int, completion_tokens: int
    ) -> float | None:
        """USD at list price for one call, or None for a model the table does not know."""
        price = self.lookup(provider, model)
        return None if price is None else price.cost(prompt_tokens, completion_tokens)

    def cheaper_candidates(self, provider: str, model: str) -> list[ModelPrice]:
        """Cheaper models of the same provider, in the same tier or one tier down.

        A candidate costs no more per input token and no more per output token, and less on at
        least one, so it is cheaper whatever the token mix. Staying with the provider and at most
        one tier down keeps the swap plausible without a change of SDK or a big drop in quality.
        Ordered cheapest first (by a 3:1 input/output blended rate; ties keep the table's order,
        which lists newer models first).
        """
        current = self.lookup(provider, model)
        if current is None:
            return []
        kept = self._cheaper.get(current.model)
        if kept is None:
            kept = self._cheaper[current.model] = tuple(self._cheaper_than(current))
        return list(kept)

    def _cheaper_than(self, current: ModelPrice) -> list[ModelPrice]:
        rank = self._tiers.index(current.tier)
        allowed = set(self._tiers[rank : rank + 2])
        found = [
            m
            for m in self._models
            if m.provider == current.provider
            and m.model != current.model
            and m.tier in allowed
            and m.input_per_mtok <= current.input_per_mtok
            and m.output_per_mtok <= current.output_per_mtok
            and (
                m.input_per_mtok < current.input_per_mtok
                or m.output_per_mtok < current.output_per_mtok
            )
        ]
        return sorted(found, key=lambda m: m.blended_per_mtok)  # stable: ties keep table order


def _model_price(index: int, entry: Any, tiers: list[str]) -> ModelPrice:
    where = f"pricing table: models[{index}]"
    if not isinstance(entry, dict):
        raise InputError(f"{where} must be an object")
    provider, model, tier = entry.get("provider"), entry.get("model"), entry.get("tier")
    if not isinstance(provider, str) or not provider:
        raise InputError(f"{where}: 'provider' must be a non-empty string")
    if not isinstance(model, str) or normalize_model_name(model) != model:
        raise InputError(f"{where}: 'model' must be a base model name in lower case")
    if tier not in tiers:
        raise InputError(f"{where}: 'tier' must be one of {', '.join(tiers)}")
    rates: list[float] = []
    for key in ("input", "output"):
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise InputError(f"{where}: {key!r} must be a number >= 0 (USD per 1M tokens)")
        rates.append(float(value))
    return ModelPrice(provider, model, rates[0], rates[1], str(tier))
