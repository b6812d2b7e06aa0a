"""Plan a mission: cells for every drone, lawnmower routes, sorties, figures of merit."""

from __future__ import annotations

import numpy as np
import shapely

from skysweep.errors import InfeasibleError
from skysweep.geo import FloatArray, sample_points
from skysweep.mission import Mission
from skysweep.plan.allocate import Allocation, allocate
from skysweep.plan.lanes import sweep_route
from skysweep.plan.metrics import coverage_fraction, launch_slots, lower_bound_s
from skysweep.plan.model import Plan, PlanMetrics, Sortie
from skysweep.plan.paths import PathFinder
from skysweep.plan.snake import split_site
from skysweep.plan.sorties import fly_routes


def plan_mission(mission: Mission) -> Plan:
    """Plan ``mission``: raises :class:`~skysweep.errors.InfeasibleError` if it cannot be flown."""
    if mission.spec.search.pattern is not None:
        from skysweep.plan.patterns import plan_pattern  # patterns builds on this module

        return plan_pattern(mission)
    if mission.spec.search.prior is not None and mission.spec.search.allocation == "optimal":
        # both build on this module's area planner
        from skysweep.plan.optimal_search import plan_optimal_search
        from skysweep.search.prior import build_prior

        grid = build_prior(mission)
        assert grid is not None
        return plan_optimal_search(mission, grid)
    fleet = mission.fleet
    samples, _ = sample_points(mission.searchable)
    if not len(samples):
        raise InfeasibleError("the searchable area is too small to plan")
    finder = PathFinder(mission.flyable)
    _check_reachable(mission, finder, samples)
    launch = launch_slots(mission)
    allocation = allocate(mission, launch, finder)
    cells: list[list[shapely.Geometry]] = [[] for _ in range(len(fleet))]
    for stretch in allocation.stretches:
        cells[stretch.drone].append(stretch.cell)
    # the same sites' ground split along one lawnmower each (skysweep.plan.snake), and the
    # allocation's lane columns: the plan that finishes first is kept. The columns' estimate of
    # their own finish has run early, never late, on the suite: when even it is behind the
    # split, the columns are not routed.
    snake = _split_sites(mission, cells, launch, finder)
    if snake is not None and _makespan(snake[0], launch) <= allocation.deadline_s:
        sorties, cells = snake
    else:
        sorties = _route_all(mission, allocation, launch, finder)
        if snake is not None and _makespan(snake[0], launch) < _makespan(sorties, launch):
            sorties, cells = snake
    return assemble(mission, sorties, cells, launch, samples)


def _makespan(sorties: list[Sortie], launch: FloatArray) -> float:
    return max([float(launch.max()), *(s.land_s for s in sorties)])


def _split_sites(
    mission: Mission,
    cells: list[list[shapely.Geometry]],
    launch: FloatArray,
    finder: PathFinder,
) -> tuple[list[Sortie], list[list[shapely.Geometry]]] | None:
    """Sorties and cells of every site's ground (its drones' ``cells``) swept by one lawnmower
    split among its drones (:mod:`skysweep.plan.snake`); None if a site's split fails."""
    fleet = mission.fleet
    pads = mission.pad_xy_m
    sorties: list[Sortie] = []
    out_cells: list[list[shapely.Geometry]] = [[] for _ in range(len(fleet))]
    for s, ground in enumerate(_site_grounds(mission, cells)):
        drones = np.flatnonzero(fleet.site == s)
        if ground.is_empty or not len(drones):
            continue
        site_xy = mission.site_xy_m[s]
        split = split_site(mission, ground, drones, launch, finder, site_xy)
        if split is None:
            return None
        for i, routes in split.drone_routes(finder).items():
            clock, number = float(launch[i]), 1
            for route in routes:
                try:
                    flown = fly_routes(mission, i, [route], finder, clock, number, pads[i])
                except InfeasibleError:
                    # the split's estimate of a sortie was short of what it needs: the
                    # column plan stands
                    return None
                sorties += flown
                clock = flown[-1].land_s + float(fleet.swap_s[i])
                number = flown[-1].number + 1
            swept = shapely.buffer(
                shapely.linestrings(np.vstack(routes)), float(fleet.track_spacing_m[i]) / 2
            )
            out_cells[i].append(shapely.intersection(swept, ground))
    return sorties, out_cells


