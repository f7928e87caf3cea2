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

import bisect
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Figure", "Problem", "Reason", "Verdict", "assess", "figures"]

# The tools whose results are the answer itself (its headline), not a measurement of the data.
_NOT_SOURCES = frozenset({"compose_answer"})

# Whole numbers this small are prose ("the 3 models", "top 5"), not measurements.
_PROSE_MAX = 12
# Numbers every answer may use: a month of 30 days (monthly figures), and 100 (percent).
_CONSTANTS = (30.0, 100.0)
# The figures shown in a rejection's message, at most.
_SHOWN = 5

_DATE = re.compile(r"(?<![\w.])(\d{4})-(\d{2})-(\d{2})(?!\d)")
# A figure: not inside a name ("gpt-4o", "claude-3-5-sonnet", "p95", "llama3.1:8b").
_NUMBER = re.compile(
    r"(?<![\w.$])(?<![A-Za-z0-9]-)(?P<less><\s?)?(?P<usd>\$)?"
    r"(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>\.\d+)?"
    r"(?:\s?(?P<unit>%|ms\b|s\b|k\b|K\b|M\b))?(?![\w.]\w|[\w%])"
)
_LIST_MARKER = re.compile(r"^(\s*)\d+[.)]\s", re.MULTILINE)
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
    "cost": r"cost|sav|spend|\$|cheap|price",
    "spend": r"cost|spend|\$|price|cheap",
    "latency": r"latenc|p\d\d|\bms\b|slow|fast|percentile|median",
    "errors": r"error|fail|reliab",
    "caching": r"cach|repeat|duplicat",
    "trend": r"week|days?\b|trend|previous|before|change|up\b|down\b|month|today|yesterday",
    "data": r"calls?\b|data|records?",
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
class Figure:
    """A figure as a text shows it: its ``value`` (scaled by ``k``/``M``/``s``), the ``unit``
    (``$``, ``%``, ``ms``, ``date`` or empty) and the half-width of its shown precision."""

    text: str
    value: float
    unit: str
    tolerance: float

    @property
    def prose(self) -> bool:
        """A small whole number without a unit: prose, not a measurement."""
        return (
            not self.unit
            and self.tolerance == 0.5
            and self.value <= _PROSE_MAX
            and "," not in self.text
        )


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


def figures(text: str) -> list[Figure]:
    """The figures of ``text`` in order: dates first, then numbers, each as it is shown."""
    found: list[Figure] = []
    for match in _DATE.finditer(text):
        year, month, day = (int(g) for g in match.groups())
        found.append(Figure(match.group(0), year * 10_000 + month * 100 + day, "date", 0.0))
    rest = _DATE.sub(" ", _LIST_MARKER.sub(r"\1", text))
    for match in _NUMBER.finditer(rest):
        digits = match.group("int").replace(",", "")
        frac = match.group("frac") or ""
        value = float(digits + frac)
        tolerance = 0.5 * 10 ** -(len(frac) - 1) if frac else 0.5
        unit = match.group("unit") or ""
        scale = {"k": 1e3, "K": 1e3, "M": 1e6, "s": 1e3}.get(unit, 1.0)
        if match.group("less"):
            # "<$0.0001": anything from 0 up to the bound.
            value, tolerance = value / 2, value / 2
        if match.group("usd"):
            unit = "$" if unit in ("", "k", "K", "M") else unit
        elif unit in ("k", "K", "M"):
            unit = ""
        elif unit == "s":
            unit = "ms"
        found.append(Figure(match.group(0).strip(), value * scale, unit, tolerance * scale))
    return found


class _Numbers:
    """The numbers a run's tools produced, sorted, to find one near a value fast."""

    def __init__(self, results: Iterable[Any]) -> None:
        values: set[float] = set()
        dates: set[float] = set()
        for result in results:
            _collect(result, values, dates)
        self.sorted = sorted(values)
        self.dates = dates

    def near(self, value: float, tolerance: float) -> float | None:
        """A number within ``tolerance`` of ``value`` (the closest found), or None."""
        slack = tolerance * (1 + 1e-9) + 1e-12
        i = bisect.bisect_left(self.sorted, value - slack)
        if i < len(self.sorted) and self.sorted[i] <= value + slack:
            return self.sorted[i]
        return None


def _collect(value: Any, values: set[float], dates: set[float]) -> None:
    # Iterative, with exact-type fast paths: a run's results hold thousands of values, and this
    # runs once per answer (docs/decisions.md, "Cost").
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is float or kind is int:
            if math.isfinite(item):
                values.add(abs(float(item)))
        elif kind is str:
            _collect_text(item, values, dates)
        elif kind is dict or isinstance(item, Mapping):
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
            # A column's total ("save up to $40.60 a month" is the sum of the actions' savings).
            rows = [row for row in item if isinstance(row, Mapping)]
            if rows:
                totals: dict[str, float] = {}
                for row in rows:
                    for key, cell in row.items():
                        if _is_number(cell):
                            totals[key] = totals.get(key, 0.0) + float(cell)
                values.update(abs(total) for total in totals.values())


