"""IAMSAR search patterns around a datum, spread over the fleet.

When a mission file sets ``search.pattern``, the planner flies one of the IAMSAR (IMO/ICAO
International Aeronautical and Maritime Search and Rescue Manual, vol. II) patterns around a
reported point instead of covering the whole area:

- **expanding square** (SS): from the datum, legs of S, S, 2S, 2S, 3S, 3S, … metres, every turn
  90° to the right, until the square of half-side ``radius_m`` around the datum is searched;
- **sector search** (VS): legs of ``radius_m`` out from the datum, across, and back through it,
  each triangle's inbound leg running on through the datum into the next outbound leg;
- **parallel track** (PS): a boustrophedon over a rectangle centred on the datum, the legs
  parallel to its major axis, S apart, the first half a spacing inside the rectangle's edge.

S is the track spacing: ``track_spacing_m``, else the fleet's smallest swath less
``search.sidelap_m``, so adjacent tracks leave no gap. The single-unit track is then

1. clipped to the flyable region (keep-in shrunk, keep-out zones grown, by the geofence
   margin), the pieces joined by :class:`~skysweep.plan.paths.PathFinder` detours, as the
   lawnmower lanes are, in the pattern's order unless a zone splits it; ground the cut leaves
   unseen next to a zone is flown along the zone's edge (:func:`fly_track`);
2. cut into consecutive portions, one per drone, as long as each drone is fast, so that they
   all take as long to fly; the first portion (the datum's, most likely to hold the object)
   goes to the drone that gets to it first (an assignment on weighted arrival times);
3. cut into battery-sized sorties exactly as the area planner does
   (:func:`~skysweep.plan.sorties.cut_sorties`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment

from skysweep.errors import InfeasibleError
from skysweep.geo import FloatArray, sample_points
from skysweep.mission import (
    ExpandingSquareSpec,
    Mission,
    ParallelTrackSpec,
    SectorSpec,
)
from skysweep.plan.lanes import sweep_route
from skysweep.plan.metrics import coverage_fraction, launch_slots, lower_bound_s
from skysweep.plan.model import Plan, PlanMetrics, Sortie
from skysweep.plan.paths import PathFinder
from skysweep.plan.sorties import fly_many

#: Clipped pieces of a leg shorter than this (metres) are dropped: the neighbouring legs see them.
MIN_PIECE_M = 1.0
#: Clipped leg ends are pulled in by this much (metres) so detours start strictly inside.
END_INSET_M = 0.25
#: Ground left unsearched next to a keep-out zone is swept again only in pieces at least this
#: many square track spacings big (the corners every pattern leaves are far smaller).
MIN_GAP_SPACINGS2 = 0.5
#: Rounds of the portion-to-drone assignment (it settles in two or three).
ASSIGN_ROUNDS = 8

PatternKind = ExpandingSquareSpec | SectorSpec | ParallelTrackSpec


@dataclass(frozen=True)
class Pattern:
    """A single-unit search pattern in local metres.

    ``track`` (k, 2) is the path flown, start to end; ``region`` the ground it searches (the
    square, disc or rectangle around the datum); ``spacing_m`` the track spacing used, at most
    the one asked for (it is shrunk so that the tracks fit the region evenly).
    """

    track: FloatArray
    region: shapely.Polygon
    spacing_m: float


# --------------------------------------------------------------------------------------------
# The single-unit patterns
# --------------------------------------------------------------------------------------------


def heading(bearing_deg: ArrayLike) -> FloatArray:
    """Unit vector(s) (east, north) of a compass bearing, degrees clockwise from north."""
    b = np.radians(bearing_deg)
    return np.stack([np.sin(b), np.cos(b)], axis=-1)


def expanding_square(
    datum: FloatArray, radius_m: float, spacing_m: float, first_leg_deg: float = 0.0
) -> Pattern:
    """Expanding square from ``datum``: legs s, s, 2s, 2s, …, 2ks, 2ks, then a last leg of 2ks
    closing the outermost ring, turning right; s ≤ ``spacing_m`` is chosen so that the k-th
    ring lies exactly s/2 inside the edge of the square of half-side ``radius_m``."""
    k = max(1, math.ceil(radius_m / spacing_m - 0.5 - 1e-9))
    s = radius_m / (k + 0.5)
    steps = np.arange(1, 4 * k + 1)
    lengths = np.append((steps + 1) // 2, 2 * k) * s
    dirs = heading(first_leg_deg + 90.0 * np.arange(4 * k + 1))
    track = np.asarray(datum, float) + np.vstack(
        [[0.0, 0.0], np.cumsum(dirs * lengths[:, None], 0)]
    )
    u, w = heading(first_leg_deg), heading(first_leg_deg + 90.0)
    corners = np.array([u + w, u - w, -u - w, -u + w]) * radius_m + datum
    return Pattern(track, shapely.Polygon(corners), s)


def sector_radials(radius_m: float, spacing_m: float) -> int:
    """How many radials (legs out and in) a sector search flies: the fewest of 6, 10, 14, …
    that bring the ends of neighbouring radials within ``spacing_m`` of each other. (Counts
    of the form 4j + 2 are the ones for which running on through the datum visits every
    radial once; 6 is the standard pattern with its 120° turns.)"""
    ratio = min(1.0, spacing_m / (2.0 * radius_m))
    need = math.pi / math.asin(ratio)
    j = max(1, math.ceil((need - 2.0) / 4.0 - 1e-9))
    return 4 * j + 2


def sector(
    datum: FloatArray, radius_m: float, spacing_m: float, first_leg_deg: float = 0.0
) -> Pattern:
    """Sector search from ``datum``: n/2 triangles of an outbound leg, a cross leg and an
    inbound leg back through the datum (n from :func:`sector_radials`); every turn is to the
    right by 90° + 180°/n (120° for the standard six radials). The reported spacing is the
    distance between the ends of neighbouring radials."""
    n = sector_radials(radius_m, spacing_m)
    apex = 360.0 / n
    datum = np.asarray(datum, float)
    pts = [datum]
    for m in range(n // 2):
        out = first_leg_deg + m * (apex + 180.0)
        pts += [datum + radius_m * heading(out), datum + radius_m * heading(out + apex), datum]
    disc = shapely.Point(datum).buffer(radius_m, quad_segs=64)
    return Pattern(np.vstack(pts), disc, 2.0 * radius_m * math.sin(math.pi / n))


def parallel_track(
    datum: FloatArray,
    length_m: float,
    width_m: float,
    major_axis_deg: float,
    spacing_m: float,
    home_xy: FloatArray | None = None,
) -> Pattern:
    """Parallel track over the rectangle centred on ``datum``: ``length_m`` along the major
    axis, ``width_m`` across. Legs run along the axis, s ≤ ``spacing_m`` apart (the width split
    evenly), the first and last s/2 inside the long edges, each ending s/2 short of the ends;
    the search starts at the corner nearest ``home_xy``."""
    n = max(1, math.ceil(width_m / spacing_m - 1e-9))
    s = width_m / n
    u, w = heading(major_axis_deg), heading(major_axis_deg + 90.0)
    across = -width_m / 2 + s / 2 + s * np.arange(n)
    along = max(length_m / 2 - s / 2, 0.0)
    datum = np.asarray(datum, float)
    best: FloatArray | None = None
    for flip_across in (False, True):
        for flip_along in (False, True):
            rows = across[::-1] if flip_across else across
            ends = np.array([-along, along]) * (-1 if flip_along else 1)
            pts = []
            for r, c in enumerate(rows):
                a, b = ends if r % 2 == 0 else ends[::-1]
                pts += [datum + c * w + a * u, datum + c * w + b * u]
            track = _dedupe(np.array(pts))
            if best is None or (
                home_xy is not None
                and np.hypot(*(track[0] - home_xy)) < np.hypot(*(best[0] - home_xy))
            ):
                best = track
    assert best is not None
    half = np.array([u * length_m / 2 + w * width_m / 2, u * length_m / 2 - w * width_m / 2])
    rect = datum + np.array([half[0], half[1], -half[0], -half[1]])
    return Pattern(best, shapely.Polygon(rect), s)


def build_pattern(
    spec: PatternKind, datum_xy: FloatArray, spacing_m: float, home_xy: FloatArray | None = None
) -> Pattern:
    """The single-unit pattern of ``spec`` around ``datum_xy`` (local metres)."""
    if isinstance(spec, ExpandingSquareSpec):
        return expanding_square(datum_xy, spec.radius_m, spacing_m, spec.first_leg_deg)
    if isinstance(spec, SectorSpec):
        return sector(datum_xy, spec.radius_m, spacing_m, spec.first_leg_deg)
    return parallel_track(
        datum_xy, spec.length_m, spec.width_m, spec.major_axis_deg, spacing_m, home_xy
    )


# --------------------------------------------------------------------------------------------
# Keep-outs: clip the legs to where drones may fly, join the pieces, sweep what they miss
# --------------------------------------------------------------------------------------------


def fly_track(
    track: FloatArray,
    target: shapely.Geometry,
    reach: shapely.Geometry,
    spacing_m: float,
    finder: PathFinder,
) -> FloatArray:
    """The route (m, 2) that flies ``track`` where drones may: empty if nothing of it is left.

    ``reach`` is where drones may fly and can get to (flyable parts connected to a launch
    site), ``target`` the ground the pattern is to search. Every part of the track outside
    ``reach`` is cut out (:func:`track_runs`); ground of ``target`` the cut leaves unseen
    gets extra runs (:func:`gap_runs`); the runs are flown in the pattern's order while the way
    on is short, else nearest first (:func:`order_runs`), joined by the shortest flyable paths.
    """
    runs = track_runs(_dedupe(track), reach)
    # (with every leg cut away, as where a zone covers the datum and all of the pattern's legs,
    # the ground beside the zone is still the pattern's to search: it is all gap)
    for extra in gap_runs(runs, target, reach, spacing_m, finder):
        if not runs:
            runs.append(extra)
            continue
        # after the run that ends nearest it
        ends = np.array([r[-1] for r in runs])
        gap = np.minimum(np.hypot(*(ends - extra[0]).T), np.hypot(*(ends - extra[-1]).T))
        runs.insert(int(np.argmin(gap)) + 1, extra)
    if not runs:
        return np.empty((0, 2))
    ordered = order_runs(runs, finder, spacing_m)
    out = [ordered[0]]
    for run in ordered[1:]:
        out += [finder.path(out[-1][-1], run[0])[1:-1], run]
    return _dedupe(np.vstack(out))


def track_runs(track: FloatArray, region: shapely.Geometry) -> list[FloatArray]:
    """The parts of ``track`` inside ``region``, in order, as polylines: ends the region cut
    are pulled in by :data:`END_INSET_M`, pieces shorter than :data:`MIN_PIECE_M` dropped."""
    if len(track) < 2:
        return []
    a, b = track[:-1], track[1:]
    seg = b - a
    seg_len2 = np.einsum("ij,ij->i", seg, seg)
    lines = shapely.linestrings(np.stack([a, b], axis=1))
    shapely.prepare(region)
    inside = shapely.covered_by(lines, region)
    pieces: list[tuple[int, float, FloatArray]] = []
    for whole in np.flatnonzero(inside).tolist():
        pieces.append((whole, 0.0, np.vstack([a[whole], b[whole]])))
    cut = np.flatnonzero(~inside)
    if len(cut):
        parts, src = shapely.get_parts(shapely.intersection(lines[cut], region), return_index=True)
        for part, j in zip(parts, src, strict=True):
            if not isinstance(part, shapely.LineString) or part.length < MIN_PIECE_M:
                continue
            k = int(cut[j])
            xy = np.asarray(part.coords)[[0, -1], :2]
            t = (xy - a[k]) @ seg[k] / seg_len2[k]
            if t[1] < t[0]:
                xy, t = xy[::-1], t[::-1]
            unit = seg[k] / math.sqrt(seg_len2[k])
            inset = min(END_INSET_M, part.length / 4)
            # an end on the track's own vertex stays put; an end the region cut is pulled in
            xy[0] = a[k] if t[0] <= 1e-9 else xy[0] + unit * inset
            xy[1] = b[k] if t[1] >= 1.0 - 1e-9 else xy[1] - unit * inset
            pieces.append((k, float(t[0]), xy))
    pieces.sort(key=lambda p: (p[0], p[1]))
    runs: list[list[FloatArray]] = []
    for _, _, xy in pieces:
        if runs and np.array_equal(runs[-1][-1][-1], xy[0]):
            runs[-1].append(xy[1:])
        else:
            runs.append([xy])
    return [np.vstack(r) for r in runs]


def gap_runs(
    runs: list[FloatArray],
    target: shapely.Geometry,
    reach: shapely.Geometry,
    spacing_m: float,
    finder: PathFinder,
) -> list[FloatArray]:
    """Extra runs over the ground of ``target`` more than half a spacing from every run: the
    strips along keep-out zones (and ``keep_in``) where legs were cut, and the wedges between
    cut leg ends.

    Gaps within half a spacing of the edge of ``reach``, and within about two spacings of
    each other, are taken together and flown along that edge, half a metre inside (a gap lies
    partly, or all, between a zone and the edge of its geofence margin, so the edge is where
    to see it from); what that pass does not see, and every other gap, gets lawnmower lanes
    (:func:`~skysweep.plan.lanes.sweep_route`). Gaps, groups and leftovers smaller than
    :data:`MIN_GAP_SPACINGS2` square spacings are left: the corners every pattern leaves at its
    turns are far smaller.
    """
    s = spacing_m
    seen = shapely.MultiLineString([r for r in runs if len(r) >= 2]).buffer(s / 2, quad_segs=8)
    missed = [g for g in shapely.get_parts(target.difference(seen)) if g.area > 1e-6]
    if not missed:
        return []
    edge = shapely.boundary(reach.buffer(-2 * END_INSET_M, join_style="mitre"))
    at_edge = np.array([shapely.distance(g, edge) <= s / 2 for g in missed], bool)
    groups: list[tuple[shapely.Geometry, bool]] = [
        (g, False) for g, e in zip(missed, at_edge, strict=True) if not e
    ]
    near = [g for g, e in zip(missed, at_edge, strict=True) if e]
    if near:
        blobs = shapely.get_parts(shapely.union_all([g.buffer(1.1 * s) for g in near]))
        for blob in blobs:
            groups.append((shapely.union_all([g for g in near if g.intersects(blob)]), True))
    out: list[FloatArray] = []
    line = shapely.MultiLineString([r for r in runs if len(r) >= 2])
    least = MIN_GAP_SPACINGS2 * s * s
    for gap, by_edge in sorted(groups, key=lambda g: -g[0].area):
        if gap.area < least:
            continue
        rest = gap
        lines = _edge_lines(gap, edge, s) if by_edge else []
        if lines:
            rest = gap.difference(shapely.union_all([p.buffer(s / 2) for p in lines]))
            out += [np.asarray(p.coords)[:, :2] for p in lines]
        for part in shapely.get_parts(shapely.intersection(rest, reach)):
            if part.area < least:
                continue
            # (from the runs; with none, every leg cut away, from the gap itself)
            near_run = (
                part.representative_point() if line.is_empty else shapely.shortest_line(line, part)
            )
            home = shapely.get_coordinates(near_run)[0]
            lanes = sweep_route(part, s, finder, home)
            if len(lanes) >= 2:
                out.append(lanes)
    return out


def _edge_lines(
    gap: shapely.Geometry, edge: shapely.Geometry, spacing_m: float
) -> list[shapely.LineString]:
    """The stretches of ``edge`` within half a spacing of ``gap`` (one stretch, where the gap's
    parts are closer together than about two spacings), if passes along them see at least half
    of it; else none."""
    parts = shapely.get_parts(gap)
    near = gap.buffer(spacing_m / 2)
    if len(parts) > 1:  # bridge the parts, but no farther out than half a spacing
        bridge = shapely.union_all([g.buffer(1.1 * spacing_m) for g in parts])
        near = shapely.intersection(bridge, shapely.convex_hull(gap).buffer(spacing_m / 2))
    along = shapely.line_merge(shapely.intersection(edge, near))
    lines = [
        p
        for p in shapely.get_parts(along)
        if isinstance(p, shapely.LineString) and p.length >= MIN_PIECE_M
    ]
    if not lines:
        return []
    seen = shapely.union_all([p.buffer(spacing_m / 2) for p in lines])
    if shapely.intersection(seen, gap).area < 0.5 * gap.area:
        return []
    return lines


def order_runs(runs: list[FloatArray], finder: PathFinder, spacing_m: float) -> list[FloatArray]:
    """The runs in flying order, from the first: next the earliest one left in the pattern,
    as it runs, if the flyable way to its start is at most twice the way to the nearest end of
    any run left plus two spacings; else that nearest run, entered at that end.

    So the pattern's order holds around small obstacles, but where a keep-out zone splits the
    pattern (a power line across an expanding square would otherwise cost a flight around it
    on every ring), the pieces on one side are flown before those on the other.
    """
    if len(runs) == 1:
        return runs
    out = [runs[0]]
    left = list(range(1, len(runs)))
    while left:
        ends = np.array([[runs[r][0], runs[r][-1]] for r in left]).reshape(-1, 2)
        dist = finder.distances_from(out[-1][-1], ends)
        near = int(np.argmin(dist))
        if dist[0] <= 2.0 * dist[near] + 2.0 * spacing_m:
            out.append(runs[left.pop(0)])
            continue
        run = runs[left.pop(near // 2)]
        out.append(run if near % 2 == 0 else run[::-1])
    return out


def _dedupe(xy: FloatArray) -> FloatArray:
    """``xy`` without points equal to the one before."""
    if len(xy) < 2:
        return xy
    keep = np.r_[True, np.any(np.abs(np.diff(xy, axis=0)) > 1e-9, axis=1)]
    return xy[keep]


def _reachable(mission: Mission, finder: PathFinder) -> shapely.Geometry:
    """The parts of the flyable region a drone can get to from some launch site."""
    parts = shapely.get_parts(mission.flyable)
    sites = shapely.points(np.array([finder.inside(xy) for xy in mission.site_xy_m]))
    keep = [p for p in parts if np.any(shapely.intersects(p.buffer(1.0), sites))]
    return shapely.union_all(keep) if keep else shapely.Polygon()


# --------------------------------------------------------------------------------------------
# Spreading the track over the fleet
# --------------------------------------------------------------------------------------------


def split_track(track: FloatArray, lengths: FloatArray) -> list[FloatArray]:
    """``track`` cut into consecutive polylines as long as ``lengths`` (scaled to the track's
    length), each starting where the one before ends."""
    step = np.hypot(*np.diff(track, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(step)])
    total = cum[-1]
    marks = np.concatenate([[0.0], np.cumsum(lengths)])
    marks = marks / marks[-1] * total
    marks[-1] = total
    out = []
    for lo, hi in itertools.pairwise(marks):
        inner = track[(cum > lo) & (cum < hi)]
        out.append(_dedupe(np.vstack([_at(track, cum, lo), inner, _at(track, cum, hi)])))
    return out


def _at(track: FloatArray, cum: FloatArray, s: float) -> FloatArray:
    """The point ``s`` metres along ``track`` (cumulative lengths ``cum``), as (1, 2)."""
    k = int(np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(track) - 2))
    span = cum[k + 1] - cum[k]
    t = 0.0 if span <= 0 else min(1.0, max(0.0, (s - cum[k]) / span))
    return (track[k] + t * (track[k + 1] - track[k]))[None]


def assign_portions(
    mission: Mission, track: FloatArray, launch: FloatArray, finder: PathFinder
) -> list[tuple[int, FloatArray]]:
    """(drone, portion) for every drone, in the track's order: ``track`` cut into consecutive
    portions, one per drone, each as long as its drone is fast.

    Which drone flies which portion is a linear assignment (scipy's ``linear_sum_assignment``)
    on the time each drone would reach each portion's start (launch slot plus flyable transit
    from its site), weighted N, N − 1, …, 1 from the first portion on, so that the earliest
    portions (near the datum) go to the drones there first. Portion lengths depend on who flies
    them, so assignment and cut are repeated until the assignment settles.
    """
    fleet = mission.fleet
    n = len(fleet)
    speed = fleet.speed_mps
    sites = mission.site_xy_m
    order = np.argsort(launch, kind="stable")  # portion k → drone order[k]
    weight = (n - np.arange(n, dtype=float))[:, None]
    for _ in range(ASSIGN_ROUNDS):
        portions = split_track(track, speed[order])
        starts = np.array([p[0] for p in portions])
        dist = np.vstack([finder.distances_from(xy, starts) for xy in sites])  # site × portion
        arrive = launch[None, :] + dist[fleet.site].T / speed[None, :]  # portion × drone
        if not np.all(np.isfinite(arrive)):
            raise InfeasibleError("part of the search pattern cannot be reached from the sites")
        _, cols = linear_sum_assignment(weight * arrive)
        if np.array_equal(cols, order):
            break
        order = cols
    portions = split_track(track, speed[order])
    return list(zip(order.tolist(), portions, strict=True))


# --------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------


def pattern_of(mission: Mission) -> tuple[Pattern, FloatArray]:
    """The mission's single-unit pattern, and its datum in local metres."""
    spec = mission.spec.search.pattern
    if spec is None:
        raise ValueError("the mission has no search.pattern")
    x, y = mission.frame.to_local(spec.datum.lon, spec.datum.lat)
    datum = np.array([float(x), float(y)])
    spacing = spec.track_spacing_m or float(mission.fleet.track_spacing_m.min())
    home = mission.pad_xy_m.mean(axis=0)
    return build_pattern(spec, datum, spacing, home), datum


