"""Reading the settings at start-up: every problem named in one ConfigError, and the
``RUNWIRE_*`` variables that no setting reads (a misspelling, most likely) named with the setting
they resemble."""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from runwire.config.settings import Settings
from runwire.errors import ConfigError

__all__ = ["load_settings", "stray_variables"]

# The package's name, not this module's: what operators filter the start-up warnings by.
log = logging.getLogger("runwire.config")


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (plus ``overrides``) and validate; raise one ConfigError naming
    every problem: values that do not parse, values that disagree with each other, and (in
    production) ``RUNWIRE_*`` variables that are no setting. Outside production those are
    logged as warnings."""
    problems: list[str] = []
    unread: set[str] = set()  # variables whose value could not be read
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for err in exc.errors():
            name = "RUNWIRE_" + "_".join(str(p) for p in err["loc"]).upper()
            problems.append(f"{name}: {err['msg']}")
            unread.add(str(err["loc"][0]))
        # The others are still checked against each other, with defaults standing in for the
        # values that could not be read; a check that involves one of those waits for it.
        settings = Settings(**{**overrides, **{field: _default(field) for field in unread}})
    names = [_variable(field) for field in unread]
    problems += [p for p in settings.problems() if not any(_names(p, n) for n in names)]
    strays = stray_variables(os.environ)
    if settings.is_production:
        problems += strays
    else:
        for stray in strays:
            log.warning("%s; it is ignored", stray)
    if problems:
        raise ConfigError(problems)
    return settings


def stray_variables(environ: Mapping[str, str]) -> list[str]:
    """Each ``RUNWIRE_*`` variable in ``environ`` that no setting reads (a misspelling, most
    likely), as a sentence naming the setting it resembles. Names under ``RUNWIRE_TEST_`` and
    ``RUNWIRE_BENCH_`` belong to the test suite and the benchmarks, not to the server."""
    fields = Settings.model_fields
    known = [_variable(field) for field, info in fields.items() if info.validation_alias is None]
    # A setting read from another's variable (OTEL_EXPORTER_OTLP_ENDPOINT) has no RUNWIRE_ one.
    aliased = {
        _variable(field): str(info.validation_alias)
        for field, info in fields.items()
        if info.validation_alias is not None
    }
    found = []
    for name in sorted(environ, key=str.upper):
        upper = name.upper()
        if not upper.startswith(_PREFIX) or upper in known or upper.startswith(_NOT_SETTINGS):
            continue
        if upper in _RETIRED:
            found.append(f"{name} is no longer read: {_RETIRED[upper]}")
            continue
        if upper in aliased:
            found.append(f"{name} is not a runwire setting (did you mean {aliased[upper]}?)")
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.75)
        hint = f"did you mean {close[0]}?" if close else "docs/configuration.md lists them"
        found.append(f"{name} is not a runwire setting ({hint})")
    return found


_PREFIX = "RUNWIRE_"
_NOT_SETTINGS = ("RUNWIRE_TEST_", "RUNWIRE_BENCH_")
# Settings of earlier versions, each with what replaced it.
_RETIRED = {
    "RUNWIRE_SECRET_KEY": "access tokens are signed with the key files in RUNWIRE_AUTH_KEYS_DIR "
    "(docs/auth.md); remove it",
}


def _variable(field: str) -> str:
    return _PREFIX + field.upper()


def _names(problem: str, variable: str) -> bool:
    return re.search(rf"\b{re.escape(variable)}\b", problem) is not None


def _default(field: str) -> Any:
    return Settings.model_fields[field].get_default(call_default_factory=True)
