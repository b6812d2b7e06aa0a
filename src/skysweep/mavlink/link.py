"""skysweep as a ground station: a :class:`~skysweep.link.base.Link` to PX4 and ArduPilot
vehicles over MAVLink 2, on any number of channels at once.

Vehicles are routed by (channel, system id), so each channel can carry its own 1-250 system ids
and a fleet of thousands spreads over several channels. A drone of the mission is bound to a
vehicle either explicitly (``vehicles``: drone id → (channel index, system id)) or by discovery:
the first ``len(fleet)`` autopilots heard, sorted by channel then system id, take the fleet's
drones in mission order.

Everything the link sends passes the actuator allowlist (:mod:`skysweep.mavlink.allowlist`)
in :meth:`MavlinkLink._emit`, the one place it writes to a channel. Telemetry goes into a table
of numpy arrays, one row per drone; :meth:`MavlinkLink.poll` turns it into a
:class:`~skysweep.telemetry.FleetState` in the mission's local frame with one vectorised
projection. Input that is not well-formed MAVLink, fails its signature, or carries absurd
values (a latitude of 200°, a negative battery) is counted and reported, never applied.

I/O runs in :meth:`MavlinkLink.pump`, called by a background thread (:meth:`start`) or by a
test. Protocol timeouts are in wall-clock seconds; telemetry times are reported in mission
seconds (``time_scale`` mission seconds per wall second, 1 for real vehicles).
"""

from __future__ import annotations

import select
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from skysweep.errors import LinkError
from skysweep.geo import FloatArray
from skysweep.link.base import Link
from skysweep.mavlink import fastpath, signing
from skysweep.mavlink.allowlist import CommandRefused, check_outgoing
from skysweep.mavlink.dialect import GCS_COMPONENT, GCS_SYSTEM, VEHICLE_COMPONENT, new_mav
from skysweep.mavlink.dialect import mavlink as m
from skysweep.mavlink.items import (
    FENCE,
    MISSION,
    ROUTE_FIRST_SEQ,
    Item,
    fence_items,
    route_index,
    route_items,
)
from skysweep.mavlink.modes import Autopilot, CopterMode, decode_modes, set_mode_params
from skysweep.mavlink.steps import (
    DownloadItems,
    Guard,
    SendCommand,
    SendMessage,
    Status,
    Step,
    UploadItems,
)
from skysweep.mavlink.transport import Channel, Endpoint
from skysweep.mission import Mission
from skysweep.telemetry import AutopilotMode, Command, FleetState, LinkEvent

#: Telemetry rate asked of every vehicle, Hz (position, status).
STREAM_HZ = 2.0
#: Ask again for streams when a vehicle's position has been silent this long, wall s.
STREAM_RETRY_S = 3.0
#: The ground station's heartbeat period, wall s.
GCS_HEARTBEAT_S = 1.0
#: A STATUSTEXT this severe or worse is reported as an event (ArduPilot sends many INFO ones).
REPORT_SEVERITY = m.MAV_SEVERITY_NOTICE
#: A vehicle farther than this from its drone's pad at connect time is not flown, m.
PAD_TOLERANCE_M = 10.0
#: Bad-input counts are reported at most this often, wall s.
BAD_INPUT_REPORT_S = 5.0

_LANDED_AIR = (
    m.MAV_LANDED_STATE_IN_AIR,
    m.MAV_LANDED_STATE_TAKEOFF,
    m.MAV_LANDED_STATE_LANDING,
)
_ID = {
    name: getattr(m, f"MAVLINK_MSG_ID_{name}")
    for name in (
        "HEARTBEAT",
        "GLOBAL_POSITION_INT",
        "SYS_STATUS",
        "BATTERY_STATUS",
        "EXTENDED_SYS_STATE",
        "MISSION_CURRENT",
        "STATUSTEXT",
        "COMMAND_ACK",
        "MISSION_REQUEST_INT",
        "MISSION_REQUEST",
        "MISSION_ACK",
        "MISSION_COUNT",
        "MISSION_ITEM_INT",
    )
}
_POSITION_ID = _ID["GLOBAL_POSITION_INT"]
_STEP_MESSAGES = frozenset(
    _ID[k]
    for k in (
        "COMMAND_ACK",
        "MISSION_REQUEST_INT",
        "MISSION_REQUEST",
        "MISSION_ACK",
        "MISSION_COUNT",
        "MISSION_ITEM_INT",
    )
)


@dataclass
class _Vehicle:
    """What the link keeps per bound vehicle besides the telemetry table."""

    drone: int
    channel: int
    system: int
    steps: deque[Step] = field(default_factory=deque)
    current: Step | None = None
    label: str = ""  # the command the queued steps carry out, for reports
    fence_ok: bool = False
    fence_due: bool = False  # a fence upload waits for the steps in hand
    streams_asked: float = -np.inf


