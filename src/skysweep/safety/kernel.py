"""The safety kernel: the one way a command reaches a vehicle.

The orchestrator never holds a :class:`~skysweep.link.base.Link`. It holds a
:class:`SafetyKernel`, which owns the link, and talks to vehicles in two steps:

1. :meth:`SafetyKernel.check` runs the pure checker :func:`check_orders` over a batch of
   :class:`Order` s and returns a :class:`Checked` batch: every order accepted, clipped to a safe
   one, or refused, each with its reason;
2. the orchestrator writes those verdicts to the run log, then hands the batch to
   :meth:`SafetyKernel.send`, which only takes a batch this kernel checked itself and sends only
   what passed.

What the checker enforces, per drone (positions in the mission's local frame, metres; altitude
above the launch site):

- **Geofence.** Every segment of a commanded route whose two ends lie in the guarded space (the
  allowed space shrunk by ``geofence_margin_m`` less :data:`GUARD_TOLERANCE_M`) stays in it; any
  other segment (leaving a pad, coming back from the margin after a dodge) stays inside the fence
  itself. The route starts where the drone will be once it has stopped: its position plus the
  stopping distance at its current speed, ``v² / 2a``, along its velocity.
- **Altitude band.** Every waypoint lies between the ground and ``safety.max_altitude_m``.
- **Separation.** A launch waits while another airborne drone is within the minimum separation
  of the pad; a new route for an airborne drone must not bring it within the minimum separation
  of a neighbour (same altitude band) in the next :data:`SEPARATION_HORIZON_S` seconds, both
  flying straight on, unless they are that close already.
- **Energy.** The drone's battery, less what the route needs against the current wind, keeps the
  reserve (work) or the critical level (a way home).

What fails is refused (a launch or a work route: the orchestrator asks again on a later tick) or
clipped to a safe order: an autopilot return whose straight line crosses a fence becomes a
flyable route home; a way home the battery cannot afford becomes a landing where the drone is.
Landing and holding are always allowed: they only ever take energy and motion away.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
import shapely
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from skysweep.energy import HOVER_POWER, power_factor
from skysweep.errors import InfeasibleError, LinkError
from skysweep.fence import FenceField, segments_clear
from skysweep.geo import FloatArray, fence_margin
from skysweep.link.base import Link
from skysweep.mission import Mission
from skysweep.plan.paths import PathFinder
from skysweep.telemetry import Command, FleetState, LinkEvent

#: The guarded space is the fence moved in by the geofence margin less this, metres: planned
#: routes keep the whole margin, less the fractions of a metre their corners are inset by.
GUARD_TOLERANCE_M = 1.0
#: A waypoint this close to the drone's pad (metres) is on the pad: pads may sit inside the
#: geofence margin, and the legs up from and down onto them are checked against the fence.
PAD_RADIUS_M = 1.5
#: How far ahead a new route is checked for separation, seconds.
SEPARATION_HORIZON_S = 5.0
#: How far ahead a launch is checked for drones that would pass over its pad while it climbs
#: through their altitude, seconds (at most; less for a lower climb).
LAUNCH_LOOKAHEAD_S = 20.0
#: Altitude band height for separation, metres (drones this far apart vertically do not meet).
SEPARATION_BAND_M = 10.0
#: A route whose first point (within a metre horizontally) is more than this above or below the
#: drone starts with a step in place, judged as such for separation, metres.
STEP_M = 2.0
#: Battery, fraction of a pack, a route's estimate may overrun the limit by (telemetry noise).
ENERGY_TOLERANCE = 0.005
#: Battery below which a drone lands where it is instead of flying home, as a share of the
#: reserve.
CRITICAL_SHARE_OF_RESERVE = 0.4


#: Commands that move a drone along a route: the order carries it (for RESUME, the rest of the
#: mission it already has, from the item it flies to) and the checker checks it.
_ROUTED = (Command.START_MISSION, Command.RESUME)


class Purpose(IntEnum):
    """Why an order is given; the checker's limits depend on it."""

    WORK = 0
    """A sortie, or the rest of one: must keep the battery reserve."""
    HOME = 1
    """The way home: may dip into the reserve down to the critical level."""
    RECOVER = 2
    """Back into the allowed space from outside it (a breach, a new keep-out zone)."""
    SAFETY = 3
    """Land or hold: always allowed."""


