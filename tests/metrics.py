"""Reading a server's ``/metrics`` (Prometheus's text format) the way Prometheus does."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["GAUGES", "gauges", "samples"]

GAUGES = (
    "runwire_connections",
    "runwire_runs_active",
    "runwire_bus_held_runs",
    "runwire_asyncio_tasks",
)
"""What a server holds for its clients and runs: each returns to its baseline when they are gone."""


def samples(text: str) -> dict[str, float]:
    """Every sample of an exposition, by name with its labels (``runwire_runs_total{status="completed"}``)."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found


async def gauges(http: httpx.AsyncClient) -> dict[str, float]:
    """The :data:`GAUGES` of the server ``http`` talks to."""
    response = await http.get("/metrics")
    response.raise_for_status()
    found = samples(response.text)
    return {name: found[name] for name in GAUGES}