def assemble(
    mission: Mission,
    sorties: list[Sortie],
    cells: list[list[shapely.Geometry]],
    launch: FloatArray,
    samples: FloatArray,
) -> Plan:
    """The plan of ``sorties`` with its figures of merit over the searchable area (``samples``
    stand for it); ``cells``: the pieces of area each drone was given; ``launch``: first
    take-off times."""
    fleet = mission.fleet
    finish = launch.copy()
    for s in sorties:
        finish[s.drone] = max(finish[s.drone], s.land_s)
    coverage, _ = coverage_fraction(
        samples, [(s.path[:, :2], fleet.swath_m[s.drone] / 2) for s in sorties]
    )
    metrics = PlanMetrics(
        drones=len(fleet),
        sorties=len(sorties),
        searchable_area_m2=float(mission.searchable.area),
        coverage_fraction=coverage,
        makespan_s=float(finish.max()),
        lower_bound_s=lower_bound_s(mission, samples, launch),
    )
    regions = tuple(shapely.union_all(c) if c else shapely.Polygon() for c in cells)
    return Plan(mission, tuple(sorties), regions, metrics)


def _site_grounds(mission: Mission, cells: list[list[shapely.Geometry]]) -> list[shapely.Geometry]:
    """Each site's ground: the searchable area its drones' ``cells`` cover, or the whole area
    for a single site. The sites' seams are staircases of the allocation's samples: smoothed,
    and grown a little so that ground at a seam goes to both sites; what no site's cells cover
    goes to the nearest site."""
    fleet = mission.fleet
    n_sites = len(mission.sites)
    if n_sites == 1:
        return [mission.searchable]
    grounds = []
    for s in range(n_sites):
        drones = np.flatnonzero(fleet.site == s)
        own = shapely.union_all([c for i in drones for c in cells[i]])
        if own.is_empty:
            grounds.append(own)
            continue
        pad = float(fleet.track_spacing_m[drones].min()) / 2
        smooth = shapely.make_valid(own.buffer(pad, join_style="mitre").simplify(pad / 2))
        grounds.append(shapely.intersection(smooth, mission.searchable))
    rest = shapely.difference(mission.searchable, shapely.union_all(grounds))
    manned = [s for s in range(n_sites) if np.any(fleet.site == s)]
    sites = shapely.points(mission.site_xy_m[manned])
    for part in shapely.get_parts(rest):
        if part.area < 1.0:
            continue
        nearest = manned[int(np.argmin(shapely.distance(sites, part)))]
        grounds[nearest] = shapely.union(grounds[nearest], part)
    return grounds


def _route_all(
    mission: Mission, allocation: Allocation, launch: FloatArray, finder: PathFinder
) -> list[Sortie]:
    """Sorties for every drone: each allocated sortie's stretches swept in order, joined by
    flyable hops, cut again to battery size if the estimate was short; swaps in between."""
    fleet = mission.fleet
    pads = mission.pad_xy_m
    flights: dict[tuple[int, int], list[FloatArray]] = {}
    for stretch in allocation.stretches:
        i = stretch.drone
        route = sweep_route(
            stretch.cell, float(fleet.track_spacing_m[i]), finder, pads[i], allocation.theta_rad
        )
        if len(route):
            flights.setdefault((i, stretch.sortie), []).append(route)
    sorties: list[Sortie] = []
    clock = launch.copy()
    number = np.zeros(len(fleet), int)
    for (i, _), routes in sorted(flights.items()):
        flown = fly_routes(mission, i, routes, finder, float(clock[i]), number[i] + 1, pads[i])
        if flown:
            sorties += flown
            number[i] = flown[-1].number
            clock[i] = flown[-1].land_s + float(fleet.swap_s[i])
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
