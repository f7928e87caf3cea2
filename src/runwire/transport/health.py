"""Liveness, readiness and gauges. Readiness runs real checks (a query, the schema revision)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from runwire.errors import DependencyUnavailable
from runwire.transport.services import services_of

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/health", summary="200 while the process lives")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="200 when every dependency answers; 503 naming what fails")
async def ready(request: Request) -> JSONResponse:
    services = services_of(request)
    db = services.store.db
    checks: dict[str, str] = {}
    try:
        await db.ping()
        checks["database"] = "ok"
        current, head = await db.schema_revision()
        checks["schema"] = (
            "ok" if current == head else f"at {current}, needs {head}: run `runwire migrate`"
        )
    except DependencyUnavailable as exc:
        checks["database"] = exc.message
    if services.settings.redis_url is not None:
        try:
            await services.bus.ping()
            checks["redis"] = "ok"
        except DependencyUnavailable as exc:
            checks["redis"] = exc.message
    ok = all(v == "ok" for v in checks.values())
    body: dict[str, object] = {"status": "ready" if ok else "unavailable", "checks": checks}
    if not ok:
        body["failing"] = [k for k, v in checks.items() if v != "ok"]
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", summary="Gauges of what the process holds: connections, runs, tasks")
async def metrics(request: Request) -> dict[str, int]:
    """Counts only, no user data. Every one returns to its baseline when clients leave and
    runs end; the leak tests read them, and so can a monitoring system."""
    services = services_of(request)
    return {
        "connections": services.bus.subscriber_count(),
        "active_runs": services.executor.active_count,
        "held_runs": services.bus.held_runs,
        "tasks": len(asyncio.all_tasks()),
    }
