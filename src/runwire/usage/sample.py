"""A generated, realistic usage set, so a new user can try the agents before importing their own.

The set describes a small product team's month of LLM calls: four features, eight models from
four providers, weekday/office-hour traffic, latency with long tails, a few percent errors. It is
built to contain the problems the agents look for, at realistic proportions:

- ``classify-tickets`` sends a simple classification task to ``gpt-4o`` (a frontier model) for most
  calls, where ``gpt-4o-mini`` would do: a cheaper-model saving;
- ``summarize`` re-summarizes the same popular documents: many repeated prompt fingerprints, which a
  cache would serve;
- ``mistral-large`` (on ``code-review``) times out far more often than the other models.

Everything is derived from a seeded generator, so the same ``seed``, ``days`` and ``now_ms`` always
give the same records; costs come from the pricing table.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

from runwire.domain.clock import now_ms as clock_ms
from runwire.domain.usage import UsageRecord
from runwire.usage.pricing import PricingTable

__all__ = ["generate_sample"]

_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
# Relative traffic per UTC hour: office hours dominate.
_HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 3, 5, 8, 10, 10, 10, 9, 10, 10, 9, 8, 6, 4, 3, 2, 2, 1, 1)
# Given to ``choices`` as cumulative weights, the very sums it would make of the weights each call.
_HOUR_CUM_WEIGHTS = tuple(itertools.accumulate(_HOUR_WEIGHTS))
_HOURS = range(24)
_TIMEOUT_MS = 30_000.0


@dataclass(frozen=True, slots=True)
class _ModelProfile:
    provider: str
    model: str
    first_token_ms: float  # median latency before output starts
    spread: float  # lognormal sigma of that latency: the width of the tail
    ms_per_output_token: float
    error_rate: float
    timeout_share: float = 0.0  # share of errors that are timeouts (slow) rather than fast 429/5xx


@dataclass(frozen=True, slots=True)
class _Feature:
    name: str
    weekday_calls: float  # mean calls per weekday
    weekend_factor: float
    models: tuple[tuple[_ModelProfile, float], ...]  # profile, share of calls
    prompt_tokens: float  # median
    completion_tokens: float  # median
    repeat_share: float = 0.0  # share of calls drawing their prompt from a pool of popular prompts
    pool_size: int = 1
    # What each call's draws need, computed once (the same numbers the draws computed each time,
    # so the records are the same): the profiles, their cumulative shares, and the sum of the
    # pool's Zipf weights.
    profiles: tuple[_ModelProfile, ...] = field(init=False)
    cum_shares: tuple[float, ...] = field(init=False)
    zipf_total: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "profiles", tuple(m for m, _ in self.models))
        shares = itertools.accumulate(share for _, share in self.models)
        object.__setattr__(self, "cum_shares", tuple(shares))
        total = sum(1.0 / rank for rank in range(1, self.pool_size + 1))
        object.__setattr__(self, "zipf_total", total)


_CLAUDE_SONNET = _ModelProfile("anthropic", "claude-3-5-sonnet", 900, 0.45, 18, 0.02)
_CLAUDE_HAIKU = _ModelProfile("anthropic", "claude-3-5-haiku", 600, 0.40, 9, 0.015)
_GPT_4O = _ModelProfile("openai", "gpt-4o", 550, 0.50, 14, 0.018)
_GPT_4O_MINI = _ModelProfile("openai", "gpt-4o-mini", 400, 0.45, 8, 0.015)
_GPT_41 = _ModelProfile("openai", "gpt-4.1", 700, 0.50, 13, 0.02)
_GEMINI_PRO = _ModelProfile("google", "gemini-1.5-pro", 1100, 0.50, 16, 0.03)
_GEMINI_FLASH = _ModelProfile("google", "gemini-2.0-flash", 350, 0.40, 5, 0.02)
_MISTRAL_LARGE = _ModelProfile("mistral", "mistral-large", 1200, 0.60, 20, 0.12, timeout_share=0.6)

_FEATURES = (
    _Feature(
        name="support-chat",
        weekday_calls=55,
        weekend_factor=0.6,
        models=((_CLAUDE_SONNET, 0.75), (_CLAUDE_HAIKU, 0.25)),
        prompt_tokens=4500,  # retrieved help-centre articles plus the conversation so far
        completion_tokens=300,
        repeat_share=0.04,  # the odd identical first question
        pool_size=40,
    ),
    _Feature(
        name="summarize",
        weekday_calls=40,
        weekend_factor=0.35,
        models=((_GEMINI_PRO, 0.5), (_GEMINI_FLASH, 0.5)),
        prompt_tokens=9000,
        completion_tokens=250,
        repeat_share=0.55,  # popular documents are summarized again and again: cacheable
        pool_size=260,
    ),
    _Feature(
        name="classify-tickets",
        weekday_calls=60,
        weekend_factor=0.35,
        models=((_GPT_4O, 0.85), (_GPT_4O_MINI, 0.15)),  # a frontier model for a label
        prompt_tokens=2400,  # taxonomy, few-shot examples and the ticket
        completion_tokens=10,
    ),
    _Feature(
        name="code-review",
        weekday_calls=12,
        weekend_factor=0.2,
        models=((_GPT_41, 0.6), (_MISTRAL_LARGE, 0.4)),
        prompt_tokens=14000,
        completion_tokens=800,
    ),
)


def generate_sample(
    seed: int = 7,
    days: int = 30,
    now_ms: int | None = None,
    *,
    pricing: PricingTable | None = None,
) -> list[UsageRecord]:
    """About 140 calls a day over the ``days`` UTC days up to ``now_ms``, oldest first.

    ``now_ms`` defaults to the current time; pass it to get the very same records every time.
    ``pricing`` defaults to the packaged table.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    table = pricing if pricing is not None else PricingTable.load()
    now = clock_ms() if now_ms is None else now_ms
    rng = random.Random(seed)
    first_day = (now // _DAY_MS - (days - 1)) * _DAY_MS  # midnight UTC, `days` days back
    records: list[UsageRecord] = []
    prompts: dict[str, tuple[int, str]] = {}  # a pooled prompt's size and hash, by its key
    unique = 0
    for day in range(days):
        day_start = first_day + day * _DAY_MS
        weekend = datetime.fromtimestamp(day_start / 1000, tz=UTC).weekday() >= 5
        for feature in _FEATURES:
            mean = feature.weekday_calls * (feature.weekend_factor if weekend else 1.0)
            calls = max(0, round(rng.gauss(mean, math.sqrt(mean))))
            for _ in range(calls):
                hour = rng.choices(_HOURS, cum_weights=_HOUR_CUM_WEIGHTS)[0]
                timestamp = day_start + hour * _HOUR_MS + rng.randrange(_HOUR_MS)
                unique += 1
                record = _call(rng, table, feature, timestamp, unique, prompts)
                if record.timestamp < now:  # today is only partly over
                    records.append(record)
    records.sort(key=lambda r: r.timestamp)
    return records


def _call(
    rng: random.Random,
    table: PricingTable,
    feature: _Feature,
    timestamp: int,
    unique: int,
    prompts: dict[str, tuple[int, str]],
) -> UsageRecord:
    profile = rng.choices(feature.profiles, cum_weights=feature.cum_shares)[0]
    if rng.random() < feature.repeat_share:
        # Popular prompts follow a Zipf-like law: a few documents are summarized again and again.
        key = f"{feature.name}:pool-{_zipf(rng, feature.pool_size, feature.zipf_total)}"
        pooled = prompts.get(key)
        if pooled is None:
            # The same prompt has the same size: drawn from a generator seeded by its key (once).
            size = _tokens(random.Random(key), feature.prompt_tokens, 0.5)
            pooled = prompts[key] = (size, _hash(key))
        prompt_tokens, prompt_hash = pooled
    else:
        prompt_tokens = _tokens(rng, feature.prompt_tokens, 0.5)
        prompt_hash = _hash(f"{feature.name}:unique-{unique}")

    failed = rng.random() < profile.error_rate
    if failed:
        completion_tokens = 0
        if rng.random() < profile.timeout_share:
            latency = _TIMEOUT_MS + rng.uniform(0, 400)
        else:  # rate limits and 5xx come back fast
            latency = rng.uniform(150, 900)
    else:
        completion_tokens = _tokens(rng, feature.completion_tokens, 0.45)
        latency = rng.lognormvariate(math.log(profile.first_token_ms), profile.spread)
        latency += completion_tokens * profile.ms_per_output_token * rng.uniform(0.85, 1.15)
        if rng.random() < 0.02:  # queueing spikes at the provider: the far tail
            latency *= rng.uniform(2.5, 6.0)
    cost = table.cost(profile.provider, profile.model, prompt_tokens, completion_tokens)
    if cost is None:
        raise ValueError(f"the pricing table must know {profile.model} to cost the sample")
    return UsageRecord(
        timestamp=timestamp,
        provider=profile.provider,
        model=profile.model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_ms=round(latency, 1),
        cost_usd=round(cost, 8),
        status="error" if failed else "ok",
        prompt_hash=prompt_hash,
        feature=feature.name,
    )


def _tokens(rng: random.Random, median: float, spread: float) -> int:
    return max(1, round(rng.lognormvariate(math.log(median), spread)))


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _zipf(rng: random.Random, size: int, total: float) -> int:
    # Inverse-CDF draw for weights 1/rank: the k-th prompt is drawn ~1/k as often as the first;
    # ``total`` is the sum of the weights.
    target = rng.random() * total
    for rank in range(1, size):
        target -= 1.0 / rank
        if target <= 0:
            return rank - 1
    return size - 1  # what is left is the last prompt's share (and any float-rounding sliver)
