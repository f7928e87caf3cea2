"""Memoized analyses: a result kept in the memo of the ``UsageSet`` it was computed from."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson

from runwire.domain.usage import UsageRecord

__all__ = ["freeze", "memoized"]

F = TypeVar("F", bound=Callable[..., Any])


def memoized(fn: F) -> F:
    """Keep ``fn``'s result in the records' memo (a ``UsageSet``), keyed by its arguments.

    The same unchanged data gives the same aggregates, so a second run over it reuses them;
    callers get a copy, so nothing they do to a result leaks into the next run.
    """

    @functools.wraps(fn)
    def wrapper(records: Sequence[UsageRecord], *args: Any, **kwargs: Any) -> Any:
        memo: dict[Any, Any] | None = getattr(records, "memo", None)
        if memo is None:
            return fn(records, *args, **kwargs)
        key = (fn.__name__, freeze(args), freeze(kwargs))
        if key not in memo:
            memo[key] = fn(records, *args, **kwargs)
        return _copy(memo[key])

    return wrapper  # type: ignore[return-value]


def _copy(value: Any) -> Any:
    """A deep copy of a JSON-shaped result (a JSON round trip is several times faster)."""
    if value is None or isinstance(value, str | int | float):
        return value
    try:
        return orjson.loads(orjson.dumps(value))
    except TypeError:  # not JSON-shaped after all (tuples, non-string keys): copy it as it is
        return copy.deepcopy(value)


def freeze(value: Any) -> Any:
    """A hashable stand-in for an argument (lists become tuples; other objects, their identity)."""
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return ("id", id(value))
