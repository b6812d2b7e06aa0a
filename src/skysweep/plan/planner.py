"""Plan a mission: cells for every drone, lawnmower routes, sorties, figures of merit."""

from __future__ import annotations

import numpy as np
import shapely
from scipy.spatial import cKDTree

from skysweep.errors import InfeasibleError
from skysweep.geo import FloatArray, cell_squares, sample_points, smooth_share
from skysweep.mission import Mission
from skysweep.plan.allocate import (
    DEADLINE_TOL_S,
    Allocation,
    AreaSamples,
    SiteShares,
    allocate,
    next_ratio,
    sample_area,
    share_sites,
)
from skysweep.plan.lanes import sweep_route
from skysweep.plan.metrics import coverage_fraction, launch_slots, lower_bound_s
from skysweep.plan.model import Plan, PlanMetrics, Sortie
from skysweep.plan.paths import PathFinder
from skysweep.plan.snake import Split, split_again, split_site
from skysweep.plan.sorties import cut_sorties, join_routes, schedule_all

#: The split's estimate of every drone's battery is scaled by these in turn until every block
#: flies as one sortie (the estimate counts the way out straight, the sortie cutter around
#: obstacles and with its corners).
SPLIT_BUDGET_SCALES = (1.0, 0.98, 0.95)
#: From this many drones up, the lane columns are planned only when the split fails: planning
#: them too takes about as long again as the split, and on the suite's fleets of 120 to 2,500
#: the split landed first every time, by 16 % to 2.4 times.
COLUMNS_MAX_DRONES = 100
#: Ground no site's share covers is cut into tiles this many sample spacings wide, each piece
#: given to the site of the sample nearest it.
REST_TILE_SAMPLES = 8
#: Rounds of sharing the area among the sites, each correcting the sites' bounds by what
#: their splits take. On the suite a fourth round never landed first (the third did on
#: star-40, river-16 and speed-2500), and at 2,500 drones a round costs about a second.
SITE_ROUNDS = 3
#: The sites finish evenly enough, and are not shared again, once their finishes lie within
#: this share of the latest. speed-200's sites finish 4.3 % apart after its second round; a
#: third gains it 2 % but plans it in 0.53 s, over its 0.5 s bar. No other scenario of the
#: suite stops earlier at 4.5 % than at 3.5 %.
SITE_SPREAD = 0.045
#: Rounds of sharing between two sites: from the third, by false position on the finishes
#: measured (:func:`between_finishes`). The bounds' correction alone can swing a share from
#: one site to the other (star-40's hub: 6 %, 48 %, 33 %, then nothing).
TWO_SITE_ROUNDS = 8


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
    samples, _ = sample_points(mission.searchable)
    if not len(samples):
        raise InfeasibleError("the searchable area is too small to plan")
    finder = PathFinder.of(mission)
    _check_reachable(mission, finder, samples)
    launch = launch_slots(mission)
    area = sample_area(mission, finder) if len(mission.sites) > 1 else None
    # Each site's ground split along lawnmowers (skysweep.plan.snake), and the allocation's
    # lane columns: the plan that lands first is kept. The columns won on 2 of 40 random
    # missions (by under 1 %) and on the bundled demo (by 2.6 %), never in the suite's large
    # fleets: from COLUMNS_MAX_DRONES up they are planned only when the split fails. Their
    # estimate of their own finish runs early, never late: when even it is behind the split,
    # they are not routed.
    split = _split_sites(mission, launch, finder, area)
    if split is not None and len(mission.fleet) >= COLUMNS_MAX_DRONES:
        sorties, cells = split
    else:
        allocation = allocate(mission, launch, finder, area)
        if split is not None and _makespan(split[0], launch) <= allocation.deadline_s:
            sorties, cells = split
        else:
            sorties = _route_all(mission, allocation, launch, finder)
            cells = [[] for _ in range(len(mission.fleet))]
            for stretch in allocation.stretches:
                cells[stretch.drone].append(stretch.cell)
            if split is not None and _makespan(split[0], launch) < _makespan(sorties, launch):
                sorties, cells = split
    return assemble(mission, sorties, cells, launch, samples)


