"""A usage summary: the aggregates the offline analyses read, kept as records are stored.

A :class:`UsageSummary` is mergeable: the summary of two disjoint sets of records is the merge of
theirs, whatever the order, exactly. Counts and token sums are integers; costs are exact sums
(Shewchuk's non-overlapping partials, the representation ``math.fsum`` works with: adding a float
or another sum loses nothing, and the value read is the correctly rounded float of the exact
sum, whatever order the records came in); latencies are counted per value rounded to 0.1 ms,
which gives the very nearest-rank percentiles the analyses report (they round to 0.1 ms, and
rounding keeps the order). What depends on which of two equal things came first (the first
occurrence of a prompt, the order of a model's features by first appearance) keeps the first
one's time and its position in the store (``pk``), the order the store reads records in. It
also keeps the least and greatest of each value (so the agents know, without reading a record,
that every one is analysable) and each model's failures (their exact cost, how many took
:data:`SLOW_FAILURE_MS` or more): with them, most questions read no record at all.

The store keeps one summary per batch of records and one per user (the merge of their batches)
as JSON; see :mod:`runwire.store.usage` for when they are written.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson

from runwire.domain.usage import UsageRecord
from runwire.store.digest import TOP_PROMPTS, percentiles, response_cache
from runwire.store.exact_sum import ExactSum, add_exact, add_sum, merge_exact

__all__ = ["FORMAT", "SLOW_FAILURE_MS", "TOP_PROMPTS", "ExactSum", "UsageSummary"]

FORMAT = 2
"""The summary's format: 2 added the bounds of the records' values and each model's failures.
A summary (or digest) of another format is treated as unknown: its user's records are read."""

SLOW_FAILURE_MS = 10_000.0
"""A failed call this slow looks like a timeout: a digest counts them per model (what the
actions agent's reliability advice reads, ``analytics.failures_of``)."""

_LATENCY = (50, 95, 99)  # the percentiles every analysis reads

