"""How much dearer than the energy model each drone's pack is (skysweep.runtime.drain): the
tally learns it from telemetry, and the failsafe that brings a drone home on a low battery
sends it home sooner by as much."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from test_run import SMALL

from skysweep import mission
from skysweep.energy import power_factor
from skysweep.link.sim import SimLink
from skysweep.plan import plan_mission
from skysweep.runtime import drain
from skysweep.runtime.drain import MAX_GAP_S, MAX_RATIO, PRIOR_PACK, DrainTally
from skysweep.runtime.orchestrator import Orchestrator
from skysweep.runtime.simulate import SimClock, sim_world
from skysweep.store import RunLog
from skysweep.telemetry import FleetState

WIND = np.array([3.0, -1.0])
CRUISE, ENDURANCE = np.array([10.0]), np.array([600.0])
VEL = np.array([[8.0, 6.0, 0.0]])  # level flight, 10 m/s over the ground


def _report(t_s: float, battery: float, airborne: bool = True, vel: np.ndarray = VEL) -> FleetState:
    return FleetState(
        t_s=t_s,
        pos_m=np.zeros((1, 3)),
        vel_mps=vel.astype(float),
        battery=np.array([battery]),
        mode=np.zeros(1, np.int8),
        mission_seq=np.zeros(1, np.intp),
        airborne=np.array([airborne]),
        last_seen_s=np.array([t_s]),
    )


def _model_rate(vel: np.ndarray = VEL) -> float:
    """The model's battery use per second, fraction of a pack, at ``vel`` into ``WIND``."""
    air = vel[0, :2] - WIND
    return float(power_factor(np.hypot(*air), CRUISE[0], max(vel[0, 2], 0.0))) / ENDURANCE[0]


def _fly(
    factor: float, seconds: float, dt: float = 0.5, quantum: float = 0.0
) -> tuple[DrainTally, float]:
    """A drone in level flight whose pack drains ``factor`` times as fast as the model says,
    reported every ``dt`` s (charge rounded down to ``quantum`` if given, as a MAVLink battery
    reports whole percent); the tally after ``seconds``, and the battery the model gave."""
    tally = DrainTally.start(1).after(_report(0.0, 1.0, airborne=False), WIND, CRUISE, ENDURANCE)
    charge, modelled = 1.0, 0.0
    for k in range(1, int(seconds / dt) + 1):
        rate = _model_rate()
        charge -= factor * rate * dt
        modelled += rate * dt
        shown = np.floor(charge / quantum) * quantum if quantum else charge
        tally = tally.after(_report(k * dt, shown), WIND, CRUISE, ENDURANCE)
    return tally, modelled


def test_a_pack_that_drains_as_modelled_is_no_dearer() -> None:
    tally, modelled = _fly(1.0, 600.0)
    # (the first report in the air starts the count: one interval less than flown)
    assert tally.modelled[0] == pytest.approx(modelled - _model_rate() * 0.5)
    assert tally.used[0] == pytest.approx(tally.modelled[0])
    assert tally.ratio()[0] == pytest.approx(1.0)


def test_a_pack_that_drains_faster_is_believed_dearer_by_as_much() -> None:
    tally, _ = _fly(1.2, 600.0)
    used, modelled = tally.used[0], tally.modelled[0]
    assert used == pytest.approx(1.2 * modelled)
    assert tally.ratio()[0] == pytest.approx((used + PRIOR_PACK) / (modelled + PRIOR_PACK))
    assert 1.15 < tally.ratio()[0] < 1.2


def test_a_pack_that_does_better_than_the_model_earns_no_later_return() -> None:
    tally, _ = _fly(0.8, 600.0)
    assert tally.ratio()[0] == 1.0


def test_a_sudden_drop_is_taken_no_further_than_the_cap() -> None:
    tally, _ = _fly(1.0, 120.0)
    sagged = tally.after(_report(120.5, float(tally.battery[0]) - 0.4), WIND, CRUISE, ENDURANCE)
    assert sagged.ratio()[0] == MAX_RATIO


def test_a_gap_in_the_telemetry_counts_on_neither_side() -> None:
    tally, _ = _fly(1.0, 120.0)
    # silent for a minute, in which the drone flew on (and its charge went down)
    late = tally.after(
        _report(180.0 + MAX_GAP_S, float(tally.battery[0]) - 0.1), WIND, CRUISE, ENDURANCE
    )
    assert late.used[0] == tally.used[0] and late.modelled[0] == tally.modelled[0]
    # and the count goes on from the report after it
    on = late.after(
        _report(180.5 + MAX_GAP_S, float(late.battery[0]) - 0.001), WIND, CRUISE, ENDURANCE
    )
    assert on.used[0] == pytest.approx(tally.used[0] + 0.001)