class Outcome(IntEnum):
    ACCEPTED = 0
    CLIPPED = 1
    REFUSED = 2


@dataclass(frozen=True)
class Order:
    """A command for one drone; ``route`` (k, 3) for START_MISSION: the mission it flies."""

    drone: int
    command: Command
    route: FloatArray | None = None
    purpose: Purpose = Purpose.WORK
    reason: str = ""


@dataclass(frozen=True)
class Verdict:
    """What the checker made of one order: ``sent`` is what goes to the vehicle (the order
    itself, the safe order it was clipped to, or None when refused)."""

    order: Order
    outcome: Outcome
    sent: Order | None
    why: str = ""


@dataclass(frozen=True)
class SafetyContext:
    """Everything the checker needs that does not change from tick to tick."""

    hard: FenceField
    """The fence itself: keep-in minus keep-out zones."""
    guard: FenceField
    """The fence moved in by the margin (less the tolerance)."""
    finder: PathFinder
    home_m: FloatArray
    """(n, 2) every drone's pad."""
    ceiling_m: float
    min_separation_m: float
    reserve: float
    critical: float
    wind_mps: FloatArray
    speed_mps: FloatArray
    endurance_s: FloatArray
    climb_mps: FloatArray
    accel_mps2: FloatArray
    lost_link_timeout_s: float
    """A drone not heard for longer is judged where it was last seen, at rest
    (:func:`reported_velocity`)."""

    @classmethod
    def of(
        cls,
        mission: Mission,
        finder: PathFinder | None = None,
        keep_out: Sequence[shapely.Geometry] | None = None,
    ) -> SafetyContext:
        """The context of ``mission``; ``keep_out`` replaces its keep-out zones (an operator
        added or removed one)."""
        zones = [z.geometry for z in mission.keep_out] if keep_out is None else list(keep_out)
        margin = max(mission.safety.geofence_margin_m - GUARD_TOLERANCE_M, 0.0)
        guard_in = fence_margin(mission.keep_in, -margin)
        guard_out = [fence_margin(z, margin) for z in zones]
        if finder is None:
            finder = PathFinder.of(mission)
        fleet = mission.fleet
        reserve = mission.safety.battery_reserve
        return cls(
            hard=FenceField.build(mission.keep_in, zones),
            guard=FenceField.build(guard_in, guard_out),
            finder=finder,
            home_m=mission.pad_xy_m,
            ceiling_m=mission.safety.max_altitude_m,
            min_separation_m=mission.safety.min_separation_m,
            reserve=reserve,
            critical=CRITICAL_SHARE_OF_RESERVE * reserve,
            wind_mps=np.asarray(mission.wind_vector_mps, float),
            speed_mps=fleet.speed_mps,
            endurance_s=fleet.endurance_s,
            climb_mps=fleet.climb_mps,
            accel_mps2=fleet.accel_mps2,
            lost_link_timeout_s=mission.safety.lost_link_timeout_s,
        )


def reported_velocity(fs: FleetState, ctx: SafetyContext) -> FloatArray:
    """(n, 2) the horizontal velocity (m/s) each neighbour is taken to fly on at: its last
    report, or none for one not heard for more than the lost-link timeout. A report that old
    says nothing of where the drone is going (it may have fallen, or be flying its own
    failsafe); flown on, it sweeps a phantom across the sky that bars every route near its
    path (reliability seed 930: a drone that fell at 50 s, still "flying east at 15 m/s" from
    its last fix at 300 s, kept a neighbour's way home and every step out of its band
    refused for 375 s). Where it was last seen is kept: that is where the operator's map
    shows it."""
    v = fs.vel_mps[:, :2].copy()
    heard = fs.t_s - np.asarray(fs.last_seen_s, float) <= ctx.lost_link_timeout_s
    v[~heard] = 0.0  # never heard (NaN) is not heard either
    return v


