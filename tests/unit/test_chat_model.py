"""The pure parts of the model path: Retry-After, the backoff, argument checks, usage and cost.

(OpenAIChatModel's own checks are in tests/integration/test_model.py, with the openai SDK it
imports: that import alone cost this file more than all its tests.)
"""

from __future__ import annotations

import email.utils

import pytest

from runwire.agents.chat_model import RetryPolicy, TokenUsage, retry_after_s
from runwire.agents.model_tools import check_arguments
from runwire.agents.model_usage import ModelUsage
from runwire.usage.pricing import PricingTable

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after-ms": "120"}, 0.12),
        ({"retry-after-ms": "120", "retry-after": "9"}, 0.12),  # the finer one wins
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after-ms": "inf"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "in a while"}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00"}, None),  # a date without a zone
        ({}, None),
    ],
)
def test_retry_after_reads_what_servers_send(headers: dict[str, str], wait: float | None) -> None:
    assert retry_after_s(headers) == wait


def test_retry_after_as_an_http_date_is_the_time_until_it() -> None:
    now = 1_764_979_200.0
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert retry_after_s({"retry-after": date}, now=now) == 7.0
    assert retry_after_s({"retry-after": date}, now=now + 60) == 0.0


def test_backoff_doubles_and_jitter_takes_at_most_a_quarter() -> None:
    policy = RetryPolicy(retries=3, base_s=0.5)
    assert [policy.backoff_s(n, 0.0) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert policy.backoff_s(2, 0.999) == pytest.approx(0.75, abs=0.001)
    with pytest.raises(ValueError, match="retries"):
        RetryPolicy(retries=-1)
    with pytest.raises(ValueError, match="base_s"):
        RetryPolicy(base_s=float("inf"))


SCHEMA = {
    "type": "object",
    "properties": {
        "top_n": {"type": "integer", "minimum": 1, "maximum": 20},
        "percentiles": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1, "maximum": 100},
        },
        "label": {"type": "string"},
        "free": {},
    },
    "required": ["label"],
}


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"label": "x"}, None),
        ({"label": "x", "top_n": 20, "percentiles": [1, 100], "free": [1]}, None),
        ({}, "missing argument 'label'"),
        ({"label": "x", "drop": 1}, "unknown argument 'drop'"),
        ({"label": 3}, "argument 'label' must be of type string"),
        ({"label": "x", "top_n": True}, "argument 'top_n' must be of type integer"),
        ({"label": "x", "top_n": 2.5}, "argument 'top_n' must be of type integer"),
        ({"label": "x", "top_n": 21}, "argument 'top_n' must be between 1 and 20"),
        (
            {"label": "x", "percentiles": [50, 101]},
            "argument 'percentiles' must be a list of integers from 1 to 100",
        ),
        (
            {"label": "x", "percentiles": ["50"]},
            "argument 'percentiles' must be a list of integers from 1 to 100",
        ),
    ],
)
def test_arguments_are_checked_against_the_tools_schema(
    args: dict[str, object], problem: str | None
) -> None:
    assert check_arguments(SCHEMA, args) == problem


def test_usage_adds_up_turns_and_prices_them_at_list_price() -> None:
    pricing = PricingTable.load()
    usage = ModelUsage("gpt-4o-mini")
    assert usage.public()["cost_usd"] is None
    usage.add(TokenUsage("gpt-4o-mini-2024-07-18", 1000, 100), pricing)
    usage.add(TokenUsage("gpt-4o-mini-2024-07-18", 2000, 50), pricing)
    expected = pricing.cost("openai", "gpt-4o-mini", 3000, 150)
    assert usage.public() == {
        "model": "gpt-4o-mini",
        "requests": 2,
        "prompt_tokens": 3000,
        "completion_tokens": 150,
        "total_tokens": 3150,
        "cost_usd": pytest.approx(expected),
    }
    # A self-hosted model the price table does not know: counted, not priced.
    local = ModelUsage("llama3.1:8b")
    local.add(TokenUsage("llama3.1:8b", 10, 5), pricing)
    assert local.public()["cost_usd"] is None and local.public()["total_tokens"] == 15
    # Priced by the server's name when the configured one is an alias the table lacks.
    alias = ModelUsage("my-gateway-alias")
    alias.add(TokenUsage("gpt-4o-mini", 1000, 100), pricing)
    assert alias.cost_usd == pytest.approx(pricing.cost("openai", "gpt-4o-mini", 1000, 100))
