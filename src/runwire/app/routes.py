"""The route table of a process's role (docs/auth.md, "Roles"): what it mounts, and the page
where people chat.
"""

from __future__ import annotations

from importlib import resources
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from runwire.config import Role, Settings
from runwire.transport import (
    agui_routes,
    api_routes,
    auth_routes,
    client_config,
    health,
    internal_routes,
    scrape,
    test_token_routes,
    token_routes,
    well_known,
)
from runwire.transport.websocket import websocket_endpoint

__all__ = ["install_routes", "page_policy", "routers_of"]


def install_routes(app: FastAPI, settings: Settings) -> None:
    """The routes of the process's role: /auth/* and /.well-known/* where tokens are issued,
    /api/*, /ws and the page where people chat (docs/auth.md, "Roles")."""
    for router in routers_of(settings):
        app.include_router(router)
    if settings.role is Role.AUTH:
        return
    app.add_api_websocket_route("/ws", websocket_endpoint)
    static = resources.files("runwire") / "web" / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    index_html = page_policy(
        (static / "index.html").read_text(encoding="utf-8"), settings.auth_client_url
    )

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(index_html, headers={"Cache-Control": "no-store"})


def page_policy(index_html: str, auth_client_url: str | None) -> str:
    """The chat page with its content security policy: with ``auth_client_url`` (a chat node
    whose tokens come from an auth service), the page may call that origin too, and no other."""
    if auth_client_url is not None:
        # The page's policy lets it call the auth service's origin too, and no other.
        auth = urlsplit(auth_client_url)
        index_html = index_html.replace(
            "connect-src 'self'", f"connect-src 'self' {auth.scheme}://{auth.netloc}", 1
        )
    return index_html


def routers_of(settings: Settings) -> list[APIRouter]:
    """The routers of the process's role, in the order they are included: the auth service's
    where tokens are issued (not on a chat node), the chat's (not on the auth service), and the
    health and metrics routes everywhere."""
    routers: list[APIRouter] = []
    if settings.role is not Role.CHAT:
        routers += [auth_routes.router, token_routes.router]
        if settings.serves_test_tokens:  # otherwise the path does not exist: 404
            routers.append(test_token_routes.router)
        routers.append(well_known.router)
    if settings.role is not Role.AUTH:
        routers += [
            api_routes.router,
            client_config.router,
            internal_routes.router,
            agui_routes.router,
        ]
    routers += [health.router, scrape.router]
    return routers
