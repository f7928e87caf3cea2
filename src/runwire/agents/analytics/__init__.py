"""The analyses the agents' tools run on a user's usage records: pure functions, JSON-able results.

Every function takes the records as a sequence (any order), works on empty input, and returns a
dict of plain values rounded for reading: USD to 4 decimals, percentages to 1 decimal, latencies
to 1 decimal of a millisecond.

Monthly figures are scaled from the span the data covers to 30 days. The span is the time from
the first to the last call, but at least one day, so a burst of calls within an hour is not
extrapolated as if it went on all month.

One module a measure (:mod:`.totals`, :mod:`.spend`, :mod:`.latency`, :mod:`.failures`,
:mod:`.caching`, :mod:`.breakdowns`, :mod:`.trends`), on the shared :mod:`.span`, :mod:`.groups`,
:mod:`.rounding` and :mod:`.memo`; :mod:`.digest` answers the same from a store-kept summary. The
tools, the agents and the tests call them through this package, as ``analytics.<name>``.
"""

from __future__ import annotations

from runwire.agents.analytics.breakdowns import breakdown
from runwire.agents.analytics.caching import cache_candidates
from runwire.agents.analytics.digest import remember, summarized
from runwire.agents.analytics.failures import error_rate, failures_of
from runwire.agents.analytics.groups import GROUPS
from runwire.agents.analytics.latency import latency_percentiles, percentile
from runwire.agents.analytics.span import MONTH_DAYS, monthly_factor, span_days
from runwire.agents.analytics.spend import cheaper_models, cost_by_model
from runwire.agents.analytics.totals import inventory, overview
from runwire.agents.analytics.trends import trend

__all__ = [
    "GROUPS",
    "MONTH_DAYS",
    "breakdown",
    "cache_candidates",
    "cheaper_models",
    "cost_by_model",
    "error_rate",
    "failures_of",
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
