import pytest

from runwire.domain.run_status import RunState, RunStatus
from runwire.errors import InvalidTransition
from runwire.protocol.connection import ConnectionState, ConnectionStateMachine

pytestmark = pytest.mark.unit


def test_connection_lifecycle() -> None:
    machine = ConnectionStateMachine()
    assert not machine.is_open
    machine.move(ConnectionState.OPEN)
    assert machine.is_open
    assert machine.close() is True
    assert machine.state is ConnectionState.CLOSING
    assert machine.close() is False
    machine.move(ConnectionState.CLOSED)
    with pytest.raises(InvalidTransition) as caught:
        machine.move(ConnectionState.OPEN)
    assert str(caught.value) == "connection cannot go from closed to open"


def test_closing_a_connection_never_opened_goes_straight_to_closed() -> None:
    machine = ConnectionStateMachine()
    assert machine.close() is True
    assert machine.state is ConnectionState.CLOSED


def test_run_lifecycle_and_terminal_states() -> None:
    state = RunState()
    state.move(RunStatus.RUNNING)
    state.move(RunStatus.COMPLETED)
    assert state.status.is_terminal
    with pytest.raises(InvalidTransition):
        state.move(RunStatus.RUNNING)


def test_queued_run_can_be_cancelled_but_not_completed() -> None:
    state = RunState()
    with pytest.raises(InvalidTransition):
        state.move(RunStatus.COMPLETED)
    state.move(RunStatus.CANCELLED)
    assert state.status is RunStatus.CANCELLED
