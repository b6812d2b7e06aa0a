"""Failsafes: what each drone must do when something goes wrong (pure, vectorised over drones).

Nothing here reads a clock or does I/O: the time is the argument ``now_s`` (seconds on the
runtime's clock) and every function returns a new :class:`FailsafeState`. Positions are in the
mission's local frame (x east, y north, metres), horizontal only.

Each tick the runtime

1. filters the reported positions, so that a GPS jump is never steered toward::

       state, jumped = filter_positions(state, fs.pos_m, fs.vel_mps, now_s, params,
                                        seen_s=fs.last_seen_s, airborne=fs.airborne)

2. computes :attr:`Signals.inside_fence` on ``state.est_pos_m`` (never on a raw report);
3. calls ``state = decide(state, signals, now_s, params)``;
4. for every drone whose ``action`` changed, logs :func:`explain` and commands it.

The decision table (causes are raised only for airborne drones):

================  ============================================  =======
cause             raised when                                   action
================  ============================================  =======
LINK_LOST         not heard for more than lost_link_timeout_s   HOME
BATTERY_LOW       battery <= max(home_need, battery_low)        HOME
BATTERY_CRITICAL  battery <= battery_critical_frac              LAND
GEOFENCE          filtered position outside the fence           RECOVER
GPS_GLITCH        reports jump away from the prediction         HOLD
GPS_LOST          the autopilot reports no 3-D fix              HOLD
================  ============================================  =======

- The most severe action wins (NONE < HOME < RECOVER < HOLD < LAND).
- Actions latch: the new action is ``max(old, new)``. Land never becomes home, hold never goes
  back to normal flight. The one exception is progress, not a downgrade: RECOVER becomes HOME
  once the drone is inside the fence again.
- A HOLD that has lasted ``gps_hold_s`` (counted from when the hold began) while a GPS cause
  is still raised becomes LAND. A hold whose GPS came back stays a hold: the drone hovers for
  the operator, and lands once its battery runs low (a hover would burn the reserve).
- Nothing resumes on its own: only :func:`clear` (the operator's resume) resets an action. A
  cause still present raises it again on the next tick.
- A drone on the ground gets no new cause, and its latched action is frozen (no escalation, no
  RECOVER → HOME) until it is cleared or flies again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum, IntFlag
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from skysweep.geo import FloatArray

if TYPE_CHECKING:
    from skysweep.mission import Mission

_T = TypeVar("_T", bound=np.generic)


class Cause(IntFlag):
    """Why a failsafe fires; several can be raised at once."""

    NONE = 0
    LINK_LOST = 1
    BATTERY_LOW = 2
    BATTERY_CRITICAL = 4
    GEOFENCE = 8
    GPS_GLITCH = 16
    GPS_LOST = 32


class Action(IntEnum):
    """What a drone must do, in order of severity."""

    NONE = 0
    HOME = 1  # return to its pad and land
    RECOVER = 2  # geofence breach: fly back inside, then home
    HOLD = 3  # hover where it is
    LAND = 4  # land where it is


#: The action each cause calls for.
ACTION_OF = MappingProxyType(
    {
        Cause.LINK_LOST: Action.HOME,
        Cause.BATTERY_LOW: Action.HOME,
        Cause.BATTERY_CRITICAL: Action.LAND,
        Cause.GEOFENCE: Action.RECOVER,
        Cause.GPS_GLITCH: Action.HOLD,
        Cause.GPS_LOST: Action.HOLD,
    }
)

_ALL_CAUSES = int(sum(ACTION_OF))
_GPS = int(Cause.GPS_GLITCH | Cause.GPS_LOST)
_BATTERY = int(Cause.BATTERY_LOW | Cause.BATTERY_CRITICAL)

# lookup tables, so that a tick maps the cause flags of all drones at once
#: the most severe action of every combination of cause flags
_ACTION_TABLE = np.array(
    [
        max((a for c, a in ACTION_OF.items() if bits & c), default=Action.NONE)
        for bits in range(_ALL_CAUSES + 1)
    ],
    np.int8,
)
#: the cause flags that call for each action
_CAUSES_FOR = np.array(
    [sum(int(c) for c, a in ACTION_OF.items() if a == act) for act in Action], np.uint8
)

#: A glitching drone is trusted again after this many consecutive reports within the gate.
GLITCH_CLEAR_TICKS = 3


@dataclass(frozen=True, eq=False)
class FailsafeParams:
    """Thresholds of the failsafes.

    ``battery_low`` (fraction of a pack): a drone goes home at or below it even if the runtime's
    ``home_need`` says less would do; ``battery_critical_frac``: it lands where it is.
    ``gps_jump_m``: a report at least this far from the predicted position is a jump.
    ``gps_hold_s``: how long a drone holds on a GPS problem before it lands.
    ``max_speed_mps``: per drone (or one for all), the fastest it can move over the ground;
    it bounds the velocity used for prediction and widens the jump gate after a long silence.
    """

    lost_link_timeout_s: float
    battery_low: float
    max_speed_mps: FloatArray
    battery_critical_frac: float = 0.08
    gps_jump_m: float = 50.0
    gps_hold_s: float = 20.0

    @classmethod
    def of(cls, mission: Mission) -> FailsafeParams:
        """The mission's thresholds: its lost-link timeout, its battery reserve as
        ``battery_low``, and each drone's speed plus the mean wind as its top ground speed."""
        safety = mission.safety
        wind_mps = float(np.hypot(*mission.wind_vector_mps))
        return cls(
            lost_link_timeout_s=safety.lost_link_timeout_s,
            battery_low=safety.battery_reserve,
            max_speed_mps=np.asarray(mission.fleet.speed_mps, float) + wind_mps,
        )


