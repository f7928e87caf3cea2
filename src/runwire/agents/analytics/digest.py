"""The analyses from a store-kept summary's digest instead of the records (the cold-data path)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from runwire.agents.analytics.caching import cache_result
from runwire.agents.analytics.groups import by_count
from runwire.agents.analytics.memo import freeze
from runwire.agents.analytics.rounding import percent, usd
from runwire.agents.analytics.span import (
    DAY_MS,
    monthly_factor_of,
)
from runwire.agents.analytics.totals import overview
from runwire.events.model import stamp_ms as iso_from_ms
from runwire.usage.pricing import PricingTable

__all__ = ["remember", "summarized"]


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
    span = max(1.0, (digest["last"] - digest["first"]) / DAY_MS) if calls else 0.0
    total = digest["cost"]
    view = overview(())
    if calls:
        view = {
            "calls": calls,
            "first_call": iso_from_ms(digest["first"]),
            "last_call": iso_from_ms(digest["last"]),
            "span_days": round(span, 1),
            "total_cost_usd": usd(total),
            "monthly_cost_usd": usd(total * monthly_factor_of(span)),
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
        "providers": [{"name": p, "calls": n} for p, n in by_count(providers)],
        "models": [
            {"name": model, "provider": provider, "calls": n}
            for (provider, model), n in by_count(by_model)
        ],
        "features": [{"name": f, "calls": n} for f, n in by_count(Counter(digest["features"]))],
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
            "total_cost_usd": usd(total),
            "models": [
                {
                    "provider": m["provider"],
                    "model": m["model"],
                    "calls": m["calls"],
                    "prompt_tokens": m["prompt"],
                    "completion_tokens": m["completion"],
                    "tokens": m["prompt"] + m["completion"],
                    "cost_usd": usd(m["cost"]),
                    "share_pct": percent(m["cost"], total),
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
        "cache_candidates": cache_result(
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
    return {"calls": calls, "errors": errors, "rate_pct": percent(errors, calls)}


def _summarized_cheaper(
    models: list[dict[str, Any]], span: float, pricing: PricingTable
) -> dict[str, Any]:
    factor = monthly_factor_of(span)
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
                "monthly_cost_usd": usd(current * factor),
                "candidate_monthly_cost_usd": usd(candidate_cost * factor),
                "monthly_savings_usd": usd(saving * factor),
                "savings_pct": percent(saving, current),
                "alternatives": [
                    {"model": c.model, "tier": c.tier, "monthly_cost_usd": usd(c_cost * factor)}
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
        "total_monthly_savings_usd": usd(total * factor),
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
    memo[("cheaper_models", (freeze(pricing),), ())] = results["cheaper_models"]
