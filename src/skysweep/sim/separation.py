"""Tactical separation: optimal reciprocal collision avoidance (ORCA) over the whole fleet.

Each drone wants to fly its planned ("preferred") velocity. For every neighbour in the same
altitude band, the velocities that would bring the two closer than the combined radius within
``time_horizon_s`` form a velocity obstacle; ORCA turns it into a half-plane of permitted
velocities and makes each drone take half of the avoiding (van den Berg, Guy, Lin and Manocha,
"Reciprocal n-body collision avoidance", ISRR 2009). The new velocity is the permitted one
closest to the preferred velocity within the drone's top speed: a two-dimensional linear program
per drone, solved in a compiled kernel (numba), one drone per iteration, both cores in parallel.

Avoidance is horizontal within a band; between bands it is vertical. A drone that climbs or
descends toward the band of a neighbour that is, or within ``band_lookahead_s`` may be
(flying on, or setting off along its planned course), horizontally closer than the separation
stops short of that band (braking at its own acceleration) until the neighbour has moved on, as
a pilot holds a take-off under traffic. A drone climbing out of its launch spot therefore never
pops up into a passing drone's disc, nor into that of one that levels off beside it and sets
off its way.
(Dodging sideways instead scatters a crowd of climbing drones into each other.)

The geofence (its exact distance, :mod:`skysweep.fence`) is a hard constraint of that program,
placed before every neighbour's: a manoeuvre may close on the fence no faster than brings the
drone to ``fence_hard_margin_m`` from it in ``fence_time_s`` (nor, outside that margin, faster
than the plan itself does), and within the margin it must move away. When the neighbours'
constraints cannot all be met, the program relaxes them (never the fence's) by the least
amount, as in ORCA's three-dimensional fallback. Because a drone reaches the velocity it is
given only at its acceleration, one whose present closing speed on the fence leaves no more
room than it needs to stop short of the hard margin brakes straight away from it, keeping its
sideways velocity, whatever the neighbours ask: judged against each of the
:data:`FENCE_EDGES` nearest fence edges, not only the nearest (a drone sliding along one edge
into a corner must brake for the edge ahead before it is the nearest). A drone with no
neighbour flies its plan under the same two fence rules.

Neighbours come from :meth:`scipy.spatial.cKDTree.query_pairs` (:mod:`skysweep.proximity`);
each drone keeps the ``max_neighbors`` nearest. Positions are local metres (x east, y north,
altitude); velocities m/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from numba import njit, prange
from numpy.typing import NDArray

from skysweep.fence import FenceField, edges_near
from skysweep.geo import FloatArray
from skysweep.proximity import VERTICAL_BAND_M, pairs_within

_EPS = 1e-5
#: How far (radians) a plan that conflicts with a neighbour is turned to the right.
KEEP_RIGHT_RAD = 0.1
_KEEP_RIGHT_COS = math.cos(KEEP_RIGHT_RAD)
_KEEP_RIGHT_SIN = math.sin(KEEP_RIGHT_RAD)
#: Fence edges (their nearest points) each drone brakes for: in a corner of the allowed space,
#: or sliding past a zone's corner, the edge ahead matters before it is the nearest (as
#: ArduPilot's fence avoidance limits the velocity against every edge in reach). The program's
#: hard line is the nearest edge's alone: lines from several edges of a drone in their margins
#: pushed it into a neighbouring zone (seed 434 --zones).
FENCE_EDGES = 3
#: Stands in for "no fence": its reach is never used (the kernel is told 0).
_NO_FENCE = FenceField.build(shapely.box(0.0, 0.0, 1.0, 1.0), cell_m=1.0, reach_m=1.0)


@dataclass(frozen=True)
class SeparationParams:
    """How the separation layer works; distances in metres, times in seconds."""

    min_separation_m: float
    """No two drones in one altitude band may come closer than this."""
    buffer_m: float = 2.0
    """Added to the minimum separation in the avoidance geometry, for the drones' lag in
    reaching a commanded velocity (they accelerate at a finite rate) and for step length."""
    time_horizon_s: float = 5.0
    """How far ahead conflicts are resolved."""
    neighbor_dist_m: float | None = None
    """Neighbours are looked for within this distance; by default the distance two drones at
    top speed can close within the time horizon, plus the separation."""
    max_neighbors: int = 40
    """Neighbours considered per drone, nearest first. Ten (RVO2's usual figure) is too few in
    a crowd: a drone closing fast from farther out is seen too late to avoid at 4 m/s²."""
    vertical_band_m: float = VERTICAL_BAND_M
    """Drones whose altitudes differ by at least this are in different bands: no conflict."""
    fence_hard_margin_m: float = 2.0
    """A manoeuvre never brings a drone closer to the fence than this."""
    fence_time_s: float = 2.0
    band_lookahead_s: float = 3.0
    """A climb or descent toward another band stops short of it while a neighbour in that
    band is, or within this time could be, horizontally closer than the separation: at the
    current closing speed, or at the planned one if that is faster (a neighbour about to set
    off along its course). Zero turns the hold off."""

    def neighbor_dist(self, max_speed_mps: float) -> float:
        if self.neighbor_dist_m is not None:
            return self.neighbor_dist_m
        reach = self.min_separation_m + self.buffer_m
        return reach + 2.0 * max_speed_mps * self.time_horizon_s


@dataclass(frozen=True)
class SeparationResult:
    vel_mps: FloatArray
    """(n, 2) velocities to fly: the preferred ones where no neighbour is near."""
    pairs: NDArray[np.intp]
    """(p, 2) neighbour pairs found within the search distance (any band), fleet indices."""
    adjusted: int
    """Drones whose velocity ORCA changed by more than 1 cm/s."""
    vz_mps: FloatArray | None = None
    """(n,) vertical velocities to fly, when positions and preferred velocities were given
    in 3-D: the preferred ones, except where a climb or descent must stop short of a band."""


def separate(
    pos_m: FloatArray,
    vel_mps: FloatArray,
    pref_vel_mps: FloatArray,
    max_speed_mps: FloatArray,
    active: NDArray[np.bool_],
    params: SeparationParams,
    dt_s: float,
    fence: FenceField | None = None,
    accel_mps2: FloatArray | float = 4.0,
) -> SeparationResult:
    """New velocities for the fleet; inactive drones keep their preferred one.

    ``pos_m`` is (n, 2) or (n, 3) (with altitude, for the bands); ``vel_mps`` the current and
    ``pref_vel_mps`` the planned velocities, (n, 2), or (n, 3) with the vertical one (then
    climbs and descents are separated too, see :attr:`SeparationResult.vz_mps`).
    ``accel_mps2`` is each drone's acceleration limit, for stopping a climb in time.
    """
    pos = np.ascontiguousarray(pos_m, dtype=np.float64)
    n = len(pos)
    vmax = np.ascontiguousarray(np.broadcast_to(max_speed_mps, (n,)), dtype=np.float64)
    top = float(vmax[active].max()) if active.any() else 0.0
    pairs = pairs_within(pos, active, params.neighbor_dist(top))
    pref = np.ascontiguousarray(pref_vel_mps[:, :2], dtype=np.float64)
    vertical = pos.shape[1] >= 3 and pref_vel_mps.shape[1] >= 3
    pref_vz = np.ascontiguousarray(pref_vel_mps[:, 2] if vertical else np.zeros(n), np.float64)
    if not len(pairs) and fence is None:
        # nobody near anybody and no fence: fly the plan (within top speed)
        speed = np.hypot(pref[:, 0], pref[:, 1])
        scale = np.where(active, np.minimum(1.0, vmax / np.maximum(speed, 1e-12)), 1.0)
        return SeparationResult(
            pref * scale[:, None], pairs, 0, pref_vz.copy() if vertical else None
        )
    z = pos[:, 2] if pos.shape[1] >= 3 else np.zeros(n)
    vel = np.ascontiguousarray(vel_mps[:, :2], dtype=np.float64)
    accel = np.ascontiguousarray(np.broadcast_to(accel_mps2, (n,)), dtype=np.float64)
    indptr, nbr = _csr(n, pairs[:, 0], pairs[:, 1])
    if fence is None:
        fence = _NO_FENCE
    out = np.empty((n, 2))
    out_vz = pref_vz.copy()
    radius = 0.5 * (params.min_separation_m + params.buffer_m)
    _orca(
        pos[:, :2].copy(),
        z.copy(),
        vel,
        pref,
        pref_vz,
        vmax,
        accel,
        indptr,
        nbr,
        *fence.tables,
        fence.reach_m if fence is not _NO_FENCE else 0.0,
        params.fence_hard_margin_m,
        params.fence_time_s,
        radius,
        params.time_horizon_s,
        1.0 / dt_s,
        params.vertical_band_m,
        params.band_lookahead_s if vertical else 0.0,
        params.max_neighbors,
        out,
        out_vz,
    )
    inactive = ~active
    out[inactive] = pref[inactive]
    out_vz[inactive] = pref_vz[inactive]
    moved = (np.hypot(*(out - pref).T) > 0.01) | (np.abs(out_vz - pref_vz) > 0.01)
    return SeparationResult(out, pairs, int(moved.sum()), out_vz if vertical else None)


# -- compiled kernels ---------------------------------------------------------------------------


@njit(cache=True)
def _csr(
    n: int, a: NDArray[np.intp], b: NDArray[np.intp]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:  # pragma: no cover - compiled
    """Both directions of every pair, grouped by drone (a counting sort, O(pairs))."""
    indptr = np.zeros(n + 1, np.int64)
    for k in range(len(a)):
        indptr[a[k] + 1] += 1
        indptr[b[k] + 1] += 1
    for i in range(n):
        indptr[i + 1] += indptr[i]
    fill = indptr[:-1].copy()
    nbr = np.empty(2 * len(a), np.int64)
    for k in range(len(a)):
        nbr[fill[a[k]]] = b[k]
        fill[a[k]] += 1
        nbr[fill[b[k]]] = a[k]
        fill[b[k]] += 1
    return indptr, nbr


@njit(cache=True, inline="always")
def _det(ax: float, ay: float, bx: float, by: float) -> float:  # pragma: no cover
    return ax * by - ay * bx


@njit(cache=True)
def _lp1(
    pt: FloatArray,
    dr: FloatArray,
    line_no: int,
    radius: float,
    optx: float,
    opty: float,
    direction_opt: bool,
    res: FloatArray,
) -> bool:  # pragma: no cover - compiled
    """Best point on line ``line_no`` that satisfies lines ``0..line_no-1`` and the speed disc."""
    px, py = pt[line_no, 0], pt[line_no, 1]
    dx, dy = dr[line_no, 0], dr[line_no, 1]
    dot = px * dx + py * dy
    disc = dot * dot + radius * radius - (px * px + py * py)
    if disc < 0.0:
        return False  # the line misses the speed disc
    s = math.sqrt(disc)
    t_left = -dot - s
    t_right = -dot + s
    for i in range(line_no):
        den = _det(dx, dy, dr[i, 0], dr[i, 1])
        num = _det(dr[i, 0], dr[i, 1], px - pt[i, 0], py - pt[i, 1])
        if abs(den) <= _EPS:
            if num < 0.0:
                return False  # parallel and on the wrong side
            continue
        t = num / den
        if den >= 0.0:
            t_right = min(t_right, t)
        else:
            t_left = max(t_left, t)
        if t_left > t_right:
            return False
    if direction_opt:
        t = t_right if optx * dx + opty * dy > 0.0 else t_left
    else:
        t = dx * (optx - px) + dy * (opty - py)
        t = min(max(t, t_left), t_right)
    res[0] = px + t * dx
    res[1] = py + t * dy
    return True


@njit(cache=True)
def _lp2(
    pt: FloatArray,
    dr: FloatArray,
    n_lines: int,
    radius: float,
    optx: float,
    opty: float,
    direction_opt: bool,
    res: FloatArray,
) -> int:  # pragma: no cover - compiled
    """Closest permitted velocity to ``opt``; returns the first line it failed on, or n_lines."""
    if direction_opt:
        res[0] = optx * radius
        res[1] = opty * radius
    else:
        sq = optx * optx + opty * opty
        if sq > radius * radius:
            k = radius / math.sqrt(sq)
            res[0] = optx * k
            res[1] = opty * k
        else:
            res[0] = optx
            res[1] = opty
    for i in range(n_lines):
        if _det(dr[i, 0], dr[i, 1], pt[i, 0] - res[0], pt[i, 1] - res[1]) > 0.0:
            r0, r1 = res[0], res[1]
            if not _lp1(pt, dr, i, radius, optx, opty, direction_opt, res):
                res[0], res[1] = r0, r1
                return i
    return n_lines


@njit(cache=True)
def _lp3(
    pt: FloatArray,
    dr: FloatArray,
    n_lines: int,
    n_obst: int,
    begin: int,
    radius: float,
    res: FloatArray,
    ppt: FloatArray,
    pdr: FloatArray,
) -> None:  # pragma: no cover - compiled
    """Infeasible: minimise the largest violation of the neighbour lines, fence lines kept."""
    distance = 0.0
    for i in range(begin, n_lines):
        if _det(dr[i, 0], dr[i, 1], pt[i, 0] - res[0], pt[i, 1] - res[1]) > distance:
            m = 0
            for j in range(n_obst):
                ppt[m, 0], ppt[m, 1] = pt[j, 0], pt[j, 1]
                pdr[m, 0], pdr[m, 1] = dr[j, 0], dr[j, 1]
                m += 1
            for j in range(n_obst, i):
                determinant = _det(dr[i, 0], dr[i, 1], dr[j, 0], dr[j, 1])
                if abs(determinant) <= _EPS:
                    if dr[i, 0] * dr[j, 0] + dr[i, 1] * dr[j, 1] > 0.0:
                        continue  # same direction: line j is implied by line i
                    ppt[m, 0] = 0.5 * (pt[i, 0] + pt[j, 0])
                    ppt[m, 1] = 0.5 * (pt[i, 1] + pt[j, 1])
                else:
                    s = _det(dr[j, 0], dr[j, 1], pt[i, 0] - pt[j, 0], pt[i, 1] - pt[j, 1])
                    s /= determinant
                    ppt[m, 0] = pt[i, 0] + s * dr[i, 0]
                    ppt[m, 1] = pt[i, 1] + s * dr[i, 1]
                ddx = dr[j, 0] - dr[i, 0]
                ddy = dr[j, 1] - dr[i, 1]
                norm = math.sqrt(ddx * ddx + ddy * ddy)
                pdr[m, 0] = ddx / norm
                pdr[m, 1] = ddy / norm
                m += 1
            r0, r1 = res[0], res[1]
            if _lp2(ppt, pdr, m, radius, -dr[i, 1], dr[i, 0], True, res) < m:
                # only rounding can get here; keep the last good answer
                res[0], res[1] = r0, r1
            distance = _det(dr[i, 0], dr[i, 1], pt[i, 0] - res[0], pt[i, 1] - res[1])


@njit(cache=True, inline="always")
def _brake(
    res: FloatArray,
    vx: float,
    vy: float,
    d: float,
    gx: float,
    gy: float,
    accel: float,
    f_margin: float,
    step: float,
) -> None:  # pragma: no cover - compiled
    """The program bounds the commanded velocity ``res``, but the drone reaches it only at its
    acceleration, and spends that on the sideways part of a dodge too. Once its present closing
    speed on the fence (gradient ``g``, distance ``d``) leaves no more room than it needs to
    stop short of the hard margin, all of the acceleration goes to braking: keep the sideways
    velocity it has and change only the part toward the fence."""
    closing = -(vx * gx + vy * gy)
    if closing <= 0.0 or d <= f_margin:
        return
    need = closing * closing / (2.0 * accel) + 2.0 * closing * step
    if need >= d - f_margin:
        away = max(res[0] * gx + res[1] * gy, 0.0)
        res[0] = vx + (closing + away) * gx
        res[1] = vy + (closing + away) * gy


@njit(cache=True, inline="always")
def _fence_limit(
    d: float,
    gx: float,
    gy: float,
    px: float,
    py: float,
    vmax: float,
    f_margin: float,
    f_time: float,
) -> float:  # pragma: no cover - compiled
    """The least velocity c along the fence's inward gradient (gx, gy), at distance ``d``,
    that a manoeuvre may have (the permitted side {v : g.v >= c}): closing on the fence no
    faster than reaches the hard margin in f_time, nor (outside the margin) than the plan
    (px, py) itself does; inside the margin, away from it."""
    c = -(d - f_margin) / f_time
    if d > f_margin:
        c = min(px * gx + py * gy, c)
    return min(c, 0.5 * vmax)


@njit(cache=True, inline="always")
def _brake_fence(
    res: FloatArray,
    vx: float,
    vy: float,
    near: FloatArray,
    k: int,
    accel: float,
    f_margin: float,
    step: float,
) -> None:  # pragma: no cover - compiled
    """:func:`_brake` for the fence edge of ``near`` with the least room to stop in."""
    worst, room = -1, math.inf
    for j in range(k):
        d, gx, gy = near[j, 0], near[j, 1], near[j, 2]
        closing = -(vx * gx + vy * gy)
        if closing <= 0.0 or d <= f_margin:
            continue
        left = d - f_margin - (closing * closing / (2.0 * accel) + 2.0 * closing * step)
        if left < room:
            worst, room = j, left
    if worst >= 0:
        d, gx, gy = near[worst, 0], near[worst, 1], near[worst, 2]
        _brake(res, vx, vy, d, gx, gy, accel, f_margin, step)


@njit(cache=True, parallel=True)
def _orca(
    pos: FloatArray,
    z: FloatArray,
    vel: FloatArray,
    pref: FloatArray,
    pref_vz: FloatArray,
    vmax: FloatArray,
    accel: FloatArray,
    indptr: NDArray[np.int64],
    nbr: NDArray[np.int64],
    f_edges: FloatArray,
    f_grid: FloatArray,
    f_indptr: NDArray[np.int64],
    f_items: NDArray[np.int64],
    f_ref: FloatArray,
    f_inside: NDArray[np.bool_],
    f_reach: float,
    f_margin: float,
    f_time: float,
    radius: float,
    tau: float,
    inv_dt: float,
    band: float,
    lookahead: float,
    max_neighbors: int,
    out: FloatArray,
    out_vz: FloatArray,
) -> None:  # pragma: no cover - compiled
    """ORCA for every drone; ``out_vz`` holds the preferred vertical velocities on entry."""
    n = len(pos)
    r = 2.0 * radius
    for i in prange(n):
        lo, hi = indptr[i], indptr[i + 1]
        px, py = pref[i, 0], pref[i, 1]
        sp = math.sqrt(px * px + py * py)
        if sp > vmax[i]:
            px *= vmax[i] / sp
            py *= vmax[i] / sp
        # the fence edges nearest the drone: the program's hard line is the nearest's, and
        # braking is judged against all of them
        near = np.empty((FENCE_EDGES, 3))
        n_fence = 0
        if f_reach > 0.0:
            n_fence = edges_near(
                f_edges,
                f_grid,
                f_indptr,
                f_items,
                f_ref,
                f_inside,
                f_reach,
                pos[i, 0],
                pos[i, 1],
                near,
            )
        if hi == lo:
            # alone: the plan, within the fence's limit (the same line as below) and braking
            res1 = np.empty(2)
            res1[0], res1[1] = px, py
            if n_fence:
                # the nearest edge's line (the same as below), then braking for any
                d, gx, gy = near[0, 0], near[0, 1], near[0, 2]
                c = _fence_limit(d, gx, gy, px, py, vmax[i], f_margin, f_time)
                short = c - (px * gx + py * gy)
                if short > 0.0:
                    res1[0] += short * gx
                    res1[1] += short * gy
                _brake_fence(
                    res1, vel[i, 0], vel[i, 1], near, n_fence, accel[i], f_margin, 1.0 / inv_dt
                )
            out[i, 0], out[i, 1] = res1[0], res1[1]
            continue
        # the nearest max_neighbors in this drone's band
        cand = nbr[lo:hi]
        d2 = np.empty(hi - lo)
        wz = pref_vz[i]
        for k in range(hi - lo):
            j = cand[k]
            dz = z[j] - z[i]
            ex = pos[j, 0] - pos[i, 0]
            ey = pos[j, 1] - pos[i, 1]
            h2 = ex * ex + ey * ey
            if abs(dz) < band:
                d2[k] = h2
                continue
            d2[k] = np.inf
            # climbing or descending toward a horizontally close neighbour's band: stop short
            # of it, at our acceleration, until the neighbour has gone
            if lookahead > 0.0 and wz * dz > 0.0:
                rvx = vel[j, 0] - vel[i, 0]
                rvy = vel[j, 1] - vel[i, 1]
                # as they fly now, or as they are about to (one levelling off beside the
                # column sets off along its course): the faster closing of the two
                pvx = pref[j, 0] - pref[i, 0]
                pvy = pref[j, 1] - pref[i, 1]
                close = max(rvx * rvx + rvy * rvy, pvx * pvx + pvy * pvy)
                reach = r + math.sqrt(close) * lookahead
                if h2 < reach * reach:
                    gap = max(abs(dz) - band - 0.5, 0.0)
                    allow = math.sqrt(2.0 * accel[i] * gap)
                    if abs(wz) > allow:
                        wz = allow if wz > 0.0 else -allow
        out_vz[i] = wz
        order = np.argsort(d2)
        cap = max_neighbors + 1
        pt = np.empty((cap, 2))
        dr = np.empty((cap, 2))
        n_lines = 0
        if n_fence:
            # the nearest edge's line comes first, and is never relaxed (see _lp3); the
            # permitted side is left of (g.y, -g.x)
            d, gx, gy = near[0, 0], near[0, 1], near[0, 2]
            c = _fence_limit(d, gx, gy, px, py, vmax[i], f_margin, f_time)
            pt[0, 0], pt[0, 1] = c * gx, c * gy
            dr[0, 0], dr[0, 1] = gy, -gx
            n_lines = 1
        n_obst = n_lines
        vx, vy = vel[i, 0], vel[i, 1]
        conflict = False
        r2 = r * r
        inv_tau = 1.0 / tau
        for k in range(min(max_neighbors, hi - lo)):
            if d2[order[k]] == np.inf:
                break
            j = cand[order[k]]
            rpx = pos[j, 0] - pos[i, 0]
            rpy = pos[j, 1] - pos[i, 1]
            rvx = vx - vel[j, 0]
            rvy = vy - vel[j, 1]
            dist2 = rpx * rpx + rpy * rpy
            if dist2 > r2:
                # w: from the centre of the truncation circle to the relative velocity
                wx = rvx - inv_tau * rpx
                wy = rvy - inv_tau * rpy
                wl2 = wx * wx + wy * wy
                dot1 = wx * rpx + wy * rpy
                if dot1 < 0.0 and dot1 * dot1 > r2 * wl2:
                    wl = math.sqrt(wl2)
                    ux_, uy_ = wx / wl, wy / wl
                    dx, dy = uy_, -ux_
                    s = r * inv_tau - wl
                    ux, uy = s * ux_, s * uy_
                else:
                    leg = math.sqrt(dist2 - r2)
                    if _det(rpx, rpy, wx, wy) > 0.0:
                        dx = (rpx * leg - rpy * r) / dist2
                        dy = (rpx * r + rpy * leg) / dist2
                    else:
                        dx = -(rpx * leg + rpy * r) / dist2
                        dy = -(-rpx * r + rpy * leg) / dist2
                    dot2 = rvx * dx + rvy * dy
                    ux = dot2 * dx - rvx
                    uy = dot2 * dy - rvy
            else:
                # already too close: get apart within one step
                wx = rvx - inv_dt * rpx
                wy = rvy - inv_dt * rpy
                wl = math.sqrt(wx * wx + wy * wy)
                if wl < 1e-12:
                    wx, wy, wl = -rpx, -rpy, max(math.sqrt(dist2), 1e-12)
                ux_, uy_ = wx / wl, wy / wl
                dx, dy = uy_, -ux_
                s = r * inv_dt - wl
                ux, uy = s * ux_, s * uy_
            pt[n_lines, 0] = vx + 0.5 * ux
            pt[n_lines, 1] = vy + 0.5 * uy
            dr[n_lines, 0] = dx
            dr[n_lines, 1] = dy
            if _det(dx, dy, pt[n_lines, 0] - px, pt[n_lines, 1] - py) > 0.0:
                conflict = True
            n_lines += 1
        if conflict:
            # keep right: a plan that conflicts with a neighbour is turned a little clockwise,
            # so two drones meeting exactly head-on pass each other instead of both braking
            # on the line between them (ORCA alone is symmetric there and stalls)
            px, py = (
                px * _KEEP_RIGHT_COS + py * _KEEP_RIGHT_SIN,
                py * _KEEP_RIGHT_COS - px * _KEEP_RIGHT_SIN,
            )
        res = np.empty(2)
        failed = _lp2(pt, dr, n_lines, vmax[i], px, py, False, res)
        if failed < n_lines:
            ppt = np.empty((cap, 2))
            pdr = np.empty((cap, 2))
            _lp3(pt, dr, n_lines, n_obst, failed, vmax[i], res, ppt, pdr)
        _brake_fence(res, vel[i, 0], vel[i, 1], near, n_fence, accel[i], f_margin, 1.0 / inv_dt)
        out[i, 0], out[i, 1] = res[0], res[1]
