"""Liveness and readiness. Readiness runs real checks (a query, the schema revision)."""

from __future__ import annotations

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
    db = services_of(request).store.db
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
    ok = all(v == "ok" for v in checks.values())
    body: dict[str, object] = {"status": "ready" if ok else "unavailable", "checks": checks}
    if not ok:
        body["failing"] = [k for k, v in checks.items() if v != "ok"]
    return JSONResponse(body, status_code=200 if ok else 503)