def _makespan(sorties: list[Sortie], launch: FloatArray) -> float:
    return max([float(launch.max()), *(s.land_s for s in sorties)])


def _split_sites(
    mission: Mission, launch: FloatArray, finder: PathFinder, area: AreaSamples | None
) -> tuple[list[Sortie], list[list[shapely.Geometry]]] | None:
    """Sorties and cells of every site's ground swept by lawnmowers split among its drones
    (:mod:`skysweep.plan.snake`); None if a site's split fails. ``area``: the area's samples
    (:func:`sample_area`), for several sites.

    The sites share the area on a bound of each one's finish (:func:`share_sites`); the
    split's estimates then correct each site's bound by the factor its real plan takes longer
    (its shape, its transit, its batteries), and the area is shared again, a few rounds."""
    n_sites = len(mission.sites)
    if n_sites == 1:
        splits = _split_grounds(mission, [mission.searchable], launch, finder)
        return None if splits is None else _fly_sites(mission, splits, launch, finder)
    assert area is not None, "several sites are shared on the area's samples"
    shares = share_sites(mission, launch, area)
    best: tuple[float, list[list[Split]]] | None = None
    ratio = best_ratio = np.ones(n_sites)
    angles: list[list[float] | None] = [None] * n_sites
    staffed = np.flatnonzero(np.bincount(mission.fleet.site, minlength=n_sites) > 0)
    two = len(staffed) == 2
    # two sites: (the first's weight less the second's, m; its finish less the second's, s)
    seen: list[tuple[float, float]] = []
    rounds = TWO_SITE_ROUNDS if two else SITE_ROUNDS
    for round_ in range(rounds):
        splits = _split_grounds(mission, _site_grounds(mission, shares), launch, finder, angles)
        if splits is None:
            # a share one site's drones cannot sweep (beyond their packs, or no direction
            # routes it): share again halfway back toward the best round's correction
            if best is None or two or round_ >= rounds - 1:
                break
            ratio = next_ratio(ratio, ratio, best_ratio, improved=False)
            back = share_sites(mission, launch, shares.samples, ratio)
            if np.array_equal(back.site, shares.site):
                break
            shares = back
            continue
        finish = np.array([max((sp.deadline_s for sp in site), default=0.0) for site in splits])
        improved = best is None or finish.max() < best[0]
        if improved:
            best, best_ratio = (float(finish.max()), splits), ratio
            # a share moves a little from round to round: later rounds try the directions its
            # lanes took in the best round, not every direction again
            angles = [
                [sp.angle_rad for sp in site if not sp.along_contours] or None for site in splits
            ]
        busy = (finish > 0) & (shares.bound_s > 0)
        even = max(2 * DEADLINE_TOL_S, SITE_SPREAD * float(finish.max()))
        if round_ == rounds - 1 or (busy.sum() >= 2 and np.ptp(finish[busy]) < even):
            break
        again = None
        if two:
            # a site left with nothing finishes first: a share ending on either side of the
            # even finish, and the weights between them come next
            a, b = staffed
            seen.append(
                (float(shares.weights_m[a] - shares.weights_m[b]), float(finish[a] - finish[b]))
            )
            diff = between_finishes(seen)
            if diff is not None:
                weights = np.zeros(n_sites)
                weights[a], weights[b] = diff / 2, -diff / 2
                again = share_sites(mission, launch, shares.samples, weights_m=weights)
        if again is None:
            # the bounds' correction has its SITE_ROUNDS; only false position goes on
            if busy.sum() < 2 or round_ >= SITE_ROUNDS - 1:
                break
            factor = np.where(busy, finish / np.maximum(shares.bound_s, 1e-9), ratio)
            ratio = next_ratio(ratio, factor, best_ratio, improved)
            again = share_sites(mission, launch, shares.samples, ratio)
        if np.array_equal(again.site, shares.site):
            break
        shares = again
    return None if best is None else _fly_sites(mission, best[1], launch, finder)


