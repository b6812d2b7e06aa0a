"""Split one lawnmower over a site's ground among the site's drones.

The other way to share a site's ground (besides :mod:`skysweep.plan.allocate`'s lane columns):
one lawnmower sweeps the whole of it, lane after lane, and each drone, in launch order, takes
the next block of whole lanes that it can finish by a deadline ``T`` within its battery,
flying out to where its block starts and home from where it ends; with time left after a
battery swap it takes the next block too (the split of a single tour into k, as Frederickson,
Hecht and Kim's heuristic does). The smallest ``T`` that leaves no lane unswept is found by
bisection.

Two things keep a drone's trips short. A block may be flown *mirrored*, each band's lanes the
other way along the band, when that starts and ends it nearer the site (so a drone never
starts at the far side of the field because the drone before it ended there). And the ground
is cut across its lanes into *slabs* swept one after the other, so that where lanes are far
longer than a drone's share, the share is a compact block of short lanes rather than a piece
of one long lane. A few lane directions, slab counts and starts of the lawnmower are tried,
judged first on straight connectors and straight distances, then the best few again with the
connectors and distances around obstacles.

Judged again, a lawnmower's long lanes are cut into pieces (an eighth of a drone's share or of
a battery's sweep, whichever is less) that a block may end between: where a share is a few
long lanes, whole lanes leave some drones a lane more than the others. The greedy split does
not always gain by it, so blocks of pieces are kept only where they land before whole lanes.
A drone flies its block's pieces of a lane as the one lane.

Times and battery along the lawnmower are those of :mod:`skysweep.plan.sorties`: each leg at
cruise speed, the corners' slow-downs (:mod:`skysweep.kinematics`), the wind on every leg and
a full head-wind on the way home. The planner keeps this split or the lane columns, whichever
plan lands first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
import shapely
from numba import njit
from numpy.typing import NDArray

from skysweep.energy import power_factor
from skysweep.geo import FloatArray, cell_squares, sample_points, smooth_share
from skysweep.kinematics import corner_loss_s
from skysweep.mission import Mission
from skysweep.plan.allocate import DroneCosts, next_ratio, site_bound_s
from skysweep.plan.arms import arm_parts, long_axis
from skysweep.plan.contours import contour_routes
from skysweep.plan.deadline import least_deadline
from skysweep.plan.lanes import (
    MIN_PIECE_M,
    connect_lanes,
    connect_lanes_at,
    lane_directions,
    lane_orderings,
    lane_pieces,
    merge_touching,
)
from skysweep.plan.paths import PathFinder
from skysweep.plan.sorties import leg_energy

#: Lane directions tried besides the site's ground's own axes, every this many degrees.
ANGLE_STEP_DEG = 45.0
#: Slab counts tried, as multiples of the count that makes a drone's block about square
#: (besides one slab: whole lanes).
SLAB_FACTORS = (0.5, 1.0)
#: Candidates judged again with their connectors and distances around obstacles.
EXACT_CANDIDATES = 2
#: Where the roughly best split has drones flying several sorties, up to this many of those
#: within :data:`EXACT_SPREAD` of the best are judged exactly (the first round only: later
#: rounds try the directions that won): the exact judgement's lane pieces and its weighing of
#: every split re-rank them (ridge-30: the fifth best roughly landed 7 % before the best).
SEVERAL_EXACT = 8
#: ... as a factor of the roughly best's deadline.
EXACT_SPREAD = 1.2
#: Slabs at most.
MAX_SLABS = 64
#: Band numbers of one slab are offset by this much from the slab before's (slab = band //
#: BANDS_PER_SLAB).
BANDS_PER_SLAB = 1 << 20
#: Drones whose track spacings are within this factor of the narrowest share a lawnmower.
CLASS_SPREAD = 1.15
#: Rounds of sharing a site's ground among its classes of drones, each correcting the
#: classes' bounds by what their splits took.
CLASS_ROUNDS = 4
#: Points a site's ground is sampled with to share it among classes of drones.
RING_SAMPLES = 4000
#: For the exact judgement, lanes are cut into pieces a block may end between, each at most
#: a block's lane metres (a drone's even share, or what a battery sweeps) over this.
PIECES_PER_BLOCK = 8
#: The share of a pack the split's estimate keeps back for what it leaves out, so that a block
#: it fits in one battery flies as one sortie: the corners and the power in the wind of a way
#: out or home that bends round a keep-out, and the joins of a block flown mirrored. On ridge-30
#: these came to 0.2-0.6 % of a pack.
SPLIT_BATTERY_MARGIN = 0.005
#: Bisection on the deadline stops at this precision, seconds.
DEADLINE_TOL_S = 0.5
#: Contour lanes (:mod:`skysweep.plan.contours`) are tried over a ground whose lanes total
#: at most this many metres (area / spacing): about 5 km² at 50 m. Offsetting a larger ground
#: ring by ring, and splitting its thousands of ring segments, would cost more than the
#: planning time bars allow (speed-200: 41 s), and there the straight lawnmowers' turns and
#: trips are a small share of the flight.
CONTOUR_MAX_LANE_M = 100_000.0


_Lawnmower: TypeAlias = tuple[FloatArray, NDArray[np.intp]]
"""(2L, 2) lane ends in flying order, straight-joined; (L,) each lane's band (negative for a
lawnmower along contours, every lane a slab of its own)."""


_Route: TypeAlias = tuple[
    FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, NDArray[np.int64], FloatArray
]
"""The compiled split's lawnmower arrays: ``cum_t``, ``cum_e``, ``dist``, ``near``, ``out_pf``,
``band_ends``, ``mirror_m``, as :func:`_split_kernel` takes them."""


@dataclass(frozen=True)
class Split:
    """A site's lanes and each of its drones' blocks of them."""

    deadline_s: float
    """Predicted finish of the site's last drone, seconds from mission start."""
    lanes: FloatArray
    """(L, 2, 2) local metres: each lane's two ends, in the order the lawnmower flies them. A
    lane a block may end part way along is here as its pieces (:func:`cut_lanes`), end to
    end."""
    bands: NDArray[np.intp]
    """(L,) each lane's band: the lanes of one band lie end to end, cut apart by holes."""
    ground: shapely.Geometry
    """The ground the lanes sweep, local metres."""
    drones: NDArray[np.intp]
    """The fleet indices of the drones it is split among."""
    parts: tuple[tuple[int, int, int, bool], ...]
    """(drone, first lane, last lane, mirrored) of every sortie: the lanes are flown in order,
    or, if ``mirrored``, each band's lanes the other way along the band (so the sortie starts at
    the far end of its first band)."""
    lawnmowers: tuple[_Lawnmower, ...] = field(default=(), repr=False, compare=False)
    """Every lawnmower over the ground it was chosen among (to split it again)."""

    @property
    def along_contours(self) -> bool:
        """Whether the lanes are a ground's contours (:mod:`skysweep.plan.contours`), not
        straight lanes in one direction."""
        return bool(self.bands[0] < 0)

    @property
    def angle_rad(self) -> float:
        """The lanes' direction, radians from east in [0, π) (of the first lane only, for
        lanes along contours)."""
        d = self.lanes[0, 1] - self.lanes[0, 0]
        return float(np.arctan2(d[1], d[0])) % np.pi

    def drone_routes(self, finder: PathFinder) -> dict[int, list[FloatArray]]:
        """Each drone's sorties' sweep routes, joined around obstacles."""
        out: dict[int, list[FloatArray]] = {}
        for drone, a, b, mirrored in self.parts:
            block = self.lanes[a : b + 1]
            bands = self.bands[a : b + 1]
            if mirrored:
                cuts = np.flatnonzero(np.diff(bands)) + 1
                block = np.concatenate([g[::-1, ::-1] for g in np.split(block, cuts)])
            # a lane cut into pieces (:func:`cut_lanes`) is flown as one again
            route, _ = merge_touching(block.reshape(-1, 2), bands)
            route = connect_lanes(route, finder)
            # a contour's lanes touch end to start: one waypoint, not two
            keep = np.r_[True, np.any(np.diff(route, axis=0) != 0, axis=1)]
            out.setdefault(drone, []).append(route[keep])
        return out


