"""Share the searchable area among the drones as stretches of lane columns.

Every point of the area belongs to the launch site that reaches it soonest: the shortest flyable
distance plus a per-site offset that balances the sites' finish times. The area is cut, along a
lane direction θ, into *columns* ``W`` wide (an even number of swaths) and each column into *bins*
along the lanes. A site's bins in one column, on one side of the site, form a *chain* running
outward from the site.

A drone's work on a sortie is one or more *stretches*, each a run of bins of one chain. It flies
to the stretch's near end, sweeps it with lanes along the column, out and back, so that it ends
where it began, and flies home. From the pad, the time and battery a stretch ``[a, f]`` takes are

    t = climb + (2·d_a + A_af / s + W) / v
    e = climb + (d_a + A_af / s + W)·p / v + d_a·p_head / v

with ``d_a`` the flyable distance from the site to the near end, ``A_af`` the lane area of the
stretch (its area, two lanes at least), ``s`` the swath, ``W`` the column width (the turns) and
``p``, ``p_head`` the power factors of cruise and of a full head-wind. A drone already out pays
the hop from where it is instead of the climb and the way out. So a drone pays the round trip only
to the *near* end of its work: the shape that the physical lower bound rewards.

For a deadline ``T`` the allocation is greedy: the chain whose frontier is farthest from its site
gets the site's earliest-launched drone with time left, which takes as much of the chain as its
time and battery allow, from the frontier inward. A drone with time left after a stretch flies on
to the next-farthest frontier, or lands for a fresh battery when its battery is what ran out. The
smallest ``T`` that leaves no chain unswept is found by bisection, for a few lane directions and
column widths.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import shapely
from numba import njit
from numpy.typing import NDArray

from skysweep.energy import PLAN_MARGIN, power_factor
from skysweep.errors import InfeasibleError
from skysweep.geo import FloatArray, cell_squares, rotation, sample_points
from skysweep.mission import Mission
from skysweep.plan.deadline import least_deadline
from skysweep.plan.lanes import lane_directions
from skysweep.plan.metrics import finish_bound_s
from skysweep.plan.paths import PathFinder

#: Points the area is sampled with to measure bins and distances.
SAMPLES = 60_000
#: Bins per column along the lanes, at most (a bin is also at least two sample spacings long).
BINS_PER_COLUMN = 400
#: Lane directions tried besides the area's own axes, every this many degrees.
ANGLE_STEP_DEG = 30.0
#: Column widths tried, in pairs of lanes.
LANE_PAIRS = (1, 2)
#: Rounds of sharing the area among the sites again, with each site's bound corrected by what
#: its real plan took.
SITE_ROUNDS = 4
#: Rounds of sharing the area among the sites on their bounds, at most.
BALANCE_ROUNDS = 60
#: ... and stops when this many rounds in a row have not made the latest site earlier.
BALANCE_STALL_ROUNDS = 8
#: Distances at which a site's bound checks its area-versus-distance condition.
_BOUND_RADII = 64
#: Bisection on the deadline stops at this precision, seconds.
DEADLINE_TOL_S = 0.5


@dataclass(frozen=True)
class Stretch:
    """Work for one drone on one sortie: a run of one column (local metres)."""

    drone: int
    sortie: int
    """The drone's sortie (from 1) that sweeps it; one sortie may sweep several stretches."""
    cell: shapely.Geometry
    predicted_s: float
    """Time this stretch adds to the drone's flying, at cruise speed."""


@dataclass(frozen=True)
class Allocation:
    """Every drone's stretches in the order it flies them, and the lanes' direction."""

    theta_rad: float
    """Lane direction, radians counter-clockwise from east."""
    column_m: float
    deadline_s: float
    """Predicted makespan, seconds from mission start."""
    stretches: tuple[Stretch, ...]