def between_finishes(seen: list[tuple[float, float]]) -> float | None:
    """The next difference of two sites' weights (metres) to share the area on, given rounds
    ``seen`` as (weight difference, finish difference, seconds): by false position between the
    two rounds nearest an even finish on either side of it (the finish difference falls as
    the first site's weight grows: it gets less); None until the rounds lie on both sides.

    The Illinois rule keeps false position from creeping up on the even finish from one side
    while the far round on the other is held: when the last rounds came ever nearer on one
    side, the other side's finish difference counts half for each of them after the first."""
    early = [r for r in seen if r[1] < 0]
    late = [r for r in seen if r[1] > 0]
    if not early or not late:
        return None
    (d0, g0), (d1, g1) = max(early, key=lambda r: r[1]), min(late, key=lambda r: r[1])
    streak = 0
    for (_, after), (_, before) in zip(seen[::-1], seen[-2::-1], strict=False):
        if after * before <= 0 or abs(after) >= abs(before):
            break
        streak += 1
    if seen[-1][1] < 0:
        g1 /= 2.0**streak
    else:
        g0 /= 2.0**streak
    return d0 - g0 * (d1 - d0) / (g1 - g0)


def _split_grounds(
    mission: Mission,
    grounds: list[shapely.Geometry],
    launch: FloatArray,
    finder: PathFinder,
    angles: list[list[float] | None] | None = None,
) -> list[list[Split]] | None:
    """Every site's splits of its ``grounds``, their lanes in the site's ``angles`` if given;
    None if one fails."""
    fleet = mission.fleet
    out: list[list[Split]] = []
    for s, ground in enumerate(grounds):
        drones = np.flatnonzero(fleet.site == s)
        if ground.is_empty or not len(drones):
            out.append([])
            continue
        hint = None if angles is None else angles[s]
        splits = split_site(mission, ground, drones, launch, finder, mission.site_xy_m[s], hint)
        if splits is None:
            return None
        out.append(splits)
    return out


def _fly_sites(
    mission: Mission, sites: list[list[Split]], launch: FloatArray, finder: PathFinder
) -> tuple[list[Sortie], list[list[shapely.Geometry]]] | None:
    """The sorties that fly every site's splits, and each drone's cells (its lanes' swept
    strips); None if a site's blocks cannot be flown."""
    fleet = mission.fleet
    sorties: list[Sortie] = []
    cells: list[list[shapely.Geometry]] = [[] for _ in range(len(fleet))]
    for s, splits in enumerate(sites):
        if not splits:
            continue
        site_xy = mission.site_xy_m[s]
        # a block the estimate fits in a battery but the sortie cutter does not (the way out
        # and in flown around obstacles, with its corners) costs a whole sortie more: split
        # again on a smaller battery, and keep the one that lands first
        kept: tuple[float, list[Split], dict[int, list[FloatArray]], list[Sortie]] | None = None
        for scale in SPLIT_BUDGET_SCALES:
            if scale != 1.0:
                again = [split_again(mission, sp, launch, finder, site_xy, scale) for sp in splits]
                if any(sp is None for sp in again):
                    break
                splits = [sp for sp in again if sp is not None]
            routes = {i: r for sp in splits for i, r in sp.drone_routes(finder).items()}
            flown, whole = _fly_routes(mission, routes, launch, finder)
            if flown is not None and (kept is None or _makespan(flown, launch) < kept[0]):
                kept = (_makespan(flown, launch), splits, routes, flown)
            if whole:
                break
        if kept is None:
            return None
        _, splits, routes, flown = kept
        sorties += flown
        ground = {i: sp.ground for sp in splits for i in sp.drones.tolist()}
        mine = list(routes)
        swept = shapely.buffer(
            [shapely.linestrings(np.vstack(routes[i])) for i in mine],
            fleet.track_spacing_m[mine] / 2,
        )
        for i, cell in zip(
            mine, shapely.intersection(swept, [ground[i] for i in mine]), strict=True
        ):
            cells[i].append(cell)
    return sorties, cells