def split_site(
    mission: Mission,
    ground: shapely.Geometry,
    drones: NDArray[np.intp],
    launch_s: FloatArray,
    finder: PathFinder,
    site_xy: FloatArray,
    angles: list[float] | None = None,
) -> list[Split] | None:
    """Splits of lawnmowers over ``ground`` among ``drones`` (fleet indices) flying from
    ``site_xy``: one lawnmower per class of track spacing (:func:`spacing_classes`), each over
    its ring of the ground (:func:`class_grounds`), the rings' radii corrected a few rounds by
    what the classes' splits take; None when no direction gives a route, or the drones cannot
    sweep it."""
    if ground.is_empty or not len(drones):
        return None
    best: list[Split] | None = None
    n_classes = len(spacing_classes(mission.fleet.track_spacing_m[drones]))
    ratio = best_ratio = np.ones(n_classes)
    # the ground's samples are the same every round: taken once
    samples = ring_samples(ground, finder, site_xy) if n_classes > 1 else None
    for _ in range(CLASS_ROUNDS):
        shares = class_grounds(mission, ground, drones, launch_s, finder, site_xy, ratio, samples)
        out = []
        for members, part, _bound in shares:
            if part.is_empty:
                continue
            found = _split_ground(mission, part, members, launch_s, finder, site_xy, angles=angles)
            if found is None:
                return best
            out.append(found)
        improved = bool(out) and (best is None or _finish(out) < _finish(best))
        if improved:
            best, best_ratio = out, ratio
        if len(shares) == 1 or not out:
            break
        # a class's plan takes longer than its bound by a factor of its own (batteries, the
        # ring's shape): share again with each bound scaled by it
        deadlines = np.array([sp.deadline_s for sp in out])
        bounds = np.array([b for _, part, b in shares if not part.is_empty])
        if len(deadlines) != len(shares) or np.ptp(deadlines) < 2 * DEADLINE_TOL_S:
            break
        factor = deadlines / np.maximum(bounds, 1e-9)
        ratio = next_ratio(ratio, factor, best_ratio, improved)
    return best


def split_again(
    mission: Mission,
    split: Split,
    launch_s: FloatArray,
    finder: PathFinder,
    site_xy: FloatArray,
    budget_scale: float,
) -> Split | None:
    """``split``'s ground split again among its drones with every drone's usable battery
    scaled by ``budget_scale`` in the estimate."""
    return _split_ground(
        mission,
        split.ground,
        split.drones,
        launch_s,
        finder,
        site_xy,
        budget_scale,
        split.lawnmowers or None,
    )


def _finish(splits: list[Split]) -> float:
    return max(sp.deadline_s for sp in splits)


def spacing_classes(spacing_m: FloatArray) -> list[NDArray[np.intp]]:
    """Indices of ``spacing_m`` grouped into classes whose track spacings are within
    :data:`CLASS_SPREAD` of the class's narrowest, narrowest class first. A class shares one
    lawnmower laid at its narrowest spacing."""
    order = np.argsort(spacing_m, kind="stable")
    out: list[list[int]] = []
    low = 0.0
    for i in order.tolist():
        if not out or spacing_m[i] > low * CLASS_SPREAD:
            out.append([])
            low = float(spacing_m[i])
        out[-1].append(i)
    return [np.array(c, np.intp) for c in out]


