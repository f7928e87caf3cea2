"""``POST /auth/test-token``: sessions of e2e test users for a staging E2E suite. The app mounts
this router only when ``RUNWIRE_TEST_TOKEN_KEY`` is set outside production; everywhere else the
path is a 404 (docs/auth.md, "Test tokens")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field

from runwire.transport.client_address import client_address
from runwire.transport.errors import error_responses
from runwire.transport.replies import TokenPair
from runwire.transport.services import services_of

__all__ = ["router"]

router = APIRouter(prefix="/auth", tags=["auth"])


class E2EUserBody(BaseModel):
    name: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9-]{0,39}$",
        description="The test user is `e2e-<name>@runwire.test`, made on first use; the same "
        "name gives the same user. Unset: a new user every time.",
        examples=["alice"],
    )


@router.post(
    "/test-token",
    summary="A session of an e2e test user (staging only; needs the test-token key)",
    responses=error_responses(
        401,
        422,
        429,
        descriptions={
            401: "`X-Runwire-Test-Key` is missing or wrong (`unauthorized`).",
            429: "Too many wrong keys from this address (`rate_limited`).",
        },
    ),
)
async def e2e_session(
    request: Request,
    key: Annotated[
        str | None,
        Header(
            alias="X-Runwire-Test-Key",
            description="The deployment's `RUNWIRE_TEST_TOKEN_KEY`.",
        ),
    ] = None,
    body: E2EUserBody | None = None,
) -> TokenPair:
    services = services_of(request)
    assert services.e2e_tokens is not None  # mounted only with them
    address = client_address(request, services.settings.trusted_proxies)
    name = body.name if body is not None else None
    pair = await services.e2e_tokens.issue(key, name, address=address)
    return TokenPair.model_validate(pair.public())
