"""The fleet bound (skysweep.plan.fleet_bound): closed forms on simple fields, the physics it
adds to the mission's bound (own sites, climbs, batteries, wind), and that plans never beat it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from skysweep import mission as mission_mod
from skysweep.bench.plan_scenarios import Site, drones_entry, mission_data
from skysweep.energy import HOVER_POWER, power_factor
from skysweep.geo import sample_points
from skysweep.mission import Mission
from skysweep.plan import plan_mission
from skysweep.plan.allocate import sample_area
from skysweep.plan.fleet_bound import fleet_bound_s
from skysweep.plan.metrics import launch_slots, lower_bound_s
from skysweep.plan.paths import PathFinder

ORIGIN = (8.0, 47.0)
ALTITUDE_M = 60.0
CLIMB_MPS = 4.0
SPEED_MPS = 10.0
SWATH_M = 50.0
SWAP_S = 120.0


def _mission(
    area: shapely.Geometry,
    sites: list[Site],
    fleet: list[dict[str, object]],
    wind_mps: float = 0.0,
) -> Mission:
    data = mission_data("t", ORIGIN, area, sites, fleet, altitude_m=ALTITUDE_M, wind_mps=wind_mps)
    return mission_mod.parse(data, source="<test>")


def _quads(count: int, site: str, endurance_s: float = 100_000.0) -> dict[str, object]:
    return drones_entry("q", count, site, SPEED_MPS, SWATH_M, endurance_s, SWAP_S, CLIMB_MPS)


def _fleet_bound(m: Mission) -> float:
    return fleet_bound_s(m, sample_area(m, PathFinder.of(m)), launch_slots(m))


def _lower_bound(m: Mission) -> float:
    samples, _ = sample_points(m.searchable)
    return lower_bound_s(m, samples)


def _one_drone_by_hand(m: Mission) -> float:
    """The bound for one drone at one site, worked out independently of the flow: the max
    over distances r of the time to sweep the area beyond r (exact areas from shapely), each
    sortie flying out to half a swath short of r and back and climbing, with as many sorties
    as the pack needs and a swap between two."""
    (site,) = m.site_xy_m
    area = m.searchable
    d = area.distance(shapely.Point(site))
    far = max(math.dist(site, c) for c in area.exterior.coords)
    rate = SPEED_MPS * SWATH_M
    vertical_s = 2.0 * ALTITUDE_M / CLIMB_MPS
    vertical_cs = (
        ALTITUDE_M / CLIMB_MPS * float(power_factor(0.0, 1.0, CLIMB_MPS) + power_factor(0.0, 1.0))
    )
    wind = float(np.hypot(*m.wind_vector_mps))
    level_s = ((1.0 - m.safety.battery_reserve) * float(m.fleet.endurance_s[0]) - vertical_cs) / (
        1.0 + (1.0 - HOVER_POWER) * wind**2 / SPEED_MPS**2
    )
    worst = 0.0
    for r in np.linspace(d, far, 400):
        disc = shapely.Point(site).buffer(r, quad_segs=256)
        x = float(area.difference(disc).area) / rate
        if x <= 0.0:
            continue
        out_back_s = 2.0 * (r - SWATH_M / 2) / SPEED_MPS
        overhead = out_back_s + vertical_s
        sweep = level_s - out_back_s
        n = max(1.0, x / sweep)
        worst = max(worst, x + n * overhead + (n - 1.0) * SWAP_S)
    return worst


def test_a_strip_run_out_and_back_is_bound_by_its_far_end() -> None:
    # one lane's width: sweeping it is cheaper than flying out to its end and back
    m = _mission(shapely.box(0, 0, 2000, 40), [Site("a", (-100, 20), 1)], [_quads(1, "a")])
    (site,) = m.site_xy_m
    far = max(math.dist(site, c) for c in m.searchable.exterior.coords)
    expected = 2.0 * (far - SWATH_M / 2) / SPEED_MPS + 2.0 * ALTITUDE_M / CLIMB_MPS
    assert _fleet_bound(m) == pytest.approx(expected, abs=3.0)


@pytest.mark.parametrize(
    ("endurance_s", "wind_mps"),
    [(100_000.0, 0.0), (1000.0, 0.0), (1000.0, 6.0), (600.0, 3.0)],
    ids=["no battery limit", "three packs", "three packs in wind", "many packs"],
)
def test_one_drone_matches_the_bound_worked_out_by_hand(
    endurance_s: float, wind_mps: float
) -> None:
    m = _mission(
        shapely.box(0, 0, 1000, 1000),
        [Site("a", (-100, 500), 1)],
        [_quads(1, "a", endurance_s)],
        wind_mps,
    )
    # the flow runs on 4,000 samples of the area: about a sample's share of the area in error
    assert _fleet_bound(m) == pytest.approx(_one_drone_by_hand(m), rel=0.005)


def test_batteries_swaps_and_wind_only_ever_raise_it() -> None:
    area, sites = shapely.box(0, 0, 1000, 1000), [Site("a", (-100, 500), 1)]
    unlimited = _fleet_bound(_mission(area, sites, [_quads(2, "a")]))
    packs = _fleet_bound(_mission(area, sites, [_quads(2, "a", 900.0)]))
    windy = _fleet_bound(_mission(area, sites, [_quads(2, "a", 900.0)], wind_mps=6.0))
    assert _lower_bound(_mission(area, sites, [_quads(2, "a")])) < unlimited < packs < windy


def test_drones_fly_from_their_own_site() -> None:
    # one drone at a hut near the east end, ten at a road 4 km west: the mission's bound lets
    # the ten sweep the east end as if they had flown from the hut
    area = shapely.box(0, 0, 4000, 600)
    sites = [Site("hut", (3900, 300), 1), Site("road", (-100, 300), 5)]
    m = _mission(area, sites, [_quads(1, "hut"), _quads(10, "road")])
    bound, mission_bound = _fleet_bound(m), _lower_bound(m)
    assert bound > 1.15 * mission_bound
    plan = plan_mission(m)
    assert bound <= plan.metrics.makespan_s


def test_a_fleet_that_cannot_reach_the_area_has_no_finite_bound() -> None:
    # 600 s packs cannot fly 4 km out and back
    area = shapely.box(0, 0, 500, 500)
    m = _mission(area, [Site("a", (-4000, 250), 1)], [_quads(2, "a", 600.0)])
    assert _fleet_bound(m) == math.inf
