"""The closed choices among the settings: each a StrEnum whose values are what the variable takes."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "OUTSIDE_ALGORITHMS",
    "RUNWIRE_ALGORITHMS",
    "Environment",
    "IssuerKind",
    "LogFormat",
    "LogLevel",
    "ModelFallback",
    "Role",
    "SigningAlgorithm",
    "TokenAlgorithm",
    "WebSocketPath",
]


class WebSocketPath(StrEnum):
    """How `runwire serve` answers /ws (see docs/decisions.md for the measurements)."""

    DIRECT = "direct"  # runwire's own protocol on the socket, beside the ASGI app
    ASGI = "asgi"  # the ASGI route, through uvicorn and Starlette


class ModelFallback(StrEnum):
    """What a run does when the configured model fails before it wrote any answer text."""

    NONE = "none"  # the run ends with agent_error (model_unreachable, model_timeout, ...)
    OFFLINE = "offline"  # the offline agents answer instead, and say why


class LogFormat(StrEnum):
    """How `runwire serve` writes its log lines."""

    TEXT = "text"  # for a terminal, as uvicorn writes them
    JSON = "json"  # one JSON object a line, with the request, run, user and trace it belongs to


class LogLevel(StrEnum):
    """The least severe lines runwire's and uvicorn's loggers write (others: warnings and up)."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class SigningAlgorithm(StrEnum):
    """The JWS algorithm of an access-token signing key (its key type follows from it)."""

    EDDSA = "EdDSA"  # Ed25519
    ES256 = "ES256"  # ECDSA on P-256 with SHA-256


class TokenAlgorithm(StrEnum):
    """A JWS algorithm an access token may be verified with (RFC 7518, RFC 8037). ``none`` and
    the HMAC algorithms (``HS*``) are not among them: a token is checked with its issuer's public
    key, never with a secret a verifier would share."""

    EDDSA = "EdDSA"
    ES256 = "ES256"
    ES384 = "ES384"
    ES512 = "ES512"
    RS256 = "RS256"
    RS384 = "RS384"
    RS512 = "RS512"
    PS256 = "PS256"
    PS384 = "PS384"
    PS512 = "PS512"


# The algorithms of runwire's own tokens, and those accepted from an outside issuer unless
# RUNWIRE_AUTH_ALGORITHMS says otherwise (RS256 is the one every OpenID provider must offer).
RUNWIRE_ALGORITHMS = (TokenAlgorithm.EDDSA, TokenAlgorithm.ES256)
OUTSIDE_ALGORITHMS = (TokenAlgorithm.RS256, TokenAlgorithm.ES256, TokenAlgorithm.EDDSA)


class IssuerKind(StrEnum):
    """Who issues the access tokens a chat node accepts (docs/auth.md)."""

    RUNWIRE = "runwire"  # runwire's auth service: tokens name a session (sid), ended at logout
    OIDC = "oidc"  # an outside OpenID Connect issuer: its users become runwire users on sight


class Role(StrEnum):
    """What a `runwire serve` process does (docs/auth.md, "Roles")."""

    ALL = "all"  # everything in one process: issues and verifies tokens, serves chat
    AUTH = "auth"  # /auth/*, /.well-known/*: holds the private keys and the accounts
    CHAT = "chat"  # /api/*, /ws, the page: no private key, verifies against the issuer's JWKS


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"
