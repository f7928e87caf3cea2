"""HTTP: register, log in, refresh, log out (PROTOCOL.md, HTTP)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import AfterValidator, BaseModel, Field

from runwire.transport.client_address import client_address
from runwire.transport.params import refuse_nul
from runwire.transport.principal import CurrentPrincipal
from runwire.transport.services import services_of

__all__ = ["router"]

router = APIRouter(prefix="/auth", tags=["auth"])


class Credentials(BaseModel):
    # Checked as an address by the auth service (account_email), the same rule as the CLI's.
    email: str = Field(max_length=320)
    password: str = Field(min_length=8, max_length=1024)


class LoginBody(BaseModel):
    email: Annotated[str, Field(max_length=320), AfterValidator(refuse_nul)]
    password: str = Field(max_length=1024)


class RefreshBody(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


@router.post("/register", status_code=201, summary="Create an account")
async def register(body: Credentials, request: Request) -> dict[str, Any]:
    services = services_of(request)
    address = client_address(request, services.settings.trusted_proxies)
    user = await services.auth.register(body.email, body.password, address=address)
    return {"user": user.public()}


@router.post("/login", summary="Exchange e-mail and password for tokens")
async def login(body: LoginBody, request: Request) -> dict[str, Any]:
    services = services_of(request)
    address = client_address(request, services.settings.trusted_proxies)
    pair = await services.auth.login(body.email, body.password, address=address)
    return pair.public()


@router.post("/refresh", summary="Spend a refresh token for a new pair")
async def refresh(body: RefreshBody, request: Request) -> dict[str, Any]:
    services = services_of(request)
    address = client_address(request, services.settings.trusted_proxies)
    pair = await services.auth.refresh(body.refresh_token, address=address)
    return pair.public()


@router.post("/logout", status_code=204, summary="End this session (its tokens stop working)")
async def logout(principal: CurrentPrincipal, request: Request) -> Response:
    await services_of(request).auth.logout(principal)
    return Response(status_code=204)
