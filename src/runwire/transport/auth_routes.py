"""HTTP: register, log in, refresh, log out, change the password (PROTOCOL.md, HTTP)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import AfterValidator, BaseModel, Field

from runwire.transport.client_address import client_address
from runwire.transport.errors import error_responses
from runwire.transport.params import refuse_nul
from runwire.transport.principal import CurrentPrincipal
from runwire.transport.replies import TokenPair, User, UserReply
from runwire.transport.services import services_of

__all__ = ["router"]

router = APIRouter(prefix="/auth", tags=["auth"])


class Credentials(BaseModel):
    # Checked as an address by the auth service (account_email), the same rule as the CLI's.
    email: str = Field(
        max_length=320,
        json_schema_extra={"format": "email"},
        description="Stored trimmed and lower-cased. Addresses at special-use domains "
        "(`.test`, `.local`, `.invalid`, `localhost`, …) are refused: they cannot receive mail.",
    )
    password: str = Field(min_length=8, max_length=1024)


class LoginBody(BaseModel):
    email: Annotated[str, Field(max_length=320), AfterValidator(refuse_nul)]
    password: str = Field(max_length=1024)


class RefreshBody(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024)


@router.post(
    "/register",
    status_code=201,
    summary="Create an account",
    responses=error_responses(
        409,
        422,
        429,
        descriptions={
            409: "The e-mail address is registered already (`conflict`).",
            429: "Too many sign-ups from this address (`rate_limited`).",
        },
    ),
)
async def register(body: Credentials, request: Request) -> UserReply:
    services = services_of(request)
    address = client_address(request, services.settings.trusted_proxies)
    user = await services.auth.register(body.email, body.password, address=address)
    return UserReply(user=User.model_validate(user.public()))


@router.post(
    "/login",
    summary="Exchange e-mail and password for tokens",
    responses=error_responses(
        401,
        422,
        429,
        descriptions={
            401: "Wrong e-mail or password (the same answer for both).",
            429: "Too many failed logins for the account or from this address; "
            "the password is not checked during the wait.",
        },
    ),
)
async def login(body: LoginBody, request: Request) -> TokenPair:
    services = services_of(request)
    address = client_address(request, services.settings.trusted_proxies)
    pair = await services.auth.login(body.email, body.password, address=address)
    return TokenPair.model_validate(pair.public())


@router.post(
    "/refresh",
    summary="Spend a refresh token for a new pair",
    responses=error_responses(
        401,
        422,
        429,
        descriptions={
            401: "An unknown, expired or revoked refresh token; a spent one presented again "
            "revokes its whole session.",
            429: "Too many refreshes from this address (the token is not spent).",
        },
    ),
)
async def refresh(body: RefreshBody, request: Request) -> TokenPair:
    services = services_of(request)
    address = client_address(request, services.settings.trusted_proxies)
    pair = await services.auth.refresh(body.refresh_token, address=address)
    return TokenPair.model_validate(pair.public())


@router.post(
    "/logout",
    status_code=204,
    summary="End this session (its tokens stop working)",
    response_class=Response,
    responses=error_responses(401),
)
async def logout(principal: CurrentPrincipal, request: Request) -> Response:
    await services_of(request).auth.logout(principal)
    return Response(status_code=204)


@router.post(
    "/password",
    status_code=204,
    summary="Change the password; every other session of the user ends",
    response_class=Response,
    responses=error_responses(
        401,
        403,
        422,
        429,
        descriptions={
            403: "`current_password` is not the account's password (`wrong_password`); it counts "
            "as a failed login.",
            429: "Too many wrong passwords for the account or from this address (the limits "
            "of failed logins); the password is not checked during the wait.",
        },
    ),
)
async def change_password(
    body: PasswordChange, principal: CurrentPrincipal, request: Request
) -> Response:
    services = services_of(request)
    address = client_address(request, services.settings.trusted_proxies)
    await services.auth.change_password(
        principal, body.current_password, body.new_password, address=address
    )
    return Response(status_code=204)
