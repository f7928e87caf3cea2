"""The price table: what ships, how names resolve, what a call costs, which models are cheaper."""

from __future__ import annotations

import copy
import re
from datetime import date
from typing import Any

import pytest

from runwire.errors import InputError
from runwire.usage.pricing import ModelPrice, PricingTable, normalize_model_name

pytestmark = pytest.mark.unit

BRIEF_MODELS = {
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4.1"),
    ("openai", "gpt-4.1-mini"),
    ("openai", "gpt-4.1-nano"),
    ("openai", "o3-mini"),
    ("anthropic", "claude-3-5-sonnet"),
    ("anthropic", "claude-3-5-haiku"),
    ("anthropic", "claude-3-haiku"),
    ("google", "gemini-1.5-pro"),
    ("google", "gemini-1.5-flash"),
    ("google", "gemini-2.0-flash"),
    ("mistral", "mistral-large"),
    ("mistral", "mistral-small"),
}


@pytest.fixture(scope="module")
def table() -> PricingTable:
    return PricingTable.load()


def _valid() -> dict[str, Any]:
    return {
        "as_of": "2025-05-01",
        "source": "test prices",
        "tiers": ["frontier", "mid", "small"],
        "models": [
            {"provider": "acme", "model": "big", "input": 10, "output": 20, "tier": "frontier"},
            {"provider": "acme", "model": "medium", "input": 2, "output": 4, "tier": "mid"},
            {"provider": "acme", "model": "tiny", "input": 0.1, "output": 0.2, "tier": "small"},
            {"provider": "acme", "model": "odd", "input": 1, "output": 30, "tier": "mid"},
            {"provider": "other", "model": "rival", "input": 0.5, "output": 1, "tier": "mid"},
        ],
    }


def test_packaged_table_is_dated_sourced_and_covers_the_common_models(table: PricingTable) -> None:
    assert date.fromisoformat(table.as_of)
    assert "list prices" in table.source.lower()
    assert "pricing" in table.source.lower()
    assert {(m.provider, m.model) for m in table.models} >= BRIEF_MODELS
    assert table.tiers == ("frontier", "mid", "small")
    assert all(m.input_per_mtok > 0 and m.output_per_mtok > 0 for m in table.models)


def test_cost_is_per_million_tokens(table: PricingTable) -> None:
    # gpt-4o lists at $2.50 input and $10.00 output per 1M tokens.
    assert table.cost("openai", "gpt-4o", 1_000_000, 0) == pytest.approx(2.5)
    assert table.cost("openai", "gpt-4o", 1000, 500) == pytest.approx(0.0025 + 0.005)
    assert table.cost("openai", "gpt-4o", 0, 0) == 0