def stopping_point(fs: FleetState, accel_mps2: FloatArray) -> FloatArray:
    """(n, 2) where each drone would come to rest braking now at its acceleration limit."""
    v = fs.vel_mps[:, :2]
    speed = np.hypot(v[:, 0], v[:, 1])
    reach = speed / (2.0 * np.asarray(accel_mps2, float))  # v² / 2a, divided by v
    return fs.pos_m[:, :2] + v * reach[:, None]


def route_energy(
    ctx: SafetyContext, drone: NDArray[np.intp], path: FloatArray, route_of: NDArray[np.intp]
) -> FloatArray:
    """Battery (fraction of a pack) each route needs, against the current wind.

    ``path`` is (m, 3), every route's points one after another; ``route_of`` (m,) says which
    route each point belongs to (non-decreasing), ``drone`` (routes,) whose it is. A leg takes
    as long as its slower part (horizontal at cruise speed, vertical at the climb rate); climbing
    costs extra power, the wind shows in the air speed.
    """
    same = route_of[1:] == route_of[:-1]
    a, b, owner = path[:-1][same], path[1:][same], route_of[1:][same]
    i = drone[owner]
    v, climb = ctx.speed_mps[i], ctx.climb_mps[i]
    d = b[:, :2] - a[:, :2]
    horizontal = np.hypot(d[:, 0], d[:, 1])
    dz = b[:, 2] - a[:, 2]
    t = np.maximum(horizontal / v, np.abs(dz) / climb)
    unit = d / np.maximum(horizontal, 1e-9)[:, None]
    ground = unit * np.minimum(v, horizontal / np.maximum(t, 1e-9))[:, None]
    air = np.hypot(*(ground - ctx.wind_mps).T)
    pf = np.where(
        horizontal > 1e-6,
        power_factor(air, v, np.maximum(dz, 0.0) / np.maximum(t, 1e-9)),
        power_factor(np.hypot(*ctx.wind_mps), v, np.maximum(dz, 0.0) / np.maximum(t, 1e-9)),
    )
    pf = np.maximum(pf, HOVER_POWER)
    need = np.zeros(len(drone))
    np.add.at(need, owner, pf * t / ctx.endurance_s[i])
    return need


def check_orders(orders: Sequence[Order], fs: FleetState, ctx: SafetyContext) -> list[Verdict]:
    """The verdict on every order, in order (pure: reads ``fs`` and ``ctx`` only)."""
    verdicts: list[Verdict | None] = [None] * len(orders)
    routed = [k for k, o in enumerate(orders) if o.command in _ROUTED and o.route is not None]
    for k, o in enumerate(orders):
        if o.command in (Command.LAND, Command.HOLD):
            verdicts[k] = Verdict(o, Outcome.ACCEPTED, o)
        elif o.command is Command.SWAP_BATTERY:
            if fs.airborne[o.drone]:
                verdicts[k] = Verdict(o, Outcome.REFUSED, None, "battery swap: drone is airborne")
            else:
                verdicts[k] = Verdict(o, Outcome.ACCEPTED, o)
        elif o.command in _ROUTED and o.route is None:
            verdicts[k] = Verdict(o, Outcome.REFUSED, None, f"{o.command.name}: no route given")
        elif o.command is Command.RETURN:
            verdicts[k] = _check_rtl(o, fs, ctx)
    if routed:
        for k, v in zip(routed, _check_routes([orders[k] for k in routed], fs, ctx), strict=True):
            verdicts[k] = v
    out: list[Verdict] = []
    for k, verdict in enumerate(verdicts):
        if verdict is None:
            raise LinkError(f"the safety kernel has no rule for {orders[k].command.name}")
        out.append(verdict)
    return out