@dataclass(frozen=True, eq=False)
class Signals:
    """What the runtime measures of every drone this tick (one row per drone)."""

    airborne: NDArray[np.bool_]
    last_seen_s: FloatArray
    """When the link last heard from each drone (s); NaN: never."""
    battery: FloatArray
    """Remaining charge, fraction of a full pack."""
    home_need: FloatArray
    """Fraction of a pack needed to get home with the reserve (the runtime's estimate);
    NaN: unknown, ``battery_low`` alone decides."""
    gps_ok: NDArray[np.bool_]
    """The autopilot reports a 3-D fix."""
    inside_fence: NDArray[np.bool_]
    """The *filtered* position (``FailsafeState.est_pos_m``) is inside the geofence."""


@dataclass(frozen=True, eq=False)
class FailsafeState:
    """The failsafe state of every drone (one row per drone; arrays are read-only)."""

    action: NDArray[np.int8]
    """:class:`Action` in force, latched."""
    cause: NDArray[np.uint8]
    """:class:`Cause` flags raised on the last :func:`decide`."""
    trigger: NDArray[np.uint8]
    """:class:`Cause` flags behind the action in force (what :func:`explain` reports)."""
    trigger_battery: FloatArray
    """Battery reading when the action or its battery cause last changed (fraction)."""
    since_s: FloatArray
    """When the action in force began (s)."""
    est_pos_m: FloatArray
    """(n, 2) filtered position as of ``est_t_s``: the last accepted report, or the prediction
    when a report was rejected as a jump."""
    est_vel_mps: FloatArray
    """(n, 2) last reported ground velocity, capped at the top speed (m/s)."""
    est_t_s: FloatArray
    """Time of the last fresh report (s)."""
    glitching: NDArray[np.bool_]
    """Reports jumped and have not yet been back within the gate for
    :data:`GLITCH_CLEAR_TICKS` consecutive reports."""
    glitch_ok_ticks: NDArray[np.int8]
    """Consecutive reports within the gate (capped at :data:`GLITCH_CLEAR_TICKS`)."""

    @classmethod
    def initial(cls, n: int, pos_m: ArrayLike, now_s: float) -> FailsafeState:
        """No failsafe for any of ``n`` drones, the estimate at ``pos_m`` ((n, 2) or (n, 3))
        as of ``now_s``."""
        pos = np.asarray(pos_m, float).reshape(n, -1)[:, :2]
        return cls(
            action=_ro(np.zeros(n, np.int8)),
            cause=_ro(np.zeros(n, np.uint8)),
            trigger=_ro(np.zeros(n, np.uint8)),
            trigger_battery=_ro(np.full(n, np.nan)),
            since_s=_ro(np.full(n, float(now_s))),
            est_pos_m=_ro(pos.copy()),
            est_vel_mps=_ro(np.zeros((n, 2))),
            est_t_s=_ro(np.full(n, float(now_s))),
            glitching=_ro(np.zeros(n, bool)),
            glitch_ok_ticks=_ro(np.full(n, GLITCH_CLEAR_TICKS, np.int8)),
        )

    def __len__(self) -> int:
        return len(self.action)