def class_grounds(
    mission: Mission,
    ground: shapely.Geometry,
    drones: NDArray[np.intp],
    launch_s: FloatArray,
    finder: PathFinder,
    site_xy: FloatArray,
    ratio: FloatArray | None = None,
    samples: tuple[FloatArray, float, FloatArray] | None = None,
) -> list[tuple[NDArray[np.intp], shapely.Geometry, float]]:
    """``ground`` shared among the spacing classes of a site's ``drones``: (fleet indices,
    ground, lower bound on the finish) per class, the classes ordered by range. Sweeping wide
    lanes with narrow ones wastes the wide drones' swath, so each class gets a lawnmower of its
    own. The classes take rings of flyable distance from the site, the longest-ranged class the
    farthest, with the rings' radii balancing the classes' lower bounds on their finish
    (:func:`skysweep.plan.allocate.site_bound_s`), each times its ``ratio`` if given.
    ``samples``: the ground's :func:`ring_samples`, if already taken."""
    costs = DroneCosts.of(mission, launch_s)
    classes = [drones[c] for c in spacing_classes(costs.spacing_m[drones])]
    if len(classes) == 1:
        return [(drones, ground, 0.0)]
    classes.sort(key=lambda c: float(costs.range_m[c].max()))
    scale = np.ones(len(classes)) if ratio is None else ratio
    xy, cell_m2, dist = ring_samples(ground, finder, site_xy) if samples is None else samples
    if not len(xy):
        return [(drones, ground, 0.0)]
    # peel the farthest ring off for the longest-ranged class, then the next, ...: each
    # ring's inner edge k (a count of the nearest samples) balances the class's bound against
    # that of all the classes nearer in
    edges = [len(dist)]
    for c in range(len(classes) - 1, 0, -1):
        rest = np.concatenate(classes[:c])
        top = edges[-1]
        lo, hi = 0, top
        while hi - lo > 1:
            k = (lo + hi) // 2
            near = scale[c - 1] * site_bound_s(dist[:k], cell_m2, rest, costs)
            far = scale[c] * site_bound_s(dist[k:top], cell_m2, classes[c], costs)
            if near < far:
                lo = k
            else:
                hi = k
        edges.append(hi)
    edges.append(0)
    edges.reverse()  # edges[c] .. edges[c + 1]: class c's samples
    pad = float(costs.spacing_m[drones].min()) / 2
    out = []
    inner = shapely.Polygon()
    for c, members in enumerate(classes):
        if c == len(classes) - 1:
            reach = ground
        else:
            reach = smooth_share(cell_squares(xy[: edges[c + 1]], cell_m2), pad, ground)
        bound = site_bound_s(dist[edges[c] : edges[c + 1]], cell_m2, members, costs)
        out.append((members, shapely.difference(reach, inner), bound))
        inner = shapely.union(inner, reach)
    return out


def ring_samples(
    ground: shapely.Geometry, finder: PathFinder, site_xy: FloatArray
) -> tuple[FloatArray, float, FloatArray]:
    """``ground`` as :data:`RING_SAMPLES` points, nearest the site first, the area each stands
    for, and their flyable distances from ``site_xy`` (straight where none), metres."""
    xy, cell_m2 = sample_points(ground, RING_SAMPLES)
    flyable = finder.distances_from(site_xy, xy)
    dist = np.where(np.isfinite(flyable), flyable, np.hypot(*(xy - site_xy).T))
    order = np.argsort(dist, kind="stable")
    return xy[order], cell_m2, dist[order]


def _split_ground(
    mission: Mission,
    ground: shapely.Geometry,
    drones: NDArray[np.intp],
    launch_s: FloatArray,
    finder: PathFinder,
    site_xy: FloatArray,
    budget_scale: float = 1.0,
    lawnmowers: tuple[_Lawnmower, ...] | None = None,
    angles: list[float] | None = None,
) -> Split | None:
    """The best split of a lawnmower over ``ground`` among ``drones`` (fleet indices) flying
    from ``site_xy``, laid at their narrowest track spacing; None when no direction gives a
    route, or the drones cannot sweep it. ``lawnmowers``: the candidates, if already laid."""
    if lawnmowers is None:
        spacing = float(mission.fleet.track_spacing_m[drones].min())
        lawnmowers = _lawnmowers(ground, spacing, len(drones), finder, site_xy, angles)
    site = _Drones.of(mission, drones, launch_s, budget_scale)
    wind = mission.wind_vector_mps
    # every candidate is first judged on straight connectors and straight distances (cheap);
    # the few best are then joined around obstacles and judged again
    rough: list[tuple[float, int, FloatArray, NDArray[np.intp], bool]] = []
    for raw, bands in lawnmowers:
        found = _split_route(raw, bands, ground, site, wind, None, site_xy, lawnmowers)
        if found is not None:
            several = _several_sorties(list(found.parts))
            rough.append((found.deadline_s, len(rough), raw, bands, several))
    ranked = sorted(rough, key=lambda r: r[:2])
    count = EXACT_CANDIDATES
    if ranked and ranked[0][4] and angles is None:
        near = sum(r[0] <= EXACT_SPREAD * ranked[0][0] for r in ranked)
        count = max(count, min(near, SEVERAL_EXACT))
    best: Split | None = None
    for _, _, raw, bands, _ in ranked[:count]:
        found = _split_route(raw, bands, ground, site, wind, finder, site_xy, lawnmowers)
        if found is not None and (best is None or found.deadline_s < best.deadline_s):
            best = found
    return best


def _lawnmowers(
    ground: shapely.Geometry,
    spacing_m: float,
    n_drones: int,
    finder: PathFinder,
    site_xy: FloatArray,
    angles: list[float] | None = None,
) -> tuple[_Lawnmower, ...]:
    """The lawnmowers worth splitting over ``ground`` (lanes ``spacing_m`` apart) among
    ``n_drones``: a few lane directions (``angles`` if given, else the ground's axes and
    every :data:`ANGLE_STEP_DEG`), slab counts (and two slabs that meet abreast of the site)
    and starts, each starting at its end nearer the site (the others reverse them)."""
    share_m2 = float(ground.area) / n_drones
    coords = shapely.get_coordinates(ground)
    out = []
    # given the directions a ground much like this one was best swept in, those alone: with
    # the ground's axes too, a round of speed-200 cost 0.11 s of its 0.5 s bar, and the axes
    # gained 1 % on one scenario of the suite (village-60)
    tried = lane_directions(ground, ANGLE_STEP_DEG) if angles is None else angles
    for theta in np.unique(np.round(tried, 9)).tolist():
        direction = np.array([np.cos(theta), np.sin(theta)])
        u = coords @ direction
        # a drone's block is about square when a slab's lanes are as long as its share is wide
        square = float(np.ptp(u)) / max(np.sqrt(share_m2), 1.0)
        counts = {int(np.clip(round(square * f), 1, MAX_SLABS)) for f in SLAB_FACTORS} | {1}
        pieces = lane_pieces(ground, spacing_m, theta, finder.flyable)
        # (slabs, where each begins): even slabs, each begun where the one before ended; and
        # two slabs that meet abreast of the site, each begun there, so that a drone's lanes
        # out and back begin and end near the site, not where an even slab begins
        cuts: list[tuple[int | FloatArray, FloatArray | None]] = [(c, None) for c in sorted(counts)]
        lo, hi = float(u.min()), float(u.max())
        at_site = float(site_xy @ direction)
        if lo + spacing_m < at_site < hi - spacing_m:
            cuts.append((np.array([lo, at_site, hi]), site_xy))
        for slabs, start in cuts:
            for raw, bands in _slab_orderings(pieces, theta, slabs, start):
                if np.hypot(*(raw[0] - site_xy)) <= np.hypot(*(raw[-1] - site_xy)) + 1.0:
                    out.append((raw, bands))
    out += _arm_lawnmowers(ground, spacing_m, finder, site_xy)
    if float(ground.area) / spacing_m <= CONTOUR_MAX_LANE_M:
        out += _contour_lawnmowers(ground, spacing_m, site_xy)
    return tuple(out)