def _check_rtl(o: Order, fs: FleetState, ctx: SafetyContext) -> Verdict:
    """An autopilot return flies straight home at its altitude: judged as that route. If the
    line crosses a fence it is clipped to a flyable route home, itself checked; what the
    battery cannot afford becomes a landing."""
    i = o.drone
    outside = not bool(ctx.hard.sample(fs.pos_m[i : i + 1, :2])[0][0] > 0.0)
    purpose = Purpose.RECOVER if outside else Purpose.HOME
    alt = float(max(fs.pos_m[i, 2], 1.0))
    straight = np.array([[*ctx.home_m[i], alt], [*ctx.home_m[i], 0.0]])
    v = _check_routes([Order(i, Command.START_MISSION, straight, purpose, o.reason)], fs, ctx)[0]
    if v.outcome is Outcome.ACCEPTED:
        return Verdict(o, Outcome.ACCEPTED, o)
    if v.outcome is Outcome.CLIPPED or v.why == "separation":
        return Verdict(o, v.outcome, v.sent, v.why)
    land = Order(i, Command.LAND, None, Purpose.SAFETY, o.reason)
    route = home_route(ctx, i, fs)
    if route is None:
        return Verdict(o, Outcome.CLIPPED, land, f"straight return: {v.why}; no route home")
    routed = Order(i, Command.START_MISSION, route, purpose, o.reason)
    w = _check_routes([routed], fs, ctx)[0]
    if w.outcome is Outcome.REFUSED:
        if w.why == "separation":
            return Verdict(o, Outcome.REFUSED, None, w.why)
        return Verdict(o, Outcome.CLIPPED, land, f"straight return: {v.why}; route home: {w.why}")
    return Verdict(o, Outcome.CLIPPED, w.sent, f"straight return: {v.why}; routed instead")


def home_route(ctx: SafetyContext, drone: int, fs: FleetState) -> FloatArray | None:
    """A flyable route (k, 3) from where ``drone`` is to its pad at the current altitude, then
    down; None if none exists."""
    alt = float(max(fs.pos_m[drone, 2], 1.0))
    try:
        path = ctx.finder.path(fs.pos_m[drone, :2], ctx.home_m[drone])
    except InfeasibleError:
        return None
    route = np.column_stack([path[1:], np.full(len(path) - 1, alt)])
    return np.vstack([route, [*ctx.home_m[drone], 0.0]])