def _fly_routes(
    mission: Mission, routes: dict[int, list[FloatArray]], launch: FloatArray, finder: PathFinder
) -> tuple[list[Sortie] | None, bool]:
    """The sorties that fly each drone's block ``routes`` in turn, with swaps between, and
    whether every block flew as one sortie. None if a block's start is beyond the drone's
    battery once the way there is flown around obstacles (the split's estimate counts it
    straight)."""
    pads = mission.pad_xy_m  # computed on every access: once here
    jobs = [(i, route) for i, blocks in routes.items() for route in blocks]
    drones = np.array([i for i, _ in jobs], np.intp)
    try:
        flights = cut_sorties(mission, drones, [r for _, r in jobs], finder, pads[drones])
    except InfeasibleError:
        return None, False
    out = schedule_all(mission, drones.tolist(), flights, launch)
    return out, all(len(legs) == 1 for legs in flights)


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


def _site_grounds(mission: Mission, shares: SiteShares) -> list[shapely.Geometry]:
    """Each site's ground: the squares of its samples, their staircase smoothed and grown a
    little so that ground at a seam goes to both sites; what no site's share covers goes, a
    tile at a time, to the site of the sample nearest it."""
    fleet = mission.fleet
    n_sites = len(mission.sites)
    xy, cell_m2 = shares.samples.xy, shares.samples.cell_m2
    grounds = []
    for s in range(n_sites):
        drones = np.flatnonzero(fleet.site == s)
        mine = shares.site == s
        if not mine.any() or not len(drones):
            grounds.append(shapely.Polygon())
            continue
        pad = float(fleet.track_spacing_m[drones].min()) / 2
        grounds.append(smooth_share(cell_squares(xy[mine], cell_m2), pad, mission.searchable))
    rest = shapely.difference(mission.searchable, shapely.union_all(grounds))
    parts = [p for p in shapely.get_parts(rest) if p.area >= 1.0]
    if not parts:
        return grounds
    # a sliver the shares leave (along the area's edge, say) can run past several of them:
    # cut into tiles, each piece going to its own neighbour, never all of it to the site
    # nearest one end (flood-2500: an 18 m strip 11 km long sent one site's drones 9 km out)
    side = REST_TILE_SAMPLES * float(np.sqrt(cell_m2))
    x0, y0, x1, y1 = shapely.total_bounds(parts)
    gx, gy = np.meshgrid(np.arange(x0, x1, side), np.arange(y0, y1, side))
    tiles = shapely.box(gx.ravel(), gy.ravel(), gx.ravel() + side, gy.ravel() + side)
    tree = shapely.STRtree(tiles)
    pieces = []
    for part in parts:
        near = tree.query(part)
        pieces += [
            p for p in shapely.get_parts(shapely.intersection(part, tiles[near])) if p.area >= 1.0
        ]
    # each piece goes where the shares sent the sample nearest it
    at = shapely.get_coordinates(shapely.point_on_surface(pieces))
    owner = shares.site[cKDTree(xy).query(at)[1]]
    for s in np.unique(owner).tolist():
        grounds[s] = shapely.union_all(
            [grounds[s], *(pieces[k] for k in np.flatnonzero(owner == s))]
        )
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
    keys = sorted(flights)
    drones = np.array([i for i, _ in keys], np.intp)
    joined = join_routes(finder, [flights[k] for k in keys])
    cut = cut_sorties(mission, drones, joined, finder, pads[drones])
    return schedule_all(mission, drones.tolist(), cut, launch)


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
