"""The serving process's garbage-collector tuning (cli/collector.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from runwire.cli.collector import tune_collector

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def restored() -> Iterator[None]:
    # What the test process holds is frozen first (tests/conftest.py froze what the collection
    # imported; this, what came since): the collection tune_collector makes then walks only what
    # the test made, not a heap that took ~0.3 s a walk. Frozen objects are out of the
    # collector's sight: gc.get_objects() does not list them, which is how the tests see what was
    # frozen. Nothing is unfrozen after: that would bring the whole heap back into sight.
    before = gc.get_threshold()
    gc.freeze()
    yield
    gc.set_threshold(*before)


def _in_sight(thing: object) -> bool:
    return any(o is thing for o in gc.get_objects())


def test_a_threshold_is_set_and_what_lives_now_is_frozen() -> None:
    middle_old = gc.get_threshold()[1:]
    living = [object()]
    assert _in_sight(living)
    tune_collector(50_000)
    assert gc.get_threshold() == (50_000, *middle_old)
    assert not _in_sight(living)


def test_garbage_cycles_are_collected_before_freezing() -> None:
    class Node:
        other: object

    a, b = Node(), Node()
    a.other, b.other = b, a
    node = weakref.ref(a)
    del a, b  # an unreachable cycle: only the collector frees it
    tune_collector(50_000)
    assert node() is None  # freed, not frozen with the rest


def test_zero_keeps_pythons_default() -> None:
    before = gc.get_threshold()
    living = [object()]
    tune_collector(0)
    assert gc.get_threshold() == before
    assert _in_sight(living)  # nothing frozen
