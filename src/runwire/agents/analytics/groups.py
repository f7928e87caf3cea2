"""How calls are grouped: by model (provider and model), provider or feature."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from runwire.domain.usage import UsageRecord

__all__ = ["GROUPS", "NO_FEATURE", "by_count", "by_model", "group_key"]

#: What :func:`breakdown` can group calls by.
GROUPS = ("model", "provider", "feature")
NO_FEATURE = "(none)"


def by_count(counts: Counter[Any]) -> list[tuple[Any, int]]:
    """The counted names, most calls first (ties by name)."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def group_key(r: UsageRecord, group_by: str) -> str:
    """The row a call belongs to when grouped by ``group_by`` (no feature: ``NO_FEATURE``)."""
    if group_by == "model":
        return r.model
    if group_by == "provider":
        return r.provider
    return r.feature or NO_FEATURE


def by_model(records: Iterable[UsageRecord]) -> dict[tuple[str, str], list[UsageRecord]]:
    """The calls of each ``(provider, model)``, in first-seen order."""
    groups: defaultdict[tuple[str, str], list[UsageRecord]] = defaultdict(list)
    for r in records:
        groups[(r.provider, r.model)].append(r)
    return groups
