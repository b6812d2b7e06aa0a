"""The simulator's step, compiled: autopilot guidance, point-mass dynamics, battery, touchdown.

One loop over the fleet per phase, compiled with numba, so that a step for 10,000 drones costs
a fraction of a millisecond; the arrays are the :class:`~skysweep.sim.world.World`'s own and are
updated in place. Units: metres, seconds, m/s; positions in the mission's local frame (x east,
y north, altitude above the launch site).

The autopilot steers on its *estimated* position (true position plus the GPS error), as a real
one does: a GPS glitch moves the drone, not only its report.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

from skysweep.energy import CLIMB_POWER_PER_MPS, HOVER_POWER
from skysweep.geo import FloatArray
from skysweep.gridfield import lookup
from skysweep.kinematics import ARRIVE_MPS, CORNER_SWING_M
from skysweep.telemetry import AutopilotMode

#: Horizontal acceptance radius of a waypoint, metres, on top of one step of travel.
ACCEPT_M = 2.0
#: A waypoint other than the last also counts as reached once the drone is past it (beyond the
#: line through it square to the leg) within this distance of the leg, as a fly-through
#: waypoint does: a crowd converging on one transit point does not have to queue through a 2 m
#: circle (ORCA agents sharing a goal otherwise jam around it).
PASS_CROSS_M = 30.0
#: Vertical acceptance, metres.
ACCEPT_ALT_M = 0.5
#: Seconds of look-ahead along the current leg for the carrot the autopilot steers to, at the
#: drone's present ground speed (as L1 / NPFG path following scales its distance): a drone
#: slowed by a turn converges on its new leg within metres instead of swinging wide.
LOOKAHEAD_S = 1.5
#: Ground speed, m/s, below which the look-ahead stops shrinking (a hovering drone still
#: steers to a point ahead of it).
LOOKAHEAD_MIN_MPS = 3.0

#: Per-cell open-circuit voltage of a lithium pack: full, the plateau's slope, and the knee
#: near empty where voltage falls away (the shape of a LiPo/Li-ion discharge curve).
OCV_EMPTY_V = 3.45
OCV_SLOPE_V = 0.75
OCV_KNEE_V = 0.45
OCV_KNEE_SOC = 0.04
#: Per-cell voltage lost to internal resistance at cruise power (sag grows with the load).
SAG_AT_CRUISE_V = 0.12
#: Below this per-cell voltage under load the electronics brown out and the drone falls.
CUTOFF_V = 3.0

_STANDBY = int(AutopilotMode.STANDBY)
_AUTO = int(AutopilotMode.AUTO)
_RTL = int(AutopilotMode.RTL)
_LAND = int(AutopilotMode.LAND)
_HOLD = int(AutopilotMode.HOLD)


@njit(cache=True, inline="always")
def open_circuit_v(charge: float) -> float:  # pragma: no cover - compiled
    """Per-cell open-circuit voltage at ``charge`` (fraction of a full pack)."""
    c = max(charge, 0.0)
    return OCV_EMPTY_V + OCV_SLOPE_V * c - OCV_KNEE_V * math.exp(-c / OCV_KNEE_SOC)


@njit(cache=True, inline="always")
def _norm(x: float, y: float) -> float:  # pragma: no cover - compiled
    return math.sqrt(x * x + y * y)


@njit(cache=True, inline="always")
def _passed(a: FloatArray, b: FloatArray, x: float, y: float) -> bool:  # pragma: no cover
    """Whether (x, y) is past waypoint ``b`` of the leg from ``a``: beyond the line through
    ``b`` square to the leg, and within ``PASS_CROSS_M`` of the leg's line."""
    lx, ly = b[0] - a[0], b[1] - a[1]
    length = _norm(lx, ly)
    if length <= ACCEPT_M:
        return False  # a vertical leg (over a pad): only the acceptance radius counts
    ux, uy = lx / length, ly / length
    along = (x - a[0]) * ux + (y - a[1]) * uy
    cross = abs((x - a[0]) * uy - (y - a[1]) * ux)
    return along >= length and cross <= PASS_CROSS_M


@njit(cache=True, inline="always")
def _corner_speed(
    sx: float, sy: float, b: FloatArray, c: FloatArray, accel: float
) -> float:  # pragma: no cover - compiled
    """Speed, m/s, to pass waypoint ``b`` of the leg from (sx, sy) on the way on to ``c``."""
    ax, ay = b[0] - sx, b[1] - sy
    cx, cy = c[0] - b[0], c[1] - b[1]
    la, lc = _norm(ax, ay), _norm(cx, cy)
    if la <= ACCEPT_M or lc <= ACCEPT_M or abs(c[2] - b[2]) >= ACCEPT_ALT_M:
        return ARRIVE_MPS  # a climb or descent over a pad follows: arrive slowly
    cos_d = (ax * cx + ay * cy) / (la * lc)
    sin_half = math.sqrt(max(0.5 * (1.0 - cos_d), 0.0))
    if sin_half < 1e-6:
        return 1e3  # straight on: no corner limit
    return max(ARRIVE_MPS, math.sqrt(CORNER_SWING_M * accel / sin_half))


