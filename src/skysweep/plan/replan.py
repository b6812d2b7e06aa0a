"""Re-planning during a flight: hand on the work of lost drones, route round a new keep-out zone,
put drones that join to work.

The unit of work is the route: every drone's planned sweep, split where its flown track got to
(``Progress``). A drone that is still flying keeps its current sortie as planned wherever it is
still valid (a sortie that crosses a new keep-out zone is cut where it would enter it and the
rest re-routed), and its later sorties too. What is handed on is the unswept rest of every lost
drone's route, cut into chunks; chunks go to the healthy or newly added drones in rounds of
:func:`scipy.optimize.linear_sum_assignment`, each round giving at most one chunk to each drone
at the least total finish time, until every chunk is taken: first small pieces to drones whose
last sortie is open (not launched yet, or in the air and re-routable: ``Progress.reroutable``),
swept at the end of that sortie's sweep before it goes home, as far as its battery lasts; then
what is left, in larger chunks, flown after a drone's own work in fresh sorties cut to its
battery from its pad.

Everything is in the mission's local frame (metres) and seconds from mission start.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import shapely
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from skysweep.energy import PLAN_MARGIN, power_factor
from skysweep.errors import InfeasibleError
from skysweep.geo import FloatArray, fence_margin, sample_points
from skysweep.mission import Mission
from skysweep.plan.lanes import sweep_route
from skysweep.plan.metrics import coverage_fraction
from skysweep.plan.model import SWEEP_LEG, Plan, PlanMetrics, Sortie
from skysweep.plan.paths import PathFinder
from skysweep.plan.sorties import (
    extend_sortie,
    extend_sorties,
    fly_many,
    fly_routes,
    resume_sortie,
    sweep_ends,
)

#: Orphaned work is cut into chunks of about this many seconds of sweeping for fresh sorties:
#: small enough to spread over many drones, large enough that transits stay a small share.
CHUNK_S = 300.0
#: Orphaned work is first offered to open sorties (see _Work) in pieces of about this many
#: seconds of sweeping, to fit the battery they have to spare; what they do not take is joined
#: up again and handed out in CHUNK_S chunks (small chunks handed out for fresh sorties cost
#: hops between them: on the reliability run's seed 354, 100 s chunks took a degraded
#: hexacopter's mission from 4,803 s to 5,648 s).
TACK_S = 100.0
#: Where a flown track ends, metres from the route: the first segment of the route this close
#: to it (beyond the nearest one's distance) is where the rest begins.
REST_TOLERANCE_M = 1.0
#: How far, metres, a route may lie inside the new zones (grown by the geofence margin) and
#: still only touch them: flyable ways round a zone run along its grown edge.
TOUCH_M = 0.5
#: Samples for the re-plan's coverage figure (fewer than planning uses: re-planning is timed).
COVERAGE_SAMPLES = 8_000
#: A drone is given a chunk only if it could fly straight out to its farthest point and home
#: with this many seconds of sweeping to spare on one battery (a lower bound on what a sortie
#: needs: it keeps far drones off work only a near one can fly).
REACH_SWEEP_S = 30.0
#: Cost standing for "cannot reach" in the assignment (finite: the solver needs numbers).
UNREACHABLE_S = 1e12
#: A sortie in the air is given a chunk to sweep before it goes home if straight lines there
#: and home, at full head-wind, need at most 1 / TACK_SLACK of the battery it has left: the rest
#: is for corners and ways round keep-outs (the sortie is then costed exactly, see _extend).
TACK_SLACK = 1.15


@dataclass(frozen=True)
class Progress:
    """How far the flight has got at ``now_s``.

    ``tracks`` maps a drone's fleet index to the track it has flown so far (k, 2), local
    metres; the drone is where its track ends. Drones without a track have not flown.
    """

    now_s: float
    tracks: Mapping[int, FloatArray] = field(default_factory=dict)
    in_air: Mapping[int, int] = field(default_factory=dict)
    """Drone → number of the sortie it is flying now, if the runtime knows: that sortie is
    still under way even if the plan had it landed by now (the flight ran late)."""
    launched: Mapping[int, int] = field(default_factory=dict)
    """Drone → number of the last sortie it took off on (0: none yet), if the runtime knows.
    Its sorties after that one are still to fly in full and those up to it are flown (but the
    one in ``in_air``), whatever the plan's clock says: a flight runs late or early."""
    reroutable: frozenset[int] | None = None
    """Drones in the air that can be given a longer route now (flying their sortie's sweep, no
    failsafe or detour): the runtime's word. None: every drone whose sortie is under way and
    has sweep left, by the plan's clock (what-ifs and benchmarks)."""

    @classmethod
    def as_planned(cls, plan: Plan, now_s: float) -> Progress:
        """Every drone's track as if it had flown its plan to the second, at cruise speed
        along its sorties' paths, until ``now_s`` (what-ifs and benchmarks)."""
        speed = plan.mission.fleet.speed_mps
        tracks: dict[int, FloatArray] = {}
        for s in plan.sorties:
            if s.launch_s >= now_s:
                continue
            xy = s.path[:, :2]
            cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
            flown = min((now_s - s.launch_s) * float(speed[s.drone]), float(cum[-1]))
            k = int(np.searchsorted(cum, flown))
            at = [np.interp(flown, cum, xy[:, 0]), np.interp(flown, cum, xy[:, 1])]
            track = np.vstack([xy[:k], at])
            tracks[s.drone] = np.vstack([tracks[s.drone], track]) if s.drone in tracks else track
        return cls(now_s, tracks)


