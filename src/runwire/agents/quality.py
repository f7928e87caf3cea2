"""The quality gate: is an answer grounded in what the run's tools computed?

:func:`assess` scores a text against the results of a run's tools and triage's reading of the
question, with three checks (docs/agents.md, "Quality gate"):

- **figures**: every figure in the text (``$1,234.56``, ``12.3%``, ``1,521 ms``, ``4,071``, a
  date) is one the tools computed, as the agents format it: rounded to the precision shown,
  thousands separators, ``$``, ``%``, ``ms``, ``s``, ``k``/``M``. A figure may also be the total
  of a column of a tool's table, or a sum, difference or ratio (also as a percentage or a percent
  change) of two figures the text states that the tools computed.
- **subject**: the text addresses what triage read: each name the question asked about, and
  the kind's topic (a latency question talks about latency).
- **value**: a text with no checked figure and no action to take (nor, for an unclear
  question, a question back) is generic filler; a text that restates the instructions its writer
  was given (a model's system prompt) is no answer either.

The checker is pure: the same text against the same results always gets the same verdict.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runwire.agents.evidence import Numbers, derived
from runwire.agents.figures import Figure, is_prose, scan

__all__ = ["Problem", "Reason", "Verdict", "assess"]

# The tools whose results are the answer itself (its headline), not a measurement of the data.
_NOT_SOURCES = frozenset({"compose_answer"})

# Numbers every answer may use: a month of 30 days (monthly figures), and 100 (percent).
_CONSTANTS = (30.0, 100.0)
# The figures shown in a rejection's message, at most.
_SHOWN = 5

_ACTION_WORDS = re.compile(
    r"\b(switch|move|moving|route|routing|cache|caching|retry|retries|batch|trim|shorten|cap|"
    r"limit|reduce|cut|replace|use|try|add|import|load|set|enable|compare|ask|investigate|"
    r"monitor|check)\b",
    re.IGNORECASE,
)
# Words quoted in a row from the instructions: fewer is a turn of phrase ("cut the cost and"), this
# many a quotation ("cut the cost, latency and failures").
_QUOTE_WORDS = 5
# Quoted words that make a text a restatement of its instructions: in one stretch, or in all when
# they are a third of the text's words or more. A genuine answer may quote a phrase or two.
_ECHO_WORDS = 12
_ECHO_SHARE = 1 / 3
_WORD = re.compile(r"[a-z0-9]+")

# What a text about each kind of question talks about (the kind's topic words).
_TOPIC_WORDS = {
    kind: re.compile(words, re.IGNORECASE)
    for kind, words in {
        "cost": r"cost|sav|spend|\$|cheap|price",
        "spend": r"cost|spend|\$|price|cheap",
        "latency": r"latenc|p\d\d|\bms\b|slow|fast|percentile|median",
        "errors": r"error|fail|reliab",
        "caching": r"cach|repeat|duplicat",
        "trend": r"week|days?\b|trend|previous|before|change|up\b|down\b|month|today|yesterday",
        "data": r"calls?\b|data|records?",
    }.items()
}


# The kinds whose answer is about the names the question uses.
_ABOUT_NAMES = frozenset({"compare", "subject", "cost", "spend", "latency", "errors", "caching"})


class Reason(StrEnum):
    """Why an answer does not pass."""

    UNSUPPORTED_FIGURE = "unsupported_figure"  # a figure no tool computed
    SUBJECT_MISSING = "subject_missing"  # what was asked is not addressed
    LOW_VALUE = "low_value"  # generic filler: no figure, no action
    ECHOES_INSTRUCTIONS = "echoes_instructions"  # restates the writer's instructions


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason an answer fails, with a sentence a person can read."""

    reason: Reason
    message: str

    def public(self) -> dict[str, Any]:
        """As the ``quality_warning`` event, the run and ``validate_content`` show it."""
        return {"reason": self.reason.value, "message": self.message}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the gate found: ``score`` from 0 to 1, ``passed`` when no problem was found.

    The score is the mean of the three checks: the share of figures supported (1 with none),
    whether the subject is addressed (1 or 0), whether the text has value (1 or 0; 0 when it
    restates its instructions).
    """

    score: float
    problems: tuple[Problem, ...] = ()
    figures: int = 0
    supported: int = 0
    unsupported: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def reasons(self) -> list[str]:
        """The problems' reason codes, in the order found."""
        return [p.reason.value for p in self.problems]

    def public(self) -> dict[str, Any]:
        """As the ``quality_warning`` event, the run and ``validate_content`` show it."""
        return {
            "score": self.score,
            "passed": self.passed,
            "reasons": [p.public() for p in self.problems],
            "figures": self.figures,
            "supported": self.supported,
            "unsupported": list(self.unsupported),
        }


