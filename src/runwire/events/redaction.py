"""Redaction and size bounds for values that leave the server inside events (tool args, results).

Values under keys that look secret are replaced by ``"[REDACTED]"``; long strings are cut, long
lists shortened, deep nesting flattened, so one tool result can never flood a socket or the store.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["REDACTED", "Redactor"]

REDACTED = "[REDACTED]"
# "token" alone or as a suffix (access_token, api-token) is a secret; "prompt_tokens" is a count.
# Keys ending in "token" or "key" (access_token, refreshToken, privateKey, ssh-key) are secrets;
# "prompt_tokens" and "keys" are not.
_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token$|key$|authorization|credential|cookie|session",
    re.IGNORECASE,
)
# Values that look like credentials whatever key holds them: bearer tokens, JWTs, sk-... API keys.
_SECRET_VALUE = re.compile(
    r"(?i)\bbearer\s+[a-z0-9._~+/=-]{8,}|\beyJ[a-zA-Z0-9_-]{8,}\.[a-zA-Z0-9_-]{8,}\.[a-zA-Z0-9_-]*|\bsk-[a-zA-Z0-9_-]{16,}"
)


# Tool results repeat the same keys and short strings (field and model names) in every run;
# remembering the verdicts keeps redaction from dominating the cost of an event.
_CACHED_CHARS = 200


@functools.lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


@functools.lru_cache(maxsize=8192)
def _scrub(text: str) -> str:
    return _SECRET_VALUE.sub(REDACTED, text)


_SCALARS = frozenset({int, float, bool})


@dataclass(frozen=True, slots=True)
class Redactor:
    """Makes a JSON-able value safe and bounded for an event."""

    max_chars: int = 2000
    max_items: int = 50
    max_depth: int = 6

    def clean(self, value: Any, _depth: int = 0) -> Any:
        # Numbers and None are most of a tool result's leaves: answer them first, by exact type.
        kind = type(value)
        if value is None or kind in _SCALARS:
            return value
        if kind is str and len(value) <= _CACHED_CHARS:  # the other leaves: short strings
            text = _scrub(value)
            return text if len(text) <= self.max_chars else self._cut(text)
        if isinstance(value, dict):
            if _depth >= self.max_depth:
                return "[TRUNCATED: too deep]"
            out: dict[str, Any] = {}
            # The bound is checked once, not per key (redaction is ~20% of the offline agents'
            # CPU per run: docs/benchmarks.md, "Hot path, session 13").
            pairs: Iterable[tuple[Any, Any]] = value.items()
            over = len(value) > self.max_items
            if over:
                pairs = list(pairs)[: self.max_items]
            deeper = _depth + 1
            for key, item in pairs:
                skey = key if type(key) is str else str(key)
                if _secret_key(skey):
                    out[skey] = REDACTED
                elif item is None or type(item) in _SCALARS:
                    out[skey] = item  # a number: no call for it (most leaves are numbers)
                else:
                    out[skey] = self.clean(item, deeper)
            if over:
                out["[TRUNCATED]"] = f"{len(value) - self.max_items} more keys"
            return out
        if isinstance(value, (list, tuple)):
            if _depth >= self.max_depth:
                return "[TRUNCATED: too deep]"
            items = [
                v if v is None or type(v) in _SCALARS else self.clean(v, _depth + 1)
                for v in value[: self.max_items]
            ]
            if len(value) > self.max_items:
                items.append(f"[TRUNCATED: {len(value) - self.max_items} more items]")
            return items
        if isinstance(value, str):
            text = (
                _scrub(value) if len(value) <= _CACHED_CHARS else _SECRET_VALUE.sub(REDACTED, value)
            )
            return text if len(text) <= self.max_chars else self._cut(text)
        if isinstance(value, (bool, int, float)):
            return value
        return self.clean(str(value), _depth)

    def _cut(self, text: str) -> str:
        return text[: self.max_chars] + f"... [TRUNCATED: {len(text)} chars]"
