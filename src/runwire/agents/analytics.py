"""The analyses the agents' tools run on a user's usage records: pure functions, JSON-able results.

Every function takes the records as a sequence (any order), works on empty input, and returns a
dict of plain values rounded for reading: USD to 4 decimals, percentages to 1 decimal, latencies
to 1 decimal of a millisecond.

Monthly figures are scaled from the span the data covers to 30 days. The span is the time from
the first to the last call, but at least one day, so a burst of calls within an hour is not
extrapolated as if it went on all month.
"""

from __future__ import annotations

import copy
import functools
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import orjson

from runwire.domain.usage import UsageRecord
from runwire.events.model import stamp_ms as iso_from_ms
from runwire.usage.pricing import PricingTable

__all__ = [
    "GROUPS",
    "MONTH_DAYS",
    "breakdown",
    "cache_candidates",
    "cheaper_models",
    "cost_by_model",
    "error_rate",
    "inventory",
    "latency_percentiles",
    "monthly_factor",
    "overview",
    "percentile",
    "remember",
    "span_days",
    "summarized",
    "trend",
]

MONTH_DAYS = 30
_DAY_MS = 86_400_000
#: What :func:`breakdown` can group calls by.
GROUPS = ("model", "provider", "feature")
_NO_FEATURE = "(none)"


F = TypeVar("F", bound=Callable[..., Any])


def memoized(fn: F) -> F:
    """Keep ``fn``'s result in the records' memo (a ``UsageSet``), keyed by its arguments.

    The same unchanged data gives the same aggregates, so a second run over it reuses them;
    callers get a copy, so nothing they do to a result leaks into the next run.
    """

    @functools.wraps(fn)
    def wrapper(records: Sequence[UsageRecord], *args: Any, **kwargs: Any) -> Any:
        memo: dict[Any, Any] | None = getattr(records, "memo", None)
        if memo is None:
            return fn(records, *args, **kwargs)
        key = (fn.__name__, _freeze(args), _freeze(kwargs))
        if key not in memo:
            memo[key] = fn(records, *args, **kwargs)
        return _copy(memo[key])

    return wrapper  # type: ignore[return-value]


def _copy(value: Any) -> Any:
    """A deep copy of a JSON-shaped result (a JSON round trip is several times faster)."""
    if value is None or isinstance(value, str | int | float):
        return value
    try:
        return orjson.loads(orjson.dumps(value))
    except TypeError:  # not JSON-shaped after all (tuples, non-string keys): copy it as it is
        return copy.deepcopy(value)


def _freeze(value: Any) -> Any:
    """A hashable stand-in for an argument (lists become tuples; other objects, their identity)."""
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return ("id", id(value))


@memoized
def span_days(records: Sequence[UsageRecord]) -> float:
    """Days from the first to the last call, at least 1 (0 for no records)."""
    if not records:
        return 0.0
    stamps = [r.timestamp for r in records]
    return max(1.0, (max(stamps) - min(stamps)) / _DAY_MS)


@memoized
def failures_of(
    records: Sequence[UsageRecord], provider: str, model: str, slow_ms: float
) -> dict[str, Any]:
    """One model's failed calls: how many, how many took ``slow_ms`` or more, what they cost."""
    failed = [
        r for r in records if r.status == "error" and r.provider == provider and r.model == model
    ]
    return {
        "count": len(failed),
        "slow": sum(1 for r in failed if r.latency_ms >= slow_ms),
        # An exact sum (correctly rounded, whatever the order): a store-kept summary gives it.
        "cost_usd": math.fsum(r.cost_usd for r in failed),
    }


def monthly_factor(records: Sequence[UsageRecord]) -> float:
    """What to multiply a total over ``records`` by to estimate 30 days of it."""
    return _factor(span_days(records))


def _factor(days: float) -> float:
    return MONTH_DAYS / days if days else 0.0


