"""Boustrophedon (lawnmower) routes over one cell.

Lanes run along the cell's long axis, spaced evenly at no more than the swath. Each band of the
cell between two lane boundaries gets a lane through the middle of the band's own extent (so a
band cut short by a hole or a slanted edge is still covered) and as long as the band reaches;
lanes are then clipped to the flyable region and joined end to end, alternating direction, by
the shortest flyable connector.
"""

from __future__ import annotations

import numpy as np
import shapely
from numpy.typing import NDArray

from skysweep.geo import FloatArray, oriented_box, polygonal, rotation
from skysweep.plan.paths import PathFinder

#: Lane pieces shorter than this (metres) are dropped: the neighbouring lanes see them.
MIN_PIECE_M = 1.0
#: A strip of a band beside a fence's margin gets a lane of its own when it is at least this
#: many lane spacings long and a quarter of one wide (smaller ones, as beside a round keep-out,
#: are nearly all seen by the neighbouring lanes, and a lane there costs more than it sees).
STRIP_LANES = 4.0
#: A lane's kept pieces are taken this much longer (metres) at each end as what they sweep
#: when looking for strips they miss (:func:`_missed_strips`).
SLIVER_M = 1e-6
#: Lanes of one band closer than this end to start (metres; two END_INSET_M and a bit) are
#: one lane.
MERGE_GAP_M = 0.6
#: Lane ends are pulled in by this much (metres) so connectors start strictly inside the fence.
END_INSET_M = 0.25
#: Lane directions closer than this (radians, 0.06°) are one: over a 10 km ground their
#: lanes part by 10 m at the far end, a fifth of a swath.
SAME_DIRECTION_RAD = 1e-3


def sweep_route(
    cell: shapely.Geometry,
    swath_m: float,
    finder: PathFinder,
    home_xy: FloatArray,
    theta_rad: float | None = None,
) -> FloatArray:
    """A route (m, 2) that sweeps ``cell`` with track spacing ≤ ``swath_m``; empty if no cell.

    With ``theta_rad`` the lanes run that way (radians from east); otherwise the two axes of the
    cell's minimum rotated rectangle and the direction from home are tried. Lane counts are
    tried odd and even. Of those and of the four ways to start, the route kept is the shortest
    counting the flight from and back to ``home_xy``.
    """
    if cell.is_empty or cell.area < 1.0:
        return np.empty((0, 2))
    best: FloatArray | None = None
    best_cost = np.inf
    angles = _candidate_angles(cell, home_xy) if theta_rad is None else [theta_rad]
    # an odd count ends the route at the far side of the cell, an even one at the near side:
    # each is tried, for a cell a lane or so wide an even count can cost a whole lane more
    evens = (False, True)
    for theta in angles:
        for even in evens:
            pieces = _lane_pieces(cell, swath_m, theta, finder.flyable, even)
            if not pieces:
                continue
            for route in _orderings(pieces):
                cost = (
                    _polyline_len(route)
                    + np.hypot(*(route[0] - home_xy))
                    + np.hypot(*(route[-1] - home_xy))
                )
                if cost < best_cost:
                    best, best_cost = route, cost
    if best is None:
        return np.empty((0, 2))
    return connect_lanes(best, finder)


def lane_pieces(
    cell: shapely.Geometry, spacing_m: float, theta_rad: float, flyable: shapely.Geometry
) -> list[tuple[int, FloatArray]]:
    """Lanes over ``cell`` along ``theta_rad`` (radians from east), at most ``spacing_m``
    apart, clipped to ``flyable``: (band, (2, 2) ends left→right along the lanes), world
    frame, sorted by band and then along it."""
    return _lane_pieces(cell, spacing_m, theta_rad, flyable, even=False)