def _check_routes(orders: Sequence[Order], fs: FleetState, ctx: SafetyContext) -> list[Verdict]:
    """Fence, altitude, separation and energy for START_MISSION orders, all at once."""
    drone = np.array([o.drone for o in orders], np.intp)
    air = fs.airborne[drone]
    stop = stopping_point(fs, ctx.accel_mps2)[drone]
    heads: list[FloatArray] = []
    for k, o in enumerate(orders):
        assert o.route is not None
        pos = fs.pos_m[o.drone]
        head = [pos, [*stop[k], pos[2]]] if air[k] else [pos]
        heads.append(np.vstack([np.asarray(head, float), np.asarray(o.route, float)]))
    sizes = np.array([len(h) for h in heads], np.intp)
    path = np.vstack(heads)
    route_of = np.repeat(np.arange(len(orders)), sizes)
    first = np.cumsum(sizes) - sizes
    why = [""] * len(orders)

    def fail(mask: NDArray[np.bool_], reason: str) -> None:
        for k in np.flatnonzero(mask):
            why[k] = why[k] or reason

    # altitude band: the route as commanded (the drone's present altitude is not its doing)
    z = np.concatenate([np.asarray(o.route, float)[:, 2] for o in orders])
    z_of = np.repeat(np.arange(len(orders)), [len(o.route) for o in orders if o.route is not None])
    bad_z = np.zeros(len(orders), bool)
    np.logical_or.at(bad_z, z_of, (z < -0.5) | (z > ctx.ceiling_m + 1e-6))
    fail(bad_z, f"altitude outside the band 0-{ctx.ceiling_m:g} m")

    # geofence: every commanded waypoint in the guarded space (a pad may sit in the margin);
    # the drone's own position and stopping point, and the legs to and from a pad, inside the
    # fence itself
    xy = np.ascontiguousarray(path[:, :2])
    in_hard = ctx.hard.sample(xy)[0] > 0.0
    in_guard = ctx.guard.sample(xy)[0] > 0.0
    idx = np.arange(len(path))
    n_head = np.where(air, 2, 1)
    is_head = idx < (first + n_head)[route_of]
    # the first point of a ground drone's route is its pad too
    on_pad = np.hypot(*(xy - ctx.home_m[drone[route_of]]).T) <= PAD_RADIUS_M
    recover = np.array([o.purpose is Purpose.RECOVER for o in orders])
    # a recovery starts outside: its points up to the first one back inside are exempt
    back_in = np.where(in_hard, idx, len(path))
    first_in = np.minimum.reduceat(back_in, first)
    exempt = recover[route_of] & (idx < first_in[route_of])
    fail(np.bincount(route_of, ~in_hard & ~exempt, len(orders)) > 0, "waypoint outside the fence")
    in_margin = ~in_guard & ~is_head & ~on_pad & ~exempt
    fail(np.bincount(route_of, in_margin, len(orders)) > 0, "waypoint inside the geofence margin")
    seg_ok = np.ones(len(path) - 1, bool)
    same = route_of[1:] == route_of[:-1]
    moves = same & (np.hypot(*(xy[1:] - xy[:-1]).T) > 1e-6) & ~exempt[:-1]
    loose = on_pad[:-1] | on_pad[1:] | ~in_guard[:-1] | ~in_guard[1:]
    guarded = moves & ~loose
    hard = moves & loose
    if guarded.any():
        seg_ok[guarded] = segments_clear(ctx.guard, xy[:-1][guarded], xy[1:][guarded])
    if hard.any():
        seg_ok[hard] = segments_clear(ctx.hard, xy[:-1][hard], xy[1:][hard])
    crossing = np.bincount(route_of[1:], ~seg_ok, len(orders)) > 0
    fail(crossing, "route crosses the geofence or its margin")

    # energy
    need = route_energy(ctx, drone, path, route_of)
    left = fs.battery[drone] - need
    work = np.array([o.purpose is Purpose.WORK for o in orders])
    floor = np.where(work, ctx.reserve, ctx.critical) - ENERGY_TOLERANCE
    short = left < floor

    # separation, last: only a route that will be flown as given moves its drone for the others
    viable = np.array([not w for w in why]) & ~short
    fail(_separation_conflicts(drone, air, path, first, fs, ctx, viable), "separation")
    verdicts = []
    for k, o in enumerate(orders):
        if not why[k] and not short[k]:
            verdicts.append(Verdict(o, Outcome.ACCEPTED, o))
        elif not why[k] and o.purpose is not Purpose.WORK and air[k]:
            land = Order(o.drone, Command.LAND, None, Purpose.SAFETY, o.reason)
            verdicts.append(
                Verdict(
                    o,
                    Outcome.CLIPPED,
                    land,
                    f"energy: the way needs {need[k]:.0%}, {fs.battery[o.drone]:.0%} left; "
                    "landing here",
                )
            )
        else:
            reason = why[k] or (
                f"energy: needs {need[k]:.0%} of a pack, {fs.battery[o.drone]:.0%} left, "
                f"reserve {floor[k] + ENERGY_TOLERANCE:.0%}"
            )
            verdicts.append(Verdict(o, Outcome.REFUSED, None, reason))
    return verdicts


