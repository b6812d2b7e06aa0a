"""The simulated fleet: a table of numpy arrays stepped by compiled kernels.

Every array has one row per drone. The autopilot flies an uploaded mission (a list of 3-D
waypoints) the way PX4 or ArduPilot does in AUTO, or returns, lands or holds on command; an
onboard separation layer (ORCA, :mod:`skysweep.sim.separation`) bends the planned velocities
apart where drones meet. Around them: a gusty wind field, a battery whose voltage sags near
empty, GPS noise and glitches the autopilot steers on, a camera that detects search objects, a
radio that can drop out, and scheduled faults.

The world advances in fixed steps of ``dt_s`` to whatever time it is asked for, so a run depends
only on the seed, the commands and the faults, never on the wall clock. Each subsystem draws
from its own random stream, so turning one on does not change another's draws.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from skysweep.fence import FenceField
from skysweep.geo import FloatArray
from skysweep.proximity import VERTICAL_BAND_M, pairs_within
from skysweep.sim import physics
from skysweep.sim.faults import (
    BatterySag,
    DroneLost,
    Fault,
    GpsGlitch,
    LinkLost,
    MotorDegraded,
)
from skysweep.sim.sensor import SensorParams, Targets, sense
from skysweep.sim.separation import SeparationParams, separate
from skysweep.sim.wind import WindField, WindParams
from skysweep.telemetry import AutopilotMode, Command, FleetState, LinkEvent

#: Separation is computed for drones at least this high (on the pad they are parked apart).
SEPARATION_MIN_ALT_M = 1.0


@dataclass(frozen=True)
class WorldParams:
    """Per-drone airframe arrays (SI units) and the environment."""

    speed_mps: FloatArray
    endurance_s: FloatArray
    climb_mps: FloatArray
    accel_mps2: FloatArray
    home_m: FloatArray
    """(n, 2) launch pad of each drone, local metres."""
    swath_m: FloatArray | None = None
    """(n,) the camera's footprint width at the search altitude; needed for sensing."""
    wind: WindParams = field(default_factory=WindParams)
    bounds_m: tuple[float, float, float, float] | None = None
    """Area the wind field covers; by default the pads plus 5 km."""
    dt_s: float = 0.1
    slow_dt_s: float = 1.0
    """Period of the slow processes: gust grid, GPS error, sensor."""
    gps_noise_m: float = 1.0
    """Standard deviation of the GPS error per axis (a slowly wandering bias)."""
    gps_tau_s: float = 60.0
    gps_glitches_per_h: float = 0.0
    """Random GPS jumps per airborne drone-hour, besides scheduled faults."""
    sensor: SensorParams | None = None
    separation: SeparationParams | None = None
    min_separation_m: float = 0.0
    """Pairs closer than this in one altitude band are counted as violations (truth)."""
    vertical_band_m: float = VERTICAL_BAND_M


@dataclass
class Truth:
    """What only the simulator knows: for scoring a run."""

    detections: list[tuple[float, int, int, float]] = field(default_factory=list)
    """(t_s, drone, target or -1 for a false alarm, confidence)."""
    min_separation_m: float = math.inf
    violating_pairs: set[tuple[int, int]] = field(default_factory=set)
    faults: list[tuple[float, str, tuple[int, ...]]] = field(default_factory=list)


