"""The built-in simulator served as MAVLink 2 vehicles that behave as ArduPilot Copter, so that
any ground station (QGroundControl, MAVProxy, MAVSDK, skysweep's own
:class:`~skysweep.mavlink.link.MavlinkLink`) can connect to a simulated fleet and fly it.

Addressing: drone ``i`` is system id ``i % per_port + 1`` (component AUTOPILOT1) on UDP port
``base_port + i // per_port``; each port answers whoever talks to it
(:mod:`~skysweep.mavlink.vehicle_ports`).

Time: everything runs in simulated seconds, ``(wall - wall at the first step) × time_scale``;
heartbeats and streams keep their simulated rates, so a ground station whose clock is scaled
alike sees normal rates. Protocol timeouts (mission item requests, command retries) are in
wall seconds, as the ground station's are.

A vehicle's actions are carried out on the :class:`~skysweep.sim.world.World` through its
public commands (upload a route, START_MISSION, RESUME, RETURN, LAND, HOLD, SWAP_BATTERY); the
decisions an autopilot takes on board (hold at a guided target, land or loiter at the end of a
mission, disarm on touchdown) are made here, between the world's fixed steps. What the vehicles
report is in :mod:`~skysweep.mavlink.vehicle_telemetry`, the mission protocol in
:mod:`~skysweep.mavlink.vehicle_missions`, stream rates in
:mod:`~skysweep.mavlink.vehicle_streams`.
"""

from __future__ import annotations

import logging
import math
import select
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from skysweep import mission as mission_mod
from skysweep.errors import LinkError
from skysweep.geo import LocalFrame
from skysweep.mavlink import signing
from skysweep.mavlink import vehicle_telemetry as tx
from skysweep.mavlink.dialect import mavlink as m
from skysweep.mavlink.items import MISSION
from skysweep.mavlink.modes import CopterMode
from skysweep.mavlink.vehicle_autopilot import (
    ACCEPTED,
    DISARM_DELAY_S,
    FAILED,
    GLOBAL_FRAMES,
    Autopilots,
    Cmd,
    as_int,
    sane,
)
from skysweep.mavlink.vehicle_missions import item_of_message
from skysweep.mavlink.vehicle_params import Params, param_name
from skysweep.mavlink.vehicle_ports import Ports
from skysweep.mavlink.vehicle_streams import KIND_OF_MSGID, Kind, Streams
from skysweep.runtime.simulate import sim_world
from skysweep.sim.faults import Fault, load_faults
from skysweep.sim.world import World, warm_up

log = logging.getLogger(__name__)

#: A COMMAND_LONG sent again (confirmation > 0), or a COMMAND_INT sent again, within this many
#: wall seconds of the same command is a retry: it gets the first answer and is not redone.
RETRY_S = 3.0