class MavlinkLink(Link):
    """Vehicles of ``mission`` reached over MAVLink ``endpoints`` (see
    :mod:`skysweep.mavlink.transport` for the forms)."""

    def __init__(
        self,
        mission: Mission,
        endpoints: Sequence[str] = (),
        *,
        vehicles: Mapping[str, tuple[int, int]] | None = None,
        signing_key: bytes | None = None,
        time_scale: float = 1.0,
        stream_hz: float = STREAM_HZ,
        wall: Callable[[], float] = time.monotonic,
        channels: Sequence[Channel] | None = None,
    ) -> None:
        self.mission = mission
        self.frame = mission.frame
        self.ids = mission.fleet.ids
        n = len(self.ids)
        self.n = n
        self.time_scale = time_scale
        self.stream_hz = stream_hz
        self.wall = wall
        if channels is None:
            if not endpoints:
                raise LinkError(
                    "a MAVLink link needs at least one endpoint, e.g. udp:127.0.0.1:14550"
                )
            opened: list[Channel] = []
            try:
                for text in endpoints:
                    opened.append(Endpoint.parse(text).open())
            except LinkError:
                for ch in opened:
                    ch.close()
                raise
            channels = opened
        self.channels = list(channels)
        self._codecs = [new_mav(GCS_SYSTEM, GCS_COMPONENT) for _ in self.channels]
        self.key_fingerprint = ""
        #: Decode plain telemetry without pymavlink's per-message objects (off when signed).
        self.fast_path = signing_key is None and bool(fastpath.LAYOUTS)
        if signing_key is not None:
            for k, codec in enumerate(self._codecs):
                signing.enable(codec, signing_key, link_id=k)
            self.key_fingerprint = signing.fingerprint(signing_key)
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        # binding of drones to vehicles
        self._index = {d: i for i, d in enumerate(self.ids)}
        self._route: dict[tuple[int, int], int] = {}
        self.vehicles: list[_Vehicle | None] = [None] * n
        self._explicit = vehicles is not None
        if vehicles is not None:
            for drone, (link_no, system) in vehicles.items():
                if drone not in self._index:
                    raise LinkError(f"vehicles: {drone!r} is not a drone of the mission")
                if not 0 <= link_no < len(self.channels) or not 1 <= system <= 255:
                    raise LinkError(
                        f"vehicles: {drone!r} → link {link_no}, system {system} is no vehicle "
                        f"address (links 0-{len(self.channels) - 1}, systems 1-255)"
                    )
                self._bind(self._index[drone], link_no, system)
        self._peer: dict[tuple[int, int], Any] = {}
        self.heard: dict[tuple[int, int], int] = {}
        """Every autopilot heard, bound or not: (channel, system) → MAV_AUTOPILOT."""
        # the telemetry table
        self.lat_e7 = np.zeros(n, np.int64)
        self.lon_e7 = np.zeros(n, np.int64)
        self.pos_valid = np.zeros(n, bool)
        self.rel_alt_m = np.zeros(n)
        self.vel_ned = np.zeros((n, 3))
        self.battery = np.zeros(n)  # until reported, a drone is not called charged
        self.battery_known = np.zeros(n, bool)
        self.voltage_v = np.full(n, np.nan)
        self.autopilot = np.full(n, Autopilot.GENERIC, np.int16)
        self.base_mode = np.zeros(n, np.int64)
        self.custom_mode = np.zeros(n, np.int64)
        self.landed_state = np.zeros(n, np.int8)
        self.mission_current = np.zeros(n, np.intp)
        # the route point each drone flies to (from MISSION_CURRENT, through the map of its
        # last started route's items to route points)
        self.route_seq = np.zeros(n, np.intp)
        self._seq_map: list[NDArray[np.intp] | None] = [None] * n
        self.heartbeat_wall = np.full(n, -np.inf)
        self.position_wall = np.full(n, -np.inf)
        # what a queued command will make of the drone, reported until its steps are through
        # (the simulator's link changes mode at once; a real vehicle takes a few round trips)
        self._intent_mode = np.full(n, -1, np.int8)
        self._intent_seq0 = np.zeros(n, bool)
        # wall time after which a heartbeat confirms a finished command (inf: not finished)
        self._confirm_after = np.full(n, np.inf)
        self._routes: dict[int, FloatArray] = {}
        self._busy: set[int] = set()
        self._fence: list[Item] = []
        self._events: list[tuple[float, str, int | None, dict[str, Any]]] = []
        self.bad_input: dict[tuple[str, str], int] = {}
        self._bad_reported: dict[tuple[str, str], int] = {}
        self._bad_report_wall = -np.inf
        self.refused = 0
        self.messages = 0
        self._hb_wall = -np.inf
        self._clock = (0.0, wall())  # (mission s, wall s) at the last poll
        self._handlers: dict[int, Callable[[Any, int], None]] = {
            _ID["GLOBAL_POSITION_INT"]: self._on_position,
            _ID["SYS_STATUS"]: self._on_sys_status,
            _ID["BATTERY_STATUS"]: self._on_battery_status,
            _ID["EXTENDED_SYS_STATE"]: self._on_extended_state,
            _ID["MISSION_CURRENT"]: self._on_mission_current,
            _ID["STATUSTEXT"]: self._on_statustext,
        }

    # -- the Link interface --------------------------------------------------------------------

    def poll(self, now_s: float) -> FleetState:
        with self._lock:
            wall = self.wall()
            self._clock = (now_s, wall)
            n = self.n
            x = np.full(n, np.nan)
            y = np.full(n, np.nan)
            ok = self.pos_valid
            if ok.any():
                lx, ly = self.frame.to_local(self.lon_e7[ok] / 1e7, self.lat_e7[ok] / 1e7)
                x[ok], y[ok] = lx, ly
            pos = np.column_stack([x, y, self.rel_alt_m])
            vel = np.column_stack([self.vel_ned[:, 1], self.vel_ned[:, 0], -self.vel_ned[:, 2]])
            mode = decode_modes(self.autopilot, self.base_mode, self.custom_mode)
            seq = self.route_seq
            airborne = (mode != AutopilotMode.STANDBY) | np.isin(self.landed_state, _LANDED_AIR)
            intent = self._intent_mode >= 0
            mode = np.where(intent, self._intent_mode, mode).astype(np.int8)
            airborne |= intent & (self._intent_mode != AutopilotMode.STANDBY)
            seq = np.where(self._intent_seq0, 0, seq)
            # a drone is heard as of the older of its last heartbeat and its last position: a
            # missing heartbeat is a lost link, and the failsafe filter must not take a stale
            # position for a fresh one (it predicts forward from the report's time)
            heard = np.where(
                self.position_wall > -np.inf,
                np.minimum(self.position_wall, self.heartbeat_wall),
                self.heartbeat_wall,
            )
            last_seen = now_s - (wall - heard) * self.time_scale
            return FleetState(
                t_s=now_s,
                pos_m=pos,
                vel_mps=vel,
                battery=self.battery.copy(),
                mode=mode,
                mission_seq=seq.astype(np.intp),
                airborne=airborne,
                last_seen_s=last_seen,
                voltage_v=self.voltage_v.copy(),
            )

    def upload(self, drone: int, waypoints: FloatArray) -> None:
        """Keep ``waypoints`` for the START_MISSION that follows; the upload itself (with its
        read-back) is the first step of that command."""
        with self._lock:
            self._routes[drone] = np.asarray(waypoints, float).reshape(-1, 3).copy()

    def send(self, drones: NDArray[np.intp], command: Command) -> None:
        with self._lock:
            for i in np.asarray(drones, np.intp):
                self._command(int(i), command)

    def take_events(self) -> list[LinkEvent]:
        with self._lock:
            self._report_bad_input(force=True)
            now_s, wall0 = self._clock
            out = [
                LinkEvent(now_s - (wall0 - w) * self.time_scale, kind, drone, data)
                for w, kind, drone, data in self._events
            ]
            self._events.clear()
            return out

    # -- connection ----------------------------------------------------------------------------

    def start(self) -> None:
        """Run :meth:`pump` in a background thread until :meth:`close`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="mavlink-link", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        fds = [ch.fileno() for ch in self.channels]
        while not self._stop.is_set():
            try:
                select.select(fds, [], [], 0.005)
            except (OSError, ValueError):
                time.sleep(0.005)  # a channel closed under us: keep serving the others
            try:
                self.pump()
            except Exception as exc:
                # a fleet must not go silent because one message tripped a bug: the error is
                # counted and reported (link_bad_input, source "link") and the link goes on
                with self._lock:
                    key = ("link", f"internal error: {type(exc).__name__}: {exc}"[:200])
                    self.bad_input[key] = self.bad_input.get(key, 0) + 1

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        for ch in self.channels:
            ch.close()

    def connect(self, timeout_s: float = 30.0) -> list[str]:
        """Wait (wall seconds) until every drone of the mission is bound to a vehicle that
        reports a valid position and its battery's charge, then upload the geofence to each
        and read it back.

        Returns the problems found, one line each (empty: every vehicle is ready to arm).
        With discovery, drones are bound once as many autopilots as drones are heard, or at the
        timeout to those heard."""
        deadline = self.wall() + timeout_s
        self._pump_until(lambda: self._discovered(), deadline)
        with self._lock:
            if not self._explicit and not any(v is not None for v in self.vehicles):
                self.bind_discovered()
        # a drone whose charge is not yet reported reads as flat: the first launch would be
        # refused for energy, so a vehicle is ready only once it has said both
        self._pump_until(
            lambda: bool((self.pos_valid & self.battery_known)[self._bound()].all()), deadline
        )
        self.upload_fence()
        self._pump_until(lambda: not self._busy, deadline + 10.0 * len(self._fence) / 50.0)
        problems = []
        fs = self.poll(0.0)
        off_pad = np.hypot(*(fs.pos_m[:, :2] - self.mission.pad_xy_m).T)
        with self._lock:
            for i in range(self.n):
                v = self.vehicles[i]
                if v is None:
                    problems.append(f"drone {self.ids[i]}: no vehicle heard for it")
                elif not self.pos_valid[i]:
                    problems.append(f"drone {self.ids[i]}: no position from {self._where(v)}")
                elif not self.battery_known[i]:
                    problems.append(f"drone {self.ids[i]}: no battery report from {self._where(v)}")
                elif not off_pad[i] <= PAD_TOLERANCE_M:
                    # the plan launches it from its pad and brings it home there: a vehicle
                    # elsewhere is the wrong vehicle, or on the wrong pad
                    lon, lat = self.frame.to_lonlat(*self.mission.pad_xy_m[i])
                    problems.append(
                        f"drone {self.ids[i]} ({self._where(v)}) is {off_pad[i]:.0f} m from its "
                        f"pad at {float(lat):.6f}, {float(lon):.6f}"
                    )
                elif not v.fence_ok:
                    problems.append(f"drone {self.ids[i]}: geofence not confirmed on board")
        return problems

    def _pump_until(self, done: Callable[[], bool], deadline: float) -> None:
        while True:
            with self._lock:
                if done():
                    return
            if self.wall() >= deadline:
                return
            if self._thread is None:
                self.pump()
            time.sleep(0.005)

    def _discovered(self) -> bool:
        if self._explicit:
            return all(
                v is not None and self.heartbeat_wall[v.drone] > -np.inf for v in self.vehicles
            )
        return len(self.heard) >= self.n

    def _bound(self) -> NDArray[np.bool_]:
        return np.array([v is not None for v in self.vehicles], bool)

    def bind_discovered(self) -> None:
        """Bind the fleet's drones, in mission order, to the autopilots heard so far, sorted
        by link then system id (what :meth:`connect` does once enough are heard)."""
        for k, (ch, system) in enumerate(sorted(self.heard)[: self.n]):
            self._bind(k, ch, system)
            self.autopilot[k] = self.heard[(ch, system)]
            self.heartbeat_wall[k] = self.wall()

    def _bind(self, drone: int, ch: int, system: int) -> None:
        if (ch, system) in self._route:
            other = self.ids[self._route[(ch, system)]]
            raise LinkError(
                f"vehicles: {self.ids[drone]!r} and {other!r} both name system {system} on "
                f"link {self.channels[ch].name!r}"
            )
        self._route[(ch, system)] = drone
        self.vehicles[drone] = _Vehicle(drone, ch, system)

    def _where(self, v: _Vehicle) -> str:
        return f"system {v.system} on {self.channels[v.channel].name}"

    def upload_fence(self, keep_out_m: Sequence[Any] | None = None) -> None:
        """Upload the keep-in and the keep-out zones (the mission's, or ``keep_out_m``: local
        shapely polygons) to every bound vehicle as fence items and read them back; a vehicle
        whose read-back differs may not arm. A vehicle busy with a command gets its fence
        when the command is through."""
        mission = self.mission
        zones = [z.geometry for z in mission.keep_out] if keep_out_m is None else keep_out_m
        keep_in = mission.frame.geom_to_lonlat(mission.keep_in)
        keep_out = [mission.frame.geom_to_lonlat(z) for z in zones]
        with self._lock:
            self._fence = fence_items(keep_in, keep_out)
            for v in self.vehicles:
                if v is None:
                    continue
                v.fence_ok = False
                v.fence_due = True
                if v.current is None:
                    self._busy.add(v.drone)
                    self._advance(v, self.wall())

    def set_fence(self, keep_out_m: Sequence[Any]) -> None:
        self.upload_fence(keep_out_m)

    def _fence_steps(self, v: _Vehicle) -> list[Step]:
        def confirmed() -> None:
            v.fence_ok = True

        return [
            UploadItems(self._fence, FENCE),
            DownloadItems(FENCE, self._fence),
            _Then(confirmed),
        ]

    # -- commands ------------------------------------------------------------------------------

    def _command(self, i: int, command: Command) -> None:
        v = self.vehicles[i]
        if v is None:
            self._event("link_command_failed", i, command=command.name, reason="no vehicle")
            return
        ap = int(self.autopilot[i])
        if command is Command.START_MISSION:
            route = self._routes.pop(i, None)
            if route is None:
                self._event("link_command_failed", i, command="START_MISSION", reason="no route")
                return
            items = route_items(route, self.mission.pad_xy_m[i], self.frame)
            seq_map = route_index(route)
            steps: list[Step] = [UploadItems(items, MISSION), DownloadItems(MISSION, items)]
            on_ground = self.landed_state[i] in (0, m.MAV_LANDED_STATE_ON_GROUND) and not (
                self.base_mode[i] & m.MAV_MODE_FLAG_SAFETY_ARMED
            )
            if on_ground:
                steps.append(Guard(lambda: v.fence_ok, "geofence on board not confirmed"))
                if ap == Autopilot.PX4:
                    steps += [_arm(), _mission_start()]
                else:
                    steps += [
                        _set_mode(ap, CopterMode.GUIDED),
                        _arm(),
                        SendCommand(m.MAV_CMD_NAV_TAKEOFF, [0, 0, 0, 0, 0, 0, items[1].alt_m]),
                        _mission_start(),
                    ]
            else:
                steps += [
                    SendCommand(m.MAV_CMD_DO_SET_MISSION_CURRENT, [ROUTE_FIRST_SEQ]),
                    _set_mode(ap, AutopilotMode.AUTO),
                ]
            # the vehicle's last MISSION_CURRENT was of the old mission: the new one starts
            # at its first route item, until the vehicle says otherwise
            steps.append(_Then(lambda: self._started(i, seq_map)))
            self._queue(v, "START_MISSION", steps, AutopilotMode.AUTO, seq0=True)
        elif command is Command.RESUME:
            self._queue(v, "RESUME", [_set_mode(ap, AutopilotMode.AUTO)], AutopilotMode.AUTO)
        elif command is Command.RETURN:
            steps = [SendCommand(m.MAV_CMD_NAV_RETURN_TO_LAUNCH)]
            self._queue(v, "RETURN", steps, AutopilotMode.RTL)
        elif command is Command.LAND:
            self._queue(v, "LAND", [SendCommand(m.MAV_CMD_NAV_LAND)], AutopilotMode.LAND)
        elif command is Command.HOLD:
            self._queue(v, "HOLD", [_set_mode(ap, AutopilotMode.HOLD)], AutopilotMode.HOLD)
        elif command is Command.SWAP_BATTERY:
            # a job for the ground crew, not a MAVLink command: the operator is told
            self._event("crew_swap_battery", i)

    def _started(self, i: int, seq_map: NDArray[np.intp]) -> None:
        self._seq_map[i] = seq_map
        self.mission_current[i] = ROUTE_FIRST_SEQ
        self.route_seq[i] = seq_map[ROUTE_FIRST_SEQ]

    def goto(self, drone: str, x_m: float, y_m: float, alt_m: float) -> None:
        """Fly ``drone`` to a point (local metres, altitude above home) in guided mode, with
        SET_POSITION_TARGET_GLOBAL_INT, and hold there."""
        with self._lock:
            i = self._index[drone]
            v = self.vehicles[i]
            if v is None:
                raise LinkError(f"drone {drone!r} is not bound to a vehicle")
            lon, lat = self.frame.to_lonlat([x_m], [y_m])
            lat_i, lon_i = round(float(lat[0]) * 1e7), round(float(lon[0]) * 1e7)
            ap = int(self.autopilot[i])
            mask = 0b0000_1111_1111_1000  # position only
            frame = m.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT

            def target(system: int, comp: int) -> Any:
                return m.MAVLink_set_position_target_global_int_message(
                    0, system, comp, frame, mask, lat_i, lon_i, alt_m, 0, 0, 0, 0, 0, 0, 0, 0
                )

            steps: list[Step] = []
            if ap != Autopilot.PX4:
                steps.append(_set_mode(ap, CopterMode.GUIDED))
            steps.append(SendMessage(target, "SET_POSITION_TARGET_GLOBAL_INT"))
            self._queue(v, "GOTO", steps, AutopilotMode.HOLD)

    def _queue(
        self,
        v: _Vehicle,
        label: str,
        steps: Sequence[Step],
        intent: AutopilotMode | None,
        seq0: bool = False,
    ) -> None:
        """Replace whatever ``v`` was doing by ``steps`` (a later command wins: a RETURN while a
        launch is being uploaded cancels the launch)."""
        if v.label == "fence" and v.current is not None and v.current.status is Status.PENDING:
            v.fence_due = True  # the command goes first; the fence after it
        elif v.current is not None and v.current.status is Status.PENDING:
            self._event(
                "link_command_superseded", v.drone, command=v.label, by=label, step=v.current.name
            )
        v.steps = deque(steps)
        v.current = None
        v.label = label
        self._intent_mode[v.drone] = -1 if intent is None else int(intent)
        self._confirm_after[v.drone] = np.inf
        self._intent_seq0[v.drone] = seq0
        self._busy.add(v.drone)
        self._advance(v, self.wall())

    def _advance(self, v: _Vehicle, now: float) -> None:
        """Start the next step of ``v`` once the current one is through."""
        while True:
            cur = v.current
            if cur is not None and cur.status is Status.PENDING:
                return
            if cur is not None and cur.status is Status.FAILED:
                self._event(
                    "link_command_failed",
                    v.drone,
                    command=v.label,
                    step=cur.name,
                    reason=cur.reason,
                )
                v.steps.clear()
                # the vehicle did not do it: report what it says from now on
                self._intent_mode[v.drone] = -1
                self._confirm_after[v.drone] = np.inf
            if not v.steps and v.label != "fence" and self._intent_mode[v.drone] >= 0:
                # done: reported as commanded until a heartbeat sent after the last answer
                # confirms it (telemetry in flight still shows the drone as it was)
                self._confirm_after[v.drone] = now
            if not v.steps:
                self._intent_seq0[v.drone] = False
            if not v.steps and v.fence_due:
                # a fence change waits for the command in hand, never cancels it
                v.fence_due = False
                v.steps = deque(self._fence_steps(v))
                v.label = "fence"
            if not v.steps:
                v.current = None
                self._busy.discard(v.drone)
                return
            v.current = v.steps.popleft()
            emit = self._emitter(v.channel, v.system)
            v.current.begin(emit, (v.system, VEHICLE_COMPONENT), now)

    # -- I/O -----------------------------------------------------------------------------------

    def _emitter(self, ch: int, system: int) -> Callable[[Any], None]:
        def emit(msg: Any) -> None:
            self._emit(ch, msg, system)

        return emit

    def _emit(self, ch: int, msg: Any, system: int = 0) -> None:
        """The one place the link writes to a vehicle: the allowlist first. A message for one
        ``system`` goes only to the address it was last heard from (on a listening UDP port
        each PX4 SITL instance, or each radio bridge, has its own), otherwise to all."""
        try:
            check_outgoing(msg)
        except CommandRefused as exc:
            self.refused += 1
            self._event("link_refused", None, reason=str(exc))
            raise
        self.channels[ch].send(msg.pack(self._codecs[ch]), self._peer.get((ch, system)))

    def pump(self) -> None:
        """Read every channel, apply what arrived, and send what is due (heartbeat, stream
        requests, retries). Non-blocking."""
        with self._lock:
            now = self.wall()
            for ch, channel in enumerate(self.channels):
                got = channel.receive(now)
                if len(got) == 1:
                    self._ingest(ch, got[0][0], now, got[0][1])
                    continue
                # one parse per source: MAVLink is a byte stream, and pymavlink's cost is per
                # call as much as per byte (datagrams hold whole frames, so joining them loses
                # nothing; a truncated one costs at most the frame after it, by its CRC)
                by_src: dict[Any, list[bytes]] = {}
                for data, src in got:
                    by_src.setdefault(src, []).append(data)
                for src, chunks in by_src.items():
                    self._ingest(ch, b"".join(chunks), now, src)
            for i in list(self._busy):
                v = self.vehicles[i]
                if v is not None and v.current is not None:
                    v.current.on_time(now)
                    self._advance(v, now)
            if now - self._hb_wall >= GCS_HEARTBEAT_S:
                self._hb_wall = now
                hb = m.MAVLink_heartbeat_message(
                    m.MAV_TYPE_GCS, m.MAV_AUTOPILOT_INVALID, 0, 0, m.MAV_STATE_ACTIVE, 3
                )
                for ch in range(len(self.channels)):
                    self._emit(ch, hb)
                self._ask_streams(now)
            self._report_bad_input(force=False)

    def _ask_streams(self, now: float) -> None:
        """Ask for telemetry from every bound vehicle whose position has gone quiet (ArduPilot
        streams nothing until asked; PX4 streams by default, and takes intervals)."""
        stale = (now - self.position_wall > STREAM_RETRY_S) & (self.heartbeat_wall > -np.inf)
        for i in np.flatnonzero(stale):
            v = self.vehicles[i]
            if v is None or now - v.streams_asked < STREAM_RETRY_S:
                continue
            v.streams_asked = now
            system = v.system
            if self.autopilot[i] == Autopilot.PX4:
                interval_us = 1e6 / self.stream_hz
                for msg_id in (
                    _ID["GLOBAL_POSITION_INT"],
                    _ID["SYS_STATUS"],
                    _ID["EXTENDED_SYS_STATE"],
                    _ID["MISSION_CURRENT"],
                ):
                    self._emit(
                        v.channel,
                        m.MAVLink_command_long_message(
                            system,
                            VEHICLE_COMPONENT,
                            m.MAV_CMD_SET_MESSAGE_INTERVAL,
                            0,
                            msg_id,
                            interval_us,
                            0,
                            0,
                            0,
                            0,
                            0,
                        ),
                        system,
                    )
            else:
                rate = max(1, round(self.stream_hz))
                for stream, hz in (
                    (m.MAV_DATA_STREAM_POSITION, rate),
                    (m.MAV_DATA_STREAM_EXTENDED_STATUS, rate),
                    (m.MAV_DATA_STREAM_EXTRA3, 1),
                ):
                    self._emit(
                        v.channel,
                        m.MAVLink_request_data_stream_message(
                            system, VEHICLE_COMPONENT, stream, hz, 1
                        ),
                        system,
                    )

    def _ingest(self, ch: int, data: bytes, now: float, src: Any = None) -> None:
        """Parse and apply one datagram or stream chunk (the hot path: one dict lookup and a few
        scalar writes per message). Plain MAVLink 2 telemetry takes the fast path
        (:mod:`skysweep.mavlink.fastpath`) unless the link is signed (every frame is then
        verified by pymavlink) or pymavlink holds part of a frame from an earlier chunk."""
        if not self.fast_path or self._codecs[ch].buf_len():
            self._parse(ch, data, now, src)
            return
        route = self._route
        handlers = self._handlers
        for item in fastpath.frames(data):
            if isinstance(item, bytes):
                self._parse(ch, item, now, src)
                continue
            mid, system, component, msg = item
            self.messages += 1
            i = route.get((ch, system))
            if i is not None and component == VEHICLE_COMPONENT:
                handlers[mid](msg, i)
                if mid == _POSITION_ID:
                    self.position_wall[i] = now

    def _parse(self, ch: int, data: bytes, now: float, src: Any = None) -> None:
        """Parse and apply bytes with pymavlink."""
        codec = self._codecs[ch]
        route = self._route
        handlers = self._handlers
        # parse_char once per datagram, again only while bytes are left: most datagrams hold one
        # message, and pymavlink's parse_buffer always pays for a second, empty call
        msg = codec.parse_char(data)
        while msg is not None:
            mid = msg._header.msgId
            if mid < 0:  # BAD_DATA: a broken frame, a bad CRC, a bad or missing signature
                self._bad(ch, _bad_reason(msg))
            else:
                self.messages += 1
                system = msg.get_srcSystem()
                i = route.get((ch, system))
                if mid == 0:
                    self._on_heartbeat(msg, ch, system, i, now)
                    if src is not None:
                        self._peer[(ch, system)] = src
                elif i is not None and msg.get_srcComponent() == VEHICLE_COMPONENT:
                    handler = handlers.get(mid)
                    if handler is not None:
                        handler(msg, i)
                        if mid == _POSITION_ID:
                            self.position_wall[i] = now
                    elif mid in _STEP_MESSAGES:
                        v = self.vehicles[i]
                        if v is not None and v.current is not None:
                            v.current.on_message(msg, now)
                            self._advance(v, now)
            if codec.buf_len() == 0:
                break
            msg = codec.parse_char(b"")

    def _bad(self, ch: int, reason: str) -> None:
        key = (self.channels[ch].name, reason)
        self.bad_input[key] = self.bad_input.get(key, 0) + 1

    def _report_bad_input(self, force: bool) -> None:
        now = self.wall()
        if not force and now - self._bad_report_wall < BAD_INPUT_REPORT_S:
            return
        self._bad_report_wall = now
        for key, count in self.bad_input.items():
            new = count - self._bad_reported.get(key, 0)
            if new:
                self._bad_reported[key] = count
                self._events.append(
                    (
                        now,
                        "link_bad_input",
                        None,
                        {"source": key[0], "reason": key[1], "count": new},
                    )
                )

    def _event(self, kind: str, drone: int | None, **data: Any) -> None:
        self._events.append((self.wall(), kind, drone, data))

    # -- message handlers (validate, then write the table) ---------------------------------------

    def _on_heartbeat(self, msg: Any, ch: int, system: int, i: int | None, now: float) -> None:
        if msg.autopilot == m.MAV_AUTOPILOT_INVALID or msg.type == m.MAV_TYPE_GCS:
            return  # another ground station, a camera or a router: not a vehicle
        if msg.get_srcComponent() != VEHICLE_COMPONENT:
            return
        if msg.autopilot not in (Autopilot.ARDUPILOT, Autopilot.PX4, Autopilot.GENERIC):
            self._bad(ch, "HEARTBEAT: unknown autopilot")
            return
        if (ch, system) not in self.heard:
            self.heard[(ch, system)] = int(msg.autopilot)
            if i is None and (self._explicit or len(self._route) >= self.n):
                self._event(
                    "link_unknown_vehicle", None, source=self.channels[ch].name, system=system
                )
        if i is None:
            return
        self.heartbeat_wall[i] = now
        if now > self._confirm_after[i]:
            self._intent_mode[i] = -1
            self._confirm_after[i] = np.inf
        self.autopilot[i] = msg.autopilot
        self.base_mode[i] = msg.base_mode
        self.custom_mode[i] = msg.custom_mode

    def _on_position(self, msg: Any, i: int) -> None:
        lat, lon = msg.lat, msg.lon
        if lat == 0 and lon == 0:
            self.pos_valid[i] = False  # ArduPilot's "no position yet"
            return
        if not (-900_000_000 <= lat <= 900_000_000 and -1_800_000_000 <= lon <= 1_800_000_000):
            self._bad(self.vehicles[i].channel, "GLOBAL_POSITION_INT: position out of range")  # type: ignore[union-attr]
            return
        alt_mm = msg.relative_alt
        if not -1_000_000 <= alt_mm <= 100_000_000:
            self._bad(self.vehicles[i].channel, "GLOBAL_POSITION_INT: altitude out of range")  # type: ignore[union-attr]
            return
        self.lat_e7[i] = lat
        self.lon_e7[i] = lon
        self.pos_valid[i] = True
        self.rel_alt_m[i] = alt_mm * 1e-3
        v = self.vel_ned[i]
        v[0] = msg.vx * 0.01
        v[1] = msg.vy * 0.01
        v[2] = msg.vz * 0.01

    def _on_sys_status(self, msg: Any, i: int) -> None:
        self._battery(msg.battery_remaining, i, "SYS_STATUS")
        mv = msg.voltage_battery
        if mv != 0xFFFF and mv > 0:
            cells = max(1, round(mv / 1000.0 / 3.9))  # per-cell voltage, as the simulator reports
            self.voltage_v[i] = mv / 1000.0 / cells

    def _on_battery_status(self, msg: Any, i: int) -> None:
        if msg.id == 0:  # the main battery (this message's `id` field is the battery's)
            self._battery(msg.battery_remaining, i, "BATTERY_STATUS")

    def _battery(self, remaining: int, i: int, source: str) -> None:
        if remaining == -1:
            return  # not known
        if not 0 <= remaining <= 100:
            self._bad(self.vehicles[i].channel, f"{source}: battery_remaining out of range")  # type: ignore[union-attr]
            return
        self.battery[i] = remaining / 100.0
        self.battery_known[i] = True

    def _on_extended_state(self, msg: Any, i: int) -> None:
        state = msg.landed_state
        if not 0 <= state <= 4:
            self._bad(self.vehicles[i].channel, "EXTENDED_SYS_STATE: landed_state out of range")  # type: ignore[union-attr]
            return
        self.landed_state[i] = state

    def _on_mission_current(self, msg: Any, i: int) -> None:
        seq = msg.seq
        self.mission_current[i] = seq
        table = self._seq_map[i]
        if table is None:  # a mission skysweep did not start: count from the first waypoint
            self.route_seq[i] = max(seq - ROUTE_FIRST_SEQ, 0)
        else:
            self.route_seq[i] = table[min(seq, len(table) - 1)]

    def _on_statustext(self, msg: Any, i: int) -> None:
        text = msg.text if isinstance(msg.text, str) else str(msg.text)
        if text.startswith("DETECT "):
            parts = text.split()
            try:
                lat_e7, lon_e7, pct = int(parts[1]), int(parts[2]), int(parts[3])
            except (IndexError, ValueError):
                self._bad(self.vehicles[i].channel, "STATUSTEXT: malformed DETECT")  # type: ignore[union-attr]
                return
            if not (
                abs(lat_e7) <= 900_000_000 and abs(lon_e7) <= 1_800_000_000 and 0 <= pct <= 100
            ):
                self._bad(self.vehicles[i].channel, "STATUSTEXT: DETECT out of range")  # type: ignore[union-attr]
                return
            x, y = self.frame.to_local([lon_e7 / 1e7], [lat_e7 / 1e7])
            self._event("detection", i, x_m=float(x[0]), y_m=float(y[0]), confidence=pct / 100.0)
        elif msg.severity <= REPORT_SEVERITY:
            self._event("statustext", i, severity=int(msg.severity), text=text)


class _Then(Step):
    """Run ``fn`` when reached (marks a sequence's success)."""

    name = "then"

    def __init__(self, fn: Callable[[], None]) -> None:
        super().__init__()
        self.fn = fn

    def start(self, now: float) -> None:
        self.fn()
        self.done()


def _set_mode(autopilot: int, mode: AutopilotMode | CopterMode) -> SendCommand:
    name = mode.name
    return SendCommand(m.MAV_CMD_DO_SET_MODE, set_mode_params(autopilot, mode), f"mode {name}")


def _arm() -> SendCommand:
    return SendCommand(m.MAV_CMD_COMPONENT_ARM_DISARM, [1], "arm")


def _mission_start() -> SendCommand:
    # from item 1: the take-off (done at once if already in the air)
    return SendCommand(m.MAV_CMD_MISSION_START, [1, 0], "mission start")


def _bad_reason(msg: Any) -> str:
    reason = str(getattr(msg, "reason", "bad data"))
    if "signature" in reason.lower() or "unsigned" in reason.lower():
        return "signature rejected"
    if "crc" in reason.lower():
        return "bad CRC"
    return "malformed frame"