def _contour_lawnmowers(
    ground: shapely.Geometry, spacing_m: float, site_xy: FloatArray
) -> list[_Lawnmower]:
    """Lawnmowers along ``ground``'s contours (:mod:`skysweep.plan.contours`), begun nearest
    the site, one each way round. Every lane is a slab of its own: a block is never mirrored
    (a ring's lanes are not a band's)."""
    out = []
    for lanes in contour_routes(ground, spacing_m, site_xy):
        # negative: a contour lawnmower is told from a straight one by its bands alone
        bands = -np.arange(1, len(lanes) + 1, dtype=np.intp) * BANDS_PER_SLAB
        out.append((lanes.reshape(-1, 2), bands))
    return out


def _arm_lawnmowers(
    ground: shapely.Geometry, spacing_m: float, finder: PathFinder, site_xy: FloatArray
) -> list[_Lawnmower]:
    """Lawnmowers over ``ground`` cut into arms (:func:`skysweep.plan.arms.arm_parts`), each
    arm's lanes along its own length, the arms nearest the site first, each begun at the lane
    end nearest where the one before ended; one with the first arm's bands up and one with
    them down. Each arm is a slab of its own (a block is never mirrored across two)."""
    parts = arm_parts(ground, spacing_m)
    arms = []
    for part in parts:
        options = lane_orderings(lane_pieces(part, spacing_m, long_axis(part), finder.flyable))
        if options:
            arms.append(options)
    if len(arms) < 2:
        return []
    arms.sort(key=lambda options: min(float(np.hypot(*(o[0][0] - site_xy))) for o in options))
    out = []
    for pair in (arms[0][:2], arms[0][2:]):  # bands up, bands down: either first lane
        first = min(pair, key=lambda o: float(np.hypot(*(o[0][0] - site_xy))))
        raw, bands = [first[0]], [first[1]]
        for k, options in enumerate(arms[1:], start=1):
            end = raw[-1][-1]
            pick = min(options, key=lambda o: float(np.hypot(*(o[0][0] - end))))
            raw.append(pick[0])
            bands.append(pick[1] + k * BANDS_PER_SLAB * MAX_SLABS)
        out.append((np.vstack(raw), np.concatenate(bands)))
    return out


def _slab_orderings(
    pieces: list[tuple[int, FloatArray]],
    theta: float,
    slabs: int | FloatArray,
    start_near: FloatArray | None = None,
) -> list[tuple[FloatArray, NDArray[np.intp]]]:
    """Lawnmowers over the lane ``pieces`` (:func:`lane_pieces` along ``theta``) cut across
    into slabs, swept one slab after the other (bands up in one, down in the next), so that a
    drone's share of long lanes is a compact block, not a piece of one lane: ``slabs`` slabs of
    equal length along the lanes, or, given as an array, cut at those positions (metres along
    ``theta``; the first and last stretched to the pieces' ends). Every slab's band numbers are
    offset by :data:`BANDS_PER_SLAB` from the one before's.

    Each slab's four boustrophedons (bands up or down, the first band's lanes forward or
    back) are found for all slabs at once; then, slab after slab, the one of its pair that
    starts nearer where the slab before ended, or nearer ``start_near`` if given (every slab
    begun at the end nearer that point)."""
    if not pieces or (isinstance(slabs, int) and slabs == 1):
        return lane_orderings(pieces)
    direction = np.array([np.cos(theta), np.sin(theta)])
    ends = np.stack([xy for _, xy in pieces])  # (P, 2, 2), left→right along the lanes
    u = ends @ direction
    if isinstance(slabs, int):
        cuts = np.linspace(u.min(), u.max(), slabs + 1)
    else:
        cuts = np.array(slabs, float)
        cuts[0], cuts[-1] = min(cuts[0], u.min()), max(cuts[-1], u.max())
    a = np.maximum(u[None, :, 0], cuts[:-1, None])  # (slabs, P): each piece's stretch in each
    b = np.minimum(u[None, :, 1], cuts[1:, None])
    # slab by slab, and in each the pieces in their order (by band, then along it)
    slab, piece = np.nonzero(b - a > MIN_PIECE_M)
    if not len(slab):  # every stretch too short to fly (reliability seed 775)
        return []
    a, b = a[slab, piece], b[slab, piece]
    left, u0 = ends[piece, 0], u[piece, 0]
    xy = np.stack(
        [left + (a - u0)[:, None] * direction, left + (b - u0)[:, None] * direction], axis=1
    )
    band = np.array([b for b, _ in pieces], np.intp)[piece] + slab * BANDS_PER_SLAB
    options = _slab_boustrophedons(slab, band, xy)
    out = []
    for up_first in (True, False):
        raw: list[FloatArray] = []
        bands: list[NDArray[np.intp]] = []
        for k in np.unique(slab).tolist():
            up = (k % 2 == 0) == up_first
            pair = [options[(up, forward)][k] for forward in (True, False)]
            if raw or start_near is not None:
                end = raw[-1][-1] if start_near is None else start_near
                pick = min(pair, key=lambda o: float(np.hypot(*(o[0][0] - end))))
            else:
                pick = pair[0]
            raw.append(pick[0])
            bands.append(pick[1])
        out.append((np.vstack(raw), np.concatenate(bands)))
    return out


