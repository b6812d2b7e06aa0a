"""The geofence as an exact signed distance: how far each point is from leaving the allowed space.

The allowed space is the keep-in area minus every keep-out zone; its boundary is a set of
straight edges (local metres). Near the boundary the distance is exact: the plane is cut into
square buckets, each listing the edges within ``reach_m`` of it, so a lookup tests only the few
edges near the point instead of the whole fence. Whether the point is inside comes from a
reference point of its bucket (tested once, when the table is built) and the parity of the
edges crossed on the way from there to the point: every edge that could be crossed is in the
bucket's list.
Farther than ``reach_m`` from every edge, the distance is reported as ``reach_m`` (or
``-reach_m`` outside) with a zero gradient: nothing that far away constrains a drone.

Positive distances are inside the allowed space, negative ones outside; the gradient is the unit
vector pointing into the allowed space (away from the nearest fence point inside it, towards it
outside). Lookups are compiled (numba) so that the simulator's kernels can call
:func:`distance_at` per drone, and :meth:`FenceField.sample` does a whole array at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from numba import njit
from numpy.typing import NDArray

from skysweep.geo import FloatArray

#: Bucket side, metres: small enough that a bucket lists few edges, large enough that a big
#: mission needs few buckets.
DEFAULT_CELL_M = 50.0
#: Distances beyond this are not resolved: a drone farther than this from every fence is not
#: constrained by it.
DEFAULT_REACH_M = 100.0


@dataclass(frozen=True)
class FenceField:
    """The fence's edges, bucketed for exact signed-distance lookups; local metres."""

    edges: FloatArray
    """(m, 4) every boundary edge as x0, y0, x1, y1."""
    grid: FloatArray
    """(5,) x0, y0 of the lower-left bucket's corner, the bucket side, buckets in x and in y."""
    indptr: NDArray[np.int64]
    """(buckets + 1,) bucket b lists ``items[indptr[b]:indptr[b + 1]]``; b = row * nx + col."""
    items: NDArray[np.int64]
    """Edge indices near each bucket."""
    ref: FloatArray
    """(buckets, 2) a reference point in each bucket, off every edge: its centre, or near it
    where the centre lies on the fence."""
    inside: NDArray[np.bool_]
    """(buckets,) whether each bucket's reference point is in the allowed space."""
    reach_m: float

    @property
    def cell_m(self) -> float:
        return float(self.grid[2])

    @property
    def tables(
        self,
    ) -> tuple[
        FloatArray, FloatArray, NDArray[np.int64], NDArray[np.int64], FloatArray, NDArray[np.bool_]
    ]:
        """The arrays :func:`distance_at` takes, in its order."""
        return self.edges, self.grid, self.indptr, self.items, self.ref, self.inside

    @classmethod
    def build(
        cls,
        keep_in: shapely.Geometry,
        keep_out: Sequence[shapely.Geometry] = (),
        *,
        cell_m: float = DEFAULT_CELL_M,
        reach_m: float = DEFAULT_REACH_M,
    ) -> FenceField:
        """The fence of the space inside ``keep_in`` and outside every zone of ``keep_out``
        (polygonal geometries, local metres)."""
        if keep_in.is_empty:
            raise ValueError("the keep-in area is empty")
        allowed = keep_in
        if keep_out:
            allowed = shapely.difference(keep_in, shapely.union_all(list(keep_out)))
        edges = _edges(allowed)
        if not len(edges):
            raise ValueError("nothing is left inside the fence")
        x0, y0, x1, y1 = keep_in.bounds
        pad = reach_m + cell_m
        x0, y0 = x0 - pad, y0 - pad
        nx = math.ceil((x1 + pad - x0) / cell_m)
        ny = math.ceil((y1 + pad - y0) / cell_m)
        col, row = np.meshgrid(np.arange(nx), np.arange(ny))
        bx = x0 + col.ravel() * cell_m
        by = y0 + row.ravel() * cell_m
        boxes = shapely.box(bx, by, bx + cell_m, by + cell_m)
        lines = shapely.linestrings(edges.reshape(-1, 2, 2))
        bucket, edge = shapely.STRtree(lines).query(boxes, predicate="dwithin", distance=reach_m)
        order = np.lexsort((edge, bucket))
        bucket, edge = bucket[order], edge[order]
        indptr = np.zeros(nx * ny + 1, np.int64)
        np.add.at(indptr, bucket + 1, 1)
        np.cumsum(indptr, out=indptr)
        ref = np.column_stack([bx, by]) + 0.5 * cell_m
        _off_the_fence(ref, lines, indptr, cell_m)
        shapely.prepare(allowed)
        inside = shapely.contains_xy(allowed, ref[:, 0], ref[:, 1])
        grid = np.array([x0, y0, cell_m, nx, ny], np.float64)
        return cls(edges, grid, indptr, edge.astype(np.int64), ref, inside, float(reach_m))

    def sample(self, xy_m: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Signed distance (n,) and inward unit gradient (n, 2) at points ``xy_m`` (n, 2)."""
        xy = np.ascontiguousarray(np.asarray(xy_m, float).reshape(-1, 2))
        return _sample(*self.tables, self.reach_m, xy)


#: Where to look for a reference point when a bucket's centre is on the fence (fractions of
#: a bucket, off the lattice that fence vertices on round coordinates tend to lie on).
_NUDGES = ((0.1234, 0.2718), (-0.3141, 0.1414), (0.2236, -0.3316), (-0.1732, -0.2449))


def _off_the_fence(
    ref: FloatArray, lines: NDArray[np.object_], indptr: NDArray[np.int64], cell_m: float
) -> None:
    """Move, in place, the reference points that lie on (within a micrometre of) an edge."""
    near = np.flatnonzero(np.diff(indptr) > 0)
    tree = shapely.STRtree(lines)
    for dx, dy in ((0.0, 0.0), *_NUDGES):
        if not len(near):
            return
        trial = ref[near] + np.array([dx, dy]) * cell_m
        hit = tree.query(shapely.points(trial), predicate="dwithin", distance=1e-6)[0]
        clear = np.setdiff1d(np.arange(len(near)), hit)
        ref[near[clear]] = trial[clear]
        near = near[np.unique(hit)]
    raise ValueError("the fence passes through every reference point of a bucket")


def _edges(allowed: shapely.Geometry) -> FloatArray:
    """(m, 4) the edges of every ring of a polygonal geometry."""
    rings = shapely.get_rings(shapely.get_parts(allowed))
    out = []
    for ring in rings:
        c = shapely.get_coordinates(ring)
        seg = np.hstack([c[:-1], c[1:]])
        out.append(seg[np.hypot(seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1]) > 0.0])
    return np.vstack(out) if out else np.zeros((0, 4))


# -- compiled lookups -----------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _crosses(
    ax: float, ay: float, bx: float, by: float, e: FloatArray
) -> bool:  # pragma: no cover - compiled
    """Whether segment a-b crosses edge e, counting an edge's start but not its end, so that a
    path through a shared vertex crosses once."""
    ex, ey = e[2] - e[0], e[3] - e[1]
    sx, sy = bx - ax, by - ay
    den = sx * ey - sy * ex
    if den == 0.0:
        return False
    wx, wy = e[0] - ax, e[1] - ay
    t = (wx * ey - wy * ex) / den  # along a-b
    u = (wx * sy - wy * sx) / den  # along the edge
    return 0.0 <= t <= 1.0 and 0.0 <= u < 1.0


@njit(cache=True, inline="always")
def _walk(
    edges: FloatArray,
    grid: FloatArray,
    indptr: NDArray[np.int64],
    items: NDArray[np.int64],
    ref: FloatArray,
    inside: NDArray[np.bool_],
    reach: float,
    x: float,
    y: float,
    out: FloatArray,
) -> tuple[int, float, float]:  # pragma: no cover - compiled
    """The bucket walk behind :func:`distance_at` and :func:`edges_near`. Fills rows
    (distance, x - px, y - py) of ``out`` (k, 3) for the fence edges nearest (x, y) within
    ``reach``, nearest first, one per nearest point (px, py) (edges meeting at a corner nearest
    to the point count once; points on the fence itself are left out). Returns how many rows
    it filled, the side (1 inside the allowed space, -1 outside) and the distance to the
    fence's nearest point (0 on it, ``reach`` if none is nearer). Off the table (beyond the
    keep-in area's box plus ``reach``): no rows, outside, ``reach``."""
    fx = (x - grid[0]) / grid[2]
    fy = (y - grid[1]) / grid[2]
    nx, ny = int(grid[3]), int(grid[4])
    if not (0.0 <= fx < nx and 0.0 <= fy < ny):
        return 0, -1.0, reach
    b = int(fy) * nx + int(fx)
    lo, hi = indptr[b], indptr[b + 1]
    cx, cy = ref[b, 0], ref[b, 1]
    cap = len(out)
    n = 0
    nearest = reach
    crossings = 0
    for k in range(lo, hi):
        e = edges[items[k]]
        if _crosses(cx, cy, x, y, e):
            crossings += 1
        ex, ey = e[2] - e[0], e[3] - e[1]
        t = ((x - e[0]) * ex + (y - e[1]) * ey) / (ex * ex + ey * ey)
        t = min(max(t, 0.0), 1.0)
        dx, dy = x - (e[0] + t * ex), y - (e[1] + t * ey)
        d = math.sqrt(dx * dx + dy * dy)
        if d >= reach:
            continue
        nearest = min(nearest, d)
        if d <= 1e-9 or (n == cap and d >= out[n - 1, 0]):
            continue
        seen = False
        for j in range(n):  # (the same nearest point: the same offset from (x, y))
            seen = seen or abs(out[j, 1] - dx) + abs(out[j, 2] - dy) <= 1e-6
        if seen:
            continue
        # insert in order of distance, dropping the farthest when full
        j = min(n, cap - 1)
        while j > 0 and out[j - 1, 0] > d:
            out[j] = out[j - 1]
            j -= 1
        out[j, 0], out[j, 1], out[j, 2] = d, dx, dy
        n = min(n + 1, cap)
    return n, (1.0 if inside[b] != (crossings % 2 == 1) else -1.0), nearest


@njit(cache=True, inline="always")
def _distance(
    edges: FloatArray,
    grid: FloatArray,
    indptr: NDArray[np.int64],
    items: NDArray[np.int64],
    ref: FloatArray,
    inside: NDArray[np.bool_],
    reach: float,
    x: float,
    y: float,
    buf: FloatArray,
) -> tuple[float, float, float]:  # pragma: no cover - compiled
    """:func:`distance_at`, with a (1, 3) scratch row."""
    n, sign, d = _walk(edges, grid, indptr, items, ref, inside, reach, x, y, buf)
    if d <= 1e-9:
        return 0.0, 0.0, 0.0  # on the fence itself: no direction is better than another
    if n == 0:
        return sign * reach, 0.0, 0.0
    return sign * d, sign * buf[0, 1] / d, sign * buf[0, 2] / d


@njit(cache=True)
def distance_at(
    edges: FloatArray,
    grid: FloatArray,
    indptr: NDArray[np.int64],
    items: NDArray[np.int64],
    ref: FloatArray,
    inside: NDArray[np.bool_],
    reach: float,
    x: float,
    y: float,
) -> tuple[float, float, float]:  # pragma: no cover - compiled
    """Signed distance (m) to the fence at (x, y) and the inward unit gradient (gx, gy).

    Beyond ``reach`` of every edge: (+-reach, 0, 0). Off the table (beyond the keep-in area's
    box plus ``reach``): outside, ``-reach``.
    """
    buf = np.empty((1, 3))
    return _distance(edges, grid, indptr, items, ref, inside, reach, x, y, buf)


@njit(cache=True)
def edges_near(
    edges: FloatArray,
    grid: FloatArray,
    indptr: NDArray[np.int64],
    items: NDArray[np.int64],
    ref: FloatArray,
    inside: NDArray[np.bool_],
    reach: float,
    x: float,
    y: float,
    out: FloatArray,
) -> int:  # pragma: no cover - compiled
    """The fence edges nearest (x, y) within ``reach``, nearest first, as rows (signed
    distance, inward unit gradient gx, gy) of ``out`` (k, 3), one per nearest point (edges
    meeting at a corner nearest to the point count once); outside the allowed space, the
    nearest alone. Returns how many rows are filled.

    :func:`distance_at` gives the first row alone; a drone moving along one fence edge towards
    another (in a corner, or past a zone's corner) must see the second before it is nearest.
    """
    n, sign, _ = _walk(edges, grid, indptr, items, ref, inside, reach, x, y, out)
    if sign < 0.0:
        # outside (a drone being led out of a zone laid over it): the way back in is past
        # the nearest edge; towards any other it would lead into another zone
        n = min(n, 1)
    for j in range(n):
        d = out[j, 0]
        out[j, 0] = sign * d
        out[j, 1] = sign * out[j, 1] / d
        out[j, 2] = sign * out[j, 2] / d
    return n


@njit(cache=True)
def _sample(
    edges: FloatArray,
    grid: FloatArray,
    indptr: NDArray[np.int64],
    items: NDArray[np.int64],
    ref: FloatArray,
    inside: NDArray[np.bool_],
    reach: float,
    xy: FloatArray,
) -> tuple[FloatArray, FloatArray]:  # pragma: no cover - compiled
    n = len(xy)
    d = np.empty(n)
    g = np.empty((n, 2))
    buf = np.empty((1, 3))
    for i in range(n):
        d[i], g[i, 0], g[i, 1] = _distance(
            edges, grid, indptr, items, ref, inside, reach, xy[i, 0], xy[i, 1], buf
        )
    return d, g


# -- sight lines ----------------------------------------------------------------------------------


def segments_clear(field: FenceField, a: FloatArray, b: FloatArray) -> NDArray[np.bool_]:
    """Whether each segment ``a[k]``-``b[k]`` (local metres) meets no fence edge, touching
    included. With one end in the allowed space, a clear segment lies in it."""
    a = np.ascontiguousarray(np.asarray(a, float).reshape(-1, 2))
    b = np.ascontiguousarray(np.asarray(b, float).reshape(-1, 2))
    return _segments_clear(field.edges, field.grid, field.indptr, field.items, a, b)


@njit(cache=True, inline="always")
def _orient(ax: float, ay: float, bx: float, by: float, cx: float, cy: float) -> float:
    return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)  # pragma: no cover - compiled


