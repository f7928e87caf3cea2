"""Liveness and readiness. Readiness runs real checks (runwire.readiness); the gauges an operator
watches are in the metrics (runwire.transport.scrape)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from runwire.transport.services import services_of

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/health", summary="200 while the process lives")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="200 when every dependency answers; 503 naming what fails")
async def ready(request: Request) -> JSONResponse:
    """The checks of ``runwire doctor`` (see runwire.readiness), each by name: ``"ok"`` or why it
    fails. A check that needs an earlier one to pass (the schema needs the database) is left out
    when that one fails."""
    checks = await services_of(request).readiness.run()
    ok = all(c.ok for c in checks)
    body: dict[str, object] = {
        "status": "ready" if ok else "unavailable",
        "checks": {c.name: c.reason for c in checks},
    }
    if not ok:
        body["failing"] = [c.name for c in checks if not c.ok]
    return JSONResponse(body, status_code=200 if ok else 503)
