"""The auth service's endpoints for services (docs/auth.md, "Service accounts"):

- ``POST /auth/token``: client credentials for a service token (RFC 6749 section 4.4), the
  form and the errors as OAuth 2.0 writes them (section 5.2), not runwire's error bodies;
- ``GET /auth/revocations``: the sessions ended lately, for chat nodes without Redis (a service
  token with ``revocations:read``).
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from runwire.auth.client_credentials import ASSERTION_TYPE, GRANT_TYPE, TokenRequest
from runwire.auth.client_credentials import basic_credentials as read_basic
from runwire.auth.service import CLOCK_MARGIN_S
from runwire.auth.service_tokens import Scope, ServiceClaims
from runwire.domain.clock import now_ms
from runwire.errors import DependencyUnavailable, InputError, InvalidClient, RateLimited
from runwire.transport.client_address import client_address
from runwire.transport.errors import error_responses
from runwire.transport.principal import service_caller
from runwire.transport.replies import OAuthError, Revocation, RevocationFeed, ServiceToken
from runwire.transport.services import services_of
from runwire.transport.well_known import TOKEN_PATH

__all__ = ["FEED_PAGE", "router"]

router = APIRouter(tags=["auth"])

FORM = "application/x-www-form-urlencoded"
FEED_PAGE = 1000
_FIELDS = (
    "grant_type",
    "scope",
    "client_id",
    "client_secret",
    "client_assertion_type",
    "client_assertion",
)
_OAUTH_CODES = {"invalid_request", "unsupported_grant_type", "invalid_scope"}

_TOKEN_BODY = {
    "required": True,
    "content": {
        FORM: {
            "schema": {
                "type": "object",
                "properties": {
                    "grant_type": {"type": "string", "enum": [GRANT_TYPE]},
                    "scope": {
                        "type": "string",
                        "maxLength": 1000,
                        "description": "Space-separated; unset: every scope of the client.",
                    },
                    "client_id": {"type": "string", "maxLength": 100},
                    "client_secret": {
                        "type": "string",
                        "maxLength": 200,
                        "description": "client_secret_post (or send both in "
                        "`Authorization: Basic`).",
                    },
                    "client_assertion_type": {"type": "string", "enum": [ASSERTION_TYPE]},
                    "client_assertion": {
                        "type": "string",
                        "maxLength": 8000,
                        "description": "private_key_jwt: a JWT signed by the client's key (RFC "
                        "7523): iss = sub = client id, aud = this URL or the issuer, exp at "
                        "most 5 minutes ahead, a new jti each time.",
                    },
                },
                "required": ["grant_type"],
            }
        }
    },
}

_HEADER = {"required": True, "schema": {"type": "string"}}
_TOKEN_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": OAuthError,
        "description": "`invalid_request` (a malformed form, two ways of client "
        "authentication), `unsupported_grant_type` or `invalid_scope` (a scope the client may "
        "not have).",
    },
    401: {
        "model": OAuthError,
        "description": "`invalid_client`: unknown or disabled client, wrong secret, an assertion "
        "that is expired, replayed, for another audience or wrongly signed; or none at all.",
        "headers": {"WWW-Authenticate": {**_HEADER, "description": '`Basic realm="runwire"`'}},
    },
    429: {
        "model": OAuthError,
        "description": "`rate_limited`: too many failed client authentications from this address.",
        "headers": {
            "Retry-After": {
                "required": True,
                "description": "Whole seconds to wait (at least 1).",
                "schema": {"type": "integer", "minimum": 1},
            }
        },
    },
    503: {"model": OAuthError, "description": "`temporarily_unavailable`: the database."},
}


def _oauth_error(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


async def _form(request: Request) -> dict[str, str]:
    """The token request's form; :class:`InputError` ``invalid_request`` when it is not one."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != FORM:
        raise InputError(f"the body must be {FORM}", code="invalid_request")
    try:
        fields = parse_qs((await request.body()).decode(), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise InputError("the form is not UTF-8 form-encoded", code="invalid_request") from None
    repeated = sorted(name for name in _FIELDS if len(fields.get(name, ())) > 1)
    if repeated:  # RFC 6749 section 3.2: no parameter more than once
        raise InputError(f"{', '.join(repeated)} sent more than once", code="invalid_request")
    # Unknown parameters are ignored (RFC 6749 section 3.2).
    return {name: fields[name][0] for name in _FIELDS if name in fields and fields[name][0]}


@router.post(
    TOKEN_PATH,
    summary="A service token for client credentials (OAuth 2.0 client_credentials)",
    description="Form-encoded (RFC 6749 section 4.4). The client authenticates with "
    "`Authorization: Basic` (client_secret_basic), `client_id` and `client_secret` in the form "
    "(client_secret_post), or a client assertion (private_key_jwt, RFC 7523); one of them. "
    "Errors are OAuth's: `{error, error_description}`.",
    response_model=ServiceToken,
    responses=_TOKEN_ERRORS,
    openapi_extra={"requestBody": _TOKEN_BODY},
)
async def token(request: Request) -> Any:
    services = services_of(request)
    assert services.client_credentials is not None  # mounted with the auth routes only
    address = client_address(request, services.settings.trusted_proxies)
    try:
        form = await _form(request)
        asked = TokenRequest(
            grant_type=form.get("grant_type"),
            scope=form.get("scope"),
            client_id=form.get("client_id"),
            client_secret=form.get("client_secret"),
            basic=read_basic(request.headers.get("authorization")),
            assertion_type=form.get("client_assertion_type"),
            assertion=form.get("client_assertion"),
        )
        here = str(request.base_url).rstrip("/") + TOKEN_PATH
        issued = await services.client_credentials.grant(
            asked,
            address=address,
            endpoint_urls=_endpoint_urls(services.settings.auth_issuer, here),
        )
    except InvalidClient as exc:
        return _oauth_error(
            401, "invalid_client", exc.message, {"WWW-Authenticate": 'Basic realm="runwire"'}
        )
    except InputError as exc:
        error = exc.code if exc.code in _OAUTH_CODES else "invalid_request"
        return _oauth_error(400, error, exc.message)
    except RateLimited as exc:
        return _oauth_error(
            429, "rate_limited", exc.message, {"Retry-After": str(exc.retry_after_whole_s)}
        )
    except DependencyUnavailable as exc:
        return _oauth_error(503, "temporarily_unavailable", exc.message)
    return JSONResponse(
        issued.public(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
    )


def _endpoint_urls(issuer: str, here: str) -> list[str]:
    """The audiences an assertion may name besides the issuer: this endpoint's URL as the
    request reached it, and as the issuer's URL makes it (they differ behind a proxy)."""
    urls = [here]
    if issuer.startswith(("https://", "http://")):
        urls.append(issuer.rstrip("/") + TOKEN_PATH)
    return urls


RevocationsReader = Annotated[ServiceClaims, service_caller(Scope.REVOCATIONS_READ)]


@router.get(
    "/auth/revocations",
    summary="Sessions ended lately (for chat nodes without Redis; scope revocations:read)",
    description="The sessions ended after `after` (epoch ms) whose access tokens may still be "
    "live, oldest first. A chat node polls it with `after` set to the last `next_after` and "
    "denies those sessions (their sockets close).",
    responses=error_responses(
        401,
        403,
        422,
        descriptions={
            401: "No service token, a user's token (`service_token_required`), or an invalid "
            "or expired one (`unauthorized`).",
            403: "The service token lacks `revocations:read` (`insufficient_scope`).",
        },
    ),
)
async def revocations(
    request: Request,
    _caller: RevocationsReader,
    after: int = Query(0, ge=0, le=2**53, description="Epoch ms: the last `next_after`."),
) -> RevocationFeed:
    services = services_of(request)
    ttl = services.settings.access_token_ttl_s
    # Sessions ended longer ago than an access token lives cannot have a live token left.
    window_ms = (ttl + CLOCK_MARGIN_S) * 1000
    found = await services.store.accounts.revoked_since(after, now_ms() - window_ms, FEED_PAGE)
    now = time.time()
    feed = [
        Revocation(sid=sid, until=math.ceil(revoked_at / 1000 + ttl + CLOCK_MARGIN_S))
        for sid, revoked_at in found
    ]
    return RevocationFeed(
        revocations=[r for r in feed if r.until > now],
        next_after=found[-1][1] if found else after,
    )