@njit(cache=True, inline="always")
def _meets(
    ax: float, ay: float, bx: float, by: float, e: FloatArray
) -> bool:  # pragma: no cover - compiled
    """Whether segment a-b and edge e share a point (touching counts)."""
    cx, cy, dx, dy = e[0], e[1], e[2], e[3]
    d1 = _orient(cx, cy, dx, dy, ax, ay)
    d2 = _orient(cx, cy, dx, dy, bx, by)
    d3 = _orient(ax, ay, bx, by, cx, cy)
    d4 = _orient(ax, ay, bx, by, dx, dy)
    if ((d1 > 0 and d2 < 0) or (d1 < 0 and d2 > 0)) and (
        (d3 > 0 and d4 < 0) or (d3 < 0 and d4 > 0)
    ):
        return True
    # touching or collinear: an end of one lies on the other
    if d1 == 0 and min(cx, dx) <= ax <= max(cx, dx) and min(cy, dy) <= ay <= max(cy, dy):
        return True
    if d2 == 0 and min(cx, dx) <= bx <= max(cx, dx) and min(cy, dy) <= by <= max(cy, dy):
        return True
    if d3 == 0 and min(ax, bx) <= cx <= max(ax, bx) and min(ay, by) <= cy <= max(ay, by):
        return True
    return d4 == 0 and min(ax, bx) <= dx <= max(ax, bx) and min(ay, by) <= dy <= max(ay, by)


