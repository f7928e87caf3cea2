"""A usage summary: the aggregates the offline analyses read, kept as records are stored.

A :class:`UsageSummary` is mergeable: the summary of two disjoint sets of records is the merge of
theirs, whatever the order, exactly. Counts and token sums are integers; costs are exact sums
(Shewchuk's non-overlapping partials, the representation ``math.fsum`` works with: adding a float
or another sum loses nothing, and the value read is the correctly rounded float of the exact
sum, whatever order the records came in); latencies are counted per value rounded to 0.1 ms,
which gives the very nearest-rank percentiles the analyses report (they round to 0.1 ms, and
rounding keeps the order). What depends on which of two equal things came first (the first
occurrence of a prompt, the order of a model's features by first appearance) keeps the first
one's time and its position in the store (``pk``), the order the store reads records in.

The store keeps one summary per batch of records and one per user (the merge of their batches)
as JSON; see :mod:`runwire.store.usage` for when they are written.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable
from itertools import accumulate
from typing import Any

import orjson

from runwire.store.records import UsageRecord

__all__ = ["FORMAT", "SLOW_FAILURE_MS", "TOP_PROMPTS", "ExactSum", "UsageSummary"]

TOP_PROMPTS = 20
"""How many of the most wasteful repeated prompts a digest names (the most any tool asks)."""

FORMAT = 2
"""The summary's format: 2 added the bounds of the records' values and each model's failures.
A summary (or digest) of another format is treated as unknown: its user's records are read."""

SLOW_FAILURE_MS = 10_000.0
"""A failed call this slow looks like a timeout: a digest counts them per model (what the
actions agent's reliability advice reads, ``analytics.failures_of``)."""

ExactSum = list[float]
"""An exact sum of floats as non-overlapping partials (smallest magnitude first)."""

_LATENCY = (50, 95, 99)  # the percentiles every analysis reads

First = list[Any]
"""Where something was first met: ``[timestamp, pk]``, compared as a pair."""


def add_exact(partials: ExactSum, x: float) -> None:
    """Add ``x`` to the exact sum ``partials`` in place (Shewchuk; ``math.fsum``'s algorithm)."""
    i = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            partials[i] = lo
            i += 1
        x = hi
    partials[i:] = [x]


def merge_exact(partials: ExactSum, other: ExactSum) -> None:
    for x in other:
        add_exact(partials, x)


def _earlier(a: First | None, b: First) -> bool:
    return a is None or (b[0], b[1]) < (a[0], a[1])


