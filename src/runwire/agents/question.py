"""What a question asks: its kind, the models, providers or features it names, and its angle.

Triage reads the question with :func:`classify`, deterministically: the same question over the
same data always gets the same reading, so the offline answer is reproducible. The reading is a
:class:`Question`, whose ``public()`` form is the result of triage's ``classify_question`` tool.

The rules, in order (docs/agents.md, "How triage decides"):

1. A name that fits several of the user's models ("gpt-4") → ``unclear``: a clarifying question.
2. Something usage records do not hold (answer quality, who made a call, revenue, prompt text,
   energy) → ``off_topic``, saying what is missing and what runwire can tell instead.
3. "What data do you have?" and the like → ``data``.
4. Two or more names of one kind → ``compare``; "compare"/"vs" with one name or none → a
   comparison across a dimension ("compare providers") or ``unclear``; but words of time
   ("this week", "trend", "over time") without two names → ``trend`` (5).
6. A topic word (cost, latency, errors, caching) → that topic, about the one name if there is one.
7. One name and no topic → ``subject`` ("tell me about gpt-4o").
8. Several words and none of runwire's vocabulary → ``off_topic``; anything else (a greeting,
   "how are we doing?") → the overall savings report.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from runwire.agents.state import Focus

__all__ = ["Names", "Question", "Subject", "classify", "detect_focus"]

# Topic words, checked in the question; the earliest mention wins, so "latency and cost?" leads
# with latency. Cost words lead to savings when a savings word is anywhere in the question.
_TOPICS: dict[Focus, tuple[str, ...]] = {
    Focus.LATENCY: (
        "latency",
        "slow",
        "fast",
        "speed",
        "p50",
        "p90",
        "p95",
        "p99",
        "percentile",
        "median",
        "response time",
        "wait",
        "quick",
    ),
    Focus.ERRORS: ("error", "fail", "reliab", "outage", "timeout", "timing out", "rate limit"),
    Focus.CACHING: ("cache", "caching", "repeat", "duplicate", "same prompt"),
    Focus.COST: (
        "cost",
        "spend",
        "spent",
        "cheap",
        "sav",
        "bill",
        "money",
        "price",
        "expensive",
        "pay",
        "$",
        "budget",
        "wast",
    ),
}
_SAVINGS = ("sav", "cut", "reduce", "cheaper", "lower", "wast", "optimi", "cheap")
_TREND = (
    "trend",
    "over time",
    "this week",
    "last week",
    "this month",
    "last month",
    "week over week",
    "month over month",
    "yesterday",
    "today",
    "changed",
    "change over",
    "going up",
    "going down",
    "grow",
    "increas",
    "decreas",
    "rising",
    "dropp",
    "daily",
    "weekly",
)
_COMPARE = ("compare", "comparison", " vs", "versus", "differ", "side by side")
_DATA = (
    "what data",
    "which data",
    "data do you have",
    "what do you have",
    "what do you know",
    "what can you",
    "what can i ask",
    "what kind of data",
    "what is in my data",
    "what's in my data",
    "how much data",
    "what fields",
    "describe my data",
    "my usage data",
)
# Things usage records do not hold, with how to say so.
_NOT_IN_DATA: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("accura", "quality", "hallucinat", "satisf", "thumbs up", "feedback", "helpful"),
        "how good the answers were",
    ),
    (
        (
            "per user",
            "by user",
            "which user",
            "each user",
            "per customer",
            "by customer",
            "which customer",
            "each customer",
            "per tenant",
            "which team",
            "per team",
        ),
        "who made each call",
    ),
    (
        ("revenue", "profit", "roi", "margin", "sales", "conversion"),
        "revenue or business outcomes",
    ),
    (
        (
            "prompt text",
            "text of",
            "what do users ask",
            "what are users asking",
            "show me the prompt",
        ),
        "the text of prompts or answers",
    ),
    (("carbon", "energy", "co2", "emission", "electricity", "gpu"), "energy use or hardware"),
)
# Words that place a question in runwire's domain even when it names no topic.
_DOMAIN = (
    "llm",
    "model",
    "usage",
    "call",
    "token",
    "request",
    "api",
    "provider",
    "feature",
    "data",
    "ai",
    "doing",
    "recommend",
    "optimi",
    "improv",
    "insight",
    "overview",
    "summary",
    "report",
    "analy",
    "status",
    "tip",
    "suggest",
    "fix",
    "setup",
    "efficien",
    "priorit",
    "action",
)
_GROUP_WORDS = {
    "feature": "feature",
    "provider": "provider",
    "vendor": "provider",
    "model": "model",
}
_REFERRING = {"it", "that", "this", "them", "those", "these", "one", "they"}
_VERB_AFTER = {"my", "our", "the", "this", "it", "all", "me", "us", "your", "these", "those"}
# Variant words too common to stand for a model on their own ("large" prompts, "mini" tasks).
_COMMON_VARIANTS = {"large", "small", "mini", "pro", "flash", "turbo", "latest", "preview", "nano"}
_PERCENTILE = re.compile(r"\bp(\d{1,2}(?:\.\d)?)\b|\b(\d{1,2})(?:st|nd|rd|th)? percentile")
_TOKEN = re.compile(r"[a-z0-9][a-z0-9._-]*")
_SQUASH = str.maketrans("", "", "-._ ")
_MAX_COMPARED = 8


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
            exact[_squash(model)] = Subject("model", model, in_data=False)
        for provider in self.providers:
            exact[_squash(provider)] = Subject("provider", provider)
        for feature in self.features:
            exact[_squash(feature)] = Subject("feature", feature)
        for alias, subject in _aliases(self).items():
            exact.setdefault(alias, subject)
        for model in self.models:
            exact[_squash(model)] = Subject("model", model)
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


@dataclass(frozen=True, slots=True)
class Question:
    """Triage's reading of a question.

    ``kind`` decides the answer's lead; ``named`` is False when the question named no angle at
    all (the overall report then applies). ``topic`` is the first topic word's focus, which
    orders a comparison or trend. ``missing`` says what an off-topic question asked for that the
    data does not hold; ``clarify`` is the question to ask back, with ``candidates``.
    """

    kind: Focus
    named: bool = True
    topic: Focus | None = None
    subjects: tuple[Subject, ...] = ()
    group_by: str = "model"
    percentile: int = 95
    window_days: int = 7
    missing: str = ""
    clarify: str = ""
    candidates: tuple[str, ...] = ()

    @property
    def subject(self) -> Subject | None:
        """The one subject of a question about a single model, provider or feature."""
        return self.subjects[0] if len(self.subjects) == 1 else None

    def public(self) -> dict[str, Any]:
        """The reading as a JSON-able dict (the ``classify_question`` tool's result)."""
        out: dict[str, Any] = {
            "kind": self.kind.value,
            "named": self.named,
            "topic": self.topic.value if self.topic else None,
            "subjects": [s.public() for s in self.subjects],
            "group_by": self.group_by,
            "percentile": self.percentile,
            "window_days": self.window_days,
        }
        if self.missing:
            out["missing"] = self.missing
        if self.clarify:
            out["clarify"] = self.clarify
            out["candidates"] = list(self.candidates)
        return out


def detect_focus(question: str) -> tuple[Focus, bool]:
    """The topic of ``question`` and whether one was named (False: cost, the default, applies).

    Cost words mean savings (``cost``) when the question also asks to save, cut or reduce, and
    the plain spend (``spend``) otherwise.
    """
    topic = _topic(question.lower())
    return (Focus.COST, False) if topic is None else (topic, True)


def classify(question: str, names: Names) -> Question:
    """Read ``question`` against the user's ``names``; see the module docstring for the rules."""
    text = " " + " ".join(question.lower().split()) + " "
    tokens = [t.rstrip(".-_") for t in _TOKEN.findall(text)]
    tokens = [t for t in tokens if t]
    subjects, ambiguous = _subjects(tokens, names)
    topic = _topic(text)
    percentile_asked = _percentile(text)
    base = Question(
        Focus.COST,
        topic=topic,
        percentile=percentile_asked or 95,
        group_by=_group_by(tokens, subjects),
    )
    if ambiguous:
        word, options = ambiguous
        return replace(
            base,
            kind=Focus.UNCLEAR,
            clarify=f"Which {word} do you mean: {_or_list(options)}?",
            candidates=options,
        )
    for words, missing in _NOT_IN_DATA:
        if _has(text, words):
            return replace(base, kind=Focus.OFF_TOPIC, missing=missing, subjects=subjects)
    if _has(text, _DATA) or tokens in (["help"], ["help", "me"]):
        return replace(base, kind=Focus.DATA)
    trend = _has(text, _TREND)
    compare = _compare(text, tokens, subjects, names, base, trend)
    if compare is not None:
        return compare
    if trend:
        window = 30 if "month" in text else 1 if _has(text, ("today", "yesterday")) else 7
        return replace(base, kind=Focus.TREND, subjects=subjects, window_days=window)
    absent = [s for s in subjects if not s.in_data]
    if topic is not None and absent and len(absent) == len(subjects):
        # "How fast is X?" of a model never called: an answer about the other models would
        # read as one about X.
        return replace(base, kind=Focus.SUBJECT, subjects=(absent[0],))
    if topic is not None:
        return replace(base, kind=topic, subjects=subjects)
    if len(subjects) == 1:
        return replace(base, kind=Focus.SUBJECT, subjects=subjects)
    if len(tokens) >= 3 and not _has(text, _DOMAIN) and not subjects:
        if len(tokens) <= 6 and _REFERRING & set(tokens):
            return replace(
                base,
                kind=Focus.UNCLEAR,
                clarify="What would you like to know about your LLM usage?",
            )
        return replace(base, kind=Focus.OFF_TOPIC)
    return replace(base, named=False)


def _compare(
    text: str,
    tokens: Sequence[str],
    subjects: tuple[Subject, ...],
    names: Names,
    base: Question,
    trend: bool,
) -> Question | None:
    """Two or more names of one kind: a comparison; "compare" with fewer names: a comparison
    across a dimension ("compare providers") or a clarifying question. A question about time
    ("this week compared with last") is a trend, not this."""
    asked = _has(text, _COMPARE) and not trend
    kinds = {s.kind for s in subjects}
    if len(subjects) >= 2 and len(kinds) == 1:
        absent = [s for s in subjects if not s.in_data]
        if absent:
            # Nothing to compare with: say so of the first name the user has no calls of.
            return replace(base, kind=Focus.SUBJECT, subjects=(absent[0],))
        return replace(
            base, kind=Focus.COMPARE, subjects=subjects[:_MAX_COMPARED], group_by=subjects[0].kind
        )
    if not asked and len(subjects) < 2:
        return None
    if len(kinds) > 1:
        return replace(
            base,
            kind=Focus.UNCLEAR,
            subjects=subjects,
            clarify="Should I compare models, providers or features? Name two of the same kind.",
            candidates=tuple(s.name for s in subjects),
        )
    dimension = next(
        (_GROUP_WORDS[t.rstrip("s")] for t in tokens if t.rstrip("s") in _GROUP_WORDS), None
    )
    pools = {"model": names.models, "provider": names.providers, "feature": names.features}
    if not subjects and dimension is not None:
        everyone = tuple(Subject(dimension, n) for n in pools[dimension][:_MAX_COMPARED])
        if len(everyone) >= 2:
            return replace(base, kind=Focus.COMPARE, subjects=everyone, group_by=dimension)
    kind = subjects[0].kind if subjects else "model"
    others = tuple(n for n in pools[kind] if not subjects or n != subjects[0].name)
    lead = f"Compare {subjects[0].name} with which {kind}" if subjects else "What should I compare"
    return replace(
        base,
        kind=Focus.UNCLEAR,
        subjects=subjects,
        clarify=f"{lead}? Your {kind}s: {_or_list(others[:_MAX_COMPARED])}.",
        candidates=others[:_MAX_COMPARED],
    )


def _topic(text: str) -> Focus | None:
    hits = []
    for focus, words in _TOPICS.items():
        positions = [text.find(w) for w in words if w in text]
        if positions:
            hits.append((min(positions), focus))
    if not hits:
        return None
    topic: Focus = min(hits, key=lambda hit: hit[0])[1]
    if topic is Focus.COST and not _has(text, _SAVINGS):
        return Focus.SPEND
    return topic


def _percentile(text: str) -> int | None:
    if "median" in text:
        return 50
    match = _PERCENTILE.search(text)
    if match is None:
        return None
    value = float(match.group(1) or match.group(2))
    return int(value) if 0 < value <= 100 else None


def _group_by(tokens: Sequence[str], subjects: tuple[Subject, ...]) -> str:
    if subjects:
        return subjects[0].kind
    for token in tokens:
        word = token.rstrip("s")
        if word in _GROUP_WORDS:
            return _GROUP_WORDS[word]
    return "model"


def _subjects(
    tokens: Sequence[str], names: Names
) -> tuple[tuple[Subject, ...], tuple[str, tuple[str, ...]] | None]:
    """The names in ``tokens`` (longest match first), and an ambiguous name with its options."""
    exact = names.lookup
    squashed = [_squash(token) for token in tokens]
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
                options = tuple(m for m in names.models if _squash(m).startswith(key))
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
        parts = [p for p in re.split(r"[-._]", model) if p]
        words = [p for p in parts if p.isalpha()]
        if not words:
            continue
        family = words[0]
        families.setdefault(family, set()).add(names.model_providers.get(model, ""))
        variant = words[1:]
        if variant:
            out[_squash(family + "".join(variant))] = Subject("model", model)
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


def _squash(name: str) -> str:
    return name.lower().translate(_SQUASH)


def _has(text: str, words: tuple[str, ...]) -> bool:
    return _pattern(words).search(text) is not None


@functools.cache
def _pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    """One regular expression for a word list: short words ("ai", "roi") must start a word."""
    parts = [rf"\b{w}" if w.isalpha() and len(w) <= 3 else re.escape(w) for w in words]
    return re.compile("|".join(parts))


def _or_list(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} or {names[-1]}"
