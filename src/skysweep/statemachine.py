"""A finite state machine over an :class:`~enum.IntEnum`, checked when it is defined.

A :class:`StateMachine` is a table of allowed transitions. It is validated once, at import time
of the module that defines it, so a typo in a table fails the first test run rather than a
mission. Checks are then cheap: a precomputed boolean matrix ``allowed[old, new]`` indexed by
whole arrays of states, one row per drone.

Staying in a state is always allowed (a tick that sees no change is not a transition).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum
from types import MappingProxyType
from typing import Generic, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from skysweep.errors import TransitionError

S = TypeVar("S", bound=IntEnum)

#: At most this many offending pairs are spelled out in one error message.
_MAX_LISTED = 10


@dataclass(frozen=True, init=False, eq=False)
class StateMachine(Generic[S]):
    """The allowed transitions between the members of ``states``.

    ``transitions`` maps every state to the states it may go to (an empty collection for a
    state with no way out). ``terminal`` states must have no way out, and every other state
    must be able to reach one of them. Every state must be reachable from ``initial``. The
    members of ``states`` must be numbered 0 … n-1, so that arrays of states index the
    matrix directly. Any violation raises :class:`~skysweep.errors.TransitionError` here.
    """

    name: str
    states: type[S]
    transitions: Mapping[S, frozenset[S]]
    initial: S
    terminal: frozenset[S]
    matrix: NDArray[np.bool_]
    """(n, n) read-only: ``matrix[old, new]`` says whether ``old → new`` is allowed."""

    def __init__(
        self,
        name: str,
        states: type[S],
        transitions: Mapping[S, Iterable[S]],
        initial: S,
        terminal: Iterable[S] = (),
    ) -> None:
        def fail(problem: str) -> TransitionError:
            return TransitionError(f"state machine {name!r}: {problem}")

        members = list(states)
        n = len(members)
        if n == 0:
            raise fail(f"{states.__name__} has no members")
        if sorted(int(s) for s in members) != list(range(n)):
            raise fail(f"the members of {states.__name__} must be numbered 0 … {n - 1}")

        def member(value: object, what: str) -> S:
            # a member of another enum that happens to share a value is a bug, not a state
            if isinstance(value, Enum) and not isinstance(value, states):
                raise fail(f"{what} {value!r} is not a {states.__name__}")
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n:
                raise fail(f"{what} {value!r} is not a {states.__name__}")
            return states(value)

        start = member(initial, "initial state")
        ends = frozenset(member(t, "terminal state") for t in terminal)
        table: dict[S, frozenset[S]] = {}
        for key, targets in transitions.items():
            old = member(key, "transition from")
            table[old] = frozenset(member(t, f"transition {old.name} ->") for t in targets) - {old}
        missing = [s.name for s in members if s not in table]
        if missing:
            raise fail(
                f"no entry for {', '.join(missing)} (list every state, with an empty set "
                "if it has no way out)"
            )
        for end in sorted(ends):
            if table[end]:
                raise fail(
                    f"terminal state {end.name} has outgoing transitions to {_names(table[end])}"
                )

        unreachable = set(members) - _closure({start}, table)
        if unreachable:
            raise fail(f"{_names(unreachable)} unreachable from {start.name}")
        if ends:
            backwards: dict[S, set[S]] = {s: set() for s in members}
            for old, targets in table.items():
                for new in targets:
                    backwards[new].add(old)
            stuck = set(members) - _closure(set(ends), backwards)
            if stuck:
                raise fail(f"{_names(stuck)} cannot reach a terminal state")

        matrix = np.eye(n, dtype=bool)
        for old, targets in table.items():
            matrix[old, [int(t) for t in targets]] = True
        matrix.flags.writeable = False

        object.__setattr__(self, "name", name)
        object.__setattr__(self, "states", states)
        object.__setattr__(self, "transitions", MappingProxyType(table))
        object.__setattr__(self, "initial", start)
        object.__setattr__(self, "terminal", ends)
        object.__setattr__(self, "matrix", matrix)

    def __repr__(self) -> str:
        return f"StateMachine({self.name!r}, {self.states.__name__})"

    def allowed(self, old: int, new: int) -> bool:
        """Whether ``old → new`` is allowed (staying is); a value that is no state is not."""
        n = len(self.matrix)
        return 0 <= old < n and 0 <= new < n and bool(self.matrix[old, new])

    def forbidden(self, old: ArrayLike, new: ArrayLike) -> NDArray[np.bool_]:
        """Elementwise: whether each ``old[i] → new[i]`` is forbidden (a value that is no state
        always is). ``old`` and ``new`` broadcast against each other."""
        o, w = np.broadcast_arrays(np.asarray(old, np.intp), np.asarray(new, np.intp))
        n = len(self.matrix)
        valid = (o >= 0) & (o < n) & (w >= 0) & (w < n)
        ok = self.matrix[np.where(valid, o, 0), np.where(valid, w, 0)]
        out: NDArray[np.bool_] = ~(valid & ok)
        return out

    def check(self, old: ArrayLike, new: ArrayLike, who: Sequence[str] | None = None) -> None:
        """Raise :class:`~skysweep.errors.TransitionError` if any ``old[i] → new[i]`` is
        forbidden, naming the machine, the states and, given ``who`` (one name per element,
        e.g. drone ids), whose transition it is. Scalars work as one-element arrays."""
        bad = np.atleast_1d(self.forbidden(old, new))
        if not bad.any():
            return
        o, w = np.broadcast_arrays(np.atleast_1d(old), np.atleast_1d(new))
        if isinstance(who, str):
            who = [who]
        idx = np.flatnonzero(bad)
        pairs = []
        for i in idx[:_MAX_LISTED]:
            pair = f"{self._name(int(o[i]))} -> {self._name(int(w[i]))}"
            pairs.append(f"{who[i]}: {pair}" if who is not None else pair)
        more = f" and {len(idx) - _MAX_LISTED} more" if len(idx) > _MAX_LISTED else ""
        plural = "s" if len(idx) > 1 else ""
        raise TransitionError(f"{self.name}: forbidden transition{plural} {'; '.join(pairs)}{more}")

    def step(self, old: int, new: int) -> S:
        """``new`` as a state, if ``old → new`` is allowed; else raise
        :class:`~skysweep.errors.TransitionError`."""
        self.check(old, new)
        return self.states(new)

    def _name(self, value: int) -> str:
        return self.states(value).name if 0 <= value < len(self.matrix) else f"<{value}>"


def _closure(start: set[S], edges: Mapping[S, Iterable[S]]) -> set[S]:
    """Every state reachable from ``start`` along ``edges`` (``start`` included)."""
    seen = set(start)
    todo = deque(start)
    while todo:
        for nxt in edges[todo.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _names(states: Iterable[IntEnum]) -> str:
    return ", ".join(s.name for s in sorted(states))
