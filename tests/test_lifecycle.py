"""The mission lifecycle: allowed changes, terminal states, degradation."""

from __future__ import annotations

import pytest

from skysweep.errors import TransitionError
from skysweep.runtime.lifecycle import LIFECYCLE, Health, Lifecycle, MissionState

M = MissionState


@pytest.mark.parametrize(
    ("old", "new", "ok"),
    [
        (M.PLANNED, M.AUTHORISED, True),
        (M.PLANNED, M.ABORTED, True),
        (M.PLANNED, M.RUNNING, False),  # never fly unauthorised
        (M.PLANNED, M.COMPLETE, False),
        (M.AUTHORISED, M.RUNNING, True),
        (M.AUTHORISED, M.ABORTED, True),
        (M.AUTHORISED, M.PLANNED, True),  # de-authorised, to edit
        (M.AUTHORISED, M.COMPLETE, False),
        (M.RUNNING, M.COMPLETE, True),
        (M.RUNNING, M.ABORTED, True),
        (M.RUNNING, M.PLANNED, False),
        (M.RUNNING, M.AUTHORISED, False),
        *[(M.COMPLETE, s, s == M.COMPLETE) for s in M],
        *[(M.ABORTED, s, s == M.ABORTED) for s in M],
    ],
)
def test_transitions(old: MissionState, new: MissionState, ok: bool) -> None:
    assert LIFECYCLE.allowed(old, new) is ok
    life = Lifecycle(state=old, changed_s=1.0)
    if ok:
        after = life.to(new, 5.0)
        assert after.state is new
        assert after.changed_s == (1.0 if new == old else 5.0)
    else:
        with pytest.raises(TransitionError, match=f"mission lifecycle: .*{old.name} -> {new.name}"):
            life.to(new, 5.0)


def test_terminal_states() -> None:
    assert LIFECYCLE.terminal == {M.COMPLETE, M.ABORTED}
    assert LIFECYCLE.initial is M.PLANNED


def test_a_whole_mission() -> None:
    life = Lifecycle()
    assert (life.state, life.health, life.reasons, life.authorised) == (
        M.PLANNED,
        Health.NOMINAL,
        (),
        False,
    )
    life = life.to(M.AUTHORISED, 10.0)
    assert life.authorised
    life = life.to(M.PLANNED, 20.0)  # edit the plan
    assert not life.authorised
    life = life.to(M.AUTHORISED, 30.0).to(M.RUNNING, 40.0)
    life = life.degrade("drone a-003 lost", 50.0)
    life = life.degrade("launch site north closed", 60.0)
    assert life.state is M.RUNNING
    assert life.health is Health.DEGRADED
    assert life.reasons == ("drone a-003 lost", "launch site north closed")
    assert life.changed_s == 60.0
    life = life.to(M.COMPLETE, 70.0)
    assert life.authorised
    assert life.health is Health.DEGRADED  # the history stays
    with pytest.raises(TransitionError):
        life.to(M.RUNNING, 80.0)


def test_degrade_is_idempotent_per_reason() -> None:
    life = Lifecycle(M.RUNNING).degrade("wind", 1.0)
    assert life.degrade("wind", 2.0) is life


@pytest.mark.parametrize("state", [M.AUTHORISED, M.RUNNING])
def test_degrade_while_authorised_or_running(state: MissionState) -> None:
    life = Lifecycle(state).degrade("drone lost", 3.0)
    assert (life.state, life.health, life.reasons, life.changed_s) == (
        state,
        Health.DEGRADED,
        ("drone lost",),
        3.0,
    )


@pytest.mark.parametrize("state", [M.PLANNED, M.COMPLETE, M.ABORTED])
def test_degrade_refused_otherwise(state: MissionState) -> None:
    with pytest.raises(TransitionError, match=f"a {state.name} mission cannot degrade"):
        Lifecycle(state).degrade("drone lost", 3.0)


def test_degrade_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="reason"):
        Lifecycle(M.RUNNING).degrade("", 1.0)


def test_lifecycle_is_frozen() -> None:
    life = Lifecycle()
    with pytest.raises(AttributeError):
        life.state = M.RUNNING  # type: ignore[misc]
