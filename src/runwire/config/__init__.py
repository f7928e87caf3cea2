"""Configuration: one validated settings object, read from ``RUNWIRE_*`` environment variables.

Validation happens once, at start-up, and names every problem in a single :class:`ConfigError`.
The signing keys of access tokens are files (``runwire.auth.key_files``), checked when a server
starts, not here: ``runwire auth rotate-keys``, which creates them, must run where they are missing.

One concept a module: :mod:`~runwire.config.settings` (the fields and what follows from them),
:mod:`~runwire.config.rules` (the consistency rules behind ``Settings.problems``),
:mod:`~runwire.config.loading` (:func:`load_settings`, stray variables),
:mod:`~runwire.config.choices` (the enumerated values) and :mod:`~runwire.config.urls`
(:func:`safe_url`). Callers import from ``runwire.config``.
"""

from runwire.config.choices import (
    OUTSIDE_ALGORITHMS,
    RUNWIRE_ALGORITHMS,
    Environment,
    IssuerKind,
    LogFormat,
    LogLevel,
    ModelFallback,
    Role,
    SigningAlgorithm,
    TokenAlgorithm,
    WebSocketPath,
)
from runwire.config.loading import load_settings
from runwire.config.settings import Settings
from runwire.config.urls import safe_url

__all__ = [
    "OUTSIDE_ALGORITHMS",
    "RUNWIRE_ALGORITHMS",
    "Environment",
    "IssuerKind",
    "LogFormat",
    "LogLevel",
    "ModelFallback",
    "Role",
    "Settings",
    "SigningAlgorithm",
    "TokenAlgorithm",
    "WebSocketPath",
    "load_settings",
    "safe_url",
]
