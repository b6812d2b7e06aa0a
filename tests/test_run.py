"""End to end: a small mission planned, flown in the simulator, logged, exported, reported."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from skysweep import mission
from skysweep.cli import app
from skysweep.plan import plan_mission
from skysweep.runtime.simulate import simulate
from skysweep.store import RunLog

SMALL = """
name: small search
area: {type: Polygon, coordinates: [[[8.000, 46.500], [8.012, 46.500], [8.012, 46.509],
       [8.000, 46.509], [8.000, 46.500]]]}
keep_out:
  - name: cliff
    geometry: {type: Polygon, coordinates: [[[8.005, 46.503], [8.007, 46.503], [8.007, 46.506],
               [8.005, 46.506], [8.005, 46.503]]]}
launch_sites:
  - {name: base, lon: 8.002, lat: 46.501, pads: 2, launch_interval_s: 5}
fleet:
  - {model: quad, count: 4, launch_site: base, speed_mps: 10, endurance_s: 900, swath_m: 50}
weather: {wind_mps: 3, wind_from_deg: 200}
"""


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("m") / "small.yaml"
    path.write_text(SMALL)
    return path


def _fly(path: Path, db: Path, seed: int) -> dict:
    plan = plan_mission(mission.load(path))
    with RunLog(db, create=True) as log:
        log.set_meta("mission", json.loads(mission.to_json(plan.mission.spec)))
        log.set_meta("drones", list(plan.mission.fleet.ids))
        summary, truth = simulate(plan, log, seed=seed)
        return {**summary.as_dict(), **truth.as_dict()}


def test_flight_covers_the_area_and_everyone_lands(small: Path, tmp_path: Path) -> None:
    s = _fly(small, tmp_path / "run.db", seed=3)
    assert s["drones"] == 4
    assert s["landed"] == 4 and s["drones_lost"] == 0
    assert s["keep_out_breaches"] == 0 and s["keep_in_breaches"] == 0
    assert s["landed_below_reserve"] == 0
    assert s["covered_fraction"] >= 0.98
    assert s["mission_time_s"] > 0


def test_same_seed_same_event_trace(small: Path, tmp_path: Path) -> None:
    traces = []
    for k in range(2):
        _fly(small, tmp_path / f"r{k}.db", seed=7)
        with RunLog(tmp_path / f"r{k}.db") as log:
            traces.append([(e.t_s, e.kind, e.drone, e.data) for e in log.events()])
    assert traces[0] == traces[1]
    kinds = {k for _, k, _, _ in traces[0]}
    assert {"mission_start", "launch", "mode", "landed", "mission_end"} <= kinds


def test_events_are_logged_before_commands(small: Path, tmp_path: Path) -> None:
    _fly(small, tmp_path / "run.db", seed=1)
    with RunLog(tmp_path / "run.db") as log:
        launches = list(log.events("launch"))
        ticks = [t for t, _ in log.telemetry()]
    assert len(launches) >= 4
    # every launch was decided on a tick that is in the log
    assert {e.t_s for e in launches} <= set(ticks)


def test_cli_sim_export_report(small: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    db = tmp_path / "run.db"
    r = runner.invoke(app, ["sim", str(small), "--seed", "2", "--log", str(db), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    for key in (
        "mission_time_s",
        "covered_fraction",
        "drones",
        "drones_lost",
        "keep_out_breaches",
        "keep_in_breaches",
        "min_separation_m",
        "landed",
        "landed_below_reserve",
    ):
        assert key in summary

    csv_path = tmp_path / "t.csv"
    r = runner.invoke(app, ["export", str(db), "--telemetry", str(csv_path)])
    assert r.exit_code == 0, r.output
    with csv_path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["t_s", "drone", "lon", "lat", "alt_m", "speed_mps", "battery", "mode"]
    assert {r["drone"] for r in rows} == {f"quad-00{i}" for i in range(1, 5)}
    lat = np.array([float(r["lat"]) for r in rows])
    assert lat.min() > 46.49 and lat.max() < 46.52
    bat = np.array([float(r["battery"]) for r in rows])
    assert bat.min() >= 0.0 and bat.max() <= 1.0

    html_path = tmp_path / "report.html"
    r = runner.invoke(app, ["report", str(db), "--out", str(html_path)])
    assert r.exit_code == 0, r.output
    page = html_path.read_text()
    assert page.count("data:image/png;base64,") == 2 and "http" not in page.split("<body>")[1]


def test_cli_plan_writes_geojson(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.geojson"
    r = CliRunner().invoke(
        app, ["plan", str(small), "--out", str(out), "--json", "--qgc", str(tmp_path / "qgc")]
    )
    assert r.exit_code == 0, r.output
    figures = json.loads(r.stdout)
    assert figures["coverage_fraction"] >= 0.99
    assert 0 < figures["efficiency"] <= 1
    assert figures["lower_bound_s"] <= figures["makespan_s"]
    fc = json.loads(out.read_text())
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == figures["sorties"]
    assert list((tmp_path / "qgc").glob("*.plan"))


def test_cli_bad_mission_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMALL.replace("speed_mps: 10", "speed_mps: -1"))
    r = CliRunner().invoke(app, ["plan", str(bad)])
    assert r.exit_code == 2
    assert r.stderr.strip() == f"skysweep: {bad}: fleet[0].speed_mps: must be > 0"


def test_cli_missing_run_log(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["report", str(tmp_path / "nope.db")])
    assert r.exit_code == 2 and "no such run log" in r.stderr


def test_a_drone_sent_home_early_flies_round_the_keep_out(small: Path, tmp_path: Path) -> None:
    """Every drone's pack loses 60 % of its charge mid-sweep: all are sent home early, and the
    way home (uploaded by the ground station, not the autopilot's straight RTL) goes round
    the cliff and ends on each drone's own pad."""
    from skysweep.sim.faults import parse_faults

    plan = plan_mission(mission.load(small))
    faults = parse_faults(
        {"faults": [{"at_s": 200, "kind": "battery_sag", "fraction": 1.0, "capacity_factor": 0.4}]},
        drone_ids=plan.mission.fleet.ids,
    )
    with RunLog(tmp_path / "run.db", create=True) as log:
        summary, truth = simulate(plan, log, seed=2, faults=faults)
        low = [
            e.drone
            for e in log.events("failsafe")
            if e.data["action"] == "HOME" and "battery" in e.data["why"]
        ]
    assert truth.faults_injected == 1
    assert len(set(low)) >= 3
    assert summary.keep_out_breaches == 0 and summary.keep_in_breaches == 0
    assert summary.landed == 4 and summary.drones_lost == 0


def test_a_drone_with_no_flyable_way_home_is_sent_home_straight(
    small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the return route cannot be found, the drone is not left out there: the refusal is
    logged and its autopilot's own return brings it home."""
    from skysweep.errors import InfeasibleError
    from skysweep.plan.paths import PathFinder
    from skysweep.sim.faults import parse_faults

    plan = plan_mission(mission.load(small))
    faults = parse_faults(
        {"faults": [{"at_s": 200, "kind": "battery_sag", "fraction": 1.0, "capacity_factor": 0.4}]},
        drone_ids=plan.mission.fleet.ids,
    )

    def no_path(self: PathFinder, a: object, b: object) -> None:
        raise InfeasibleError("no flyable path (test)")

    monkeypatch.setattr(PathFinder, "path", no_path)
    with RunLog(tmp_path / "run.db", create=True) as log:
        summary, _ = simulate(plan, log, seed=2, faults=faults)
        unrouted = list(log.events("return_unrouted"))
    assert unrouted and all("test" in e.data["reason"] for e in unrouted)
    assert summary.landed == 4 and summary.drones_lost == 0


def test_a_drone_whose_pack_cannot_fly_its_sortie_hands_its_work_on(
    small: Path, tmp_path: Path
) -> None:
    """A battery that lost most of its capacity on the ground: every launch of that drone is
    refused for energy. Its work goes to the others instead of waiting for it forever."""
    from skysweep.sim.faults import BatterySag

    plan = plan_mission(mission.load(small))
    # the drone that launches last: the fault comes before its first launch
    last = max(plan.sorties, key=lambda s: min(o.launch_s for o in plan.of_drone(s.drone)))
    assert min(o.launch_s for o in plan.of_drone(last.drone)) > 1.0
    weak = plan.mission.fleet.ids[last.drone]
    sag = BatterySag(kind="battery_sag", at_s=0.5, drone=weak, capacity_factor=0.3)
    with RunLog(tmp_path / "run.db", create=True) as log:
        log.set_meta("mission", json.loads(mission.to_json(plan.mission.spec)))
        summary, _ = simulate(plan, log, seed=3, faults=[sag])
        refused = [e for e in log.events("refused") if e.drone == weak]
        launched = [e for e in log.events("launch") if e.drone == weak]
    assert refused and refused[0].data["reason"].startswith("energy")
    assert len(launched) < sum(1 for s in plan.sorties if s.drone == last.drone)
    assert summary.state == "COMPLETE"
    assert any("cannot fly its next sortie" in r for r in summary.reasons)
    assert summary.covered_fraction >= 0.98
    assert summary.landed_below_reserve == 0


def test_a_pack_reported_late_still_launches_its_drone(small: Path, tmp_path: Path) -> None:
    """A real vehicle reports its charge a moment after the link comes up (or after the crew's
    swap): a launch refused for energy in that moment waits for the report instead of handing
    the drone's work on."""
    from skysweep.link.sim import SimLink
    from skysweep.runtime.orchestrator import LAUNCH_ENERGY_WAIT_S, Orchestrator
    from skysweep.runtime.simulate import SimClock, sim_world
    from skysweep.telemetry import FleetState

    plan = plan_mission(mission.load(small))
    first = min(plan.sorties, key=lambda s: s.launch_s)
    late_s = 0.6 * LAUNCH_ENERGY_WAIT_S

    class LateBattery(SimLink):
        flying = False

        def poll(self, now_s: float) -> FleetState:
            fs = super().poll(now_s)
            if self.flying and now_s < late_s:
                fs.battery[first.drone] = 0.0  # the new pack not reported yet: read as flat
            return fs

    with RunLog(tmp_path / "run.db", create=True) as log:
        log.set_meta("mission", json.loads(mission.to_json(plan.mission.spec)))
        link = LateBattery(sim_world(plan, 0))
        orch = Orchestrator(plan, link, log)
        assert not orch.authorise(0.0)
        link.flying = True
        summary = orch.run(SimClock())
        who = plan.mission.fleet.ids[first.drone]
        refused = [e for e in log.events("refused") if e.drone == who]
        launched = [e.t_s for e in log.events("launch") if e.drone == who]
    assert refused and refused[0].data["reason"].startswith("energy")
    assert launched and launched[0] >= late_s
    assert not any("cannot fly its next sortie" in r for r in summary.reasons)
    assert summary.state == "COMPLETE" and summary.covered_fraction >= 0.98


RESERVES = """
name: reserves on the pad
area: {type: Polygon, coordinates: [[[8.000, 46.500], [8.012, 46.500], [8.012, 46.509],
       [8.000, 46.509], [8.000, 46.500]]]}
launch_sites:
  - {name: base, lon: 8.002, lat: 46.501, pads: 1, launch_interval_s: 30}
fleet:
  - {model: quad, count: 12, launch_site: base, speed_mps: 10, endurance_s: 1500, swath_m: 60}
"""


def test_reserves_on_the_pad_take_over_the_work_of_lost_drones(tmp_path: Path) -> None:
    """One pad, so the plan flies only some of the twelve and keeps the rest on the ground;
    when every drone in the air falls, the reserves are brought in and finish the search."""
    from skysweep.sim.faults import DroneLost

    path = tmp_path / "m.yaml"
    path.write_text(RESERVES)
    plan = plan_mission(mission.load(path))
    working = sorted({s.drone for s in plan.sorties})
    idle = sorted(set(range(len(plan.mission.fleet))) - set(working))
    assert idle, "the plan must leave reserves for this test"
    first = [s for s in plan.sorties if s.number == 1]
    at_s = max(s.launch_s for s in first) + 60.0  # every working drone in the air
    ids = plan.mission.fleet.ids
    faults = [DroneLost(kind="drone_lost", at_s=at_s, drone=ids[i]) for i in working]
    with RunLog(tmp_path / "run.db", create=True) as log:
        log.set_meta("mission", json.loads(mission.to_json(plan.mission.spec)))
        summary, truth = simulate(plan, log, seed=1, faults=faults)
        replans = list(log.events("replan"))
        launched = {e.drone for e in log.events("launch")}
    assert replans and "reserve" in replans[0].data["reason"]
    assert launched & {ids[i] for i in idle}
    assert summary.drones_lost == len(working)
    assert summary.state == "COMPLETE" and summary.covered_fraction >= 0.99
    assert summary.keep_in_breaches == 0 and truth.separation_violations == 0


def test_work_nobody_is_left_to_fly_is_reported(small: Path, tmp_path: Path) -> None:
    """Every drone falls and none waits on the ground: the rest of the search has nobody to
    fly it, and the mission's reasons say so (not just that drones were lost)."""
    from skysweep.sim.faults import DroneLost

    plan = plan_mission(mission.load(small))
    at_s = max(s.launch_s for s in plan.sorties if s.number == 1) + 30.0
    faults = [DroneLost(kind="drone_lost", at_s=at_s, drone=d) for d in plan.mission.fleet.ids]
    with RunLog(tmp_path / "run.db", create=True) as log:
        summary, _ = simulate(plan, log, seed=2, faults=faults)
        failed = list(log.events("replan_failed"))
    assert failed and "no drone is left" in failed[0].data["error"]
    assert summary.health == "DEGRADED"
    assert any("no drone is left" in r for r in summary.reasons)
    assert summary.covered_fraction < 0.5