@dataclass(frozen=True)
class _Work:
    """The rest of one drone's planned sweep: kept sorties, and the route still to sweep."""

    drone: int
    kept: list[Sortie]
    free_s: float
    """When the drone is back on its pad with its kept sorties flown (and a fresh pack)."""
    open: bool = False
    """Whether its last kept sortie may sweep more before it goes home (see
    :func:`skysweep.plan.sorties.extend_sortie`): one not launched yet, or one in the air that
    the runtime can re-route."""


def replan(
    plan: Plan,
    progress: Progress,
    *,
    lost: Sequence[int] = (),
    new_keep_out: Sequence[shapely.Geometry] = (),
    added_drones: Sequence[int] = (),
    cut_short: Sequence[int] = (),
) -> Plan:
    """A new plan for the area not yet swept (see the module docstring).

    ``lost``, ``added_drones`` and ``cut_short`` are fleet indices; an added drone is one of
    the mission's fleet that had no work (a reserve on the ground) and now takes part; a drone
    cut short is on its way home before its sortie is done (its battery ran low, an operator
    recalled it): the rest of that sortie is handed on, its later sorties are kept. ``new_keep_out``
    are polygons in local metres: a route may run along one (grown by the geofence margin) but
    not cross it, ground they close off from every launch pad is left out, and so is a piece
    of handed-on work no sortie can reach within a battery (the new plan's coverage counts
    both). Raises :class:`InfeasibleError` when nobody is left to fly.
    """
    m = plan.mission
    fleet = m.fleet
    lost_set = {int(i) for i in lost}
    cut = {int(i) for i in cut_short}
    for i in [*lost_set, *added_drones]:
        if not 0 <= int(i) < len(fleet):
            raise InfeasibleError(f"replan: no drone {i} in a fleet of {len(fleet)}")
    flyable = m.flyable
    # grown as the mission's own zones and the safety kernel's fence are (mitre corners): a
    # rounded corner would put waypoints inside the kernel's margin, and launches be refused
    margin = m.safety.geofence_margin_m
    zones = [fence_margin(z, margin) for z in new_keep_out]
    if zones:
        flyable = shapely.difference(flyable, shapely.union_all(zones))
    finder = PathFinder(flyable) if zones else PathFinder.of(m)
    blocked = shapely.union_all(zones) if zones else None
    pads = m.pad_xy_m  # computed on every access: once here
    if zones and len(closed := _cut_off(flyable, pads)):
        # ground the new zones closed off from every pad: nobody can sweep it or fly through
        # it any more (reliability seed 267 --zones: one such pocket failed the whole re-plan)
        blocked = shapely.union_all([blocked, *closed])
    # what a route must not cross: a flyable way round a zone runs along its grown edge, and
    # touching it is no crossing (seed 653 --zones: a sortie flown round a zone, judged again
    # at the next re-plan, touched it and was dropped, its drone brought home with 76 %)
    inner = None if blocked is None else shapely.buffer(blocked, -TOUCH_M, join_style="mitre")
    now = progress.now_s

    # routes to hand on, each with the track spacing its lanes were planned at
    orphans: list[tuple[FloatArray, float]] = []
    # sweeps flown that the new plan will not have (the plan's coverage counts them)
    swept = list(plan.swept)
    works: dict[int, _Work] = {}
    added = {int(i) for i in added_drones}
    aheads = _ahead(plan, progress)
    for i in range(len(fleet)):
        track = progress.tracks.get(i)
        up = progress.in_air.get(i)
        ahead = aheads[i]
        swept.extend((i, xy) for xy in _flown(plan.of_drone(i), ahead))
        if i in lost_set:
            w = float(fleet.track_spacing_m[i])
            orphans.extend((piece, w) for _, rest in ahead for piece in _clip(rest, blocked))
            swept.extend((i, xy) for s, rest in ahead if len(xy := _before(s, rest)))
            continue
        kept: list[Sortie] = []
        home_s = now
        for sortie, rest in ahead:
            under_way = _under_way(sortie, now, up, progress.launched.get(i))
            if not (i in cut and under_way):
                # (in the air, only what is left to fly counts: a drone flown round a zone at
                # one re-plan still crosses it on the way it has flown at the next, and one on
                # its way home, which cannot be re-routed, lost its sortie and the runtime its
                # route; reliability seed 820 --zones)
                if inner is None:
                    kept.append(sortie)
                    continue
                to_fly = _to_fly(sortie, rest, track) if under_way else sortie.path[:, :2]
                if not shapely.intersects(shapely.LineString(to_fly), inner):
                    kept.append(sortie)
                    continue
                # flown round the zone, its sweep there left out, if its battery allows (a
                # drone in the air only if the runtime can give it a new route)
                around = None
                if not under_way or progress.reroutable is None or i in progress.reroutable:
                    where = track[-1] if track is not None and len(track) else None
                    around = _round_zone(
                        m, sortie, rest, under_way, (blocked, inner), finder, pads[i], where
                    )
                if around is not None:
                    kept.append(around)
                    continue
            # cut short, or across a new zone and not flown round it: what it has not swept
            # goes back in the pool
            orphans.extend(
                (piece, float(fleet.track_spacing_m[i])) for piece in _clip(rest, blocked)
            )
            if len(xy := _before(sortie, rest)):
                swept.append((i, xy))
            if under_way and track is not None and len(track):
                # in the air: it comes home first
                there = np.asarray(track, float)[-1, :2]
                try:
                    home_m = finder.length(there, pads[i])
                except InfeasibleError:
                    # (closed off from its pad by the new zones: the runtime's way home is
                    # its own concern; as the crow flies is what the plan's clock needs)
                    home_m = float(np.hypot(*(there - pads[i])))
                home_s = now + home_m / float(fleet.speed_mps[i])
        kept = _in_turn(kept, float(fleet.swap_s[i]), now, progress.launched.get(i))
        free = max([s.land_s for s in kept] + [home_s]) + float(fleet.swap_s[i])
        if kept or i in added or track is not None:
            is_open = bool(kept) and home_s == now and _open(kept[-1], ahead, progress, i)
            works[i] = _Work(i, kept, free if kept or home_s > now else now, is_open)
    for i in added_drones:
        works.setdefault(int(i), _Work(int(i), [], now))
    if not works:
        raise InfeasibleError("replan: no drone is left to fly the rest of the search")

    # sorties taken from the drones that finish last for the added ones: not for open sorties
    shared = (
        _share_with(added, works, progress, fleet.track_spacing_m, fleet.swap_s) if added else []
    )
    speed = float(np.median(fleet.speed_mps))
    extra: dict[int, list[FloatArray]] = {}
    if orphans and any(w.open for w in works.values()):
        # first what open sorties can sweep before they go home, in small pieces to fit the
        # battery they have to spare; the pieces nobody took are joined up again
        fine = [(c, w, k) for k, (r, w) in enumerate(orphans) for c in _chunks(r, TACK_S * speed)]
        chunks = [c for c, _, _ in fine]
        swaths = np.array([w for _, w, _ in fine])
        _, tacked, left = _assign(chunks, swaths, works, m, pads, tack_only=True, wide_first=True)
        relaned = {i: r for i, r in _relane(tacked, chunks, swaths, m, finder, pads).items() if r}
        for i, (work, over) in _extend(works, relaned, m, finder, pads).items():
            works[i], extra[i] = work, over
        orphans = _rejoin([fine[k] for k in left])
    # (dataclasses.replace costs 10 µs a call: 24 ms over 2,381 drones)
    works = {i: _Work(w.drone, w.kept, w.free_s) if w.open else w for i, w in works.items()}
    pieces = [(c, w) for r, w in orphans + shared for c in _chunks(r, CHUNK_S * speed)]
    chunks = [c for c, _ in pieces]
    swaths = np.array([w for _, w in pieces])

    def fly(chosen: dict[int, list[int]]) -> list[Sortie]:
        given = _relane(chosen, chunks, swaths, m, finder, pads)
        for i, routes in extra.items():
            # what turned out not to fit its battery on the flyable paths: first after it
            given[i] = [*routes, *given.get(i, [])]
        return _sorties(plan, works, given, finder, pads, progress.launched)

    chosen, _, _ = _assign(chunks, swaths, works, m, pads)
    sorties = fly(chosen)
    spacing = fleet.track_spacing_m
    if any(swaths[k] > spacing[i] + 1e-6 for i, ks in chosen.items() for k in ks):
        # narrower drones took chunks of wider lanes: rounds that give every drone a chunk
        # can load them with slow work a wide drone would have finished first, so the plan
        # where they take only what no wide drone can reach is flown too, and the one that
        # lands first kept
        wide_only, _, _ = _assign(chunks, swaths, works, m, pads, wide_first=True)
        other = fly(wide_only)
        if _makespan(other, now) < _makespan(sorties, now):
            sorties = other
    return _with_metrics(plan, sorties, progress, new_keep_out, swept)


