"""The serving process's garbage-collector tuning (collector.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from runwire.collector import tune_collector

pytestmark = pytest.mark.unit


@pytest.fixture
def restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored")
def test_a_threshold_is_set_and_what_lives_now_is_frozen() -> None:
    middle_old = gc.get_threshold()[1:]
    tune_collector(50_000)
    assert gc.get_threshold() == (50_000, *middle_old)
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("restored")
def test_garbage_cycles_are_collected_before_freezing() -> None:
    class Node:
        other: object

    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b  # an unreachable cycle: only the collector frees it
    tune_collector(50_000)
    assert not any(type(o).__name__ == "Node" for o in _everything())


@pytest.mark.usefixtures("restored")
def test_zero_keeps_pythons_default() -> None:
    before = gc.get_threshold()
    tune_collector(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def _everything() -> list[object]:
    """Every tracked object, frozen ones included (the permanent generation cannot be listed,
    so it is brought back into view to look at it)."""
    gc.unfreeze()
    seen = gc.get_objects()
    gc.freeze()
    return seen
