"""Cut a drone's sweep route into sorties that each fit one battery.

A sortie climbs over the pad, transits to where the route resumes, sweeps, returns and lands.
Battery use is estimated with :mod:`skysweep.energy`: every leg at cruise ground speed with the
forecast wind, except the way home, which is costed against a full head-wind (the wind can turn
while the drone is out), plus the time the autopilot loses slowing into each corner
(:mod:`skysweep.kinematics`), which on a lawnmower sweep adds up to minutes. A sortie may use
``1 − battery_reserve − PLAN_MARGIN`` of a pack.

Routes are cut many at once (:func:`cut_sorties`, :func:`fly_many`): a plan of 2,500 drones
cuts thousands, and one Python loop per route would cost more than the cutting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import ArrayLike, NDArray

from skysweep.energy import PLAN_MARGIN, power_factor
from skysweep.errors import InfeasibleError
from skysweep.geo import FloatArray
from skysweep.kinematics import corner_loss_s
from skysweep.mission import Mission
from skysweep.plan.model import SWEEP_LEG, Leg, Sortie
from skysweep.plan.paths import PathFinder

_TRANSIT, _RETURN, _DESCEND = int(Leg.TRANSIT), int(Leg.RETURN), int(Leg.DESCEND)

#: Candidate points where a sortie may end, at most this far apart along the route (metres).
SPLIT_STEP_M = 25.0


@dataclass(frozen=True)
class FlightLeg:
    """A sortie as flown: 3-D path, leg kinds, duration and planned battery use."""

    path: FloatArray
    legs: np.ndarray
    duration_s: float
    energy: float


def leg_energy(xy: FloatArray, speed_mps: ArrayLike, wind: FloatArray) -> FloatArray:
    """Battery use in cruise-seconds for each leg of a polyline flown at ``speed_mps`` over
    the ground with wind ``wind`` (m/s, east/north); the speed one value, or one per leg."""
    d = np.diff(xy[:, :2], axis=0)
    length = np.hypot(d[:, 0], d[:, 1])
    unit = d / np.maximum(length, 1e-9)[:, None]
    v = np.asarray(speed_mps, float)
    air = unit * (v[:, None] if v.ndim else v) - wind
    return power_factor(np.hypot(air[:, 0], air[:, 1]), v) * length / v


@dataclass(frozen=True)
class _Joined:
    """Polylines end to end in one array: ``xy[first[k] : first[k] + size[k]]`` is the k-th."""

    xy: FloatArray
    first: NDArray[np.intp]
    size: NDArray[np.intp]

    @classmethod
    def of(cls, lines: Sequence[FloatArray]) -> _Joined:
        size = np.array([len(p) for p in lines], np.intp)
        first = np.r_[0, np.cumsum(size)[:-1]].astype(np.intp)
        return cls(np.concatenate([p[:, :2] for p in lines]), first, size)

    @property
    def owner(self) -> NDArray[np.intp]:
        """The line each point belongs to."""
        return np.repeat(np.arange(len(self.size)), self.size)

    def inner(self) -> NDArray[np.bool_]:
        """Which points are interior vertices of their own line (``xy[1:-1]``'s, n − 2)."""
        out = np.ones(len(self.xy), bool)
        out[self.first] = False
        out[self.first + self.size - 1] = False
        return out[1:-1]

    def own_legs(self) -> NDArray[np.bool_]:
        """Which legs (``diff(xy)``'s, n − 1) lie within one line, not across two."""
        out = np.ones(len(self.xy) - 1, bool)
        out[self.first[1:] - 1] = False
        return out

    def corner_sums_s(self, speed_mps: FloatArray, accel_mps2: FloatArray) -> FloatArray:
        """Each line's corner losses summed (s), flown at its own ``speed_mps[k]`` and
        ``accel_mps2[k]`` (:func:`skysweep.kinematics.corner_loss_s`)."""
        at = self.owner[1:-1]
        loss = corner_loss_s(self.xy, speed_mps[at], accel_mps2[at])
        return _sum_by(at, np.where(self.inner(), loss, 0.0), len(self.size))


def _sum_by(owner: NDArray[np.intp], values: FloatArray, n: int) -> FloatArray:
    """``values`` summed by ``owner`` (n sums): in order, as np.sum adds fewer than eight."""
    return np.asarray(np.bincount(owner, values, minlength=n), float)


def _densify(routes: _Joined, step_m: float) -> tuple[_Joined, NDArray[np.bool_]]:
    """Every route with points added no more than ``step_m`` apart along it, and which of the
    points are the routes' own vertices."""
    xy = routes.xy
    seg = np.diff(xy, axis=0)
    # a leg across two routes stands for the first one's last vertex alone
    n = np.where(
        routes.own_legs(), np.maximum(np.ceil(np.hypot(*seg.T) / step_m).astype(np.intp), 1), 1
    )
    start = np.cumsum(n) - n  # where each leg's start vertex lands
    leg = np.repeat(np.arange(len(seg)), n)
    t = (np.arange(n.sum()) - start[leg]) / n[leg]
    dense = np.vstack([xy[leg] + seg[leg] * t[:, None], xy[-1:]])
    is_vertex = np.zeros(len(dense), bool)
    is_vertex[start] = True
    is_vertex[-1] = True
    first = np.r_[start, len(dense) - 1][routes.first]
    size = np.diff(np.r_[first, len(dense)])
    return _Joined(dense, first, size), is_vertex


@njit(cache=True)
def _cumsum_within(
    values: FloatArray, first: NDArray[np.intp], size: NDArray[np.intp]
) -> FloatArray:  # pragma: no cover - compiled
    """out[f + j] = values[f] + … + values[f + j − 1] within each run (f, size): np.cumsum's
    sums, from 0 at every run's start (a route's battery use up to each of its points)."""
    out = np.empty(len(values) + 1)
    for r in range(len(first)):
        f, n = first[r], size[r]
        acc = 0.0
        for j in range(n):
            out[f + j] = acc
            if j < n - 1:
                acc += values[f + j]
    return out


@njit(cache=True)
def _last_fits(
    cum: FloatArray,
    cum_to: FloatArray,
    home_cs: FloatArray,
    start: NDArray[np.intp],
    last: NDArray[np.intp],
    out_cs: FloatArray,
    budget_cs: FloatArray,
) -> NDArray[np.intp]:  # pragma: no cover - compiled
    """For each k, the farthest point e in (start, last] at which a sortie out at ``out_cs``
    that sweeps from ``start`` (``cum_to[e] − cum[start]``) can still fly straight home within
    ``budget_cs``; −1 if none."""
    out = np.full(len(start), -1, np.intp)
    for k in range(len(start)):
        s = start[k]
        for e in range(last[k], s, -1):
            if out_cs[k] + (cum_to[e] - cum[s]) + home_cs[e] <= budget_cs[k]:
                out[k] = e
                break
    return out


def cut_sorties(
    mission: Mission,
    drones: ArrayLike,
    routes: Sequence[FloatArray],
    finder: PathFinder,
    pads_xy: FloatArray,
) -> list[list[FlightLeg]]:
    """For each k, the sorties that sweep ``routes[k]`` ((m, 2) local metres) in order, flown by
    ``drones[k]`` from and back to ``pads_xy[k]``, each within ``1 − battery_reserve −
    PLAN_MARGIN`` of a pack; none for a route of fewer than two points.

    A sortie ends at the last point (no more than :data:`SPLIT_STEP_M` apart along the route)
    from which its way home, flown round obstacles, still fits. All routes are cut together: a
    plan cuts thousands, and each round of cuts finds its ways out and home in one
    :meth:`PathFinder.paths` call. Raises :class:`InfeasibleError` naming the drone whose work
    lies beyond one battery.
    """
    out: list[list[FlightLeg]] = [[] for _ in routes]
    jobs = np.array([k for k, r in enumerate(routes) if len(r) >= 2], np.intp)
    if not len(jobs):
        return out
    fleet = mission.fleet
    drone = np.asarray(drones, np.intp)[jobs]
    pads = np.asarray(pads_xy, float).reshape(-1, 2)[jobs]
    v, accel, climb = fleet.speed_mps[drone], fleet.accel_mps2[drone], fleet.climb_mps[drone]
    wind, alt = mission.wind_vector_mps, mission.altitude_m
    budget = (1.0 - mission.safety.battery_reserve - PLAN_MARGIN) * fleet.endurance_s[drone]
    head, vertical = _pad_costs(mission, drone)

    dense, is_vertex = _densify(_Joined.of([routes[k] for k in jobs]), SPLIT_STEP_M)
    xy, on = dense.xy, dense.owner
    # every leg with the slow-down into the corner at its end (counted at cruise power); the
    # legs across two routes are never summed
    per_leg = leg_energy(xy, v[on[:-1]], wind)
    at = on[1:-1]
    turn = np.zeros(len(xy))
    turn[1:-1] = np.where(dense.inner(), corner_loss_s(xy, v[at], accel[at]), 0.0)
    per_leg[:-1] += turn[1:-1]
    # battery used from a route's start to each of its points: on through it, or turning
    # there for home (the way home's own corner is costed with it)
    cum = _cumsum_within(per_leg, dense.first, dense.size)
    cum_to = cum - turn
    home_straight = np.hypot(*(xy - pads[on]).T) * head[on] / v[on]

    start = dense.first.copy()
    last = dense.first + dense.size - 1
    cuts: list[list[tuple[int, int, FloatArray, FloatArray, float]]] = [[] for _ in jobs]
    live = np.flatnonzero(start < last)
    while len(live):
        s = start[live]
        outs = finder.paths(pads[live], xy[s])
        # the way out, and the corner where it turns onto the route
        e_out = vertical[live] + _leg_sums(outs, v[live], wind)
        e_out += _Joined.of(
            [np.vstack([p, xy[k + 1]]) for p, k in zip(outs, s, strict=True)]
        ).corner_sums_s(v[live], accel[live])
        end = _last_fits(cum, cum_to, home_straight, s, last[live], e_out, budget[live])
        if np.any(end < 0):
            k = int(np.flatnonzero(end < 0)[0])
            j, dist = live[k], float(np.hypot(*(xy[s[k]] - pads[live[k]])))
            raise InfeasibleError(
                f"{fleet.ids[drone[j]]}: its work {dist:,.0f} m from its launch site is beyond "
                f"one battery (a round trip there needs "
                f"{(e_out[k] * 2) / fleet.endurance_s[drone[j]]:.0%} of a pack, "
                f"{1 - mission.safety.battery_reserve:.0%} usable)"
            )
        # the way home flown round obstacles: pull the end back until it fits
        backs: list[FloatArray] = [np.empty((0, 2))] * len(live)
        e_back = np.zeros(len(live))
        todo = np.arange(len(live))
        while len(todo):
            who = live[todo]
            found = finder.paths(xy[end[todo]], pads[who])
            costs = _leg_sums_m(found) * head[who] / v[who]
            costs += _Joined.of(
                [np.vstack([xy[e - 1], p]) for p, e in zip(found, end[todo], strict=True)]
            ).corner_sums_s(v[who], accel[who])
            for n, p in zip(todo.tolist(), found, strict=True):
                backs[n] = p
            e_back[todo] = costs
            st = s[todo]
            fits = e_out[todo] + (cum_to[end[todo]] - cum[st]) + costs <= budget[who]
            todo = todo[~(fits | (end[todo] == st + 1))]
            st = s[todo]
            end[todo] = np.maximum(st + 1, end[todo] - np.maximum(1, (end[todo] - st) // 16))
        energy = e_out + (cum_to[end] - cum[s]) + e_back
        over = np.flatnonzero(energy > budget[live])
        if len(over):
            k = int(over[0])
            raise InfeasibleError(
                f"{fleet.ids[drone[live[k]]]}: no sortie fits one battery around "
                f"{xy[s[k]].round()} m"
            )
        for k, i in enumerate(live.tolist()):
            cuts[i].append((int(s[k]), int(end[k]), outs[k], backs[k], float(energy[k])))
        start[live] = end
        live = live[end < last[live]]
    endurance = fleet.endurance_s[drone]
    for n, k in enumerate(jobs.tolist()):
        for a, b, out_path, back, energy_cs in cuts[n]:
            keep = is_vertex[a : b + 1].copy()
            keep[[0, -1]] = True
            flight = _assemble(out_path, xy[a : b + 1][keep], back, alt, v[n], accel[n], climb[n])
            out[k].append(FlightLeg(*flight, float(energy_cs / endurance[n])))
    return out


def _leg_sums_m(paths: Sequence[FloatArray]) -> FloatArray:
    """Each path's length (m)."""
    j = _Joined.of(paths)
    own = j.own_legs()
    return _sum_by(j.owner[:-1][own], np.hypot(*np.diff(j.xy, axis=0)[own].T), len(paths))


def _leg_sums(paths: Sequence[FloatArray], speed_mps: FloatArray, wind: FloatArray) -> FloatArray:
    """Each path's battery use (cruise-seconds, :func:`leg_energy`) at its own speed."""
    j = _Joined.of(paths)
    own = j.own_legs()
    at = j.owner[:-1]
    return _sum_by(at[own], leg_energy(j.xy, speed_mps[at], wind)[own], len(paths))


def _assemble(
    out_path: FloatArray,
    sweep: FloatArray,
    back: FloatArray,
    altitude_m: float,
    speed_mps: float,
    accel_mps2: float,
    climb_mps: float,
) -> tuple[FloatArray, NDArray[np.int8], float]:
    """The sortie out along ``out_path``, over ``sweep`` and home along ``back`` (local metres):
    its path (n, 3), leg kinds and duration (s), pad to pad at cruise speed, with the climb and
    descent and the corners' slow-downs."""
    home = out_path[0]
    xy = [home[None], out_path, sweep[1:], back[1:], back[-1:]]
    kinds = (
        [Leg.CLIMB]
        + [Leg.TRANSIT] * (len(out_path) - 1)
        + [Leg.SWEEP] * (len(sweep) - 1)
        + [Leg.RETURN] * (len(back) - 1)
        + [Leg.DESCEND]
    )
    flat = np.vstack(xy)
    alt = np.full(len(flat), altitude_m)
    alt[[0, -1]] = 0.0
    path = np.column_stack([flat, alt])
    v = float(speed_mps)
    corners = float(corner_loss_s(flat, v, accel_mps2).sum())
    horizontal = float(np.hypot(*np.diff(flat, axis=0).T).sum())
    up_down = 2.0 * altitude_m / climb_mps + v / accel_mps2
    return path, np.array(kinds, np.int8), float(horizontal / v + up_down + corners)


def join_routes(
    finder: PathFinder, route_lists: Sequence[Sequence[FloatArray]]
) -> list[FloatArray]:
    """Each list of routes as one route (m, 2), joined by flyable hops (all found at once);
    empty routes are left out, and a list of none gives an empty route."""
    lists = [[r[:, :2] for r in rs if len(r)] for rs in route_lists]
    a = [r[-1] for rs in lists for r in rs[:-1]]
    b = [r[0] for rs in lists for r in rs[1:]]
    hops = iter(finder.paths(np.array(a), np.array(b)) if a else [])
    out = []
    for rs in lists:
        joined = rs[:1]
        for route in rs[1:]:
            joined += [next(hops)[1:-1], route]
        out.append(np.vstack(joined) if joined else np.empty((0, 2)))
    return out


def schedule(
    mission: Mission, drone: int, flights: Sequence[FlightLeg], start_s: float, first_number: int
) -> list[Sortie]:
    """``flights`` flown in turn by ``drone``: the first launches at ``start_s`` (seconds from
    mission start) and is numbered ``first_number``, each next one after a battery swap."""
    out = []
    t = start_s
    swap_s = float(mission.fleet.swap_s[drone])
    for number, leg in enumerate(flights, start=first_number):
        out.append(Sortie(drone, number, t, leg.path, leg.legs, leg.duration_s, leg.energy))
        t += leg.duration_s + swap_s
    return out


def schedule_all(
    mission: Mission,
    drones: Sequence[int],
    flights: Sequence[Sequence[FlightLeg]],
    start_s: FloatArray,
) -> list[Sortie]:
    """Each ``flights[k]`` flown by ``drones[k]`` (:func:`schedule`), a drone's in turn: its
    first from ``start_s[drone]`` (seconds from mission start) numbered 1, each later one after
    a battery swap once its sortie before has landed."""
    out: list[Sortie] = []
    clock = {int(i): float(start_s[i]) for i in drones}
    number = dict.fromkeys(clock, 1)
    swap_s = mission.fleet.swap_s
    for i, legs in zip(drones, flights, strict=True):
        flown = schedule(mission, int(i), legs, clock[int(i)], number[int(i)])
        if flown:
            out += flown
            clock[int(i)] = flown[-1].land_s + float(swap_s[i])
            number[int(i)] = flown[-1].number + 1
    return out


def fly_routes(
    mission: Mission,
    drone: int,
    routes: list[FloatArray],
    finder: PathFinder,
    start_s: float,
    first_number: int = 1,
    pad_xy: FloatArray | None = None,
) -> list[Sortie]:
    """``drone``'s sorties for sweeping ``routes`` in order, joined by flyable hops and cut to
    its battery (:func:`cut_sorties`), scheduled from ``start_s`` (:func:`schedule`).
    ``pad_xy`` saves recomputing ``mission.pad_xy_m``."""
    pad = mission.pad_xy_m[drone] if pad_xy is None else pad_xy
    return fly_many(
        mission, [(drone, routes, start_s, first_number)], finder, np.asarray(pad)[None]
    )[0]


def fly_many(
    mission: Mission,
    jobs: Sequence[tuple[int, Sequence[FloatArray], float, int]],
    finder: PathFinder,
    pads_xy: FloatArray,
) -> list[list[Sortie]]:
    """:func:`fly_routes` for each (drone, routes, start_s, first_number) of ``jobs``, flown
    from and home to ``pads_xy[k]``: every route joined and cut at once."""
    drones = np.array([job[0] for job in jobs], np.intp)
    joined = join_routes(finder, [job[1] for job in jobs])
    flights = cut_sorties(mission, drones, joined, finder, np.asarray(pads_xy, float))
    return [
        schedule(mission, i, legs, start_s, number)
        for (i, _, start_s, number), legs in zip(jobs, flights, strict=True)
    ]


def extend_sortie(
    mission: Mission,
    sortie: Sortie,
    routes: list[FloatArray],
    finder: PathFinder,
    pad_xy: FloatArray,
) -> Sortie | None:
    """``sortie`` with ``routes`` swept after its own sweep, before it goes home: its path as
    far as its last sweep point, flyable hops to and between the routes, and a flyable way
    home. None if that no longer fits one battery (costed as :func:`cut_sorties` costs a
    sortie) or ``sortie`` sweeps nothing. The path up to the last sweep point is unchanged, so
    a drone flying ``sortie`` can be given the longer one in the air (same number and launch)."""
    return extend_sorties(mission, [(sortie, routes)], finder, np.asarray(pad_xy)[None])[0]


def extend_sorties(
    mission: Mission,
    jobs: Sequence[tuple[Sortie, list[FloatArray]]],
    finder: PathFinder,
    pads_xy: FloatArray,
) -> list[Sortie | None]:
    """:func:`extend_sortie` for each (sortie, routes) of ``jobs``, home to ``pads_xy[k]``: the
    hops of all of them found at once (a re-plan extends hundreds of sorties)."""
    starts = []
    for sortie, _ in jobs:
        sweeps = np.flatnonzero(sortie.legs == SWEEP_LEG)
        starts.append(int(sweeps[-1]) + 1 if len(sweeps) else -1)
    return _resume_all(
        mission, [(s, j, r, None) for (s, r), j in zip(jobs, starts, strict=True)], finder, pads_xy
    )


def resume_sortie(
    mission: Mission,
    sortie: Sortie,
    j: int,
    routes: list[FloatArray],
    finder: PathFinder,
    pad_xy: FloatArray,
    at_xy: FloatArray | None = None,
) -> Sortie | None:
    """``sortie`` flown as planned as far as ``path[j]`` (on along its next leg to ``at_xy``,
    local metres, if given: where a drone in the air is on it), then ``routes`` swept in order
    with flyable hops to and between them, and a flyable way home to ``pad_xy``. Same number
    and launch; ``j = 1`` (the climb over the pad) re-routes a sortie not yet launched. None if
    there is nothing to sweep or it does not fit one battery (costed as :func:`cut_sorties`
    costs a sortie). The path up to ``path[j]`` is unchanged, so a drone flying ``sortie`` can
    be given this one in the air from where it is."""
    return _resume_all(mission, [(sortie, j, routes, at_xy)], finder, np.asarray(pad_xy)[None])[0]


def _resume_all(
    mission: Mission,
    jobs: Sequence[tuple[Sortie, int, list[FloatArray], FloatArray | None]],
    finder: PathFinder,
    pads_xy: FloatArray,
) -> list[Sortie | None]:
    """:func:`resume_sortie` for each (sortie, j, routes, at_xy) of ``jobs``: every hop, to and
    between the routes and home, found in one :meth:`PathFinder.paths` call, and every new
    sortie costed in one :func:`_flight_costs` call."""
    todo: list[tuple[int, list[FloatArray]]] = []
    a: list[FloatArray] = []
    b: list[FloatArray] = []
    for k, (sortie, j, routes, at_xy) in enumerate(jobs):
        routes = [r for r in routes if len(r) >= 2]
        if not routes or not 1 <= j < len(sortie.path) - 1:
            continue
        at = sortie.path[j, :2] if at_xy is None else np.asarray(at_xy, float)[:2]
        a += [at, *(r[-1] for r in routes)]
        b += [*(r[0] for r in routes), pads_xy[k]]
        todo.append((k, routes))
    out: list[Sortie | None] = [None] * len(jobs)
    if not todo:
        return out
    hops = iter(finder.paths(np.array(a), np.array(b)))
    paths, legs = [], []
    for k, routes in todo:
        sortie, j, _, at_xy = jobs[k]
        mine = [next(hops) for _ in range(len(routes) + 1)]
        path, kinds = _resumed_path(mission, sortie, j, routes, mine, pads_xy[k], at_xy)
        paths.append(path)
        legs.append(kinds)
    ks = [k for k, _ in todo]
    drones = np.array([jobs[k][0].drone for k in ks], np.intp)
    energy_cs, duration_s = _flight_costs(mission, drones, paths, legs)
    budget = (1.0 - mission.safety.battery_reserve - PLAN_MARGIN) * mission.fleet.endurance_s
    fits = energy_cs <= budget[drones]
    for n, k in enumerate(ks):
        if fits[n]:
            s = jobs[k][0]
            e = float(energy_cs[n] / mission.fleet.endurance_s[s.drone])
            out[k] = Sortie(s.drone, s.number, s.launch_s, paths[n], legs[n], duration_s[n], e)
    return out


def _resumed_path(
    mission: Mission,
    sortie: Sortie,
    j: int,
    routes: list[FloatArray],
    hops: list[FloatArray],
    pad_xy: FloatArray,
    at_xy: FloatArray | None,
) -> tuple[FloatArray, np.ndarray]:
    """:func:`resume_sortie`'s path (3-D) and leg kinds, with its ``hops`` (to each route,
    and home) found."""
    legs = sortie.legs
    rows: list[FloatArray] = []
    kinds: list[int] = []

    def add(piece: FloatArray, kind: int) -> None:
        step = np.hypot(*np.diff(piece, axis=0).T) > 1e-6  # no zero-length legs
        rows.append(piece[1:][step])
        kinds.extend([kind] * int(step.sum()))

    if at_xy is not None:
        add(np.vstack([sortie.path[j, :2], np.asarray(at_xy, float)[:2]]), int(legs[j]))
    for hop, route in zip(hops[:-1], routes, strict=True):
        add(hop, _TRANSIT)
        add(route, SWEEP_LEG)
    add(hops[-1], _RETURN)
    alt = mission.altitude_m
    tail = np.vstack(rows)
    if not len(tail) or np.hypot(*(tail[-1] - pad_xy)) > 1e-6:
        tail = np.vstack([tail, pad_xy])
        kinds.append(_RETURN)
    path = np.vstack(
        [
            sortie.path[: j + 1],
            np.column_stack([tail, np.full(len(tail), alt)]),
            [[*pad_xy, 0.0]],
        ]
    )
    return path, np.concatenate([legs[:j], np.array([*kinds, _DESCEND], np.int8)])


def _flight_costs(
    mission: Mission, drones: NDArray[np.intp], paths: list[FloatArray], legs: list[np.ndarray]
) -> tuple[FloatArray, FloatArray]:
    """Planned battery use (cruise-seconds) and duration (s) of each sortie ``paths[k]`` (3-D,
    pad to pad, leg kinds ``legs[k]``) flown by ``drones[k]``, as :func:`cut_sorties` costs a
    sortie: cruise with the wind, the way home at full head-wind, the climb and descent, and
    the time lost in the corners. All sorties at once: their horizontal paths (over the pad and
    back) are joined, and what lies across two of them is left out."""
    fleet = mission.fleet
    joined = _Joined.of([p[1:-1, :2] for p in paths])
    xy = joined.xy
    seg_of = joined.owner[:-1]  # (a segment's sortie: its start's)
    # a segment from one sortie's last point to the next one's first lies across two
    own = joined.own_legs()
    v = fleet.speed_mps[drones]
    accel = fleet.accel_mps2[drones]
    wind = mission.wind_vector_mps
    head, vertical = _pad_costs(mission, drones)
    d = np.diff(xy, axis=0)
    length = np.hypot(d[:, 0], d[:, 1]) * own
    vs = v[seg_of]
    air = d / np.maximum(length, 1e-9)[:, None] * vs[:, None] - wind
    per_leg = power_factor(np.hypot(air[:, 0], air[:, 1]), vs) * length / vs
    home = np.zeros(len(own), bool)
    home[own] = np.concatenate([lg[1:-1] == _RETURN for lg in legs])
    per_leg[home] = length[home] * head[seg_of[home]] / vs[home]
    n = len(paths)
    # corners: every vertex inside one sortie's path, at its own drone's speed and accel
    corners = joined.corner_sums_s(v, accel)
    horizontal = _sum_by(seg_of, length, n)
    cruise = _sum_by(seg_of, per_leg, n)
    alt = mission.altitude_m
    climb = fleet.climb_mps[drones]
    energy = vertical + cruise + corners
    duration = horizontal / v + 2.0 * alt / climb + v / accel + corners
    return energy, duration


def _pad_costs(mission: Mission, drones: NDArray[np.intp]) -> tuple[FloatArray, FloatArray]:
    """For each of ``drones``: its power on the way home, relative to cruise in still air (a
    full head-wind of the forecast's strength: the wind can turn while the drone is out), and
    the battery (cruise-seconds) its climb over the pad and descent take, with getting up to
    speed after the climb and stopping over the pad."""
    fleet = mission.fleet
    v, accel, climb = fleet.speed_mps[drones], fleet.accel_mps2[drones], fleet.climb_mps[drones]
    head = power_factor(v + float(np.hypot(*mission.wind_vector_mps)), v)
    up_down = power_factor(0.0, 1.0, climb) + power_factor(0.0, 1.0)
    return head, mission.altitude_m / climb * up_down + v / accel


def sweep_ends(mission: Mission, sorties: list[Sortie]) -> tuple[FloatArray, FloatArray]:
    """For each of ``sorties``: when it reaches its last sweep point (seconds from mission
    start), and the battery it has used by then (cruise-seconds), its way home taken off at
    cruise speed and full head-wind, as :func:`cut_sorties` costs it. A sortie that sweeps
    nothing: its end. All sorties at once (a re-plan asks for thousands)."""
    n = len(sorties)
    if not n:
        return np.empty(0), np.empty(0)
    fleet = mission.fleet
    drone = np.array([s.drone for s in sorties], np.intp)
    sizes = np.array([len(s.path) for s in sorties], np.intp)
    first = np.r_[0, np.cumsum(sizes)[:-1]]
    flat = np.concatenate([s.path[:, :2] for s in sorties])
    # legs[k] is the kind of the leg from path[k] to path[k + 1]: one fewer than the points
    legs = np.full(len(flat), -1, np.int8)
    last_point = np.zeros(len(flat), bool)
    last_point[first + sizes - 1] = True
    legs[~last_point] = np.concatenate([s.legs for s in sorties])
    idx = np.where(legs == SWEEP_LEG, np.arange(len(legs)), -1)
    # each sortie's last sweep point (the end of its last sweep leg), and whether it has one
    end = np.maximum.reduceat(idx, first) + 1
    sweeps = end > first
    # metres along the joined paths (differences are taken within one sortie only): home is
    # from the last sweep point to the point over the pad, the path's last but one
    cum = np.r_[0.0, np.cumsum(np.hypot(*np.diff(flat, axis=0).T))]
    home_m = np.where(sweeps, cum[first + sizes - 2] - cum[np.maximum(end, first)], 0.0)
    v = fleet.speed_mps[drone]
    wind = float(np.hypot(*mission.wind_vector_mps))
    endurance = fleet.endurance_s[drone]
    land = np.array([s.land_s for s in sorties])
    energy = np.array([s.energy for s in sorties]) * endurance
    down_s = mission.altitude_m / fleet.climb_mps[drone]
    t = land - home_m / v - down_s
    used = energy - home_m * power_factor(v + wind, v) / v - down_s * float(power_factor(0.0, 1.0))
    return np.where(sweeps, t, land), np.where(sweeps, used, energy)