def lane_orderings(
    pieces: list[tuple[int, FloatArray]],
) -> list[tuple[FloatArray, NDArray[np.intp]]]:
    """The four lawnmowers over ``pieces`` (:func:`lane_pieces`): bands up (first lane
    forward, then backward), then bands down; each the lane ends in flying order, (2L, 2),
    not yet joined around obstacles (:func:`connect_lanes`), with each lane's band (lanes
    cut apart by a hole share one); an empty list if there are no pieces."""
    if not pieces:
        return []
    band = np.array([b for b, _ in pieces], np.intp)
    return piece_orderings(band, np.stack([xy for _, xy in pieces]))


def piece_orderings(
    band: NDArray[np.intp], ends: FloatArray
) -> list[tuple[FloatArray, NDArray[np.intp]]]:
    """:func:`lane_orderings` of pieces given as arrays: (P,) bands, (P, 2, 2) ends left→right,
    sorted by band and then along it."""
    return [merge_touching(xy, b) for xy, b in _boustrophedons(band, ends)]


def merge_touching(
    route: FloatArray, bands: NDArray[np.intp]
) -> tuple[FloatArray, NDArray[np.intp]]:
    """``route`` with every lane that starts where the one before ends (a cell's seam
    across the band) merged into it: one lane, not two."""
    lanes = route.reshape(-1, 2, 2)
    joined = (np.hypot(*(lanes[1:, 0] - lanes[:-1, 1]).T) < MERGE_GAP_M) & (bands[1:] == bands[:-1])
    if not joined.any():
        return route, bands
    first = np.flatnonzero(np.r_[True, ~joined])
    last = np.r_[first[1:] - 1, len(lanes) - 1]
    return np.stack([lanes[first, 0], lanes[last, 1]], axis=1).reshape(-1, 2), bands[first]


def connect_lanes(route: FloatArray, finder: PathFinder) -> FloatArray:
    """``route`` (lane ends in flying order) with every connector that leaves the flyable
    region replaced by the shortest flyable path."""
    return connect_lanes_at(route, finder)[0]


def connect_lanes_at(route: FloatArray, finder: PathFinder) -> tuple[FloatArray, NDArray[np.intp]]:
    """:func:`connect_lanes`, and where each point of ``route`` stands in the joined one."""
    # route alternates lane start, lane end; connectors run from each end to the next start
    ends, starts = route[1:-1:2], route[2::2]
    at = np.arange(len(route))
    if not len(ends):
        return route, at
    ok = finder.visible(ends, starts)
    if ok.all():
        return route, at
    blocked = np.flatnonzero(~ok)
    detours = [d[1:-1] for d in finder.paths(ends[blocked], starts[blocked])]
    added = np.zeros(len(ends), np.intp)  # the detour's points before lane k + 1
    added[blocked] = [len(d) for d in detours]
    # lane k + 1's two ends come after every detour before them; the detours fill the rest,
    # in order
    at[2:] += np.repeat(np.cumsum(added), 2)
    out = np.empty((len(route) + int(added.sum()), 2))
    out[at] = route
    gap = np.ones(len(out), np.bool_)
    gap[at] = False
    out[gap] = np.concatenate(detours)
    return out, at


def lane_directions(region: shapely.Geometry, step_deg: float) -> list[float]:
    """Lane directions worth trying over ``region``, radians from east in [0, π): every
    ``step_deg`` over a half turn, and the region's own axes (:func:`region_axes`)."""
    angles = [float(a) for a in np.deg2rad(np.arange(0.0, 180.0, step_deg))]
    for axis in region_axes(region):
        # an axis a hair off a direction already tried lays the same lanes again (a box's
        # axes come back 2.6e-7 rad off east and north): twice the planning for nothing
        gap = np.abs((np.array(angles) - axis + np.pi / 2) % np.pi - np.pi / 2)
        if gap.min() > SAME_DIRECTION_RAD:
            angles.append(axis)
    return angles


def region_axes(region: shapely.Geometry) -> list[float]:
    """The axes of ``region``'s minimum rotated rectangle, radians from east in [0, π)."""
    rect = oriented_box(region)
    if len(rect) < 4:
        return []
    return [float(np.arctan2(e[1], e[0])) % np.pi for e in (rect[1] - rect[0], rect[2] - rect[1])]


