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
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray

from skysweep.energy import PLAN_MARGIN, power_factor
from skysweep.errors import InfeasibleError
from skysweep.geo import FloatArray, rotation, sample_points
from skysweep.mission import Mission
from skysweep.plan.paths import PathFinder

#: Points the area is sampled with to measure bins and distances.
SAMPLES = 60_000
#: Bins per column along the lanes, at most (a bin is also at least two sample spacings long).
BINS_PER_COLUMN = 400
#: Lane directions tried besides the area's own axes, every this many degrees.
ANGLE_STEP_DEG = 30.0
#: Column widths tried, in pairs of lanes.
LANE_PAIRS = (1, 2)
#: Rounds of balancing the sites' shares against each other.
SITE_ROUNDS = 10
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
class _Costs:
    """Per-drone constants of the cost model (arrays over the whole fleet)."""

    launch_s: FloatArray
    speed_mps: FloatArray
    swath_m: FloatArray
    budget_cs: FloatArray
    """Usable battery per sortie, cruise-seconds."""
    vertical_s: FloatArray
    vertical_cs: FloatArray
    cruise_pf: FloatArray
    head_pf: FloatArray
    swap_s: FloatArray
    site: NDArray[np.intp]

    @classmethod
    def of(cls, mission: Mission, launch_s: FloatArray) -> _Costs:
        fleet = mission.fleet
        v = fleet.speed_mps
        wind = float(np.hypot(*mission.wind_vector_mps))
        vertical_s = mission.altitude_m / fleet.climb_mps
        return cls(
            launch_s=np.asarray(launch_s, float),
            speed_mps=v,
            swath_m=fleet.swath_m,
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
class _Samples:
    """The area as points, each standing for ``cell_m2``, with every site's distance to them."""

    xy: FloatArray
    cell_m2: float
    dist: FloatArray  # (S, N) flyable distance from each site, metres


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


def allocate(mission: Mission, launch_s: FloatArray, finder: PathFinder) -> Allocation:
    """Stretches for every drone that finish the area soonest (see the module docstring)."""
    costs = _Costs.of(mission, launch_s)
    samples = _sample(mission, finder)
    n_sites = len(mission.sites)
    ref_swath = float(np.median(costs.swath_m))

    def plan_sites(cols: _Columns, owner: NDArray[np.intp]) -> list[_SitePlan]:
        return [_site_plan(mission, samples, cols, owner, s, costs) for s in range(n_sites)]

    # Pick the lane direction and column width with the sites unbalanced, then balance them.
    weights = np.zeros(n_sites)
    owner = _owner(samples, weights)
    best: tuple[float, _Columns, NDArray[np.intp], list[_SitePlan]] | None = None
    for theta in _candidate_angles(mission.searchable):
        for pairs in LANE_PAIRS:
            cols = _columns(mission, samples, theta, 2 * pairs * ref_swath * (1.0 - 1e-6))
            plans = plan_sites(cols, owner)
            t = max(p[0] for p in plans)
            if best is None or t < best[0]:
                best = (t, cols, owner, plans)
    assert best is not None
    cols = best[1]
    plans = best[3]
    speed = float(np.mean(costs.speed_mps))
    for _ in range(SITE_ROUNDS if n_sites > 1 else 0):
        deadlines = np.array([p[0] for p in plans])
        if np.ptp(deadlines) < 2 * DEADLINE_TOL_S:
            break
        # a site that finishes late gives points away: its distances look longer
        weights = weights + 0.5 * (deadlines - deadlines.mean()) * speed
        owner = _owner(samples, weights)
        plans = plan_sites(cols, owner)
        if max(p[0] for p in plans) < best[0]:
            best = (max(p[0] for p in plans), cols, owner, plans)
    best_t, cols, owner, plans = best
    stretches: list[Stretch] = []
    for s, (_, chains, taken) in enumerate(plans):
        # everything no other site owns: seams at the edge go to both, never to neither
        mine = (
            shapely.difference(mission.searchable, _owned_region(samples, owner != s))
            if n_sites > 1
            else mission.searchable
        )
        for drone, sortie, c, a, f, t in taken:
            cell = shapely.intersection(_bins_polygon(cols, chains[c], a, f), mine)
            stretches.append(Stretch(drone, sortie, cell, t))
    return Allocation(cols.theta, cols.width, best_t, tuple(stretches))


def _candidate_angles(region: shapely.Geometry) -> list[float]:
    """Every ANGLE_STEP_DEG over a half turn, and the axes of the area's bounding rectangle."""
    angles = [float(a) for a in np.deg2rad(np.arange(0.0, 180.0, ANGLE_STEP_DEG))]
    rect = np.asarray(shapely.minimum_rotated_rectangle(region).exterior.coords)
    if len(rect) >= 4:
        for e in (rect[1] - rect[0], rect[2] - rect[1]):
            angles.append(float(np.arctan2(e[1], e[0])) % np.pi)
    return angles


def _columns(mission: Mission, samples: _Samples, theta: float, width: float) -> _Columns:
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


def _sample(mission: Mission, finder: PathFinder) -> _Samples:
    xy, cell = sample_points(mission.searchable, SAMPLES)
    dist = np.empty((len(mission.sites), len(xy)))
    for s, site in enumerate(mission.site_xy_m):
        straight = np.hypot(*(xy - site).T)
        flyable = finder.distances_from(site, xy)
        # points in a keep-out's margin cannot be flown to, but their lanes pass beside them
        dist[s] = np.where(np.isfinite(flyable), flyable, straight)
    return _Samples(xy, cell, dist)


def _owned_region(samples: _Samples, mine: NDArray[np.bool_]) -> shapely.Geometry:
    """The sample-spacing squares around the samples marked ``mine``."""
    h = 0.5 * np.sqrt(samples.cell_m2)
    x, y = samples.xy[mine].T
    return shapely.coverage_union_all(shapely.box(x - h, y - h, x + h, y + h))


def _owner(samples: _Samples, weights: FloatArray) -> NDArray[np.intp]:
    return np.argmin(samples.dist + weights[:, None], axis=0)


def _site_drones(costs: _Costs, site: int) -> list[int]:
    members = np.flatnonzero(costs.site == site)
    return [int(i) for i in members[np.argsort(costs.launch_s[members], kind="stable")]]


def _site_plan(
    mission: Mission,
    samples: _Samples,
    cols: _Columns,
    owner: NDArray[np.intp],
    site: int,
    costs: _Costs,
) -> _SitePlan:
    """A site's least deadline, its chains, and its stretches at that deadline."""
    drones = _site_drones(costs, site)
    mine = owner == site
    if not mine.any():
        return 0.0, [], []
    if not drones:
        raise InfeasibleError(f"{mission.sites[site].name}: part of the area needs its drones")
    chains = _chains(mission, samples, cols, mine, site, float(costs.swath_m[drones].min()))
    area = float(mine.sum() * samples.cell_m2)
    rate = float(np.sum(costs.speed_mps[drones] * costs.swath_m[drones]))
    far = max(max(c.dist) for c in chains)
    v = float(costs.speed_mps[drones].min())
    lo = 0.0
    hi = float(costs.launch_s[drones].max() + area / rate + 2 * far / v + costs.vertical_s.max())
    for _ in range(40):
        taken = _greedy(chains, drones, costs, hi)
        if taken is not None:
            break
        lo, hi = hi, hi * 2
    else:
        raise InfeasibleError(_beyond_battery(far, drones, costs))
    while hi - lo > DEADLINE_TOL_S:
        mid = 0.5 * (lo + hi)
        attempt = _greedy(chains, drones, costs, mid)
        if attempt is None:
            lo = mid
        else:
            hi, taken = mid, attempt
    return hi, chains, taken


def _chains(
    mission: Mission,
    samples: _Samples,
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


def _beyond_battery(far_m: float, drones: list[int], costs: _Costs) -> str:
    i = max(drones, key=lambda k: costs.budget_cs[k] * costs.speed_mps[k])
    need = (
        costs.vertical_cs[i] + far_m * (costs.cruise_pf[i] + costs.head_pf[i]) / costs.speed_mps[i]
    )
    return (
        f"part of the area is {far_m:,.0f} m from its launch site: a round trip there needs "
        f"{need / costs.budget_cs[i]:.0%} of the usable battery of the longest-range drone "
        "there, so no sortie can reach it"
    )


class _Drone:
    """A drone's state while the greedy hands out stretches."""

    def __init__(self, i: int, costs: _Costs, deadline: float) -> None:
        self.i = i
        self.v = float(costs.speed_mps[i])
        self.swath = float(costs.swath_m[i])
        self.budget = float(costs.budget_cs[i])
        self.vert_s = float(costs.vertical_s[i])
        self.vert_e = float(costs.vertical_cs[i])
        self.pf = float(costs.cruise_pf[i])
        self.head = float(costs.head_pf[i])
        self.swap = float(costs.swap_s[i])
        self.rem = deadline - float(costs.launch_s[i])  # time left, the way home counted
        self.sortie = 0  # sorties begun
        self.airborne = False
        self.used = 0.0  # battery of the sortie in flight, the way home counted
        self.x = self.y = self.d = 0.0  # where it is in the air, and how far from home

    def cost(self, x: float, y: float, d: float, sweep: float) -> tuple[float, float]:
        """(time, battery) it adds to fly to (x, y), ``d`` metres from home, sweep ``sweep``
        metres and be back there: from the pad on a new sortie, else from where it is."""
        if not self.airborne:
            t = self.vert_s + (2 * d + sweep) / self.v
            return t, self.vert_e + ((d + sweep) * self.pf + d * self.head) / self.v
        hop = ((x - self.x) ** 2 + (y - self.y) ** 2) ** 0.5
        t = (hop + sweep + d - self.d) / self.v
        return t, self.used + ((hop + sweep) * self.pf + (d - self.d) * self.head) / self.v

    def fits(self, x: float, y: float, d: float, sweep: float) -> bool:
        t, e = self.cost(x, y, d, sweep)
        return t <= self.rem and e <= self.budget


def _greedy(
    chains: list[_Chain],
    drones: list[int],
    costs: _Costs,
    deadline: float,
) -> _Taken | None:
    """Stretches (drone, sortie, chain, first bin, last bin, added time) that sweep every
    chain by ``deadline``, or None if the greedy cannot."""
    heap = [(-c.dist[-1], k, len(c.bins) - 1) for k, c in enumerate(chains)]
    heapq.heapify(heap)
    out: list[tuple[int, int, int, int, int, float]] = []
    p = 0
    dr = _Drone(drones[0], costs, deadline)
    while heap:
        _, k, f = heapq.heappop(heap)
        c = chains[k]
        cum, dist, xs, ys = c.cum_area, c.dist, c.x, c.y
        turn = c.turn_m

        while True:
            if dr.fits(xs[f], ys[f], dist[f], _sweep_m(cum, f, f, dr.swath, turn)):
                break
            if dr.airborne:  # land, swap the battery, try again from the pad
                dr.rem -= dr.swap
                dr.airborne, dr.used = False, 0.0
                if dr.fits(xs[f], ys[f], dist[f], _sweep_m(cum, f, f, dr.swath, turn)):
                    break
            p += 1
            if p == len(drones):
                return None
            dr = _Drone(drones[p], costs, deadline)
        if not dr.airborne:
            dr.sortie += 1
        lo, hi = 0, f
        while lo < hi:
            mid = (lo + hi) // 2
            if dr.fits(xs[mid], ys[mid], dist[mid], _sweep_m(cum, mid, f, dr.swath, turn)):
                hi = mid
            else:
                lo = mid + 1
        t, e = dr.cost(xs[lo], ys[lo], dist[lo], _sweep_m(cum, lo, f, dr.swath, turn))
        out.append((dr.i, dr.sortie, k, lo, f, t))
        dr.rem -= t
        dr.used = e
        dr.airborne = True
        dr.x, dr.y, dr.d = xs[lo], ys[lo], dist[lo]
        if lo > 0:
            heapq.heappush(heap, (-dist[lo - 1], k, lo - 1))
    return out


def _sweep_m(cum: list[float], a: int, f: int, swath: float, turn: float) -> float:
    """Flight metres of the lanes over bins ``a..f`` of a chain, with the turns."""
    return (cum[f] - (cum[a - 1] if a > 0 else 0.0)) / swath + turn


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
