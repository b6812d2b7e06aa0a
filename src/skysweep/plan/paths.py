"""Shortest paths that stay in the flyable region, around keep-out zones.

A visibility graph over the reflex corners of the flyable region (its keep-out holes and concave
keep-in corners), solved once for all pairs with scipy's Dijkstra. A query from ``a`` to ``b``
flies straight when it can, else joins the graph at the corners both ends can see.
"""

from __future__ import annotations

import math
import weakref

import numpy as np
import shapely
from numba import njit, prange
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from shapely.ops import nearest_points

from skysweep.errors import InfeasibleError
from skysweep.fence import FenceField, segment_clear, segments_clear
from skysweep.geo import FloatArray
from skysweep.mission import Mission

#: The first ellipse of corners tried for a path, times the shortest way through one corner.
_ELLIPSE_START = 1.25
#: Corners are taken this far inside the flyable region, metres, so that graph edges never
#: graze a fence because of rounding.
INSET_M = 0.5
#: How many of a point's nearest corners (by path length through them) are picked one by one
#: when finding distances to many points; the rest are sorted only for a point that sees none.
_FIRST_CORNERS = 8
#: PathFinder.of's cache: a mission's id → (a weak reference to it, its finder).
_OF_MISSION: dict[int, tuple[weakref.ref[Mission], PathFinder]] = {}


