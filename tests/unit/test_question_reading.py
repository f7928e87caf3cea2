"""Reading a question (agents/question.py, names.py, vocabulary.py) at its edges: empty text,
percentiles out of range, ties between topics, names that overlap, words inside other words."""

from __future__ import annotations

import pytest

from runwire.agents.blackboard import Focus
from runwire.agents.names import Names, Subject, find_subjects
from runwire.agents.question import classify
from runwire.agents.vocabulary import mentions

pytestmark = pytest.mark.unit

NAMES = Names(
    models=("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "llama-3-70b"),
    providers=("openai", "anthropic", "groq", "together"),
    features=("summarize", "chat"),
    priced_models=("gpt-4.1", "gpt-4o"),
    model_providers={
        "gpt-4o": "openai",
        "gpt-4o-mini": "openai",
        "claude-3-5-sonnet": "anthropic",
        "llama-3-70b": "groq",
    },
)


def test_short_words_count_only_at_the_start_of_a_word() -> None:
    assert mentions(" what did ai cost ", ("ai",))
    assert not mentions(" he said so ", ("ai",))
    assert mentions(" our savings ", ("sav",))  # longer stems match inside words
    assert mentions(" over $5 ", ("$",))  # a symbol is matched as itself


def test_every_spelling_of_a_name_finds_it() -> None:
    for spelling in ("gpt4o", "gpt-4o", "GPT 4o"):
        [found] = find_subjects(spelling.lower().split(), NAMES)[0]
        assert found == Subject("model", "gpt-4o")
    # The user's own model, though the price table knows it too, is one with calls.
    assert NAMES.lookup["gpt4o"].in_data
    assert NAMES.lookup["gpt41"] == Subject("model", "gpt-4.1", in_data=False)


def test_the_longest_name_wins_and_a_name_said_twice_is_one_subject() -> None:
    subjects, ambiguous = find_subjects(["gpt", "4o", "mini", "or", "gpt-4o-mini"], NAMES)
    assert (subjects, ambiguous) == ((Subject("model", "gpt-4o-mini"),), None)


def test_a_family_names_its_provider_only_when_one_provider_serves_it() -> None:
    assert NAMES.lookup["claude"] == Subject("provider", "anthropic")
    assert NAMES.lookup["sonnet"] == Subject("model", "claude-3-5-sonnet")
    two = Names(
        models=("llama-3-70b", "llama-3-8b"),
        model_providers={"llama-3-70b": "groq", "llama-3-8b": "together"},
    )
    assert "llama" not in two.lookup
    # A common variant word is no model's name ("mini" tasks).
    assert "mini" not in NAMES.lookup


def test_an_empty_question_is_the_overall_report() -> None:
    for text in ("", "   "):
        asked = classify(text, NAMES)
        assert (asked.kind, asked.named, asked.subjects) == (Focus.COST, False, ())


@pytest.mark.parametrize(
    ("question", "percentile"),
    [("p0 latency", 95), ("p100 latency", 95), ("p50 latency", 50), ("the 75th percentile", 75)],
)
def test_a_percentile_out_of_range_falls_back_to_p95(question: str, percentile: int) -> None:
    asked = classify(question, NAMES)
    assert (asked.kind, asked.percentile) == (Focus.LATENCY, percentile)


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("latency and cost?", Focus.LATENCY),  # the earlier topic word leads
        ("cost and latency?", Focus.SPEND),  # cost without a wish to save is the spend
        ("cut the cost and latency", Focus.COST),
        ("errors or caching", Focus.ERRORS),
        ("help", Focus.DATA),
    ],
)
def test_the_first_topic_named_leads(question: str, kind: Focus) -> None:
    assert classify(question, NAMES).kind is kind


def test_what_records_cannot_tell_comes_before_any_topic() -> None:
    asked = classify("cost per user", NAMES)
    assert (asked.kind, asked.missing) == (Focus.OFF_TOPIC, "who made each call")
    # ...but an ambiguous name is asked back first.
    assert classify("gpt-4 revenue", NAMES).kind is Focus.UNCLEAR


def test_words_outside_the_domain_are_off_topic_or_asked_back() -> None:
    assert classify("what is the weather in paris", NAMES).kind is Focus.OFF_TOPIC
    vague = classify("is it good or not", NAMES)
    assert (vague.kind, vague.clarify) == (
        Focus.UNCLEAR,
        "What would you like to know about your LLM usage?",
    )


def test_windows_of_a_trend() -> None:
    assert classify("cost trend this month", NAMES).window_days == 30
    assert classify("errors today", NAMES).window_days == 1
    assert classify("how did cost change over the week", NAMES).window_days == 7


def test_a_comparison_across_a_dimension_takes_the_users_names() -> None:
    asked = classify("compare providers", NAMES)
    assert (asked.kind, asked.group_by) == (Focus.COMPARE, "provider")
    assert [s.name for s in asked.subjects] == ["openai", "anthropic", "groq", "together"]
    with_one = classify("compare gpt-4o", NAMES)
    assert with_one.kind is Focus.UNCLEAR
    assert with_one.clarify == (
        "Compare gpt-4o with which model? Your models: gpt-4o-mini, claude-3-5-sonnet or "
        "llama-3-70b."
    )


def test_at_most_eight_names_are_compared() -> None:
    many = Names(models=tuple(f"m{i}x" for i in range(10)))
    asked = classify(" ".join(many.models), many)
    assert asked.kind is Focus.COMPARE
    assert [s.name for s in asked.subjects] == [f"m{i}x" for i in range(8)]


def test_a_reading_shows_what_to_ask_back_only_when_there_is_something() -> None:
    public = classify("latency of gpt-4o", NAMES).public()
    assert "clarify" not in public and "missing" not in public
    assert public["subjects"] == [{"kind": "model", "name": "gpt-4o", "in_data": True}]
    unclear = classify("compare", NAMES).public()
    assert unclear["candidates"] == list(NAMES.models)
