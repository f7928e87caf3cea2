"""Exact sums (store/exact_sum.py): what a summary's costs are kept as. The value read is the
correctly rounded exact sum, whatever order the floats came in and however they were grouped."""

from __future__ import annotations

import math

import pytest

from runwire.store.exact_sum import ExactSum, add_exact, add_sum, merge_exact

# Floats whose plain sum loses what the exact one keeps.
CANCELLING = [1e100, 1.0, -1e100, 1e-20, 0.1, 0.2, -0.3, 3.0]

pytestmark = pytest.mark.unit


def one_by_one(values: list[float]) -> ExactSum:
    partials: ExactSum = []
    for x in values:
        add_exact(partials, x)
    return partials


def test_adding_one_at_a_time_keeps_what_a_plain_sum_loses() -> None:
    partials = one_by_one([1e100, 1.0, -1e100])
    assert sum([1e100, 1.0, -1e100]) == 0.0  # what the plain way reads
    assert math.fsum(partials) == 1.0


def test_partials_are_non_overlapping_smallest_first() -> None:
    partials = one_by_one([1e16, 1.0, 1e-16])
    assert partials == sorted(partials, key=abs)
    assert len(partials) == 3  # no two of them could be added without loss


@pytest.mark.parametrize(
    "values",
    [
        [],
        [2.5],
        [0.1, 0.2, 0.3],  # three values: added one by one
        CANCELLING,  # more than three: taken by math.fsum's peeling
        [0.1] * 1000,
        [1e308, 1e308, -1e308, 1.0],  # an intermediate overflow: the plain way (NaN)
    ],
)
def test_a_sum_of_many_is_the_sum_one_by_one_gives(values: list[float]) -> None:
    partials: ExactSum = []
    add_sum(partials, values)
    # Compared as text: NaN, which an overflow leaves both ways, is not equal to itself.
    assert repr(math.fsum(partials)) == repr(math.fsum(one_by_one(values)))
    if values and all(abs(x) < 1e300 for x in values):
        assert math.fsum(partials) == math.fsum(values)


def test_a_sum_of_many_adds_to_what_is_there() -> None:
    partials = one_by_one([1e100])
    add_sum(partials, [1.0, -1e100, 0.5, 0.25])
    assert math.fsum(partials) == 1.75


def test_the_order_of_the_values_does_not_change_the_sum() -> None:
    forward: ExactSum = []
    backward: ExactSum = []
    add_sum(forward, CANCELLING)
    add_sum(backward, list(reversed(CANCELLING)))
    assert math.fsum(forward) == math.fsum(backward) == math.fsum(CANCELLING)


def test_merging_adds_the_other_sum_and_leaves_it_as_it_was() -> None:
    ours = one_by_one(CANCELLING[:3])
    theirs = one_by_one(CANCELLING[3:])
    kept = list(theirs)
    merge_exact(ours, theirs)
    assert math.fsum(ours) == math.fsum(CANCELLING)
    assert theirs == kept
