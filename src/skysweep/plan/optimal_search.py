"""Plan a search steered by the probability map: Stone's optimal allocation, flown in passes.

With the exponential detection function the optimal effort for a total ``E`` levels the
density of every cell it searches down to a threshold ``λ(E)`` (:mod:`skysweep.search.effort`).
As ``E`` grows ``λ`` falls and the searched region ``{d > λ}`` grows, and the optimal
allocations are nested: a search that always follows them is optimal at every moment, not just
at its end (Stone's *uniformly optimal* search).

A lawnmower pass with track spacing ``s`` adds coverage ``c = W / s`` (``W`` the sweep width)
to every cell it crosses. So the plan is a sequence of passes, pass ``j`` sweeping the region
where the prior density is above ``d_max · e^(−j c)``: after ``j`` passes every cell of density
``d`` has had ``⌊ln(d_max/d) / c⌋`` of them, which is the optimal coverage ``ln(d/λ)`` for
``λ = d_max · e^(−j c)``, to within one pass. The passes grow outward from the densest cells,
so a search with the launch site at the last known point starts close to home. In a cell the
effective track spacing is the swath over the number of passes it gets.

Each pass is split among the whole fleet by the area planner (:func:`allocate`, in proportion
to the drones' sweep rates, compact stretches each drone reaches soonest) and every drone flies
its share of pass 1, then of pass 2, and so on, cut into sorties that fit its battery. Passes
are added until the expected probability of success (exponential detection, cell by cell)
reaches ``search.prior.target_pos`` of the map's total POA.

Everything in the mission's local frame (metres) and seconds from mission start.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from skysweep.errors import InfeasibleError
from skysweep.geo import FloatArray, sample_points
from skysweep.mission import Mission
from skysweep.plan.allocate import allocate
from skysweep.plan.lanes import sweep_route
from skysweep.plan.metrics import launch_slots
from skysweep.plan.model import Plan
from skysweep.plan.paths import PathFinder
from skysweep.plan.patterns import split_track
from skysweep.plan.planner import assemble
from skysweep.plan.sorties import fly_many
from skysweep.search.prior import ProbabilityGrid, width_per_swath

#: Most passes a plan may have, whatever the target: a bound on the planning time.
MAX_PASSES = 40
#: A pass smaller than this share of the searchable area is merged into the next one: a
#: region a few cells wide split among the whole fleet gives each drone slivers.
MIN_PASS_SHARE = 0.01


@dataclass(frozen=True)
class Passes:
    """The passes of a search plan over a probability map: ``count`` (ny, nx) is how many of
    them cross each cell, ``regions[j]`` the cells of pass ``j`` (local metres), ``pos`` the
    expected probability of success after each pass (exponential detection)."""

    regions: tuple[shapely.Geometry, ...]
    count: np.ndarray
    pos: tuple[float, ...]


def plan_passes(
    grid: ProbabilityGrid,
    coverage_per_pass: float,
    target_pos: float,
    *,
    goal_pos: float | None = None,
) -> Passes:
    """The nested passes (see the module docstring) until the expected POS reaches
    ``target_pos`` × the map's total (or ``goal_pos``, if given), or :data:`MAX_PASSES`.

    ``coverage_per_pass``: ``W / s``, the coverage one pass adds to a cell it crosses.
    """
    live = (grid.poa > 0) & (grid.area_m2 > 0)
    if not live.any():
        raise InfeasibleError("the probability map has no searchable cell with a probability")
    ln_d = np.full(grid.shape, -np.inf)
    ln_d[live] = np.log(grid.poa[live] / grid.area_m2[live])
    top = float(ln_d[live].max())
    count = np.zeros(grid.shape, np.intp)
    regions: list[shapely.Geometry] = []
    pos: list[float] = []
    goal = target_pos * grid.total if goal_pos is None else goal_pos
    searchable_m2 = float(grid.area_m2.sum())
    j = 0
    while len(regions) < MAX_PASSES:
        j += 1
        cells = live & (ln_d > top - j * coverage_per_pass)
        if float(grid.area_m2[cells].sum()) < MIN_PASS_SHARE * searchable_m2 and not cells.all():
            bigger = live & (ln_d > top - (j + 1) * coverage_per_pass)
            if bigger.sum() > cells.sum():
                # a sliver: not flown on its own; the next, larger pass covers its cells (which
                # so get one pass fewer than the allocation would give them)
                continue
        count[cells] += 1
        regions.append(_cells_region(grid, cells))
        pod = -np.expm1(-coverage_per_pass * count)
        pos.append(float(np.sum(grid.poa * pod)))
        if pos[-1] >= goal:
            break
    return Passes(tuple(regions), count, tuple(pos))


def plan_optimal_search(mission: Mission, grid: ProbabilityGrid) -> Plan:
    """Plan ``mission`` as passes over ``grid`` (see the module docstring); raises
    :class:`InfeasibleError` if it cannot be flown."""
    spec = mission.spec.search.prior
    assert spec is not None
    fleet = mission.fleet
    finder = PathFinder.of(mission)
    passes = plan_passes(grid, width_per_swath(), spec.target_pos)
    launch = launch_slots(mission)
    pads = mission.pad_xy_m
    routes: list[list[FloatArray]] = [[] for _ in range(len(fleet))]
    cells: list[list[shapely.Geometry]] = [[] for _ in range(len(fleet))]
    for region in passes.regions:
        part = shapely.intersection(region, mission.searchable)
        if part.is_empty or part.area < 1.0:
            continue
        allocation = allocate(dataclasses.replace(mission, searchable=part), launch, finder)
        for stretch in allocation.stretches:
            i = stretch.drone
            route = sweep_route(
                stretch.cell, float(fleet.track_spacing_m[i]), finder, pads[i], allocation.theta_rad
            )
            if len(route):
                routes[i].append(route)
                cells[i].append(stretch.cell)
    jobs = [(i, routes[i], float(launch[i]), 1) for i in range(len(fleet))]
    sorties = [s for flown in fly_many(mission, jobs, finder, pads) for s in flown]
    if not sorties:
        raise InfeasibleError("the probability map leaves nothing to search")
    samples, _ = sample_points(mission.searchable)
    return assemble(mission, sorties, cells, launch, samples)


def _cells_region(grid: ProbabilityGrid, cells: np.ndarray) -> shapely.Geometry:
    """The union of the marked cells of ``grid`` (squares, local metres)."""
    j, i = np.nonzero(cells)
    c = grid.cell_m
    x, y = grid.x0_m + i * c, grid.y0_m + j * c
    boxes = shapely.box(x, y, x + c, y + c)
    # the squares share edges exactly: a coverage union is exact and much faster than union_all
    region = shapely.coverage_union_all(boxes)
    # staircase corners only make lanes and stretches ragged; a quarter cell changes nothing
    return shapely.simplify(region, c / 4.0)


def reallocate(
    plan: Plan,
    posterior: ProbabilityGrid,
    goal_pos: float,
    launched: Mapping[int, int],
    free_s: Mapping[int, float],
) -> Plan:
    """A new plan for the rest of the search, from the map's posterior: Stone's allocation of
    the effort still to spend, flown in passes as :func:`plan_optimal_search` does.

    Every sortie up to a drone's ``launched`` number (flown, or in the air now) is kept as it
    is. Each drone of ``free_s`` (the available ones: when each is on its pad with a fresh pack)
    gets a share of every pass after that, in fresh sorties; the others get nothing more.
    ``posterior``: the map after the search so far (each cell's probability of containment);
    passes are added until its expected POS reaches ``goal_pos``. Each pass is one lawnmower
    over its region at the narrowest swath, cut into consecutive portions as long as each
    drone is fast, given to the drones by a linear assignment on when each could reach each
    portion's start.
    """
    m = plan.mission
    fleet = m.fleet
    finder = PathFinder.of(m)
    pads = m.pad_xy_m
    kept = [s for s in plan.sorties if s.number <= launched.get(s.drone, 0)]
    drones = np.array(sorted(free_s), np.intp)
    if not len(drones):
        raise InfeasibleError("no drone is left to search")
    passes = plan_passes(posterior, width_per_swath(), 1.0, goal_pos=goal_pos)
    swath = float(fleet.track_spacing_m[drones].min())
    home = pads[drones].mean(axis=0)
    start = np.array([free_s[int(i)] for i in drones])
    routes: dict[int, list[FloatArray]] = {int(i): [] for i in drones}
    cells: list[list[shapely.Geometry]] = [[] for _ in range(len(fleet))]
    for region in passes.regions:
        part = shapely.intersection(region, m.searchable)
        if part.is_empty or part.area < 1.0:
            continue
        track = sweep_route(part, swath, finder, home)
        if len(track) < 2:
            continue
        for i, portion in _portions(track, drones, start, pads, finder, fleet.speed_mps):
            routes[i].append(portion)
            cells[i].append(shapely.LineString(portion).buffer(float(fleet.swath_m[i]) / 2))
    sorties = list(kept)
    jobs = [(i, rs, free_s[i], launched.get(i, 0) + 1) for i, rs in routes.items()]
    who = np.array(list(routes), np.intp)
    sorties += [s for flown in fly_many(m, jobs, finder, pads[who]) for s in flown]
    finish = max((s.land_s for s in sorties), default=0.0)
    metrics = dataclasses.replace(plan.metrics, sorties=len(sorties), makespan_s=finish)
    regions = tuple(
        shapely.union_all([plan.cells[i], *cells[i]]) if cells[i] else plan.cells[i]
        for i in range(len(fleet))
    )
    return Plan(m, tuple(sorted(sorties, key=lambda s: (s.drone, s.number))), regions, metrics)


def _portions(
    track: FloatArray,
    drones: NDArray[np.intp],
    start_s: FloatArray,
    pads: FloatArray,
    finder: PathFinder,
    speed_mps: FloatArray,
) -> list[tuple[int, FloatArray]]:
    """``track`` cut into one portion per drone, as long as the drone is fast, each given to
    the drone that could reach its start soonest overall (scipy's linear_sum_assignment on
    free time plus the flyable flight from the drone's pad)."""
    v = speed_mps[drones]
    portions = split_track(track, v)
    starts = np.array([p[0] for p in portions])
    reach = np.vstack([finder.distances_from(pads[i], starts) for i in drones])  # drone × portion
    cost = start_s[:, None] + np.where(np.isfinite(reach), reach, 1e9) / v[:, None]
    rows, cols = linear_sum_assignment(cost)
    # a portion is as long as the speed of the drone it was cut for: re-cut for the drones given
    order = np.empty(len(drones), np.intp)
    order[cols] = rows
    portions = split_track(track, v[order])
    return [(int(drones[order[k]]), portions[k]) for k in range(len(portions))]