@pytest.mark.parametrize(
    ("spelled", "base"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("GPT-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai/gpt-4o", "gpt-4o"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),
        ("us.anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
        ("models/gemini-1.5-pro-002", "gemini-1.5-pro"),
        ("mistral-large-2411", "mistral-large"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
    ],
)
def test_dated_and_prefixed_names_resolve_to_the_base_model(
    table: PricingTable, spelled: str, base: str
) -> None:
    assert normalize_model_name(spelled) == base
    price = table.lookup("openai", spelled)
    assert price is not None and price.model == base


def test_a_suffix_that_names_a_different_model_is_kept(table: PricingTable) -> None:
    mini = table.cost("openai", "gpt-4o-mini", 1_000_000, 0)
    full = table.cost("openai", "gpt-4o", 1_000_000, 0)
    assert mini is not None and full is not None and mini < full


def test_unknown_model_has_no_cost(table: PricingTable) -> None:
    assert table.lookup("openai", "gpt-7-ultra") is None
    assert table.cost("openai", "gpt-7-ultra", 10, 10) is None
    assert table.cheaper_candidates("openai", "gpt-7-ultra") == []


def test_resellers_are_priced_by_model_name(table: PricingTable) -> None:
    assert table.cost("azure", "gpt-4o", 1000, 0) == table.cost("openai", "gpt-4o", 1000, 0)


def test_cheaper_candidates_stay_with_the_provider_and_at_most_one_tier_down(
    table: PricingTable,
) -> None:
    for model in table.models:
        rank = table.tiers.index(model.tier)
        for cand in table.cheaper_candidates(model.provider, model.model):
            assert cand.provider == model.provider
            assert cand.model != model.model
            assert table.tiers.index(cand.tier) in (rank, rank + 1)
            assert cand.input_per_mtok <= model.input_per_mtok
            assert cand.output_per_mtok <= model.output_per_mtok
            assert cand.cost(3000, 1000) < model.cost(3000, 1000)


def test_frontier_models_have_their_small_siblings_as_candidates(table: PricingTable) -> None:
    assert table.cheaper_candidates("openai", "gpt-4o")[0].model == "gpt-4o-mini"
    assert [m.model for m in table.cheaper_candidates("anthropic", "claude-3-5-sonnet")] == [
        "claude-3-5-haiku"
    ]
    # claude-3-haiku is two tiers below sonnet: too big a step to propose.
    assert "claude-3-haiku" not in [
        m.model for m in table.cheaper_candidates("anthropic", "claude-3-5-sonnet")
    ]
    assert table.cheaper_candidates("openai", "gpt-4.1-nano") == []


def test_candidates_must_be_cheaper_on_both_rates() -> None:
    table = PricingTable.from_mapping(_valid())
    # "odd" has a cheaper input but a dearer output than "big": cheaper only for some token mixes.
    assert [m.model for m in table.cheaper_candidates("acme", "big")] == ["medium"]
    assert [m.model for m in table.cheaper_candidates("acme", "medium")] == ["tiny"]
    assert table.cheaper_candidates("acme", "odd") == [
        ModelPrice("acme", "tiny", 0.1, 0.2, "small")
    ]


def test_custom_table_keeps_its_date_and_source() -> None:
    table = PricingTable.from_mapping(_valid())
    assert (table.as_of, table.source) == ("2025-05-01", "test prices")
    assert table.cost("x", "medium", 1_000_000, 1_000_000) == pytest.approx(6.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("as_of"), "'as_of'"),
        (lambda d: d.update(source=""), "'source'"),
        (lambda d: d.update(tiers=[]), "'tiers'"),
        (lambda d: d.update(models={}), "'models' must be a list"),
        (lambda d: d["models"].append("gpt"), "models[5] must be an object"),
        (lambda d: d["models"][0].update(provider=3), "'provider'"),
        (lambda d: d["models"][0].update(model="Big-2024-01-01"), "base model name"),
        (lambda d: d["models"][0].update(tier="huge"), "'tier' must be one of"),
        (lambda d: d["models"][0].update(input=-1), "'input' must be a number"),
        (lambda d: d["models"][0].update(output=True), "'output' must be a number"),
        (lambda d: d["models"].append(dict(d["models"][0])), "listed twice"),
    ],
)
def test_a_malformed_table_is_refused_with_the_reason(change: Any, message: str) -> None:
    data = copy.deepcopy(_valid())
    change(data)
    with pytest.raises(InputError, match=re.escape(message)):
        PricingTable.from_mapping(data)


def test_answers_asked_again_are_the_same_and_a_caller_cannot_change_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The table keeps what it found for each spelling (a new user's first question asks again
    # for every model of theirs); kept or not, the answer is the table's.
    monkeypatch.setattr("runwire.usage.pricing._KEPT_SPELLINGS", 2)
    table = PricingTable.from_mapping(_valid())
    spellings = ["big", "acme/big", "BIG-2024-05-01", "us.acme.big:0", "nope"]
    first = [table.lookup("acme", name) for name in spellings]
    assert [price.model if price else None for price in first] == ["big"] * 4 + [None]
    assert [table.lookup("acme", name) for name in spellings] == first
    found = table.cheaper_candidates("acme", "big")
    found.append(ModelPrice("acme", "free", 0, 0, "small"))  # the caller's list, not the table's
    assert [m.model for m in table.cheaper_candidates("acme", "acme/big")] == ["medium"]
    assert table.cheaper_candidates("acme", "nope-2024") == []
