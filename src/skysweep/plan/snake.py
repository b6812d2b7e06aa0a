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

Times and battery along the lawnmower are those of :mod:`skysweep.plan.sorties`: each leg at
cruise speed, the corners' slow-downs (:mod:`skysweep.kinematics`), the wind on every leg and
a full head-wind on the way home. The planner keeps this split or the lane columns, whichever
plan lands first.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import shapely
from numba import njit
from numpy.typing import NDArray

from skysweep.geo import FloatArray
from skysweep.kinematics import corner_loss_s
from skysweep.mission import Mission
from skysweep.plan.allocate import DroneCosts
from skysweep.plan.lanes import (
    MIN_PIECE_M,
    connect_lanes,
    lane_directions,
    lane_orderings,
    lane_pieces,
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
#: Slabs at most.
MAX_SLABS = 64
#: Band numbers of one slab are offset by this much from the slab before's (slab = band //
#: BANDS_PER_SLAB).
BANDS_PER_SLAB = 1 << 20
#: Bisection on the deadline stops at this precision, seconds.
DEADLINE_TOL_S = 0.5


@dataclass(frozen=True)
class Split:
    """A site's lanes and each of its drones' blocks of them."""

    deadline_s: float
    """Predicted finish of the site's last drone, seconds from mission start."""
    lanes: FloatArray
    """(L, 2, 2) local metres: each lane's two ends, in the order the lawnmower flies them."""
    bands: NDArray[np.intp]
    """(L,) each lane's band: the lanes of one band lie end to end, cut apart by holes."""
    parts: tuple[tuple[int, int, int, bool], ...]
    """(drone, first lane, last lane, mirrored) of every sortie: the lanes are flown in order,
    or, if ``mirrored``, each band's lanes the other way along the band (so the sortie starts at
    the far end of its first band)."""

    def drone_routes(self, finder: PathFinder) -> dict[int, list[FloatArray]]:
        """Each drone's sorties' sweep routes, joined around obstacles."""
        out: dict[int, list[FloatArray]] = {}
        for drone, a, b, mirrored in self.parts:
            block = self.lanes[a : b + 1]
            if mirrored:
                bands = self.bands[a : b + 1]
                cuts = np.flatnonzero(np.diff(bands)) + 1
                block = np.concatenate([g[::-1, ::-1] for g in np.split(block, cuts)])
            out.setdefault(drone, []).append(connect_lanes(block.reshape(-1, 2), finder))
        return out


def split_site(
    mission: Mission,
    ground: shapely.Geometry,
    drones: NDArray[np.intp],
    launch_s: FloatArray,
    finder: PathFinder,
    site_xy: FloatArray,
) -> Split | None:
    """The best split of a lawnmower over ``ground`` among ``drones`` (fleet indices) flying
    from ``site_xy``; None when no direction gives a route, or the drones cannot sweep it."""
    fleet = mission.fleet
    if ground.is_empty or not len(drones):
        return None
    spacing = float(fleet.track_spacing_m[drones].min())
    site = _Drones.of(mission, drones, launch_s)
    wind = mission.wind_vector_mps
    share_m2 = float(ground.area) / len(drones)
    coords = shapely.get_coordinates(ground)
    # every candidate is first judged on straight connectors and straight distances (cheap);
    # the few best are then joined around obstacles and judged again
    rough: list[tuple[float, int, FloatArray, NDArray[np.intp]]] = []
    for theta in lane_directions(ground, ANGLE_STEP_DEG):
        u = coords @ np.array([np.cos(theta), np.sin(theta)])
        # a drone's block is about square when a slab's lanes are as long as its share is wide
        square = float(np.ptp(u)) / max(np.sqrt(share_m2), 1.0)
        counts = {int(np.clip(round(square * f), 1, MAX_SLABS)) for f in SLAB_FACTORS} | {1}
        pieces = lane_pieces(ground, spacing, theta, finder.flyable)
        for slabs in sorted(counts):
            for raw, bands in _slab_orderings(pieces, theta, slabs):
                # only the orderings that start at the end nearer the site: the others
                # reverse them
                if np.hypot(*(raw[0] - site_xy)) > np.hypot(*(raw[-1] - site_xy)) + 1.0:
                    continue
                found = _split_route(raw, bands, site, wind, None, site_xy)
                if found is not None:
                    rough.append((found.deadline_s, len(rough), raw, bands))
    best: Split | None = None
    for _, _, raw, bands in sorted(rough, key=lambda r: r[:2])[:EXACT_CANDIDATES]:
        found = _split_route(raw, bands, site, wind, finder, site_xy)
        if found is not None and (best is None or found.deadline_s < best.deadline_s):
            best = found
    return best


def _slab_orderings(
    pieces: list[tuple[int, FloatArray]], theta: float, slabs: int
) -> list[tuple[FloatArray, NDArray[np.intp]]]:
    """Lawnmowers over the lane ``pieces`` (:func:`lane_pieces` along ``theta``) cut across
    into ``slabs`` slabs of equal length along the lanes, swept one slab after the other (bands
    up in one, down in the next), so that a drone's share of long lanes is a compact block,
    not a piece of one lane."""
    if slabs == 1 or not pieces:
        return lane_orderings(pieces)
    direction = np.array([np.cos(theta), np.sin(theta)])
    ends = np.stack([xy for _, xy in pieces])  # (P, 2, 2), left→right along the lanes
    band = np.array([b for b, _ in pieces])
    u = ends @ direction
    cuts = np.linspace(u.min(), u.max(), slabs + 1)
    per_slab = []
    for lo, hi in itertools.pairwise(cuts):
        a, b = np.maximum(u[:, 0], lo), np.minimum(u[:, 1], hi)
        keep = b - a > MIN_PIECE_M
        start = ends[keep, 0] + (a[keep] - u[keep, 0])[:, None] * direction
        stop = ends[keep, 0] + (b[keep] - u[keep, 0])[:, None] * direction
        per_slab.append(
            lane_orderings(
                [
                    (int(k), np.stack([p, q]))
                    for k, p, q in zip(band[keep], start, stop, strict=True)
                ]
            )
        )
    out = []
    for up_first in (True, False):
        raw: list[FloatArray] = []
        bands: list[NDArray[np.intp]] = []
        for k, options in enumerate(per_slab):
            if not options:
                continue
            # options: bands up (first lane either way), then bands down
            up = (k % 2 == 0) == up_first
            pair = options[:2] if up else options[2:]
            if raw:
                end = raw[-1][-1]
                pick = min(pair, key=lambda o: float(np.hypot(*(o[0][0] - end))))
            else:
                pick = pair[0]
            raw.append(pick[0])
            bands.append(pick[1] + k * BANDS_PER_SLAB)
        if raw:
            out.append((np.vstack(raw), np.concatenate(bands)))
    return out


def _lane_index(route: FloatArray, raw: FloatArray) -> NDArray[np.intp]:
    """Where each point of ``raw`` (lane ends) stands in ``route`` (the same, joined)."""
    out = np.empty(len(raw), np.intp)
    k = 0
    for i, p in enumerate(raw):
        while route[k, 0] != p[0] or route[k, 1] != p[1]:
            k += 1
        out[i] = k
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

    @classmethod
    def of(cls, mission: Mission, drones: NDArray[np.intp], launch_s: FloatArray) -> _Drones:
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
        drone_f = np.column_stack(
            [
                costs.launch_s[order],
                costs.vertical_s[order] + speed_up,
                costs.vertical_cs[order] + speed_up,
                costs.swap_s[order],
                costs.budget_cs[order],
                1.0 / v,
                costs.cruise_pf[order] / v,
                costs.head_pf[order] / v,
            ]
        ).astype(np.float64)
        return cls(order, kinds, np.asarray(kind, np.int64).ravel(), drone_f)


def _split_route(
    raw: FloatArray,
    bands: NDArray[np.intp],
    drones: _Drones,
    wind_mps: FloatArray,
    finder: PathFinder | None,
    site_xy: FloatArray,
) -> Split | None:
    """The split of the lawnmower ``raw`` (lane ends, in order); with no ``finder``, judged on
    straight connectors and straight distances from the site."""
    if finder is None:
        route, at = raw, np.arange(len(raw))
        dist = np.hypot(*(raw - site_xy).T)
    else:
        route = connect_lanes(raw, finder)
        at = _lane_index(route, raw)
        dist = finder.distances_from(site_xy, raw)
    if not np.all(np.isfinite(dist)):
        return None
    # one row of cumulative time and battery per kind of drone (speed, acceleration)
    cum_t = np.zeros((len(drones.kinds), len(raw)))
    cum_e = np.zeros((len(drones.kinds), len(raw)))
    seg = np.hypot(*np.diff(route, axis=0).T)
    for k, (v, accel) in enumerate(drones.kinds):
        corners = np.append(corner_loss_s(route, v, accel), 0.0)
        cum_t[k] = np.r_[0.0, np.cumsum(seg / v + corners)][at]
        cum_e[k] = np.r_[0.0, np.cumsum(leg_energy(route, v, wind_mps) + corners)][at]
    drone_f, kind = drones.drone_f, drones.kind
    # each lane's band's first and last lane: a block is mirrored band by band
    new_band = np.r_[True, bands[1:] != bands[:-1]]
    first = np.maximum.accumulate(np.where(new_band, np.arange(len(bands)), 0))
    end_band = np.r_[bands[1:] != bands[:-1], True]
    last = np.minimum.accumulate(np.where(end_band, np.arange(len(bands)), len(bands))[::-1])[::-1]
    band_ends = np.column_stack([first, last, bands // BANDS_PER_SLAB]).astype(np.int64)
    lo = 0.0
    hi = float(
        drone_f[:, 0].max()
        + drone_f[:, 1].max()
        + cum_t.max()
        + 2 * dist.max() * drone_f[:, 5].max()
    )
    rows = None
    for _ in range(20):
        rows = _split_kernel(cum_t, cum_e, dist, band_ends, drone_f, kind, hi)
        if rows is not None:
            break
        lo, hi = hi, 2 * hi
    if rows is None:
        return None
    while hi - lo > DEADLINE_TOL_S:
        mid = 0.5 * (lo + hi)
        attempt = _split_kernel(cum_t, cum_e, dist, band_ends, drone_f, kind, mid)
        if attempt is None:
            lo = mid
        else:
            hi, rows = mid, attempt
    parts = tuple((int(drones.order[p]), int(a), int(b), bool(m)) for p, a, b, m in rows)
    return Split(hi, raw.reshape(-1, 2, 2), bands, parts)


@njit(cache=True)
def _split_kernel(
    cum_t: FloatArray,
    cum_e: FloatArray,
    dist: FloatArray,
    band_ends: NDArray[np.int64],
    drone_f: FloatArray,
    kind: NDArray[np.int64],
    deadline: float,
) -> list[tuple[int, int, int, bool]] | None:  # pragma: no cover - compiled
    """Rows (drone position, first lane, last lane, mirrored) that sweep every lane by
    ``deadline``, each drone taking as many lanes as its time and battery allow; None if the
    drones run out first.

    Lane k runs from point 2k to point 2k + 1 of ``cum_t``, ``cum_e`` (time and battery along
    the lawnmower) and ``dist`` (flyable metres from the site). A block of lanes is flown as the
    lawnmower flies it or, if it begins and ends with whole bands of one slab (``band_ends``:
    each lane's band's first and last lane, and its slab), mirrored, whichever is shorter out
    and home.
    ``drone_f`` rows: launch, vertical time, vertical battery, swap time, usable battery
    (cruise-seconds), 1 / speed, cruise and head-wind battery per metre."""
    n_lanes = len(dist) // 2
    out = [(0, 0, 0, False)]
    out.pop()
    a = 0
    for p in range(len(drone_f)):
        t = drone_f[p, 0]
        c = kind[p]
        inv_v, out_e, home_e, budget = drone_f[p, 5], drone_f[p, 6], drone_f[p, 7], drone_f[p, 4]
        while a < n_lanes:
            t_base = t + drone_f[p, 1]
            best = -1
            best_mirror = False
            best_t = 0.0
            for b in range(a, n_lanes):
                dt = cum_t[c, 2 * b + 1] - cum_t[c, 2 * a]
                de = cum_e[c, 2 * b + 1] - cum_e[c, 2 * a]
                if t_base + dt > deadline or drone_f[p, 2] + de > budget:
                    break
                # (mirrored across slabs, the joins between them would change)
                whole = (
                    band_ends[a, 0] == a
                    and band_ends[b, 1] == b
                    and band_ends[a, 2] == band_ends[b, 2]
                )
                for mirror in (False, True):
                    if mirror and not whole:
                        continue
                    s = 2 * band_ends[a, 1] + 1 if mirror else 2 * a
                    f = 2 * band_ends[b, 0] if mirror else 2 * b + 1
                    tt = t_base + dt + (dist[s] + dist[f]) * inv_v
                    ee = drone_f[p, 2] + de + dist[s] * out_e + dist[f] * home_e
                    if tt <= deadline and ee <= budget:
                        best, best_mirror, best_t = b, mirror, tt
                        break
            if best < 0:
                break
            out.append((p, a, best, best_mirror))
            t = best_t + drone_f[p, 3]
            a = best + 1
        if a >= n_lanes:
            return out
    return None