def plan_pattern(mission: Mission) -> Plan:
    """Plan ``mission``'s ``search.pattern``: see the module docstring.

    The plan's figures are those of the pattern's region (square, disc or rectangle) where it
    is searchable: ``searchable_area_m2`` is that area, ``coverage_fraction`` the share of it
    within half a swath of a sweep leg, and ``lower_bound_s`` :func:`pattern_lower_bound_s`.
    """
    pattern, _ = pattern_of(mission)
    target = shapely.intersection(pattern.region, mission.searchable)
    samples, _ = sample_points(target)
    if not len(samples):
        raise InfeasibleError(
            "the search pattern's region lies in keep-out zones or outside the area: "
            "nothing of it to search"
        )
    finder = PathFinder.of(mission)
    reach = _reachable(mission, finder)
    track = fly_track(pattern.track, target, reach, pattern.spacing_m, finder)
    if len(track) < 2:
        raise InfeasibleError(
            "no part of the search pattern can be flown: it lies in keep-out zones, outside "
            "keep_in, or where no drone can get to from its launch site"
        )

    fleet = mission.fleet
    launch = launch_slots(mission)
    pads = mission.pad_xy_m
    sorties: list[Sortie] = []
    cells: list[shapely.Geometry] = [shapely.Polygon()] * len(fleet)
    finish = launch.copy()
    portions = assign_portions(mission, track, launch, finder)
    for i, route in portions:
        cells[i] = shapely.LineString(route).buffer(float(fleet.swath_m[i]) / 2)
    drones = np.array([i for i, _ in portions], np.intp)
    jobs = [(i, [route], float(launch[i]), 1) for i, route in portions]
    for i, flown in zip(
        drones.tolist(), fly_many(mission, jobs, finder, pads[drones]), strict=True
    ):
        sorties += flown
        if flown:
            finish[i] = flown[-1].land_s
    coverage, _ = coverage_fraction(
        samples, [(s.sweep_xy, float(fleet.swath_m[s.drone]) / 2) for s in sorties]
    )
    metrics = PlanMetrics(
        drones=len(fleet),
        sorties=len(sorties),
        searchable_area_m2=float(target.area),
        coverage_fraction=coverage,
        makespan_s=float(finish.max()),
        lower_bound_s=pattern_lower_bound_s(mission, target, samples, pattern.spacing_m, launch),
    )
    return Plan(mission, tuple(sorties), tuple(cells), metrics)


def pattern_lower_bound_s(
    mission: Mission,
    target: shapely.Geometry,
    samples: FloatArray,
    spacing_m: float,
    launch: FloatArray,
) -> float:
    """A lower bound on the time to search ``target`` (the pattern's searchable region).

    :func:`~skysweep.plan.metrics.lower_bound_s` for the mission with ``target`` as its
    searchable area: at every distance r from the sites, the ground beyond r must be swept by
    drones that first fly there and back. Each drone's sweep rate is its speed times the larger
    of its swath and the track spacing: a pattern flown at a spacing wider than the swath
    leaves gaps on purpose, and searches (nominally) spacing × speed per second, so the bound
    holds for the search the pattern asks for; where the spacing is the narrower, the swath
    gives the physical bound. Battery swaps are left out, so it is a bound, not an estimate.
    """
    fleet = mission.fleet
    wide = dataclasses.replace(fleet, swath_m=np.maximum(fleet.swath_m, spacing_m))
    region = dataclasses.replace(mission, searchable=target, fleet=wide)
    return lower_bound_s(region, samples, launch)
