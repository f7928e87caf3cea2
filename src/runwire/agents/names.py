"""The names a question can use: the user's models, providers and features, with their aliases,
and how they are found in a question's words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Names", "Subject", "find_subjects", "squash"]

# Words after which a plain word that names a feature ("summarize my ...") is a verb.
_VERB_AFTER = {"my", "our", "the", "this", "it", "all", "me", "us", "your", "these", "those"}
# Variant words too common to stand for a model on their own ("large" prompts, "mini" tasks).
_COMMON_VARIANTS = {"large", "small", "mini", "pro", "flash", "turbo", "latest", "preview", "nano"}
_SQUASH = str.maketrans("", "", "-._ ")
# The parts of a model's name (compiled once: re.split looks the pattern up in re's cache on
# every call, for every model of every new user's data).
_NAME_PARTS = re.compile(r"[-._]")


@dataclass(frozen=True, slots=True)
class Subject:
    """A model, provider or feature the question names (``in_data``: the user has calls of it)."""

    kind: str  # model | provider | feature
    name: str
    in_data: bool = True

    def public(self) -> dict[str, Any]:
        """The subject as a JSON-able dict."""
        return {"kind": self.kind, "name": self.name, "in_data": self.in_data}


@dataclass(frozen=True, slots=True)
class Names:
    """The names a question can use: the user's models, providers and features, and the models
    of the price table (which the user may ask about without having called them)."""

    models: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    priced_models: tuple[str, ...] = ()
    model_providers: dict[str, str] = field(default_factory=dict)
    # Every spelling a question can use, squashed, to what it names: built once per set of names
    # (the tool keeps the Names of a data set in its memo), not once per question.
    lookup: dict[str, Subject] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        exact: dict[str, Subject] = {}
        for model in self.priced_models:
            exact[squash(model)] = Subject("model", model, in_data=False)
        for provider in self.providers:
            exact[squash(provider)] = Subject("provider", provider)
        for feature in self.features:
            exact[squash(feature)] = Subject("feature", feature)
        for alias, subject in _aliases(self).items():
            exact.setdefault(alias, subject)
        for model in self.models:
            exact[squash(model)] = Subject("model", model)
        object.__setattr__(self, "lookup", exact)

    @classmethod
    def from_inventory(cls, inventory: dict[str, Any], priced: Iterable[str] = ()) -> Names:
        """The names in an :func:`runwire.agents.analytics.inventory` result."""
        return cls(
            models=tuple(m["name"] for m in inventory["models"]),
            providers=tuple(p["name"] for p in inventory["providers"]),
            features=tuple(f["name"] for f in inventory["features"]),
            priced_models=tuple(priced),
            model_providers={m["name"]: m["provider"] for m in inventory["models"]},
        )


def find_subjects(
    tokens: Sequence[str], names: Names
) -> tuple[tuple[Subject, ...], tuple[str, tuple[str, ...]] | None]:
    """The names in ``tokens`` (longest match first), and an ambiguous name with its options."""
    exact = names.lookup
    squashed = [squash(token) for token in tokens]
    found: list[Subject] = []
    i = 0
    while i < len(tokens):
        for n in (3, 2, 1):
            if i + n > len(tokens):
                continue
            gram = tokens[i : i + n]
            key = "".join(squashed[i : i + n])
            match = exact.get(key)
            if match is not None and _is_name(match, tokens, i, n):
                if match not in found:
                    found.append(match)
                i += n
                break
            if n == 1 and not key.isalpha():
                options = tuple(m for m in names.models if squash(m).startswith(key))
                if len(options) >= 2:
                    return tuple(found), (gram[0], tuple(sorted(options)))
                if len(options) == 1:
                    found.append(Subject("model", options[0]))
        else:
            i += 1
    return tuple(found), None


def _aliases(names: Names) -> dict[str, Subject]:
    """Family names for providers ("claude" → anthropic) and distinctive variant words for
    models ("sonnet" → claude-3-5-sonnet; "claude sonnet" too)."""
    out: dict[str, Subject] = {}
    families: dict[str, set[str]] = {}
    for model in names.models:
        parts = [p for p in _NAME_PARTS.split(model) if p]
        words = [p for p in parts if p.isalpha()]
        if not words:
            continue
        family = words[0]
        families.setdefault(family, set()).add(names.model_providers.get(model, ""))
        variant = words[1:]
        if variant:
            out[squash(family + "".join(variant))] = Subject("model", model)
            if len(variant) == 1 and variant[0] not in _COMMON_VARIANTS and len(variant[0]) >= 5:
                out[variant[0]] = Subject("model", model)
    for family, providers in families.items():
        if len(providers) == 1 and (provider := next(iter(providers))):
            out.setdefault(family, Subject("provider", provider))
    return out


def _is_name(subject: Subject, tokens: Sequence[str], i: int, n: int) -> bool:
    """A plain word that names a feature ("summarize") is a verb when "my", "the"... follows."""
    if subject.kind != "feature" or not subject.name.isalpha():
        return True
    after = tokens[i + n] if i + n < len(tokens) else ""
    return after not in _VERB_AFTER


def squash(name: str) -> str:
    return name.lower().translate(_SQUASH)