@njit(cache=True)
def brake_limits(wp: FloatArray, accel: float) -> FloatArray:  # pragma: no cover - compiled
    """Speed, m/s, at which each waypoint of a route (k, 3) may be passed for what comes after
    it: no faster than still lets the drone slow to the corner speed of every later waypoint
    on the legs between, and stop at the last. Computed once per upload; :func:`guidance`
    adds the corner at the waypoint itself, which depends on where the leg into it began. A
    short leg into a sharp turn is so braked for before the leg, as a speed planner over the
    next legs does (reliability seeds 387 and 531 --zones: a 2.7 m leg into a U-turn at the
    geofence margin, taken at 12 m/s, overshot into the zone)."""
    n = len(wp)
    out = np.full(n, 1e3)
    for j in range(n - 2, -1, -1):
        # the speed at wp[j + 1]: its corner, met from wp[j], and what follows it
        nxt = ARRIVE_MPS
        if j + 2 < n:
            nxt = min(_corner_speed(wp[j, 0], wp[j, 1], wp[j + 1], wp[j + 2], accel), out[j + 1])
        room = max(_norm(wp[j + 1, 0] - wp[j, 0], wp[j + 1, 1] - wp[j, 1]) - ACCEPT_M, 0.0)
        out[j] = math.sqrt(nxt * nxt + 2.0 * accel * room)
    return out


@njit(cache=True, parallel=True)
def guidance(
    pos: FloatArray,
    nav_err: FloatArray,
    vel: FloatArray,
    mode: NDArray[np.int8],
    alive: NDArray[np.bool_],
    seq: NDArray[np.intp],
    wp: FloatArray,
    wp_brake: FloatArray,
    wp_first: NDArray[np.intp],
    wp_count: NDArray[np.intp],
    leg_from: FloatArray,
    home: FloatArray,
    vmax: FloatArray,
    accel: FloatArray,
    climb: FloatArray,
    dt: float,
    target: FloatArray,
) -> None:  # pragma: no cover - compiled
    """Commanded ground velocity of every drone into ``target`` (n, 3); advances waypoints."""
    n = len(pos)
    for i in prange(n):
        target[i, 0] = 0.0
        target[i, 1] = 0.0
        target[i, 2] = 0.0
        m = mode[i]
        if not alive[i] or m == _STANDBY or m == _HOLD:  # noqa: SIM109 (numba)
            continue
        ex = pos[i, 0] + nav_err[i, 0]
        ey = pos[i, 1] + nav_err[i, 1]
        z = pos[i, 2]
        gx, gy, gz, sx, sy = ex, ey, z, ex, ey
        corner = ARRIVE_MPS
        if m == _AUTO:
            # move on past every waypoint already reached (a few at most per step)
            reach = ACCEPT_M + math.sqrt(vel[i, 0] ** 2 + vel[i, 1] ** 2) * dt
            for _ in range(3):
                if seq[i] >= wp_count[i]:
                    break
                k = wp_first[i] + seq[i]
                if abs(wp[k, 2] - z) >= ACCEPT_ALT_M:
                    break
                near = _norm(wp[k, 0] - ex, wp[k, 1] - ey) < reach
                if near or (seq[i] < wp_count[i] - 1 and _passed(leg_from[i], wp[k], ex, ey)):
                    leg_from[i, 0] = wp[k, 0]
                    leg_from[i, 1] = wp[k, 1]
                    leg_from[i, 2] = wp[k, 2]
                    seq[i] += 1
                else:
                    break
            if seq[i] >= wp_count[i]:
                # past the last item the autopilot lands where it is (on the pad)
                mode[i] = _LAND
                m = _LAND
            else:
                k = wp_first[i] + seq[i]
                gx, gy, gz = wp[k, 0], wp[k, 1], wp[k, 2]
                sx, sy = leg_from[i, 0], leg_from[i, 1]
                if seq[i] + 1 < wp_count[i]:
                    corner = _corner_speed(sx, sy, wp[k], wp[k + 1], accel[i])
                    corner = min(corner, wp_brake[k])
        if m == _RTL:
            gx, gy = home[i, 0], home[i, 1]
            at_home = _norm(gx - ex, gy - ey) < ACCEPT_M
            gz = 0.0 if at_home else max(z, 1.0)
            sx, sy = ex, ey
        if m == _LAND:
            gx, gy, gz = ex, ey, 0.0
            sx, sy = ex, ey
        # carrot: LOOKAHEAD_S ahead along the leg, from our projection onto it
        segx, segy = gx - sx, gy - sy
        seg_len = _norm(segx, segy)
        if seg_len > 1e-9:
            ux, uy = segx / seg_len, segy / seg_len
        else:
            ux, uy = 0.0, 0.0
        along = (ex - sx) * ux + (ey - sy) * uy
        vnow = max(math.sqrt(vel[i, 0] ** 2 + vel[i, 1] ** 2), LOOKAHEAD_MIN_MPS)
        ahead = min(max(along, 0.0) + vnow * LOOKAHEAD_S, seg_len)
        cx = sx + ux * ahead - ex
        cy = sy + uy * ahead - ey
        dist_goal = _norm(gx - ex, gy - ey)
        # slow down into each waypoint so the turn after it stays on the next leg
        # (the turn starts at the acceptance circle, so that is where the corner speed is due)
        brake = max(dist_goal - ACCEPT_M, 0.0)
        speed = min(vmax[i], math.sqrt(corner * corner + 2.0 * accel[i] * brake))
        norm = max(_norm(cx, cy), 1e-9)
        s = min(speed, norm / 0.5) / norm
        target[i, 0] = cx * s
        target[i, 1] = cy * s
        target[i, 2] = min(max(gz - z, -climb[i]), climb[i])


