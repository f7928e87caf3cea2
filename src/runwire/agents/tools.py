"""The agents' tools over a user's usage data, as function definitions a model can be offered.

Each :class:`Tool` has a name, a short description, a JSON Schema of its arguments (from a
pydantic model, which also validates them) and a function of the bound data and those arguments
that returns a JSON-able result. A ``Toolbox`` (``agents/toolbox.py``) binds the tools to one
run's records and price table: the offline agents call ``toolbox.function(name)`` through
``AgentContext.call_tool``, and an LLM that chooses tools gets ``toolbox.definitions()`` and the
very same functions, so every figure of an answer comes from a tool call the user saw
(``tool_executing``/``tool_completed``).

The functions reuse the memoized aggregates of :mod:`runwire.agents.analytics`, so a tool costs
a copy of a result computed once per data set, not another scan of the records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runwire.agents import analytics
from runwire.agents.data_helper import import_guide
from runwire.agents.names import Names
from runwire.agents.question import classify
from runwire.domain.usage import UsageRecord
from runwire.errors import InputError
from runwire.store.summary import SLOW_FAILURE_MS
from runwire.usage.pricing import PricingTable

__all__ = ["EVERY_RUN", "TOOLS", "Bench", "Tool", "prepare"]

Group = Literal["model", "provider", "feature"]
Percentile = Annotated[int, Field(gt=0, le=100)]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _NoArgs(_Args):
    pass


class _Percentiles(_Args):
    percentiles: list[Percentile] = Field(default=[50, 95, 99], min_length=1, max_length=6)


class _TopN(_Args):
    top_n: int = Field(default=5, ge=1, le=20)


class _Breakdown(_Args):
    group_by: Group = "model"
    percentiles: list[Percentile] = Field(default=[50, 95, 99], min_length=1, max_length=6)


class _Compare(_Args):
    group_by: Group = "model"
    names: list[str] = Field(min_length=2, max_length=8)


class _Trend(_Args):
    window_days: int = Field(default=7, ge=1, le=90)


class _Subject(_Args):
    kind: Group
    name: str = Field(min_length=1, max_length=200)


class _Question(_Args):
    question: str = Field(min_length=1, max_length=32_000)


@dataclass(frozen=True, slots=True)
class Bench:
    """What the tools work on: one run's usage records and price table."""

    records: Sequence[UsageRecord]
    pricing: PricingTable


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool: ``run(bench, args)`` returns its JSON-able result for validated ``args``."""

    name: str
    description: str
    arguments: type[_Args]
    run: Callable[[Bench, Any], Any]

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON Schema of the arguments."""
        return self.arguments.model_json_schema()

    def definition(self) -> dict[str, Any]:
        """The tool as an OpenAI-style function definition."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


def _compare(bench: Bench, args: _Compare) -> dict[str, Any]:
    table = analytics.breakdown(bench.records, args.group_by)
    by_name = {row["name"]: row for row in table["rows"]}
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        raise InputError(
            f"no calls of {args.group_by} {', '.join(unknown)}; known: {', '.join(by_name)}"
        )
    rows = [by_name[n] for n in dict.fromkeys(args.names)]

    def lowest(key: str) -> str:
        return str(min(rows, key=lambda r: r[key] if r[key] is not None else float("inf"))["name"])

    return {
        "group_by": args.group_by,
        "rows": rows,
        "overall": table["overall"],
        "lowest": {
            "cost_per_call_usd": lowest("cost_per_call_usd"),
            "p95": lowest("p95"),
            "error_rate_pct": lowest("error_rate_pct"),
        },
    }


def _subject(bench: Bench, args: _Subject) -> dict[str, Any]:
    table = analytics.breakdown(bench.records, args.kind)
    rows = table["rows"]
    names = [row["name"] for row in rows]
    if args.name not in names:
        price = bench.pricing.lookup("", args.name) if args.kind == "model" else None
        return {
            "kind": args.kind,
            "name": args.name,
            "found": False,
            "known": names,
            "list_price": None
            if price is None
            else {
                "provider": price.provider,
                "tier": price.tier,
                "input_per_mtok_usd": price.input_per_mtok,
                "output_per_mtok_usd": price.output_per_mtok,
            },
        }
    row = rows[names.index(args.name)]
    by_p95 = sorted(rows, key=lambda r: (-(r["p95"] or 0), r["name"]))
    by_errors = sorted(rows, key=lambda r: (-r["error_rate_pct"], r["name"]))
    out: dict[str, Any] = {
        "kind": args.kind,
        "name": args.name,
        "found": True,
        "of": len(rows),
        "row": row,
        "overall": table["overall"],
        "total_cost_usd": table["total_cost_usd"],
        "rank_by_cost": names.index(args.name) + 1,
        "rank_by_p95": by_p95.index(row) + 1,
        "rank_by_error_rate": by_errors.index(row) + 1,
    }
    if args.kind == "model":
        cheaper = analytics.cheaper_models(bench.records, bench.pricing)["models"]
        out["cheaper"] = next((m for m in cheaper if m["model"] == args.name), None)
    if args.kind == "feature":
        cache = analytics.cache_candidates(bench.records, top_n=20)["top_features"]
        out["cache"] = next((f for f in cache if f["feature"] == args.name), None)
    return out


def _names(bench: Bench) -> Names:
    # The names of a data set (and their lookup table) are kept in its memo, like the aggregates.
    memo: dict[Any, Any] = getattr(bench.records, "memo", {})
    key = ("question_names", id(bench.pricing))
    names: Names | None = memo.get(key)
    if names is None:
        priced = [m.model for m in bench.pricing.models]
        names = memo[key] = Names.from_inventory(analytics.inventory(bench.records), priced)
    return names


def _classify(bench: Bench, args: _Question) -> dict[str, Any]:
    return classify(args.question, _names(bench)).public()


#: Every tool over the usage data, in the order a model is offered them.
TOOLS: tuple[Tool, ...] = (
    Tool(
        "classify_question",
        "Read a question about LLM usage: its kind (cost, spend, latency, errors, caching, "
        "compare, trend, subject, data, off_topic, unclear), the models/providers/features it "
        "names, the percentile and the grouping asked for.",
        _Question,
        _classify,
    ),
    Tool(
        "usage_overview",
        "Calls, first and last call, days covered, total and monthly cost, tokens, and how many "
        "providers, models and features the usage data holds.",
        _NoArgs,
        lambda b, a: analytics.overview(b.records),
    ),
    Tool(
        "describe_data",
        "What the usage data holds: its dates, the providers, models and features by calls, "
        "and how many calls carry a prompt fingerprint or a feature, or failed.",
        _NoArgs,
        lambda b, a: analytics.inventory(b.records),
    ),
    Tool(
        "cost_breakdown",
        "Calls, tokens, cost and share of cost per model, most expensive first.",
        _NoArgs,
        lambda b, a: analytics.cost_by_model(b.records),
    ),
    Tool(
        "latency_percentiles",
        "Nearest-rank latency percentiles in ms, overall and per model, slowest first.",
        _Percentiles,
        lambda b, a: analytics.latency_percentiles(b.records, a.percentiles),
    ),
    Tool(
        "error_rates",
        "Failed calls and error rate, overall and per model, worst first.",
        _NoArgs,
        lambda b, a: analytics.error_rate(b.records),
    ),
    Tool(
        "breakdown",
        "Per model, provider or feature: calls, tokens, cost (total, monthly, per call, share), "
        "latency percentiles, errors and error rate; most expensive first.",
        _Breakdown,
        lambda b, a: analytics.breakdown(b.records, a.group_by, a.percentiles),
    ),
    Tool(
        "compare_usage",
        "Two or more models, providers or features side by side: cost per call, latency "
        "percentiles, error rate, and which is lowest on each.",
        _Compare,
        _compare,
    ),
    Tool(
        "usage_trend",
        "The last window_days of the data against the window_days before: calls, cost, p95 "
        "latency and error rate of each, their change, and the models whose cost moved most.",
        _Trend,
        lambda b, a: analytics.trend(b.records, a.window_days),
    ),
    Tool(
        "describe_subject",
        "One model, provider or feature: its calls, cost, latency, errors, ranks among the "
        "others, a cheaper model (for a model) or repeated prompts (for a feature).",
        _Subject,
        _subject,
    ),
    Tool(
        "find_cache_candidates",
        "Successful calls repeating a prompt already answered: what a response cache would "
        "serve and save a month, by feature and by prompt.",
        _TopN,
        lambda b, a: analytics.cache_candidates(b.records, a.top_n),
    ),
    Tool(
        "find_cheaper_models",
        "For each model with a cheaper same-provider model in the price table: the monthly "
        "cost today and on the candidate, for the same tokens.",
        _NoArgs,
        lambda b, a: analytics.cheaper_models(b.records, b.pricing),
    ),
    Tool(
        "describe_import_formats",
        "The usage file format (JSON Lines or CSV fields) and every way to import a file or "
        "load the sample data set.",
        _NoArgs,
        lambda b, a: import_guide(),
    ),
)


#: The tools every analysis of the offline agents calls, with their default arguments.
EVERY_RUN = (
    "usage_overview",
    "cost_breakdown",
    "latency_percentiles",
    "error_rates",
    "find_cache_candidates",
    "find_cheaper_models",
)


def prepare(records: Sequence[UsageRecord], pricing: PricingTable) -> None:
    """Compute into the records' memo what every analysis of them reads: the results of
    :data:`EVERY_RUN` with their default arguments, and the names questions are read against.

    When the store gave the records with their summary (``memo["usage_digest"]``), the aggregates
    are read from it (``analytics.remember``: about a millisecond), not computed from the
    records, which need not be read (a :class:`UsageView`'s are not, then). Otherwise: pure CPU over every record (about 20 ms for 4,000 records), to run off the event loop
    (``asyncio.to_thread``) when a run meets a data set for the first time, so the run's tools
    (and every later run's, until the data changes) only copy results. Records without a memo
    (not a ``UsageSet``) would keep nothing: they are left alone.
    """
    memo: dict[Any, Any] | None = getattr(records, "memo", None)
    if memo is None:
        return
    digest = memo.get("usage_digest")
    if digest is not None:
        # Kept by the store as the records were imported: the aggregates without a scan.
        analytics.remember(memo, digest, pricing, SLOW_FAILURE_MS)
    bench = Bench(records, pricing)
    _names(bench)
    if digest is not None:
        # The memo holds every result EVERY_RUN's tools read now (they would only copy it):
        # running them here, on a new user's first question, made copies to throw away.
        return
    tools = {tool.name: tool for tool in TOOLS}
    for name in EVERY_RUN:
        tools[name].run(bench, tools[name].arguments())
