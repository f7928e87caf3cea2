"""Liveness, readiness and gauges. Readiness runs real checks (runwire.readiness)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from runwire.transport.replies import Health, ProcessGauges, Readiness
from runwire.transport.services import services_of

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/health", summary="200 while the process lives")
async def health() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    summary="200 when every dependency answers; 503 naming what fails",
    responses={503: {"model": Readiness, "description": "A check fails: `failing` names it."}},
    response_model_exclude_unset=True,
)
async def ready(request: Request, response: Response) -> Readiness:
    """The checks of ``runwire doctor`` (see runwire.readiness), each by name: ``"ok"`` or why it
    fails. A check that needs an earlier one to pass (the schema needs the database) is left out
    when that one fails."""
    checks = await services_of(request).readiness.run()
    reasons = {c.name: c.reason for c in checks}
    if all(c.ok for c in checks):
        return Readiness(status="ready", checks=reasons)
    response.status_code = 503
    return Readiness(
        status="unavailable", checks=reasons, failing=[c.name for c in checks if not c.ok]
    )


@router.get("/metrics", summary="Gauges of what the process holds: connections, runs, tasks")
async def metrics(request: Request) -> ProcessGauges:
    """Counts only, no user data. Every one returns to its baseline when clients leave and
    runs end; the leak tests read them, and so can a monitoring system."""
    services = services_of(request)
    return ProcessGauges(
        connections=services.bus.subscriber_count(),
        active_runs=services.executor.active_count,
        held_runs=services.bus.held_runs,
        tasks=len(asyncio.all_tasks()),
    )
