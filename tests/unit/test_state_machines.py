"""The generic state machine (domain/state_machine.py) and the two lifecycles built on it in the
domain and protocol layers: a connection's state and a run's status."""

from enum import StrEnum

import pytest

from runwire.domain.run_status import RunState, RunStatus
from runwire.domain.state_machine import StateMachine, Transitions
from runwire.errors import InvalidTransition, SocketPhaseError
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


class _Light(StrEnum):
    RED = "red"
    GREEN = "green"
    OFF = "off"


class _Other(StrEnum):
    ELSEWHERE = "elsewhere"


_LIGHT = Transitions(
    "light",
    {_Light.RED: {_Light.GREEN, _Light.OFF}, _Light.GREEN: {_Light.RED}, _Light.OFF: ()},
    error=SocketPhaseError,
)


def test_a_machine_moves_along_its_arrows_and_refuses_any_other_move_unchanged() -> None:
    light = StateMachine(_LIGHT, _Light.RED)
    assert light.can(_Light.GREEN) and not light.can(_Light.RED)
    light.move(_Light.GREEN)
    assert light.state is _Light.GREEN
    with pytest.raises(SocketPhaseError) as caught:  # the table's own error, named
        light.move(_Light.OFF)
    assert str(caught.value) == "light cannot go from green to off"
    assert caught.value.code == "invalid_state"  # an InvalidTransition like any other
    assert light.state is _Light.GREEN
    light.move(_Light.RED)
    light.move(_Light.OFF)
    assert _LIGHT.is_terminal(_Light.OFF) and not _LIGHT.is_terminal(_Light.RED)
    assert light.transitions is _LIGHT
    with pytest.raises(SocketPhaseError, match="light cannot go from off to red"):
        light.move(_Light.RED)


def test_a_table_names_every_state_of_one_enum_and_only_those() -> None:
    with pytest.raises(ValueError, match=r"no entry for \[<_Light.OFF: 'off'>\]"):
        Transitions("light", {_Light.RED: {_Light.GREEN}, _Light.GREEN: ()})
    with pytest.raises(ValueError, match="states of one enum"):
        Transitions("light", {_Light.RED: (), _Other.ELSEWHERE: ()})
    with pytest.raises(ValueError, match="states of another enum"):
        Transitions("light", {_Light.RED: {_Other.ELSEWHERE}, _Light.GREEN: (), _Light.OFF: ()})
    assert Transitions("light", {_Light.RED: (), _Light.GREEN: (), _Light.OFF: ()}).error is (
        InvalidTransition
    )


def test_a_connection_that_ends_is_closed_from_wherever_it_was() -> None:
    for steps in ([], [ConnectionState.OPEN], [ConnectionState.OPEN, ConnectionState.CLOSING]):
        machine = ConnectionStateMachine()
        for step in steps:
            machine.move(step)
        machine.end()
        machine.end()  # idempotent
        assert machine.state is ConnectionState.CLOSED
