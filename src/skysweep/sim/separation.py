"""Tactical separation: optimal reciprocal collision avoidance (ORCA) over the whole fleet.

Each drone wants to fly its planned ("preferred") velocity. For every neighbour in the same
altitude band, the velocities that would bring the two closer than the combined radius within
``time_horizon_s`` form a velocity obstacle; ORCA turns it into a half-plane of permitted
velocities and makes each drone take half of the avoiding (van den Berg, Guy, Lin and Manocha,
"Reciprocal n-body collision avoidance", ISRR 2009). The new velocity is the permitted one
closest to the preferred velocity within the drone's top speed: a two-dimensional linear program
per drone, solved in a compiled kernel (numba), one drone per iteration, both cores in parallel.

The geofence is a hard constraint of that program, placed before every neighbour's: a manoeuvre
may close on the fence no faster than the plan itself does, nor faster than brings the drone to
``fence_hard_margin_m`` from it in ``fence_time_s``. When the neighbours' constraints cannot all
be met, the program relaxes them (never the fence's) by the least amount, as in ORCA's
three-dimensional fallback.

Neighbours come from :meth:`scipy.spatial.cKDTree.query_pairs` (:mod:`skysweep.proximity`);
each drone keeps the ``max_neighbors`` nearest. Positions are local metres (x east, y north,
altitude); velocities m/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

from skysweep.fence import FenceField
from skysweep.geo import FloatArray
from skysweep.gridfield import lookup
from skysweep.proximity import VERTICAL_BAND_M, pairs_within

_EPS = 1e-5


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


def separate(
    pos_m: FloatArray,
    vel_mps: FloatArray,
    pref_vel_mps: FloatArray,
    max_speed_mps: FloatArray,
    active: NDArray[np.bool_],
    params: SeparationParams,
    dt_s: float,
    fence: FenceField | None = None,
) -> SeparationResult:
    """New horizontal velocities (n, 2) for the fleet; inactive drones keep their preferred one.

    ``pos_m`` is (n, 2) or (n, 3) (with altitude, for the bands); ``vel_mps`` the current and
    ``pref_vel_mps`` the planned horizontal velocities, (n, 2).
    """
    pos = np.ascontiguousarray(pos_m, dtype=np.float64)
    n = len(pos)
    vmax = np.ascontiguousarray(np.broadcast_to(max_speed_mps, (n,)), dtype=np.float64)
    top = float(vmax[active].max()) if active.any() else 0.0
    pairs = pairs_within(pos, active, params.neighbor_dist(top))
    pref = np.ascontiguousarray(pref_vel_mps[:, :2], dtype=np.float64)
    if not len(pairs):
        # nobody near anybody: fly the plan (within top speed)
        speed = np.hypot(pref[:, 0], pref[:, 1])
        scale = np.where(active, np.minimum(1.0, vmax / np.maximum(speed, 1e-12)), 1.0)
        return SeparationResult(pref * scale[:, None], pairs, 0)
    z = pos[:, 2] if pos.shape[1] >= 3 else np.zeros(n)
    vel = np.ascontiguousarray(vel_mps[:, :2], dtype=np.float64)
    indptr, nbr = _csr(n, pairs[:, 0], pairs[:, 1])
    if fence is not None:
        f_field, f_geo = fence.field, fence.geo
    else:
        f_field, f_geo = np.zeros((2, 2, 3)), np.zeros(0)
    out = np.empty((n, 2))
    radius = 0.5 * (params.min_separation_m + params.buffer_m)
    _orca(
        pos[:, :2].copy(),
        z.copy(),
        vel,
        pref,
        vmax,
        indptr,
        nbr,
        f_field,
        f_geo,
        params.fence_hard_margin_m,
        params.fence_time_s,
        radius,
        params.time_horizon_s,
        1.0 / dt_s,
        params.vertical_band_m,
        params.max_neighbors,
        out,
    )
    inactive = ~active
    out[inactive] = pref[inactive]
    moved = np.hypot(*(out - pref).T) > 0.01
    return SeparationResult(out, pairs, int(moved.sum()))


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
def _fence_at(
    field: FloatArray, geo: FloatArray, x: float, y: float
) -> tuple[float, float, float]:  # pragma: no cover - compiled
    """Signed distance and inward unit gradient of the fence field at (x, y)."""
    d, off = lookup(field, geo, x, y, 0)
    gx, _ = lookup(field, geo, x, y, 1)
    gy, _ = lookup(field, geo, x, y, 2)
    norm = max(math.sqrt(gx * gx + gy * gy), 1e-9)
    # beyond the grid the point is farther out still
    return d - off, gx / norm, gy / norm


@njit(cache=True, parallel=True)
def _orca(
    pos: FloatArray,
    z: FloatArray,
    vel: FloatArray,
    pref: FloatArray,
    vmax: FloatArray,
    indptr: NDArray[np.int64],
    nbr: NDArray[np.int64],
    f_field: FloatArray,
    f_geo: FloatArray,
    f_margin: float,
    f_time: float,
    radius: float,
    tau: float,
    inv_dt: float,
    band: float,
    max_neighbors: int,
    out: FloatArray,
) -> None:  # pragma: no cover - compiled
    n = len(pos)
    for i in prange(n):
        lo, hi = indptr[i], indptr[i + 1]
        px, py = pref[i, 0], pref[i, 1]
        sp = math.sqrt(px * px + py * py)
        if sp > vmax[i]:
            px *= vmax[i] / sp
            py *= vmax[i] / sp
        if hi == lo:
            out[i, 0], out[i, 1] = px, py
            continue
        # the nearest max_neighbors in this drone's band
        cand = nbr[lo:hi]
        d2 = np.empty(hi - lo)
        for k in range(hi - lo):
            j = cand[k]
            if abs(z[j] - z[i]) >= band:
                d2[k] = np.inf
            else:
                ex = pos[j, 0] - pos[i, 0]
                ey = pos[j, 1] - pos[i, 1]
                d2[k] = ex * ex + ey * ey
        order = np.argsort(d2)
        cap = max_neighbors + 1
        pt = np.empty((cap, 2))
        dr = np.empty((cap, 2))
        n_lines = 0
        n_obst = 0
        if len(f_geo):
            d, gx, gy = _fence_at(f_field, f_geo, pos[i, 0], pos[i, 1])
            # closing on the fence: no faster than the plan does, nor than reaches the hard
            # margin in f_time; the permitted side {v : g.v >= c} is left of (g.y, -g.x)
            c = min(px * gx + py * gy, -(d - f_margin) / f_time)
            c = min(c, 0.5 * vmax[i])
            pt[0, 0], pt[0, 1] = c * gx, c * gy
            dr[0, 0], dr[0, 1] = gy, -gx
            n_lines = 1
            n_obst = 1
        vx, vy = vel[i, 0], vel[i, 1]
        r = 2.0 * radius
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
            n_lines += 1
        res = np.empty(2)
        failed = _lp2(pt, dr, n_lines, vmax[i], px, py, False, res)
        if failed < n_lines:
            ppt = np.empty((cap, 2))
            pdr = np.empty((cap, 2))
            _lp3(pt, dr, n_lines, n_obst, failed, vmax[i], res, ppt, pdr)
        out[i, 0], out[i, 1] = res[0], res[1]
