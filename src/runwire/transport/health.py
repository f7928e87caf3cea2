"""Liveness and readiness. Readiness runs real checks (runwire.readiness); the gauges an operator
watches are in the metrics (runwire.transport.scrape)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from runwire.transport.replies import Health, Readiness
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