def _candidate_angles(cell: shapely.Geometry, home_xy: FloatArray) -> list[float]:
    """Lane directions worth trying: the cell's long and short axis, and radial from home
    (lanes pointing home let a route start and end at the cell's near edge)."""
    rect = oriented_box(cell)
    angles = []
    if len(rect) >= 4:
        e1, e2 = rect[1] - rect[0], rect[2] - rect[1]
        angles += [float(np.arctan2(e1[1], e1[0])), float(np.arctan2(e2[1], e2[0]))]
    c = np.asarray(cell.centroid.coords[0]) - home_xy
    if np.hypot(*c) > 1.0:
        radial = float(np.arctan2(c[1], c[0]))
        angles += [radial, radial + np.pi / 2]
    return angles or [0.0]


def _lane_pieces(
    cell: shapely.Geometry, swath_m: float, theta: float, flyable: shapely.Geometry, even: bool
) -> list[tuple[int, FloatArray]]:
    """Lane pieces as (band index, (2, 2) endpoints in travel order left→right), world frame.

    With ``even``, the lane count is rounded up to even, so that a route can start and end on
    the same side of the cell (the side nearest home).
    """
    to_lane = rotation(-theta)
    rotated = shapely.transform(cell, lambda xy: xy @ to_lane.T)
    x0, y0, x1, y1 = rotated.bounds
    n = max(1, int(np.ceil((y1 - y0) / swath_m - 1e-9)))
    n += int(even and n % 2 == 1)
    spacing = (y1 - y0) / n
    lo = y0 + spacing * np.arange(n)
    # rotating a valid cell with nearly coincident edges can leave it invalid, and an invalid
    # polygon cut into bands gives pieces it does not have (the reliability run's seed 755:
    # lanes 300 m beyond the area, half of it unswept) or an error (seed 361): made valid
    if not shapely.is_valid(rotated):
        rotated = shapely.make_valid(rotated)
    rotated = polygonal(rotated)
    try:
        cut = _cut_bands(rotated, x0 - 1.0, x1 + 1.0, lo, spacing)
    except shapely.errors.GEOSException:
        cut = _cut_bands(rotated.buffer(0), x0 - 1.0, x1 + 1.0, lo, spacing)
    parts, band_idx = shapely.get_parts(cut, return_index=True)
    keep = shapely.area(parts) > 1e-6
    parts, band_idx = parts[keep], band_idx[keep]
    if not len(parts):
        return []
    b = shapely.bounds(parts)
    ymid = 0.5 * (b[:, 1] + b[:, 3])
    starts = np.column_stack([b[:, 0], ymid]) @ to_lane  # back to world: rotate by +theta
    ends = np.column_stack([b[:, 2], ymid]) @ to_lane
    lines = shapely.linestrings(np.stack([starts, ends], axis=1))
    # most lanes are clear of every fence: only the others are clipped (a prepared test is far
    # cheaper than any cut)
    shapely.prepare(flyable)
    inside = shapely.contains_properly(flyable, lines)
    clear, crossing = np.flatnonzero(inside), np.flatnonzero(~inside)
    xy, src = np.stack([starts[clear], ends[clear]], axis=1), clear
    if len(crossing):
        # the crossing lanes cut along themselves where they cross the fence's rings, in the
        # lanes' frame (where they are level)
        lane, x0, x1 = scan_clip(ymid[crossing], b[crossing, 0], b[crossing, 2], flyable, to_lane)
        y = ymid[crossing][lane]
        bits = np.stack([np.column_stack([x0, y]), np.column_stack([x1, y])], axis=1) @ to_lane
        xy, src = np.concatenate([xy, bits]), np.concatenate([src, crossing[lane]])
        # a band's middle can lie in a fence's margin where the rest of it does not: the
        # strip beside the margin gets a lane of its own
        kept = np.bincount(lane, x1 - x0, minlength=len(crossing))
        lost = np.flatnonzero(b[crossing, 2] - b[crossing, 0] - kept > STRIP_LANES * spacing)
        if len(lost):
            # what each lost lane kept (nothing: empty), to leave its strips out of; a hair
            # longer, so that where a kept piece's end and the fence's edge differ in their
            # last bits (the scan's frame turned back), no sliver between them joins the strips
            # either side of a keep-out into one, whose lane through its middle would cross it
            mine = np.isin(lane, lost)
            grow = SLIVER_M * np.array(
                [[-np.cos(theta), -np.sin(theta)], [np.cos(theta), np.sin(theta)]]
            )
            swept = np.full(len(lost), shapely.MultiLineString(), dtype=object)
            # (filled in place: given no lines at all, shapely returns an empty array instead)
            shapely.multilinestrings(
                shapely.linestrings(bits[mine] + grow),
                indices=np.searchsorted(lost, lane[mine]),
                out=swept,
            )
            at = crossing[lost]
            strips, strip_band = _missed_strips(
                parts[at], band_idx[at], swept, spacing, flyable, to_lane
            )
            pieces, which = shapely.get_parts(strips, return_index=True)
            line = shapely.get_type_id(pieces) == 1  # line strings
            pieces, which = pieces[line], which[line]
            if len(pieces):
                coords, of = shapely.get_coordinates(pieces, return_index=True)
                first = np.searchsorted(of, np.arange(len(pieces)))
                last = np.r_[first[1:], len(coords)] - 1
                xy = np.concatenate([xy, np.stack([coords[first], coords[last]], axis=1)])
                src = np.concatenate([src, len(band_idx) + which])
                band_idx = np.concatenate([band_idx, strip_band])
    length = np.hypot(*(xy[:, 1] - xy[:, 0]).T)
    keep = length >= MIN_PIECE_M
    xy, src, length = xy[keep], src[keep], length[keep]
    if not len(xy):
        return []
    direction = np.array([np.cos(theta), np.sin(theta)])
    backward = (xy[:, 1] - xy[:, 0]) @ direction < 0
    xy[backward] = xy[backward, ::-1]
    inset = np.minimum(END_INSET_M, length / 4)
    xy[:, 0] += inset[:, None] * direction
    xy[:, 1] -= inset[:, None] * direction
    band = band_idx[src]
    order = np.lexsort((xy[:, 0] @ direction, band))
    return [(int(b), e) for b, e in zip(band[order].tolist(), xy[order], strict=True)]