def assess(
    text: str,
    results: Iterable[tuple[str, Any]],
    *,
    question: str = "",
    reading: Mapping[str, Any] | None = None,
    references: Iterable[str] = (),
    instructions: Iterable[str] = (),
) -> Verdict:
    """Score ``text`` against a run's tool ``results`` (``(tool name, result)`` pairs), the
    ``question`` and triage's ``reading`` of it (the ``classify_question`` result),
    ``references``: texts an answer may quote (the price table's date and source), and
    ``instructions``: what the text's writer was told to do (a model's system prompt, without the
    data it carries), which the text must not restate."""
    sources = [result for name, result in results if name not in _NOT_SOURCES]
    numbers = Numbers([*sources, question, *references])
    allowed = set(_CONSTANTS)
    if reading:
        allowed.update(float(reading.get(k, 0) or 0) for k in ("percentile", "window_days"))

    # The text's figures as scan's tuples, a Figure made only for one that no tool's number
    # shows (few): a long answer shows a hundred or more, and this runs on every new user's
    # first question (docs/decisions.md, "Session 15: coldfast").
    shown = 0
    anchors: list[float] = []
    pending: list[Figure] = []
    near, dates = numbers.near, numbers.dates
    for shown_text, value, unit, tolerance in scan(text):
        if is_prose(shown_text, value, unit, tolerance):
            continue
        shown += 1
        if unit == "date":
            if value not in dates:
                pending.append(Figure(shown_text, value, unit, tolerance))
            continue
        # As candidates(): the value, and for a percentage the rate kept as a fraction.
        hit = near(value, tolerance)
        if hit is None and unit == "%":
            hit = near(value / 100, tolerance / 100)
        if hit is not None:
            anchors.append(hit)
        elif not any(abs(value - c) <= tolerance for c in allowed):
            pending.append(Figure(shown_text, value, unit, tolerance))
    anchors = sorted(set(anchors))
    unsupported = [f.text for f in pending if f.unit == "date" or not derived(f, anchors)]

    problems: list[Problem] = []
    if unsupported:
        listed = ", ".join(unsupported[:_SHOWN]) + (" …" if len(unsupported) > _SHOWN else "")
        problems.append(
            Problem(
                Reason.UNSUPPORTED_FIGURE,
                f"{len(unsupported)} figure{'s' if len(unsupported) != 1 else ''} no tool "
                f"computed: {listed}",
            )
        )
    said = _Words(text)
    missing = _missing_subject(text, said, reading)
    if missing:
        problems.append(Problem(Reason.SUBJECT_MISSING, f"the answer does not address {missing}"))
    # A clarifying question is what an unclear question needs, figures or not.
    asks_back = reading is not None and reading.get("kind") == "unclear" and "?" in text
    valuable = shown > 0 or asks_back or _ACTION_WORDS.search(text) is not None
    echo = _echo(said, instructions)
    if echo:
        problems.append(Problem(Reason.ECHOES_INSTRUCTIONS, echo))
    if not valuable:
        problems.append(Problem(Reason.LOW_VALUE, "the answer has no figure and no action to take"))
    share = (shown - len(unsupported)) / shown if shown else 1.0
    # A restatement of the instructions is worth nothing, whatever figures it repeats.
    worth = 1.0 if valuable and not echo else 0.0
    score = round((share + (0.0 if missing else 1.0) + worth) / 3, 3)
    return Verdict(
        score=score,
        problems=tuple(problems),
        figures=shown,
        supported=shown - len(unsupported),
        unsupported=tuple(unsupported),
    )


class _Words:
    """A text's words, lowercased: read once, when a check first needs them, for both the echo
    and the subject checks (a long answer's lowering and reading is most of what they cost)."""

    __slots__ = ("_squashed", "_text", "_words")

    def __init__(self, text: str) -> None:
        self._text = text
        self._words: list[str] | None = None
        self._squashed: str | None = None

    @property
    def words(self) -> list[str]:
        if self._words is None:
            self._words = _WORD.findall(self._text.lower())
        return self._words

    @property
    def squashed(self) -> str:
        """The words run together: the text without case, punctuation or layout."""
        if self._squashed is None:
            self._squashed = "".join(self.words)
        return self._squashed


def _echo(said: _Words, instructions: Iterable[str]) -> str | None:
    """How the text (``said``: its words) restates ``instructions`` (a sentence), or None when it does not: it quotes
    them, word for word, for at least :data:`_ECHO_WORDS` words in one stretch, or for that many
    in all making up a third of its words. Quotes are runs of :data:`_QUOTE_WORDS` words or more;
    case, punctuation and layout are ignored."""
    quotable: set[tuple[str, ...]] = set()
    for told in instructions:
        them = _WORD.findall(told.lower())
        quotable.update(
            tuple(them[i : i + _QUOTE_WORDS]) for i in range(len(them) - _QUOTE_WORDS + 1)
        )
    if not quotable:
        return None
    words = said.words
    quoted = [False] * len(words)
    for i in range(len(words) - _QUOTE_WORDS + 1):
        if tuple(words[i : i + _QUOTE_WORDS]) in quotable:
            quoted[i : i + _QUOTE_WORDS] = [True] * _QUOTE_WORDS
    total = sum(quoted)
    longest = run = 0
    for flag in quoted:
        run = run + 1 if flag else 0
        longest = max(longest, run)
    if longest < _ECHO_WORDS and not (total >= _ECHO_WORDS and total >= _ECHO_SHARE * len(words)):
        return None
    return (
        f"the answer restates runwire's instructions to the model instead of answering: {total} "
        f"of its {len(words)} words quote them"
    )


def _squash(text: str) -> str:
    """``text`` without case, punctuation or layout: its words run together."""
    return "".join(_WORD.findall(text.lower()))


def _missing_subject(text: str, said: _Words, reading: Mapping[str, Any] | None) -> str | None:
    """What of triage's reading the text leaves out (a name, or the kind's topic), or None;
    ``said``: the text's words."""
    if not reading:
        return None
    kind = str(reading.get("kind", ""))
    # Named subjects are what a comparison, a subject or a topic question is about; a trend,
    # the data, an off-topic or unclear question is answered whole, whatever it names.
    named = reading.get("subjects") or () if kind in _ABOUT_NAMES else ()
    for subject in named:
        name = str(subject.get("name", ""))
        # A name the user never called has no figures to address it with (docs/decisions.md).
        if name and subject.get("in_data", True) and _squash(name) not in said.squashed:
            return f"{subject.get('kind', 'subject')} {name}"
    topic = _TOPIC_WORDS.get(kind)
    if topic and not topic.search(text):
        return f"the question's topic ({kind})"
    if kind == "unclear" and "?" not in text:
        return "the clarifying question"
    return None