class UsageSummary:
    """The aggregates of a set of usage records (see the module's docstring).

    ``models`` is keyed by ``provider + "\\n" + model`` (JSON keys are strings; neither name holds
    a newline: the import refuses control characters).
    """

    __slots__ = ("body",)

    def __init__(self, body: dict[str, Any] | None = None) -> None:
        self.body: dict[str, Any] = body if body is not None else _empty()

    # Reading and writing

    @classmethod
    def loads(cls, text: str | bytes) -> UsageSummary | None:
        """The summary kept as ``text``; None when it is of another :data:`FORMAT` (written
        before this one: what it lacks cannot be made up, only rebuilt from the records)."""
        body = orjson.loads(text)
        return cls(body) if body.get("format") == FORMAT else None

    def dumps(self) -> str:
        return orjson.dumps(self.body).decode()

    # Folding records in

    @classmethod
    def of(cls, records: Iterable[UsageRecord]) -> UsageSummary:
        """The summary of ``records`` in the store's order (their position stands for ``pk``)."""
        made = cls()
        made.fold((pk, r) for pk, r in enumerate(records))
        return made

    def fold(self, stored: Iterable[tuple[int, UsageRecord]]) -> None:
        """Add records (each with its ``pk``) to the summary."""
        body = self.body
        models: dict[str, Any] = body["models"]
        prompts: dict[str, Any] = body["prompts"]
        features: dict[str, int] = body["features"]
        stored = list(stored)
        self._fold_bounds([r for _, r in stored])
        for pk, r in stored:
            body["calls"] += 1
            body["prompt"] += r.prompt_tokens
            body["completion"] += r.completion_tokens
            add_exact(body["cost"], r.cost_usd)
            if body["first"] is None or r.timestamp < body["first"]:
                body["first"] = r.timestamp
            if body["last"] is None or r.timestamp > body["last"]:
                body["last"] = r.timestamp
            key = r.provider + "\n" + r.model
            model = models.get(key)
            if model is None:
                model = models[key] = _empty_model()
            model["calls"] += 1
            model["prompt"] += r.prompt_tokens
            model["completion"] += r.completion_tokens
            add_exact(model["cost"], r.cost_usd)
            failed = r.status == "error"
            if failed:
                model["errors"] += 1
                add_exact(model["failed_cost"], r.cost_usd)
                if r.latency_ms >= SLOW_FAILURE_MS:
                    model["slow_failures"] += 1
            latency = repr(round(float(r.latency_ms), 1))
            model["latency"][latency] = model["latency"].get(latency, 0) + 1
            if r.feature:
                features[r.feature] = features.get(r.feature, 0) + 1
                seen = model["features"].get(r.feature)
                at = [r.timestamp, pk]
                if seen is None:
                    model["features"][r.feature] = [1, at]
                else:
                    seen[0] += 1
                    if _earlier(seen[1], at):
                        seen[1] = at
            if r.prompt_hash:
                body["hashed"] += 1
                if r.status == "ok":
                    self._fold_prompt(prompts, r, pk)

    def _fold_bounds(self, records: list[UsageRecord]) -> None:
        """The least and greatest of each value (what tells the agents that every record is
        analysable without reading one: triage.analysable); a NaN, which compares false with
        everything, is counted apart."""
        body = self.body
        # prompt_tokens, completion_tokens, latency_ms, cost_usd: the record's fields 3 to 6.
        for i, field in enumerate((3, 4, 5, 6)):
            values = [r[field] for r in records]
            numbers = [v for v in values if v == v]  # NaN is the one value unequal to itself
            body["nan"] += len(values) - len(numbers)
            if numbers:
                least, most = min(numbers), max(numbers)
                if body["low"][i] is None or least < body["low"][i]:
                    body["low"][i] = least
                if body["high"][i] is None or most > body["high"][i]:
                    body["high"][i] = most

    @staticmethod
    def _fold_prompt(prompts: dict[str, Any], r: UsageRecord, pk: int) -> None:
        assert r.prompt_hash is not None
        feature = r.feature or "(none)"
        prompt = prompts.get(r.prompt_hash)
        if prompt is None:
            prompt = prompts[r.prompt_hash] = {"calls": 0, "first": None, "features": {}}
        prompt["calls"] += 1
        at = [r.timestamp, pk, r.cost_usd, feature]
        if _earlier(prompt["first"], at):
            prompt["first"] = at
        by_feature = prompt["features"].get(feature)
        if by_feature is None:
            by_feature = prompt["features"][feature] = [0, []]
        by_feature[0] += 1
        add_exact(by_feature[1], r.cost_usd)

    def digest(self) -> dict[str, Any]:
        """What the analyses read, ready to read (a few kilobytes, however many records): the
        totals, per model its figures, p50/p95/p99 latency and top three features, the overall
        latency, and what a response cache would have served (:func:`_cache`). Costs are the
        exact sums, correctly rounded."""
        body = self.body
        models = []
        overall: dict[float, int] = {}
        for key, m in body["models"].items():
            provider, name = key.split("\n", 1)
            histogram = {float(value): count for value, count in m["latency"].items()}
            for value, count in histogram.items():
                overall[value] = overall.get(value, 0) + count
            # Most calls first; equal counts in the order the features first appeared.
            features = sorted(m["features"].items(), key=lambda item: (-item[1][0], *item[1][1]))
            models.append(
                {
                    "provider": provider,
                    "model": name,
                    "calls": m["calls"],
                    "prompt": m["prompt"],
                    "completion": m["completion"],
                    "cost": math.fsum(m["cost"]),
                    "errors": m["errors"],
                    "failed_cost": math.fsum(m["failed_cost"]),
                    "slow_failures": m["slow_failures"],
                    "latency": _percentiles(histogram, _LATENCY),
                    "features": [f for f, _ in features[:3]],
                }
            )
        return {
            "format": FORMAT,
            "calls": body["calls"],
            "bounds": {"low": body["low"], "high": body["high"], "nan": body["nan"]},
            "prompt": body["prompt"],
            "completion": body["completion"],
            "cost": math.fsum(body["cost"]),
            "first": body["first"],
            "last": body["last"],
            "hashed": body["hashed"],
            "features": body["features"],
            "models": models,
            "latency": _percentiles(overall, _LATENCY),
            "cache": _cache(body["prompts"]),
        }

    def merge(self, other: UsageSummary) -> None:
        """Add the summary of records disjoint from this one's."""
        body, more = self.body, other.body
        for name in ("calls", "prompt", "completion", "hashed"):
            body[name] += more[name]
        merge_exact(body["cost"], more["cost"])
        body["nan"] += more["nan"]
        for i, (ours, theirs) in enumerate(zip(body["low"], more["low"], strict=True)):
            if theirs is not None and (ours is None or theirs < ours):
                body["low"][i] = theirs
        for i, (ours, theirs) in enumerate(zip(body["high"], more["high"], strict=True)):
            if theirs is not None and (ours is None or theirs > ours):
                body["high"][i] = theirs
        if more["first"] is not None:
            if body["first"] is None or more["first"] < body["first"]:
                body["first"] = more["first"]
            if body["last"] is None or more["last"] > body["last"]:
                body["last"] = more["last"]
        for name, count in more["features"].items():
            body["features"][name] = body["features"].get(name, 0) + count
        for key, theirs in more["models"].items():
            ours = body["models"].get(key)
            if ours is None:
                body["models"][key] = _copy(theirs)
                continue
            for name in ("calls", "prompt", "completion", "errors", "slow_failures"):
                ours[name] += theirs[name]
            merge_exact(ours["cost"], theirs["cost"])
            merge_exact(ours["failed_cost"], theirs["failed_cost"])
            for value, count in theirs["latency"].items():
                ours["latency"][value] = ours["latency"].get(value, 0) + count
            for name, (count, at) in theirs["features"].items():
                seen = ours["features"].get(name)
                if seen is None:
                    ours["features"][name] = [count, list(at)]
                else:
                    seen[0] += count
                    if _earlier(seen[1], at):
                        seen[1] = list(at)
        for prompt_hash, theirs in more["prompts"].items():
            ours = body["prompts"].get(prompt_hash)
            if ours is None:
                body["prompts"][prompt_hash] = _copy(theirs)
                continue
            ours["calls"] += theirs["calls"]
            if _earlier(ours["first"], theirs["first"]):
                ours["first"] = list(theirs["first"])
            for feature, (count, cost) in theirs["features"].items():
                by_feature = ours["features"].get(feature)
                if by_feature is None:
                    ours["features"][feature] = [count, list(cost)]
                else:
                    by_feature[0] += count
                    merge_exact(by_feature[1], cost)