def _slab_boustrophedons(
    slab: NDArray[np.intp], band: NDArray[np.intp], xy: FloatArray
) -> dict[tuple[bool, bool], dict[int, tuple[FloatArray, NDArray[np.intp]]]]:
    """Every slab's four boustrophedons, keyed (bands up, first band forward) and then by
    slab: its lane ends (2L, 2) and bands (L,), lanes that touch merged. ``slab``, ``band``
    and ``xy`` ((P, 2, 2), left→right) are the pieces by slab, then band, then along it."""
    new_band = np.r_[True, np.diff(band) != 0]
    first = np.flatnonzero(new_band)
    pos = np.arange(len(band)) - np.repeat(first, np.diff(np.r_[first, len(band)]))
    rank = np.cumsum(new_band) - 1  # the band's rank among all slabs'
    new_slab = np.r_[True, np.diff(slab) != 0]
    slab_first = np.flatnonzero(new_slab)
    slab_rows = np.diff(np.r_[slab_first, len(slab)])
    rank = rank - np.repeat(rank[slab_first], slab_rows)  # ... and within its slab
    top = np.repeat(np.maximum.reduceat(rank, slab_first), slab_rows)
    out: dict[tuple[bool, bool], dict[int, tuple[FloatArray, NDArray[np.intp]]]] = {}
    for up in (True, False):
        band_rank = rank if up else top - rank
        for first_forward in (True, False):
            forward = (band_rank % 2 == 0) == first_forward
            order = np.lexsort((np.where(forward, pos, -pos), band_rank, slab))
            lanes = np.where(forward[:, None, None], xy, xy[:, ::-1])[order]
            # (bands differ between slabs: no lane is merged across two)
            route, merged = merge_touching(lanes.reshape(-1, 2), band[order])
            at = merged // BANDS_PER_SLAB
            cut = np.flatnonzero(np.r_[True, np.diff(at) != 0])
            stop = np.r_[cut[1:], len(at)]
            out[(up, first_forward)] = {
                int(at[i]): (route[2 * i : 2 * j], merged[i:j])
                for i, j in zip(cut.tolist(), stop.tolist(), strict=True)
            }
    return out


@dataclass(frozen=True)
class _Drones:
    """A site's drones in launch order, with the constants the compiled split needs."""

    order: NDArray[np.intp]
    """Fleet indices, in launch order."""
    kinds: FloatArray
    """(K, 2) the distinct (speed m/s, acceleration m/s²) among them."""
    kind: NDArray[np.int64]
    """Each drone's row of ``kinds``."""
    drone_f: FloatArray
    """Rows of :func:`_split_kernel`'s ``drone_f``."""
    pad_offset: FloatArray
    """(P, 2) each one's pad less its site, metres."""

    @classmethod
    def of(
        cls,
        mission: Mission,
        drones: NDArray[np.intp],
        launch_s: FloatArray,
        budget_scale: float = 1.0,
    ) -> _Drones:
        fleet = mission.fleet
        order = drones[np.argsort(launch_s[drones], kind="stable")]
        costs = DroneCosts.of(mission, launch_s)
        kinds, kind = np.unique(
            np.column_stack([fleet.speed_mps[order], fleet.accel_mps2[order]]),
            axis=0,
            return_inverse=True,
        )
        v = costs.speed_mps[order]
        # getting up to speed after the climb and stopping over the pad, as the sortie cutter
        speed_up = v / fleet.accel_mps2[order]
        # a sortie turns from the way out into its first lane and from its last lane home:
        # at most a stop each, counted so that a block the split fits in one battery flies
        # as one sortie
        drone_f = np.column_stack(
            [
                costs.launch_s[order],
                costs.vertical_s[order] + 3.0 * speed_up,
                costs.vertical_cs[order] + 3.0 * speed_up,
                costs.swap_s[order],
                budget_scale * (1.0 - SPLIT_BATTERY_MARGIN) * costs.budget_cs[order],
                1.0 / v,
                costs.head_pf[order] / v,
            ]
        ).astype(np.float64)
        kind_of = np.asarray(kind, np.int64).ravel()
        offset = mission.pad_xy_m[order] - mission.site_xy_m[fleet.site[order]]
        return cls(order, kinds, kind_of, drone_f, offset.astype(np.float64))


