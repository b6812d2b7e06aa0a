"""The generic state machine: validation when defined, scalar and vectorised checks."""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import pytest

from skysweep.errors import TransitionError
from skysweep.statemachine import StateMachine


class Door(IntEnum):
    OPEN = 0
    CLOSED = 1
    LOCKED = 2
    BROKEN = 3


class Other(IntEnum):
    A = 0
    B = 1


D = Door
GOOD = {
    D.OPEN: {D.CLOSED, D.BROKEN},
    D.CLOSED: {D.OPEN, D.LOCKED, D.BROKEN},
    D.LOCKED: {D.CLOSED, D.BROKEN},
    D.BROKEN: set(),
}


def door(**kw: object) -> StateMachine[Door]:
    args: dict[str, object] = {
        "transitions": GOOD,
        "initial": D.OPEN,
        "terminal": (D.BROKEN,),
    } | kw
    return StateMachine("door", Door, **args)  # type: ignore[arg-type]


def test_a_good_machine() -> None:
    m = door()
    assert m.initial is D.OPEN
    assert m.terminal == {D.BROKEN}
    assert m.transitions[D.CLOSED] == {D.OPEN, D.LOCKED, D.BROKEN}
    assert m.matrix.shape == (4, 4)
    assert not m.matrix.flags.writeable
    assert "door" in repr(m)


@pytest.mark.parametrize(
    ("old", "new", "ok"),
    [
        (D.OPEN, D.CLOSED, True),
        (D.CLOSED, D.LOCKED, True),
        (D.LOCKED, D.CLOSED, True),
        (D.LOCKED, D.BROKEN, True),
        (D.OPEN, D.LOCKED, False),  # close it first
        (D.LOCKED, D.OPEN, False),  # unlock it first
        (D.BROKEN, D.OPEN, False),  # terminal
        # staying is always allowed, a terminal state included
        (D.OPEN, D.OPEN, True),
        (D.BROKEN, D.BROKEN, True),
        # values that are no state never are
        (D.OPEN, 7, False),
        (-1, D.OPEN, False),
    ],
)
def test_allowed(old: int, new: int, ok: bool) -> None:
    m = door()
    assert m.allowed(old, new) is ok
    assert bool(m.forbidden(old, new)) is not ok


def test_forbidden_is_vectorised_and_agrees_with_allowed() -> None:
    m = door()
    old, new = np.meshgrid(np.arange(-1, 6), np.arange(-1, 6), indexing="ij")
    bad = m.forbidden(old.astype(np.int8), new.astype(np.int8))
    assert bad.shape == old.shape
    want = np.array([[not m.allowed(o, w) for w in range(-1, 6)] for o in range(-1, 6)])
    np.testing.assert_array_equal(bad, want)


def test_check_names_machine_states_and_who() -> None:
    m = door()
    m.check(np.array([0, 1, 2], np.int8), np.array([1, 2, 1], np.int8))  # all fine
    with pytest.raises(TransitionError) as err:
        m.check(
            np.array([0, 2, 1], np.int8),
            np.array([2, 0, 0], np.int8),
            who=["front", "back", "side"],
        )
    msg = str(err.value)
    assert msg.startswith("door: forbidden transitions")
    assert "front: OPEN -> LOCKED" in msg
    assert "back: LOCKED -> OPEN" in msg
    assert "side" not in msg


def test_check_scalar_and_lists_many_briefly() -> None:
    m = door()
    with pytest.raises(TransitionError, match=r"^door: forbidden transition BROKEN -> OPEN$"):
        m.check(D.BROKEN, D.OPEN)
    with pytest.raises(TransitionError, match="d7: BROKEN -> <9>"):
        m.check(D.BROKEN, 9, who="d7")
    with pytest.raises(TransitionError, match="and 15 more"):
        m.check(np.full(25, D.BROKEN), np.full(25, D.OPEN))


def test_step() -> None:
    m = door()
    assert m.step(D.OPEN, 1) is D.CLOSED
    assert m.step(D.OPEN, D.OPEN) is D.OPEN
    with pytest.raises(TransitionError):
        m.step(D.OPEN, D.LOCKED)


def test_self_transitions_in_the_table_are_harmless() -> None:
    m = door(transitions=GOOD | {D.BROKEN: {D.BROKEN}, D.OPEN: {D.OPEN, D.CLOSED, D.BROKEN}})
    assert m.transitions[D.BROKEN] == frozenset()
    assert m.allowed(D.OPEN, D.OPEN)


def test_plain_ints_of_the_enum_are_accepted() -> None:
    m = door(transitions={0: [1, 3], 1: [0, 2, 3], 2: [1, 3], 3: []}, initial=0, terminal=[3])
    np.testing.assert_array_equal(m.matrix, door().matrix)


def test_no_terminal_states_needed() -> None:
    m = door(transitions=GOOD | {D.BROKEN: {D.OPEN}}, terminal=())
    assert m.allowed(D.BROKEN, D.OPEN)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"transitions": GOOD | {D.OPEN: {D.CLOSED, 9}}}, r"transition OPEN -> 9 is not a Door"),
        ({"transitions": GOOD | {D.OPEN: {Other.B}}}, r"transition OPEN -> <Other.B: 1>"),
        ({"transitions": GOOD | {"ajar": {D.OPEN}}}, r"transition from 'ajar' is not a Door"),
        ({"transitions": {k: v for k, v in GOOD.items() if k != D.BROKEN}}, r"no entry for BROKEN"),
        ({"initial": 5}, r"initial state 5 is not a Door"),
        ({"terminal": (Other.A,)}, r"terminal state <Other.A: 0> is not a Door"),
        (
            {"transitions": GOOD | {D.OPEN: {D.CLOSED}, D.CLOSED: {D.OPEN}, D.LOCKED: {D.BROKEN}}},
            r"LOCKED, BROKEN unreachable from OPEN",
        ),
        (
            {"transitions": GOOD | {D.CLOSED: {D.LOCKED}, D.LOCKED: {D.CLOSED}}},
            r"CLOSED, LOCKED cannot reach a terminal state",
        ),
        (
            {"transitions": GOOD | {D.BROKEN: {D.OPEN}}},
            r"terminal state BROKEN has outgoing transitions to OPEN",
        ),
    ],
)
def test_bad_machines_fail_when_defined(kw: dict[str, object], message: str) -> None:
    with pytest.raises(TransitionError, match=rf"^state machine 'door': .*{message}"):
        door(**kw)


def test_states_must_be_numbered_densely() -> None:
    class Gappy(IntEnum):
        A = 0
        B = 2

    with pytest.raises(TransitionError, match=r"numbered 0 … 1"):
        StateMachine("gappy", Gappy, {Gappy.A: {Gappy.B}, Gappy.B: set()}, Gappy.A)