def _separation_conflicts(
    drone: NDArray[np.intp],
    air: NDArray[np.bool_],
    path: FloatArray,
    first: NDArray[np.intp],
    fs: FleetState,
    ctx: SafetyContext,
    viable: NDArray[np.bool_],
) -> NDArray[np.bool_]:
    """Orders whose first seconds would bring the drone within the minimum separation of an
    airborne neighbour it is not that close to already (both flying straight on).

    Airborne orders of one batch (a whole fleet resumed at once) are decided one after the
    other: each is judged against the drones let through before it at their new
    velocity and against every other drone at the velocity it has now (a drone refused, or
    not yet decided, keeps it). So every pair that goes was judged as both fly, and of two
    drones whose new routes converge one goes and the other waits a tick, where judging each
    as if all moved would refuse both, tick after tick.

    A route that first climbs or descends where the drone is (a step to another altitude, out
    of a crowd of drones holding in each other's way) is judged in two parts: the vertical
    step, against every drone that would be over the column while the step goes through its
    altitude band, then the level flight from the new altitude, against the drones in that
    band where they will be when the step ends. A drone let through on such a route stays in
    its column for the drones of its old band, and flies on in the new one from the end of
    its step.
    ``viable``: orders that pass every other check (only those move their drone)."""
    out = np.zeros(len(drone), bool)
    sep = ctx.min_separation_m
    up = np.flatnonzero(fs.airborne)
    if sep <= 0 or not len(up):
        return out
    tree = cKDTree(fs.pos_m[up, :2])
    ends = np.r_[first[1:], len(path)]
    ground = np.flatnonzero(~air)
    if len(ground):
        out[ground] = _climb_conflicts(
            drone[ground], path, first[ground], ends[ground], up, tree, fs, ctx
        )
    flying = np.flatnonzero(air)
    if not len(flying):
        return out
    i = drone[flying]
    v = ctx.speed_mps[i]
    p0 = fs.pos_m[i]
    # heading of the new route: towards its first point more than a metre away; the
    # altitude it flies there from: that of the point before (a step in place) or its own
    target = p0[:, :2].copy()
    level = p0[:, 2].copy()
    for n_k, k in enumerate(flying):
        seg = path[first[k] + 2 : ends[k]]
        far = np.flatnonzero(np.hypot(*(seg[:, :2] - p0[n_k, :2]).T) > 1.0)
        if len(far):
            target[n_k] = seg[far[0], :2]
            if far[0] > 0:
                level[n_k] = seg[far[0] - 1, 2]
    rise = level - p0[:, 2]
    step = np.abs(rise) > STEP_M
    rate = np.maximum(ctx.climb_mps[i], 0.1)
    t_step = np.where(step, np.abs(rise) / rate, 0.0)
    d = target - p0[:, :2]
    dn = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)
    vel = d / dn[:, None] * v[:, None]
    moving = reported_velocity(fs, ctx)
    reach = (v + ctx.speed_mps.max()) * (SEPARATION_HORIZON_S + t_step) + sep
    hits_of = tree.query_ball_point(p0[:, :2], reach)
    # drones let through on a step, in their new band: column, altitude, velocity, step end
    g_xy: list[FloatArray] = []
    g_z: list[float] = []
    g_v: list[FloatArray] = []
    g_t: list[float] = []
    # a worklist: a drone stopped by others is judged again each time one of them goes
    queue = deque(range(len(flying)))
    waiting: set[int] = set()
    gone: set[int] = set()
    dependents: dict[int, list[int]] = {}
    while queue:
        n_k = queue.popleft()
        if n_k in gone:
            continue
        j = up[np.asarray(hits_of[n_k], np.intp)]
        j = j[j != i[n_k]]
        blockers: list[int] = []
        ghost_in_way = False
        # altitudes whose band the step passes through
        z_lo = min(p0[n_k, 2], level[n_k]) - SEPARATION_BAND_M
        z_hi = max(p0[n_k, 2], level[n_k]) + SEPARATION_BAND_M
        if step[n_k] and len(j):
            j_col = j[(fs.pos_m[j, 2] > z_lo) & (fs.pos_m[j, 2] < z_hi)]
            hit = _column_conflicts(
                p0[n_k, :2],
                p0[n_k, 2],
                level[n_k],
                float(rate[n_k]),
                float(t_step[n_k]),
                fs.pos_m[j_col, :2],
                moving[j_col],
                fs.pos_m[j_col, 2],
                sep,
            )
            # one beside it in its own band already, that the step leaves behind, is no bar
            beside = (np.hypot(*(fs.pos_m[j_col, :2] - p0[n_k, :2]).T) < sep) & (
                (fs.pos_m[j_col, 2] - p0[n_k, 2]) * np.sign(rise[n_k]) <= 0
            )
            blockers += j_col[hit & ~beside].tolist()
        if g_z:
            gz = np.array(g_z)
            gxy, gv, gt = np.array(g_xy), np.array(g_v), np.array(g_t)
            if step[n_k]:
                near = (gz > z_lo) & (gz < z_hi)
                ghost_in_way |= bool(
                    _column_conflicts(
                        p0[n_k, :2],
                        p0[n_k, 2],
                        level[n_k],
                        float(rate[n_k]),
                        float(t_step[n_k]),
                        (gxy - gv * gt[:, None])[near],
                        gv[near],
                        gz[near],
                        sep,
                    ).any()
                )
            near = np.abs(gz - level[n_k]) < SEPARATION_BAND_M
            if near.any():
                at = gxy[near] + gv[near] * (t_step[n_k] - gt[near])[:, None]
                ghost_in_way |= bool(_passing(at - p0[n_k, :2], gv[near] - vel[n_k], sep).any())
        jl = j[np.abs(fs.pos_m[j, 2] - level[n_k]) < SEPARATION_BAND_M]
        if len(jl):
            # where they are when the level flight begins (now, for a route without a step)
            at = fs.pos_m[jl, :2] + moving[jl] * t_step[n_k]
            blockers += jl[_passing(at - p0[n_k, :2], moving[jl] - vel[n_k], sep)].tolist()
        if blockers or ghost_in_way:
            waiting.add(n_k)
            for b in blockers:
                dependents.setdefault(b, []).append(n_k)
            continue
        waiting.discard(n_k)
        gone.add(n_k)
        if viable[flying[n_k]]:
            if step[n_k]:
                moving[i[n_k]] = 0.0
                g_xy.append(p0[n_k, :2])
                g_z.append(float(level[n_k]))
                g_v.append(vel[n_k])
                g_t.append(float(t_step[n_k]))
            else:
                moving[i[n_k]] = vel[n_k]
            queue.extend(d for d in dependents.pop(int(i[n_k]), []) if d in waiting)
    out[flying[sorted(waiting)]] = True
    return out


