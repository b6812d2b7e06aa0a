"""Plan a mission: cells for every drone, lawnmower routes, sorties, figures of merit."""

from __future__ import annotations

import numpy as np
import shapely

from skysweep.errors import InfeasibleError
from skysweep.geo import FloatArray, sample_points
from skysweep.mission import Mission
from skysweep.plan.lanes import sweep_route
from skysweep.plan.metrics import coverage_fraction, launch_slots, lower_bound_s
from skysweep.plan.model import Plan, PlanMetrics, Sortie
from skysweep.plan.partition import partition
from skysweep.plan.paths import PathFinder
from skysweep.plan.sorties import Airframe, cut_sorties

#: Rounds of partition → routes → measured overhead → partition again.
REBALANCE_ROUNDS = 4


def plan_mission(mission: Mission) -> Plan:
    """Plan ``mission``: raises :class:`~skysweep.errors.InfeasibleError` if it cannot be flown."""
    fleet = mission.fleet
    samples, sample_area = sample_points(mission.searchable)
    if not len(samples):
        raise InfeasibleError("the searchable area is too small to plan")
    finder = PathFinder(mission.flyable)
    _check_reachable(mission, finder, samples)
    launch = launch_slots(mission)
    # The partition predicts each drone's finish with a simple model (sweep + a round trip to
    # its cell). What the model leaves out -- extra sorties, swaps, turns, detours -- is measured
    # on the real routes and fed back as a per-drone delay; the best of a few rounds is kept.
    delay = np.zeros(len(fleet))
    best: tuple[float, list[Sortie], tuple[shapely.Geometry, ...]] | None = None
    for _ in range(REBALANCE_ROUNDS):
        cells = partition(
            mission.searchable,
            samples,
            sample_area,
            mission.site_xy_m,
            fleet.site,
            fleet.sweep_rate_m2ps,
            fleet.speed_mps,
            launch + delay,
        )
        sorties = _route_all(mission, cells.regions, launch, finder)
        finish = launch.copy()
        for s in sorties:
            finish[s.drone] = max(finish[s.drone], s.land_s)
        makespan = float(finish.max())
        if best is None or makespan < best[0]:
            best = (makespan, sorties, cells.regions)
        # damped, so that cells do not swing between two extremes
        delay = np.maximum(0.0, delay + 0.7 * (finish - cells.predicted_finish_s))
    assert best is not None
    makespan, sorties, regions = best
    coverage, _ = coverage_fraction(
        samples, [(s.path[:, :2], fleet.swath_m[s.drone] / 2) for s in sorties]
    )
    metrics = PlanMetrics(
        drones=len(fleet),
        sorties=len(sorties),
        searchable_area_m2=float(mission.searchable.area),
        coverage_fraction=coverage,
        makespan_s=makespan,
        lower_bound_s=lower_bound_s(mission, samples, launch),
    )
    return Plan(mission, tuple(sorties), regions, metrics)


def _route_all(
    mission: Mission,
    regions: tuple[shapely.Geometry, ...],
    launch: FloatArray,
    finder: PathFinder,
) -> list[Sortie]:
    fleet = mission.fleet
    wind = mission.wind_vector_mps
    pads = mission.pad_xy_m
    sorties: list[Sortie] = []
    for i in range(len(fleet)):
        home = pads[i]
        route = sweep_route(regions[i], float(fleet.swath_m[i]), finder, home)
        frame = Airframe(
            fleet.ids[i],
            float(fleet.speed_mps[i]),
            float(fleet.endurance_s[i]),
            float(fleet.climb_mps[i]),
        )
        t = float(launch[i])
        legs = cut_sorties(
            route, home, mission.altitude_m, frame, wind, mission.safety.battery_reserve, finder
        )
        for n, leg in enumerate(legs, start=1):
            sorties.append(Sortie(i, n, t, leg.path, leg.legs, leg.duration_s, leg.energy))
            t += leg.duration_s + float(fleet.swap_s[i])
    return sorties


def _check_reachable(mission: Mission, finder: PathFinder, samples: FloatArray) -> None:
    """Fail early, naming the place, when part of the area cannot be reached from any site."""
    parts = shapely.get_parts(mission.flyable)
    site_pts = shapely.points(np.array([finder.inside(xy) for xy in mission.site_xy_m]))
    reachable = [p for p in parts if np.any(shapely.intersects(p.buffer(1.0), site_pts))]
    if len(reachable) == len(parts):
        return
    region = shapely.union_all(reachable).buffer(mission.safety.geofence_margin_m + 1.0)
    # only area out of sensor reach from every reachable region is a real problem
    reach = region.buffer(float(mission.fleet.swath_m.max()) / 2)
    cut_off = ~shapely.contains_xy(reach, samples[:, 0], samples[:, 1])
    if cut_off.any():
        x, y = samples[cut_off].mean(axis=0)
        lon, lat = mission.frame.to_lonlat(x, y)
        raise InfeasibleError(
            f"{cut_off.mean():.1%} of the searchable area (around lon {float(lon):.5f}, lat "
            f"{float(lat):.5f}) cannot be reached from any launch site without crossing a "
            "keep-out zone or leaving keep_in"
        )
