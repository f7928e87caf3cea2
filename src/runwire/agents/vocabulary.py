"""The words a question is read by: topics, time, comparison, the data, what records do not
hold, and runwire's domain.

Each list is matched as substrings of the lowered question (short alphabetic words only at the
start of a word), with one compiled pattern a list: :func:`mentions`.
"""

from __future__ import annotations

import functools
import re

from runwire.agents.blackboard import Focus

__all__ = [
    "COMPARE",
    "DATA",
    "DOMAIN",
    "GROUP_WORDS",
    "NOT_IN_DATA",
    "REFERRING",
    "SAVINGS",
    "TOPICS",
    "TREND",
    "mentions",
]

# Topic words, checked in the question; the earliest mention wins, so "latency and cost?" leads
# with latency. Cost words lead to savings when a savings word is anywhere in the question.
TOPICS: dict[Focus, tuple[str, ...]] = {
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
SAVINGS = ("sav", "cut", "reduce", "cheaper", "lower", "wast", "optimi", "cheap")
TREND = (
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
COMPARE = ("compare", "comparison", " vs", "versus", "differ", "side by side")
DATA = (
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
NOT_IN_DATA: tuple[tuple[tuple[str, ...], str], ...] = (
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
DOMAIN = (
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
GROUP_WORDS = {
    "feature": "feature",
    "provider": "provider",
    "vendor": "provider",
    "model": "model",
}
REFERRING = {"it", "that", "this", "them", "those", "these", "one", "they"}


def mentions(text: str, words: tuple[str, ...]) -> bool:
    """Whether ``text`` (lowered) holds one of ``words``."""
    return _pattern(words).search(text) is not None


@functools.cache
def _pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    """One regular expression for a word list: short words ("ai", "roi") must start a word."""
    parts = [rf"\b{w}" if w.isalpha() and len(w) <= 3 else re.escape(w) for w in words]
    return re.compile("|".join(parts))