def filter_positions(
    state: FailsafeState,
    reported_pos_m: ArrayLike,
    vel_mps: ArrayLike,
    now_s: float,
    params: FailsafeParams,
    *,
    seen_s: ArrayLike,
    airborne: ArrayLike,
) -> tuple[FailsafeState, NDArray[np.bool_]]:
    """Gate each drone's reported position against where it should be; returns the updated
    state (``est_pos_m`` is the position to steer and fence-check on) and which reports were
    rejected as jumps this call.

    ``reported_pos_m`` and ``vel_mps`` are (n, 2) or (n, 3) (only x, y are used), as of
    ``seen_s`` (when each drone was last heard; the link keeps a silent drone's last report).
    Only a report newer than ``est_t_s`` is looked at; a stale one changes nothing, so a
    silent drone is neither moved nor flagged.

    The prediction is ``est_pos + mean(est_vel, vel)·dt``: the velocity is trusted (it comes
    from Doppler and inertial sensors, not from the position fix that jumps), capped at the top
    speed. A report at least ``gps_jump_m`` from the prediction is a jump: it is not accepted,
    the estimate stays on the prediction, and the drone is flagged ``glitching`` until
    :data:`GLITCH_CLEAR_TICKS` consecutive reports are back within the gate. After a long
    silence the gate widens to ``2·max_speed·dt``, the farthest a drone can stray from a
    prediction. A report within the gate is accepted as is. On the ground every report is
    accepted and the flag dropped: the drone is on its pad, and its autopilot checks its fix
    before it arms.
    """
    n = len(state)
    rep = np.asarray(reported_pos_m, float).reshape(n, -1)[:, :2]
    vel = np.nan_to_num(np.asarray(vel_mps, float).reshape(n, -1)[:, :2])
    vmax = np.broadcast_to(np.asarray(params.max_speed_mps, float), (n,))
    speed = np.hypot(vel[:, 0], vel[:, 1])
    vel = vel * np.minimum(1.0, vmax / np.maximum(speed, 1e-9))[:, None]
    air = np.asarray(airborne, bool)

    seen = np.minimum(np.asarray(seen_s, float), now_s)  # no report comes from the future
    fresh = (seen > state.est_t_s) & np.isfinite(rep).all(axis=1)  # NaN seen: never heard
    dt = np.where(fresh, seen - state.est_t_s, 0.0)
    predicted = state.est_pos_m + 0.5 * (state.est_vel_mps + vel) * dt[:, None]
    miss = np.hypot(*(rep - predicted).T)
    gate = np.maximum(params.gps_jump_m, 2.0 * vmax * dt)
    jumped = fresh & air & (miss >= gate)
    accepted = fresh & ~jumped

    est = np.where(accepted[:, None], rep, np.where(fresh[:, None], predicted, state.est_pos_m))
    ok_ticks = np.where(
        jumped,
        0,
        np.where(
            accepted,
            np.minimum(state.glitch_ok_ticks + 1, GLITCH_CLEAR_TICKS),
            state.glitch_ok_ticks,
        ),
    ).astype(np.int8)
    ok_ticks[~air] = GLITCH_CLEAR_TICKS
    glitching = jumped | (state.glitching & (ok_ticks < GLITCH_CLEAR_TICKS))
    out = replace(
        state,
        est_pos_m=_ro(est),
        est_vel_mps=_ro(np.where(fresh[:, None], vel, state.est_vel_mps)),
        est_t_s=_ro(np.where(fresh, seen, state.est_t_s)),
        glitching=_ro(glitching),
        glitch_ok_ticks=_ro(ok_ticks),
    )
    return out, _ro(jumped)


