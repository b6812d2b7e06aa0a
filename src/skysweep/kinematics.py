"""How an autopilot takes the corners of a route, shared by the simulator (which flies them)
and the planner (which times and costs them).

An autopilot slows into a waypoint so that the turn after it stays close to the next leg, as
PX4's and ArduPilot's corner speed limits do: into a corner of deflection d it slows to
sqrt(CORNER_SWING_M * accel / sin(d / 2)), the speed whose velocity change it can make within
that swing, and speeds up again after it. A lawnmower sweep has two sharp corners per lane, so
over a sortie these slow-downs add up to minutes. Units: metres, seconds, m/s, m/s².
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numpy.typing import ArrayLike, NDArray

from skysweep.geo import FloatArray

#: How far, metres, a turn at a waypoint may swing wide of the next leg; the planner's geofence
#: margin must exceed it.
CORNER_SWING_M = 2.0
#: Speed, m/s, at which the autopilot reaches a waypoint it stops at (the last, or a climb).
ARRIVE_MPS = 1.0


def corner_speeds_mps(xy: FloatArray, accel_mps2: ArrayLike) -> NDArray[np.float64]:
    """Speed at each interior vertex of the polyline ``xy`` (n, 2) (n − 2 values; inf where it
    goes straight on); ``accel_mps2`` one value, or one per interior vertex."""
    xy = np.asarray(xy, float)
    d = xy[1:, :2] - xy[:-1, :2]
    length = np.hypot(d[:, 0], d[:, 1])
    dot = d[:-1, 0] * d[1:, 0] + d[:-1, 1] * d[1:, 1]
    both = length[:-1] * length[1:]
    # a vertex with a zero-length leg on either side goes straight on (cos 1)
    cos_d = np.divide(dot, both, out=np.ones_like(dot), where=both > 0)
    sin_half = np.sqrt(np.clip(0.5 * (1.0 - cos_d), 0.0, 1.0))
    speed = np.divide(
        CORNER_SWING_M * np.asarray(accel_mps2, float),
        sin_half,
        out=np.full_like(sin_half, np.inf),
        where=sin_half > 0,
    )
    np.sqrt(speed, out=speed)
    return np.maximum(speed, ARRIVE_MPS)


def corner_loss_s(
    xy: FloatArray, speed_mps: ArrayLike, accel_mps2: ArrayLike
) -> NDArray[np.float64]:
    """Seconds each interior vertex of ``xy`` costs over flying through it at ``speed_mps``:
    braking to its corner speed v_c at ``accel_mps2`` and back takes (v − v_c)² / (a v) longer
    than the same distance at v (n − 2 values). Speed and acceleration: one value each, or
    one per interior vertex (joined paths of several drones)."""
    n = len(xy) - 2
    if n < 1:
        return np.zeros(0)
    v = np.broadcast_to(np.asarray(speed_mps, float), (n,))
    a = np.broadcast_to(np.asarray(accel_mps2, float), (n,))
    # (compiled: the planner costs thousands of short paths, where numpy's calls cost more than
    # the sums; the same arithmetic as corner_speeds_mps, value for value)
    return _corner_loss(np.asarray(xy, float), np.ascontiguousarray(v), np.ascontiguousarray(a))


@njit(cache=True)
def _corner_loss(
    xy: FloatArray, v: FloatArray, a: FloatArray
) -> NDArray[np.float64]:  # pragma: no cover - compiled
    out = np.empty(len(xy) - 2)
    for k in range(len(xy) - 2):
        d0x, d0y = xy[k + 1, 0] - xy[k, 0], xy[k + 1, 1] - xy[k, 1]
        d1x, d1y = xy[k + 2, 0] - xy[k + 1, 0], xy[k + 2, 1] - xy[k + 1, 1]
        both = np.hypot(d0x, d0y) * np.hypot(d1x, d1y)
        cos_d = (d0x * d1x + d0y * d1y) / both if both > 0 else 1.0
        sin_half = math.sqrt(min(max(0.5 * (1.0 - cos_d), 0.0), 1.0))
        speed = math.sqrt(CORNER_SWING_M * a[k] / sin_half) if sin_half > 0 else np.inf
        vc = min(max(speed, ARRIVE_MPS), v[k])
        out[k] = (v[k] - vc) ** 2 / (a[k] * v[k])
    return out
