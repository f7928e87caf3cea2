"""The quality gate's checker (agents/quality.py): which figures a text shows, whether the tools
computed them (as the agents format and round them), whether it addresses what was asked, and
whether it says anything at all. Pure: synthetic tool results, no run."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from runwire.agents.figures import figures
from runwire.agents.model_loop import INSTRUCTIONS, SYSTEM_PROMPT
from runwire.agents.quality import Reason, assess

pytestmark = pytest.mark.unit

RESULTS: list[tuple[str, Any]] = [
    (
        "usage_overview",
        {
            "calls": 4071,
            "first_call": "2025-04-01T00:03:00Z",
            "total_cost_usd": 49.6134,
            "monthly_cost_usd": 50.8861,
        },
    ),
    (
        "cost_breakdown",
        {
            "total_cost_usd": 49.6134,
            "models": [
                {"model": "claude-3-5-sonnet", "cost_usd": 21.6081, "share_pct": 43.6},
                {"model": "gpt-4o", "cost_usd": 8.2573, "share_pct": 16.6},
            ],
        },
    ),
    ("latency_percentiles", {"overall": {"p95": 12802.8}, "per_call_usd": 0.00004}),
    ("error_rates", {"overall": {"error_rate": 0.024}}),
    ("rank_actions", [{"monthly_savings_usd": 30.5}, {"monthly_savings_usd": 10.1}]),
    ("compose_answer", {"headline": "You could save $777.77"}),  # the answer, not a source
]
SPEND = {"kind": "spend", "subjects": [], "percentile": 95, "window_days": 7}


def shown(text: str) -> list[tuple[str, float, str]]:
    return [(f.text, f.value, f.unit) for f in figures(text)]


def test_figures_are_read_as_the_agents_write_them() -> None:
    assert shown("$1,234.56, 12.3%, 1,521 ms, 4,071 calls, <$0.0001, $4.2k, 1.5 s, 2M") == [
        ("$1,234.56", 1234.56, "$"),
        ("12.3%", 12.3, "%"),
        ("1,521 ms", 1521.0, "ms"),
        ("4,071", 4071.0, ""),
        ("<$0.0001", 0.00005, "$"),
        ("$4.2k", 4200.0, "$"),
        ("1.5 s", 1500.0, "ms"),
        ("2M", 2_000_000.0, ""),
    ]


def test_names_list_markers_and_percentile_labels_are_not_figures() -> None:
    text = "1. gpt-4o, claude-3-5-sonnet and gemini-1.5-pro at p95 (95th)\n2. llama3.1:8b"
    assert shown(text) == []


def test_a_date_is_one_figure() -> None:
    assert shown("from 2025-04-01 on") == [("2025-04-01", 20250401.0, "date")]


def test_figures_the_tools_computed_pass_at_the_precision_shown() -> None:
    text = (
        "## Spend: claude-3-5-sonnet costs the most, $21.61 of $49.61 (43.6%)\n\n"
        "4,071 calls since 2025-04-01; p95 is 12,803 ms (about 13 s); 2.4% of calls failed; "
        "about $51 a month; a call costs $0.0000 to <$0.0001."
    )
    verdict = assess(text, RESULTS, reading=SPEND)
    assert verdict.passed and verdict.score == 1.0
    assert verdict.figures == verdict.supported == 11


@pytest.mark.parametrize(
    "figure",
    ["$21.62", "$49.60", "43.7%", "12,804 ms", "4,072", "2025-04-02", "$777.77", "$98,765.43"],
)
def test_a_figure_off_by_its_last_digit_or_invented_fails(figure: str) -> None:
    verdict = assess(f"Your spend: {figure} on claude-3-5-sonnet.", RESULTS, reading=SPEND)
    assert verdict.unsupported == (figure,)
    assert verdict.reasons == [Reason.UNSUPPORTED_FIGURE.value]
    assert verdict.problems[0].message == f"1 figure no tool computed: {figure}"
    assert verdict.score == pytest.approx(2 / 3, abs=0.001)


def test_sums_ratios_totals_and_changes_of_stated_figures_pass() -> None:
    text = (
        "claude-3-5-sonnet and gpt-4o cost $21.61 and $8.26: $29.87 together, $13.35 apart; "
        "claude-3-5-sonnet costs 2.6 times as much, 161.7% more. "
        "The actions save $40.60 a month, 79.8% of $50.89."
    )
    assert assess(text, RESULTS, reading=SPEND).passed


def test_the_reading_and_the_references_supply_figures_too() -> None:
    reading = {**SPEND, "window_days": 14}
    assert assess("The last 14 days cost $49.61.", RESULTS, reading=reading).passed
    note = "Prices at the <=128k-token rate"
    text = "Gemini is priced at its 128k rate; spend is $49.61."
    assert not assess(text, RESULTS, reading=SPEND).passed
    assert assess(text, RESULTS, reading=SPEND, references=[note]).passed


def test_the_question_asked_must_be_addressed() -> None:
    subject = {"kind": "subject", "subjects": [{"kind": "model", "name": "gpt-4o"}]}
    verdict = assess("claude-3-5-sonnet costs $21.61.", RESULTS, reading=subject)
    assert verdict.reasons == ["subject_missing"]
    assert verdict.problems[0].message == "the answer does not address model gpt-4o"
    assert assess("GPT 4o costs $8.26.", RESULTS, reading=subject).passed  # however spelled

    latency = {"kind": "latency", "subjects": []}
    verdict = assess("You spend $49.61.", RESULTS, reading=latency)
    assert (
        verdict.problems[0].message == "the answer does not address the question's topic (latency)"
    )
    assert assess("Your p95 is 12,803 ms.", RESULTS, reading=latency).passed

    unclear = {"kind": "unclear", "subjects": []}
    assert assess("Use gpt-4o.", RESULTS, reading=unclear).reasons == ["subject_missing"]
    assert assess("Which gpt-4 do you mean?", RESULTS, reading=unclear).passed


def test_generic_filler_is_low_value() -> None:
    filler = "Great question! Your usage looks healthy overall and there is a lot going on."
    verdict = assess(filler, RESULTS, reading={"kind": "off_topic", "subjects": []})
    assert verdict.reasons == ["low_value"]
    assert verdict.problems[0].message == "the answer has no figure and no action to take"
    assert verdict.score == pytest.approx(2 / 3, abs=0.001)
    # An action is worth something without a figure; so is a figure without an action.
    assert assess("Switch short prompts to gpt-4o-mini.", RESULTS).passed
    assert assess("That was 4,071 calls.", RESULTS).passed


def test_an_answer_that_restates_the_models_instructions_fails() -> None:
    # What Gemma 3 270M wrote (docs/agents.md, "A real model in the tests"): its system prompt,
    # then the data's summary, until the token cap. Its figures are a tool's, it talks of cost.
    echo = f"{SYSTEM_PROMPT}\n\nThe user's data holds 4071 calls from 2025-04-01 to"
    verdict = assess(echo, RESULTS, reading=SPEND, instructions=INSTRUCTIONS)
    assert verdict.reasons == [Reason.ECHOES_INSTRUCTIONS.value]
    assert verdict.problems[0].message == (
        "the answer restates runwire's instructions to the model instead of answering: 50 of "
        "its 62 words quote them"
    )
    assert verdict.unsupported == () and verdict.score == pytest.approx(2 / 3, abs=0.001)
    assert assess(echo, RESULTS, reading=SPEND).passed  # what the gate let through before
    # Case, punctuation and layout aside; in pieces, when they are a third of its words or more.
    pieces = (
        "YOU ARE RUNWIRE'S ANALYST: spend is $49.61.\n\nYou are runwire's analyst: "
        "claude-3-5-sonnet costs $21.61.\n\n*You are runwire's analyst.*"
    )
    verdict = assess(pieces, RESULTS, reading=SPEND, instructions=INSTRUCTIONS)
    assert verdict.problems[0].message.endswith(": 15 of its 26 words quote them")


def test_an_answer_quoting_a_phrase_of_its_instructions_passes() -> None:
    instructions = [SYSTEM_PROMPT]
    answer = (
        "To cut the cost, latency and failures of your LLM usage, start with claude-3-5-sonnet: "
        "it costs $21.61 of your $49.61 (43.6%); answer in Markdown, concisely: switch its short "
        "prompts to a cheaper model."
    )
    assert assess(answer, RESULTS, reading=SPEND, instructions=instructions).passed
    # The same answer that goes on to quote a whole sentence of them no longer does.
    quoting = f"{answer} Call the tools to measure the user's usage data."
    assert assess(quoting, RESULTS, reading=SPEND, instructions=instructions).reasons == [
        "echoes_instructions"
    ]


def test_every_problem_counts_and_the_verdict_is_public() -> None:
    latency = {"kind": "latency", "subjects": [{"kind": "model", "name": "o3"}]}
    verdict = assess(
        "It is $1.23, $4.56, $7.89, $10.11, $12.13 and $14.15.", RESULTS, reading=latency
    )
    assert verdict.public() == {
        "score": 0.333,  # no figure supported, the subject missing; but figures are of value
        "passed": False,
        "reasons": [
            {
                "reason": "unsupported_figure",
                "message": "6 figures no tool computed: $1.23, $4.56, $7.89, $10.11, $12.13 …",
            },
            {"reason": "subject_missing", "message": "the answer does not address model o3"},
        ],
        "figures": 6,
        "supported": 0,
        "unsupported": ["$1.23", "$4.56", "$7.89", "$10.11", "$12.13", "$14.15"],
    }


def test_small_whole_numbers_are_prose_and_nothing_is_checked_without_a_reading() -> None:
    verdict = assess("The top 3 of your 2 providers: switch them.", [], reading=None)
    assert verdict.passed and verdict.figures == 0


def test_names_are_held_to_what_the_kind_is_about() -> None:
    never_called = {"kind": "latency", "subjects": [{"name": "o3", "in_data": False}]}
    assert assess("Your p95 is 12,803 ms.", RESULTS, reading=never_called).passed
    # A trend, the data, an off-topic question are answered whole, whatever they name.
    for kind in ("trend", "data", "off_topic"):
        reading = {"kind": kind, "subjects": [{"kind": "model", "name": "gpt-4o"}]}
        assert assess("Over the days before: 4,071 calls.", RESULTS, reading=reading).passed


def test_numbers_that_are_no_figures_are_left_out() -> None:
    odd: list[tuple[str, Any]] = [("x", {"nan": float("nan"), "inf": float("inf"), "n": None})]
    odd.append(("y", {"flag": True, "blob": b"123", "n": 7.5}))
    verdict = assess("It took 7.5 ms; switch.", odd)
    assert verdict.passed and verdict.supported == 1


def test_each_figure_keeps_the_precision_it_is_shown_at() -> None:
    # What a figure may be off by: half a unit of its last digit shown, scaled as its value is;
    # a bound ("<") anything from 0 up to it; a long fraction, however long.
    text = "$1,234.56, 12.3%, 4,071, <$0.0001, $4.2k, 1.5 s, 7 ms, 0.1234567890123456789 and\n3) 2M"
    assert [(f.text, f.value, f.unit, f.tolerance) for f in figures(text)] == [
        ("$1,234.56", 1234.56, "$", 0.5 * 10**-2),
        ("12.3%", 12.3, "%", 0.5 * 10**-1),
        ("4,071", 4071.0, "", 0.5),
        ("<$0.0001", 0.00005, "$", 0.00005),
        ("$4.2k", 4200.0, "$", 0.5 * 10**-1 * 1e3),
        ("1.5 s", 1500.0, "ms", 0.5 * 10**-1 * 1e3),
        ("7 ms", 7.0, "ms", 0.5),
        ("0.1234567890123456789", 0.1234567890123456789, "", 0.5 * 10**-19),
        ("2M", 2_000_000.0, "", 0.5 * 1e6),
    ]
    # Without a "." or a ")" a text has no list marker to take out; its figures are the same.
    assert shown("1 2025-04-01 and 13 calls") == [
        ("2025-04-01", 20250401.0, "date"),
        ("1", 1.0, ""),
        ("13", 13.0, ""),
    ]


def test_a_rate_kept_as_a_fraction_supports_its_percentage() -> None:
    verdict = assess("Errors: 12.5% of calls; fix them.", [("error_rates", {"rate": 0.125})])
    assert verdict.passed and verdict.figures == verdict.supported == 1
    verdict = assess("Errors: 12.6% of calls; fix them.", [("error_rates", {"rate": 0.125})])
    assert verdict.unsupported == ("12.6%",)


def test_any_mapping_in_the_results_is_read_as_a_dict_is() -> None:
    # A read-only mapping, alone or as the rows of a table (whose column total counts), and a
    # text repeated across results: the same figures as from plain dicts.
    rows = [MappingProxyType({"model": "gpt-4o", "usd": 1.25}), MappingProxyType({"usd": 2.5})]
    results: list[tuple[str, Any]] = [
        ("a", MappingProxyType({"latency": 812.0, "note": "up 4.5% since 2025-04-01"})),
        ("b", {"rows": rows, "note": "up 4.5% since 2025-04-01"}),
    ]
    text = "Latency 812 ms, up 4.5% since 2025-04-01; $1.25 and $2.50, $3.75 in all: switch."
    verdict = assess(text, results)
    assert verdict.passed and verdict.figures == verdict.supported == 6
