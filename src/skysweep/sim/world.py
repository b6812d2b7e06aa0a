"""The simulated fleet: point-mass physics, wind, battery and an autopilot, all vectorised.

Every array has one row per drone. The autopilot flies an uploaded mission (a list of 3-D
waypoints) the way PX4 or ArduPilot does in AUTO, or returns, lands or holds on command. The
world advances in fixed steps of ``dt_s`` to whatever time it is asked for, so a run depends only
on the seed and the commands, never on the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from skysweep.energy import drain_per_s
from skysweep.geo import FloatArray
from skysweep.telemetry import AutopilotMode, Command, FleetState

#: Horizontal acceptance radius of a waypoint, metres, on top of one step of travel.
ACCEPT_M = 2.0
#: Vertical acceptance, metres.
ACCEPT_ALT_M = 0.5
#: Seconds of look-ahead along the current leg for the carrot the autopilot steers to.
LOOKAHEAD_S = 1.5


@dataclass(frozen=True)
class WorldParams:
    """Per-drone airframe arrays (SI units) and the environment."""

    speed_mps: FloatArray
    endurance_s: FloatArray
    climb_mps: FloatArray
    accel_mps2: FloatArray
    home_m: FloatArray
    """(n, 2) launch pad of each drone, local metres."""
    wind_mps: FloatArray
    """Mean wind (east, north), m/s: where the air moves to."""
    gust_mps: float = 1.0
    """Standard deviation of the gusts around the mean wind."""
    gust_tau_s: float = 20.0
    """Correlation time of the gusts."""
    dt_s: float = 0.1


class World:
    """The true state of a simulated fleet."""

    def __init__(self, params: WorldParams, seed: int = 0) -> None:
        n = len(params.speed_mps)
        self.p = params
        self.rng = np.random.default_rng(seed)
        self.t_s = 0.0
        self.pos = np.column_stack([params.home_m, np.zeros(n)])
        self.vel = np.zeros((n, 3))
        self.battery = np.ones(n)
        self.mode = np.full(n, AutopilotMode.STANDBY, np.int8)
        self.alive = np.ones(n, bool)
        self.gust = np.zeros((n, 2))
        # missions: one flat waypoint table, each drone owning a slice of it
        self._wp = np.zeros((0, 3))
        self._wp_first = np.zeros(n, np.intp)
        self._wp_count = np.zeros(n, np.intp)
        self.seq = np.zeros(n, np.intp)
        self._leg_from = self.pos.copy()

    def __len__(self) -> int:
        return len(self.battery)

    # -- commands (what a link delivers) ---------------------------------------------------

    def upload(self, drone: int, waypoints: FloatArray) -> None:
        """Replace ``drone``'s mission with ``waypoints`` (k, 3), local metres."""
        waypoints = np.asarray(waypoints, float).reshape(-1, 3)
        self._wp_first[drone] = len(self._wp)
        self._wp_count[drone] = len(waypoints)
        self._wp = np.vstack([self._wp, waypoints])
        self.seq[drone] = 0

    def command(self, drones: NDArray[np.intp], cmd: Command) -> None:
        drones = np.asarray(drones, np.intp)
        drones = drones[self.alive[drones]]
        if cmd is Command.START_MISSION:
            ok = drones[self._wp_count[drones] > 0]
            self.mode[ok] = AutopilotMode.AUTO
            self.seq[ok] = 0
            self._leg_from[ok] = self.pos[ok]
        elif cmd is Command.RETURN:
            self.mode[drones] = AutopilotMode.RTL
        elif cmd is Command.LAND:
            self.mode[drones] = AutopilotMode.LAND
        elif cmd is Command.HOLD:
            self.mode[drones] = AutopilotMode.HOLD
        elif cmd is Command.SWAP_BATTERY:
            on_ground = drones[self.mode[drones] == AutopilotMode.STANDBY]
            self.battery[on_ground] = 1.0

    # -- physics ---------------------------------------------------------------------------

    def advance_to(self, t_s: float) -> None:
        """Step the world forward until ``t_s`` (never backward)."""
        while self.t_s + 0.5 * self.p.dt_s < t_s:
            self.step(self.p.dt_s)

    def step(self, dt: float) -> None:
        p = self.p
        flying = self.alive & (self.mode != AutopilotMode.STANDBY)
        target_v = self._guidance(flying)
        # gusts: an Ornstein-Uhlenbeck process around the mean wind, one per drone
        decay = np.exp(-dt / p.gust_tau_s)
        old_gust = self.gust
        self.gust = self.gust * decay + self.rng.normal(
            0.0, p.gust_mps * np.sqrt(1 - decay * decay), self.gust.shape
        )
        wind = p.wind_mps + self.gust
        # the autopilot holds ground velocity, within its acceleration; a gust change kicks it
        dv = target_v - self.vel
        dv_h = dv[:, :2]
        lim = (p.accel_mps2 * dt)[:, None]
        norm = np.maximum(np.hypot(dv_h[:, 0], dv_h[:, 1])[:, None], 1e-9)
        dv[:, :2] = dv_h * np.minimum(1.0, lim / norm)
        dv[:, 2] = np.clip(dv[:, 2], -lim[:, 0], lim[:, 0])
        # the autopilot rejects a gust only after it has pushed the drone a little
        dv[:, :2] += 0.5 * (self.gust - old_gust)
        self.vel = np.where(flying[:, None], self.vel + dv, 0.0)
        self.pos = self.pos + self.vel * dt
        ground = self.pos[:, 2] <= 0.0
        self.pos[:, 2] = np.maximum(self.pos[:, 2], 0.0)
        self.vel[ground & (self.vel[:, 2] < 0), 2] = 0.0

        air = self.vel[:, :2] - wind
        airspeed = np.hypot(air[:, 0], air[:, 1])
        use = drain_per_s(airspeed, p.speed_mps, p.endurance_s, self.vel[:, 2]) * dt
        self.battery = np.where(flying, self.battery - use, self.battery)
        # a pack run flat brings the drone down: it is lost
        dead = flying & (self.battery <= 0.0)
        if dead.any():
            self.alive[dead] = False
            self.mode[dead] = AutopilotMode.STANDBY
            self.pos[dead, 2] = 0.0
            self.vel[dead] = 0.0
        self._touchdown()
        self.t_s += dt

    def _guidance(self, flying: NDArray[np.bool_]) -> FloatArray:
        """Commanded ground velocity of every drone (n, 3)."""
        p = self.p
        n = len(self)
        v = np.zeros((n, 3))
        auto = flying & (self.mode == AutopilotMode.AUTO)
        self._advance_waypoints(auto)
        auto &= self.seq < self._wp_count
        idx = np.minimum(self._wp_first + self.seq, max(len(self._wp) - 1, 0))
        goal = self._wp[idx] if len(self._wp) else np.zeros((n, 3))
        start = self._leg_from.copy()

        rtl = flying & (self.mode == AutopilotMode.RTL)
        rtl_alt = np.maximum(self.pos[:, 2], 1.0)
        at_home = np.hypot(*(self.pos[:, :2] - p.home_m).T) < ACCEPT_M
        goal[rtl] = np.column_stack([p.home_m, np.where(at_home, 0.0, rtl_alt)])[rtl]
        start[rtl] = self.pos[rtl]

        land = flying & (self.mode == AutopilotMode.LAND)
        goal[land] = np.column_stack([self.pos[:, :2], np.zeros(n)])[land]
        start[land] = self.pos[land]
        hold = flying & (self.mode == AutopilotMode.HOLD)
        goal[hold] = self.pos[hold]
        start[hold] = self.pos[hold]

        steer = auto | rtl | land
        # carrot: the point LOOKAHEAD_S ahead along the leg, from our projection onto it
        seg = goal[:, :2] - start[:, :2]
        seg_len = np.hypot(seg[:, 0], seg[:, 1])
        unit = seg / np.maximum(seg_len, 1e-9)[:, None]
        along = np.einsum("ij,ij->i", self.pos[:, :2] - start[:, :2], unit)
        ahead = np.minimum(np.maximum(along, 0.0) + p.speed_mps * LOOKAHEAD_S, seg_len)
        carrot = start[:, :2] + unit * ahead[:, None]
        to_carrot = carrot - self.pos[:, :2]
        dist_goal = np.hypot(*(goal[:, :2] - self.pos[:, :2]).T)
        # slow down into each waypoint so the turn after it stays on the lane
        speed = np.minimum(p.speed_mps, np.sqrt(2.0 * p.accel_mps2 * dist_goal) + 1.0)
        norm = np.maximum(np.hypot(to_carrot[:, 0], to_carrot[:, 1]), 1e-9)
        v[:, :2] = to_carrot / norm[:, None] * np.minimum(speed, norm / 0.5)[:, None]
        dz = goal[:, 2] - self.pos[:, 2]
        v[:, 2] = np.clip(dz, -p.climb_mps, p.climb_mps)
        v[~steer] = 0.0
        return v

    def _advance_waypoints(self, auto: NDArray[np.bool_]) -> None:
        """Move on to the next waypoint where the current one is reached (a few at most)."""
        for _ in range(3):
            live = auto & (self.seq < self._wp_count)
            if not live.any() or not len(self._wp):
                return
            idx = self._wp_first + np.minimum(self.seq, np.maximum(self._wp_count - 1, 0))
            goal = self._wp[idx]
            d_h = np.hypot(*(goal[:, :2] - self.pos[:, :2]).T)
            d_v = np.abs(goal[:, 2] - self.pos[:, 2])
            reach = ACCEPT_M + np.hypot(self.vel[:, 0], self.vel[:, 1]) * self.p.dt_s
            done = live & (d_h < reach) & (d_v < ACCEPT_ALT_M)
            if not done.any():
                return
            self._leg_from[done] = goal[done]
            self.seq[done] += 1
            # past the last item the autopilot lands where it is (on the pad)
            self.mode[done & (self.seq >= self._wp_count)] = AutopilotMode.LAND

    def _touchdown(self) -> None:
        """Drones that reached the ground at the end of a mission, a return or a landing."""
        descending = np.isin(self.mode, (AutopilotMode.RTL, AutopilotMode.LAND))
        down = descending & (self.pos[:, 2] <= 0.05) & (np.abs(self.vel[:, 2]) < 0.5)
        down &= self.t_s > 0
        # RTL lands only once home
        rtl = self.mode == AutopilotMode.RTL
        away = np.hypot(*(self.pos[:, :2] - self.p.home_m).T) > ACCEPT_M * 2
        down &= ~(rtl & away)
        if down.any():
            self.mode[down] = AutopilotMode.STANDBY
            self.vel[down] = 0.0
            self.pos[down, 2] = 0.0

    # -- telemetry -------------------------------------------------------------------------

    def state(self) -> FleetState:
        """The true state, as a perfect link would report it."""
        return FleetState(
            t_s=self.t_s,
            pos_m=self.pos.copy(),
            vel_mps=self.vel.copy(),
            battery=self.battery.copy(),
            mode=self.mode.copy(),
            mission_seq=self.seq.copy(),
            airborne=self.alive & (self.mode != AutopilotMode.STANDBY),
            last_seen_s=np.where(self.alive, self.t_s, np.nan),
        )