def scan_clip(
    y: FloatArray, x0: FloatArray, x1: FloatArray, region: shapely.Geometry, to_lane: FloatArray
) -> tuple[NDArray[np.intp], FloatArray, FloatArray]:
    """The level segments ``[x0, x1] × {y}`` (lane frame, metres: ``to_lane`` rotates world
    into it) cut to the polygonal ``region`` (world): each piece's segment (index into ``y``)
    and its two ends' x, left to right, segment by segment.

    A scan line, as a polygon is filled: along each segment's line the region is inside
    between its rings' first and second crossings, third and fourth, ... (a valid polygon's
    rings do not cross). An edge counts for the heights from its lower end up to, not at, its
    upper one: a line through a vertex then crosses once where the ring goes on through it,
    twice or never where the ring turns back there, and every ring an even number of times.
    The pieces are GEOS's intersection's (without testing every segment against every edge),
    but for a segment that runs along an edge of the region: it is cut as the segment a hair
    above it is, so it keeps less of that edge than GEOS would, never more."""
    rings = shapely.get_rings(shapely.get_parts(region))
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    coords = coords @ to_lane.T
    same = ring[1:] == ring[:-1]
    a, c = coords[:-1][same], coords[1:][same]
    lo, hi = np.minimum(a[:, 1], c[:, 1]), np.maximum(a[:, 1], c[:, 1])
    level = lo < hi  # (an edge along a line never crosses it)
    a, c, lo, hi = a[level], c[level], lo[level], hi[level]
    # every (edge, segment) pair whose line the edge crosses, from the segments by height
    order = np.argsort(y, kind="stable")
    first = np.searchsorted(y[order], lo, "left")
    count = np.searchsorted(y[order], hi, "left") - first
    edge = np.repeat(np.arange(len(a)), count)
    seg = order[np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count) + first[edge]]
    ae, ce = a[edge], c[edge]
    x = ae[:, 0] + (y[seg] - ae[:, 1]) * (ce[:, 0] - ae[:, 0]) / (ce[:, 1] - ae[:, 1])
    along = np.lexsort((x, seg))
    seg, x = seg[along], x[along]
    # each segment's crossings pair up, in and out
    seg = seg[0::2]
    left, right = np.maximum(x[0::2], x0[seg]), np.minimum(x[1::2], x1[seg])
    keep = right > left
    return seg[keep], left[keep], right[keep]


