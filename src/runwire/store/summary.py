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

from collections.abc import Iterable
from typing import Any

import orjson

from runwire.store.records import UsageRecord

__all__ = ["ExactSum", "UsageSummary"]

ExactSum = list[float]
"""An exact sum of floats as non-overlapping partials (smallest magnitude first)."""

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
    def loads(cls, text: str | bytes) -> UsageSummary:
        return cls(orjson.loads(text))

    def dumps(self) -> str:
        return orjson.dumps(self.body).decode()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UsageSummary) and self.body == other.body

    __hash__ = None  # type: ignore[assignment]

    @property
    def calls(self) -> int:
        return int(self.body["calls"])

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

    def merge(self, other: UsageSummary) -> None:
        """Add the summary of records disjoint from this one's."""
        body, more = self.body, other.body
        for name in ("calls", "prompt", "completion", "hashed"):
            body[name] += more[name]
        merge_exact(body["cost"], more["cost"])
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
            for name in ("calls", "prompt", "completion", "errors"):
                ours[name] += theirs[name]
            merge_exact(ours["cost"], theirs["cost"])
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
        "calls": 0,
        "prompt": 0,
        "completion": 0,
        "cost": [],
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
        "latency": {},
        "features": {},
    }