def _collect_text(text: str, values: set[float], dates: set[float]) -> None:
    if " " not in text and any(c.isalpha() for c in text):
        # A name, an id, a fingerprint or a timestamp: no figure but a leading date.
        match = _DATE.match(text)
        if match is None:
            return
        text = match.group(0)
    elif not any(c.isdigit() for c in text):
        return
    for figure in figures(text):
        if figure.unit == "date":
            dates.add(figure.value)
            # "April 1, 2025": the parts of a date are figures the text may show.
            year, rest = divmod(int(figure.value), 10_000)
            values.update((float(year), float(rest // 100), float(rest % 100)))
        else:
            values.add(figure.value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _within(ordered: list[float], low: float, high: float) -> bool:
    i = bisect.bisect_left(ordered, low)
    return i < len(ordered) and ordered[i] <= high


def _candidates(figure: Figure) -> list[tuple[float, float]]:
    """The values (and tolerances) a tool's number may have for ``figure`` to show it."""
    out = [(figure.value, figure.tolerance)]
    if figure.unit == "%":
        out.append((figure.value / 100, figure.tolerance / 100))  # a rate kept as a fraction
    return out


def _derived(figure: Figure, anchors: list[float]) -> bool:
    """Whether ``figure`` is a sum, difference or ratio of two anchors (figures the text
    states that the tools computed, sorted), within the figure's shown precision."""
    x, slack = figure.value, figure.tolerance * (1 + 1e-9) + 1e-12
    for a in anchors:
        if (
            _within(anchors, x - a - slack, x - a + slack)  # a + b
            or _within(anchors, a - x - slack, a - x + slack)  # a - b
            or _within(anchors, a + x - slack, a + x + slack)  # b - a
        ):
            return True
    targets = _candidates(figure)
    if figure.unit == "%":
        # A percent change: new/old = 1 ± x/100.
        targets += [(1 + x / 100, figure.tolerance / 100), (1 - x / 100, figure.tolerance / 100)]
    for target, tolerance in targets:
        tol = tolerance * (1 + 1e-9)
        for b in anchors:
            if b and _within(anchors, b * (target - tol), b * (target + tol)):  # a / b
                return True
    return False


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
    numbers = _Numbers([*sources, question, *references])
    allowed = set(_CONSTANTS)
    if reading:
        allowed.update(float(reading.get(k, 0) or 0) for k in ("percentile", "window_days"))

    shown = [f for f in figures(text) if not f.prose]
    anchors: list[float] = []
    pending: list[Figure] = []
    for figure in shown:
        if figure.unit == "date":
            if figure.value not in numbers.dates:
                pending.append(figure)
            continue
        hit = None
        for value, tolerance in _candidates(figure):
            hit = numbers.near(value, tolerance)
            if hit is not None:
                break
        if hit is not None:
            anchors.append(hit)
        elif not any(abs(figure.value - c) <= figure.tolerance for c in allowed):
            pending.append(figure)
    anchors = sorted(set(anchors))
    unsupported = [f.text for f in pending if f.unit == "date" or not _derived(f, anchors)]

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
    missing = _missing_subject(text, reading)
    if missing:
        problems.append(Problem(Reason.SUBJECT_MISSING, f"the answer does not address {missing}"))
    # A clarifying question is what an unclear question needs, figures or not.
    asks_back = reading is not None and reading.get("kind") == "unclear" and "?" in text
    valuable = bool(shown) or asks_back or _ACTION_WORDS.search(text) is not None
    echo = _echo(text, instructions)
    if echo:
        problems.append(Problem(Reason.ECHOES_INSTRUCTIONS, echo))
    if not valuable:
        problems.append(Problem(Reason.LOW_VALUE, "the answer has no figure and no action to take"))
    share = (len(shown) - len(unsupported)) / len(shown) if shown else 1.0
    # A restatement of the instructions is worth nothing, whatever figures it repeats.
    worth = 1.0 if valuable and not echo else 0.0
    score = round((share + (0.0 if missing else 1.0) + worth) / 3, 3)
    return Verdict(
        score=score,
        problems=tuple(problems),
        figures=len(shown),
        supported=len(shown) - len(unsupported),
        unsupported=tuple(unsupported),
    )


def _echo(text: str, instructions: Iterable[str]) -> str | None:
    """How ``text`` restates ``instructions`` (a sentence), or None when it does not: it quotes
    them, word for word, for at least :data:`_ECHO_WORDS` words in one stretch, or for that many
    in all making up a third of its words. Quotes are runs of :data:`_QUOTE_WORDS` words or more;
    case, punctuation and layout are ignored."""
    quotable: set[tuple[str, ...]] = set()
    for told in instructions:
        said = _WORD.findall(told.lower())
        quotable.update(
            tuple(said[i : i + _QUOTE_WORDS]) for i in range(len(said) - _QUOTE_WORDS + 1)
        )
    if not quotable:
        return None
    words = _WORD.findall(text.lower())
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
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _missing_subject(text: str, reading: Mapping[str, Any] | None) -> str | None:
    """What of triage's reading the text leaves out (a name, or the kind's topic), or None."""
    if not reading:
        return None
    squashed = _squash(text)
    kind = str(reading.get("kind", ""))
    # Named subjects are what a comparison, a subject or a topic question is about; a trend,
    # the data, an off-topic or unclear question is answered whole, whatever it names.
    named = reading.get("subjects") or () if kind in _ABOUT_NAMES else ()
    for subject in named:
        name = str(subject.get("name", ""))
        # A name the user never called has no figures to address it with (docs/decisions.md).
        if name and subject.get("in_data", True) and _squash(name) not in squashed:
            return f"{subject.get('kind', 'subject')} {name}"
    topic = _TOPIC_WORDS.get(kind)
    if topic and not re.search(topic, text, re.IGNORECASE):
        return f"the question's topic ({kind})"
    if kind == "unclear" and "?" not in text:
        return "the clarifying question"
    return None