@dataclass(frozen=True)
class DroneCosts:
    """Per-drone constants of the planners' cost model (arrays over the whole fleet): the
    same in the lane columns here and in the split lawnmower (:mod:`skysweep.plan.snake`)."""

    launch_s: FloatArray
    speed_mps: FloatArray
    spacing_m: FloatArray
    """Track spacing, metres: the swath less the sidelap (the width each lane adds)."""
    budget_cs: FloatArray
    """Usable battery per sortie, cruise-seconds."""
    vertical_s: FloatArray
    vertical_cs: FloatArray
    cruise_pf: FloatArray
    head_pf: FloatArray
    swap_s: FloatArray
    site: NDArray[np.intp]

    @property
    def range_m(self) -> FloatArray:
        """How far from its pad each drone can fly and come back on one battery, against a
        full head-wind home, metres (no sweeping)."""
        return (
            (self.budget_cs - self.vertical_cs) * self.speed_mps / (self.cruise_pf + self.head_pf)
        )

    @classmethod
    def of(cls, mission: Mission, launch_s: FloatArray) -> DroneCosts:
        fleet = mission.fleet
        v = fleet.speed_mps
        wind = float(np.hypot(*mission.wind_vector_mps))
        vertical_s = mission.altitude_m / fleet.climb_mps
        return cls(
            launch_s=np.asarray(launch_s, float),
            speed_mps=v,
            spacing_m=fleet.track_spacing_m,
            budget_cs=(1.0 - mission.safety.battery_reserve - PLAN_MARGIN) * fleet.endurance_s,
            vertical_s=2.0 * vertical_s,
            vertical_cs=vertical_s
            * (power_factor(0.0, 1.0, fleet.climb_mps) + power_factor(0.0, 1.0)),
            # a cross-wind on average: the air speed is √(v² + w²)
            cruise_pf=power_factor(np.hypot(v, wind), v),
            head_pf=power_factor(v + wind, v),
            swap_s=fleet.swap_s,
            site=fleet.site,
        )


@dataclass(frozen=True)
class AreaSamples:
    """The area as points, each standing for ``cell_m2``, with every site's distance to them."""

    xy: FloatArray
    cell_m2: float
    dist: FloatArray  # (S, N) flyable distance from each site, metres
    order: NDArray[np.intp]  # (S, N) each site's samples, nearest first

    @cached_property
    def sorted_dist(self) -> FloatArray:
        """(S, N) each site's distances in ``order``, metres."""
        return np.take_along_axis(self.dist, self.order, axis=1)


@dataclass(frozen=True)
class _Columns:
    """The area in the lane frame (u along the lanes, w across): columns × bins."""

    theta: float
    width: float
    u0: float
    w0: float
    du: float
    column: NDArray[np.intp]  # (E,) each entry's column
    bin: NDArray[np.intp]  # (E,) each entry's bin
    site_u: FloatArray  # (S,)
    sample: NDArray[np.intp]  # (E,) the sample each entry is (part of)
    share: FloatArray  # (E,) the share of the sample's area in the entry's column


@dataclass(frozen=True)
class _Chain:
    """A site's bins of one column on one side of the site, outward."""

    column: int
    bins: NDArray[np.intp]
    cum_area: list[float]  # lane area of bins [0 .. k], m²
    dist: list[float]  # flyable distance from the site to each bin, metres
    x: list[float]  # bin centres, local metres
    y: list[float]
    turn_m: float


_Taken = list[tuple[int, int, int, int, int, float]]
_SitePlan = tuple[float, list[_Chain], _Taken]


@dataclass(frozen=True)
class SiteShares:
    """The searchable area shared among the launch sites, as samples."""

    samples: AreaSamples
    site: NDArray[np.intp]
    """(N,) each sample's site."""
    bound_s: FloatArray
    """(S,) each site's lower bound on its finish for its share (:func:`site_bound_s`),
    seconds from mission start; 0 for a site with no share."""
    weights_m: FloatArray
    """(S,) the metres added to each site's distances to share the samples (:func:`_owner`)."""


def share_sites(
    mission: Mission,
    launch_s: FloatArray,
    samples: AreaSamples,
    ratio: FloatArray | None = None,
    weights_m: FloatArray | None = None,
) -> SiteShares:
    """The area shared among the sites so that their bounds on their finish, each times its
    ``ratio`` (the factor by which its real plan takes longer, if known), are as equal as the
    distances let them be: a weighted nearest-site partition, every sample within reach of a
    site's drones there and back. Given ``weights_m``, the partition with those weights."""
    costs = DroneCosts.of(mission, launch_s)
    n_sites = len(mission.sites)
    reach = _reach_m(costs, n_sites)
    if weights_m is not None:
        weights = np.asarray(weights_m, float)
        owner = _owner(samples, weights, reach)
    else:
        scale = np.ones(n_sites) if ratio is None else np.asarray(ratio, float)
        owner, weights = _balance(samples, costs, reach, scale)
    return SiteShares(samples, owner, _site_bounds(samples, costs, owner), weights)


def next_ratio(
    ratio: FloatArray, factor: FloatArray, best_ratio: FloatArray, improved: bool
) -> FloatArray:
    """The factors to scale the bounds by in the next round of sharing, after a round shared
    on ``ratio`` measured each share's plan taking ``factor`` times its bound.

    If the round ``improved`` on the best so far (shared on ``best_ratio``), halfway in
    logarithm toward the factors measured; a share's finish jumps when its drones need one
    sortie more, and a full step overshoots. If not, halfway back toward the best: the finish
    is not smooth in the share, and the round stepped over a better one.
    """
    if improved:
        return np.sqrt(ratio * factor)
    return np.sqrt(ratio * best_ratio)