def test_a_report_heard_before_changes_nothing() -> None:
    tally, _ = _fly(1.3, 120.0)
    stale = _report(float(tally.seen_s[0]), float(tally.battery[0]) - 0.2)
    again = tally.after(stale, WIND, CRUISE, ENDURANCE)
    for a, b in zip(
        (again.used, again.modelled, again.battery),
        (tally.used, tally.modelled, tally.battery),
        strict=True,
    ):
        assert np.array_equal(a, b)


def test_a_landing_starts_the_next_pack_afresh() -> None:
    tally, _ = _fly(1.3, 300.0)
    assert tally.ratio()[0] > 1.2
    down = tally.after(_report(301.0, 0.3, airborne=False), WIND, CRUISE, ENDURANCE)
    assert down.used[0] == 0.0 and down.modelled[0] == 0.0 and down.ratio()[0] == 1.0


def test_climbing_is_modelled_as_the_planner_models_it() -> None:
    climb = np.array([[0.0, 0.0, 4.0]])
    tally = DrainTally.start(1).after(_report(0.0, 1.0, vel=climb), WIND, CRUISE, ENDURANCE)
    tally = tally.after(_report(1.0, 1.0 - _model_rate(climb), vel=climb), WIND, CRUISE, ENDURANCE)
    assert tally.ratio()[0] == pytest.approx(1.0)
    assert _model_rate(climb) > _model_rate(np.zeros((1, 3)))


@settings(max_examples=40, deadline=None)
@given(factor=st.floats(1.0, 1.4), dt=st.sampled_from([0.5, 1.0, 2.0]))
def test_whole_percent_reports_are_read_within_a_step(factor: float, dt: float) -> None:
    """A MAVLink battery reports whole percent: after 20 minutes of flight the ratio is the
    true one, shrunk by the prior, within one percent step over the battery used."""
    tally, _ = _fly(factor, 1200.0, dt, quantum=0.01)
    modelled = float(tally.modelled[0])
    exact = (factor * modelled + PRIOR_PACK) / (modelled + PRIOR_PACK)
    assert abs(tally.ratio()[0] - exact) <= 0.01 / (modelled + PRIOR_PACK) + 1e-9


def _fly_tired(tmp_path: Path, name: str, held: float) -> tuple[list[float], float, float]:
    """The small mission flown in the simulator on packs that hold ``held`` of what the
    mission file says: the battery each drone landed on, the largest ratio the tally reached,
    and the mission's reserve."""
    data = yaml.safe_load(SMALL)
    data["fleet"][0]["endurance_s"] = 600.0  # sorties long enough to end on a low battery
    plan = plan_mission(mission.parse(data))
    world = sim_world(plan, 3)
    world.endurance = world.endurance * held
    highest = [1.0]
    with RunLog(tmp_path / f"{name}.db", create=True) as log:
        log.set_meta("mission", json.loads(mission.to_json(plan.mission.spec)))
        orch = Orchestrator(plan, SimLink(world), log)
        assert not orch.authorise(0.0)
        orch.run(SimClock(), progress=lambda o: highest.append(float(o.drain.ratio().max())))
        landed = [float(e.data["battery"]) for e in log.events("landed")]
    return landed, max(highest), plan.mission.safety.battery_reserve


def test_packs_that_hold_less_than_the_mission_says_bring_their_drones_home_sooner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Packs that hold 0.8 of their rated endurance: the orchestrator learns that they drain
    1.25 times as fast as the model, and its failsafe sends the drones home with more charge
    left, so fewer of them come down under the reserve than when it believes the model."""
    landed, highest, reserve = _fly_tired(tmp_path, "tally", 0.8)
    assert 1.2 < highest < 1.26
    monkeypatch.setattr(drain.DrainTally, "ratio", lambda self: np.ones(len(self.used)))
    landed_model, _, _ = _fly_tired(tmp_path, "model", 0.8)
    print(sorted(landed), sorted(landed_model))
    below = sum(b < reserve for b in landed)
    below_model = sum(b < reserve for b in landed_model)
    assert below < below_model
    assert min(landed) > min(landed_model) + 0.02
