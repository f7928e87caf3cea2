"""``/.well-known/jwks.json`` and ``/.well-known/openid-configuration``: where a verifier of
runwire's access tokens finds the keys (docs/auth.md, docs/protocol.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from runwire.auth.client_credentials import ASSERTION_ALGORITHMS, AUTH_METHODS, GRANT_TYPE
from runwire.auth.service_tokens import Scope
from runwire.transport.replies import JsonWebKey, JsonWebKeySet, OpenIdConfiguration
from runwire.transport.services import services_of

__all__ = ["JWKS_PATH", "TOKEN_PATH", "router"]

JWKS_PATH = "/.well-known/jwks.json"
TOKEN_PATH = "/auth/token"  # noqa: S105 - a path, not a secret
# Five minutes: a verifier that meets a token naming a key it has not seen fetches the set again
# (docs/auth.md), so a long cache delays nothing; a new key is published as it starts signing.
JWKS_CACHE = "public, max-age=300"
DISCOVERY_CACHE = "public, max-age=3600"

router = APIRouter(tags=["auth"])


@router.get(
    JWKS_PATH,
    summary="The public keys that verify access tokens (JWK set)",
    response_model_exclude_none=True,
)
async def jwks(request: Request, response: Response) -> JsonWebKeySet:
    keys = services_of(request).keys.published()
    response.headers["Cache-Control"] = JWKS_CACHE
    return JsonWebKeySet(keys=[JsonWebKey.model_validate(key.jwk()) for key in keys])


@router.get(
    "/.well-known/openid-configuration",
    summary="Where the keys and the token endpoint are (OpenID Connect Discovery fields)",
)
async def openid_configuration(request: Request, response: Response) -> OpenIdConfiguration:
    services = services_of(request)
    issuer = services.settings.auth_issuer
    # An issuer that is a URL is where its documents are (OpenID Connect Discovery); otherwise
    # the keys are named at the address this request came to.
    base = (
        issuer.rstrip("/")
        if issuer.startswith(("https://", "http://"))
        else str(request.base_url).rstrip("/")
    )
    algorithms = sorted({key.algorithm.value for key in services.keys.published()})
    response.headers["Cache-Control"] = DISCOVERY_CACHE
    return OpenIdConfiguration.model_validate(
        {
            "issuer": issuer,
            "jwks_uri": base + JWKS_PATH,
            "id_token_signing_alg_values_supported": algorithms,
            "subject_types_supported": ["public"],
            "token_endpoint": base + TOKEN_PATH,
            "grant_types_supported": [GRANT_TYPE],
            "token_endpoint_auth_methods_supported": AUTH_METHODS,
            "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
            "scopes_supported": [scope.value for scope in Scope],
        }
    )