class World:
    """The true state of a simulated fleet."""

    def __init__(
        self,
        params: WorldParams,
        seed: int = 0,
        *,
        targets: Targets | None = None,
        faults: Sequence[Fault] = (),
        fence: FenceField | None = None,
        keep_in: shapely.Geometry | None = None,
        drone_ids: Sequence[str] | None = None,
    ) -> None:
        n = len(params.speed_mps)
        self.p = params
        self.seed = seed
        streams = np.random.SeedSequence(seed).spawn(4)
        self._rng_wind, self._rng_gps, self._rng_sensor, self._rng_fault = (
            np.random.default_rng(s) for s in streams
        )
        self.ids = tuple(drone_ids) if drone_ids is not None else tuple(map(str, range(n)))
        self.t_s = 0.0
        home = np.asarray(params.home_m, float)
        self.home = np.ascontiguousarray(home)
        self.pos = np.column_stack([home, np.zeros(n)])
        self.vel = np.zeros((n, 3))
        self.charge = np.ones(n)
        self.voltage = np.full(n, physics.open_circuit_v(1.0) - physics.SAG_AT_CRUISE_V)
        self.sag_scale = np.ones(n)
        self.mode = np.full(n, AutopilotMode.STANDBY, np.int8)
        self.alive = np.ones(n, bool)
        self.speed_factor = np.ones(n)
        self.cruise = np.asarray(params.speed_mps, float)
        self.endurance = np.asarray(params.endurance_s, float)
        self.accel = np.asarray(params.accel_mps2, float)
        self.climb = np.asarray(params.climb_mps, float)
        self.vmax = self.cruise.copy()
        # wind
        bounds = params.bounds_m
        if bounds is None:
            lo, hi = home.min(axis=0) - 5000.0, home.max(axis=0) + 5000.0
            bounds = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
        self.wind = WindField(params.wind, bounds, self._rng_wind)
        self._wind_prev = np.tile(self.wind.mean, (n, 1))
        # navigation error: slow GPS bias, plus glitch offsets
        self.gps_err = self._rng_gps.normal(0.0, params.gps_noise_m, (n, 2))
        self.glitch = np.zeros((n, 2))
        self.glitch_rate = np.zeros((n, 2))
        self.glitch_until = np.full(n, -np.inf)
        self.nav_err = self.gps_err.copy()
        self._gps_draw = np.empty((n, 2))
        self._glitching = False
        """Whether any glitch may be under way (the glitch arrays are not all zero)."""
        # radio
        self.link_until = np.full(n, -np.inf)
        self._seen = np.zeros(n)
        # missions: one flat waypoint table, each drone owning a slice of it
        self._wp = np.zeros((1024, 3))
        # the speed each waypoint may be passed at for the corners after it (brake_limits)
        self._wp_brake = np.zeros(1024)
        self._wp_used = 0
        self._wp_first = np.zeros(n, np.intp)
        self._wp_count = np.zeros(n, np.intp)
        self.seq = np.zeros(n, np.intp)
        self._leg_from = self.pos.copy()
        self._target_v = np.zeros((n, 3))
        self._died = np.zeros(n, bool)
        self._report = self._snapshot()
        # sensing, faults, events
        self.targets = targets
        self._faults = list(faults)
        self._next_fault = 0
        self._next_slow = 0.0
        self._events: list[LinkEvent] = []
        self.truth = Truth()
        self.fence = fence
        self._keep_in = keep_in

    def __len__(self) -> int:
        return len(self.charge)

    def set_keep_out(self, keep_out_m: Sequence[shapely.Geometry]) -> None:
        """The keep-out zones (local metres) changed in flight: the onboard separation keeps
        off the new fence, as a vehicle sent a new geofence does (a world built without a
        fence, or without its ``keep_in``, has none to change)."""
        if self.fence is not None and self._keep_in is not None:
            self.fence = FenceField.build(self._keep_in, list(keep_out_m))

    @property
    def battery(self) -> FloatArray:
        return self.charge

    @property
    def flying(self) -> NDArray[np.bool_]:
        return self.alive & (self.mode != AutopilotMode.STANDBY)

    # -- commands (what a link delivers) ---------------------------------------------------

    def reachable(self, drones: NDArray[np.intp]) -> NDArray[np.bool_]:
        """Whether a command can reach each of ``drones``: alive, and its radio up."""
        drones = np.asarray(drones, np.intp)
        return np.asarray(self.alive[drones] & (self.link_until[drones] <= self.t_s))

    def _reachable(self, drones: NDArray[np.intp]) -> NDArray[np.intp]:
        """The drones of ``drones`` a command can reach."""
        drones = np.asarray(drones, np.intp)
        return drones[self.reachable(drones)]

    def upload(self, drone: int, waypoints: FloatArray) -> bool:
        """Replace ``drone``'s mission with ``waypoints`` (k, 3), local metres.

        Returns False (nothing changes) when the drone cannot be reached.
        """
        if not len(self._reachable(np.array([drone]))):
            return False
        wps = np.asarray(waypoints, float).reshape(-1, 3)
        need = self._wp_used + len(wps)
        if need > len(self._wp):
            grown = np.zeros((max(need, 2 * len(self._wp)), 3))
            grown[: self._wp_used] = self._wp[: self._wp_used]
            self._wp = grown
            self._wp_brake = np.resize(self._wp_brake, len(grown))
        self._wp[self._wp_used : need] = wps
        self._wp_brake[self._wp_used : need] = physics.brake_limits(
            np.ascontiguousarray(wps), float(self.accel[drone])
        )
        self._wp_first[drone] = self._wp_used
        self._wp_count[drone] = len(wps)
        self._wp_used = need
        self.seq[drone] = 0
        return True

    def command(self, drones: NDArray[np.intp], cmd: Command) -> None:
        drones = self._reachable(drones)
        if cmd is Command.START_MISSION:
            ok = drones[self._wp_count[drones] > 0]
            self.mode[ok] = AutopilotMode.AUTO
            self.seq[ok] = 0
            self._leg_from[ok] = self.pos[ok]
            self._leg_from[ok, :2] += self.nav_err[ok]
        elif cmd is Command.RESUME:
            ok = drones[(self._wp_count[drones] > 0) & (self.mode[drones] != AutopilotMode.STANDBY)]
            self.mode[ok] = AutopilotMode.AUTO
            self._leg_from[ok] = self.pos[ok]
            self._leg_from[ok, :2] += self.nav_err[ok]
        elif cmd is Command.RETURN:
            self.mode[drones] = AutopilotMode.RTL
        elif cmd is Command.LAND:
            self.mode[drones] = AutopilotMode.LAND
        elif cmd is Command.HOLD:
            self.mode[drones] = AutopilotMode.HOLD
        elif cmd is Command.SWAP_BATTERY:
            on_ground = drones[self.mode[drones] == AutopilotMode.STANDBY]
            self.charge[on_ground] = 1.0
            self.sag_scale[on_ground] = 1.0

    # -- time ------------------------------------------------------------------------------

    def advance_to(self, t_s: float) -> None:
        """Step the world forward until ``t_s`` (never backward)."""
        while self.t_s + 0.5 * self.p.dt_s < t_s:
            self.step()

    def step(self) -> None:
        """One fixed step of ``dt_s``: faults due, slow processes, guidance, separation, physics."""
        p = self.p
        dt = p.dt_s
        while self._next_fault < len(self._faults) and (
            self._faults[self._next_fault].at_s <= self.t_s + 1e-9
        ):
            self._inject(self._faults[self._next_fault], self._next_fault)
            self._next_fault += 1
        if self.t_s + 1e-9 >= self._next_slow:
            self._slow(p.slow_dt_s)
            self._next_slow += p.slow_dt_s
        wp = self._wp
        physics.guidance(
            self.pos,
            self.nav_err,
            self.vel,
            self.mode,
            self.alive,
            self.seq,
            wp,
            self._wp_brake,
            self._wp_first,
            self._wp_count,
            self._leg_from,
            self.home,
            self.vmax,
            self.accel,
            self.climb,
            dt,
            self._target_v,
        )
        self._separate(dt)
        physics.dynamics(
            self.pos,
            self.vel,
            self._target_v,
            self.mode,
            self.alive,
            self.home,
            self.accel,
            self.cruise,
            self.endurance,
            self.charge,
            self.sag_scale,
            self.voltage,
            self._wind_prev,
            self.wind.mean,
            self.wind.grid,
            self.wind.geo,
            dt,
            self.t_s,
            self._died,
        )
        if self._died.any():
            self._kill(np.flatnonzero(self._died))
        self.t_s += dt

    def _separate(self, dt: float) -> None:
        p = self.p
        if p.separation is None and p.min_separation_m <= 0:
            return
        up = self.flying & (self.pos[:, 2] >= SEPARATION_MIN_ALT_M)
        # a drone alone in the air still keeps off the fence
        if not up.any() or (p.separation is None and up.sum() < 2):
            return
        if p.separation is not None:
            res = separate(
                self.pos,
                self.vel,
                self._target_v,
                self.vmax,
                up,
                p.separation,
                dt,
                self.fence,
                self.accel,
            )
            self._target_v[up, :2] = res.vel_mps[up]
            assert res.vz_mps is not None
            self._target_v[up, 2] = res.vz_mps[up]
            if p.min_separation_m > 0 and len(res.pairs):
                # the neighbour search reaches farther than the separation: reuse its pairs
                self._count_violations(res.pairs)
        elif p.min_separation_m > 0:
            self._count_violations(pairs_within(self.pos, up, p.min_separation_m))

    def _count_violations(self, pairs: NDArray[np.intp]) -> None:
        """Record pairs (truth positions) closer than the minimum separation in one band."""
        p = self.p
        if not len(pairs):
            return
        a, b = pairs[:, 0], pairs[:, 1]
        same = np.abs(self.pos[a, 2] - self.pos[b, 2]) < p.vertical_band_m
        d = np.hypot(self.pos[a, 0] - self.pos[b, 0], self.pos[a, 1] - self.pos[b, 1])
        d = np.where(same, d, np.inf)
        self.truth.min_separation_m = min(self.truth.min_separation_m, float(d.min()))
        for i, j in pairs[d < p.min_separation_m].tolist():
            self.truth.violating_pairs.add((min(i, j), max(i, j)))

    def _slow(self, dt: float) -> None:
        """Processes that move slowly: gusts, GPS error and glitches, the camera."""
        p = self.p
        self.wind.advance(dt)
        n = len(self)
        rng = self._rng_gps
        decay = math.exp(-dt / p.gps_tau_s)
        fresh = self._gps_draw
        rng.standard_normal(out=fresh)
        fresh *= p.gps_noise_m * math.sqrt(1.0 - decay * decay)
        self.gps_err *= decay
        self.gps_err += fresh
        if self._glitching:
            self.glitch += self.glitch_rate * dt
            over = self.glitch_until <= self.t_s
            self.glitch[over] = 0.0
            self.glitch_rate[over] = 0.0
            self._glitching = bool((~over).any())
        if p.gps_glitches_per_h > 0:
            hit = self.flying & (rng.random(n) < p.gps_glitches_per_h * dt / 3600.0)
            idx = np.flatnonzero(hit)
            if len(idx):
                bearing = rng.uniform(0.0, 2 * math.pi, len(idx))
                size = rng.uniform(20.0, 60.0, len(idx))
                self.glitch[idx] = (
                    np.column_stack([np.sin(bearing), np.cos(bearing)]) * size[:, None]
                )
                self.glitch_until[idx] = self.t_s + rng.uniform(5.0, 20.0, len(idx))
                self._glitching = True
        np.add(self.gps_err, self.glitch, out=self.nav_err)
        if p.sensor is not None and self.targets is not None and p.swath_m is not None:
            self._sense(dt)

    def _sense(self, dt: float) -> None:
        p = self.p
        assert p.sensor is not None and self.targets is not None and p.swath_m is not None
        sensing = self.flying
        if not sensing.any():
            return
        det = sense(
            self.targets,
            self.pos[:, :2],
            self.pos[:, 2],
            np.hypot(self.vel[:, 0], self.vel[:, 1]),
            sensing,
            p.swath_m,
            p.sensor,
            dt,
            self._rng_sensor,
        )
        for k in range(len(det)):
            drone = int(det.drone[k])
            # the drone places what it sees relative to where it thinks it is
            x, y = det.xy_m[k] + self.nav_err[drone]
            conf = float(det.confidence[k])
            self.truth.detections.append((self.t_s, drone, int(det.target[k]), conf))
            self._events.append(
                LinkEvent(
                    self.t_s,
                    "detection",
                    drone,
                    {"x_m": round(float(x), 2), "y_m": round(float(y), 2), "confidence": conf},
                )
            )

    # -- faults ----------------------------------------------------------------------------

    def _inject(self, fault: Fault, number: int) -> None:
        rng = np.random.default_rng([self.seed, 1 + number])
        if fault.drone is not None:
            drones = np.array([self.ids.index(fault.drone)], np.intp)
        else:
            assert fault.fraction is not None
            k = max(1, round(fault.fraction * len(self)))
            pool = np.flatnonzero(self.flying)
            if len(pool) < k:
                pool = np.flatnonzero(self.alive)
            drones = np.sort(rng.choice(pool, size=min(k, len(pool)), replace=False))
        drones = drones[self.alive[drones]]
        t = self.t_s
        data: dict[str, object] = {"fault": fault.kind}
        if isinstance(fault, DroneLost):
            self._kill(drones)
        elif isinstance(fault, LinkLost):
            self.link_until[drones] = np.maximum(self.link_until[drones], t + fault.duration_s)
            data["duration_s"] = fault.duration_s
        elif isinstance(fault, BatterySag):
            self.charge[drones] *= fault.capacity_factor
            self.sag_scale[drones] *= fault.resistance_factor
            data["capacity_factor"] = fault.capacity_factor
        elif isinstance(fault, GpsGlitch):
            if fault.bearing_deg is None:
                bearing = rng.uniform(0.0, 2 * math.pi, len(drones))
            else:
                bearing = np.full(len(drones), math.radians(fault.bearing_deg))
            unit = np.column_stack([np.sin(bearing), np.cos(bearing)])
            if fault.mode == "jump":
                self.glitch[drones] = unit * fault.offset_m
                self.glitch_rate[drones] = 0.0
            else:
                self.glitch_rate[drones] = unit * fault.drift_mps
            self.glitch_until[drones] = t + fault.duration_s
            self._glitching = True
            np.add(self.gps_err, self.glitch, out=self.nav_err)
            data.update(mode=fault.mode, duration_s=fault.duration_s)
        elif isinstance(fault, MotorDegraded):
            self.speed_factor[drones] = np.minimum(self.speed_factor[drones], fault.speed_factor)
            self.vmax = self.cruise * self.speed_factor
            data["speed_factor"] = fault.speed_factor
        data["drones"] = [self.ids[i] for i in drones]
        self.truth.faults.append((t, fault.kind, tuple(int(i) for i in drones)))
        self._events.append(LinkEvent(t, "sim_fault", None, data))

    def _kill(self, drones: NDArray[np.intp]) -> None:
        """The drones fall: motors off, on the ground where they were, silent for good."""
        self.alive[drones] = False
        self.mode[drones] = AutopilotMode.STANDBY
        self.pos[drones, 2] = 0.0
        self.vel[drones] = 0.0

    # -- telemetry -------------------------------------------------------------------------

    def _snapshot(self) -> dict[str, NDArray[Any]]:
        est = self.pos.copy()
        est[:, :2] += self.nav_err
        return {
            "pos_m": est,
            "vel_mps": self.vel.copy(),
            "battery": self.charge.copy(),
            "voltage_v": self.voltage.copy(),
            "mode": self.mode.copy(),
            "mission_seq": self.seq.copy(),
            "airborne": self.flying,
        }

    def state(self) -> FleetState:
        """Telemetry as the radio delivers it: the autopilots' own estimates, as of their last
        report; a drone whose link is down, or that fell, keeps its last report."""
        heard = self.alive & (self.link_until <= self.t_s)
        now = self._snapshot()
        rep = self._report
        for key, value in now.items():
            rep[key][heard] = value[heard]
        self._seen[heard] = self.t_s
        return FleetState(
            t_s=self.t_s,
            pos_m=rep["pos_m"].astype(np.float64),
            vel_mps=rep["vel_mps"].astype(np.float64),
            battery=rep["battery"].astype(np.float64),
            mode=rep["mode"].astype(np.int8),
            mission_seq=rep["mission_seq"].astype(np.intp),
            airborne=rep["airborne"].astype(bool),
            last_seen_s=self._seen.copy(),
            voltage_v=rep["voltage_v"].astype(np.float64),
        )

    def take_events(self) -> list[LinkEvent]:
        """Detections and injected faults since the last call; what a link carries (detections
        only from drones whose radio is up at the time of the call)."""
        heard = self.alive & (self.link_until <= self.t_s)
        keep, out = [], []
        for e in self._events:
            if e.drone is None or heard[e.drone]:
                out.append(e)
            elif self.alive[e.drone]:
                keep.append(e)  # queued onboard until the link is back
        self._events = keep
        return out


def warm_up(world: World, seconds: float = 5.0) -> None:
    """Compile the step's kernels (numba, on a cold cache several seconds) on a copy of
    ``world``, which is left as it was: a simulator that answers in real time (the MAVLink
    façade) must not fall silent for that long in the middle of its first flight, where a
    ground station would call its vehicles lost.

    Every drone of the copy climbs from its pad toward a point 30 m east, 20 m up, so that
    guidance, separation between neighbouring pads and the physics all run."""
    ghost = copy.deepcopy(world)
    ghost._faults = []  # a fault due in the first seconds must not fire in the copy's log
    drones = np.flatnonzero(ghost.alive)
    for i in drones:
        ghost.upload(int(i), np.array([[*(ghost.home[i, :2] + (30.0, 0.0)), 20.0]]))
    ghost.command(drones, Command.START_MISSION)
    ghost.advance_to(ghost.t_s + seconds)