def _split_route(
    raw: FloatArray,
    bands: NDArray[np.intp],
    ground: shapely.Geometry,
    drones: _Drones,
    wind_mps: FloatArray,
    finder: PathFinder | None,
    site_xy: FloatArray,
    lawnmowers: tuple[_Lawnmower, ...],
    piece_m: float | None = None,
) -> Split | None:
    """The split of the lawnmower ``raw`` (lane ends, in order); with no ``finder``, judged on
    straight connectors and straight distances from the site. ``piece_m``: the longest piece
    its lanes are cut into (:func:`cut_lanes`), if not the judgement's own."""
    whole = raw, bands
    if piece_m is None:
        # judged roughly, a lawnmower keeps whole lanes: pieces only for the exact candidates
        piece_m = np.inf if finder is None else _piece_m(raw, drones)
    raw, bands, stop = cut_lanes(raw, bands, piece_m)
    if finder is None:
        route, at = raw, np.arange(len(raw))
        dist = np.hypot(*(raw - site_xy).T)
    else:
        route, at = connect_lanes_at(raw, finder)
        dist = finder.distances_from(site_xy, raw)
    if not np.all(np.isfinite(dist)):
        return None
    # one row of cumulative time and battery per kind of drone (speed, acceleration), and of
    # the power drawn on the way out: into the wind it is well above the cross-wind average
    cum_t = np.zeros((len(drones.kinds), len(raw)))
    cum_e = np.zeros((2, len(drones.kinds), len(raw)))
    out_pf = np.zeros((len(drones.kinds), len(raw)))
    seg = np.hypot(*np.diff(route, axis=0).T)
    away = raw - site_xy
    away /= np.maximum(np.hypot(*away.T), 1e-9)[:, None]
    # a contour's lanes touch end to start: its corners are those of the route without its
    # repeated points (a zero-length leg reads as going straight on)
    moves = np.r_[True, seg > 0]
    unique = route[moves]
    uid = np.cumsum(moves) - 1
    # the route's legs from one band to the next (lane j's end to lane j + 1's start)
    join = np.flatnonzero(bands[1:] != bands[:-1])
    edge = np.zeros(len(route) + 1, np.intp)
    np.add.at(edge, at[2 * join + 1], 1)
    np.add.at(edge, at[2 * join + 2], -1)
    join_legs = np.cumsum(edge)[: len(seg)] > 0
    for k, (v, accel) in enumerate(drones.kinds):
        at_vertex = np.r_[0.0, corner_loss_s(unique, v, accel), 0.0]
        corners = np.where(moves[1:], at_vertex[uid[1:]], 0.0)
        cum_t[k] = np.r_[0.0, np.cumsum(seg / v + corners)][at]
        # a mirrored block flies every lane the other way (in a wind, at another cost), and
        # joins its bands in the same order as the lawnmower
        ahead = leg_energy(route, v, wind_mps)
        back = leg_energy(route[::-1], v, wind_mps)[::-1]
        mirrored = np.where(join_legs, ahead, back)
        cum_e[0, k] = np.r_[0.0, np.cumsum(ahead + corners)][at]
        cum_e[1, k] = np.r_[0.0, np.cumsum(mirrored + corners)][at]
        out_pf[k] = power_factor(np.hypot(*(away * v - wind_mps).T), v)
    drone_f, kind = drones.drone_f, drones.kind
    # each lane's band's first and last lane: a block is mirrored band by band
    first, last = _band_bounds(bands)
    band_ends = np.column_stack([first, last, bands // BANDS_PER_SLAB]).astype(np.int64)
    # (the lawnmower's own connectors, around obstacles where it has to go round)
    along = np.r_[0.0, np.cumsum(seg)][at]
    mirror_m = mirror_extra_m(raw, bands, finder, along[2::2] - along[1:-1:2])

    # a sortie flies out from its pad and home to it (each drone has a spot of its own, up
    # to a few hundred metres from the site)
    near = pad_terms(raw, site_xy, drones.pad_offset)

    arrays: _Route = (cum_t, cum_e, dist, near, out_pf, band_ends, mirror_m)
    pads = drones.pad_offset

    def kernel(deadline: float, whole_only: bool) -> list[tuple[int, int, int, bool]] | None:
        return _split_kernel(arrays, pads, drone_f, kind, deadline, stop, whole_only)

    start = drone_f[:, 0].max() + drone_f[:, 1].max() + cum_t.max()
    hi = float(start + 2 * dist.max() * drone_f[:, 5].max())
    best = least_deadline(lambda t: kernel(t, True), hi, DEADLINE_TOL_S, grow=20)
    if not stop.all():
        # the kernel is greedy: blocks that may end part way along a lane usually land
        # earlier, not always; they are kept only if they beat whole lanes. And where a lane
        # and the way to it and home do not fit in one pack (flown round obstacles, a far
        # lane can outgrow the straight estimate's), only pieces of it can be swept at all
        top, grow = (hi, 20) if best is None else (best[0], 0)
        pieces = least_deadline(lambda t: kernel(t, False), top, DEADLINE_TOL_S, grow=grow)
        if pieces is not None and (best is None or pieces[0] < best[0]):
            best = pieces
    if best is not None and finder is not None and _several_sorties(best[1]):
        # where drones fly several sorties, a sortie that stops short can leave the next a
        # better start: every split is weighed (judged exactly only: it costs more)
        every = least_deadline(
            lambda t: _every_split_kernel(arrays, pads, drone_f, kind, t),
            best[0],
            DEADLINE_TOL_S,
            grow=0,
        )
        if every is not None and every[0] < best[0]:
            best = every
    if best is None:
        if np.isfinite(piece_m):
            return None
        # a lane whose sweep, with the way to it and home, outlasts a pack is only ever swept
        # in pieces: judged roughly too, then (80 lawnmowers in a plan of speed-2500, over
        # shares of 29 km² and more, were dropped before; some of them win)
        return _split_route(
            *whole,
            ground,
            drones,
            wind_mps,
            finder,
            site_xy,
            lawnmowers,
            _piece_m(whole[0], drones),
        )
    hi, rows = best
    parts = tuple((int(drones.order[p]), int(a), int(b), bool(m)) for p, a, b, m in rows)
    return Split(hi, raw.reshape(-1, 2, 2), bands, ground, drones.order, parts, lawnmowers)


def _several_sorties(rows: list[tuple[int, int, int, bool]]) -> bool:
    """Whether a drone of the split ``rows`` (drone position, ...) flies more than one sortie."""
    drones = [p for p, _, _, _ in rows]
    return len(set(drones)) < len(drones)


def _piece_m(raw: FloatArray, drones: _Drones) -> float:
    """The longest lane piece worth splitting the lawnmower ``raw`` at among ``drones``: a
    :data:`PIECES_PER_BLOCK` th of the lane metres a block holds, the drones' even share of
    all of them or what one battery sweeps, whichever is less."""
    lanes = raw.reshape(-1, 2, 2)
    total_m = float(np.hypot(*(lanes[:, 1] - lanes[:, 0]).T).sum())
    battery_m = float((drones.drone_f[:, 4] / drones.drone_f[:, 5]).min())
    return min(total_m / len(drones.order), battery_m) / PIECES_PER_BLOCK


def cut_lanes(
    raw: FloatArray, bands: NDArray[np.intp], piece_m: float
) -> tuple[FloatArray, NDArray[np.intp], NDArray[np.bool_]]:
    """The lawnmower ``raw`` (lane ends, (2L, 2)) with every lane longer than ``piece_m``
    cut into equal pieces no longer, end to end in its band, so that a block may end part way
    along it."""
    lanes = raw.reshape(-1, 2, 2)
    length = np.hypot(*(lanes[:, 1] - lanes[:, 0]).T)
    k = np.maximum(np.ceil(length / max(piece_m, MIN_PIECE_M)), 1).astype(np.intp)
    if np.all(k == 1):
        return raw, bands, np.ones(len(lanes), np.bool_)
    lane = np.repeat(np.arange(len(lanes)), k)
    j = np.arange(len(lane)) - np.repeat(np.cumsum(k) - k, k)
    start, step = lanes[lane, 0], (lanes[lane, 1] - lanes[lane, 0]) / k[lane, None]
    out = np.stack([start + j[:, None] * step, start + (j + 1)[:, None] * step], axis=1)
    return out.reshape(-1, 2), bands[lane], j == k[lane] - 1


def _band_bounds(bands: NDArray[np.intp]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """(L,) each lane's band's first lane, and its last (lanes of a band are consecutive)."""
    lane = np.arange(len(bands))
    new_band = np.r_[True, bands[1:] != bands[:-1]]
    end_band = np.r_[bands[1:] != bands[:-1], True]
    first = np.maximum.accumulate(np.where(new_band, lane, 0))
    last = np.minimum.accumulate(np.where(end_band, lane, len(bands))[::-1])[::-1]
    return first, last


def mirror_extra_m(
    raw: FloatArray,
    bands: NDArray[np.intp],
    finder: PathFinder | None = None,
    connectors_m: FloatArray | None = None,
) -> FloatArray:
    """(L,) the metres a block of the lawnmower ``raw`` (lane ends, (2L, 2)) flown mirrored
    adds by its joins between bands: lanes ``a .. b`` add ``out[b] - out[a]``.

    Mirrored, a block joins each band to the next at their other ends. Where a band's lanes
    lie far apart (across a hole, on two islands) that join is longer than the lawnmower's;
    never counted less than the lawnmower's own: its straight joins, or ``connectors_m``
    ((L − 1,) metres, as flown around obstacles) if known. The mirrored joins are straight, or
    with ``finder`` around obstacles (one can meet a keep-out the lawnmower's own did not).
    """
    ends = raw.reshape(-1, 2, 2)
    first, last = _band_bounds(bands)
    join = np.flatnonzero(bands[1:] != bands[:-1])  # lane i ends its band, i + 1 starts the next
    if connectors_m is None:
        own = np.hypot(*(ends[join, 1] - ends[join + 1, 0]).T)
    else:
        own = connectors_m[join]
    other = _join_m(ends[first[join], 0], ends[last[join + 1], 1], finder)
    extra = np.zeros(len(bands))
    extra[join + 1] = np.maximum(other - own, 0.0)
    return np.cumsum(extra)


def _join_m(a: FloatArray, b: FloatArray, finder: PathFinder | None) -> FloatArray:
    """(n,) metres from each of ``a`` to each of ``b`` (both (n, 2)): straight, or with
    ``finder`` around obstacles where the straight line is not flyable."""
    out = np.hypot(*(b - a).T)
    if finder is not None and len(a):
        for k in np.flatnonzero(~finder.visible(a, b)).tolist():
            out[k] = finder.length(a[k], b[k])
    return out


@njit(cache=True)
def _split_kernel(
    route: _Route,
    pad_offset: FloatArray,
    drone_f: FloatArray,
    kind: NDArray[np.int64],
    deadline: float,
    stop: NDArray[np.bool_],
    whole_only: bool,
) -> list[tuple[int, int, int, bool]] | None:  # pragma: no cover - compiled
    """Rows (drone position, first lane, last lane, mirrored) that sweep every lane by
    ``deadline``, each drone taking as many lanes as its time and battery allow; None if the
    drones run out first. Lanes here may be pieces of lanes (:func:`cut_lanes`): with
    ``whole_only`` a block ends only at a lane's last piece (``stop``).

    ``route`` (:data:`_Route`): lane k runs from point 2k to point 2k + 1 of ``cum_t``,
    ``cum_e`` (time and battery along the lawnmower: ``cum_e[1]`` as a mirrored block flies
    it, every lane the other way) and ``dist`` (flyable metres from the site; each drone's is
    measured from its pad, ``pad_offset`` from the site, by :func:`_from_pad` on ``near``).
    A block of lanes is flown
    as the lawnmower flies it or, if it begins and ends with whole bands of one slab
    (``band_ends``: each lane's band's first and last lane, and its slab), mirrored, whichever
    is shorter out and home; mirrored, its joins between bands add ``mirror_m[b] - mirror_m[a]``
    metres (flown at the head-wind's cost). ``out_pf``: each kind of drone's power factor flying
    out to each point, straight from the site in the wind. ``drone_f`` rows: launch, vertical
    time, vertical battery (both with a sortie's turns into its first lane and out of its last),
    swap time, usable battery (cruise-seconds), 1 / speed, head-wind battery per metre (the way
    home)."""
    n_lanes = len(route[2]) // 2
    out = [(0, 0, 0, False)]
    out.pop()
    a = 0
    for p in range(len(drone_f)):
        t = drone_f[p, 0]
        pad = _pad_of(pad_offset, p)
        while a < n_lanes:
            t_base = t + drone_f[p, 1]
            ways = _ways_out(route, pad, a)
            best = -1
            best_mirror = False
            best_t = 0.0
            for b in range(a, n_lanes):
                may_end = not whole_only or stop[b]
                more, tt, mirror = _block_finish(
                    route, drone_f, kind, pad, ways, p, a, b, t_base, deadline, may_end
                )
                if not more:
                    break
                if tt < np.inf:
                    best, best_mirror, best_t = b, mirror, tt
            if best < 0:
                break
            out.append((p, a, best, best_mirror))
            t = best_t + drone_f[p, 3]
            a = best + 1
        if a >= n_lanes:
            return out
    return None


@njit(cache=True, inline="always")
def _pad_of(
    pad_offset: FloatArray, p: int
) -> tuple[float, float, float, float]:  # pragma: no cover - compiled
    """Drone ``p``'s pad offset from the site as :func:`_from_pad` takes it: (x, y, |o|², |o|)."""
    ox, oy = pad_offset[p, 0], pad_offset[p, 1]
    o2 = ox * ox + oy * oy
    return ox, oy, o2, np.sqrt(o2)


@njit(cache=True, inline="always")
def _ways_out(
    route: _Route, pad: tuple[float, float, float, float], a: int
) -> tuple[float, float]:  # pragma: no cover - compiled
    """Metres from a drone's pad (``pad``: :func:`_pad_of`) to the first point of a block
    that begins at lane ``a``: flown as the lawnmower flies it, and mirrored (from the end of
    the lane's band)."""
    _, _, dist, near, _, band_ends, _ = route
    ox, oy, o2, o_m = pad
    ahead = _from_pad(dist, near, 2 * a, ox, oy, o2, o_m)
    return ahead, _from_pad(dist, near, 2 * band_ends[a, 1] + 1, ox, oy, o2, o_m)


@njit(cache=True, inline="always")
def _block_finish(
    route: _Route,
    drone_f: FloatArray,
    kind: NDArray[np.int64],
    pad: tuple[float, float, float, float],
    ways: tuple[float, float],
    p: int,
    a: int,
    b: int,
    t_base: float,
    deadline: float,
    may_end: bool,
) -> tuple[bool, float, bool]:  # pragma: no cover - compiled
    """(whether a block longer than lanes ``a`` to ``b`` may still fit, when a sortie of drone
    ``p`` that sweeps those lanes lands, whether it flies them mirrored): as the lawnmower
    flies them if that fits the drone's battery and ``deadline``, else mirrored if that does
    (only a block of whole bands of one slab); it lands at ``inf`` if neither does, or if the
    block may not end at ``b`` (``may_end``).

    ``route`` (:data:`_Route`), ``drone_f`` and ``kind`` as :func:`_split_kernel` takes them;
    ``pad`` the drone's (:func:`_pad_of`); ``ways``: the way out to either first lane
    (:func:`_ways_out`); ``t_base``: when the drone is up, ready to fly out."""
    cum_t, cum_e, dist, near, out_pf, band_ends, mirror_m = route
    ox, oy, o2, o_m = pad
    c = kind[p]
    inv_v, home_e, budget = drone_f[p, 5], drone_f[p, 6], drone_f[p, 4]
    t_swept = t_base + cum_t[c, 2 * b + 1] - cum_t[c, 2 * a]
    de = cum_e[0, c, 2 * b + 1] - cum_e[0, c, 2 * a]
    de_back = cum_e[1, c, 2 * b + 1] - cum_e[1, c, 2 * a]
    if t_swept > deadline or drone_f[p, 2] + min(de, de_back) > budget:
        return False, np.inf, False  # the lanes alone take too long: no longer block fits
    if not may_end:
        return True, np.inf, False
    # (mirrored across slabs, the joins between them would change)
    whole = band_ends[a, 0] == a and band_ends[b, 1] == b and band_ends[a, 2] == band_ends[b, 2]
    for mirror in (False, True):
        if mirror and not whole:
            continue
        s = 2 * band_ends[a, 1] + 1 if mirror else 2 * a
        d_s = ways[1] if mirror else ways[0]
        f = 2 * band_ends[b, 0] if mirror else 2 * b + 1
        d_f = _from_pad(dist, near, f, ox, oy, o2, o_m)
        extra = mirror_m[b] - mirror_m[a] if mirror else 0.0
        tt = t_swept + (d_s + d_f + extra) * inv_v
        ee = drone_f[p, 2] + (de_back if mirror else de)
        ee += d_s * out_pf[c, s] * inv_v + (d_f + extra) * home_e
        if tt <= deadline and ee <= budget:
            return True, tt, mirror
    return True, np.inf, False


@njit(cache=True)
def _every_split_kernel(
    route: _Route,
    pad_offset: FloatArray,
    drone_f: FloatArray,
    kind: NDArray[np.int64],
    deadline: float,
) -> list[tuple[int, int, int, bool]] | None:  # pragma: no cover - compiled
    """:func:`_split_kernel`'s rows by ``deadline``, weighing every split of the lanes into
    consecutive blocks in the drones' order, not only the greedy's; None if there is none.

    The greedy has each sortie take as many lanes as it can. A sortie that stops short can
    leave the next one a better place to begin: nearer the site, at a band's end where a
    mirrored block may begin, or with time for one more sortie after a swap (moor-4: a drone
    whose third sortie ran to the far side of the moor had no time left for a fourth, and the
    drones after it took its lanes). Drone by drone, for every lane a block may begin at, the
    earliest the drone can be ready there, on its pad with a fresh pack (dynamic programming:
    ready earlier is never worse for what follows); the rows kept are those of the fewest
    drones, each drone's blocks the ones that leave it ready earliest. Blocks may end part way
    along a lane. The arguments are :func:`_split_kernel`'s."""
    n_lanes = len(route[2]) // 2
    n_drones = len(drone_f)
    # for drone p and lane a: where its block ending at lane a - 1 began (-1: the drone takes
    # over at a, every lane before swept by the drones before it), and whether it was mirrored
    came_from = np.full((n_drones, n_lanes + 1), -1, np.int64)
    mirrored = np.zeros((n_drones, n_lanes + 1), np.bool_)
    taken = np.zeros(n_lanes + 1, np.bool_)
    taken[0] = True
    for p in range(n_drones):
        pad = _pad_of(pad_offset, p)
        ready = np.where(taken, drone_f[p, 0], np.inf)
        for a in range(n_lanes):  # a block only moves on: ``ready[a]`` is final here
            if ready[a] == np.inf:
                continue
            t_base = ready[a] + drone_f[p, 1]
            ways = _ways_out(route, pad, a)
            for b in range(a, n_lanes):
                more, tt, mirror = _block_finish(
                    route, drone_f, kind, pad, ways, p, a, b, t_base, deadline, True
                )
                if not more:
                    break
                if tt + drone_f[p, 3] < ready[b + 1]:
                    ready[b + 1] = tt + drone_f[p, 3]
                    came_from[p, b + 1] = a
                    mirrored[p, b + 1] = mirror
        taken = ready < np.inf
        if taken[n_lanes]:
            out = [(0, 0, 0, False)]
            out.pop()
            a = n_lanes
            for q in range(p, -1, -1):
                while came_from[q, a] >= 0:
                    out.append((q, came_from[q, a], a - 1, mirrored[q, a]))
                    a = came_from[q, a]
            out.reverse()
            return out
    return None


def pad_terms(xy: FloatArray, site_xy: FloatArray, pad_offset: FloatArray) -> FloatArray:
    """(n, 3) what :func:`_from_pad` needs of each of the points ``xy`` to measure it from a
    pad up to the farthest of ``pad_offset`` (pad less site, metres) off ``site_xy``: the unit
    vector from the site to it, and 1 / (2 (r − R)), r its straight distance and R the
    farthest pad's (within R, a factor that makes that bound never the lesser)."""
    d = xy - site_xy
    straight = np.hypot(*d.T)
    gap = straight - float(np.hypot(*pad_offset.T).max(initial=0.0))
    far = np.where(gap > 0.0, 1.0 / (2.0 * np.maximum(gap, 1e-12)), 1e12)
    return np.column_stack([d / np.maximum(straight, 1e-9)[:, None], far])


@njit(cache=True)
def _from_pad(
    dist: FloatArray, near: FloatArray, k: int, ox: float, oy: float, o2: float, o_m: float
) -> float:  # pragma: no cover - compiled
    """Point ``k``'s distance from a pad o = (ox, oy) metres off the site: its flyable
    distance from the site ``dist[k]``, plus how much farther it lies from the pad than from
    the site in a straight line, that difference bounded above without a square root (this is
    the split's hottest loop). With r the point's straight distance, u the unit vector to it
    (``near[k, :2]``) and t = o·u: |r u − o| = √((r − t)² + |o|² − t²) ≤ r − t + |o|² / (2 (r −
    R)) for any R ≥ |o| (``near[k, 2]`` is 1 / (2 (r − R)), R the farthest pad), and ≤ r + |o|
    (``o2`` is |o|², ``o_m`` is |o|)."""
    return dist[k] + min(o_m, o2 * near[k, 2] - ox * near[k, 0] - oy * near[k, 1])