def _makespan(sorties: list[Sortie], now: float) -> float:
    """When the last of ``sorties`` lands (``now`` if there are none), seconds."""
    return max([s.land_s for s in sorties], default=now)


def _share_with(
    added: set[int],
    works: dict[int, _Work],
    progress: Progress,
    spacing_m: FloatArray,
    swap_s: FloatArray,
) -> list[tuple[FloatArray, float]]:
    """Sorties not yet launched, taken from the drones that finish last, until each added
    drone's fair share of the work still to fly is in the pool, from sorties whose lanes it
    can fly at its own track spacing (``spacing_m``, see :func:`_assign`); ``works`` is
    updated."""
    now = progress.now_s
    later = [
        (s, i)
        for i, w in works.items()
        for s in w.kept
        if (s.number > progress.launched[i] if i in progress.launched else s.launch_s > now)
    ]
    total = sum(s.duration_s for s, _ in later)
    flying = [i for i, w in works.items() if w.kept or i in added]
    share = total / max(len(flying), 1)
    pool: list[tuple[FloatArray, float]] = []
    taken: set[int] = set()
    ordered = sorted(later, key=lambda p: -p[0].land_s)
    for a in sorted(added):
        moved = 0.0
        for s, i in ordered:
            if moved >= share:
                break
            if i in added or id(s) in taken or len(s.sweep_xy) < 2 or spacing_m[i] > spacing_m[a]:
                continue
            taken.add(id(s))
            pool.append((s.sweep_xy, float(spacing_m[i])))
            moved += s.duration_s
            w = works[i]
            kept = [k for k in w.kept if k is not s]
            free = max([k.land_s + float(swap_s[i]) for k in kept], default=now)
            works[i] = _Work(i, kept, max(free, now))
    return pool


