"""Flight-mode transitions: what a drone can do between two ticks, and nothing else."""

from __future__ import annotations

import re

import numpy as np
import pytest

from skysweep.errors import TransitionError
from skysweep.runtime import modes
from skysweep.runtime.modes import MODE_MACHINE, FlightMode

F = FlightMode

ALLOWED = [
    (F.IDLE, F.TAKEOFF),
    (F.IDLE, F.LANDED),  # launched, not yet up
    (F.IDLE, F.LOST),
    (F.TAKEOFF, F.TRANSIT),
    (F.TAKEOFF, F.SWEEP),
    (F.TAKEOFF, F.RETURN),
    (F.TAKEOFF, F.LANDING),
    (F.TAKEOFF, F.LANDED),
    (F.TAKEOFF, F.HOLD),
    (F.TAKEOFF, F.LOST),
    (F.TRANSIT, F.SWEEP),
    (F.TRANSIT, F.RETURN),
    (F.TRANSIT, F.LANDING),
    (F.TRANSIT, F.HOLD),
    (F.TRANSIT, F.LOST),
    (F.SWEEP, F.TRANSIT),
    (F.SWEEP, F.RETURN),
    (F.SWEEP, F.LANDING),
    (F.SWEEP, F.HOLD),
    (F.SWEEP, F.LOST),
    (F.RETURN, F.LANDING),
    (F.RETURN, F.LANDED),
    (F.RETURN, F.HOLD),
    (F.RETURN, F.LOST),
    (F.LANDING, F.LANDED),
    (F.LANDING, F.HOLD),
    (F.LANDING, F.LOST),
    (F.LANDED, F.TAKEOFF),
    (F.LANDED, F.LOST),
    (F.HOLD, F.TAKEOFF),  # held during the climb, resumed
    (F.HOLD, F.TRANSIT),
    (F.HOLD, F.SWEEP),
    (F.HOLD, F.RETURN),
    (F.HOLD, F.LANDING),
    (F.HOLD, F.LANDED),
    (F.HOLD, F.LOST),
    *[(F.LOST, m) for m in F if m != F.LOST],
    *[(m, m) for m in F],
]

FORBIDDEN = [
    (F.RETURN, F.TRANSIT),  # sent home: never back to work on its own
    (F.RETURN, F.SWEEP),
    (F.RETURN, F.TAKEOFF),
    (F.IDLE, F.SWEEP),
    (F.IDLE, F.HOLD),
    (F.TRANSIT, F.TAKEOFF),
    (F.TRANSIT, F.LANDED),  # a crash, not a landing
    (F.SWEEP, F.LANDED),
    (F.SWEEP, F.IDLE),
    (F.LANDING, F.RETURN),
    (F.LANDING, F.SWEEP),
    (F.LANDED, F.IDLE),
    (F.LANDED, F.SWEEP),
    (F.LANDED, F.HOLD),
    (F.HOLD, F.IDLE),
    (F.TAKEOFF, F.IDLE),
]


@pytest.mark.parametrize(("old", "new"), ALLOWED, ids=lambda m: m.name)
def test_allowed(old: FlightMode, new: FlightMode) -> None:
    assert MODE_MACHINE.allowed(old, new)
    assert MODE_MACHINE.step(old, new) is new


@pytest.mark.parametrize(("old", "new"), FORBIDDEN, ids=lambda m: m.name)
def test_forbidden(old: FlightMode, new: FlightMode) -> None:
    assert not MODE_MACHINE.allowed(old, new)
    with pytest.raises(TransitionError, match=f"flight mode: .*{old.name} -> {new.name}"):
        MODE_MACHINE.step(old, new)


def test_the_table_is_exactly_the_allowed_list() -> None:
    listed = np.zeros((len(F), len(F)), bool)
    for old, new in ALLOWED:
        listed[old, new] = True
    np.testing.assert_array_equal(MODE_MACHINE.matrix, listed)


def test_the_docstring_table_matches_the_machine() -> None:
    doc = modes.__doc__ or ""
    rows = re.findall(r"^([A-Z]+) {2,}(.+)$", doc, re.MULTILINE)
    assert len(rows) == len(F)
    for name, targets in rows:
        old = F[name]
        want = (
            set(F) - {old}
            if targets.startswith("every other")
            else {F[t] for t in targets.split(", ")}
        )
        assert MODE_MACHINE.transitions[old] == want, name


def test_vectorised_forbidden_agrees_with_allowed_for_every_pair() -> None:
    old, new = (a.ravel().astype(np.int8) for a in np.meshgrid(list(F), list(F), indexing="ij"))
    bad = MODE_MACHINE.forbidden(old, new)
    want = [not MODE_MACHINE.allowed(int(o), int(w)) for o, w in zip(old, new, strict=True)]
    np.testing.assert_array_equal(bad, want)


def test_check_names_the_drones() -> None:
    old = np.array([F.SWEEP, F.RETURN, F.RETURN], np.int8)
    new = np.array([F.RETURN, F.LANDING, F.SWEEP], np.int8)
    with pytest.raises(TransitionError) as err:
        MODE_MACHINE.check(old, new, who=["a-001", "a-002", "a-003"])
    assert str(err.value) == "flight mode: forbidden transition a-003: RETURN -> SWEEP"


def test_every_mode_can_fly_again() -> None:
    assert MODE_MACHINE.terminal == frozenset()
    assert MODE_MACHINE.initial is F.IDLE