def allocate(
    mission: Mission,
    launch_s: FloatArray,
    finder: PathFinder,
    samples: AreaSamples | None = None,
) -> Allocation:
    """Stretches for every drone that finish the area soonest (see the module docstring);
    ``samples``: the area's (:func:`sample_area`), if already taken."""
    costs = DroneCosts.of(mission, launch_s)
    if samples is None:
        samples = sample_area(mission, finder)
    n_sites = len(mission.sites)
    # each site's columns fit its narrowest swath: a drone then flies an even number of lanes
    # that fills its column with little overlap (columns of the fleet's median swath made
    # 30 m drones fly four lanes over a 70 m column)
    site_swath = np.array(
        [
            float(costs.spacing_m[costs.site == s].min()) if np.any(costs.site == s) else 1.0
            for s in range(n_sites)
        ]
    )

    def plan_sites(cols: list[_Columns], owner: NDArray[np.intp]) -> list[_SitePlan]:
        return [_site_plan(mission, samples, cols[s], owner, s, costs) for s in range(n_sites)]

    # Share the area among the sites on a cheap bound of each site's finish time, pick the lane
    # direction and column width on that share, then correct the bound by what the sites' real
    # plans take and share again.
    reach = _reach_m(costs, n_sites)
    ratio = np.ones(n_sites)
    owner, _ = _balance(samples, costs, reach, ratio)
    best: tuple[float, list[_Columns], NDArray[np.intp], list[_SitePlan]] | None = None
    for theta in lane_directions(mission.searchable, ANGLE_STEP_DEG):
        for pairs in LANE_PAIRS:
            cols = [
                _columns(mission, samples, theta, 2 * pairs * w * (1.0 - 1e-6)) for w in site_swath
            ]
            plans = plan_sites(cols, owner)
            t = max(p[0] for p in plans)
            if best is None or t < best[0]:
                best = (t, cols, owner, plans)
    assert best is not None
    cols = best[1]
    plans = best[3]
    for _ in range(SITE_ROUNDS if n_sites > 1 else 0):
        deadlines = np.array([p[0] for p in plans])
        bounds = _site_bounds(samples, costs, owner)
        if np.ptp(deadlines[bounds > 0]) < 2 * DEADLINE_TOL_S:
            break
        # a site's plan takes longer than its bound by a factor of its own (its shape, its
        # transit); share again with the bounds scaled by it
        ratio = np.where(bounds > 0, deadlines / np.maximum(bounds, 1e-9), ratio)
        new_owner, _ = _balance(samples, costs, reach, ratio)
        if np.array_equal(new_owner, owner):
            break
        owner = new_owner
        plans = plan_sites(cols, owner)
        if max(p[0] for p in plans) < best[0]:
            best = (max(p[0] for p in plans), cols, owner, plans)
    best_t, cols, owner, plans = best
    stretches: list[Stretch] = []
    shapely.prepare(mission.searchable)
    for s, (_, chains, taken) in enumerate(plans):
        others = _others_in_bins(cols[s], owner, s)
        n_bins = int(cols[s].bin.max()) + 1
        for drone, sortie, c, a, f, t in taken:
            chain = chains[c]
            cell = shapely.intersection(_bins_polygon(cols[s], chain, a, f), mission.searchable)
            # the squares of other sites' samples in these bins are theirs: seams at the edge
            # go to both sites, never to neither
            keys = chain.column * n_bins + np.asarray(chain.bins[a : f + 1], np.int64)
            theirs = [others[k] for k in keys.tolist() if k in others]
            if theirs:
                cell = shapely.difference(cell, _owned_region(samples, np.concatenate(theirs)))
            stretches.append(Stretch(drone, sortie, cell, t))
    return Allocation(cols[0].theta, cols[0].width, best_t, tuple(stretches))