def _copy(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


def _empty() -> dict[str, Any]:
    return {
        "format": FORMAT,
        "calls": 0,
        "prompt": 0,
        "completion": 0,
        "cost": [],
        # Least and greatest prompt tokens, completion tokens, latency, cost; NaNs counted apart.
        "low": [None, None, None, None],
        "high": [None, None, None, None],
        "nan": 0,
        "first": None,
        "last": None,
        "hashed": 0,
        "features": {},
        "models": {},
        "prompts": {},
    }


def _empty_model() -> dict[str, Any]:
    return {
        "calls": 0,
        "prompt": 0,
        "completion": 0,
        "cost": [],
        "errors": 0,
        "failed_cost": [],  # the exact cost of its failed calls
        "slow_failures": 0,  # its failed calls of SLOW_FAILURE_MS or more
        "latency": {},
        "features": {},
    }


def _percentiles(histogram: dict[float, int], percentiles: tuple[int, ...]) -> dict[str, Any]:
    """Nearest-rank percentiles of the values a histogram counts (None when it counts none)."""
    values = sorted(histogram)
    below = list(accumulate(histogram[value] for value in values))  # calls up to each value
    calls = below[-1] if below else 0
    out: dict[str, Any] = {"calls": calls}
    for pct in percentiles:
        rank = min(max(1, math.ceil(pct / 100 * calls)), calls)
        out[f"p{pct}"] = values[bisect_left(below, rank)] if calls else None
    return out


def _cache(prompts: dict[str, Any]) -> dict[str, Any]:
    """What a response cache would have served: every successful call with a prompt hash after
    its first occurrence (by time, then ``pk``) is a repeat, and its cost wasted."""
    feature_calls: dict[str, int] = {}
    feature_repeats: dict[str, int] = {}
    feature_costs: dict[str, ExactSum] = {}
    wasted: ExactSum = []
    repeated: list[tuple[float, str, int]] = []
    for prompt_hash, prompt in prompts.items():
        _, _, first_cost, first_feature = prompt["first"]
        if prompt["calls"] == 1:  # most prompts: nothing repeated, nothing wasted
            feature_calls[first_feature] = feature_calls.get(first_feature, 0) + 1
            continue
        own: ExactSum = [-first_cost]
        for feature, (count, costs) in prompt["features"].items():
            feature_calls[feature] = feature_calls.get(feature, 0) + count
            repeats = count - (feature == first_feature)
            if repeats:
                feature_repeats[feature] = feature_repeats.get(feature, 0) + repeats
            merge_exact(feature_costs.setdefault(feature, []), costs)
            merge_exact(own, costs)
        add_exact(feature_costs.setdefault(first_feature, []), -first_cost)
        merge_exact(wasted, own)
        repeated.append((math.fsum(own), prompt_hash, prompt["calls"] - 1))
    repeated.sort(key=lambda item: (-item[0], item[1]))
    return {
        "calls_with_hash": sum(feature_calls.values()),
        "repeated_calls": sum(item[2] for item in repeated),
        "repeated_prompts": len(repeated),
        "wasted": math.fsum(wasted),
        "features": {
            feature: [repeats, feature_calls[feature], math.fsum(feature_costs[feature])]
            for feature, repeats in feature_repeats.items()
        },
        "prompts": [[h, n, cost] for cost, h, n in repeated[:TOP_PROMPTS]],
    }