def decide(
    state: FailsafeState, signals: Signals, now_s: float, params: FailsafeParams
) -> FailsafeState:
    """Raise this tick's causes and latch each drone's action (rules in the module docstring).
    ``state`` must come from :func:`filter_positions` of this tick."""
    air = np.asarray(signals.airborne, bool)
    battery = np.asarray(signals.battery, float)
    inside = np.asarray(signals.inside_fence, bool)
    # NaN last_seen (never heard) compares False: silent
    silent = ~(now_s - np.asarray(signals.last_seen_s, float) <= params.lost_link_timeout_s)
    low_at = np.fmax(np.asarray(signals.home_need, float), params.battery_low)
    raised = (
        _flag(silent, Cause.LINK_LOST)
        | _flag(battery <= low_at, Cause.BATTERY_LOW)
        | _flag(battery <= params.battery_critical_frac, Cause.BATTERY_CRITICAL)
        | _flag(~inside, Cause.GEOFENCE)
        | _flag(state.glitching, Cause.GPS_GLITCH)
        | _flag(~np.asarray(signals.gps_ok, bool), Cause.GPS_LOST)
    )
    cause = np.where(air, raised, 0).astype(np.uint8)
    wanted = _ACTION_TABLE[cause]

    old = state.action
    action = np.maximum(old, wanted)
    # progress, not a downgrade: back inside the fence, a recovering drone goes on home
    back_in = air & (old == Action.RECOVER) & inside & (wanted < Action.RECOVER)
    action[back_in] = Action.HOME
    held_out = (
        air
        & (old == Action.HOLD)
        & (action == Action.HOLD)
        & ((cause & _GPS) != 0)
        & (now_s - state.since_s >= params.gps_hold_s)
    )
    action[held_out] = Action.LAND
    # a hover burns the pack as fast as flying: a drone holding for the operator whose
    # battery runs low lands then, on its reserve, rather than hovering on to critical
    low_hold = air & (old == Action.HOLD) & (action == Action.HOLD)
    low_hold &= (cause & int(Cause.BATTERY_LOW)) != 0
    action[low_hold] = Action.LAND
    action = np.where(air, action, old).astype(np.int8)

    changed = action != old
    matching = cause & _CAUSES_FOR[action]
    # an escalation or a recovery keeps what started it; a fresh action starts afresh
    keep = ~changed | back_in | held_out | low_hold
    trigger = np.where(keep, state.trigger | matching, matching).astype(np.uint8)
    new_battery = ((matching & _BATTERY) != 0) & ((state.trigger & _BATTERY) == 0)
    return replace(
        state,
        action=_ro(action),
        cause=_ro(cause),
        trigger=_ro(trigger),
        trigger_battery=_ro(np.where(changed | new_battery, battery, state.trigger_battery)),
        since_s=_ro(np.where(changed, float(now_s), state.since_s)),
    )


def clear(state: FailsafeState, drones: ArrayLike, now_s: float) -> FailsafeState:
    """The operator's resume: ``drones`` (indices or a boolean mask) back to no action and no
    cause. A cause still present is raised again by the next :func:`decide`."""
    mask = np.zeros(len(state), bool)
    mask[np.asarray(drones)] = True
    changed = mask & (state.action != Action.NONE)
    return replace(
        state,
        action=_ro(np.where(mask, Action.NONE, state.action).astype(np.int8)),
        cause=_ro(np.where(mask, 0, state.cause).astype(np.uint8)),
        trigger=_ro(np.where(mask, 0, state.trigger).astype(np.uint8)),
        trigger_battery=_ro(np.where(mask, np.nan, state.trigger_battery)),
        since_s=_ro(np.where(changed, float(now_s), state.since_s)),
    )


def explain(state: FailsafeState, i: int) -> str:
    """A short reason for drone ``i``'s action, for the run log: ``LAND (battery critical 6%)``."""
    action = Action(int(state.action[i]))
    if action == Action.NONE:
        return "NONE"
    why = Cause(int(state.trigger[i]))
    battery = float(state.trigger_battery[i])
    parts = []
    if Cause.LINK_LOST in why:
        parts.append("link lost")
    if Cause.BATTERY_CRITICAL in why:
        parts.append(f"battery critical {battery:.0%}")
    elif Cause.BATTERY_LOW in why:
        parts.append(f"battery low {battery:.0%}")
    if Cause.GEOFENCE in why:
        parts.append("back inside the fence" if action == Action.HOME else "geofence breach")
    if Cause.GPS_GLITCH in why:
        parts.append("GPS glitch")
    if Cause.GPS_LOST in why:
        parts.append("GPS lost")
    if action == Action.LAND and why & _GPS:
        parts.append("held too long")
    return f"{action.name} ({', '.join(parts)})" if parts else action.name


def _flag(mask: ArrayLike, cause: Cause) -> NDArray[np.uint8]:
    return np.where(mask, np.uint8(cause), np.uint8(0))


def _ro(a: NDArray[_T]) -> NDArray[_T]:
    """``a`` made read-only: states share arrays, so none may change in place."""
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a
