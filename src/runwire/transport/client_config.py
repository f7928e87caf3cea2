"""``GET /api/config``: what a client of this node needs before it signs in (docs/protocol.md).

On a split deployment (docs/auth.md, "Roles") the page and ``runwire check`` are served by a chat
node while ``/auth/*`` lives at the auth service: this says where."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from runwire.transport.services import services_of

__all__ = ["ClientConfig", "router"]

router = APIRouter(tags=["auth"])


class ClientConfig(BaseModel):
    auth_url: str | None = Field(
        description="Where to send `/auth/*` (register, login, refresh, logout): a base URL "
        "without a trailing slash, or null when it is this server (the same origin)."
    )
    issuer: str | None = Field(
        None,
        description="The outside OpenID Connect issuer whose access tokens this node accepts "
        "(docs/auth.md, Outside identity providers): a client gets its token there and sends "
        "it as the Bearer token; `/auth/*` is then served nowhere. Null where runwire's own "
        "`/auth/*` signs people in.",
    )


@router.get("/api/config", summary="Where a client signs in (the auth service's URL)")
async def client_config(request: Request, response: Response) -> ClientConfig:
    response.headers["Cache-Control"] = "no-store"
    settings = services_of(request).settings
    return ClientConfig(
        auth_url=settings.auth_client_url,
        issuer=settings.expected_issuer if settings.outside_issuer else None,
    )