def _missed_strips(
    parts: NDArray[np.object_],
    band: NDArray[np.intp],
    swept: NDArray[np.object_],
    height_m: float,
    flyable: shapely.Geometry,
    to_lane: FloatArray,
) -> tuple[NDArray[np.object_], NDArray[np.intp]]:
    """Lanes, cut to ``flyable`` (world frame), through the flyable pieces of the band
    ``parts`` (``height_m`` tall, lane frame: ``to_lane`` rotates world into it) that their
    own lanes ``swept`` (world) miss, as where a keep-out's margin covers a band's middle but
    not its edge; each piece's lane runs through its own middle. With each its band."""
    world = shapely.transform(parts, lambda xy: xy @ to_lane)
    # (rotated back, a band's piece can come out a hair invalid)
    world = np.where(shapely.is_valid(world), world, shapely.make_valid(world))
    seen = shapely.buffer(swept, height_m / 2 + 0.5, cap_style="flat")
    try:
        left = shapely.difference(shapely.intersection(world, flyable), seen)
    except shapely.errors.GEOSException:
        # GEOS's robustness limits: a band it fails on keeps the lanes it has, no strip
        left = np.array(
            [_strip_left(w, flyable, s) for w, s in zip(world, seen, strict=True)], dtype=object
        )
    pieces, src = shapely.get_parts(left, return_index=True)
    keep = (shapely.get_type_id(pieces) == 3) & (shapely.area(pieces) > 1e-6)
    pieces, src = pieces[keep], src[keep]
    if not len(pieces):
        return np.empty(0, dtype=object), np.empty(0, np.intp)
    b = shapely.bounds(shapely.transform(pieces, lambda xy: xy @ to_lane.T))
    # (slivers along a band's edge are the neighbouring lanes' to sweep)
    big = (b[:, 2] - b[:, 0] >= STRIP_LANES * height_m) & (b[:, 3] - b[:, 1] >= 0.25 * height_m)
    b, src = b[big], src[big]
    if not len(b):
        return np.empty(0, dtype=object), np.empty(0, np.intp)
    y = 0.5 * (b[:, 1] + b[:, 3])
    ends = np.stack([np.column_stack([b[:, 0], y]), np.column_stack([b[:, 2], y])], axis=1)
    return _clip_lines(shapely.linestrings(ends @ to_lane), flyable), band[src]


def _strip_left(
    part: shapely.Geometry, flyable: shapely.Geometry, seen: shapely.Geometry
) -> shapely.Geometry:
    """One band piece's flyable part that ``seen`` does not cover; empty where GEOS fails."""
    try:
        return shapely.difference(shapely.intersection(part, flyable), seen)
    except shapely.errors.GEOSException:
        return shapely.Polygon()


