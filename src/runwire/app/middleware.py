"""The HTTP middleware every request passes, in the order it passes them: the auth service's
CORS (role auth), the request id, the request's span, the AG-UI CORS (when origins are allowed),
the body limits. Starlette runs the middleware added last first.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from runwire.config import Role, Settings
from runwire.telemetry.traces import Tracing
from runwire.transport import agui_routes
from runwire.transport.body_limit import (
    AGUI_BODY_BYTES,
    MAX_BODY_BYTES,
    SERVICE_BODY_BYTES,
    BodyLimit,
)
from runwire.transport.request_id import RequestIdMiddleware
from runwire.transport.request_span import RequestSpanMiddleware

__all__ = ["install_middleware"]


def install_middleware(app: FastAPI, settings: Settings, tracing: Tracing) -> None:
    """Add the middleware of ``settings``'s role to ``app``."""
    # The import reads its body as a stream, under RUNWIRE_MAX_IMPORT_BYTES (api_routes.py).
    app.add_middleware(
        BodyLimit,
        limit=MAX_BODY_BYTES,
        exempt={"/api/usage/import"},
        prefixes={"/internal/": SERVICE_BODY_BYTES, agui_routes.PATH: AGUI_BODY_BYTES},
    )
    if settings.role is not Role.AUTH and settings.allowed_origins:
        # AG-UI front ends at another origin call POST /ag-ui from the browser.
        app.add_middleware(agui_routes.AguiCors, origins=settings.allowed_origins)
    # Added last, runs first: the request id is set before the span, so the span's log lines
    # (uvicorn's access line included) carry both, and so does a body refused for its size.
    app.add_middleware(RequestSpanMiddleware, tracing=tracing)
    app.add_middleware(RequestIdMiddleware)
    if settings.role is Role.AUTH:
        # The page of a chat node, at another origin, calls /auth/* here. Bearer tokens, no
        # cookies: no credentials mode.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