def percentile(sorted_values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when there are none).

    Nearest rank returns a value that was actually observed: p95 of 20 calls is the 19th slowest,
    not an interpolation between two calls that nobody experienced.
    """
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@memoized
def overview(records: Sequence[UsageRecord]) -> dict[str, Any]:
    """Calls, date range (RFC 3339), cost, tokens, and how many providers, models and features."""
    if not records:
        return {
            "calls": 0,
            "first_call": None,
            "last_call": None,
            "span_days": 0.0,
            "total_cost_usd": 0.0,
            "monthly_cost_usd": 0.0,
            "total_tokens": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "providers": 0,
            "models": 0,
            "features": 0,
        }
    total_cost = math.fsum(r.cost_usd for r in records)
    prompt = sum(r.prompt_tokens for r in records)
    completion = sum(r.completion_tokens for r in records)
    return {
        "calls": len(records),
        "first_call": iso_from_ms(min(r.timestamp for r in records)),
        "last_call": iso_from_ms(max(r.timestamp for r in records)),
        "span_days": round(span_days(records), 1),
        "total_cost_usd": _usd(total_cost),
        "monthly_cost_usd": _usd(total_cost * monthly_factor(records)),
        "total_tokens": prompt + completion,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "providers": len({r.provider for r in records}),
        "models": len({(r.provider, r.model) for r in records}),
        "features": len({r.feature for r in records if r.feature}),
    }


@memoized
def cost_by_model(records: Sequence[UsageRecord]) -> dict[str, Any]:
    """Calls, tokens, cost and share of cost per provider/model, most expensive first."""
    total = math.fsum(r.cost_usd for r in records)
    rows: list[dict[str, Any]] = []
    for (provider, model), group in _by_model(records).items():
        cost = math.fsum(r.cost_usd for r in group)
        rows.append(
            {
                "provider": provider,
                "model": model,
                "calls": len(group),
                "prompt_tokens": sum(r.prompt_tokens for r in group),
                "completion_tokens": sum(r.completion_tokens for r in group),
                "tokens": sum(r.total_tokens for r in group),
                "cost_usd": _usd(cost),
                "share_pct": _pct(cost, total),
                "_cost": cost,
            }
        )
    rows.sort(key=lambda row: (-row["_cost"], row["provider"], row["model"]))
    for row in rows:
        del row["_cost"]
    return {"total_cost_usd": _usd(total), "models": rows}


@memoized
def latency_percentiles(
    records: Sequence[UsageRecord], percentiles: Sequence[int] = (50, 95, 99)
) -> dict[str, Any]:
    """Nearest-rank latency percentiles (ms), overall and per model.

    Models are ordered slowest first by p95 (or by the highest percentile asked for when 95 is
    not). Failed calls are included: a timeout is latency the user waited through.
    """
    if not percentiles or not all(0 < pct <= 100 for pct in percentiles):
        raise ValueError("percentiles must be a non-empty list of numbers in (0, 100]")

    def summary(group: Iterable[UsageRecord]) -> dict[str, Any]:
        values = sorted(r.latency_ms for r in group)
        out: dict[str, Any] = {"calls": len(values)}
        for pct in percentiles:
            value = percentile(values, pct)
            out[f"p{pct}"] = None if value is None else round(value, 1)
        return out

    models = [
        {"provider": provider, "model": model, **summary(group)}
        for (provider, model), group in _by_model(records).items()
    ]
    key = "p95" if 95 in percentiles else f"p{max(percentiles)}"
    models.sort(key=lambda row: (-(row[key] or 0), row["provider"], row["model"]))
    return {"method": "nearest-rank", "overall": summary(records), "models": models}


@memoized
def error_rate(records: Sequence[UsageRecord]) -> dict[str, Any]:
    """Share of calls with status ``error``, overall and per model (worst first)."""

    def summary(group: Sequence[UsageRecord]) -> dict[str, Any]:
        errors = sum(1 for r in group if r.status == "error")
        return {"calls": len(group), "errors": errors, "rate_pct": _pct(errors, len(group))}

    models = [
        {"provider": provider, "model": model, **summary(group)}
        for (provider, model), group in _by_model(records).items()
    ]
    models.sort(key=lambda row: (-row["rate_pct"], -row["errors"], row["provider"], row["model"]))
    return {"overall": summary(records), "models": models}


@memoized
def cache_candidates(records: Sequence[UsageRecord], top_n: int = 5) -> dict[str, Any]:
    """Calls that repeat a prompt already answered: what a response cache would have served.

    Only successful calls with a ``prompt_hash`` count (a cache stores answers; a failure has
    none). For each fingerprint, every occurrence after the first is a repeat, and its cost is
    wasted. The monthly saving assumes the cache keeps answers for the whole span.
    """
    hashed = sorted(
        ((r.prompt_hash, r) for r in records if r.prompt_hash and r.status == "ok"),
        key=lambda pair: pair[1].timestamp,
    )
    seen: set[str] = set()
    repeat_calls: Counter[str] = Counter()
    repeat_costs: defaultdict[str, list[float]] = defaultdict(list)
    feature_repeats: Counter[str] = Counter()
    feature_calls: Counter[str] = Counter(r.feature or "(none)" for _, r in hashed)
    feature_costs: defaultdict[str, list[float]] = defaultdict(list)
    for prompt_hash, r in hashed:
        if prompt_hash not in seen:
            seen.add(prompt_hash)
            continue
        feature = r.feature or "(none)"
        repeat_calls[prompt_hash] += 1
        repeat_costs[prompt_hash].append(r.cost_usd)
        feature_repeats[feature] += 1
        feature_costs[feature].append(r.cost_usd)
    # Exact sums (correctly rounded, whatever the order): a store-kept summary gives the same.
    wasted_by_hash = {h: math.fsum(costs) for h, costs in repeat_costs.items()}
    feature_wasted = {f: math.fsum(costs) for f, costs in feature_costs.items()}
    wasted = math.fsum(c for costs in repeat_costs.values() for c in costs)
    repeats = sum(repeat_calls.values())
    return _cache_result(
        len(hashed),
        repeat_calls,
        wasted_by_hash,
        feature_repeats,
        feature_calls,
        feature_wasted,
        wasted,
        repeats,
        span_days(records),
        top_n,
    )


def _cache_result(
    calls_with_hash: int,
    repeat_calls: dict[str, int],
    wasted_by_hash: dict[str, float],
    feature_repeats: dict[str, int],
    feature_calls: dict[str, int],
    feature_wasted: dict[str, float],
    wasted: float,
    repeats: int,
    span: float,
    top_n: int,
    *,
    repeated_prompts: int | None = None,
) -> dict[str, Any]:
    features = sorted(feature_repeats, key=lambda f: (-feature_wasted[f], f))[:top_n]
    prompts = sorted(repeat_calls, key=lambda h: (-wasted_by_hash[h], h))[:top_n]
    return {
        "calls_with_hash": calls_with_hash,
        "repeated_calls": repeats,
        "repeated_prompts": len(repeat_calls) if repeated_prompts is None else repeated_prompts,
        "repeat_share_pct": _pct(repeats, calls_with_hash),
        "wasted_cost_usd": _usd(wasted),
        "monthly_saving_usd": _usd(wasted * _factor(span)),
        "span_days": round(span, 1),
        "top_features": [
            {
                "feature": f,
                "repeated_calls": feature_repeats[f],
                "repeat_share_pct": _pct(feature_repeats[f], feature_calls[f]),
                "wasted_cost_usd": _usd(feature_wasted[f]),
            }
            for f in features
        ],
        "top_prompts": [
            {
                "prompt_hash": h,
                "calls": repeat_calls[h] + 1,
                "wasted_cost_usd": _usd(wasted_by_hash[h]),
            }
            for h in prompts
        ],
    }


@memoized
def cheaper_models(records: Sequence[UsageRecord], pricing: PricingTable) -> dict[str, Any]:
    """For each model with a cheaper candidate in ``pricing``: the estimated monthly saving.

    The current cost is what the records say was paid; the candidate's is its list price for the
    very same prompt and completion tokens. Of the candidates (same provider, same tier or one
    down), the one with the largest saving is proposed and the next two cheaper ones are listed as
    ``alternatives``. Models the table does not know, or with no candidate that would have cost
    less, are left out. Biggest saving first.
    """
    factor = monthly_factor(records)
    rows: list[dict[str, Any]] = []
    for (provider, model), group in _by_model(records).items():
        price = pricing.lookup(provider, model)
        candidates = pricing.cheaper_candidates(provider, model)
        if price is None or not candidates:
            continue
        prompt = sum(r.prompt_tokens for r in group)
        completion = sum(r.completion_tokens for r in group)
        current = math.fsum(r.cost_usd for r in group)
        # Stable sort: equal costs keep the table's order (newer models first).
        priced = sorted(((c.cost(prompt, completion), c) for c in candidates), key=lambda p: p[0])
        candidate_cost, best = priced[0]
        saving = current - candidate_cost
        if saving <= 0:
            continue
        features = Counter(r.feature for r in group if r.feature)
        rows.append(
            {
                "provider": provider,
                "model": model,
                "tier": price.tier,
                "calls": len(group),
                "avg_completion_tokens": round(completion / len(group), 1),
                "top_features": [f for f, _ in features.most_common(3)],
                "candidate": best.model,
                "candidate_tier": best.tier,
                "same_tier": best.tier == price.tier,
                "monthly_cost_usd": _usd(current * factor),
                "candidate_monthly_cost_usd": _usd(candidate_cost * factor),
                "monthly_savings_usd": _usd(saving * factor),
                "savings_pct": _pct(saving, current),
                "alternatives": [
                    {"model": c.model, "tier": c.tier, "monthly_cost_usd": _usd(cost * factor)}
                    for cost, c in priced[1:3]
                    if cost < current
                ],
                "_saving": saving,
            }
        )
    rows.sort(key=lambda row: (-row["_saving"], row["provider"], row["model"]))
    total = sum(row.pop("_saving") for row in rows)
    return {
        "span_days": round(span_days(records), 1),
        "pricing_as_of": pricing.as_of,
        "total_monthly_savings_usd": _usd(total * factor),
        "models": rows,
    }


@memoized
def breakdown(
    records: Sequence[UsageRecord],
    group_by: str = "model",
    percentiles: Sequence[int] = (50, 95, 99),
) -> dict[str, Any]:
    """Per model, provider or feature: calls, tokens, cost (total, monthly, per call, share),
    nearest-rank latency percentiles, errors, and the top names of the other dimension.

    One pass groups the records; rows are ordered by cost, most expensive first. ``overall``
    holds the same latency and error figures over all calls, to compare a row against.
    """
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPS)}")
    if not percentiles or not all(0 < pct <= 100 for pct in percentiles):
        raise ValueError("percentiles must be a non-empty list of numbers in (0, 100]")
    factor = monthly_factor(records)
    total = sum(r.cost_usd for r in records)
    groups: defaultdict[str, list[UsageRecord]] = defaultdict(list)
    for r in records:
        groups[_group_key(r, group_by)].append(r)

    def latency(group: Sequence[UsageRecord]) -> dict[str, Any]:
        values = sorted(r.latency_ms for r in group)
        out: dict[str, Any] = {}
        for pct in percentiles:
            value = percentile(values, pct)
            out[f"p{pct:g}"] = None if value is None else round(value, 1)
        return out

    def errors(group: Sequence[UsageRecord]) -> dict[str, Any]:
        failed = sum(1 for r in group if r.status == "error")
        return {"errors": failed, "error_rate_pct": _pct(failed, len(group))}

    other = "feature" if group_by == "model" else "model"
    rows: list[dict[str, Any]] = []
    for name, group in groups.items():
        cost = sum(r.cost_usd for r in group)
        mix = Counter(_group_key(r, other) for r in group)
        mix.pop(_NO_FEATURE, None)
        row: dict[str, Any] = {"name": name}
        if group_by == "model":
            row["provider"] = group[0].provider
        row.update(
            calls=len(group),
            tokens=sum(r.total_tokens for r in group),
            cost_usd=_usd(cost),
            monthly_cost_usd=_usd(cost * factor),
            cost_per_call_usd=_usd(cost / len(group)),
            share_pct=_pct(cost, total),
            **latency(group),
            **errors(group),
        )
        row[f"top_{other}s"] = [n for n, _ in sorted(mix.items(), key=lambda i: (-i[1], i[0]))[:3]]
        row["_cost"] = cost
        rows.append(row)
    rows.sort(key=lambda row: (-row["_cost"], row["name"]))
    for row in rows:
        del row["_cost"]
    return {
        "group_by": group_by,
        "calls": len(records),
        "total_cost_usd": _usd(total),
        "overall": {**latency(records), **errors(records)},
        "rows": rows,
    }


@memoized
def trend(records: Sequence[UsageRecord], window_days: int = 7) -> dict[str, Any]:
    """The last ``window_days`` of the data against the ``window_days`` before them.

    The windows end at the last call (not at today), so the comparison is the same whenever it
    is asked. ``previous_complete`` is false when the data starts inside the earlier window: its
    figures then cover only part of it. ``change`` is None where the earlier window has nothing
    to compare with.
    """
    if window_days < 1:
        raise ValueError("window_days must be at least 1")
    if not records:
        return {"window_days": window_days, "current": None, "previous": None, "change": None}
    end = max(r.timestamp for r in records)
    first = min(r.timestamp for r in records)
    cut = end - window_days * _DAY_MS
    start = cut - window_days * _DAY_MS
    current = [r for r in records if r.timestamp > cut]
    previous = [r for r in records if start < r.timestamp <= cut]

    def summary(group: Sequence[UsageRecord], since: int, until: int) -> dict[str, Any]:
        values = sorted(r.latency_ms for r in group)
        failed = sum(1 for r in group if r.status == "error")
        p95 = percentile(values, 95)
        return {
            "from": iso_from_ms(max(since, first)),
            "to": iso_from_ms(until),
            "calls": len(group),
            "cost_usd": _usd(sum(r.cost_usd for r in group)),
            "p95_ms": None if p95 is None else round(p95, 1),
            "error_rate_pct": _pct(failed, len(group)),
        }

    now, before = summary(current, cut, end), summary(previous, start, cut)

    def change_pct(key: str) -> float | None:
        # Both windows hold calls here, so no figure is None.
        old, new = before[key], now[key]
        if old == new:
            return 0.0
        return _pct(new - old, old) if old else None  # from nothing: no percentage

    change = None
    if previous:
        change = {
            "calls_pct": change_pct("calls"),
            "cost_pct": change_pct("cost_usd"),
            "p95_pct": change_pct("p95_ms"),
            "error_rate_points": round(now["error_rate_pct"] - before["error_rate_pct"], 1),
        }
    by_model: defaultdict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for r in current:
        by_model[r.model][0] += r.cost_usd
    for r in previous:
        by_model[r.model][1] += r.cost_usd
    movers = sorted(by_model.items(), key=lambda i: (-abs(i[1][0] - i[1][1]), i[0]))[:5]
    return {
        "window_days": window_days,
        "previous_complete": first <= start,
        "current": now,
        "previous": before,
        "change": change,
        "models": [
            {
                "model": model,
                "cost_usd": _usd(new),
                "previous_cost_usd": _usd(old),
                "change_usd": _usd(new - old),
            }
            for model, (new, old) in movers
        ],
    }


@memoized
def inventory(records: Sequence[UsageRecord]) -> dict[str, Any]:
    """What the data holds: its span, the providers, models and features by calls, and how
    many calls carry the optional fields (``prompt_hash``, ``feature``) or failed."""
    models = Counter((r.provider, r.model) for r in records)
    providers = Counter(r.provider for r in records)
    features = Counter(r.feature for r in records if r.feature)
    summary = overview(records)
    return {
        "calls": summary["calls"],
        "first_call": summary["first_call"],
        "last_call": summary["last_call"],
        "span_days": summary["span_days"],
        "providers": [{"name": p, "calls": n} for p, n in _most(providers)],
        "models": [
            {"name": model, "provider": provider, "calls": n}
            for (provider, model), n in _most(models)
        ],
        "features": [{"name": f, "calls": n} for f, n in _most(features)],
        "calls_with_prompt_hash": sum(1 for r in records if r.prompt_hash),
        "calls_with_feature": sum(features.values()),
        "failed_calls": sum(1 for r in records if r.status == "error"),
    }


def _most(counts: Counter[Any]) -> list[tuple[Any, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _group_key(r: UsageRecord, group_by: str) -> str:
    if group_by == "model":
        return r.model
    if group_by == "provider":
        return r.provider
    return r.feature or _NO_FEATURE


def _by_model(records: Iterable[UsageRecord]) -> dict[tuple[str, str], list[UsageRecord]]:
    groups: defaultdict[tuple[str, str], list[UsageRecord]] = defaultdict(list)
    for r in records:
        groups[(r.provider, r.model)].append(r)
    return groups


def _usd(value: float) -> float:
    return round(value, 4)


def _pct(part: float, whole: float) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def summarized(digest: dict[str, Any], pricing: PricingTable) -> dict[str, Any]:
    """What :data:`runwire.agents.tools.EVERY_RUN` and the question names read, from the digest
    of a store-kept summary (``UsageSummary.digest``) instead of the records: ``span_days``,
    ``overview``, ``inventory``, ``cost_by_model``, ``latency_percentiles`` (p50/p95/p99),
    ``error_rate``, ``cache_candidates`` (top 5) and ``cheaper_models``, each exactly what the
    function of that name returns for the summarized records, and ``failures_of`` by
    ``(provider, model)``: what :func:`failures_of` returns for each model at the summary's
    ``SLOW_FAILURE_MS`` (tests/unit/test_usage_summary.py).
    """
    calls, models = digest["calls"], digest["models"]
    span = max(1.0, (digest["last"] - digest["first"]) / _DAY_MS) if calls else 0.0
    total = digest["cost"]
    view = overview(())
    if calls:
        view = {
            "calls": calls,
            "first_call": iso_from_ms(digest["first"]),
            "last_call": iso_from_ms(digest["last"]),
            "span_days": round(span, 1),
            "total_cost_usd": _usd(total),
            "monthly_cost_usd": _usd(total * _factor(span)),
            "total_tokens": digest["prompt"] + digest["completion"],
            "prompt_tokens": digest["prompt"],
            "completion_tokens": digest["completion"],
            "providers": len({m["provider"] for m in models}),
            "models": len(models),
            "features": len(digest["features"]),
        }
    providers: Counter[str] = Counter()
    for m in models:
        providers[m["provider"]] += m["calls"]
    by_model = Counter({(m["provider"], m["model"]): m["calls"] for m in models})
    inventory = {
        "calls": view["calls"],
        "first_call": view["first_call"],
        "last_call": view["last_call"],
        "span_days": view["span_days"],
        "providers": [{"name": p, "calls": n} for p, n in _most(providers)],
        "models": [
            {"name": model, "provider": provider, "calls": n}
            for (provider, model), n in _most(by_model)
        ],
        "features": [{"name": f, "calls": n} for f, n in _most(Counter(digest["features"]))],
        "calls_with_prompt_hash": digest["hashed"],
        "calls_with_feature": sum(digest["features"].values()),
        "failed_calls": sum(m["errors"] for m in models),
    }
    costs = sorted(models, key=lambda m: (-m["cost"], m["provider"], m["model"]))
    latency = [{"provider": m["provider"], "model": m["model"], **m["latency"]} for m in models]
    latency.sort(key=lambda row: (-(row["p95"] or 0), row["provider"], row["model"]))
    errors = [
        {"provider": m["provider"], "model": m["model"], **_errors(m["calls"], m["errors"])}
        for m in models
    ]
    errors.sort(key=lambda row: (-row["rate_pct"], -row["errors"], row["provider"], row["model"]))
    cache = digest["cache"]
    features = cache["features"]
    prompts = {h: (n, cost) for h, n, cost in cache["prompts"]}
    return {
        "span_days": span,
        "overview": view,
        "inventory": inventory,
        "cost_by_model": {
            "total_cost_usd": _usd(total),
            "models": [
                {
                    "provider": m["provider"],
                    "model": m["model"],
                    "calls": m["calls"],
                    "prompt_tokens": m["prompt"],
                    "completion_tokens": m["completion"],
                    "tokens": m["prompt"] + m["completion"],
                    "cost_usd": _usd(m["cost"]),
                    "share_pct": _pct(m["cost"], total),
                }
                for m in costs
            ],
        },
        "latency_percentiles": {
            "method": "nearest-rank",
            "overall": digest["latency"],
            "models": latency,
        },
        "error_rate": {
            "overall": _errors(calls, inventory["failed_calls"]),
            "models": errors,
        },
        "cache_candidates": _cache_result(
            cache["calls_with_hash"],
            {h: n for h, (n, _) in prompts.items()},
            {h: cost for h, (_, cost) in prompts.items()},
            {f: repeats for f, (repeats, _, _) in features.items()},
            {f: calls for f, (_, calls, _) in features.items()},
            {f: cost for f, (_, _, cost) in features.items()},
            cache["wasted"],
            cache["repeated_calls"],
            span,
            5,
            repeated_prompts=cache["repeated_prompts"],
        ),
        "cheaper_models": _summarized_cheaper(models, span, pricing),
        "failures_of": {
            (m["provider"], m["model"]): {
                "count": m["errors"],
                "slow": m["slow_failures"],
                "cost_usd": m["failed_cost"],
            }
            for m in models
        },
    }


def _errors(calls: int, errors: int) -> dict[str, Any]:
    return {"calls": calls, "errors": errors, "rate_pct": _pct(errors, calls)}


def _summarized_cheaper(
    models: list[dict[str, Any]], span: float, pricing: PricingTable
) -> dict[str, Any]:
    factor = _factor(span)
    rows: list[dict[str, Any]] = []
    for m in models:
        provider, model, current = m["provider"], m["model"], m["cost"]
        price = pricing.lookup(provider, model)
        candidates = pricing.cheaper_candidates(provider, model)
        if price is None or not candidates:
            continue
        priced = sorted(
            ((c.cost(m["prompt"], m["completion"]), c) for c in candidates), key=lambda p: p[0]
        )
        candidate_cost, best = priced[0]
        saving = current - candidate_cost
        if saving <= 0:
            continue
        rows.append(
            {
                "provider": provider,
                "model": model,
                "tier": price.tier,
                "calls": m["calls"],
                "avg_completion_tokens": round(m["completion"] / m["calls"], 1),
                "top_features": m["features"],
                "candidate": best.model,
                "candidate_tier": best.tier,
                "same_tier": best.tier == price.tier,
                "monthly_cost_usd": _usd(current * factor),
                "candidate_monthly_cost_usd": _usd(candidate_cost * factor),
                "monthly_savings_usd": _usd(saving * factor),
                "savings_pct": _pct(saving, current),
                "alternatives": [
                    {"model": c.model, "tier": c.tier, "monthly_cost_usd": _usd(c_cost * factor)}
                    for c_cost, c in priced[1:3]
                    if c_cost < current
                ],
                "_saving": saving,
            }
        )
    rows.sort(key=lambda row: (-row["_saving"], row["provider"], row["model"]))
    total = sum(row.pop("_saving") for row in rows)
    return {
        "span_days": round(span, 1),
        "pricing_as_of": pricing.as_of,
        "total_monthly_savings_usd": _usd(total * factor),
        "models": rows,
    }


def remember(
    memo: dict[Any, Any], digest: dict[str, Any], pricing: PricingTable, slow_ms: float
) -> None:
    """Keep in a set's memo what :func:`summarized` gives, under the keys the functions of those
    names (called with their defaults, by position or not at all) look for: the set's first
    aggregates then cost no scan. ``digest`` must be the digest of the set's summary, and
    ``slow_ms`` the threshold its failures were counted at (``SLOW_FAILURE_MS``)."""
    results = summarized(digest, pricing)
    for (provider, model), failures in results["failures_of"].items():
        memo[("failures_of", (provider, model, slow_ms), ())] = failures
    for name in ("span_days", "overview", "inventory", "cost_by_model", "error_rate"):
        memo[(name, (), ())] = results[name]
    for name, default in (("latency_percentiles", (50, 95, 99)), ("cache_candidates", 5)):
        memo[(name, (), ())] = memo[(name, (default,), ())] = results[name]
    memo[("cheaper_models", (_freeze(pricing),), ())] = results["cheaper_models"]
