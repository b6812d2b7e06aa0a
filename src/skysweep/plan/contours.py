"""Contour lanes: a ground swept along rings that follow its edge, outermost first.

Straight lanes across a long, winding ground (a river valley, a crescent, a moor's arms) are
short and many. Every lane costs two turns, and a drone sent to the far end flies there over
ground that others sweep. Lanes that follow the edge instead, each ring the ground's edge
offset inwards by one more track spacing, run along it: a drone sweeps out along one side and
home along the other. This is the contour-parallel pattern of coverage path planning (a
field's headland passes are its first rings).

Three things make the rings cover the whole ground (local metres throughout):

- ring k lies (k + ½) spacings in from the edge, so each sees the band half a spacing either
  side of it;
- a ring flies a short spur out and back along the bisector of each convex corner. The
  offsets of a corner of interior angle α lie spacing / sin(α/2) apart, more than a spacing,
  and the wedge between them would go unseen;
- what is still unseen (the core of a part that ends between two rings, a corner too sharp to
  pull) gets *patch* lanes: a thin piece one lane along its long axis, a wider one rings of
  its own. Each is flown as a detour from the ring segment nearest it.

:mod:`skysweep.plan.snake` splits these lanes among a site's drones as it does straight
lawnmowers, and keeps whichever lands first.
"""

from __future__ import annotations

import numpy as np
import shapely
from numpy.typing import NDArray
from scipy.spatial import cKDTree
from shapely.geometry.polygon import orient

from skysweep.geo import FloatArray, oriented_box

#: Arcs of an offset (around a concave corner of the ground) in quarter-circles of this many
#: segments: 22.5° turns, which a drone takes at most of its cruise speed.
QUAD_SEGS = 4
#: Rings are simplified to this tolerance, metres (fewer, longer lanes; far below a swath).
SIMPLIFY_M = 0.5
#: A convex corner's spur is at most this many track spacings long: what a sharper corner
#: leaves unseen is left to the patches.
MAX_SPUR_SPACINGS = 1.0
#: Shorter spurs are not flown, metres (a corner of 150° or more needs none at 50 m).
MIN_SPUR_M = 1.0
#: A spur's tip stays at least this far inside the ground, metres (as a lane's ends do).
SPUR_INSET_M = 0.25
#: Unseen pieces smaller than this share of a track spacing squared are left (numerical
#: slivers along the rings' seams, a few square metres).
MIN_PATCH_SPACINGS2 = 0.02
#: A patch piece no wider than this many track spacings is swept by one lane along its axis.
THIN_PATCH_SPACINGS = 1.0
#: Lanes shorter than this are dropped (their connector flies the gap), metres.
MIN_LANE_M = 1.0


def contour_rings(ground: shapely.Geometry, spacing_m: float) -> list[FloatArray]:
    """Closed rings (n + 1, 2) that sweep ``ground`` with lanes ``spacing_m`` apart, outermost
    level first, each oriented with the ring's own region on its left, with a spur into each
    of its convex corners (:func:`corner_spurs`). Patches are not included."""
    rings: list[FloatArray] = []
    # a spur stays this far inside the ground (a ring's corner need not face one of the
    # ground's: beside a hole its bisector can run out across a narrow neck)
    within = shapely.buffer(ground, -SPUR_INSET_M)
    shapely.prepare(within)
    k = 0
    while True:
        level = shapely.buffer(ground, -(k + 0.5) * spacing_m, quad_segs=QUAD_SEGS)
        if level.is_empty:
            return rings
        for part in shapely.get_parts(shapely.simplify(level, SIMPLIFY_M)):
            if not isinstance(part, shapely.Polygon) or part.is_empty:
                continue
            part = orient(part, 1.0)
            for ring in (part.exterior, *part.interiors):
                xy = np.asarray(ring.coords)[:, :2]
                if len(xy) >= 4:
                    rings.append(corner_spurs(xy, spacing_m, within))
        k += 1


