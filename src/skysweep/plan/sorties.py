"""Cut a drone's sweep route into sorties that each fit one battery.

A sortie climbs over the pad, transits to where the route resumes, sweeps, returns and lands.
Battery use is estimated with :mod:`skysweep.energy`: every leg at cruise ground speed with the
forecast wind, except the way home, which is costed against a full head-wind (the wind can turn
while the drone is out), plus the time the autopilot loses slowing into each corner
(:mod:`skysweep.kinematics`), which on a lawnmower sweep adds up to minutes. A sortie may use
``1 − battery_reserve − PLAN_MARGIN`` of a pack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from skysweep.energy import PLAN_MARGIN, power_factor
from skysweep.errors import InfeasibleError
from skysweep.footprint import densify_with_vertices
from skysweep.geo import FloatArray
from skysweep.kinematics import corner_loss_s
from skysweep.mission import Mission
from skysweep.plan.model import SWEEP_LEG, Leg, Sortie
from skysweep.plan.paths import PathFinder

_TRANSIT, _RETURN, _DESCEND = int(Leg.TRANSIT), int(Leg.RETURN), int(Leg.DESCEND)

#: Candidate points where a sortie may end, at most this far apart along the route (metres).
SPLIT_STEP_M = 25.0


@dataclass(frozen=True)
class Airframe:
    """What the sortie cutter needs to know of one drone (SI units)."""

    name: str
    speed_mps: float
    endurance_s: float
    climb_mps: float
    accel_mps2: float

    @classmethod
    def of(cls, mission: Mission, drone: int) -> Airframe:
        fleet = mission.fleet
        return cls(
            fleet.ids[drone],
            float(fleet.speed_mps[drone]),
            float(fleet.endurance_s[drone]),
            float(fleet.climb_mps[drone]),
            float(fleet.accel_mps2[drone]),
        )

    def head_factor(self, wind: FloatArray) -> float:
        """Power relative to cruise flying into a head-wind as strong as ``wind`` (m/s)."""
        return float(power_factor(self.speed_mps + float(np.hypot(*wind)), self.speed_mps))

    def vertical_cs(self, altitude_m: float) -> float:
        """Battery (cruise-seconds) to climb to ``altitude_m`` over the pad and come down again,
        getting up to speed after the climb and stopping over the pad."""
        climb = power_factor(0.0, 1.0, self.climb_mps) + power_factor(0.0, 1.0)
        return altitude_m / self.climb_mps * float(climb) + self.speed_mps / self.accel_mps2

    def flight_s(self, flat: FloatArray, altitude_m: float, corners_s: float) -> float:
        """Seconds to fly the horizontal path ``flat`` (pad to pad) at cruise speed, climbing
        to ``altitude_m`` and down again, with ``corners_s`` lost slowing into its corners and
        getting up to speed and stopping again (see skysweep.kinematics)."""
        horizontal = float(np.hypot(*np.diff(flat[:, :2], axis=0).T).sum())
        up_down = 2.0 * altitude_m / self.climb_mps + self.speed_mps / self.accel_mps2
        return horizontal / self.speed_mps + up_down + corners_s


@dataclass(frozen=True)
class FlightLeg:
    """A sortie as flown: 3-D path, leg kinds, duration and planned battery use."""

    path: FloatArray
    legs: np.ndarray
    duration_s: float
    energy: float


def leg_energy(xy: FloatArray, speed_mps: float, wind: FloatArray) -> FloatArray:
    """Battery use in cruise-seconds for each leg of a polyline flown at ``speed_mps`` over
    the ground with wind ``wind`` (m/s, east/north)."""
    d = np.diff(xy[:, :2], axis=0)
    length = np.hypot(d[:, 0], d[:, 1])
    unit = d / np.maximum(length, 1e-9)[:, None]
    air = unit * speed_mps - wind
    return power_factor(np.hypot(air[:, 0], air[:, 1]), speed_mps) * length / speed_mps


def cut_sorties(
    route: FloatArray,
    home: FloatArray,
    altitude_m: float,
    frame: Airframe,
    wind: FloatArray,
    reserve: float,
    finder: PathFinder,
) -> list[FlightLeg]:
    """Sorties covering ``route`` (m, 2) in order, each within ``1 − reserve`` of a battery."""
    if len(route) < 2:
        return []
    budget = (1.0 - reserve - PLAN_MARGIN) * frame.endurance_s  # cruise-seconds
    head = frame.head_factor(wind)
    vertical = frame.vertical_cs(altitude_m)
    v, accel = frame.speed_mps, frame.accel_mps2

    dense, is_vertex = _dense_with_flags(route)
    # every leg with the slow-down into the corner at its end (counted at cruise power)
    per_leg = leg_energy(dense, v, wind)
    per_leg[:-1] += corner_loss_s(dense, v, accel)
    cum = np.concatenate([[0.0], np.cumsum(per_leg)])
    home_straight = np.hypot(*(dense - home).T) * head / frame.speed_mps

    out: list[FlightLeg] = []
    start = 0
    last = len(dense) - 1
    while start < last:
        out_path = finder.path(home, dense[start])
        e_out = vertical + float(leg_energy(out_path, v, wind).sum())
        e_out += float(corner_loss_s(np.vstack([out_path, dense[start + 1]]), v, accel).sum())
        need = e_out + (cum[start + 1 :] - cum[start]) + home_straight[start + 1 :]
        fits = np.flatnonzero(need <= budget)
        if not len(fits):
            dist = np.hypot(*(dense[start] - home))
            raise InfeasibleError(
                f"{frame.name}: its work {dist:,.0f} m from its launch site is beyond one battery "
                f"(a round trip there needs {(e_out * 2) / frame.endurance_s:.0%} of a pack, "
                f"{1 - reserve:.0%} usable)"
            )
        end = start + 1 + int(fits[-1])
        while True:
            back = finder.path(dense[end], home)
            e_back = float(np.sum(np.hypot(*np.diff(back, axis=0).T))) * head / v
            e_back += float(corner_loss_s(np.vstack([dense[end - 1], back]), v, accel).sum())
            if e_out + cum[end] - cum[start] + e_back <= budget or end == start + 1:
                break
            end = max(start + 1, end - max(1, (end - start) // 16))
        energy = e_out + cum[end] - cum[start] + e_back
        if energy > budget:
            raise InfeasibleError(
                f"{frame.name}: no sortie fits one battery around {dense[start].round()} m"
            )
        sweep = dense[start : end + 1][is_vertex[start : end + 1] | _ends(end - start + 1)]
        out.append(_assemble(out_path, sweep, back, altitude_m, frame, energy))
        start = end
    return out


def _ends(n: int) -> np.ndarray:
    m = np.zeros(n, bool)
    m[[0, -1]] = True
    return m


def _dense_with_flags(route: FloatArray) -> tuple[FloatArray, np.ndarray]:
    dense, vertex_at = densify_with_vertices(route, SPLIT_STEP_M)
    is_vertex = np.zeros(len(dense), bool)
    is_vertex[vertex_at] = True
    return dense, is_vertex


def _assemble(
    out_path: FloatArray,
    sweep: FloatArray,
    back: FloatArray,
    altitude_m: float,
    frame: Airframe,
    energy_cs: float,
) -> FlightLeg:
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
    corners = float(corner_loss_s(flat, frame.speed_mps, frame.accel_mps2).sum())
    duration = frame.flight_s(flat, altitude_m, corners)
    return FlightLeg(path, np.array(kinds, np.int8), duration, energy_cs / frame.endurance_s)


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
    its battery: the first launches at ``start_s`` and is numbered ``first_number``, each next
    one after a battery swap. ``pad_xy`` saves recomputing ``mission.pad_xy_m``."""
    fleet = mission.fleet
    routes = [r for r in routes if len(r)]
    if not routes:
        return []
    joined = [routes[0]]
    for route in routes[1:]:
        hop = finder.path(joined[-1][-1], route[0])
        joined += [hop[1:-1], route]
    frame = Airframe.of(mission, drone)
    pad = mission.pad_xy_m[drone] if pad_xy is None else pad_xy
    legs = cut_sorties(
        np.vstack(joined),
        pad,
        mission.altitude_m,
        frame,
        mission.wind_vector_mps,
        mission.safety.battery_reserve,
        finder,
    )
    out = []
    t = start_s
    for number, leg in enumerate(legs, start=first_number):
        out.append(Sortie(drone, number, t, leg.path, leg.legs, leg.duration_s, leg.energy))
        t += leg.duration_s + float(fleet.swap_s[drone])
    return out


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
    flats = [p[1:-1, :2] for p in paths]
    sizes = np.array([len(f) for f in flats], np.intp)
    first = np.r_[0, np.cumsum(sizes)[:-1]]
    xy = np.concatenate(flats)
    seg_of = np.repeat(np.arange(len(flats)), sizes)[:-1]  # (a segment's sortie: its start's)
    # a segment from one sortie's last point to the next one's first lies across two
    own = np.ones(len(xy) - 1, bool)
    own[first[1:] - 1] = False
    v = fleet.speed_mps[drones]
    accel = fleet.accel_mps2[drones]
    wind = mission.wind_vector_mps
    head = power_factor(v + float(np.hypot(*wind)), v)
    d = np.diff(xy, axis=0)
    length = np.hypot(d[:, 0], d[:, 1]) * own
    vs = v[seg_of]
    air = d / np.maximum(length, 1e-9)[:, None] * vs[:, None] - wind
    per_leg = power_factor(np.hypot(air[:, 0], air[:, 1]), vs) * length / vs
    home = np.zeros(len(own), bool)
    home[own] = np.concatenate([lg[1:-1] == _RETURN for lg in legs])
    per_leg[home] = length[home] * head[seg_of[home]] / vs[home]
    # corners: every vertex inside one sortie's path, at its own drone's speed and accel
    vertex_of = seg_of[1:]
    inner = np.ones(len(xy), bool)
    inner[first] = False
    inner[first + sizes - 1] = False
    inner = inner[1:-1]
    loss = np.where(inner, corner_loss_s(xy, v[vertex_of], accel[vertex_of]), 0.0)
    n = len(flats)
    corners = np.bincount(vertex_of, loss, minlength=n)
    horizontal = np.bincount(seg_of, length, minlength=n)
    cruise = np.bincount(seg_of, per_leg, minlength=n)
    alt = mission.altitude_m
    climb = fleet.climb_mps[drones]
    vertical = alt / climb * (power_factor(0.0, 1.0, climb) + power_factor(0.0, 1.0)) + v / accel
    energy = vertical + cruise + corners
    duration = horizontal / v + 2.0 * alt / climb + v / accel + corners
    return energy, duration


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
