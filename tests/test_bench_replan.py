"""The re-planning benchmark (skysweep.bench.replan) and ``skysweep bench replan``, on small
missions (the default, 2,500 drones, is for the benchmark itself)."""

from __future__ import annotations

import json

import numpy as np
import shapely
import yaml
from typer.testing import CliRunner

from skysweep.bench import replan as bench
from skysweep.bench.plan_scenarios import scenario
from skysweep.cli import app
from skysweep.plan import plan_mission
from skysweep.plan.replan import Progress


def test_flown_as_planned_follows_each_sortie_at_cruise_speed() -> None:
    m = scenario("l-valley-12").mission()
    plan = plan_mission(m)
    now = 0.4 * plan.metrics.makespan_s
    progress = Progress.as_planned(plan, now)
    assert progress.now_s == now
    for drone, track in progress.tracks.items():
        flown_sorties = [s for s in plan.of_drone(drone) if s.launch_s < now]
        first = min(s.launch_s for s in flown_sorties)
        flown = float(np.hypot(*np.diff(track, axis=0).T).sum())
        assert flown <= (now - first) * m.fleet.speed_mps[drone] + 1e-6
        # on its paths: every point of the track lies on one of its sorties' polylines
        lines = shapely.multilinestrings([s.path[:, :2] for s in flown_sorties])
        assert shapely.distance(lines, shapely.points(track)).max() < 1e-6
    launched = {s.drone for s in plan.sorties if s.launch_s < now}
    assert set(progress.tracks) == launched


def test_both_cases_are_timed_and_checked() -> None:
    figures = bench.run(scenario("crescent-8").mission())
    assert figures["drones"] == 8 and figures["airborne"] >= 1
    lost, zone = figures["cases"]
    assert lost["case"] == "lost" and lost["lost"] == max(1, int(0.1 * figures["airborne"]))
    assert zone["case"] == "keep_out" and zone["lost"] == 0
    for case in (lost, zone):
        assert 0 < case["replan_s_min"] <= case["replan_s_max"]
        assert case["coverage_fraction"] >= 0.995
    assert lost["sorties_of_lost_drones"] == 0
    assert zone["new_zone_intrusions"] == 0
    assert [b["holds"] for b in figures["bars"]][1:] == [True, True]


def test_the_new_zone_keeps_clear_of_the_sites() -> None:
    m = scenario("speed-200").mission()
    zone = bench._new_zone(m)
    assert zone.area == bench.ZONE_SIDE_M**2
    assert m.searchable.contains(zone)
    assert shapely.distance(shapely.points(m.site_xy_m), zone).min() >= bench.ZONE_CLEAR_M - 1


def test_cli_json_on_a_mission_file(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "m.yaml"
    path.write_text(yaml.safe_dump(scenario("moor-4").mission_data()))
    r = CliRunner().invoke(app, ["bench", "replan", str(path), "--json"])
    assert r.exit_code == 0, r.output
    figures = json.loads(r.stdout)
    assert figures["drones"] == 4
    assert {c["case"] for c in figures["cases"]} == {"lost", "keep_out"}
    r = CliRunner().invoke(app, ["bench", "replan", str(path)])
    assert r.exit_code == 0, r.output
    assert "re-planning" in r.stdout and "PASS" in r.stdout