def corner_spurs(
    ring: FloatArray, spacing_m: float, within: shapely.Geometry | None = None
) -> FloatArray:
    """The closed ``ring`` (n + 1, 2), its region on the left, with a spur flown out and back
    from every convex corner along its bisector, (spacing/2)·(1/sin(α/2) − 1) long and at
    most :data:`MAX_SPUR_SPACINGS` spacings: so far that the corner sees half a spacing
    beyond the previous ring's corner (or the ground's own), as a straight stretch of the ring
    does. (Moving the corner itself would move its edges with it.) With ``within``, a spur
    that would leave it is cut short where it does (the patches see what it then misses)."""
    pts = ring[:-1]
    a = pts - np.roll(pts, 1, axis=0)  # into each vertex
    b = np.roll(pts, -1, axis=0) - pts  # out of it
    la, lb = np.hypot(*a.T), np.hypot(*b.T)
    ok = (la > 0) & (lb > 0)
    a = a / np.where(ok, la, 1.0)[:, None]
    b = b / np.where(ok, lb, 1.0)[:, None]
    left = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0] > 0
    sin_half = np.sqrt(np.clip((1.0 + np.sum(a * b, axis=1)) / 2.0, 0.0, 1.0))
    pull = np.minimum(
        0.5 * spacing_m * (1.0 / np.maximum(sin_half, 1e-9) - 1.0),
        MAX_SPUR_SPACINGS * spacing_m,
    )
    spur = ok & left & (pull >= MIN_SPUR_M)
    if not spur.any():
        return ring
    out_dir = a - b
    out_dir /= np.maximum(np.hypot(*out_dir.T), 1e-9)[:, None]
    tips = pts + pull[:, None] * out_dir
    if within is not None:
        tips, spur = _kept_inside(pts, tips, spur, within)
    # every vertex once, a spur's twice with its tip between: V, tip, V
    count = np.where(spur, 3, 1)
    at = np.cumsum(count) - count
    out = np.repeat(pts, count, axis=0)
    out[at[spur] + 1] = tips[spur]
    return np.vstack([out, out[:1]])


