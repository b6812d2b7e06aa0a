"""Failsafes: the decision table, latching, the GPS outlier gate, and vectorisation."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skysweep.mission import parse
from skysweep.safety.failsafe import (
    GLITCH_CLEAR_TICKS,
    Action,
    Cause,
    FailsafeParams,
    FailsafeState,
    Signals,
    clear,
    decide,
    explain,
    filter_positions,
)

A, C = Action, Cause
SPEED = 15.0


def params(n: int = 1, **kw: Any) -> FailsafeParams:
    return FailsafeParams(
        lost_link_timeout_s=10.0, battery_low=0.2, max_speed_mps=np.full(n, SPEED), **kw
    )


def signals(n: int = 1, now_s: float = 100.0, **kw: Any) -> Signals:
    """Every drone airborne, heard just now, full, inside the fence, with a fix; ``kw``
    overrides (scalars broadcast)."""
    base: dict[str, Any] = {
        "airborne": True,
        "last_seen_s": now_s,
        "battery": 0.9,
        "home_need": 0.3,
        "gps_ok": True,
        "inside_fence": True,
    } | kw
    return Signals(**{k: np.broadcast_to(np.asarray(v), (n,)).copy() for k, v in base.items()})


def fresh(n: int = 1, now_s: float = 0.0) -> FailsafeState:
    return FailsafeState.initial(n, np.zeros((n, 2)), now_s)


def glitching(state: FailsafeState, on: bool = True) -> FailsafeState:
    return replace(state, glitching=np.full(len(state), on))


def run(
    now_s: float, state: FailsafeState | None = None, *, glitch: bool = False, **kw: Any
) -> FailsafeState:
    """One decision for one drone."""
    st_ = fresh() if state is None else state
    if glitch:
        st_ = glitching(st_)
    return decide(st_, signals(now_s=now_s, **kw), now_s, params())


# --- the decision table -------------------------------------------------------------------------

NOW = 100.0
TABLE: list[tuple[str, dict[str, Any], A, C]] = [
    ("nominal", {}, A.NONE, C.NONE),
    ("link silent beyond timeout", {"last_seen_s": NOW - 10.5}, A.HOME, C.LINK_LOST),
    ("link silent exactly timeout", {"last_seen_s": NOW - 10.0}, A.NONE, C.NONE),
    ("never heard, airborne", {"last_seen_s": np.nan}, A.HOME, C.LINK_LOST),
    ("battery at home need", {"battery": 0.3}, A.HOME, C.BATTERY_LOW),
    ("battery above need and floor", {"battery": 0.25, "home_need": 0.1}, A.NONE, C.NONE),
    ("battery at the floor", {"battery": 0.2, "home_need": 0.1}, A.HOME, C.BATTERY_LOW),
    ("need unknown, below floor", {"battery": 0.19, "home_need": np.nan}, A.HOME, C.BATTERY_LOW),
    ("battery 9%", {"battery": 0.09}, A.HOME, C.BATTERY_LOW),
    (
        "battery critical",
        {"battery": 0.08},
        A.LAND,
        C.BATTERY_LOW | C.BATTERY_CRITICAL,
    ),
    ("outside the fence", {"inside_fence": False}, A.RECOVER, C.GEOFENCE),
    ("GPS glitch", {"glitch": True}, A.HOLD, C.GPS_GLITCH),
    ("no GPS fix", {"gps_ok": False}, A.HOLD, C.GPS_LOST),
    (
        "outside and silent",
        {"inside_fence": False, "last_seen_s": 0.0},
        A.RECOVER,
        C.GEOFENCE | C.LINK_LOST,
    ),
    (
        "glitch and outside",
        {"glitch": True, "inside_fence": False},
        A.HOLD,
        C.GPS_GLITCH | C.GEOFENCE,
    ),
    (
        "on the ground, everything wrong",
        {
            "airborne": False,
            "last_seen_s": np.nan,
            "battery": 0.01,
            "inside_fence": False,
            "gps_ok": False,
            "glitch": True,
        },
        A.NONE,
        C.NONE,
    ),
]


@pytest.mark.parametrize(
    ("inputs", "action", "cause"), [r[1:] for r in TABLE], ids=[r[0] for r in TABLE]
)
def test_decision_table(inputs: dict[str, Any], action: Action, cause: Cause) -> None:
    s = run(NOW, **inputs)
    assert Action(int(s.action[0])) == action
    assert Cause(int(s.cause[0])) == cause
    assert s.since_s[0] == (NOW if action != A.NONE else 0.0)


def test_most_severe_wins() -> None:
    everything = {
        "last_seen_s": 0.0,
        "battery": 0.05,
        "inside_fence": False,
        "gps_ok": False,
        "glitch": True,
    }
    s = run(NOW, **everything)
    assert s.action[0] == A.LAND
    assert s.cause[0] == sum(C)
    assert explain(s, 0) == "LAND (battery critical 5%)"


# --- latching -----------------------------------------------------------------------------------


def test_land_never_downgrades() -> None:
    s = run(10.0, battery=0.06)
    assert s.action[0] == A.LAND
    # a recovered (or bogus) battery reading, then a merely low one: still landing
    s = run(11.0, s, battery=0.5)
    assert (s.action[0], s.cause[0], s.since_s[0]) == (A.LAND, C.NONE, 10.0)
    s = run(12.0, s, battery=0.15)
    assert (s.action[0], s.cause[0], s.since_s[0]) == (A.LAND, C.BATTERY_LOW, 10.0)
    assert explain(s, 0) == "LAND (battery critical 6%)"


def test_hold_becomes_land_after_gps_hold_s() -> None:
    p = params(gps_hold_s=20.0)
    s = fresh()
    for t in (0.0, 5.0, 19.5):
        s = decide(s, signals(now_s=t, gps_ok=False), t, p)
        assert (s.action[0], s.since_s[0]) == (A.HOLD, 0.0)
    assert explain(s, 0) == "HOLD (GPS lost)"
    s = decide(s, signals(now_s=20.0, gps_ok=False), 20.0, p)
    assert (s.action[0], s.since_s[0]) == (A.LAND, 20.0)
    assert explain(s, 0) == "LAND (GPS lost, held too long)"


def test_a_hold_whose_gps_came_back_waits_for_the_operator() -> None:
    s = run(0.0, glitch=True)
    s = run(10.0, glitching(s, False))
    s = run(100.0, s)
    assert (s.action[0], s.cause[0], s.since_s[0]) == (A.HOLD, C.NONE, 0.0)
    # a hold is not left for home, but it lands once the battery runs low, on its reserve
    # (hovering on to critical landed below it: reliability run, seed 235), or critical
    assert run(101.0, s, battery=0.5).action[0] == A.HOLD
    assert run(101.0, s, battery=0.2).action[0] == A.LAND
    assert run(101.0, s, battery=0.05).action[0] == A.LAND


def test_recover_becomes_home_once_inside() -> None:
    s = run(0.0, inside_fence=False)
    assert s.action[0] == A.RECOVER
    s = run(1.0, s, inside_fence=False)
    assert (s.action[0], s.since_s[0]) == (A.RECOVER, 0.0)
    s = run(2.0, s)
    assert (s.action[0], s.since_s[0]) == (A.HOME, 2.0)
    assert explain(s, 0) == "HOME (back inside the fence)"
    # home stays home; a new breach raises it to RECOVER again
    s = run(3.0, s)
    assert s.action[0] == A.HOME
    s = run(4.0, s, inside_fence=False)
    assert s.action[0] == A.RECOVER


def test_back_inside_with_a_worse_cause_takes_the_worse_action() -> None:
    s = run(0.0, inside_fence=False)
    s = run(1.0, s, battery=0.05)
    assert s.action[0] == A.LAND


def test_home_is_raised_to_recover_then_hold() -> None:
    s = run(0.0, battery=0.25)
    assert explain(s, 0) == "HOME (battery low 25%)"
    s = run(1.0, s, battery=0.24, inside_fence=False)
    assert s.action[0] == A.RECOVER
    assert explain(s, 0) == "RECOVER (geofence breach)"
    s = run(2.0, s, gps_ok=False)
    assert s.action[0] == A.HOLD


def test_more_causes_for_the_same_action_are_added_to_the_reason() -> None:
    s = run(0.0, last_seen_s=-20.0)
    assert explain(s, 0) == "HOME (link lost)"
    s = run(1.0, s, last_seen_s=-20.0, battery=0.12)
    assert (s.action[0], s.since_s[0]) == (A.HOME, 0.0)
    assert explain(s, 0) == "HOME (link lost, battery low 12%)"


def test_nothing_resumes_until_cleared() -> None:
    s = run(0.0, last_seen_s=-20.0)
    assert s.action[0] == A.HOME
    for t in (1.0, 2.0, 50.0):  # the link is back, everything nominal
        s = run(t, s)
        assert (s.action[0], s.cause[0]) == (A.HOME, C.NONE)
    s = clear(s, [0], 60.0)
    assert (s.action[0], s.cause[0], s.trigger[0], s.since_s[0]) == (A.NONE, 0, 0, 60.0)
    assert explain(s, 0) == "NONE"
    s = run(61.0, s)
    assert (s.action[0], s.since_s[0]) == (A.NONE, 60.0)


def test_clear_with_the_cause_still_present_raises_it_again() -> None:
    s = run(0.0, battery=0.1)
    s = clear(s, np.array([True]), 1.0)
    assert s.action[0] == A.NONE
    s = run(2.0, s, battery=0.1)
    assert (s.action[0], s.since_s[0]) == (A.HOME, 2.0)


def test_clear_touches_only_the_drones_named() -> None:
    p = params(3)
    s = decide(fresh(3), signals(3, now_s=0.0, battery=0.1), 0.0, p)
    s = clear(s, [1], 5.0)
    np.testing.assert_array_equal(s.action, [A.HOME, A.NONE, A.HOME])
    np.testing.assert_array_equal(s.since_s, [0.0, 5.0, 0.0])
    s2 = clear(s, [1], 6.0)  # clearing a clear drone changes nothing
    np.testing.assert_array_equal(s2.since_s, s.since_s)


def test_on_the_ground_the_latched_action_stays_and_does_not_escalate() -> None:
    s = run(0.0, gps_ok=False)
    s = run(1.0, s, airborne=False, gps_ok=False)
    s = run(100.0, s, airborne=False, gps_ok=False)
    assert (s.action[0], s.cause[0], s.since_s[0]) == (A.HOLD, C.NONE, 0.0)
    r = run(0.0, inside_fence=False)
    r = run(1.0, r, airborne=False)
    assert r.action[0] == A.RECOVER


def test_decide_does_not_change_its_inputs_and_returns_read_only_arrays() -> None:
    s0 = fresh(2)
    sig = signals(2, now_s=0.0, battery=[0.9, 0.05])
    before = {f.name: np.array(getattr(s0, f.name), copy=True) for f in fields(s0)}
    s1 = decide(s0, sig, 0.0, params(2))
    for f in fields(s0):
        np.testing.assert_array_equal(getattr(s0, f.name), before[f.name])
        assert not getattr(s1, f.name).flags.writeable
    assert len(s1) == 2


# --- the GPS gate -------------------------------------------------------------------------------


def gate(
    state: FailsafeState, pos: Any, vel: Any, t: float, *, airborne: bool = True, seen: Any = None
) -> tuple[FailsafeState, np.ndarray]:
    n = len(state)
    return filter_positions(
        state,
        np.asarray(pos, float).reshape(n, -1),
        np.asarray(vel, float).reshape(n, -1),
        t,
        params(n),
        seen_s=np.full(n, t) if seen is None else np.asarray(seen, float),
        airborne=np.full(n, airborne),
    )


def test_a_50_m_jump_is_rejected_and_flagged() -> None:
    s = fresh()
    s, jumped = gate(s, [0.0, 0.0], [0.0, 0.0], 0.5)
    assert not jumped[0]
    s, jumped = gate(s, [50.0, 0.0], [0.0, 0.0], 1.0)
    assert jumped[0] and s.glitching[0]
    np.testing.assert_allclose(s.est_pos_m[0], [0.0, 0.0])  # stays on the prediction
    s, jumped = gate(s, [80.0, 0.0], [0.0, 0.0], 1.5)  # still off: still a jump
    assert jumped[0] and s.glitching[0]
    # back within the gate: accepted at once, trusted again after three reports in a row
    for k, t in enumerate((2.0, 2.5, 3.0), start=1):
        s, jumped = gate(s, [1.0, 0.0], [0.0, 0.0], t)
        assert not jumped[0]
        np.testing.assert_allclose(s.est_pos_m[0], [1.0, 0.0])
        assert s.glitching[0] == (k < GLITCH_CLEAR_TICKS)


def test_a_jump_between_good_reports_restarts_the_count() -> None:
    s = fresh()
    s, _ = gate(s, [60.0, 0.0], [0.0, 0.0], 0.5)
    s, _ = gate(s, [0.0, 0.0], [0.0, 0.0], 1.0)
    s, _ = gate(s, [0.0, 0.0], [0.0, 0.0], 1.5)
    s, _ = gate(s, [0.0, 70.0], [0.0, 0.0], 2.0)
    assert s.glitching[0] and s.glitch_ok_ticks[0] == 0


def test_the_prediction_follows_the_velocity_through_a_glitch() -> None:
    s = fresh()
    v = [SPEED, 0.0]
    s, _ = gate(s, [SPEED * 0.5, 0.0], v, 0.5)
    s, jumped = gate(s, [SPEED * 1.0, 100.0], v, 1.0)
    assert jumped[0]
    np.testing.assert_allclose(s.est_pos_m[0], [SPEED * 1.0, 0.0])
    s, jumped = gate(s, [SPEED * 1.5, 0.0], v, 1.5)  # the glitch is over
    assert not jumped[0]


@pytest.mark.parametrize(
    ("vel_before", "vel_now", "moved"),
    [
        ([SPEED, 0.0], [SPEED, 0.0], [SPEED * 0.5, 0.0]),  # straight on at top speed
        ([SPEED, 0.0], [-SPEED, 0.0], [0.0, 0.0]),  # a full reversal within the tick
        ([0.0, 0.0], [0.0, 0.0], [0.0, SPEED * 0.5]),  # velocity not reported
        ([0.0, SPEED], [0.0, SPEED], [0.0, -SPEED * 0.5]),  # reported velocity all wrong
    ],
)
def test_motion_at_top_speed_is_accepted(
    vel_before: list[float], vel_now: list[float], moved: list[float]
) -> None:
    s = replace(fresh(), est_vel_mps=np.array([vel_before]))
    s, jumped = gate(s, moved, vel_now, 0.5)
    assert not jumped[0] and not s.glitching[0]
    np.testing.assert_allclose(s.est_pos_m[0], moved)
    np.testing.assert_allclose(s.est_vel_mps[0], vel_now)


def test_after_a_long_silence_the_gate_widens() -> None:
    s = fresh()
    s, jumped = gate(s, [0.0, 250.0], [0.0, 0.0], 10.0)  # 250 m in 10 s is within 15 m/s
    assert not jumped[0]
    np.testing.assert_allclose(s.est_pos_m[0], [0.0, 250.0])
    s, jumped = gate(s, [0.0, 600.0], [0.0, 0.0], 20.0)  # 350 m in 10 s is not
    assert jumped[0]


def test_stale_and_unusable_reports_change_nothing() -> None:
    s0 = fresh()
    s, jumped = gate(s0, [500.0, 0.0], [0.0, 0.0], 5.0, seen=[0.0])  # not heard since
    assert not jumped[0] and not s.glitching[0]
    np.testing.assert_array_equal(s.est_pos_m, s0.est_pos_m)
    assert s.est_t_s[0] == 0.0
    s, jumped = gate(s0, [np.nan, 0.0], [0.0, 0.0], 5.0)  # no fix
    assert not jumped[0]
    np.testing.assert_array_equal(s.est_pos_m, s0.est_pos_m)
    s, _ = gate(s0, [1.0, 0.0], [0.0, 0.0], 5.0, seen=[np.nan])  # never heard
    assert s.est_t_s[0] == 0.0


def test_on_the_ground_every_report_is_taken() -> None:
    s = glitching(fresh())
    s, jumped = gate(s, [300.0, 0.0], [0.0, 0.0], 0.5, airborne=False)
    assert not jumped[0] and not s.glitching[0]
    np.testing.assert_allclose(s.est_pos_m[0], [300.0, 0.0])


def test_velocity_is_capped_at_top_speed() -> None:
    s, _ = gate(fresh(), [0.0, 0.0, 30.0], [0.0, 100.0, -2.0], 0.5)  # (n, 3) in, x, y used
    np.testing.assert_allclose(s.est_vel_mps[0], [0.0, SPEED])
    assert s.est_pos_m.shape == (1, 2)


def test_glitching_raises_gps_glitch_in_decide() -> None:
    s = fresh()
    s, _ = gate(s, [55.0, 0.0], [0.0, 0.0], 0.5)
    s = decide(s, signals(now_s=0.5), 0.5, params())
    assert (s.action[0], s.cause[0]) == (A.HOLD, C.GPS_GLITCH)
    assert explain(s, 0) == "HOLD (GPS glitch)"


# --- parameters from a mission ------------------------------------------------------------------


def test_params_of_a_mission() -> None:
    ring = [[8.01, 46.50], [8.03, 46.50], [8.03, 46.51], [8.01, 46.51], [8.01, 46.50]]
    m = parse(
        {
            "name": "t",
            "area": {"type": "Polygon", "coordinates": [ring]},
            "launch_sites": [{"name": "b", "lon": 8.02, "lat": 46.505}],
            "fleet": [
                {"model": "q", "count": 2, "launch_site": "b", "speed_mps": 12.0}
                | {"endurance_s": 1200, "swath_m": 40},
                {"model": "f", "count": 1, "launch_site": "b", "speed_mps": 20.0}
                | {"endurance_s": 3600, "swath_m": 80},
            ],
            "safety": {"battery_reserve": 0.25, "lost_link_timeout_s": 7},
            "weather": {"wind_mps": 3, "wind_from_deg": 90},
        }
    )
    p = FailsafeParams.of(m)
    assert (p.lost_link_timeout_s, p.battery_low) == (7.0, 0.25)
    np.testing.assert_allclose(p.max_speed_mps, [15.0, 15.0, 23.0])
    assert (p.battery_critical_frac, p.gps_jump_m, p.gps_hold_s) == (0.08, 50.0, 20.0)


# --- properties ---------------------------------------------------------------------------------

N = 4


@st.composite
def runs(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """A random run of up to 25 ticks: per tick and drone (rows, columns) the raw signals,
    whether its report jumps 80 m, and whether the operator clears it first."""
    t = draw(st.integers(1, 25))

    def grid(elements: st.SearchStrategy[Any], dtype: Any) -> np.ndarray:
        return draw(arrays(dtype, (t, N), elements=elements))

    return {
        "airborne": grid(st.booleans(), bool),
        "heard": grid(st.booleans(), bool),
        "battery": grid(st.sampled_from([0.9, 0.3, 0.2, 0.1, 0.07]), float),
        "gps_ok": grid(st.sampled_from([True, True, True, False]), bool),
        "inside": grid(st.booleans(), bool),
        "jump": grid(st.booleans(), bool),
        "clear": grid(st.sampled_from([False, False, False, False, True]), bool),
        "dt": draw(arrays(float, (t,), elements=st.sampled_from([0.5, 0.5, 5.0, 25.0]))),
    }


def play(run_: dict[str, np.ndarray]) -> list[tuple[FailsafeState, np.ndarray]]:
    """The states after each tick, and which drones the operator cleared before it."""
    n = run_["airborne"].shape[1]
    p = params(n)
    s = fresh(n)
    t = 0.0
    out = []
    for k, dt in enumerate(run_["dt"]):
        t += float(dt)
        cleared = run_["clear"][k]
        s = clear(s, cleared, t)
        seen = np.where(run_["heard"][k], t, t - 30.0)
        report = np.where(run_["jump"][k][:, None], [80.0, 0.0], 0.0)
        air = run_["airborne"][k]
        s, _ = filter_positions(s, report, np.zeros((n, 2)), t, p, seen_s=seen, airborne=air)
        sig = Signals(
            airborne=air,
            last_seen_s=seen,
            battery=run_["battery"][k],
            home_need=np.full(n, 0.3),
            gps_ok=run_["gps_ok"][k],
            inside_fence=run_["inside"][k],
        )
        s = decide(s, sig, t, p)
        out.append((s, cleared))
    return out


@settings(max_examples=60, deadline=None)
@given(runs())
def test_actions_never_decrease_except_recover_to_home_or_a_clear(
    run_: dict[str, np.ndarray],
) -> None:
    before = np.zeros(N, np.int8)
    since = np.zeros(N)
    for s, cleared in play(run_):
        a = s.action
        ok = (a >= before) | ((before == A.RECOVER) & (a == A.HOME)) | cleared
        assert ok.all(), (before, a, cleared)
        # since_s moves only when the action does (or a clear resets it)
        same = (a == before) & ~cleared
        np.testing.assert_array_equal(s.since_s[same], since[same])
        before, since = a.copy(), s.since_s.copy()


def take(state: FailsafeState, i: int) -> FailsafeState:
    return FailsafeState(**{f.name: getattr(state, f.name)[i : i + 1] for f in fields(state)})


@settings(max_examples=20, deadline=None)
@given(runs())
def test_vectorised_equals_per_drone(run_: dict[str, np.ndarray]) -> None:
    whole = play(run_)
    for i in range(N):
        alone = play({k: v if k == "dt" else v[:, i : i + 1] for k, v in run_.items()})
        for (sw, _), (sa, _) in zip(whole, alone, strict=True):
            for f in fields(sw):
                np.testing.assert_array_equal(getattr(take(sw, i), f.name), getattr(sa, f.name))