def _clip_lines(lines: NDArray[np.object_], flyable: shapely.Geometry) -> NDArray[np.object_]:
    """``lines`` cut to ``flyable``: against the region's part around them (GEOS's clip by
    rectangle, fast), since an intersection's cost grows with every edge of the region, and a
    large mission's keep-outs mostly lie far from one site's lanes. Against the whole region
    where the clipped part is not valid, or a piece cut against it leaves the region (the clip
    promises neither): a lane must never cross a fence."""
    x0, y0, x1, y1 = shapely.total_bounds(lines)
    near = shapely.clip_by_rect(flyable, x0 - 1.0, y0 - 1.0, x1 + 1.0, y1 + 1.0)
    if shapely.is_valid(near):
        cut = shapely.intersection(lines, near)
        if (shapely.covered_by(cut, flyable) | shapely.is_empty(cut)).all():
            return cut
    return shapely.intersection(lines, flyable)


def _cut_bands(
    region: shapely.Geometry, x0: float, x1: float, lo: FloatArray, height: float
) -> NDArray[np.object_]:
    """``region`` cut into the bands ``[x0, x1] × [lo, lo + height]`` that together cover it:
    one geometry per band.

    GEOS's clip by rectangle is several times faster than an intersection with a box, but it
    is not guaranteed right: on an invalid polygon it returned a band four times the polygon's
    share of it (the reliability run's seed 755), and it can fail on a ring it builds of three
    points (that band is cut by intersection). Its bands are kept only if their areas add up
    to the region's, once those it left invalid are cut again; else every band is cut by
    intersection.
    """
    out = np.empty(len(lo), dtype=object)
    for k, y in enumerate(lo.tolist()):
        try:
            out[k] = shapely.clip_by_rect(region, x0, y, x1, y + height)
        except shapely.errors.GEOSException:
            out[k] = shapely.intersection(region, shapely.box(x0, y, x1, y + height))
    area = float(region.area)
    if abs(float(shapely.area(out).sum()) - area) <= 1e-6 * area + 1e-3:
        return out
    # a wrong band is one the clip left invalid (wildfire-150: one of 300 bands over a ground
    # in 20 pieces, 4.7 times its true area): those are cut again by intersection
    wrong = np.flatnonzero(~shapely.is_valid(out))
    out[wrong] = shapely.intersection(shapely.box(x0, lo[wrong], x1, lo[wrong] + height), region)
    if abs(float(shapely.area(out).sum()) - area) <= 1e-6 * area + 1e-3:
        return out
    return shapely.intersection(shapely.box(x0, lo, x1, lo + height), region)


def _orderings(pieces: list[tuple[int, FloatArray]]) -> list[FloatArray]:
    """The four boustrophedon orders: bands up or down, first lane left→right or right→left."""
    band = np.array([b for b, _ in pieces], np.intp)
    return [xy for xy, _ in _boustrophedons(band, np.stack([xy for _, xy in pieces]))]


def _boustrophedons(
    band: NDArray[np.intp], ends: FloatArray
) -> list[tuple[FloatArray, NDArray[np.intp]]]:
    """The four boustrophedon orders of pieces ((P,) bands, (P, 2, 2) ends left→right, sorted
    by band and then along it): bands up, then down, each with the first band's lanes flown
    forward, then backward. Each order's lane ends (2P, 2) and bands (P,)."""
    if not len(band):
        return []
    _, rank = np.unique(band, return_inverse=True)
    rank = rank.ravel()
    # each piece's place along its band
    first = np.r_[0, np.flatnonzero(np.diff(band)) + 1]
    pos = np.arange(len(band)) - np.repeat(first, np.diff(np.r_[first, len(band)]))
    out = []
    for up in (True, False):
        band_rank = rank if up else rank.max() - rank
        for first_forward in (True, False):
            forward = (band_rank % 2 == 0) == first_forward
            order = np.lexsort((np.where(forward, pos, -pos), band_rank))
            xy = np.where(forward[:, None, None], ends, ends[:, ::-1])[order]
            out.append((xy.reshape(-1, 2), band[order]))
    return out


def _polyline_len(xy: FloatArray) -> float:
    return float(np.hypot(*np.diff(xy, axis=0).T).sum())