First = list[Any]
"""Where something was first met: ``[timestamp, pk]``, compared as a pair."""


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
        """Add records (each with its ``pk``) to the summary.

        A slice at a time, grouped by model: the sums of a group are taken in C (``sum``,
        ``min``, ``max``, ``Counter``, and exact cost sums by :func:`add_sum`), which made an
        import's folding several times cheaper than a pass per record in Python (what is left
        per record: a model's features and the prompts)."""
        stored = list(stored)
        if not stored:
            return
        body = self.body
        models: dict[str, Any] = body["models"]
        # A record's fields: timestamp, provider, model, prompt_tokens, completion_tokens,
        # latency_ms, cost_usd, status, prompt_hash, feature (0 to 9; by index, for speed).
        records = [r for _, r in stored]
        self._fold_bounds(records)
        body["calls"] += len(records)
        body["prompt"] += sum(r[3] for r in records)
        body["completion"] += sum(r[4] for r in records)
        add_sum(body["cost"], [r[6] for r in records])
        stamps = [r[0] for r in records]
        least, most = min(stamps), max(stamps)
        if body["first"] is None or least < body["first"]:
            body["first"] = least
        if body["last"] is None or most > body["last"]:
            body["last"] = most
        by_model: dict[str, list[tuple[int, UsageRecord]]] = {}
        for item in stored:
            r = item[1]
            by_model.setdefault(r[1] + "\n" + r[2], []).append(item)
        for key, group in by_model.items():
            model = models.get(key)
            if model is None:
                model = models[key] = _empty_model()
            self._fold_model(model, group)
        features: dict[str, int] = body["features"]
        for feature, count in Counter([r[9] for r in records if r[9]]).items():
            features[feature] = features.get(feature, 0) + count
        prompts: dict[str, Any] = body["prompts"]
        for pk, r in stored:
            if r[8]:
                body["hashed"] += 1
                if r[7] == "ok":
                    self._fold_prompt(prompts, r, pk)

    @staticmethod
    def _fold_model(model: dict[str, Any], group: list[tuple[int, UsageRecord]]) -> None:
        records = [r for _, r in group]
        model["calls"] += len(records)
        model["prompt"] += sum(r[3] for r in records)
        model["completion"] += sum(r[4] for r in records)
        add_sum(model["cost"], [r[6] for r in records])
        failed = [r for r in records if r[7] == "error"]
        if failed:
            model["errors"] += len(failed)
            add_sum(model["failed_cost"], [r[6] for r in failed])
            model["slow_failures"] += sum(1 for r in failed if r[5] >= SLOW_FAILURE_MS)
        latency: dict[str, int] = model["latency"]
        for value, count in Counter([repr(round(float(r[5]), 1)) for r in records]).items():
            latency[value] = latency.get(value, 0) + count
        seen_features: dict[str, Any] = model["features"]
        for pk, r in group:
            feature = r[9]
            if feature:
                at = [r[0], pk]
                seen = seen_features.get(feature)
                if seen is None:
                    seen_features[feature] = [1, at]
                else:
                    seen[0] += 1
                    if _earlier(seen[1], at):
                        seen[1] = at

    def _fold_bounds(self, records: list[UsageRecord]) -> None:
        """The least and greatest of each value (what tells the agents that every record is
        analysable without reading one: triage.analysable) among finite values; a NaN or an
        infinity (which JSON cannot keep) is counted apart."""
        body = self.body
        columns: tuple[list[float], ...] = (
            [r.prompt_tokens for r in records],
            [r.completion_tokens for r in records],
            [r.latency_ms for r in records],
            [r.cost_usd for r in records],
        )
        for i, values in enumerate(columns):
            numbers = [v for v in values if -math.inf < v < math.inf]  # NaN is neither
            body["nonfinite"] += len(values) - len(numbers)
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
        latency, and what a response cache would have served (``digest.response_cache``). Costs
        are the exact sums, correctly rounded."""
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
                    "latency": percentiles(histogram, _LATENCY),
                    "features": [f for f, _ in features[:3]],
                }
            )
        return {
            "format": FORMAT,
            "calls": body["calls"],
            "bounds": {"low": body["low"], "high": body["high"], "nonfinite": body["nonfinite"]},
            "prompt": body["prompt"],
            "completion": body["completion"],
            "cost": math.fsum(body["cost"]),
            "first": body["first"],
            "last": body["last"],
            "hashed": body["hashed"],
            "features": body["features"],
            "models": models,
            "latency": percentiles(overall, _LATENCY),
            "cache": response_cache(body["prompts"]),
        }

    def merge(self, other: UsageSummary) -> None:
        """Add the summary of records disjoint from this one's."""
        # One copy of all of it (orjson, in C), whose parts are then taken as they are: a copy
        # per prompt (thousands) made merging several times slower.
        body, more = self.body, _copy(other.body)
        for name in ("calls", "prompt", "completion", "hashed"):
            body[name] += more[name]
        merge_exact(body["cost"], more["cost"])
        body["nonfinite"] += more["nonfinite"]
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
                body["models"][key] = theirs
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
                    ours["features"][name] = [count, at]
                else:
                    seen[0] += count
                    if _earlier(seen[1], at):
                        seen[1] = at
        for prompt_hash, theirs in more["prompts"].items():
            ours = body["prompts"].get(prompt_hash)
            if ours is None:
                body["prompts"][prompt_hash] = theirs
                continue
            ours["calls"] += theirs["calls"]
            if _earlier(ours["first"], theirs["first"]):
                ours["first"] = theirs["first"]
            for feature, (count, cost) in theirs["features"].items():
                by_feature = ours["features"].get(feature)
                if by_feature is None:
                    ours["features"][feature] = [count, cost]
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
        # Least and greatest prompt tokens, completion tokens, latency, cost, of finite values;
        # how many were NaN or infinite.
        "low": [None, None, None, None],
        "high": [None, None, None, None],
        "nonfinite": 0,
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
