"""The one state machine every lifecycle of runwire is moved by: an enum and its arrows.

A lifecycle is an enum of states and a table of the moves each state allows
(:class:`Transitions`). A :class:`StateMachine` holds one current state and moves it only along
those arrows; any other move raises the table's error (:class:`~runwire.errors.InvalidTransition`
or one of its subclasses), naming the machine, where it was and where it was asked to go, so a
bug shows up as an error at the move instead of as a frame on a dead socket or a run ended twice.

Reading the state is an attribute read and an identity comparison (``machine.state is
Phase.OPEN``): the table is consulted only when the state changes, never on a path that merely
asks where the machine is. The machines of runwire built on it: a run's status
(:mod:`runwire.domain.run_status`), a connection's (:mod:`runwire.protocol.connection`), a run's
task on its node (``runwire.runs.active_run``) and a WebSocket's socket
(``runwire.transport.ws_phase``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Generic, TypeVar

from runwire.errors import InvalidTransition

__all__ = ["StateMachine", "Transitions"]

S = TypeVar("S", bound=Enum)


class Transitions(Generic[S]):
    """The arrows of one lifecycle: for each state, the states it may move to.

    Every member of the enum must have an entry (a terminal state has none to go to), so a state
    added to the enum without deciding its moves fails where the table is made, at import.
    ``name`` says whose lifecycle it is in the error's message; ``error`` is raised for a move
    the table does not allow."""

    __slots__ = ("_allowed", "error", "name")

    def __init__(
        self,
        name: str,
        arrows: Mapping[S, Iterable[S]],
        *,
        error: type[InvalidTransition] = InvalidTransition,
    ) -> None:
        states = {type(state) for state in arrows}
        if len(states) != 1:
            raise ValueError(f"the {name} table must map the states of one enum")
        (kind,) = states
        missing = [state for state in kind if state not in arrows]
        if missing:
            raise ValueError(f"the {name} table has no entry for {missing}")
        self.name = name
        self.error = error
        self._allowed: dict[S, frozenset[S]] = {
            state: frozenset(targets) for state, targets in arrows.items()
        }
        strays = {t for targets in self._allowed.values() for t in targets if type(t) is not kind}
        if strays:
            raise ValueError(f"the {name} table leads to states of another enum: {strays}")

    def allows(self, source: S, target: S) -> bool:
        """Whether ``source`` may move to ``target``."""
        return target in self._allowed[source]

    def is_terminal(self, state: S) -> bool:
        """Nothing leaves ``state``."""
        return not self._allowed[state]

    def check(self, source: S, target: S) -> S:
        """``target``, if ``source`` may move there; else the table's error."""
        if target not in self._allowed[source]:
            raise self.error(f"{self.name} cannot go from {_label(source)} to {_label(target)}")
        return target


class StateMachine(Generic[S]):
    """One current ``state``, moved only along its :class:`Transitions`.

    Read ``state`` freely (it is a plain attribute); change it only with :meth:`move`."""

    __slots__ = ("_transitions", "state")

    def __init__(self, transitions: Transitions[S], initial: S) -> None:
        self._transitions = transitions
        self.state = initial

    @property
    def transitions(self) -> Transitions[S]:
        """The arrows this machine moves along."""
        return self._transitions

    def can(self, target: S) -> bool:
        """Whether the machine may move to ``target`` from where it is."""
        return self._transitions.allows(self.state, target)

    def move(self, target: S) -> None:
        """Move to ``target``; the table's error (nothing changes) if no arrow leads there."""
        self.state = self._transitions.check(self.state, target)


def _label(state: Enum) -> str:
    return state.name.lower()