class VehicleFacade:
    """The drones of ``world`` served as ArduPilot Copter vehicles over UDP (see the module
    docstring); ``frame`` converts the world's local metres to WGS84.

    ``position_fix_s``: simulated seconds until the vehicles have a position estimate (before,
    GLOBAL_POSITION_INT reads lat = lon = 0 and arming is refused). ``swap_s``: simulated
    seconds the ground crew takes to put a fresh pack in a drone that has landed and disarmed.
    ``disarm_delay_s``: a drone armed on the ground disarms after this long without taking off.
    The autopilots' state is :attr:`ap` (:class:`~skysweep.mavlink.vehicle_autopilot.Autopilots`).
    """

    def __init__(
        self,
        world: World,
        frame: LocalFrame,
        *,
        host: str = "127.0.0.1",
        base_port: int = 14550,
        per_port: int = 250,
        time_scale: float = 1.0,
        signing_key: bytes | None = None,
        peers: Sequence[tuple[str, int]] = (),
        position_fix_s: float = 3.0,
        swap_s: float = 0.0,
        disarm_delay_s: float = DISARM_DELAY_S,
    ) -> None:
        if not (math.isfinite(time_scale) and time_scale > 0):
            raise LinkError(f"time_scale must be a positive number, not {time_scale}")
        n = len(world)
        self.world = world
        self.frame = frame
        self.n = n
        self.time_scale = float(time_scale)
        self.position_fix_s = float(position_fix_s)
        self.io = Ports(n, host, base_port, per_port, signing_key, peers)
        self.ports: list[int] = self.io.numbers
        """UDP ports bound: ``base_port``, ``base_port + 1`` …"""
        self.rejected: Counter[str] = self.io.rejected
        """Input refused, by reason: signatures, malformed frames, absurd fields."""
        self.ap = Autopilots(world, frame, self.io.send, swap_s, disarm_delay_s)
        self.streams = Streams(n, float(world.t_s))
        self._closed = False
        self._lock = threading.RLock()
        self._wall0: float | None = None
        self._sim_s = float(world.t_s)
        self.now_s = self._sim_s
        """The simulated time telemetry is being sampled at (within a step: the world's)."""
        self._last_cmd: dict[int, tuple[str, int, float]] = {}
        self._after_ack: list[Callable[[], None]] = []
        self._handlers: dict[int, Callable[[int, Any, float], None]] = {
            m.MAVLINK_MSG_ID_COMMAND_LONG: self._on_command_long,
            m.MAVLINK_MSG_ID_COMMAND_INT: self._on_command_int,
            m.MAVLINK_MSG_ID_SET_MODE: self._on_set_mode,
            m.MAVLINK_MSG_ID_REQUEST_DATA_STREAM: self._on_request_data_stream,
            m.MAVLINK_MSG_ID_SET_POSITION_TARGET_GLOBAL_INT: self._on_position_target,
            m.MAVLINK_MSG_ID_MISSION_COUNT: self._on_mission,
            m.MAVLINK_MSG_ID_MISSION_ITEM_INT: self._on_mission_item,
            m.MAVLINK_MSG_ID_MISSION_ITEM: self._on_mission_item,
            m.MAVLINK_MSG_ID_MISSION_REQUEST_LIST: self._on_mission,
            m.MAVLINK_MSG_ID_MISSION_REQUEST_INT: self._on_mission,
            m.MAVLINK_MSG_ID_MISSION_REQUEST: self._on_mission,
            m.MAVLINK_MSG_ID_MISSION_CLEAR_ALL: self._on_mission,
            m.MAVLINK_MSG_ID_MISSION_SET_CURRENT: self._on_set_current,
            m.MAVLINK_MSG_ID_PARAM_REQUEST_LIST: self._on_param,
            m.MAVLINK_MSG_ID_PARAM_REQUEST_READ: self._on_param,
            m.MAVLINK_MSG_ID_PARAM_SET: self._on_param,
        }
        self.params = Params(self)
        ap = self.ap
        self._commands: dict[int, Callable[[int, Cmd], int]] = {
            m.MAV_CMD_DO_SET_MODE: ap.cmd_set_mode,
            m.MAV_CMD_COMPONENT_ARM_DISARM: ap.cmd_arm,
            m.MAV_CMD_NAV_TAKEOFF: ap.cmd_takeoff,
            m.MAV_CMD_MISSION_START: ap.cmd_mission_start,
            m.MAV_CMD_NAV_RETURN_TO_LAUNCH: lambda i, c: ap.change_mode(i, CopterMode.RTL),
            m.MAV_CMD_NAV_LAND: lambda i, c: ap.change_mode(i, CopterMode.LAND),
            m.MAV_CMD_DO_SET_MISSION_CURRENT: ap.cmd_set_current,
            m.MAV_CMD_DO_REPOSITION: ap.cmd_reposition,
            m.MAV_CMD_SET_MESSAGE_INTERVAL: self._cmd_message_interval,
            m.MAV_CMD_REQUEST_MESSAGE: self._cmd_request_message,
            m.MAV_CMD_GET_HOME_POSITION: lambda i, c: self._request(i, Kind.HOME_POSITION),
            m.MAV_CMD_REQUEST_AUTOPILOT_CAPABILITIES: lambda i, c: self._request(i, None),
        }
        # a request for a message is harmless to redo (and the asker wants the message)
        self._once = frozenset(self._commands) - {
            m.MAV_CMD_REQUEST_MESSAGE,
            m.MAV_CMD_GET_HOME_POSITION,
            m.MAV_CMD_REQUEST_AUTOPILOT_CAPABILITIES,
        }

    @property
    def sim_s(self) -> float:
        """The simulated time the world has been brought to, seconds."""
        return self._sim_s

    @property
    def sent_datagrams(self) -> int:
        return self.io.sent_datagrams

    def sysid(self, drone: int) -> tuple[int, int]:
        """(UDP port, system id) of drone index ``drone``."""
        if not 0 <= drone < self.n:
            raise IndexError(f"no drone {drone} (the fleet has {self.n})")
        return self.io.sysid(drone)

    def step(self, wall_s: float | None = None) -> None:
        """One non-blocking pass: bring the world to the simulated time of ``wall_s`` (wall
        seconds, default: the monotonic clock; the clock starts at the first step), read and
        handle every datagram waiting, and send what is due."""
        with self._lock:
            if self._closed:
                return
            wall = time.monotonic() if wall_s is None else float(wall_s)
            if self._wall0 is None:
                self._wall0 = wall - self._sim_s / self.time_scale
            target = max(self._sim_s, (wall - self._wall0) * self.time_scale)
            self._sample()
            for p, msg in self.io.receive(wall):
                self._handle(p, msg, wall)
            heard = self.io.heard(wall)
            self.ap.missions.on_time(wall)
            if self.ap.missions.absurd:
                self.rejected["absurd field"] += self.ap.missions.absurd
                self.ap.missions.absurd = 0
            self.ap.housekeeping(self.io.up)
            # telemetry is sampled as the world steps, each message at its own time
            w = self.world
            half = 0.5 * w.p.dt_s
            while w.t_s + half < target:
                self.ap.step()
                self._sample()
                self._telemetry(heard)
            self._sim_s = target
            self._sample()
            self._telemetry(heard)
            self.io.flush()

    def _sample(self) -> None:
        """State that follows the world's clock: the sampling time, the position fix, and
        which drones can talk (one that fell, or whose radio is out, neither hears nor
        sends)."""
        w = self.world
        self.now_s = max(self._sim_s, w.t_s)
        self.ap.fix = self.now_s >= self.position_fix_s
        self.io.up = w.alive & (w.link_until <= w.t_s)

    def _telemetry(self, heard: NDArray[np.bool_]) -> None:
        """Detections, and every message due by now from drones that can send to someone."""
        self._detections()
        live = heard & self.io.up
        for kind, encode in tx.ENCODERS.items():
            idx = self.streams.due(kind, self.now_s, live)
            if len(idx):
                encode(self, idx)

    def serve_forever(
        self,
        stop: threading.Event | None = None,
        until_sim_s: float | None = None,
        period_s: float = 0.01,
    ) -> None:
        """Step until ``stop`` is set or the simulated time reaches ``until_sim_s``: every
        ``period_s`` wall seconds, and at once when a datagram arrives."""
        while not (stop is not None and stop.is_set()) and not self._closed:
            self.step()
            if until_sim_s is not None and self._sim_s >= until_sim_s:
                return
            try:
                select.select(self.io.socks, [], [], period_s)
            except (OSError, ValueError):
                return  # closed under us

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self.io.close()

    def _detections(self) -> None:
        """Each detection as a STATUSTEXT ``DETECT <lat_e7> <lon_e7> <confidence %>`` from
        the drone that made it (the World holds them back while its radio is out)."""
        found = [e for e in self.world.take_events() if e.kind == "detection"]
        if not found:
            return
        x = np.array([float(e.data["x_m"]) for e in found])
        y = np.array([float(e.data["y_m"]) for e in found])
        lon, lat = self.frame.to_lonlat(x, y)
        lat_e7 = np.rint(lat * 1e7).astype(np.int64).tolist()
        lon_e7 = np.rint(lon * 1e7).astype(np.int64).tolist()
        for e, la, lo in zip(found, lat_e7, lon_e7, strict=True):
            pct = round(100.0 * min(max(float(e.data["confidence"]), 0.0), 1.0))
            if e.drone is not None:
                self.ap.text(e.drone, m.MAV_SEVERITY_INFO, f"DETECT {la} {lo} {pct}")

    # -- messages -------------------------------------------------------------------------------

    def _handle(self, p: int, msg: Any, wall: float) -> None:
        handler = self._handlers.get(msg.get_msgId())
        if handler is None:
            return  # heartbeats, unknown messages and the rest need no answer
        try:
            handler(p, msg, wall)
        except (ValueError, OverflowError, TypeError):
            self.rejected["absurd field"] += 1  # a NaN or a huge number where none belongs
        except Exception:  # one bad message must never stop the fleet
            log.exception("handling %s", msg.get_type())
            self.rejected["internal error"] += 1

    def _on_command_long(self, p: int, msg: Any, wall: float) -> None:
        params = tuple(float(getattr(msg, f"param{k}")) for k in range(1, 8))
        cmd = Cmd(int(msg.command), params, None, None, _src(msg))
        for i in self.io.targets(p, msg.target_system, msg.target_component):
            self._command(i, cmd, int(msg.confirmation) > 0, wall)

    def _on_command_int(self, p: int, msg: Any, wall: float) -> None:
        x, y = int(msg.x), int(msg.y)
        params = (msg.param1, msg.param2, msg.param3, msg.param4, x, y, msg.z)
        cmd = Cmd(int(msg.command), tuple(map(float, params)), (x, y), int(msg.frame), _src(msg))
        # COMMAND_INT has no confirmation count: the same command again soon is a retry
        for i in self.io.targets(p, msg.target_system, msg.target_component):
            self._command(i, cmd, True, wall)

    def _command(self, i: int, cmd: Cmd, maybe_retry: bool, wall: float) -> None:
        key = repr((cmd.command, cmd.params, cmd.frame))
        last = self._last_cmd.get(i)
        if (
            maybe_retry
            and last is not None
            and last[0] == key
            and wall - last[2] < RETRY_S
            and cmd.command in self._once
        ):
            result = last[1]
        else:
            handler = self._commands.get(cmd.command)
            result = int(m.MAV_RESULT_UNSUPPORTED) if handler is None else handler(i, cmd)
            self._last_cmd[i] = (key, result, wall)
        self._ack(i, cmd.command, result, cmd.src)
        after, self._after_ack = self._after_ack, []
        for fn in after:
            fn()

    def _ack(self, i: int, command: int, result: int, src: tuple[int, int]) -> None:
        self.io.send(i, m.MAVLink_command_ack_message(command, result, 0, 0, src[0], src[1]))

    def _on_set_mode(self, p: int, msg: Any, wall: float) -> None:
        for i in self.io.targets(p, msg.target_system, 0):
            if msg.base_mode & m.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED:
                result = self.ap.change_mode(i, int(msg.custom_mode))
            else:
                result = FAILED
            # ArduPilot answers the SET_MODE message with a COMMAND_ACK for its message id
            self._ack(i, m.MAVLINK_MSG_ID_SET_MODE, result, _src(msg))

    def _on_request_data_stream(self, p: int, msg: Any, wall: float) -> None:
        if msg.start_stop not in (0, 1):
            self.rejected["absurd field"] += 1
            return
        hz = float(msg.req_message_rate) if msg.start_stop == 1 else 0.0
        drones = self.io.targets(p, msg.target_system, msg.target_component)
        if drones and not self.streams.request_stream(drones, msg.req_stream_id, hz, self.now_s):
            self.rejected["absurd field"] += 1

    def _on_position_target(self, p: int, msg: Any, wall: float) -> None:
        """SET_POSITION_TARGET_GLOBAL_INT: a GUIDED target, position only (ArduPilot ignores
        it outside GUIDED and on the ground)."""
        mask = int(msg.type_mask)
        ap = self.ap
        for i in self.io.targets(p, msg.target_system, msg.target_component):
            if ap.cmode[i] != CopterMode.GUIDED or not ap.flying(i):
                continue
            if mask & 0b111 == 0b111 or msg.coordinate_frame not in GLOBAL_FRAMES:
                self.rejected["unsupported set-point"] += 1
                continue
            lat, lon, alt = ap.here(i)
            if not mask & 0b011:
                lat, lon = int(msg.lat_int), int(msg.lon_int)
            if not mask & 0b100:
                alt = float(msg.alt)
            if not sane(lat, lon, alt):
                self.rejected["absurd field"] += 1
                continue
            ap.goto(i, lat, lon, alt)

    def _on_mission(self, p: int, msg: Any, wall: float) -> None:
        """MISSION_COUNT, MISSION_REQUEST_LIST, MISSION_REQUEST(_INT), MISSION_CLEAR_ALL."""
        kind = int(getattr(msg, "mission_type", MISSION))
        name = msg.get_type()
        server = self.ap.missions
        gcs = _src(msg)
        for i in self.io.targets(p, msg.target_system, msg.target_component):
            if name == "MISSION_COUNT":
                server.on_count(i, gcs, int(msg.count), kind, wall)
            elif name == "MISSION_REQUEST_LIST":
                server.on_request_list(i, gcs, kind)
            elif name == "MISSION_CLEAR_ALL":
                server.on_clear(i, gcs, kind)
            else:
                server.on_request(i, gcs, int(msg.seq), kind)

    def _on_mission_item(self, p: int, msg: Any, wall: float) -> None:
        item = item_of_message(msg)
        ap = self.ap
        for i in self.io.targets(p, msg.target_system, msg.target_component):
            if ap.missions.on_item(i, item, wall) or int(msg.current) != 2:
                continue
            # no upload under way: ArduPilot takes an item marked current=2 as a GUIDED target
            # (what MAVProxy's "guided" command sends)
            ok = (
                item.mission_type == MISSION
                and ap.cmode[i] == CopterMode.GUIDED
                and ap.flying(i)
                and sane(item.lat_e7, item.lon_e7, item.alt_m)
            )
            if ok:
                ap.goto(i, item.lat_e7, item.lon_e7, item.alt_m)
            result = m.MAV_MISSION_ACCEPTED if ok else m.MAV_MISSION_ERROR
            gcs = _src(msg)
            self.io.send(i, m.MAVLink_mission_ack_message(gcs[0], gcs[1], result, MISSION))

    def _on_param(self, p: int, msg: Any, wall: float) -> None:
        """PARAM_REQUEST_LIST, PARAM_REQUEST_READ, PARAM_SET (see :mod:`vehicle_params`)."""
        name = msg.get_type()
        for i in self.io.targets(p, msg.target_system, msg.target_component):
            if name == "PARAM_REQUEST_LIST":
                self.params.on_request_list(i)
            elif name == "PARAM_REQUEST_READ":
                self.params.on_request_read(i, param_name(msg.param_id), int(msg.param_index))
            else:
                self.params.on_set(i, param_name(msg.param_id))

    def _on_set_current(self, p: int, msg: Any, wall: float) -> None:
        """MISSION_SET_CURRENT (the message): as the command, answered with MISSION_CURRENT."""
        for i in self.io.targets(p, msg.target_system, msg.target_component):
            if self.ap.set_current(i, int(msg.seq)) == ACCEPTED:
                tx.mission_current(self, np.array([i], np.intp))

    def _cmd_message_interval(self, i: int, c: Cmd) -> int:
        msg_id = as_int(c.params[0])
        kind = KIND_OF_MSGID.get(msg_id) if msg_id is not None else None
        if kind is None or not math.isfinite(c.params[1]):
            return int(m.MAV_RESULT_DENIED)
        self.streams.set_interval([i], kind, c.params[1], self.now_s)
        return ACCEPTED

    def _cmd_request_message(self, i: int, c: Cmd) -> int:
        msg_id = as_int(c.params[0])
        if msg_id == m.MAVLINK_MSG_ID_AUTOPILOT_VERSION:
            return self._request(i, None)
        kind = KIND_OF_MSGID.get(msg_id) if msg_id is not None else None
        return FAILED if kind is None else self._request(i, kind)

    def _request(self, i: int, kind: Kind | None) -> int:
        """Send a message (``None``: AUTOPILOT_VERSION) once, after the COMMAND_ACK, as
        ArduPilot orders them."""
        if kind is None:
            self._after_ack.append(lambda: tx.autopilot_version(self, i))
        else:
            encode = tx.ENCODERS[kind]
            self._after_ack.append(lambda: encode(self, np.array([i], np.intp)))
        return ACCEPTED


