"""A concave ground cut into arms, each swept along its own length.

One lane direction suits a rectangle, not an L or a U: lanes along one arm cross the other
arm in short pieces, and the drones sent there fly far out to short lanes and far back. Cut at
its deep inner corners, the ground falls into parts that are each nearly a rectangle; each
part's lanes run along its own long axis, so a drone's pair of lanes runs out along an arm and
back, and its trip ends where it began.

A cut runs from an inner (reflex) corner of the ground's outline straight on along one of the
corner's two edges until it meets the outline again. The cut kept is the one that makes the
parts most nearly rectangles (their area over their minimum rotated rectangles', weighted by
area); parts are cut again while that gains enough. Holes are left to the lanes, which run
around them in bands.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.ops import split

from skysweep.geo import FloatArray, oriented_box, oriented_box_areas

#: Parts a ground is cut into, at most.
MAX_PARTS = 4
#: A cut is kept only if the parts' rectangularity (area over their minimum rotated
#: rectangles') gains this much over the part it cuts.
MIN_GAIN = 0.08
#: A part more nearly a rectangle than this (its area over its minimum rotated rectangle's)
#: is not cut: the shares of a field among sites come out about 0.7 to 0.8, and their cuts
#: never won, while an L is 0.5 and a five-pointed star 0.4.
MAX_RECTANGULARITY = 0.7
#: A ground more nearly convex than this (its area, holes filled, over its convex hull's) is
#: not cut: the sites' shares of the suite's open fields are 0.85 to 0.97 and their cuts never
#: won, while the L of l-valley-12 is 0.67 and the arms of star-40 and river-16 0.44 to 0.56.
MAX_CONVEXITY = 0.8
#: First cuts looked ahead from, the best first, at most.
LOOKAHEAD = 3
#: Inner corners of a part tried for cuts, the deepest first, at most.
MAX_CORNERS = 8
#: A part smaller than this share of the part it was cut from is not worth a lawnmower.
MIN_SHARE = 0.08


def arm_parts(ground: shapely.Geometry, spacing_m: float) -> list[shapely.Polygon]:
    """``ground`` (local metres) cut at its deep inner corners into at most
    :data:`MAX_PARTS` parts that are each nearly a rectangle; the polygons of a multi-part
    ground are parts already. Corners shallower than ``spacing_m`` (a lane's width) are
    ignored. An empty list when there is nothing to cut: one part that no cut improves, a
    ground more nearly convex than :data:`MAX_CONVEXITY`, or one in more pieces than
    :data:`MAX_PARTS` (scattered, not arms)."""
    parts: list[shapely.Polygon] = [
        p for p in shapely.get_parts(ground) if isinstance(p, shapely.Polygon) and p.area > 0
    ]
    if not parts or len(parts) > MAX_PARTS:
        return []
    filled = [shapely.Polygon(p.exterior) for p in parts]
    hull = shapely.convex_hull(shapely.multipolygons(filled))
    if sum(p.area for p in filled) > MAX_CONVEXITY * hull.area:
        return []
    cut_any = False
    while len(parts) < MAX_PARTS:
        found = _best_cut(parts, spacing_m, lookahead=len(parts) + 2 <= MAX_PARTS)
        if found is None:
            break
        k, pieces = found
        parts[k : k + 1] = pieces
        cut_any = True
    return parts if cut_any or len(parts) > 1 else []


def _best_cut(
    parts: list[shapely.Polygon], spacing_m: float, lookahead: bool
) -> tuple[int, list[shapely.Polygon]] | None:
    """The cut of one of ``parts`` that makes them most nearly rectangles, if it gains
    :data:`MIN_GAIN`: (the part's index, its pieces). With ``lookahead``, where no single cut
    gains enough, two cuts of one part together may (a U's two arms: cut off one and the rest
    is an L, no more a rectangle than the U was); then the first of them."""
    best: tuple[float, int, list[shapely.Polygon]] | None = None
    firsts: list[tuple[float, int, list[shapely.Polygon]]] = []
    for k, part in enumerate(parts):
        own = rectangularity([part])
        if own > MAX_RECTANGULARITY:
            continue
        for pieces in _cuts(part, spacing_m):
            first = (rectangularity(pieces) - own, k, pieces)
            firsts.append(first)
            if best is None or first[0] > best[0]:
                best = first
    if best is not None and best[0] >= MIN_GAIN:
        return best[1], best[2]
    if not lookahead:
        return None
    pairs: tuple[float, int, list[shapely.Polygon]] | None = None
    firsts.sort(key=lambda f: -f[0])
    for _, k, pieces in firsts[:LOOKAHEAD]:
        own = rectangularity([parts[k]])
        for j, piece in enumerate(pieces):
            for again in _cuts(piece, spacing_m):
                gain = rectangularity([*again, pieces[1 - j]]) - own
                if gain >= MIN_GAIN and (pairs is None or gain > pairs[0]):
                    pairs = (gain, k, pieces)
    return None if pairs is None else (pairs[1], pairs[2])


def rectangularity(parts: list[shapely.Polygon]) -> float:
    """The parts' area over the area of their minimum rotated rectangles, weighted by area (1
    for rectangles); holes are filled (the lanes run around them in any part)."""
    area = np.array([shapely.Polygon(p.exterior).area for p in parts])
    rect = oriented_box_areas(np.array(parts, dtype=object))
    return float(np.sum(area) / np.sum(np.maximum(rect, 1e-9)))


def long_axis(part: shapely.Geometry) -> float:
    """The direction of ``part``'s minimum rotated rectangle's longer side, radians from east
    in [0, π)."""
    rect = oriented_box(part)
    if len(rect) < 4:
        return 0.0
    e1, e2 = rect[1] - rect[0], rect[2] - rect[1]
    e = e1 if np.hypot(*e1) >= np.hypot(*e2) else e2
    return float(np.arctan2(e[1], e[0])) % np.pi


def _cuts(part: shapely.Polygon, spacing_m: float) -> list[list[shapely.Polygon]]:
    """The two pieces of every straight cut of ``part`` from one of its inner corners along one
    of the corner's edges, both pieces at least :data:`MIN_SHARE` of it."""
    outline = shapely.Polygon(part.exterior).simplify(spacing_m / 2)
    if not isinstance(outline, shapely.Polygon) or outline.is_empty:
        return []
    outline = shapely.geometry.polygon.orient(outline, 1.0)
    xy = np.asarray(outline.exterior.coords)[:-1, :2]
    if len(xy) < 5:  # a triangle or a quadrilateral has no inner corner worth a cut
        return []
    prev, nxt = np.roll(xy, 1, axis=0), np.roll(xy, -1, axis=0)
    d_in, d_out = xy - prev, nxt - xy
    cross = d_in[:, 0] * d_out[:, 1] - d_in[:, 1] * d_out[:, 0]
    reach = float(np.hypot(*np.ptp(xy, axis=0))) + 1.0
    inner = np.flatnonzero(cross < 0)  # counter-clockwise: a right turn is an inner corner
    # the deepest corners only: how far each lies in from the outline's convex hull
    hull = shapely.convex_hull(outline).exterior
    depth = shapely.distance(hull, shapely.points(xy[inner]))
    inner = inner[np.argsort(-depth, kind="stable")[:MAX_CORNERS]]
    out = []
    for k in inner.tolist():
        for d in (d_in[k], -d_out[k]):
            n = float(np.hypot(*d))
            if n < spacing_m:
                continue
            pieces = _cut(part, xy[k], d / n, reach)
            if pieces is not None and min(p.area for p in pieces) >= MIN_SHARE * part.area:
                out.append(pieces)
    return out


def _cut(
    part: shapely.Polygon, corner: FloatArray, direction: FloatArray, reach_m: float
) -> list[shapely.Polygon] | None:
    """``part`` cut by the straight line from ``corner`` along ``direction`` to where it first
    leaves the part; None unless that gives two polygons."""
    ray = shapely.LineString([corner - direction, corner + direction * reach_m])
    inside = shapely.intersection(ray, part)
    segments = [g for g in shapely.get_parts(inside) if g.length > 1.0]
    if not segments:
        return None
    # the segment that starts at the corner
    seg = min(segments, key=lambda g: g.distance(shapely.Point(corner)))
    if seg.distance(shapely.Point(corner)) > 1.0:
        return None
    a, b = np.asarray(seg.coords)[[0, -1], :2]
    knife = shapely.LineString([a - direction, b + direction])
    try:
        pieces = [g for g in split(part, knife).geoms if isinstance(g, shapely.Polygon)]
    except (ValueError, shapely.errors.GEOSException):
        return None
    if len(pieces) != 2:
        return None
    return pieces