def _open(last: Sortie, ahead: list[tuple[Sortie, FloatArray]], progress: Progress, i: int) -> bool:
    """Whether drone ``i``'s last kept sortie ``last`` may sweep more before it goes home: it
    has not taken off, or it is in the air, still sweeping, and can be re-routed."""
    up = progress.in_air.get(i)
    launched = progress.launched.get(i)
    if not _under_way(last, progress.now_s, up, launched):
        return last.launch_s > progress.now_s if launched is None else last.number > launched
    if progress.reroutable is not None and i not in progress.reroutable:
        return False
    rest = next((r for s, r in ahead if s is last), np.empty((0, 2)))
    return len(rest) >= 2 and float(np.hypot(*np.diff(rest, axis=0).T).sum()) > 1.0


def _extend(
    works: dict[int, _Work],
    tacked: dict[int, list[FloatArray]],
    m: Mission,
    finder: PathFinder,
    pads: FloatArray,
) -> dict[int, tuple[_Work, list[FloatArray]]]:
    """Per drone of ``tacked``: its work with the routes it was given swept at the end of its
    last kept sortie, as many of them as still fit its battery on the flyable paths, and the
    routes that did not fit, to be flown in fresh sorties after it. All of them are tried in
    full at once; a drone where that does not fit tries fewer, one by one."""
    drones = list(tacked)
    jobs = [(works[i].kept[-1], tacked[i]) for i in drones]
    longer = extend_sorties(m, jobs, finder, pads[drones])
    out: dict[int, tuple[_Work, list[FloatArray]]] = {}
    for i, full in zip(drones, longer, strict=True):
        work, routes = works[i], tacked[i]
        n, longest = len(routes), full
        while longest is None and n > 1:
            n -= 1
            longest = extend_sortie(m, work.kept[-1], routes[:n], finder, pads[i])
        if longest is None:
            out[i] = (work, routes)
            continue
        free = longest.land_s + float(m.fleet.swap_s[i])
        out[i] = (_Work(i, [*work.kept[:-1], longest], free), routes[n:])
    return out


def _round_zone(
    m: Mission,
    sortie: Sortie,
    rest: FloatArray,
    under_way: bool,
    zones: tuple[shapely.Geometry, shapely.Geometry],
    finder: PathFinder,
    pad: FloatArray,
    where: FloatArray | None,
) -> Sortie | None:
    """``sortie``, whose path crosses the new ``zones`` (grown by the geofence margin, and that
    less :data:`TOUCH_M`), flown round them: its sweep
    still to fly (``rest``) less what lies in them, joined by flyable hops, home by a flyable
    way; for one in the air, from where its drone is on it (``where``: the end of its track).
    None if nothing is left to sweep, the drone is in a zone or off its sweep, or the sortie
    no longer fits one battery (its work is then handed on and the drone comes home)."""
    blocked, inner = zones  # (inner: less TOUCH_M, for what may touch but not cross)
    pieces = _clip(rest, blocked)
    if not pieces:
        return None
    if not under_way:
        try:
            return resume_sortie(m, sortie, 1, _nearest_first(pieces, pad, finder), finder, pad)
        except InfeasibleError:
            return None  # its pad is closed off from its pieces: they are handed on
    at = rest[0]
    if shapely.intersects(shapely.Point(at), blocked):
        return None
    if where is None or np.hypot(*(np.asarray(where, float)[:2] - at)) > REST_TOLERANCE_M:
        return None  # off its sweep (pushed off it, or on its way out as the clock has it)
    # rest[0] lies on the sweep's leg rest was cut from: the path is kept as far as that leg
    first, j = _rest_leg(sortie, rest)
    # the path is kept as far as the drone has flown it; at its sweep's first point it may
    # still be on its way out (the runtime has it there until it sweeps), and that way must
    # not cross a zone either
    if j == first and shapely.intersects(shapely.LineString(sortie.path[: j + 1, :2]), inner):
        return None
    try:
        ordered = _nearest_first(pieces, at, finder)
        around = resume_sortie(m, sortie, j, ordered, finder, pad, at_xy=at)
    except InfeasibleError:
        return None  # no flyable way on from where it is: its rest is handed on
    # (where only the way it has flown crossed the zone, the sortie is the same)
    same = around is not None and np.array_equal(around.path, sortie.path)
    return sortie if same else around


def _cut_off(flyable: shapely.Geometry, pads: FloatArray) -> NDArray[np.object_]:
    """The parts of ``flyable`` that hold no launch pad, nor are the nearest part to one (a pad
    may lie in the geofence margin): ground no drone can reach."""
    parts = shapely.get_parts(flyable)
    if len(parts) < 2:
        return parts[:0]
    far = shapely.distance(parts[:, None], shapely.points(pads)[None, :])
    home = np.zeros(len(parts), bool)
    home[np.argmin(far, axis=0)] = True
    return parts[~home]


def _rest_leg(sortie: Sortie, rest: FloatArray) -> tuple[int, int]:
    """The path index of ``sortie``'s first sweep point, and of the start of the sweep leg
    that ``rest[0]`` lies on (``rest`` as :func:`_rests_of` cut it from the sweep)."""
    first = int(np.flatnonzero(sortie.legs == SWEEP_LEG)[0])
    return first, first + len(sortie.sweep_xy) - len(rest)