@njit(cache=True, parallel=True)
def dynamics(
    pos: FloatArray,
    vel: FloatArray,
    target: FloatArray,
    mode: NDArray[np.int8],
    alive: NDArray[np.bool_],
    home: FloatArray,
    accel: FloatArray,
    cruise: FloatArray,
    endurance: FloatArray,
    charge: FloatArray,
    sag_scale: FloatArray,
    voltage: FloatArray,
    wind_prev: FloatArray,
    wind_mean: FloatArray,
    gust: FloatArray,
    gust_geo: FloatArray,
    dt: float,
    t: float,
    died: NDArray[np.bool_],
) -> None:  # pragma: no cover - compiled
    """Advance every flying drone by ``dt``: velocity within its acceleration, wind, battery.

    ``died`` is set for drones whose pack ran flat or browned out this step (they fall).
    """
    n = len(pos)
    for i in prange(n):
        died[i] = False
        m = mode[i]
        if not alive[i] or m == _STANDBY:
            vel[i, 0] = 0.0
            vel[i, 1] = 0.0
            vel[i, 2] = 0.0
            continue
        # the wind here: mean plus the gust grid
        w0 = wind_mean[0] + lookup(gust, gust_geo, pos[i, 0], pos[i, 1], 0)[0]
        w1 = wind_mean[1] + lookup(gust, gust_geo, pos[i, 0], pos[i, 1], 1)[0]
        # the autopilot holds ground velocity within its acceleration
        lim = accel[i] * dt
        dvx = target[i, 0] - vel[i, 0]
        dvy = target[i, 1] - vel[i, 1]
        dvn = _norm(dvx, dvy)
        if dvn > lim:
            dvx *= lim / dvn
            dvy *= lim / dvn
        dvz = min(max(target[i, 2] - vel[i, 2], -lim), lim)
        # a gust change pushes the drone a little before the autopilot rejects it
        vel[i, 0] += dvx + 0.5 * (w0 - wind_prev[i, 0])
        vel[i, 1] += dvy + 0.5 * (w1 - wind_prev[i, 1])
        vel[i, 2] += dvz
        wind_prev[i, 0] = w0
        wind_prev[i, 1] = w1
        pos[i, 0] += vel[i, 0] * dt
        pos[i, 1] += vel[i, 1] * dt
        pos[i, 2] += vel[i, 2] * dt
        if pos[i, 2] <= 0.0:
            pos[i, 2] = 0.0
            if vel[i, 2] < 0.0:
                vel[i, 2] = 0.0
        # battery: power grows with airspeed (drag) and climb; descent recovers nothing
        ax = vel[i, 0] - w0
        ay = vel[i, 1] - w1
        ratio = _norm(ax, ay) / cruise[i]
        power = HOVER_POWER + (1.0 - HOVER_POWER) * ratio * ratio
        power += CLIMB_POWER_PER_MPS * max(vel[i, 2], 0.0)
        charge[i] -= power / endurance[i] * dt
        voltage[i] = open_circuit_v(charge[i]) - SAG_AT_CRUISE_V * sag_scale[i] * power
        if charge[i] <= 0.0 or voltage[i] < CUTOFF_V:
            died[i] = True
            continue
        # touchdown at the end of a landing, or of a return once home
        landing = _RTL <= m <= _LAND  # RTL or LAND
        if landing and pos[i, 2] <= 0.05 and abs(vel[i, 2]) < 0.5 and t > 0:
            away = _norm(pos[i, 0] - home[i, 0], pos[i, 1] - home[i, 1]) > ACCEPT_M * 2
            if m == _LAND or not away:
                mode[i] = _STANDBY
                vel[i, 0] = 0.0
                vel[i, 1] = 0.0
                vel[i, 2] = 0.0
                pos[i, 2] = 0.0