def _kept_inside(
    pts: FloatArray, tips: FloatArray, spur: NDArray[np.bool_], within: shapely.Geometry
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """``tips`` of the spurs out of ``pts``, each cut short where its spur first leaves
    ``within``; ``spur`` without those then shorter than :data:`MIN_SPUR_M`."""
    rows = np.flatnonzero(spur)
    lines = shapely.linestrings(np.stack([pts[rows], tips[rows]], axis=1))
    out = rows[~shapely.covers(within, lines)]
    if not len(out):
        return tips, spur
    tips, spur = tips.copy(), spur.copy()
    for i in out.tolist():
        start = shapely.Point(pts[i])
        inside = shapely.intersection(shapely.LineString([pts[i], tips[i]]), within)
        # the piece that begins at the corner (a ring's corner lies well inside the ground)
        piece = next((p for p in shapely.get_parts(inside) if p.distance(start) < 1e-6), None)
        if piece is None or piece.length < MIN_SPUR_M:
            spur[i] = False
            continue
        xy = np.asarray(piece.coords)
        tips[i] = xy[-1] if np.hypot(*(xy[0] - pts[i])) < 1e-6 else xy[0]
    return tips, spur


def patch_lanes(
    ground: shapely.Geometry, rings: list[FloatArray], spacing_m: float
) -> list[FloatArray]:
    """Polylines (n, 2) that sweep what ``rings`` leave unseen of ``ground`` (beyond half a
    ``spacing_m`` of every ring), piece by piece: one lane along a thin piece's long axis,
    cut to the ground, if that sees it; else the piece's own :func:`contour_rings`, and its
    edge as well if they leave some unseen."""
    if not rings:
        return []
    rest = shapely.difference(ground, _seen(rings, spacing_m))
    out: list[FloatArray] = []
    for piece in shapely.get_parts(rest):
        if piece.area < MIN_PATCH_SPACINGS2 * spacing_m**2:
            continue
        axis = _thin_axis(piece, ground, spacing_m)
        if axis is not None and _sees(piece, [axis], spacing_m):
            out.append(axis)
            continue
        own = contour_rings(piece, spacing_m)
        if not own or not _sees(piece, own, spacing_m):
            own.append(np.asarray(piece.exterior.coords)[:, :2])
        out += own
    return out


def _seen(lines: list[FloatArray], spacing_m: float) -> shapely.Geometry:
    """What polylines ``lines`` see: within half a track spacing (and a hair for rounding)."""
    strings = shapely.multilinestrings([shapely.linestrings(xy) for xy in lines])
    return shapely.buffer(strings, spacing_m / 2 + 0.25, quad_segs=2)


def _sees(piece: shapely.Geometry, lines: list[FloatArray], spacing_m: float) -> bool:
    """Whether ``lines`` see all of ``piece`` but slivers."""
    left = shapely.difference(piece, _seen(lines, spacing_m)).area
    return bool(left < MIN_PATCH_SPACINGS2 * spacing_m**2)


def _thin_axis(
    piece: shapely.Geometry, ground: shapely.Geometry, spacing_m: float
) -> FloatArray | None:
    """The long axis of ``piece``'s minimum rotated rectangle cut to ``ground`` (its longest
    stretch), if the rectangle is at most :data:`THIN_PATCH_SPACINGS` spacings wide."""
    box = oriented_box(piece)
    if len(box) < 4:
        return None
    side = np.hypot(*np.diff(np.vstack([box, box[:1]]), axis=0).T)
    if min(side[0], side[1]) > THIN_PATCH_SPACINGS * spacing_m:
        return None
    j = int(np.argmax(side[:2]))
    # through the middles of the two short sides
    a, b = (box[(j + 1) % 4] + box[(j + 2) % 4]) / 2, (box[(j + 3) % 4] + box[j]) / 2
    cut = shapely.intersection(shapely.LineString([b, a]), ground)
    lines = [g for g in shapely.get_parts(cut) if isinstance(g, shapely.LineString)]
    if not lines:
        return None
    longest = max(lines, key=lambda g: g.length)
    return np.asarray(longest.coords)[:, :2] if longest.length >= MIN_LANE_M else None


def contour_routes(
    ground: shapely.Geometry, spacing_m: float, start_xy: FloatArray
) -> list[FloatArray]:
    """Two orders of lanes ((L, 2, 2), in flying order) that sweep ``ground`` along its
    contours: the rings outermost first, each begun where it comes nearest the end of the one
    before (the first nearest ``start_xy``), flown one way round or the other; every patch
    flown right after the ring segment whose end is nearest it. Empty when the ground has no
    ring."""
    rings = contour_rings(ground, spacing_m)
    if not rings:
        return []
    patches = patch_lanes(ground, rings, spacing_m)
    out = []
    for forward in (True, False):
        loops = [r[:-1] if forward else r[:-1][::-1] for r in rings]
        ordered = _chain(loops, np.asarray(start_xy, float))
        segs = [np.stack([loop[:-1], loop[1:]], axis=1) for loop in ordered]
        out.append(_with_patches(segs, patches))
    return out


def _chain(loops: list[FloatArray], start_xy: FloatArray) -> list[FloatArray]:
    """``loops`` (each (n, 2), open) as closed polylines in the same order, each begun at its
    vertex nearest where the one before ends (the first: nearest ``start_xy``)."""
    out = []
    end = start_xy
    for loop in loops:
        out.append(_begun_at(loop, end))
        end = out[-1][-1]
    return out


def _begun_at(loop: FloatArray, xy: FloatArray) -> FloatArray:
    """The open ``loop`` (n, 2) closed, begun and ended at its vertex nearest ``xy``."""
    j = int(np.argmin(np.hypot(*(loop - xy).T)))
    return np.vstack([loop[j:], loop[:j], loop[j : j + 1]])


def _with_patches(segs: list[FloatArray], patches: list[FloatArray]) -> FloatArray:
    """The rings' segments (each ring's (m, 2, 2)) in order, every patch's lanes after the
    segment whose end is nearest it, begun at its end nearer there; lanes shorter than
    :data:`MIN_LANE_M` dropped: (L, 2, 2)."""
    lanes = np.concatenate(segs)
    after: dict[int, list[FloatArray]] = {}
    if patches:
        tree = cKDTree(lanes[:, 1])
    for patch in patches:
        dist, which = tree.query(patch[[0, -1]])
        k = int(np.argmin(dist))
        j = int(which[k])
        line = patch if k == 0 else patch[::-1]
        if len(line) > 2 and np.allclose(line[0], line[-1]):
            # a closed patch ring: begun at its vertex nearest the segment's end
            line = _begun_at(line[:-1], lanes[j, 1])
        after.setdefault(j, []).append(np.stack([line[:-1], line[1:]], axis=1))
    out = []
    for j in range(len(lanes)):
        out.append(lanes[j : j + 1])
        out += after.get(j, [])
    merged = np.concatenate(out)
    return merged[np.hypot(*(merged[:, 1] - merged[:, 0]).T) >= MIN_LANE_M]