def _passing(rel_p: FloatArray, rel_v: FloatArray, sep: float) -> NDArray[np.bool_]:
    """Neighbours at ``rel_p`` closing at ``rel_v`` (relative to the drone, horizontal, m and
    m/s) that come within ``sep`` metres in the next :data:`SEPARATION_HORIZON_S` seconds,
    flying straight on; one already that close is a conflict only if it gets closer."""
    now = np.hypot(rel_p[:, 0], rel_p[:, 1])
    vv = np.maximum((rel_v**2).sum(1), 1e-12)
    t = np.clip(-(rel_p * rel_v).sum(1) / vv, 0.0, SEPARATION_HORIZON_S)
    closest = np.hypot(*(rel_p + rel_v * t[:, None]).T)
    return (closest < sep) & ((now >= sep) | (closest < now - 1e-6))


def _column_conflicts(
    xy: FloatArray,
    z0: float,
    z1: float,
    rate_mps: float,
    t_end_s: float,
    nb_xy: FloatArray,
    nb_v: FloatArray,
    nb_z: FloatArray,
    sep: float,
) -> NDArray[np.bool_]:
    """Neighbours (at ``nb_xy`` now, flying straight on at ``nb_v``, level at ``nb_z``) that
    come within ``sep`` metres horizontally of the column at ``xy`` while a drone in it climbs
    or descends from ``z0`` towards ``z1`` at ``rate_mps`` through the band of their altitude,
    in the next ``t_end_s`` seconds."""
    if not len(nb_z):
        return np.zeros(0, bool)
    rel = nb_xy - xy
    a = (nb_v**2).sum(1)
    b = 2.0 * (rel * nb_v).sum(1)
    c = (rel**2).sum(1) - sep**2
    disc = b**2 - 4.0 * a * c
    root = np.sqrt(np.maximum(disc, 0.0))
    moving = a > 1e-9
    safe_a = np.where(moving, a, 1.0)
    t_in = np.where(moving, (-b - root) / (2.0 * safe_a), np.where(c < 0, -np.inf, np.inf))
    t_out = np.where(moving, (-b + root) / (2.0 * safe_a), np.where(c < 0, np.inf, -np.inf))
    t_in[moving & (disc < 0)] = np.inf
    s = rate_mps if z1 >= z0 else -rate_mps
    ta = (nb_z - SEPARATION_BAND_M - z0) / s
    tb = (nb_z + SEPARATION_BAND_M - z0) / s
    lo = np.maximum.reduce([t_in, np.minimum(ta, tb), np.zeros(len(nb_z))])
    hi = np.minimum.reduce([t_out, np.maximum(ta, tb), np.full(len(nb_z), t_end_s)])
    return lo < hi


