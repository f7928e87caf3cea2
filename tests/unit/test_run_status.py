"""The run statuses as the store sees them: the final and unfinished ones split RunStatus in two,
a status read back from the store (a plain string) equals its member, and a run record is final
exactly when its status is terminal."""

from __future__ import annotations

import pytest

from runwire.domain.run_status import FINAL_STATUSES, UNFINISHED_STATUSES, RunState, RunStatus
from runwire.errors import InvalidTransition
from runwire.store.records import RunRecord

pytestmark = pytest.mark.unit


def test_final_and_unfinished_statuses_split_every_status_in_two() -> None:
    assert FINAL_STATUSES == (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
    assert UNFINISHED_STATUSES == (RunStatus.QUEUED, RunStatus.RUNNING)
    assert set(FINAL_STATUSES).isdisjoint(UNFINISHED_STATUSES)
    assert {*FINAL_STATUSES, *UNFINISHED_STATUSES} == set(RunStatus)


def test_no_move_leaves_a_final_status_and_every_unfinished_one_can_end() -> None:
    for status in RunStatus:
        state = RunState(status)
        for target in FINAL_STATUSES:
            if status.is_terminal:
                with pytest.raises(InvalidTransition, match="run cannot go from"):
                    state.move(target)
        if not status.is_terminal:
            state.move(RunStatus.FAILED)  # a run that cannot go on always can fail
            assert state.status.is_terminal


@pytest.mark.parametrize("stored", ["queued", "running", "completed", "failed", "cancelled"])
def test_a_stored_status_is_final_exactly_when_its_member_is_terminal(stored: str) -> None:
    record = RunRecord("run_1", "thr_1", "usr_1", "msg_1", stored, created_at=0, epoch="0a0b0c0d")
    assert record.status == RunStatus(stored)  # what the store's queries compare with
    assert record.status_is_final is RunStatus(stored).is_terminal
