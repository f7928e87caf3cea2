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

The word lists are :mod:`runwire.agents.vocabulary`; the names and how they are found in the
question's words, :mod:`runwire.agents.names`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from runwire.agents.blackboard import Focus
from runwire.agents.names import Names, Subject, find_subjects
from runwire.agents.vocabulary import (
    COMPARE,
    DATA,
    DOMAIN,
    GROUP_WORDS,
    NOT_IN_DATA,
    REFERRING,
    SAVINGS,
    TOPICS,
    TREND,
    mentions,
)

__all__ = ["Question", "classify", "detect_focus"]

_PERCENTILE = re.compile(r"\bp(\d{1,2}(?:\.\d)?)\b|\b(\d{1,2})(?:st|nd|rd|th)? percentile")
_TOKEN = re.compile(r"[a-z0-9][a-z0-9._-]*")
_MAX_COMPARED = 8


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
    subjects, ambiguous = find_subjects(tokens, names)
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
    for words, missing in NOT_IN_DATA:
        if mentions(text, words):
            return replace(base, kind=Focus.OFF_TOPIC, missing=missing, subjects=subjects)
    if mentions(text, DATA) or tokens in (["help"], ["help", "me"]):
        return replace(base, kind=Focus.DATA)
    trend = mentions(text, TREND)
    compare = _compare(text, tokens, subjects, names, base, trend)
    if compare is not None:
        return compare
    if trend:
        window = 30 if "month" in text else 1 if mentions(text, ("today", "yesterday")) else 7
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
    if len(tokens) >= 3 and not mentions(text, DOMAIN) and not subjects:
        if len(tokens) <= 6 and REFERRING & set(tokens):
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
    asked = mentions(text, COMPARE) and not trend
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
        (GROUP_WORDS[t.rstrip("s")] for t in tokens if t.rstrip("s") in GROUP_WORDS), None
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
    for focus, words in TOPICS.items():
        positions = [text.find(w) for w in words if w in text]
        if positions:
            hits.append((min(positions), focus))
    if not hits:
        return None
    topic: Focus = min(hits, key=lambda hit: hit[0])[1]
    if topic is Focus.COST and not mentions(text, SAVINGS):
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
        if word in GROUP_WORDS:
            return GROUP_WORDS[word]
    return "model"


def _or_list(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} or {names[-1]}"