def _to_fly(sortie: Sortie, rest: FloatArray, track: FloatArray | None) -> FloatArray:
    """The part of in-air ``sortie``'s path, (k, 2), still to fly from ``rest[0]``, where its
    drone is on its sweep (``rest`` as :func:`_rests_of` cut it from the end of ``track``): all
    of it if the track does not end on the sweep (the drone is on its way out, or pushed off),
    or ends on its first leg, where the drone may still be on its way out."""
    sweep = sortie.sweep_xy
    if len(sweep) < 2 or not len(rest) or track is None or not len(track):
        return sortie.path[:, :2]
    if np.hypot(*(np.asarray(track, float)[-1, :2] - rest[0])) > REST_TOLERANCE_M:
        return sortie.path[:, :2]
    first, j = _rest_leg(sortie, rest)
    if j == first:
        return sortie.path[:, :2]
    return np.vstack([rest[:1], sortie.path[j + 1 :, :2]])


def _nearest_first(
    pieces: list[FloatArray], start: FloatArray, finder: PathFinder
) -> list[FloatArray]:
    """``pieces`` of sweep in the order a drone at ``start`` flies them: each time the one with
    an end nearest by a flyable way, from that end. Lanes a zone cuts in two are then swept
    side by side, all on one side of it before the other, not each round the zone in turn.
    (Not :func:`skysweep.plan.patterns.order_runs`, which keeps a pattern's own order where its
    hops are short: with the pieces put back in the route's order first, a re-plan in
    test_operations' zone-and-loss flight ended 196 s later, past the mission's time limit.)"""
    left = list(pieces)
    out: list[FloatArray] = []
    at = np.asarray(start, float)[:2]
    while left:
        ends = np.array([[p[0], p[-1]] for p in left]).reshape(-1, 2)
        k = int(np.argmin(finder.distances_from(at, ends)))
        piece = left.pop(k // 2)
        piece = piece if k % 2 == 0 else piece[::-1]
        out.append(piece)
        at = piece[-1]
    return out


def _in_turn(
    kept: list[Sortie], swap_s: float, now: float, launched: int | None = None
) -> list[Sortie]:
    """A drone's ``kept`` sorties, each launched no sooner than the one before it landed and
    its pack was swapped (one flown round a new zone can land later than planned); one under
    way or launched already (the runtime's ``launched``, else by the plan's clock: a flight
    runs late) keeps its launch."""
    out: list[Sortie] = []
    for s in kept:
        waiting = s.launch_s > now if launched is None else s.number > launched
        if out and waiting and s.launch_s < out[-1].land_s + swap_s:
            s = replace(s, launch_s=out[-1].land_s + swap_s)
        out.append(s)
    return out


def _under_way(s: Sortie, now: float, in_air: int | None, launched: int | None) -> bool:
    """Whether sortie ``s`` has taken off and not landed: as the runtime knows it, or else
    by the plan's clock."""
    if launched is not None:
        return s.number == in_air
    return s.launch_s <= now < s.land_s or s.number == in_air


def _ahead(plan: Plan, progress: Progress) -> list[list[tuple[Sortie, FloatArray]]]:
    """Per drone, every sortie not yet flown, with the part of its sweep still to sweep: all
    of it for one not launched, the rest after where the drone's track ends for the one in the
    air (those cut all at once, :func:`_rests_of`)."""
    now = progress.now_s
    out: list[list[tuple[Sortie, FloatArray]]] = []
    cuts: list[tuple[int, int]] = []  # (drone, place in its list) of each sweep to cut
    routes, ats = [], []
    for i in range(len(plan.mission.fleet)):
        track = progress.tracks.get(i)
        in_air, launched = progress.in_air.get(i), progress.launched.get(i)
        mine: list[tuple[Sortie, FloatArray]] = []
        for s in plan.of_drone(i):
            under_way = _under_way(s, now, in_air, launched)
            if launched is not None:
                if s.number <= launched and not under_way:
                    continue
            elif s.land_s <= now and not under_way:
                continue
            sweep = s.sweep_xy
            if under_way and track is not None and len(track) and len(sweep) >= 2:
                cuts.append((i, len(mine)))
                routes.append(sweep)
                ats.append(np.asarray(track, float)[-1, :2])
            mine.append((s, sweep))
        out.append(mine)
    for (i, k), rest in zip(cuts, _rests_of(routes, np.array(ats)), strict=True):
        out[i][k] = (out[i][k][0], rest)
    return out


def _flown(sorties: Sequence[Sortie], ahead: list[tuple[Sortie, FloatArray]]) -> list[FloatArray]:
    """The sweeps of ``sorties`` that are flown (not ``ahead``)."""
    left = {id(s) for s, _ in ahead}
    return [s.sweep_xy for s in sorties if id(s) not in left and len(s.sweep_xy) >= 2]


def _before(sortie: Sortie, rest: FloatArray) -> FloatArray:
    """The part of ``sortie``'s sweep before ``rest`` (as :func:`_rests_of` cut it), (k, 2); empty
    if ``rest`` is all of it."""
    sweep = sortie.sweep_xy
    if rest is sweep or len(sweep) < 2 or not len(rest):
        return np.empty((0, 2))
    return np.vstack([sweep[: len(sweep) - len(rest) + 1], rest[:1]])


def _rests_of(routes: list[FloatArray], ats: FloatArray) -> list[FloatArray]:
    """For each ``routes[k]`` (two points or more), the part of it after the point on it
    nearest ``ats[k]`` (on its first pass there): all their segments at once (a re-plan cuts
    the sweep of every drone in the air)."""
    if not routes:
        return []
    sizes = np.array([len(r) for r in routes], np.intp)
    first = np.r_[0, np.cumsum(sizes)[:-1]]
    pts = np.concatenate(routes)
    seg_of = np.repeat(np.arange(len(routes)), sizes)[:-1]
    a, ab = pts[:-1], np.diff(pts, axis=0)
    at = ats[seg_of]
    t = np.clip(
        np.einsum("ij,ij->i", at - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12), 0, 1
    )
    foot = a + t[:, None] * ab
    off = np.hypot(*(foot - at).T)
    off[first[1:] - 1] = np.inf  # (from one route's last point to the next one's first)
    # the first segment that passes by: a route that joins pieces of work crosses its own
    # later lanes, and taking a later one would count what lies between as swept
    near = off <= np.minimum.reduceat(off, first)[seg_of] + REST_TOLERANCE_M
    ks = np.minimum.reduceat(np.where(near, np.arange(len(off)), len(off)), first)
    return [
        np.vstack([foot[k], pts[k + 1 : f + n]]) for k, f, n in zip(ks, first, sizes, strict=True)
    ]


def _clip(route: FloatArray, blocked: shapely.Geometry | None) -> list[FloatArray]:
    """The pieces of ``route`` outside ``blocked`` (re-joined later by flyable paths)."""
    if len(route) < 2:
        return []
    if blocked is None:
        return [route]
    line = shapely.LineString(route)
    if not shapely.intersects(line, blocked):
        return [route]
    rest = shapely.difference(line, blocked)
    return [
        np.asarray(p.coords)[:, :2]
        for p in shapely.get_parts(shapely.line_merge(rest))
        if p.length > 1.0
    ]


def _chunks(route: FloatArray, length_m: float) -> list[FloatArray]:
    """``route`` cut into pieces of about ``length_m`` metres."""
    if len(route) < 2:
        return []
    seg = np.hypot(*np.diff(route, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    total = float(cum[-1])
    n = max(1, round(total / length_m))
    marks = np.linspace(0.0, total, n + 1)
    out = []
    for lo, hi in itertools.pairwise(marks):
        inner = route[(cum > lo) & (cum < hi)]
        a = np.array([np.interp(lo, cum, route[:, 0]), np.interp(lo, cum, route[:, 1])])
        b = np.array([np.interp(hi, cum, route[:, 0]), np.interp(hi, cum, route[:, 1])])
        out.append(np.vstack([a, inner, b]))
    return out


def _rejoin(pieces: list[tuple[FloatArray, float, int]]) -> list[tuple[FloatArray, float]]:
    """Routes again from ``pieces`` (route, track spacing, number of the route they were cut
    from), in order: pieces of one route that followed each other are joined."""
    out: list[tuple[FloatArray, float]] = []
    last = -1
    for piece, w, k in pieces:
        if k == last and np.array_equal(out[-1][0][-1], piece[0]):
            out[-1] = (np.vstack([out[-1][0], piece[1:]]), w)
        else:
            out.append((piece, w))
        last = k
    return out


def _assign(
    chunks: list[FloatArray],
    swaths: FloatArray,
    works: dict[int, _Work],
    m: Mission,
    all_pads: FloatArray,
    *,
    tack_only: bool = False,
    wide_first: bool = False,
) -> tuple[dict[int, list[int]], dict[int, list[int]], list[int]]:
    """Chunks (indices) for each drone: rounds of linear_sum_assignment on finish time. Two
    lists per drone: the chunks it sweeps at the end of its last kept sortie, before it goes
    home (a drone whose sortie is open, see :class:`_Work`, while its battery lasts: an
    estimate on straight lines, which :func:`_extend` checks), and those it sweeps in fresh
    sorties after that. A chunk's lanes are spaced for the swath of the drone it was planned
    for: a drone with a narrower swath sweeps its strip again at its own spacing (see
    :func:`_relane`), which takes it longer by the ratio of the spacings, and is costed so: it
    takes such a chunk only where it still finishes it first (a wide drone left alone with a
    lost wide drone's work would fly it all, one sortie after another); with ``wide_first``
    only if no drone with a wide enough swath can reach it. With ``tack_only``, only the first
    kind is handed out; the third value is the chunks nobody took."""
    fleet = m.fleet
    drones = np.array(sorted(works), np.intp)
    given: dict[int, list[int]] = {int(i): [] for i in drones}
    tacked: dict[int, list[int]] = {int(i): [] for i in drones}
    if not chunks or not len(drones):
        return {}, {}, list(range(len(chunks)))
    v = fleet.speed_mps[drones]
    pads = all_pads[drones]
    finish = np.array([works[int(i)].free_s for i in drones])
    where = pads.copy()
    # an open sortie: from the end of its sweep, with the battery it has left there
    is_open = np.array([works[int(i)].open for i in drones])
    left_cs = np.zeros(len(drones))
    budget_all = (1.0 - m.safety.battery_reserve - PLAN_MARGIN) * fleet.endurance_s[drones]
    rows_open = np.flatnonzero(is_open)
    lasts = [works[int(drones[r])].kept[-1] for r in rows_open]
    finish[rows_open], used = sweep_ends(m, lasts)
    left_cs[rows_open] = budget_all[rows_open] - used
    for r, last in zip(rows_open, lasts, strict=True):
        where[r] = last.sweep_xy[-1]
    # from the end of an open sortie to a fresh pack on the pad: down and swapped
    down_s = m.altitude_m / fleet.climb_mps[drones] + fleet.swap_s[drones]
    start = np.array([c[0] for c in chunks])
    end = np.array([c[-1] for c in chunks])
    length = np.array([float(np.hypot(*np.diff(c, axis=0).T).sum()) for c in chunks])
    # a drone can take a chunk only if a sortie from its pad reaches the chunk's farthest
    # point and gets back with time to sweep (straight lines; a head-wind home, as sorties
    # are cut); drones share pads, so the distances are taken per pad
    wind = float(np.hypot(*m.wind_vector_mps))
    head = power_factor(v + wind, v)
    budget_cs = budget_all
    spots, spot_of = np.unique(pads, axis=0, return_inverse=True)
    spot_of = spot_of.ravel()
    vertical = (
        m.altitude_m
        / fleet.climb_mps[drones]
        * (power_factor(0.0, 1.0, fleet.climb_mps[drones]) + power_factor(0.0, 1.0))
    )
    # how far out each drone's farthest point may lie, metres
    reach_m = (budget_cs - vertical - REACH_SWEEP_S) * v / (1.0 + head)
    reachable = _within(spots, spot_of, chunks, reach_m)
    # (drones, chunks) how much longer a drone sweeps a chunk than its lanes: re-laned at its
    # own spacing where that is narrower
    stretch = np.maximum(swaths[None, :] / fleet.track_spacing_m[drones][:, None], 1.0)
    if wide_first:
        wide = stretch <= 1.0 + 1e-9
        reachable &= wide | ~(reachable & wide).any(axis=0)
    nobody = np.flatnonzero(~reachable.any(axis=0))
    if len(nobody) and not tack_only:
        raise InfeasibleError(
            f"replan: work at {start[nobody[0]].round()} m is beyond one battery of every "
            "drone left to fly it"
        )
    left = np.arange(len(chunks))
    # an open sortie sweeps a chunk before going home if its battery lasts (corners and
    # detours round keep-outs are what TACK_SLACK leaves room for), else after a swap
    tack_cs_per_m = head / v * TACK_SLACK
    while len(left):
        # drones share pads: distances from pads are taken per pad
        sweep = length[None, left] * stretch[:, left]
        work = sweep + _dist(spots, end[left])[spot_of]
        fly = _dist(where, start[left])
        fly += work
        tack = fly * tack_cs_per_m[:, None] <= np.where(is_open, left_cs, -1.0)[:, None]
        if is_open.any():
            home_m = np.hypot(*(where - pads).T) + down_s * v
            later = _dist(spots, start[left])[spot_of]
            later += work
            later += home_m[:, None]
            fly = np.where(tack | ~is_open[:, None], fly, later)
        fly /= v[:, None]
        fly += finish[:, None]
        ok = reachable[:, left] & tack if tack_only else reachable[:, left]
        # drones that can take no chunk left, and chunks nobody can take, are left out of
        # the solver: they change nothing in its answer, only its size
        live_r, live_c = np.flatnonzero(ok.any(axis=1)), np.flatnonzero(ok.any(axis=0))
        if not len(live_r):
            break  # only when tacking: no open sortie has battery for any chunk left
        cost = np.where(ok[np.ix_(live_r, live_c)], fly[np.ix_(live_r, live_c)], UNREACHABLE_S)
        rows, cols = linear_sum_assignment(cost)
        # the assignment maximises reachable pairs first; a drone left with none waits
        keep = cost[rows, cols] < UNREACHABLE_S
        rows, cols = live_r[rows[keep]], live_c[cols[keep]]
        for r, c in zip(rows, cols, strict=True):
            k = int(left[c])
            hop = float(np.hypot(*(where[r] - start[k])))
            swept_m = float(sweep[r, c])
            if tack[r, c]:
                tacked[int(drones[r])].append(k)
                left_cs[r] -= (hop + swept_m) * tack_cs_per_m[r]
                finish[r] += (hop + swept_m) / v[r]
            else:
                if is_open[r]:
                    is_open[r] = False
                    finish[r] += float(np.hypot(*(where[r] - pads[r]))) / v[r] + down_s[r]
                    where[r] = pads[r]
                    hop = float(np.hypot(*(where[r] - start[k])))
                finish[r] += (hop + swept_m) / v[r]
                given[int(drones[r])].append(k)
            where[r] = end[k]
        left = np.delete(left, cols)
    return given, tacked, [int(k) for k in left]


def _within(
    spots: FloatArray, spot_of: NDArray[np.intp], chunks: list[FloatArray], reach_m: FloatArray
) -> NDArray[np.bool_]:
    """(drones, chunks) whether every point of a chunk lies within ``reach_m[d]`` metres of
    drone ``d``'s pad (``spots[spot_of[d]]``). A chunk's farthest point from a pad is no nearer
    than the chunk's centre (the mean of its points, inside their hull) and no farther than
    that plus its radius: only pairs these bounds leave open are measured point by point."""
    counts = np.array([len(c) for c in chunks], np.intp)
    points = np.vstack(chunks)
    first = np.r_[0, np.cumsum(counts)[:-1]]
    centre = np.add.reduceat(points, first, axis=0) / counts[:, None]
    radius = np.maximum.reduceat(np.hypot(*(points - np.repeat(centre, counts, axis=0)).T), first)
    near = _dist(spots, centre)[spot_of]
    room = reach_m[:, None]
    out = near + radius[None, :] <= room
    d, k = np.nonzero(~out & (near <= room))
    if len(d):
        n = counts[k]
        starts = np.r_[0, np.cumsum(n)[:-1]]
        # every point of every open pair's chunk, pair by pair
        pick = np.arange(int(n.sum())) + np.repeat(first[k] - starts, n)
        gap = np.hypot(*(points[pick] - np.repeat(spots[spot_of[d]], n, axis=0)).T)
        out[d, k] = np.maximum.reduceat(gap, starts) <= reach_m[d]
    return out


def _dist(a: FloatArray, b: FloatArray) -> FloatArray:
    """(len(a), len(b)) straight distances between points, metres (scipy's cdist: several
    times faster than broadcasting np.hypot on a 2,000 × 1,000 table)."""
    return cdist(a, b)


def _relane(
    given: dict[int, list[int]],
    chunks: list[FloatArray],
    swaths: FloatArray,
    m: Mission,
    finder: PathFinder,
    pads: FloatArray,
) -> dict[int, list[FloatArray]]:
    """The routes each drone flies for the chunks it was given. A chunk whose lanes were
    spaced for a wider swath than the drone's would leave stripes between its lanes unseen:
    its strip (the lanes' own swath around them) is swept again with lanes at the drone's
    spacing."""
    out: dict[int, list[FloatArray]] = {}
    for i, ks in given.items():
        w = float(m.fleet.track_spacing_m[i])
        routes = []
        for k in ks:
            if swaths[k] <= w + 1e-6:
                routes.append(chunks[k])
                continue
            strip = shapely.buffer(shapely.LineString(chunks[k]), swaths[k] / 2, cap_style="flat")
            strip = shapely.intersection(strip, m.searchable)
            route = sweep_route(strip, w, finder, pads[i])
            routes.append(route if len(route) >= 2 else chunks[k])
        out[i] = routes
    return out


def _sorties(
    plan: Plan,
    works: dict[int, _Work],
    given: dict[int, list[FloatArray]],
    finder: PathFinder,
    pads: FloatArray,
    launched: Mapping[int, int],
) -> list[Sortie]:
    m = plan.mission
    jobs = []
    for i, work in sorted(works.items()):
        # new work is numbered after every sortie the drone has flown: one whose planned
        # sorties were all handed on has flown some all the same
        number = max([s.number for s in plan.of_drone(i)] + [launched.get(i, 0)], default=0)
        jobs.append((i, given.get(i, []), work.free_s, number + 1))
    who = np.array([i for i, _, _, _ in jobs], np.intp)
    try:
        fresh = fly_many(m, jobs, finder, pads[who])
    except InfeasibleError:
        # a piece no sortie from the drone's pad reaches within a battery (its flyable way
        # round the new zones is longer than the assignment's estimate): left out, not the
        # whole re-plan failed (reliability seed 977 --zones: nobody was routed round a new
        # zone, and the re-plan failed every tick for the rest of the flight)
        # (the new plan's coverage_fraction counts what is left out; the runtime logs it)
        fresh = [_what_flies(m, job, finder, pads[job[0]]) for job in jobs]
    out: list[Sortie] = []
    for (i, _, _, _), flown in zip(jobs, fresh, strict=True):
        out += works[i].kept
        out += flown
    out.sort(key=lambda s: (s.drone, s.number))
    return out


def _what_flies(
    m: Mission,
    job: tuple[int, list[FloatArray], float, int],
    finder: PathFinder,
    pad: FloatArray,
) -> list[Sortie]:
    """:func:`fly_routes` for one (drone, routes, free_s, first number), leaving out the
    routes the drone cannot fly from its pad within a battery."""
    i, routes, free_s, number = job
    try:
        return fly_routes(m, i, routes, finder, free_s, number, pad)
    except InfeasibleError:
        ok = [r for r in routes if _flies(m, i, r, finder, free_s, pad)]
        return fly_routes(m, i, ok, finder, free_s, number, pad)


def _flies(
    m: Mission, i: int, route: FloatArray, finder: PathFinder, free_s: float, pad: FloatArray
) -> bool:
    """Whether drone ``i`` can fly ``route`` from its pad in sorties that each fit a battery."""
    try:
        fly_routes(m, i, [route], finder, free_s, 1, pad)
    except InfeasibleError:
        return False
    return True


def _with_metrics(
    plan: Plan,
    sorties: list[Sortie],
    progress: Progress,
    new_keep_out: Sequence[shapely.Geometry],
    swept: list[tuple[int, FloatArray]],
) -> Plan:
    """The plan, with its coverage of the area (but the new zones): what its sorties sweep,
    what the tracks in ``progress`` and the sweeps flown before it (``swept``) did."""
    m = plan.mission
    fleet = m.fleet
    area = m.searchable
    if new_keep_out:
        area = shapely.difference(area, shapely.union_all(list(new_keep_out)))
    samples, _ = sample_points(area, COVERAGE_SAMPLES)
    tracks = [
        (np.asarray(t, float)[:, :2], fleet.swath_m[i] / 2) for i, t in progress.tracks.items()
    ]
    tracks += [(s.path[:, :2], fleet.swath_m[s.drone] / 2) for s in sorties if SWEEP_LEG in s.legs]
    tracks += [(xy, fleet.swath_m[i] / 2) for i, xy in swept]
    coverage, _ = coverage_fraction(samples, tracks)
    makespan = _makespan(sorties, progress.now_s)
    metrics = PlanMetrics(
        drones=len(fleet),
        sorties=len(sorties),
        searchable_area_m2=float(area.area),
        coverage_fraction=coverage,
        makespan_s=makespan,
        lower_bound_s=plan.metrics.lower_bound_s,
    )
    return Plan(m, tuple(sorties), plan.cells, metrics, tuple(swept))
