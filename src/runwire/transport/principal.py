"""Who is calling: the Bearer token of an HTTP request, checked on every call: a user's access
token (:data:`CurrentPrincipal`), or on the APIs for services a service token with a scope
(:func:`service_caller`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2, SecurityScopes

from runwire.auth.service import Principal
from runwire.auth.service_tokens import SCOPE_DESCRIPTIONS, ServiceClaims
from runwire.errors import AuthError, ServiceTokenRequired
from runwire.telemetry.logs import bind_log_context
from runwire.transport.services import services_of

__all__ = ["CurrentPrincipal", "bearer_token", "service_caller"]

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


# Documents how a service gets the token these APIs take. The token URL is relative: on a chat
# node the token endpoint is the auth service's (RUNWIRE_AUTH_ISSUER_URL + /auth/token).
_service_token = OAuth2(
    flows=OAuthFlows(
        clientCredentials=OAuthFlowClientCredentials(
            tokenUrl="/auth/token",
            scopes={scope.value: text for scope, text in SCOPE_DESCRIPTIONS.items()},
        )
    ),
    scheme_name="ServiceToken",
    description="A service token from POST /auth/token (client credentials); a user's access "
    "token is refused.",
    auto_error=False,
)


async def _service(
    request: Request,
    scopes: SecurityScopes,
    authorization: Annotated[str | None, Depends(_service_token)],
) -> ServiceClaims:
    token = bearer_token(authorization)
    if token is None:
        raise ServiceTokenRequired(
            "missing bearer token: this API takes a service token from POST /auth/token"
        )
    claims = await services_of(request).service_tokens.check(token)
    for scope in scopes.scopes:
        claims.require(scope)
    bind_log_context(client_id=claims.client_id)
    return claims


def service_caller(scope: str) -> Any:
    """The dependency of an API for services: a valid service token carrying ``scope``
    (401 ``service_token_required`` for a user's token or none, 403 ``insufficient_scope``)."""
    return Security(_service, scopes=[scope])