class PathFinder:
    """Shortest collision-free paths in a flyable region (local metres)."""

    @classmethod
    def of(cls, mission: Mission) -> PathFinder:
        """The finder over ``mission.flyable``, built once per mission object: planning and
        every re-plan of the mission share it (building one takes about 0.1 s with 50
        keep-outs, a fifth of the re-planning budget)."""
        key = id(mission)
        hit = _OF_MISSION.get(key)
        if hit is not None and hit[0]() is mission:
            return hit[1]
        finder = cls(mission.flyable)
        _OF_MISSION[key] = (weakref.ref(mission, lambda _: _OF_MISSION.pop(key, None)), finder)
        return finder

    def __init__(self, flyable: shapely.Geometry) -> None:
        self.flyable = flyable
        shapely.prepare(flyable)
        inner = flyable.buffer(-INSET_M, join_style="mitre").simplify(INSET_M / 4)
        self._inner = inner
        # a segment with an end in the region stays in it unless it meets the boundary: the
        # boundary's edges bucketed on a grid, each segment walked through its buckets
        x0, y0, x1, y1 = flyable.bounds
        cell = max(20.0, float(np.sqrt((x1 - x0) * (y1 - y0) / 40_000)))
        self._fence = FenceField.build(flyable, cell_m=cell, reach_m=1e-3)
        self.nodes = _reflex_corners(inner)
        # in a convex region every point in it is in sight of every other
        self._convex = (
            isinstance(flyable, shapely.Polygon)
            and not len(flyable.interiors)
            and float(flyable.area) >= (1.0 - 1e-9) * float(shapely.convex_hull(flyable).area)
        )
        n = len(self.nodes)
        if n:
            i, j = np.triu_indices(n, k=1)
            ok = self.visible(self.nodes[i], self.nodes[j], touching=False)
            i, j = i[ok], j[ok]
            w = np.hypot(*(self.nodes[i] - self.nodes[j]).T)
            graph = csr_matrix((np.r_[w, w], (np.r_[i, j], np.r_[j, i])), shape=(n, n))
            self._dist, self._pred = dijkstra(graph, directed=False, return_predecessors=True)
        else:
            self._dist = np.zeros((0, 0))
            self._pred = np.zeros((0, 0), int)

    def visible(self, a: FloatArray, b: FloatArray, *, touching: bool = True) -> np.ndarray:
        """Whether each segment ``a[k]``-``b[k]`` lies in the region (one end of each must).

        With ``touching=False`` a segment that touches the boundary counts as blocked: much
        faster, and right for points strictly inside (a graze is of no use to a path).
        """
        a = np.asarray(a, float).reshape(-1, 2)
        b = np.asarray(b, float).reshape(-1, 2)
        clear = segments_clear(self._fence, a, b)
        hit = np.flatnonzero(~clear)
        if not len(hit):
            return clear
        if touching:
            # only a segment that meets an edge can leave the region; of those, the ones that
            # merely touch the boundary are in it
            lines = shapely.linestrings(np.stack([a[hit], b[hit]], axis=1))
            clear[hit] = shapely.covered_by(lines, self.flyable)
            hit = hit[~clear[hit]]
        # a segment of (nearly) no length lies where its end does: np.isclose's own test,
        # without its wrapper's cost on the hot path
        ah, bh = a[hit], b[hit]
        clear[hit[np.all(np.abs(ah - bh) <= 1e-8 + 1e-5 * np.abs(bh), axis=1)]] = True
        return clear

    def inside(self, p: FloatArray) -> FloatArray:
        """``p`` itself if it is flyable, else the nearest point well inside the region."""
        p = np.asarray(p, float)
        # (a point is covered by the region exactly when it meets it)
        if shapely.intersects_xy(self.flyable, p[0], p[1]):
            return p
        near = nearest_points(self._inner, shapely.Point(p))[0]
        return np.array([near.x, near.y])

    def path(self, a: FloatArray, b: FloatArray) -> FloatArray:
        """Polyline (k, 2) from ``a`` to ``b`` inside the flyable region, both ends included.

        An end outside the region (a launch pad within the geofence margin, say) is first joined
        straight to the nearest flyable point. Raises :class:`InfeasibleError` when ``b`` cannot
        be reached from ``a``.
        """
        a = np.asarray(a, float)[:2]
        b = np.asarray(b, float)[:2]
        a_in, b_in = self.inside(a), self.inside(b)
        core = self._core(a_in, b_in)
        # (an end inside is returned as it is; one outside is moved well inside)
        head = [a] if np.any(a != a_in) else []
        tail = [b] if np.any(b != b_in) else []
        return np.vstack([*head, core, *tail])

    def paths(self, a: FloatArray, b: FloatArray) -> list[FloatArray]:
        """:meth:`path` from each ``a[k]`` to ``b[k]`` ((n, 2) each), the same paths found
        together: first which fly straight (most of a re-plan's hops), then the ways round
        obstacles between ends in the region, in one compiled pass (a plan's lane connectors
        round its keep-outs, thousands of them). An end on the fence sees a corner where the
        line to it touches the fence only at that end (:data:`_NUDGE_M`): :meth:`path` asks
        GEOS whether the line lies in the region, which differs only where the line grazes
        the fence again. Raises :class:`InfeasibleError` as :meth:`path` does."""
        a = np.asarray(a, float).reshape(-1, 2)
        b = np.asarray(b, float).reshape(-1, 2)
        inside = shapely.intersects_xy(self.flyable, a[:, 0], a[:, 1])
        inside &= shapely.intersects_xy(self.flyable, b[:, 0], b[:, 1])
        straight = inside.copy()
        straight[inside] = self.visible(a[inside], b[inside])
        out: list[FloatArray | None] = [
            np.vstack([a[k], b[k]]) if straight[k] else None for k in range(len(a))
        ]
        round_ = np.flatnonzero(inside & ~straight)
        if len(round_) and len(self.nodes):
            f = self._fence
            u, w, state = _detours(
                f.edges, f.grid, f.indptr, f.items, self.nodes, self._dist,
                a[round_], b[round_], _ELLIPSE_START,
            )  # fmt: skip
            for k, uk, wk, sk in zip(round_, u, w, state, strict=True):
                if sk == _FOUND:
                    out[k] = np.vstack([a[k], self.nodes[self._chain(uk, wk)], b[k]])
                else:
                    raise InfeasibleError(f"no flyable path from {_fmt(a[k])} to {_fmt(b[k])}")
        # (ends outside the region: as :meth:`path` finds them, one by one)
        return [self.path(a[k], b[k]) if p is None else p for k, p in enumerate(out)]

    def _chain(self, u: int, w: int) -> list[int]:
        """The corners of the graph's shortest path from corner ``u`` to corner ``w``."""
        chain = [int(w)]
        while chain[-1] != u:
            chain.append(int(self._pred[u, chain[-1]]))
        return chain[::-1]

    def length(self, a: FloatArray, b: FloatArray) -> float:
        p = self.path(a, b)
        return float(np.hypot(*np.diff(p, axis=0).T).sum())

    def distances_from(self, src: FloatArray, points: FloatArray) -> FloatArray:
        """Flyable shortest-path length from ``src`` to each of ``points`` (k, 2), metres.

        Straight where the line is flyable, else through the corner graph; ``inf`` where a
        point cannot be reached. Used for many points at once, so no paths are built.
        """
        src = self.inside(np.asarray(src, float)[:2])
        points = np.asarray(points, float).reshape(-1, 2)
        out = np.hypot(*(points - src).T)
        if not len(points):
            return out
        if self._convex:
            out[~shapely.contains_xy(self.flyable, points[:, 0], points[:, 1])] = np.inf
            return out
        blocked = ~self.visible(np.broadcast_to(src, points.shape), points, touching=False)
        n = len(self.nodes)
        if not blocked.any():
            return out
        if n == 0:
            out[blocked] = np.inf
            return out
        sees = self.visible(np.repeat(src[None], n, 0), self.nodes, touching=False)
        via = np.where(sees, np.hypot(*(self.nodes - src).T), np.inf)
        to_node = np.min(via[:, None] + self._dist, axis=0)  # src → every corner
        f = self._fence
        out[blocked] = _through_seen(
            f.edges, f.grid, f.indptr, f.items, points[blocked], self.nodes, to_node, _FIRST_CORNERS
        )
        return out

    def _sees(self, p: FloatArray, which: NDArray[np.intp]) -> NDArray[np.intp]:
        """The corners ``which`` in sight of ``p``. Corners are strictly inside, so a sight
        line that touches the fence is blocked unless ``p`` itself lies on the fence (then the
        exact, slower test decides)."""
        ends = np.repeat(p[None], len(which), 0)
        seen = which[self.visible(ends, self.nodes[which], touching=False)]
        if not len(seen):
            seen = which[self.visible(ends, self.nodes[which])]
        return seen

    def _core(self, a: FloatArray, b: FloatArray) -> FloatArray:
        if self.visible(a, b)[0]:
            return np.vstack([a, b])
        n = len(self.nodes)
        if n == 0:
            raise InfeasibleError(f"no flyable path from {_fmt(a)} to {_fmt(b)}")
        # every corner of a path of length L lies in the ellipse |a − c| + |c − b| ≤ L: the
        # corners are tried in growing ellipses, only theirs tested for sight, until the
        # shortest path through them is no longer than the ellipse's L
        ellipse = np.hypot(*(self.nodes - a).T) + np.hypot(*(self.nodes - b).T)
        reach = max(_ELLIPSE_START * float(ellipse.min()), 1.0)  # (grows from a metre at least)
        while True:
            near = np.flatnonzero(ellipse <= reach)
            found = self._through(a, b, near)
            if len(near) == n or (found is not None and found[0] <= reach):
                break
            reach *= 2.0
        if found is None:
            raise InfeasibleError(f"no flyable path from {_fmt(a)} to {_fmt(b)}")
        return found[1]

    def _through(
        self, a: FloatArray, b: FloatArray, which: NDArray[np.intp]
    ) -> tuple[float, FloatArray] | None:
        """The shortest path from ``a`` to ``b`` that joins the corner graph at corners
        ``which`` (its length, its polyline), or None if there is none."""
        va, vb = self._sees(a, which), self._sees(b, which)
        if not len(va) or not len(vb):
            return None
        da = np.hypot(*(self.nodes[va] - a).T)
        db = np.hypot(*(self.nodes[vb] - b).T)
        total = da[:, None] + self._dist[np.ix_(va, vb)] + db[None, :]
        k = int(np.argmin(total))
        if not np.isfinite(total.flat[k]):
            return None
        u, w = int(va[k // len(vb)]), int(vb[k % len(vb)])
        return float(total.flat[k]), np.vstack([a, self.nodes[self._chain(u, w)], b])


def _fmt(p: FloatArray) -> str:
    return f"({p[0]:.0f} m E, {p[1]:.0f} m N)"


def _reflex_corners(region: shapely.Geometry) -> FloatArray:
    """Corners of the region where the free space bends around an obstacle (angle > 180°)."""
    rings = []
    for poly in shapely.get_parts(region):
        poly = shapely.geometry.polygon.orient(poly, 1.0)
        rings.append(poly.exterior)
        rings.extend(poly.interiors)
    out = []
    for ring in rings:
        xy = np.asarray(ring.coords)[:-1, :2]
        if len(xy) < 3:
            continue
        prev = np.roll(xy, 1, axis=0)
        nxt = np.roll(xy, -1, axis=0)
        cross = (xy[:, 0] - prev[:, 0]) * (nxt[:, 1] - xy[:, 1]) - (xy[:, 1] - prev[:, 1]) * (
            nxt[:, 0] - xy[:, 0]
        )
        # free space lies left of an oriented ring; a right turn wraps around an obstacle
        out.append(xy[cross < 0])
    return np.vstack(out) if out else np.empty((0, 2))


#: What :func:`_detours` found for a pair: a path, or none at all.
_FOUND, _NO_PATH = 0, 1
#: An end on the fence (a lane's end on a keep-out's margin) is moved this far, metres,
#: towards a corner to tell whether the sight line, which touches the fence there, runs inside
#: the region (as :meth:`PathFinder.visible` decides with ``touching=True``).
_NUDGE_M = 1e-6


@njit(cache=True)
def _sight(
    edges: FloatArray,
    grid: FloatArray,
    indptr: NDArray[np.int64],
    items: NDArray[np.int64],
    x: float,
    y: float,
    node: FloatArray,
    touching: bool,
) -> bool:  # pragma: no cover - compiled
    """Whether corner ``node`` is in sight of (x, y), as :meth:`PathFinder.visible` has it:
    with ``touching`` False a line that touches the fence is blocked; with it True one that
    touches it only where it leaves (x, y) is in sight. A corner where the point is, within
    np.isclose's tolerance, is in sight."""
    nx, ny = node[0], node[1]
    if segment_clear(edges, grid, indptr, items, x, y, nx, ny):
        return True
    if abs(x - nx) <= 1e-8 + 1e-5 * abs(nx) and abs(y - ny) <= 1e-8 + 1e-5 * abs(ny):
        return True
    if not touching:
        return False
    step = _NUDGE_M / math.hypot(nx - x, ny - y)
    x, y = x + step * (nx - x), y + step * (ny - y)
    return segment_clear(edges, grid, indptr, items, x, y, nx, ny)


@njit(cache=True)
def _seen(
    edges: FloatArray,
    grid: FloatArray,
    indptr: NDArray[np.int64],
    items: NDArray[np.int64],
    x: float,
    y: float,
    nodes: FloatArray,
    near: NDArray[np.bool_],
    strict: NDArray[np.int8],
    loose: NDArray[np.int8],
) -> NDArray[np.bool_]:  # pragma: no cover - compiled
    """Which corners among ``near`` are in sight of (x, y), as :meth:`PathFinder._sees` has
    it: those in strict sight, or if there are none, those in sight touching the fence.
    ``strict`` and ``loose`` keep each corner's answers (0: not asked yet, 1: yes, 2: no)."""
    n = len(nodes)
    out = np.zeros(n, np.bool_)
    anything = False
    for c in range(n):
        if near[c]:
            if strict[c] == 0:
                strict[c] = 1 if _sight(edges, grid, indptr, items, x, y, nodes[c], False) else 2
            out[c] = strict[c] == 1
            anything = anything or out[c]
    if anything:
        return out
    for c in range(n):
        if near[c]:
            if loose[c] == 0:
                loose[c] = 1 if _sight(edges, grid, indptr, items, x, y, nodes[c], True) else 2
            out[c] = loose[c] == 1
    return out


@njit(cache=True, parallel=True)
def _detours(
    edges: FloatArray,
    grid: FloatArray,
    indptr: NDArray[np.int64],
    items: NDArray[np.int64],
    nodes: FloatArray,
    dist: FloatArray,
    a: FloatArray,
    b: FloatArray,
    start: float,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int8]]:  # pragma: no cover
    """For each pair ``a[p]``, ``b[p]`` (in the region, not in sight of each other): the
    corners where its shortest path joins and leaves the corner graph (``dist``: all-pairs
    lengths), and :data:`_FOUND` or :data:`_NO_PATH`. As :meth:`PathFinder._core` searches,
    step for step: corners in growing ellipses round the ends, the first least total in the
    same order. Each corner's sight of an end is tested once. The fence's tables are
    :class:`~skysweep.fence.FenceField`'s."""
    m, n = len(a), len(nodes)
    u_out = np.full(m, -1, np.int64)
    w_out = np.full(m, -1, np.int64)
    state = np.full(m, _NO_PATH, np.int8)
    for p in prange(m):
        ax, ay, bx, by = a[p, 0], a[p, 1], b[p, 0], b[p, 1]
        da = np.empty(n)
        db = np.empty(n)
        ellipse = np.empty(n)
        for c in range(n):
            da[c] = math.hypot(nodes[c, 0] - ax, nodes[c, 1] - ay)
            db[c] = math.hypot(nodes[c, 0] - bx, nodes[c, 1] - by)
            ellipse[c] = da[c] + db[c]
        reach = max(start * ellipse.min(), 1.0)
        strict_a, loose_a = np.zeros(n, np.int8), np.zeros(n, np.int8)
        strict_b, loose_b = np.zeros(n, np.int8), np.zeros(n, np.int8)
        while True:
            near = ellipse <= reach
            va = _seen(edges, grid, indptr, items, ax, ay, nodes, near, strict_a, loose_a)
            vb = _seen(edges, grid, indptr, items, bx, by, nodes, near, strict_b, loose_b)
            best = np.inf
            for u in range(n):
                if not va[u]:
                    continue
                for w in range(n):
                    if vb[w] and da[u] + dist[u, w] + db[w] < best:
                        best = da[u] + dist[u, w] + db[w]
                        u_out[p], w_out[p] = u, w
            found = np.isfinite(best)
            if near.all() or (found and best <= reach):
                state[p] = _FOUND if found else _NO_PATH
                break
            reach *= 2.0
    return u_out, w_out, state


@njit(cache=True, parallel=True)
def _through_seen(
    edges: FloatArray,
    grid: FloatArray,
    indptr: NDArray[np.int64],
    items: NDArray[np.int64],
    pts: FloatArray,
    nodes: FloatArray,
    to_node: FloatArray,
    first: int,
) -> FloatArray:  # pragma: no cover - compiled
    """(k,) each of ``pts``'s length from the source through the best corner it sees: its
    length to the corner (``to_node``) plus the leg on; ``inf`` where it sees none. The
    ``first`` best corners are found in one pass and tried in turn, the rest sorted only for
    a point that sees none of them. The fence's tables are
    :class:`~skysweep.fence.FenceField`'s."""
    m, n = len(pts), len(nodes)
    k = min(n, first)
    # a corner's length through it is at least its length from the source: taken nearest the
    # source first, the pass stops at the first corner that can no longer be among the best
    near_first = np.argsort(to_node, kind="mergesort")
    out = np.full(m, np.inf)
    for p in prange(m):
        px, py = pts[p, 0], pts[p, 1]
        # the k best corners, best first (ties: the lower index)
        best = np.full(k, -1, np.int64)
        best_t = np.full(k, np.inf)
        for c in near_first if k else near_first[:0]:
            if not to_node[c] < best_t[k - 1]:
                break  # (this and every corner after it: out of reach, or no better)
            dx, dy = px - nodes[c, 0], py - nodes[c, 1]
            t = to_node[c] + math.sqrt(dx * dx + dy * dy)
            if t < best_t[k - 1] or (t == best_t[k - 1] and c < best[k - 1]):
                i = k - 1
                while i > 0 and (best_t[i - 1] > t or (best_t[i - 1] == t and best[i - 1] > c)):
                    best_t[i], best[i] = best_t[i - 1], best[i - 1]
                    i -= 1
                best_t[i], best[i] = t, c
        done = False
        for i in range(k):
            j = best[i]
            if j < 0:
                done = True  # every corner left is out of reach
                break
            if segment_clear(edges, grid, indptr, items, px, py, nodes[j, 0], nodes[j, 1]):
                out[p] = best_t[i]
                done = True
                break
        if done or k == n:
            continue
        total = np.empty(n)
        for c in range(n):
            dx, dy = px - nodes[c, 0], py - nodes[c, 1]
            total[c] = to_node[c] + math.sqrt(dx * dx + dy * dy)
        for i in range(k):
            total[best[i]] = np.inf
        for j in np.argsort(total, kind="mergesort"):
            if not np.isfinite(total[j]):
                break
            if segment_clear(edges, grid, indptr, items, px, py, nodes[j, 0], nodes[j, 1]):
                out[p] = total[j]
                break
    return out