def _climb_conflicts(
    drone: NDArray[np.intp],
    path: FloatArray,
    first: NDArray[np.intp],
    ends: NDArray[np.intp],
    up: NDArray[np.intp],
    tree: cKDTree,
    fs: FleetState,
    ctx: SafetyContext,
) -> NDArray[np.bool_]:
    """Launches that would climb into an airborne drone: one over the pad within the minimum
    separation, or one flying straight on that would pass over it (within the separation)
    while the climbing drone goes through its altitude band. Neighbours keep their altitude."""
    sep = ctx.min_separation_m
    out = np.zeros(len(drone), bool)
    pads = fs.pos_m[drone, :2]
    climb = np.maximum(ctx.climb_mps[drone], 0.1)
    top = np.array([max(float(path[a:b, 2].max()), 0.0) for a, b in zip(first, ends, strict=True)])
    t_max = np.minimum((top + SEPARATION_BAND_M) / climb, LAUNCH_LOOKAHEAD_S)
    moving = reported_velocity(fs, ctx)
    speed = np.hypot(moving[up, 0], moving[up, 1])
    reach = sep + (speed.max() if len(speed) else 0.0) * t_max
    for k, hits in enumerate(tree.query_ball_point(pads, reach)):
        j = up[np.asarray(hits, np.intp)]
        j = j[j != drone[k]]
        if not len(j):
            continue
        # the climb goes on past the top, for the band above it
        hit = _column_conflicts(
            pads[k],
            0.0,
            np.inf,
            float(climb[k]),
            float(t_max[k]),
            fs.pos_m[j, :2],
            moving[j],
            fs.pos_m[j, 2],
            sep,
        )
        out[k] = bool(hit.any())
    return out


@dataclass(frozen=True)
class Checked:
    """A batch of verdicts from one kernel; only that kernel will send it."""

    verdicts: tuple[Verdict, ...]
    t_s: float
    _issuer: object = field(repr=False, compare=False)

    @property
    def sent(self) -> list[Order]:
        return [v.sent for v in self.verdicts if v.sent is not None]


class SafetyKernel:
    """Owns the link; checks every order (:meth:`check`) before it may be sent (:meth:`send`).

    Telemetry and events pass through unchanged. The link is held privately and no method
    hands it out, so nothing that holds only the kernel can reach a vehicle unchecked.
    """

    def __init__(self, link: Link, ctx: SafetyContext) -> None:
        self.__link = link
        self.ctx = ctx
        self._token = object()
        self._issued: dict[int, Checked] = {}

    def poll(self, now_s: float) -> FleetState:
        return self.__link.poll(now_s)

    def take_events(self) -> list[LinkEvent]:
        return self.__link.take_events()

    def check(self, orders: Sequence[Order], fs: FleetState, now_s: float) -> Checked:
        """Verdicts on ``orders`` against telemetry ``fs``; nothing is sent yet."""
        checked = Checked(tuple(check_orders(orders, fs, self.ctx)), now_s, self._token)
        self._issued = {id(checked): checked}  # only the latest batch may be sent, once
        return checked

    def send(self, checked: Checked) -> None:
        """Send what ``checked`` passed (uploads first, then commands, grouped by command)."""
        if checked._issuer is not self._token or self._issued.pop(id(checked), None) is not checked:
            raise LinkError(
                "refused: this batch was not checked by this safety kernel, or was sent already"
            )
        groups: dict[Command, list[int]] = {}
        for o in checked.sent:
            if o.route is not None and o.command is Command.START_MISSION:
                self.__link.upload(o.drone, o.route)
            groups.setdefault(o.command, []).append(o.drone)
        for command, drones in groups.items():
            self.__link.send(np.array(drones, np.intp), command)

    def with_context(
        self, ctx: SafetyContext, keep_out_m: Sequence[shapely.Geometry] | None = None
    ) -> None:
        """Check from now on against ``ctx`` (a keep-out zone was added or removed); with
        ``keep_out_m`` (every keep-out zone now, local metres), vehicles that keep a geofence
        of their own are sent it too."""
        self.ctx = ctx
        if keep_out_m is not None:
            self.__link.set_fence(keep_out_m)