@njit(cache=True)
def _segments_clear(
    edges: FloatArray,
    grid: FloatArray,
    indptr: NDArray[np.int64],
    items: NDArray[np.int64],
    a: FloatArray,
    b: FloatArray,
) -> NDArray[np.bool_]:  # pragma: no cover - compiled
    n = len(a)
    out = np.ones(n, np.bool_)
    for k in range(n):
        out[k] = segment_clear(edges, grid, indptr, items, a[k, 0], a[k, 1], b[k, 0], b[k, 1])
    return out


@njit(cache=True, inline="always")
def segment_clear(
    edges: FloatArray,
    grid: FloatArray,
    indptr: NDArray[np.int64],
    items: NDArray[np.int64],
    ax: float,
    ay: float,
    bx: float,
    by: float,
) -> bool:  # pragma: no cover - compiled
    """Whether segment a-b meets no fence edge (:func:`segments_clear`, compiled callers): it
    is walked through the buckets it crosses (Amanatides and Woo's traversal) and tested
    against their edges."""
    x0g, y0g, cell = grid[0], grid[1], grid[2]
    nx, ny = int(grid[3]), int(grid[4])
    fx0, fy0 = (ax - x0g) / cell, (ay - y0g) / cell
    fx1, fy1 = (bx - x0g) / cell, (by - y0g) / cell
    ix, iy = math.floor(fx0), math.floor(fy0)
    ex, ey = math.floor(fx1), math.floor(fy1)
    ddx, ddy = fx1 - fx0, fy1 - fy0
    sx = 1 if ddx > 0 else -1
    sy = 1 if ddy > 0 else -1
    tx = ((ix + (1 if ddx > 0 else 0)) - fx0) / ddx if ddx != 0 else np.inf
    ty = ((iy + (1 if ddy > 0 else 0)) - fy0) / ddy if ddy != 0 else np.inf
    dtx = abs(1.0 / ddx) if ddx != 0 else np.inf
    dty = abs(1.0 / ddy) if ddy != 0 else np.inf
    for _ in range(abs(ex - ix) + abs(ey - iy) + 1):
        if 0 <= ix < nx and 0 <= iy < ny:
            bucket = iy * nx + ix
            for j in range(indptr[bucket], indptr[bucket + 1]):
                if _meets(ax, ay, bx, by, edges[items[j]]):
                    return False
        if ix == ex and iy == ey:
            break
        if tx < ty:
            ix += sx
            tx += dtx
        else:
            iy += sy
            ty += dty
    return True