def _src(msg: Any) -> tuple[int, int]:
    return msg.get_srcSystem(), msg.get_srcComponent()


# -- serving a mission file -----------------------------------------------------------------------


def mission_world(
    mission: mission_mod.Mission,
    seed: int = 0,
    faults: Sequence[Fault] = (),
    count: int | None = None,
) -> World:
    """The simulated fleet of ``mission`` on its pads, as ``skysweep sim`` builds it, cut to
    the first ``count`` drones (on their own pads; faults naming other drones are dropped)."""
    size = len(mission.fleet)
    if count is not None and not 1 <= count <= size:
        raise LinkError(f"cannot serve {count} vehicles: the mission's fleet has {size} drones")
    if count is None or count == size:
        return sim_world(mission, seed, faults)
    full = sim_world(mission, seed, ())
    p = full.p
    params = replace(
        p,
        speed_mps=p.speed_mps[:count],
        endurance_s=p.endurance_s[:count],
        climb_mps=p.climb_mps[:count],
        accel_mps2=p.accel_mps2[:count],
        home_m=p.home_m[:count],
        swath_m=None if p.swath_m is None else p.swath_m[:count],
    )
    ids = full.ids[:count]
    kept = [f for f in faults if f.drone is None or f.drone in ids]
    return World(params, seed, targets=full.targets, faults=kept, fence=full.fence, drone_ids=ids)


def serve(
    mission_path: str | Path,
    *,
    seed: int = 0,
    faults_path: str | Path | None = None,
    host: str = "127.0.0.1",
    base_port: int = 14550,
    count: int | None = None,
    time_scale: float = 1.0,
    signing_key_path: str | Path | None = None,
    peers: Sequence[tuple[str, int]] = (),
) -> VehicleFacade:
    """A :class:`VehicleFacade` for the fleet of a mission file (the first ``count`` drones),
    every drone on its pad, ready to :meth:`~VehicleFacade.serve_forever`."""
    mission = mission_mod.load(mission_path)
    faults = load_faults(faults_path, mission.fleet.ids) if faults_path is not None else []
    world = mission_world(mission, seed, faults, count)
    key = signing.load_key(signing_key_path) if signing_key_path is not None else None
    # compiled before the first heartbeat: a first flight stalled by the compiler for
    # seconds is a whole fleet silent past a ground station's lost-link timeout
    warm_up(world)
    return VehicleFacade(
        world,
        mission.frame,
        host=host,
        base_port=base_port,
        time_scale=time_scale,
        signing_key=key,
        peers=peers,
    )