def _columns(mission: Mission, samples: AreaSamples, theta: float, width: float) -> _Columns:
    to_lane = rotation(-theta)
    uw = samples.xy @ to_lane.T
    rotated = shapely.transform(mission.searchable, lambda xy: xy @ to_lane.T)
    u0, w0, u1, _ = rotated.bounds
    du = max(2.0 * np.sqrt(samples.cell_m2), (u1 - u0) / BINS_PER_COLUMN)
    # A sample stands for the square around it, which may be wider than a column: it goes to
    # every column its square overlaps, with the overlapping share of its area, so that no
    # column between samples is left out.
    half = 0.5 * np.sqrt(samples.cell_m2)
    lo = (uw[:, 1] - half - w0) / width
    hi = (uw[:, 1] + half - w0) / width
    first = np.floor(lo).astype(np.intp)
    count = np.floor(hi).astype(np.intp) - first + 1
    sample = np.repeat(np.arange(len(uw)), count)
    column = np.repeat(first, count) + (
        np.arange(len(sample)) - np.repeat(np.cumsum(count) - count, count)
    )
    share = (np.minimum(hi[sample], column + 1) - np.maximum(lo[sample], column)) / (hi - lo)[
        sample
    ]
    keep = share > 1e-9
    sample, column, share = sample[keep], column[keep], share[keep]
    shift = int(column.min())
    column -= shift
    bins = ((uw[sample, 0] - u0) // du).astype(np.intp)
    site_u = (mission.site_xy_m @ to_lane.T)[:, 0]
    w0 = w0 + width * shift
    return _Columns(
        theta, width, float(u0), float(w0), float(du), column, bins, site_u, sample, share
    )


def sample_area(mission: Mission, finder: PathFinder) -> AreaSamples:
    """The searchable area as :data:`SAMPLES` points, with every site's flyable distance to
    them."""
    xy, cell = sample_points(mission.searchable, SAMPLES)
    dist = np.empty((len(mission.sites), len(xy)))
    for s, site in enumerate(mission.site_xy_m):
        straight = np.hypot(*(xy - site).T)
        flyable = finder.distances_from(site, xy)
        # points in a keep-out's margin cannot be flown to, but their lanes pass beside them
        dist[s] = np.where(np.isfinite(flyable), flyable, straight)
    return AreaSamples(xy, cell, dist, np.argsort(dist, axis=1, kind="stable"))


def _owned_region(samples: AreaSamples, which: NDArray[np.intp]) -> shapely.Geometry:
    """The sample-spacing squares around the samples ``which``."""
    return cell_squares(samples.xy[which], samples.cell_m2)


def _others_in_bins(cols: _Columns, owner: NDArray[np.intp], site: int) -> dict[int, NDArray]:
    """For each bin key (column × bins + bin) of ``cols``, the samples in it that other sites
    own."""
    theirs = owner[cols.sample] != site
    if not theirs.any():
        return {}
    n_bins = int(cols.bin.max()) + 1
    key = (cols.column * n_bins + cols.bin)[theirs].astype(np.int64)
    sample = cols.sample[theirs]
    order = np.argsort(key, kind="stable")
    key, sample = key[order], sample[order]
    uniq, first = np.unique(key, return_index=True)
    return dict(zip(uniq.tolist(), np.split(sample, first[1:]), strict=True))


def _owner(
    samples: AreaSamples, weights: FloatArray, reach_m: FloatArray | None = None
) -> NDArray[np.intp]:
    """The site each sample goes to: the nearest, distances shifted by the sites' weights,
    among the sites whose drones can fly there and back on one battery (any site if none)."""
    if reach_m is None:
        reach_m = np.full(len(weights), np.inf)
    return _owner_kernel(samples.dist, np.asarray(weights, float), np.asarray(reach_m, float))


@njit(cache=True)
def _owner_kernel(
    dist: FloatArray, weights: FloatArray, reach_m: FloatArray
) -> NDArray[np.intp]:  # pragma: no cover - compiled
    """:func:`_owner` on the (S, N) distances: the first site of least ``dist + weights``
    among those within ``reach_m``; among all sites where none is, and never a site with no
    reach (0) unless every site has none. Site 0 if every cost is infinite."""
    n_sites, n = dist.shape
    any_reach = False
    for s in range(n_sites):
        any_reach |= reach_m[s] > 0
    # site by site (rows of ``dist`` are contiguous)
    in_reach = np.zeros(n, np.bool_)
    for s in range(n_sites):
        for i in range(n):
            in_reach[i] |= dist[s, i] <= reach_m[s]
    out = np.zeros(n, np.intp)
    best = np.full(n, np.inf)
    for s in range(n_sites):
        if any_reach and reach_m[s] <= 0:
            continue
        for i in range(n):
            cost = dist[s, i] + weights[s]
            if cost < best[i] and not (in_reach[i] and dist[s, i] > reach_m[s]):
                best[i], out[i] = cost, s
    return out


def _reach_m(costs: DroneCosts, n_sites: int) -> FloatArray:
    """How far from each site its longest-ranged drone can fly, sweep a little and come back,
    metres (the round trip's range less a tenth, for the sweeping)."""
    out = np.zeros(n_sites)
    np.maximum.at(out, costs.site, 0.9 * costs.range_m)
    return out


def site_bound_s(
    dist_m: FloatArray, cell_m2: float, drones: NDArray[np.intp], costs: DroneCosts
) -> float:
    """A lower bound on when a site's ``drones`` finish sweeping the samples ``dist_m`` metres
    (flyable, in increasing order) from it: the smallest T with, for every r, the area beyond r
    at most Σ rate_i · max(0, T − launch_i − climb_i − 2r / v_i), as the mission's lower bound
    (:func:`skysweep.plan.metrics.lower_bound_s`), with the climb and the track spacing."""
    if not len(dist_m):
        return 0.0
    if not len(drones):
        return np.inf
    # the distances' quantiles (the samples are sorted)
    n = len(dist_m)
    radii = np.interp(np.linspace(0.0, n - 1.0, _BOUND_RADII), np.arange(n), dist_m)
    beyond = cell_m2 * (
        len(dist_m) - np.arange(_BOUND_RADII, dtype=float) * (len(dist_m) / _BOUND_RADII)
    )
    v = costs.speed_mps[drones]
    start = costs.launch_s[drones] + costs.vertical_s[drones]
    reach = start[None, :] + 2.0 * radii[:, None] / v[None, :]
    return finish_bound_s(reach, v * costs.spacing_m[drones], beyond)


def _site_bounds(samples: AreaSamples, costs: DroneCosts, owner: NDArray[np.intp]) -> FloatArray:
    """:func:`site_bound_s` of every site for the samples it owns (0 for a site owning none)."""
    n_sites = len(samples.dist)
    count = np.bincount(owner, minlength=n_sites)
    start = np.concatenate([[0], np.cumsum(count)])
    owned = _owned_sorted(samples.sorted_dist, samples.order, owner, start)
    return np.array(
        [
            site_bound_s(
                owned[start[s] : start[s + 1]],
                samples.cell_m2,
                np.flatnonzero(costs.site == s),
                costs,
            )
            for s in range(n_sites)
        ]
    )


@njit(cache=True)
def _owned_sorted(
    sorted_dist: FloatArray, order: NDArray[np.intp], owner: NDArray[np.intp], start: NDArray
) -> FloatArray:  # pragma: no cover - compiled
    """Each site's distances (``sorted_dist``, in its ``order``) to the samples ``owner``
    gives it, nearest first, site s's from ``start[s]`` on."""
    n_sites, n = sorted_dist.shape
    out = np.empty(n)
    for s in range(n_sites):
        k = start[s]
        for i in range(n):
            if owner[order[s, i]] == s:
                out[k] = sorted_dist[s, i]
                k += 1
    return out


def _balance(
    samples: AreaSamples, costs: DroneCosts, reach_m: FloatArray, ratio: FloatArray
) -> tuple[NDArray[np.intp], FloatArray]:
    """The sites' shares of the samples (each sample's site) that make the sites' bounds, each
    times its ``ratio``, as equal as the distances let them be, and the sites' weights.

    The shares are a weighted nearest-site partition (:func:`_owner`): a site that would finish
    late gets a larger weight, so its far samples go to its neighbours. The step is cut in half,
    back at the best shares so far, whenever the latest site gets later.
    """
    n_sites = len(samples.dist)
    weights = np.zeros(n_sites)
    owner = _owner(samples, weights, reach_m)
    if n_sites == 1:
        return owner, weights
    active = (np.bincount(costs.site, minlength=n_sites) > 0) & (reach_m > 0)
    speed = float(np.mean(costs.speed_mps))
    step = 0.5
    t = ratio * _site_bounds(samples, costs, owner)
    best_t, best_w, best_owner = t, weights, owner
    stalled = 0
    for _ in range(BALANCE_ROUNDS):
        if t[active].max() < best_t[active].max() - DEADLINE_TOL_S:
            best_t, best_w, best_owner = t, weights, owner
            stalled = 0
        elif _lighter(t, owner, best_t, best_owner, active):
            # the latest site's bound is on a plateau (set by its farthest samples, not by
            # how much it sweeps): the shares that leave it less to sweep are the better
            best_t, best_w, best_owner = t, weights, owner
        if stalled >= BALANCE_STALL_ROUNDS:
            # a sample more or less at a seam makes a site's bound jump by more than the
            # balance can still gain
            break
        if t[active].max() > best_t[active].max() + DEADLINE_TOL_S:
            # (on a plateau, as when a site's share is empty whichever way the step goes, the
            # step goes on from where it is: halving there would only creep back)
            step *= 0.5
            if step < 1e-3:
                break
            t, weights = best_t, best_w
        if np.ptp(t[active]) < 2 * DEADLINE_TOL_S:
            break
        stalled += 1
        # a round trip: a boundary moved by δ metres changes a site's time by about 2δ / v
        weights = weights + step * np.where(active, t - t[active].mean(), 0.0) * speed
        owner = _owner(samples, weights, reach_m)
        t = ratio * _site_bounds(samples, costs, owner)
    return best_owner, best_w


def _lighter(
    t: FloatArray,
    owner: NDArray[np.intp],
    best_t: FloatArray,
    best_owner: NDArray[np.intp],
    active: NDArray[np.bool_],
) -> bool:
    """Whether shares ``owner`` (bounds ``t``) have the same latest site as ``best_owner``,
    no later, with fewer samples to sweep."""
    late = int(np.argmax(np.where(active, t, -np.inf)))
    if late != int(np.argmax(np.where(active, best_t, -np.inf))) or t[late] > best_t[late]:
        return False
    return bool(np.count_nonzero(owner == late) < np.count_nonzero(best_owner == late))


def _site_drones(costs: DroneCosts, site: int) -> list[int]:
    members = np.flatnonzero(costs.site == site)
    return [int(i) for i in members[np.argsort(costs.launch_s[members], kind="stable")]]


def _site_plan(
    mission: Mission,
    samples: AreaSamples,
    cols: _Columns,
    owner: NDArray[np.intp],
    site: int,
    costs: DroneCosts,
) -> _SitePlan:
    """A site's least deadline, its chains, and its stretches at that deadline."""
    drones = _site_drones(costs, site)
    mine = owner == site
    if not mine.any():
        return 0.0, [], []
    if not drones:
        raise InfeasibleError(f"{mission.sites[site].name}: part of the area needs its drones")
    chains = _chains(mission, samples, cols, mine, site, float(costs.spacing_m[drones].min()))
    area = float(mine.sum() * samples.cell_m2)
    rate = float(np.sum(costs.speed_mps[drones] * costs.spacing_m[drones]))
    far = max(max(c.dist) for c in chains)
    v = float(costs.speed_mps[drones].min())
    hi = float(costs.launch_s[drones].max() + area / rate + 2 * far / v + costs.vertical_s.max())
    packed = _Packed.of(chains, drones, costs)
    found = least_deadline(lambda t: _greedy(packed, t), hi, DEADLINE_TOL_S)
    if found is None:
        raise InfeasibleError(_beyond_battery(far, drones, costs))
    hi, taken = found
    return hi, chains, taken


def _chains(
    mission: Mission,
    samples: AreaSamples,
    cols: _Columns,
    mine: NDArray[np.bool_],
    site: int,
    swath: float,
) -> list[_Chain]:
    sel = mine[cols.sample]
    col, bins = cols.column[sel], cols.bin[sel]
    n_bins = int(cols.bin.max()) + 1
    key = col * n_bins + bins
    uniq, inv = np.unique(key, return_inverse=True)
    area = np.bincount(inv, weights=cols.share[sel]) * samples.cell_m2
    near = np.full(len(uniq), np.inf)
    np.minimum.at(near, inv, samples.dist[site, cols.sample[sel]])
    u_col, u_bin = np.divmod(uniq, n_bins)
    centre_u = cols.u0 + cols.du * (u_bin + 0.5)
    centre_w = cols.w0 + cols.width * (u_col + 0.5)
    world = np.column_stack([centre_u, centre_w]) @ rotation(-cols.theta)
    # two lanes at least: a column narrower than two swaths is still flown out and back
    lane_area = np.maximum(area, 2.0 * swath * cols.du)
    su = cols.site_u[site]
    out = []
    starts = np.flatnonzero(np.r_[True, np.diff(u_col) != 0])
    ends = np.r_[starts[1:], len(uniq)]
    for a, b in zip(starts, ends, strict=True):
        idx = np.arange(a, b)
        up = centre_u[idx] >= su
        for half in (idx[up], idx[~up][::-1]):
            # a gap (a keep-out, a notch of the area) ends a chain: lanes never cross it, and
            # the bins beyond are reached by their own flyable distance
            cuts = np.flatnonzero(np.abs(np.diff(u_bin[half])) > 1) + 1
            for side in np.split(half, cuts):
                if not len(side):
                    continue
                out.append(
                    _Chain(
                        int(u_col[side[0]]),
                        u_bin[side],
                        np.cumsum(lane_area[side]).tolist(),
                        near[side].tolist(),
                        world[side, 0].tolist(),
                        world[side, 1].tolist(),
                        cols.width,
                    )
                )
    return out


def _beyond_battery(far_m: float, drones: list[int], costs: DroneCosts) -> str:
    i = max(drones, key=lambda k: costs.budget_cs[k] * costs.speed_mps[k])
    need = (
        costs.vertical_cs[i] + far_m * (costs.cruise_pf[i] + costs.head_pf[i]) / costs.speed_mps[i]
    )
    return (
        f"part of the area is {far_m:,.0f} m from its launch site: a round trip there needs "
        f"{need / costs.budget_cs[i]:.0%} of the usable battery of the longest-range drone "
        "there, so no sortie can reach it"
    )


@dataclass(frozen=True)
class _Packed:
    """A site's chains and drones as flat arrays, for the compiled greedy.

    Chain k's bins are ``[offset[k], offset[k + 1])`` of the bin arrays, outward from the site;
    drones are in launch order, with the per-drone constants of the cost model.
    """

    offset: NDArray[np.int64]
    cum_area: FloatArray
    dist: FloatArray
    x: FloatArray
    y: FloatArray
    turn_m: FloatArray  # (chains,)
    drones: NDArray[np.int64]
    drone_f: FloatArray
    """(drones, 9): speed, effective swath, budget, vertical time, vertical battery, cruise
    power factor, head-wind power factor, swap time, launch time."""

    @classmethod
    def of(cls, chains: list[_Chain], drones: list[int], costs: DroneCosts) -> _Packed:
        lengths = np.array([len(c.bins) for c in chains], np.int64)
        offset = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

        def flat(attr: str) -> FloatArray:
            return np.concatenate([np.asarray(getattr(c, attr), float) for c in chains])

        width = chains[0].turn_m if chains else 0.0
        d = np.asarray(drones, np.int64)
        swath = np.array([_effective_swath(float(costs.spacing_m[i]), width) for i in d])
        drone_f = np.column_stack(
            [
                costs.speed_mps[d],
                swath,
                costs.budget_cs[d],
                costs.vertical_s[d],
                costs.vertical_cs[d],
                costs.cruise_pf[d],
                costs.head_pf[d],
                costs.swap_s[d],
                costs.launch_s[d],
            ]
        ).astype(np.float64)
        return cls(
            offset,
            flat("cum_area"),
            flat("dist"),
            flat("x"),
            flat("y"),
            np.array([c.turn_m for c in chains], float),
            d,
            np.ascontiguousarray(drone_f),
        )


def _greedy(packed: _Packed, deadline: float) -> _Taken | None:
    """Stretches (drone, sortie, chain, first bin, last bin, added time) that sweep every
    chain by ``deadline``, or None if the greedy cannot (see the module docstring)."""
    rows = _greedy_kernel(
        packed.offset,
        packed.cum_area,
        packed.dist,
        packed.x,
        packed.y,
        packed.turn_m,
        packed.drone_f,
        deadline,
    )
    if rows is None:
        return None
    return [
        (int(packed.drones[int(p)]), int(sortie), int(k), int(a), int(f), float(t))
        for p, sortie, k, a, f, t in rows
    ]


@njit(cache=True, inline="always")
def _sweep_len(
    cum: FloatArray, base: int, a: int, f: int, swath: float, turn: float
) -> float:  # pragma: no cover - compiled
    """Flight metres of the lanes over bins ``a..f`` of the chain starting at ``base``."""
    before = cum[base + a - 1] if a > 0 else 0.0
    return (cum[base + f] - before) / swath + turn


@njit(cache=True, inline="always")
def _cost(
    airborne: bool,
    x: float,
    y: float,
    d: float,
    sweep: float,
    px: float,
    py: float,
    pd: float,
    used: float,
    f: FloatArray,
) -> tuple[float, float]:  # pragma: no cover - compiled
    """(time, battery) a drone with constants ``f`` (a row of ``drone_f``) adds to fly to
    (x, y), ``d`` metres from home, sweep ``sweep`` metres and be back there: from the pad on a
    new sortie, else from (px, py), ``pd`` from home, with ``used`` of its battery gone."""
    v, vert_s, vert_e, pf, head = f[0], f[3], f[4], f[5], f[6]
    if airborne:
        hop = math.sqrt((x - px) ** 2 + (y - py) ** 2)
        return (hop + sweep + d - pd) / v, used + ((hop + sweep) * pf + (d - pd) * head) / v
    return vert_s + (2 * d + sweep) / v, vert_e + ((d + sweep) * pf + d * head) / v


@njit(cache=True)
def _greedy_kernel(
    offset: NDArray[np.int64],
    cum: FloatArray,
    dist: FloatArray,
    xs: FloatArray,
    ys: FloatArray,
    turn_m: FloatArray,
    drone_f: FloatArray,
    deadline: float,
) -> list[tuple[int, int, int, int, int, float]] | None:  # pragma: no cover - compiled
    """The greedy, compiled: rows (drone position, sortie, chain, first, last, added time)."""
    n_chains = len(offset) - 1
    heap = [(-dist[offset[k + 1] - 1], k, offset[k + 1] - offset[k] - 1) for k in range(n_chains)]
    heapq.heapify(heap)
    out = [(0, 0, 0, 0, 0, 0.0)]
    out.pop()
    n_drones = len(drone_f)
    p = 0
    # the drone in hand: time left (the way home counted), battery of the sortie in flight,
    # where it is in the air and how far that is from home, sorties begun
    rem = deadline - drone_f[0, 8]
    used = 0.0
    airborne = False
    px = py = pd = 0.0
    sortie = 0
    while len(heap):
        _, k, f = heapq.heappop(heap)
        base = offset[k]
        turn = turn_m[k]
        while True:
            sw, budget = drone_f[p, 1], drone_f[p, 2]
            sweep = _sweep_len(cum, base, f, f, sw, turn)
            x, y, d = xs[base + f], ys[base + f], dist[base + f]
            if airborne:
                t, e = _cost(True, x, y, d, sweep, px, py, pd, used, drone_f[p])
                if t <= rem and e <= budget:
                    break
                # land, swap the battery, try again from the pad
                rem -= drone_f[p, 7]
                airborne = False
                used = 0.0
            t, e = _cost(False, x, y, d, sweep, px, py, pd, used, drone_f[p])
            if t <= rem and e <= budget:
                break
            p += 1
            if p == n_drones:
                return None
            rem = deadline - drone_f[p, 8]
            used = 0.0
            airborne = False
            sortie = 0
        if not airborne:
            sortie += 1
        sw, budget = drone_f[p, 1], drone_f[p, 2]
        # the farthest-in first bin this drone can still take, by bisection
        lo, hi = 0, f
        while True:
            mid = (lo + hi) // 2 if lo < hi else lo
            sweep = _sweep_len(cum, base, mid, f, sw, turn)
            x, y, d = xs[base + mid], ys[base + mid], dist[base + mid]
            t, e = _cost(airborne, x, y, d, sweep, px, py, pd, used, drone_f[p])
            if lo >= hi:
                break
            if t <= rem and e <= budget:
                hi = mid
            else:
                lo = mid + 1
        out.append((p, sortie, k, lo, f, t))
        rem -= t
        used = e
        airborne = True
        px, py, pd = xs[base + lo], ys[base + lo], dist[base + lo]
        if lo > 0:
            heapq.heappush(heap, (-dist[base + lo - 1], k, lo - 1))
    return out


def _effective_swath(swath_m: float, column_m: float) -> float:
    """The swath a drone sweeps a column ``column_m`` wide with: it flies an even number of
    lanes (out and back), as many as its swath needs, so a column is swept at width / lanes."""
    if column_m <= 0.0:
        return swath_m
    lanes = 2 * math.ceil(column_m / (2.0 * swath_m) - 1e-9)
    return column_m / lanes


def _bins_polygon(cols: _Columns, chain: _Chain, a: int, f: int) -> shapely.Geometry:
    """Bins ``a..f`` of ``chain`` as rectangles (local metres). A chain's end bins reach one
    bin further, over the bit of area at its end that no sample fell in."""
    bins = chain.bins
    last = len(bins) - 1
    step = int(np.sign(bins[last] - bins[0])) if last else 1
    extra = ([bins[0] - step] if a == 0 else []) + ([bins[last] + step] if f == last else [])
    ks = np.unique(np.r_[bins[a : f + 1], extra].astype(np.intp))
    breaks = np.flatnonzero(np.diff(ks) > 1)
    starts = ks[np.r_[0, breaks + 1]]
    ends = ks[np.r_[breaks, len(ks) - 1]]
    w_lo = cols.w0 + cols.width * chain.column
    boxes = shapely.box(
        cols.u0 + cols.du * starts, w_lo, cols.u0 + cols.du * (ends + 1), w_lo + cols.width
    )
    to_world = rotation(cols.theta)
    return shapely.transform(shapely.union_all(boxes), lambda xy: xy @ to_world.T)
