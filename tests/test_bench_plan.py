"""The planner benchmark: its scenario suite (skysweep.bench.plan_scenarios), the figures it
measures (skysweep.bench.plan) and ``skysweep bench plan``. Only small scenarios are planned."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest
import shapely
from typer.testing import CliRunner

from skysweep import mission as mission_mod
from skysweep.bench import plan as bench
from skysweep.bench.plan_scenarios import (
    RIVER_ORIGIN,
    RIVER_WIDTH_M,
    SCENARIOS,
    river_centreline,
    scenario,
    to_lonlat,
    warm_up_data,
)
from skysweep.cli import app
from skysweep.mission import Mission
from skysweep.plan import plan_mission

#: Scenarios that plan in about a second each; the others take up to a minute or more.
SMALL = ("meadow-3", "l-valley-12", "moor-4", "crescent-8")


@pytest.fixture(scope="module")
def missions() -> dict[str, Mission]:
    return {sc.name: sc.mission() for sc in SCENARIOS}


def _fleet_entries(name: str) -> list[dict[str, Any]]:
    return list(scenario(name).mission_data()["fleet"])


def test_suite_size_names_and_determinism() -> None:
    names = [sc.name for sc in SCENARIOS]
    assert 12 <= len(names) <= 16
    assert len(set(names)) == len(names)
    for sc in SCENARIOS:
        assert sc.description
        assert sc.mission_data() == sc.mission_data(), f"{sc.name} is not deterministic"
    with pytest.raises(KeyError, match="unknown scenario"):
        scenario("nope")


def test_every_scenario_builds_a_valid_mission(missions: dict[str, Mission]) -> None:
    for name, m in missions.items():
        assert m.searchable.area > 0, name
        assert len(m.fleet) == sum(e["count"] for e in _fleet_entries(name))


def test_parameters_are_realistic(missions: dict[str, Mission]) -> None:
    for name, m in missions.items():
        f = m.fleet
        assert np.all((f.speed_mps >= 5) & (f.speed_mps <= 20)), name
        assert np.all((f.swath_m >= 20) & (f.swath_m <= 120)), name
        assert np.all((f.endurance_s >= 900) & (f.endurance_s <= 3600)), name
        assert 40 <= m.altitude_m <= 120, name
        assert m.safety.geofence_margin_m == 10, name
        assert 10 <= m.safety.min_separation_m <= 15, name
    assert any(m.spec.weather.wind_mps > 0 for m in missions.values())


def test_suite_spans_areas_and_keep_outs(missions: dict[str, Mission]) -> None:
    ms = list(missions.values())
    assert any(m.area.area / m.area.convex_hull.area < 0.8 for m in ms), "a concave area"
    assert any(isinstance(m.area, shapely.MultiPolygon) and len(m.area.geoms) >= 2 for m in ms), (
        "a MultiPolygon area"
    )
    counts = {len(m.keep_out) for m in ms}
    assert 0 in counts
    assert any(1 <= c <= 5 for c in counts), "a few keep-outs"
    assert max(counts) >= 50


def test_suite_has_a_narrow_winding_corridor(missions: dict[str, Mission]) -> None:
    m = missions["river-16"]
    # the valley's centreline, taken to the mission's frame the way its area was
    lon, lat = to_lonlat(shapely.get_coordinates(river_centreline()), RIVER_ORIGIN).T
    line = shapely.LineString(np.column_stack(m.frame.to_local(lon, lat)))
    assert line.length >= 15_000
    # ≤ 300 m wide: all of it within half that of the centreline (1 m: rounding, projection)
    assert RIVER_WIDTH_M <= 300
    assert line.buffer(RIVER_WIDTH_M / 2 + 1.0).contains(m.area)
    # and filled along its whole length, not just a stub
    assert m.area.area >= 0.97 * 15_000 * RIVER_WIDTH_M
    # winding: the smallest rectangle around it is far bigger than it
    assert shapely.minimum_rotated_rectangle(m.area).area > 5 * m.area.area


def test_suite_spans_fleets_and_sites(missions: dict[str, Mission]) -> None:
    ms = list(missions.values())
    sizes = [len(m.fleet) for m in ms]
    assert min(sizes) <= 3 and max(sizes) >= 2500
    pads = [s.pads for m in ms for s in m.sites]
    assert min(pads) == 1 and max(pads) == 10

    def inside(m: Mission) -> list[bool]:
        return [bool(m.area.contains(shapely.Point(s.xy_m))) for s in m.sites]

    assert any(not all(inside(m)) for m in ms), "a site outside the area"
    assert any(len(m.sites) >= 2 and 0 < sum(inside(m)) < len(m.sites) for m in ms), (
        "a mission with several sites, some inside the area and some outside"
    )
    assert any(
        len(np.unique(m.fleet.speed_mps)) > 1
        and len(np.unique(m.fleet.swath_m)) > 1
        and len(np.unique(m.fleet.endurance_s)) > 1
        for m in ms
    ), "a heterogeneous fleet"
    regimes = {sc.battery_bound for sc in SCENARIOS}
    assert regimes == {True, False}, "one-battery and battery-bound scenarios"


def test_the_issues_speed_scenarios(missions: dict[str, Mission]) -> None:
    big, small = missions["speed-2500"], missions["speed-200"]
    assert len(big.fleet) == 2500 and len(big.keep_out) == 50
    assert 450e6 <= big.searchable.area <= 550e6
    assert len(small.fleet) == 200
    assert 90e6 <= small.searchable.area <= 110e6
    assert set(bench.SPEED_BARS_S) == {"speed-2500", "speed-200"}


@pytest.mark.parametrize("name", SMALL)
def test_small_scenarios_plan(name: str) -> None:
    row = bench.run_one(scenario(name))
    assert "error" not in row, row.get("error")
    assert row["coverage_fraction"] > 0.99
    assert 0 < row["efficiency"] <= 1.0
    assert row["sorties"] >= row["drones"] - row["idle_drones"]
    assert row["max_sortie_energy"] <= row["battery_budget"]
    assert row["keep_out_intrusions"] == 0
    # no plan beats the fleet bound, and it is never below the mission's own
    assert row["efficiency"] <= row["ceiling"] <= 1.01
    assert 0 < row["of_fleet_bound"] <= 1.0


def test_the_warm_up_flies_from_both_its_sites_round_its_keep_out() -> None:
    # what it is for: the multi-site sharing, the paths round keep-outs and the split of
    # several sorties run before any scenario is timed; planned from one site, with no
    # keep-out or with every drone on one sortie, it would warm none of them
    mission = mission_mod.parse(warm_up_data(), source="<warm-up>")
    assert mission.name not in {sc.name for sc in SCENARIOS}
    assert len(mission.sites) == 2 and len(mission.keep_out) == 1
    plan = plan_mission(mission)
    flown = {int(mission.fleet.site[s.drone]) for s in plan.sorties}
    assert flown == {0, 1}
    assert max(s.number for s in plan.sorties) >= 2
    assert plan.metrics.coverage_fraction > 0.99
    zones = [z.geometry for z in mission.keep_out]
    assert bench.count_intrusions([s.path[:, :2] for s in plan.sorties], zones) == 0


def test_intrusions_count_crossing_paths_not_touching_ones() -> None:
    zone = shapely.box(0.0, 0.0, 100.0, 100.0)
    through = np.array([[-50.0, 50.0, 0.0], [-50.0, 50.0, 60.0], [150.0, 50.0, 60.0]])
    along_edge = np.array([[-50.0, 0.0, 60.0], [150.0, 0.0, 60.0]])
    at_corner = np.array([[-10.0, -10.0], [0.0, 0.0], [-10.0, 10.0]])
    outside = np.array([[200.0, 200.0], [300.0, 200.0]])
    clipping_a_corner = np.array([[-10.0, 15.0], [15.0, -10.0]])  # cuts a corner off
    assert bench.count_intrusions([through], [zone]) == 1
    assert bench.count_intrusions([along_edge], [zone]) == 0
    assert bench.count_intrusions([at_corner], [zone]) == 0
    assert bench.count_intrusions([outside], [zone]) == 0
    assert bench.count_intrusions([clipping_a_corner], [zone]) == 1
    paths = [through, along_edge, at_corner, outside, clipping_a_corner]
    assert bench.count_intrusions(paths, [zone]) == 2
    assert bench.count_intrusions(paths, []) == 0
    # two zones sharing an edge are one keep-out: the shared edge is inside it
    east = shapely.box(100.0, 0.0, 200.0, 100.0)
    seam = np.array([[100.0, -50.0], [100.0, 150.0]])
    assert bench.count_intrusions([seam], [zone, east]) == 1


def _row(name: str, eff: float, one: bool, **kw: Any) -> dict[str, Any]:
    base = {
        "name": name,
        "efficiency": eff,
        "one_battery": one,
        "coverage_fraction": 1.0,
        "keep_out_intrusions": 0,
        "planning_s": 0.1,
        "ceiling": 1.0,
        "of_fleet_bound": eff,
    }
    return {**base, **kw}


def test_summary_reports_bars_without_raising() -> None:
    bars = lambda s: {b["bar"]: b["holds"] for b in s["bars"]}  # noqa: E731
    good = bench.summarise(
        [
            _row("a", 0.95, True),
            _row("b", 0.91, False),
            _row("c", 0.80, False),
            _row("speed-200", 0.99, True, planning_s=0.4),
        ]
    )
    assert good["median_efficiency"] == pytest.approx(0.93)
    assert good["min_efficiency_one_battery"] == 0.95
    assert all(v is not False for v in bars(good).values())
    assert bars(good)["speed-2500 plans in <= 5 s"] is None  # not run: not measured

    bad = bench.summarise(
        [
            _row("a", 0.84, True, coverage_fraction=0.99, keep_out_intrusions=2, same_plan=False),
            _row("speed-200", 0.95, False, planning_s=0.6),
            {"name": "x", "error": "infeasible"},
        ]
    )
    assert bad["total_intrusions"] == 2
    assert True not in bars(bad).values()
    assert bars(bad)["every scenario plans"] is False

    # a scenario whose repeats planned differently fails the determinism bar
    drifted = bench.summarise([_row("a", 0.95, True, same_plan=False), _row("b", 0.9, True)])
    assert bars(drifted)["the same plan on every repeat"] is False


def test_repeats_time_the_median_and_compare_the_plans() -> None:
    row = bench.run_one(scenario("meadow-3"), repeat=3)
    assert row["repeats"] == 3
    assert row["planning_s_min"] <= row["planning_s"] <= row["planning_s_max"]
    assert row["same_plan"] is True
    with pytest.raises(ValueError, match="repeat"):
        bench.run_one(scenario("meadow-3"), repeat=0)


def test_plans_that_differ_are_told_apart() -> None:
    mission = scenario("meadow-3").mission()
    a, b = plan_mission(mission), plan_mission(mission)
    assert bench._same_plan(a, b)
    moved = dataclasses.replace(a.sorties[0], path=a.sorties[0].path + 1e-9)
    assert not bench._same_plan(a, dataclasses.replace(a, sorties=(moved, *a.sorties[1:])))
    assert not bench._same_plan(a, dataclasses.replace(a, sorties=a.sorties[1:]))


def test_summary_names_the_one_battery_scenarios_no_plan_can_bring_to_the_bar() -> None:
    s = bench.summarise(
        [
            _row("hub-and-airstrip", 0.55, True, ceiling=0.74),
            _row("meadow", 0.75, True, ceiling=0.96),
            _row("battery-bound", 0.40, False, ceiling=0.70),
        ]
    )
    assert s["one_battery_out_of_reach"] == ["hub-and-airstrip"]
    assert s["median_ceiling"] == pytest.approx(0.74)


def test_cli_json_for_one_scenario() -> None:
    r = CliRunner().invoke(app, ["bench", "plan", "--only", "meadow-3", "--repeat", "2", "--json"])
    assert r.exit_code == 0, r.output
    figures = json.loads(r.stdout)
    (row,) = figures["scenarios"]
    assert row["name"] == "meadow-3"
    for key in (
        "drones",
        "area_km2",
        "efficiency",
        "coverage_fraction",
        "planning_s",
        "sorties",
        "keep_out_intrusions",
        "one_battery",
        "max_sortie_energy",
        "battery_budget",
        "fleet_bound_s",
        "ceiling",
        "of_fleet_bound",
    ):
        assert key in row, key
    assert row["drones"] == 3
    assert row["repeats"] == 2 and row["same_plan"] is True
    assert figures["summary"]["scenarios"] == 1
    assert {b["bar"] for b in figures["summary"]["bars"]} >= {"no keep-out intrusions"}


def test_cli_refuses_an_unknown_scenario() -> None:
    r = CliRunner().invoke(app, ["bench", "plan", "--only", "nope"])
    assert r.exit_code == 2
    assert "unknown scenario" in r.output
    r = CliRunner().invoke(app, ["bench", "plan", "--only", "meadow-3", "--repeat", "0"])
    assert r.exit_code == 2
    assert "--repeat" in r.output
