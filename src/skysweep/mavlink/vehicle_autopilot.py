"""The autopilots of the simulated vehicles (:mod:`skysweep.mavlink.vehicles`): ArduPilot
Copter's modes, arming, take-off, missions and guided targets, carried out on a
:class:`~skysweep.sim.world.World`.

The World flies routes (AUTO), returns, lands and holds; an ArduPilot mode is a way of using
those: GUIDED, LOITER, POSHOLD, BRAKE and the manual modes hold (there is no pilot); AUTO flies
the mission; a take-off or a guided go-to is a one-point route the autopilot holds at once it
is reached. The decisions an autopilot takes on board (hold at the target, land or loiter at
the end of a mission, disarm on touchdown) are made between the world's fixed steps in
:meth:`Autopilots.step`, so that the world never flies a step it should not.

Every command returns its MAV_RESULT as ArduPilot would; refusals that ArduPilot explains in a
STATUSTEXT are explained the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from skysweep.geo import FloatArray, LocalFrame
from skysweep.mavlink.dialect import mavlink as m
from skysweep.mavlink.modes import CopterMode
from skysweep.mavlink.vehicle_missions import EndAction, MissionPlan, MissionServer
from skysweep.sim.physics import ACCEPT_ALT_M
from skysweep.sim.world import World
from skysweep.telemetry import AutopilotMode, Command

#: ArduPilot disarms a vehicle armed on the ground that has not taken off after this long (s).
DISARM_DELAY_S = 10.0
#: param2 of a disarm that stops the motors even in flight (ArduPilot's magic number).
FORCE_DISARM = 21196
#: Highest guided target, metres above home, taken as meant.
MAX_TARGET_ALT_M = 10_000.0

_M = CopterMode
#: Modes ArduPilot arms in (not AUTO, RTL, LAND …).
ARMABLE = frozenset({_M.STABILIZE, _M.ALT_HOLD, _M.GUIDED, _M.LOITER, _M.POSHOLD})
#: Modes that take NAV_TAKEOFF from a ground station.
TAKEOFF_MODES = frozenset({_M.GUIDED, _M.LOITER, _M.POSHOLD})
#: Modes that need a position estimate to be entered.
NEEDS_POSITION = frozenset({_M.AUTO, _M.GUIDED, _M.LOITER, _M.RTL, _M.POSHOLD, _M.BRAKE})
GLOBAL_FRAMES = frozenset(
    {
        m.MAV_FRAME_GLOBAL,
        m.MAV_FRAME_GLOBAL_RELATIVE_ALT,
        m.MAV_FRAME_GLOBAL_INT,
        m.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT,
        m.MAV_FRAME_GLOBAL_TERRAIN_ALT,
        m.MAV_FRAME_GLOBAL_TERRAIN_ALT_INT,
    }
)
_STANDBY = AutopilotMode.STANDBY
_END_MODE = {
    EndAction.LAND: AutopilotMode.LAND,
    EndAction.RTL: AutopilotMode.RTL,
    EndAction.HOLD: AutopilotMode.HOLD,
}
ACCEPTED = int(m.MAV_RESULT_ACCEPTED)
DENIED = int(m.MAV_RESULT_DENIED)
FAILED = int(m.MAV_RESULT_FAILED)
_CRITICAL = m.MAV_SEVERITY_CRITICAL


@dataclass(frozen=True)
class Cmd:
    """A COMMAND_LONG or COMMAND_INT: ``params`` are param1-7 (for COMMAND_INT param5/6 are
    x and y as numbers, and ``xy`` the integers themselves, 1e-7 degrees in global frames)."""

    command: int
    params: tuple[float, ...]
    xy: tuple[int, int] | None
    frame: int | None
    src: tuple[int, int]


def as_int(value: float) -> int | None:
    """A command parameter as an integer, or None if it is not a finite number."""
    return int(value) if math.isfinite(value) and abs(value) < 2**31 else None


def sane(lat_e7: int, lon_e7: int, alt_m: float) -> bool:
    """Whether a target position (1e-7 degrees, metres above home) is one to fly to."""
    return (
        abs(lat_e7) <= 900_000_000
        and abs(lon_e7) <= 1_800_000_000
        and math.isfinite(alt_m)
        and -1000.0 < alt_m <= MAX_TARGET_ALT_M
    )


class Autopilots:
    """The ArduPilot state of every drone of ``world`` (one row per drone) and what each does
    with a command. ``send(drone, msg)`` sends a message from a drone; ``frame`` converts the
    world's local metres to WGS84.

    ``swap_s``: simulated seconds the ground crew takes to put a fresh pack in a drone that
    has landed and disarmed. ``disarm_delay_s``: a drone armed on the ground disarms after
    this long without taking off.
    """

    def __init__(
        self,
        world: World,
        frame: LocalFrame,
        send: Callable[[int, Any], None],
        swap_s: float = 0.0,
        disarm_delay_s: float = DISARM_DELAY_S,
    ) -> None:
        n = len(world)
        self.world = world
        self.frame = frame
        self.send = send
        self.swap_s = float(swap_s)
        self.disarm_delay_s = float(disarm_delay_s)
        self.fix = False
        """Whether the position estimate is valid yet (set by the owner)."""
        self.cmode = np.full(n, int(_M.STABILIZE), np.int64)
        """ArduPilot mode number each vehicle reports (kept after landing, as ArduPilot does)."""
        self.armed = np.zeros(n, bool)
        self.on_mission = np.zeros(n, bool)
        """The world flies the vehicle's mission (from route point ``base``)."""
        self.base = np.zeros(n, np.intp)
        self.mission_current = np.zeros(n, np.intp)
        """The current mission item while the world is not flying the mission."""
        self.takeoff_alt = np.full(n, np.nan)
        """Altitude of a take-off under way, m (NaN: none)."""
        self.heading_deg = np.zeros(n)
        self._armed_at = np.zeros(n)
        self._to_target = np.zeros(n, bool)  # flying to a guided target (take-off or go-to)
        self._swap_due = np.full(n, np.inf)
        lon, lat = frame.to_lonlat(world.home[:, 0], world.home[:, 1])
        self.home_lat_e7 = np.rint(lat * 1e7).astype(np.int64)
        self.home_lon_e7 = np.rint(lon * 1e7).astype(np.int64)
        self.missions = MissionServer(
            n,
            frame,
            (self.home_lat_e7, self.home_lon_e7),
            send,
            self._mission_replaced,
            self.flying_mission,
        )

    # -- state ----------------------------------------------------------------------------------

    def flying(self, i: int) -> bool:
        return bool(self.world.alive[i] and self.world.mode[i] != _STANDBY)

    def flying_mission(self, i: int) -> bool:
        return bool(self.cmode[i] == _M.AUTO and self.on_mission[i] and self.flying(i))

    def current_item(self, i: int) -> int:
        """The mission item (MAVLink seq) vehicle ``i`` reports as current."""
        plan = self.missions.plans[i]
        if self.on_mission[i] and plan is not None:
            return plan.current_item(int(self.base[i] + self.world.seq[i]))
        return int(self.mission_current[i])

    def route_done(self, i: int) -> bool:
        """Whether vehicle ``i`` has flown past the last route point of its mission."""
        plan = self.missions.plans[i]
        return plan is not None and self.base[i] + self.world.seq[i] >= len(plan.route)

    def here(self, i: int) -> tuple[int, int, float]:
        """(lat, lon in 1e-7 degrees, altitude m) where the vehicle estimates it is."""
        w = self.world
        est = w.pos[i, :2] + w.nav_err[i]
        lon, lat = self.frame.to_lonlat(est[:1], est[1:])
        return round(float(lat[0]) * 1e7), round(float(lon[0]) * 1e7), float(w.pos[i, 2])

    def text(self, i: int, severity: int, text: str) -> None:
        self.send(i, m.MAVLink_statustext_message(severity, text.encode()[:50]))

    # -- time -----------------------------------------------------------------------------------

    def step(self) -> None:
        """One fixed step of the world, then the autopilots' own decisions."""
        w = self.world
        before = w.mode.copy()
        seq_before = w.seq.copy()
        w.step()
        # ArduPilot sends MISSION_ITEM_REACHED for every item it passes; ground stations
        # (MAVSDK's mission progress and "finished") count on it
        for i in np.flatnonzero((w.seq != seq_before) & self.on_mission).tolist():
            plan = self.missions.plans[i]
            if plan is None:
                continue
            first = plan.current_item(int(self.base[i] + seq_before[i]))
            for item in range(first, plan.current_item(int(self.base[i] + w.seq[i]))):
                self.send(i, m.MAVLink_mission_item_reached_message(item))
        for i in np.flatnonzero(before != w.mode).tolist():
            if w.mode[i] == _STANDBY:
                self._touchdown(i)
            elif before[i] == AutopilotMode.AUTO and w.mode[i] == AutopilotMode.LAND:
                self._route_end(i)
        vel = w.vel
        moving = np.hypot(vel[:, 0], vel[:, 1]) > 0.5
        if moving.any():  # the nose points where it flies; hovering, it keeps its heading
            east, north = vel[moving, 0], vel[moving, 1]
            self.heading_deg[moving] = np.degrees(np.arctan2(east, north)) % 360.0

    def housekeeping(self, reachable: np.ndarray) -> None:
        """ArduPilot's auto-disarm on the ground, and the ground crew's battery swaps (of
        ``reachable`` drones: the World takes a swap as a command)."""
        w = self.world
        ground = w.mode == _STANDBY
        stale = self.armed & ground & (w.t_s - self._armed_at >= self.disarm_delay_s)
        self.armed[stale] = False
        idx = np.flatnonzero((self._swap_due <= w.t_s) & ~self.armed & ground & reachable)
        if len(idx):
            w.command(idx, Command.SWAP_BATTERY)
            self._swap_due[idx] = np.inf

    def _onboard(self, i: int, mode: AutopilotMode) -> None:
        """A mode change the autopilot makes itself: no radio is involved, so it happens also
        to a drone whose link is down (World.command would drop it)."""
        self.world.mode[i] = mode

    def _touchdown(self, i: int) -> None:
        """Landed (or fell): ArduPilot disarms at once; the crew swaps the pack later."""
        if self.on_mission[i] and self.world.alive[i]:
            self.send(i, m.MAVLink_mission_item_reached_message(self.current_item(i)))
        self._leave_mission(i)
        self.armed[i] = False
        self._to_target[i] = False
        self.takeoff_alt[i] = np.nan
        self._swap_due[i] = self.world.t_s + self.swap_s

    def _route_end(self, i: int) -> None:
        """The world flew its last waypoint and would land: hold at a guided target, or do
        what the mission says after its last waypoint."""
        if self._to_target[i]:
            self._to_target[i] = False
            self.takeoff_alt[i] = np.nan
            self._onboard(i, AutopilotMode.HOLD)
            return
        plan = self.missions.plans[i]
        if self.on_mission[i] and plan is not None:
            self._onboard(i, _END_MODE[plan.end])

    # -- missions -------------------------------------------------------------------------------

    def _leave_mission(self, i: int) -> None:
        if self.on_mission[i]:
            self.mission_current[i] = self.current_item(i)
            self.on_mission[i] = False

    def _fly(self, i: int, route: FloatArray, from_ground: bool) -> None:
        self.world.upload(i, route)
        cmd = Command.START_MISSION if from_ground else Command.RESUME
        self.world.command(np.array([i], np.intp), cmd)

    def _start_mission(self, i: int, seq: int) -> bool:
        """Fly the mission from item ``seq``; False (the reason told) if it cannot."""
        plan = self.missions.plans[i]
        if plan is None or not len(plan.route):
            self.text(i, _CRITICAL, "Auto: no mission to fly")
            return False
        k = plan.first_point(min(max(seq, 1), plan.count - 1))
        flying = self.flying(i)
        if not flying and (k >= len(plan.route) or not plan.takeoff[k]):
            self.text(i, _CRITICAL, "Auto: Missing Takeoff Cmd")
            return False
        w = self.world
        route = plan.route[k:].copy()
        if len(route) and plan.takeoff[k]:
            if flying and w.pos[i, 2] >= route[0, 2] - ACCEPT_ALT_M:
                route, k = route[1:], k + 1  # already that high: the take-off is done at once
            else:
                # ArduPilot climbs where the vehicle is, whatever the item's position
                route[0, :2] = w.pos[i, :2] + w.nav_err[i]
                self.takeoff_alt[i] = route[0, 2]
        self._to_target[i] = False
        self.on_mission[i] = True
        self.base[i] = k
        if len(route):
            self._fly(i, route, from_ground=not flying)
        else:  # nothing left to fly: what the mission does at its end
            self._route_end(i)
        return True

    def _mission_replaced(self, i: int, old: MissionPlan | None, new: MissionPlan | None) -> None:
        """A new mission while flying one: ArduPilot flies on from the same item number (the
        ground station then sets the item it wants); otherwise it starts from the beginning."""
        if new is not None and old is not None and self.flying_mission(i):
            self._start_mission(i, old.current_item(int(self.base[i] + self.world.seq[i])))
            return
        self.on_mission[i] = False
        self.mission_current[i] = 0

    def goto(self, i: int, lat_e7: int, lon_e7: int, alt_m: float) -> None:
        """Fly (in the air) to a point and hold there: a GUIDED target."""
        x, y = self.frame.to_local([lon_e7 / 1e7], [lat_e7 / 1e7])
        self._leave_mission(i)
        self._fly(i, np.array([[float(x[0]), float(y[0]), alt_m]]), from_ground=False)
        self._to_target[i] = True

    def set_current(self, i: int, seq: int) -> int:
        """Make mission item ``seq`` current (flying the mission, fly to it now)."""
        plan = self.missions.plans[i]
        if plan is None or not 0 <= seq < plan.count:
            return DENIED
        seq = max(seq, 1)  # item 0 is home, not a place to fly to
        if self.flying_mission(i):
            self._start_mission(i, seq)
        else:
            self._leave_mission(i)
        self.mission_current[i] = seq
        return ACCEPTED

    # -- modes and commands -----------------------------------------------------------------------

    def change_mode(self, i: int, mode: int) -> int:
        """Switch vehicle ``i`` to the Copter mode number ``mode``; the MAV_RESULT."""
        try:
            new = CopterMode(mode)
        except ValueError:
            self.text(i, m.MAV_SEVERITY_WARNING, f"Unsupported mode {mode}")
            return FAILED
        if new == self.cmode[i]:
            return ACCEPTED  # ArduPilot does not re-enter the mode it is in
        if new in NEEDS_POSITION and not self.fix:
            self.text(i, m.MAV_SEVERITY_WARNING, f"Mode {new.name} needs a position")
            return FAILED
        flying = self.flying(i)
        if new is _M.AUTO:
            plan = self.missions.plans[i]
            seq = int(self.mission_current[i])
            if plan is None or seq < 1 or plan.first_point(seq) >= len(plan.route):
                seq = 1  # a finished (or never started) mission starts over
            if flying and not self._start_mission(i, seq):
                return FAILED
            if not flying and self.armed[i] and not self._takes_off(i, seq):
                return FAILED
        else:
            self._leave_mission(i)
            self._to_target[i] = False
            if flying:
                drone = np.array([i], np.intp)
                if new in (_M.RTL, _M.SMART_RTL):
                    self.world.command(drone, Command.RETURN)
                elif new is _M.LAND:
                    self.world.command(drone, Command.LAND)
                else:  # GUIDED without a target, LOITER, BRAKE, POSHOLD, no pilot: hover
                    self.world.command(drone, Command.HOLD)
        self.cmode[i] = int(new)
        return ACCEPTED

    def _takes_off(self, i: int, seq: int) -> bool:
        """Armed on the ground, ArduPilot enters AUTO only for a mission that takes off first
        (it then waits for MISSION_START)."""
        plan = self.missions.plans[i]
        if plan is not None:
            k = plan.first_point(seq)
            if k < len(plan.route) and plan.takeoff[k]:
                return True
        self.text(i, _CRITICAL, "Auto: Missing Takeoff Cmd")
        return False

    def cmd_set_mode(self, i: int, c: Cmd) -> int:
        base, custom = as_int(c.params[0]), as_int(c.params[1])
        if base is None or custom is None or not base & m.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED:
            return FAILED
        return self.change_mode(i, custom)

    def cmd_arm(self, i: int, c: Cmd) -> int:
        """Arm (position valid, an armable mode) or disarm (on the ground, or forced)."""
        arm = c.params[0]
        if arm == 1.0:
            if self.armed[i]:
                return ACCEPTED
            if not self.fix:
                self.text(i, _CRITICAL, "PreArm: Need Position Estimate")
                return DENIED
            if self.cmode[i] not in ARMABLE:
                self.text(i, _CRITICAL, "Arm: Mode not armable")
                return DENIED
            self.armed[i] = True
            self._armed_at[i] = self.world.t_s
            self._swap_due[i] = np.inf  # the crew keeps clear of an armed drone
            return ACCEPTED
        if arm != 0.0:
            return DENIED
        if not self.flying(i):
            self.armed[i] = False
            return ACCEPTED
        if c.params[1] == FORCE_DISARM:
            # motors off in flight: the drone falls (the World has no public call for that)
            self.world._kill(np.array([i], np.intp))
            self._touchdown(i)
            return ACCEPTED
        self.text(i, _CRITICAL, "Disarm: vehicle is flying")
        return FAILED

    def cmd_takeoff(self, i: int, c: Cmd) -> int:
        """NAV_TAKEOFF: climb over the pad to param7 metres and hold (armed, on the ground, in
        GUIDED, LOITER or POSHOLD; ArduPilot refuses a take-off downwards)."""
        alt = c.params[6]
        w = self.world
        if not self.armed[i] or self.flying(i) or self.cmode[i] not in TAKEOFF_MODES:
            return FAILED
        if not (math.isfinite(alt) and w.pos[i, 2] < alt <= MAX_TARGET_ALT_M):
            return FAILED
        est = w.pos[i, :2] + w.nav_err[i]
        self._fly(i, np.array([[est[0], est[1], alt]]), from_ground=True)
        self._to_target[i] = True
        self.takeoff_alt[i] = alt
        return ACCEPTED

    def cmd_mission_start(self, i: int, c: Cmd) -> int:
        """MISSION_START: AUTO, flying the mission from item param1 (item 1 when 0)."""
        plan = self.missions.plans[i]
        first = as_int(c.params[0])
        if plan is None or not len(plan.route):
            self.text(i, _CRITICAL, "Mission start: no mission")
            return FAILED
        if first is None or not 0 <= first < plan.count:
            return DENIED
        first = max(first, 1)
        if not self.fix:
            return FAILED
        if self.armed[i]:
            if not self._start_mission(i, first):
                return FAILED
        else:
            self._leave_mission(i)
            self.mission_current[i] = first  # AUTO on the ground, disarmed: nothing flies
        self.cmode[i] = int(_M.AUTO)
        return ACCEPTED

    def cmd_set_current(self, i: int, c: Cmd) -> int:
        seq = as_int(c.params[0])
        return self.set_current(i, -1 if seq is None else seq)

    def cmd_reposition(self, i: int, c: Cmd) -> int:
        """DO_REPOSITION: a GUIDED go-to (switching to GUIDED if param2 asks for it)."""
        flags = as_int(c.params[1]) or 0
        if self.cmode[i] != _M.GUIDED and not flags & m.MAV_DO_REPOSITION_FLAGS_CHANGE_MODE:
            return DENIED
        if c.frame is not None and c.frame not in GLOBAL_FRAMES:
            return DENIED
        if c.xy is not None:
            lat, lon = c.xy
        elif math.isfinite(c.params[4]) and math.isfinite(c.params[5]):
            lat, lon = round(c.params[4] * 1e7), round(c.params[5] * 1e7)
        else:
            return DENIED
        alt = c.params[6] if math.isfinite(c.params[6]) else self.here(i)[2]
        if (lat == 0 and lon == 0) or not sane(lat, lon, alt):
            return DENIED
        if not self.fix or not self.flying(i):
            return FAILED
        self.change_mode(i, _M.GUIDED)
        self.goto(i, lat, lon, alt)
        return ACCEPTED
