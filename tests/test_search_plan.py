"""The search plan steered by the probability map (Stone's allocation flown in nested passes) and
the Monte Carlo pieces of `skysweep bench search`."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import ndtr
from typer.testing import CliRunner

from skysweep import mission
from skysweep.bench import search as bench
from skysweep.bench.plan_scenarios import Site, drones_entry, lonlat_point, mission_data
from skysweep.cli import app
from skysweep.plan import Plan, plan_mission
from skysweep.plan.optimal_search import plan_passes
from skysweep.search import build_prior, optimal_effort, pos
from skysweep.search.prior import plan_effort, sweep_width_m, width_per_swath

ORIGIN = (8.0, 46.5)


def _datum_mission(
    sigma_m: float = 250.0,
    half_m: float = 700.0,
    datum_m: tuple[float, float] = (0.0, 0.0),
    holes: tuple[shapely.Polygon, ...] = (),
    drones: int = 3,
    allocation: str = "optimal",
    target_pos: float = 0.8,
) -> mission.Mission:
    """A square ``2·half_m`` wide round the origin, the site at the origin, a datum prior."""
    data = mission_data(
        "datum test",
        ORIGIN,
        shapely.box(-half_m, -half_m, half_m, half_m),
        [Site("base", (0.0, 0.0), pads=4)],
        [drones_entry("quad", drones, "base", 10.0, 50.0, 900.0)],
        keep_out=[(f"hole {k}", h) for k, h in enumerate(holes)],
        wind_mps=3.0,
    )
    data["search"]["allocation"] = allocation
    data["search"]["confirm_detections"] = False  # the Monte Carlo flights need it off
    data["search"]["prior"] = {
        "cell_m": 50,
        "target_pos": target_pos,
        "datum": {**lonlat_point(*datum_m, ORIGIN), "sigma_m": sigma_m},
    }
    return mission.parse(data, source="<test>")


def _assert_safe(plan: Plan) -> None:
    """No route enters a keep-out zone or leaves keep-in; every sortie fits its battery."""
    m = plan.mission
    usable = 1.0 - m.safety.battery_reserve
    for s in plan.sorties:
        line = shapely.LineString(s.path[:, :2])
        for zone in m.keep_out:
            assert not line.intersects(zone.geometry.buffer(-0.01)), f"sortie enters {zone.name}"
        assert line.difference(m.keep_in).length < 1e-6
        assert s.energy <= usable + 1e-9
        np.testing.assert_allclose(s.path[0, :2], m.pad_xy_m[s.drone])
        np.testing.assert_allclose(s.path[-1, :2], m.pad_xy_m[s.drone])


# -- the datum prior --------------------------------------------------------------------------


def test_a_datum_spreads_a_circular_normal_over_the_cells() -> None:
    m = _datum_mission(sigma_m=300.0, half_m=700.0, datum_m=(100.0, -50.0))
    grid = build_prior(m)
    assert grid is not None
    px, py = m.frame.to_local(
        m.spec.search.prior.datum.lon,  # type: ignore[union-attr]
        m.spec.search.prior.datum.lat,  # type: ignore[union-attr]
    )
    x0, y0, x1, y1 = shapely.bounds(m.searchable)
    inside = (ndtr((x1 - px) / 300) - ndtr((x0 - px) / 300)) * (
        ndtr((y1 - py) / 300) - ndtr((y0 - py) / 300)
    )
    # the square, drawn in lon/lat, is not quite its local bounding box
    assert grid.total == pytest.approx(inside, abs=5e-4)
    gx, gy = grid.centres_m()
    r2 = (gx - px) ** 2 + (gy - py) ** 2
    d = grid.density_per_m2
    # the density falls as exp(-r²/2σ²): compare two cells' ratio with the formula
    a, b = np.unravel_index(np.argmin(r2), r2.shape), np.unravel_index(np.argmax(r2), r2.shape)
    assert math.log(d[a] / d[b]) == pytest.approx((r2[b] - r2[a]) / (2 * 300.0**2), rel=0.02)


def test_a_keep_out_zone_takes_its_share_of_the_datum_out_of_the_map() -> None:
    hole = shapely.box(150, 150, 350, 350)
    with_hole = build_prior(_datum_mission(sigma_m=300.0, holes=(hole,)))
    without = build_prior(_datum_mission(sigma_m=300.0))
    assert with_hole is not None and without is not None
    in_hole = (ndtr(350 / 300) - ndtr(150 / 300)) ** 2
    assert without.total - with_hole.total == pytest.approx(in_hole, rel=0.02)


# -- the passes -------------------------------------------------------------------------------


def test_passes_are_nested_and_follow_the_density() -> None:
    grid = build_prior(_datum_mission(sigma_m=250.0))
    assert grid is not None
    c = width_per_swath()
    passes = plan_passes(grid, c, 0.95)
    regions = passes.regions
    assert len(regions) >= 3
    for small, big in itertools.pairwise(regions):
        # simplified staircases: nested up to a fraction of a cell
        assert small.difference(big.buffer(grid.cell_m / 2)).area < 1.0
        assert big.area > small.area
    # a denser cell never gets fewer passes than a sparser one
    live = grid.area_m2 > 0
    d, n = grid.density_per_m2[live], passes.count[live]
    order = np.argsort(-d)
    assert np.all(np.diff(n[order]) <= 0)
    assert np.all(np.diff(passes.pos) > 0)
    assert passes.pos[-1] >= 0.95 * grid.total
    assert passes.pos[-2] < 0.95 * grid.total
    # the passes are Stone's allocation to within a pass: POS at the effort they spend is close
    # to the optimum of that effort
    effort = passes.count * c * grid.area_m2
    best = optimal_effort(grid.poa, grid.area_m2, float(effort.sum()))
    assert passes.pos[-1] >= 0.97 * pos(grid.poa, best, grid.area_m2)


def test_each_cell_is_counted_for_the_passes_that_really_cross_it() -> None:
    # a sharp peak: the first passes are a cell or two, too small to fly alone (merged)
    grid = build_prior(_datum_mission(sigma_m=40.0, target_pos=0.95))
    assert grid is not None
    passes = plan_passes(grid, width_per_swath(), 0.95)
    gx, gy = grid.centres_m()
    inside = np.zeros(grid.shape, np.intp)
    for region in passes.regions:
        inside += shapely.contains_xy(region.buffer(1.0), gx, gy)
    live = grid.area_m2 > 0
    np.testing.assert_array_equal(passes.count[live], inside[live])


def test_a_flat_map_is_searched_in_whole_passes_until_the_target() -> None:
    grid = build_prior(_datum_mission(sigma_m=1e6))  # flat over the square
    assert grid is not None
    passes = plan_passes(grid, 0.7, 0.9)
    # every pass covers everything: POS = total · (1 − e^(−0.7 k)) ≥ 0.9 total from k = 4
    assert len(passes.regions) == 4
    assert np.all(passes.count[grid.area_m2 > 0] == 4)


# -- the plan ---------------------------------------------------------------------------------


def test_the_steered_plan_puts_its_effort_where_the_person_most_likely_is() -> None:
    hole = shapely.box(150, -350, 350, -150)
    steered = plan_mission(_datum_mission(holes=(hole,)))
    uniform = plan_mission(_datum_mission(holes=(hole,), allocation="uniform"))
    _assert_safe(steered)
    grid = build_prior(steered.mission)
    assert grid is not None
    z = plan_effort(steered, grid)
    z_uniform = plan_effort(uniform, grid)

    def share_of_optimum(effort: np.ndarray) -> float:
        best = optimal_effort(grid.poa, grid.area_m2, float(effort.sum()))
        return pos(grid.poa, effort, grid.area_m2) / pos(grid.poa, best, grid.area_m2)

    # the steered plan is close to Stone's optimum at its effort; the lawnmower is far from it
    assert share_of_optimum(z) >= 0.93
    assert share_of_optimum(z_uniform) < 0.85
    # and it reaches the target POS of the map (exponential detection, sweep width W)
    assert pos(grid.poa, z, grid.area_m2) >= 0.8 * grid.total - 0.02
    # effort per m² falls with the density: the core gets more passes than the rim
    live = grid.area_m2 > 0
    gx, gy = grid.centres_m()
    r = np.hypot(gx, gy)
    per_m2 = z / np.where(live, grid.area_m2, 1.0)
    assert per_m2[live & (r < 200)].mean() > 2 * per_m2[live & (r > 500)].mean()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sigma=st.floats(120.0, 600.0),
    dx=st.floats(-500.0, 500.0),
    dy=st.floats(-500.0, 500.0),
    holes=st.lists(
        st.tuples(st.floats(-550.0, 450.0), st.floats(-550.0, 450.0), st.floats(40.0, 150.0)),
        max_size=3,
    ),
)
def test_random_steered_plans_avoid_keep_out_and_fit_the_battery(
    sigma: float, dx: float, dy: float, holes: list[tuple[float, float, float]]
) -> None:
    zones = []
    for x, y, w in holes:
        box = shapely.box(x, y, x + w, y + w)
        # keep the launch site (origin) clear of the zones and their margin
        if box.distance(shapely.Point(0, 0)) > 80 and all(box.distance(z) > 30 for z in zones):
            zones.append(box)
    m = _datum_mission(sigma_m=sigma, datum_m=(dx, dy), holes=tuple(zones), target_pos=0.6)
    plan = plan_mission(m)
    _assert_safe(plan)
    grid = build_prior(m)
    assert grid is not None
    assert pos(grid.poa, plan_effort(plan, grid), grid.area_m2) >= 0.6 * grid.total - 0.03


# -- the Monte Carlo --------------------------------------------------------------------------


def test_persons_are_drawn_from_the_map_and_the_rest_of_the_world() -> None:
    m = _datum_mission(sigma_m=400.0, half_m=600.0, holes=(shapely.box(-400, 200, -200, 400),))
    grid = build_prior(m)
    assert grid is not None
    xy = bench.sample_persons(grid, m.searchable, 4000, np.random.default_rng(5))
    nowhere = np.isnan(xy[:, 0])
    p_out = 1.0 - grid.total
    assert nowhere.mean() == pytest.approx(p_out, abs=4 * math.sqrt(p_out * (1 - p_out) / 4000))
    placed = xy[~nowhere]
    assert shapely.contains_xy(m.searchable, placed[:, 0], placed[:, 1]).all()
    # each axis of a normal cut to ±1.5σ has standard deviation 0.74σ
    assert placed.std(axis=0) == pytest.approx([0.74 * 400] * 2, rel=0.08)


def test_time_statistics_count_a_miss_as_the_horizon() -> None:
    found = np.array([60.0, 120.0, 600.0, np.inf])
    s = bench._time_stats(found, horizon_s=300.0)
    assert s["found"] == 0.5
    assert s["mean_found_s"] == 90.0 and s["median_found_s"] == 90.0
    assert s["restricted_mean_s"] == (60 + 120 + 300 + 300) / 4


def test_a_flight_finds_persons_where_it_sweeps_and_counts_its_effort() -> None:
    m = _datum_mission(sigma_m=150.0, half_m=300.0, drones=2, allocation="uniform")
    plan = plan_mission(m)
    grid = build_prior(m)
    assert grid is not None
    persons = bench.sample_persons(grid, m.searchable, 40, np.random.default_rng(2))
    persons[0] = np.nan  # one somewhere else: never found
    flight = bench.fly(plan, persons, seed=3)
    assert flight.found_s[0] == np.inf
    hit = np.isfinite(flight.found_s)
    # one lawnmower pass at a swath spacing finds about 0.7 of them (the sensor's W / swath)
    assert 0.45 <= hit[1:].mean() <= 0.95
    assert np.all((flight.found_s[hit] > 0) & (flight.found_s[hit] <= flight.end_s))
    assert np.all(np.diff(flight.effort_air_m2) >= 0)
    assert np.all(flight.effort_sweep_m2 <= flight.effort_air_m2 + 1e-6)
    # the sweep effort is about W times the planned sweep length
    w = sweep_width_m(m)
    planned = sum(
        float(np.hypot(*np.diff(s.sweep_xy, axis=0).T).sum()) * w[s.drone] for s in plan.sorties
    )
    assert flight.effort_sweep_m2[-1] == pytest.approx(planned, rel=0.15)


def test_bench_search_names_an_unknown_scenario() -> None:
    r = CliRunner().invoke(app, ["bench", "search", "--only", "atlantis"])
    assert r.exit_code != 0
    assert "atlantis" in r.output and "circular-normal" in r.output


def test_the_bench_scenarios_are_valid_missions_with_their_launch_site_at_the_datum() -> None:
    for sc in bench.SCENARIOS.values():
        for allocation in bench.ALLOCATIONS:
            m = sc.mission(allocation)
            assert m.spec.search.allocation == allocation
            grid = build_prior(m)
            assert grid is not None and 0.5 < grid.total <= 1.0
            # the command post at the densest cell, as at a last known point
            j, i = np.unravel_index(np.argmax(grid.density_per_m2), grid.shape)
            gx, gy = grid.centres_m()
            site = m.site_xy_m[0]
            assert math.hypot(gx[j, i] - site[0], gy[j, i] - site[1]) < 2 * grid.cell_m
