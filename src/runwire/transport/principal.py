"""Who is calling: the Bearer token of an HTTP request, checked on every call."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from runwire.auth.service import Principal
from runwire.errors import AuthError
from runwire.logs import bind_log_context
from runwire.transport.services import services_of

__all__ = ["CurrentPrincipal", "bearer_token"]

_bearer = HTTPBearer(auto_error=False, description="an access token from /auth/login")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, if that is what it holds."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def _principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthError("missing bearer token")
    principal = await services_of(request).auth.authenticate(credentials.credentials)
    bind_log_context(user_id=principal.user_id)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(_principal)]
