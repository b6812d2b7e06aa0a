"""The simulator served as ArduPilot Copter vehicles (skysweep.mavlink.vehicles), driven over real
UDP sockets on 127.0.0.1 by a raw pymavlink ground station in this process.

The façade is stepped with a fake wall clock (``Bench``), so that simulated time, protocol
timeouts and what arrives when are deterministic and the tests run as fast as the CPU allows;
one test runs ``serve_forever`` in a thread on the real clock.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from udp_ports import free_base_port

from skysweep import mission as mission_mod
from skysweep.mavlink import signing
from skysweep.mavlink.dialect import GCS_COMPONENT, GCS_SYSTEM, new_mav
from skysweep.mavlink.dialect import mavlink as m
from skysweep.mavlink.items import FENCE, MISSION, Item, fence_items, route_items
from skysweep.mavlink.modes import CopterMode
from skysweep.mavlink.vehicle_missions import MAX_REQUESTS, RALLY
from skysweep.mavlink.vehicles import VehicleFacade, mission_world, serve
from skysweep.plan import plan_mission
from skysweep.telemetry import AutopilotMode

MISSION_YAML = """
name: facade test
area: {type: Polygon, coordinates: [[[8.000, 46.500], [8.006, 46.500], [8.006, 46.504],
       [8.000, 46.504], [8.000, 46.500]]]}
keep_out:
  - name: shed
    geometry: {type: Polygon, coordinates: [[[8.004, 46.5025], [8.0045, 46.5025],
               [8.0045, 46.503], [8.004, 46.503], [8.004, 46.5025]]]}
launch_sites:
  - {name: base, lon: 8.001, lat: 46.5005, pads: 5}
fleet:
  - {model: quad, count: 5, launch_site: base, speed_mps: 12, endurance_s: 900, swath_m: 80}
search: {altitude_m: 30}
simulation: {false_alarms_per_hour: 720, gps_noise_m: 0, targets: []}
"""
KEY = bytes(range(32))
SCALE = 10.0  # simulated seconds per (fake) wall second
REQ = m.MAV_CMD_REQUEST_MESSAGE
#: 3 m in 1e-7 degrees of latitude, and of longitude at 46.5° N
LAT_3M, LON_3M = 270, 390
ARMED = m.MAV_MODE_FLAG_SAFETY_ARMED


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """The simulator's kernels on one thread: a handful of drones gains nothing from more,
    and on a busy machine the threads' hand-offs cost more than the steps."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


@pytest.fixture(scope="module")
def mission_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("facade") / "mission.yaml"
    path.write_text(MISSION_YAML)
    return path


@pytest.fixture(scope="module")
def mission(mission_path: Path) -> mission_mod.Mission:
    return mission_mod.load(mission_path)


@pytest.fixture(scope="module")
def route(mission: mission_mod.Mission) -> np.ndarray:
    """Drone 0's first planned sortie, without its two points on the ground (the take-off and
    the landing are mission items of their own)."""
    sortie = plan_mission(mission).of_drone(0)[0]
    return np.asarray(sortie.path[1:-1])


class Gcs:
    """A pymavlink ground station: one UDP socket talking to one port of the façade."""

    def __init__(self, facade: VehicleFacade, port: int = 0, key: bytes | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.dest = ("127.0.0.1", facade.ports[port])
        self._port_sock = facade.io.socks[port]
        self.mav = new_mav(GCS_SYSTEM, GCS_COMPONENT)
        if key is not None:
            signing.enable(self.mav, key)
        self.got: list[Any] = []
        self.bad = 0

    def send(self, msg: Any) -> bytes:
        data: bytes = msg.pack(self.mav)
        self.mav.seq = (self.mav.seq + 1) & 0xFF
        self.raw(data)
        return data

    def raw(self, data: bytes) -> None:
        """Send bytes, and wait until the façade's socket has them: the fake clock does not
        wait, and a busy kernel may take a moment to deliver even on loopback."""
        self.sock.sendto(data, self.dest)
        select.select([self._port_sock], [], [], 1.0)

    def hello(self) -> None:
        self.send(m.MAVLink_heartbeat_message(m.MAV_TYPE_GCS, m.MAV_AUTOPILOT_INVALID, 0, 0, 4, 3))

    def poll(self) -> None:
        while True:
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                return
            for msg in self.mav.parse_buffer(data) or []:
                if msg.get_msgId() < 0:
                    self.bad += 1
                else:
                    self.got.append(msg)

    def of(self, kind: str, system: int | None = None, since: int = 0) -> list[Any]:
        return [
            x
            for x in self.got[since:]
            if x.get_type() == kind and (system is None or x.get_srcSystem() == system)
        ]


class Bench:
    """A façade and its ground stations on a fake wall clock."""

    def __init__(self, facade: VehicleFacade, *gcs: Gcs) -> None:
        self.f = facade
        self.gcs = list(gcs)
        self.wall = 1000.0

    def step(self, dt_wall: float = 0.02) -> None:
        self.wall += dt_wall
        sent = self.f.sent_datagrams
        self.f.step(self.wall)
        if self.f.sent_datagrams > sent:  # let the kernel deliver them (see Gcs.raw)
            select.select([g.sock for g in self.gcs], [], [], 0.2)
        for g in self.gcs:
            g.poll()

    def run(self, sim_s: float, dt_wall: float = 0.05) -> None:
        end = self.f.sim_s + sim_s
        while self.f.sim_s < end - 1e-9:
            self.step(dt_wall)

    def wait(
        self,
        g: Gcs,
        kinds: str | Iterable[str],
        ok: Callable[[Any], bool] = lambda x: True,
        sim_s: float = 30.0,
        dt_wall: float = 0.02,
        since: int | None = None,
    ) -> Any:
        """The first message of ``kinds`` for which ``ok`` holds, received from now on (or
        since message number ``since``)."""
        names = {kinds} if isinstance(kinds, str) else set(kinds)
        seen = len(g.got) if since is None else since
        end = self.f.sim_s + sim_s
        while True:
            for x in g.got[seen:]:
                if x.get_type() in names and ok(x):
                    return x
            seen = len(g.got)
            if self.f.sim_s >= end:
                raise AssertionError(f"no {names} within {sim_s} simulated seconds")
            self.step(dt_wall)


@pytest.fixture
def make(mission: mission_mod.Mission) -> Any:
    made: list[VehicleFacade] = []

    def build(per_port: int = 250, **kw: Any) -> VehicleFacade:
        world = mission_world(mission, seed=1)
        ports = -(-len(world) // per_port)
        kw.setdefault("time_scale", SCALE)
        facade = VehicleFacade(
            world, mission.frame, base_port=free_base_port(ports), per_port=per_port, **kw
        )
        made.append(facade)
        return facade

    yield build
    for f in made:
        f.close()
        assert f.rejected["internal error"] == 0


def command(bench: Bench, g: Gcs, system: int, cmd: int, *params: float, conf: int = 0) -> int:
    p = [float(v) for v in params] + [0.0] * (7 - len(params))
    g.send(m.MAVLink_command_long_message(system, 1, cmd, conf, *p))
    ack = bench.wait(g, "COMMAND_ACK", lambda a: a.command == cmd and a.get_srcSystem() == system)
    assert (ack.target_system, ack.target_component) == (GCS_SYSTEM, GCS_COMPONENT)
    return int(ack.result)


def set_mode(bench: Bench, g: Gcs, system: int, mode: CopterMode) -> int:
    flag = m.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
    return command(bench, g, system, m.MAV_CMD_DO_SET_MODE, flag, int(mode))


def upload(bench: Bench, g: Gcs, system: int, items: list[Item], kind: int = MISSION) -> int:
    """The ground station's side of a mission upload; the vehicle's MISSION_ACK type."""
    g.send(m.MAVLink_mission_count_message(system, 1, len(items), kind))
    while True:
        msg = bench.wait(
            g, ("MISSION_REQUEST_INT", "MISSION_ACK"), lambda x: x.get_srcSystem() == system
        )
        assert msg.mission_type == kind
        if msg.get_type() == "MISSION_ACK":
            return int(msg.type)
        g.send(items[msg.seq].message(g.mav, system, 1))


def download(bench: Bench, g: Gcs, system: int, kind: int = MISSION) -> list[Item]:
    g.send(m.MAVLink_mission_request_list_message(system, 1, kind))
    count = bench.wait(g, "MISSION_COUNT", by(system)).count
    items = []
    for seq in range(count):
        g.send(m.MAVLink_mission_request_int_message(system, 1, seq, kind))
        msg = bench.wait(g, "MISSION_ITEM_INT", lambda x, s=seq: x.seq == s)
        items.append(Item.of(msg))
    g.send(m.MAVLink_mission_ack_message(system, 1, m.MAV_MISSION_ACCEPTED, kind))
    return items


def by(system: int, ok: Callable[[Any], bool] = lambda x: True) -> Callable[[Any], bool]:
    """A message from ``system`` for which ``ok`` holds."""
    return lambda x: x.get_srcSystem() == system and ok(x)


def heartbeat(bench: Bench, g: Gcs, system: int) -> Any:
    return bench.wait(g, "HEARTBEAT", by(system))


def take_off(bench: Bench, g: Gcs, system: int, alt: float) -> None:
    bench.run(3.5)  # the position estimate is valid after 3 s
    assert set_mode(bench, g, system, CopterMode.GUIDED) == m.MAV_RESULT_ACCEPTED
    assert command(bench, g, system, m.MAV_CMD_COMPONENT_ARM_DISARM, 1) == m.MAV_RESULT_ACCEPTED
    result = command(bench, g, system, m.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, alt)
    assert result == m.MAV_RESULT_ACCEPTED


def pad_e7(mission: mission_mod.Mission, drone: int) -> tuple[int, int]:
    lon, lat = mission.frame.to_lonlat(
        mission.pad_xy_m[drone : drone + 1, 0], mission.pad_xy_m[drone : drone + 1, 1]
    )
    return round(float(lat[0]) * 1e7), round(float(lon[0]) * 1e7)


# -- streams, position fix, arming -------------------------------------------------------------


def test_only_heartbeats_until_streams_are_asked_for(make: Any) -> None:
    f = make()
    g = Gcs(f)
    bench = Bench(f, g)
    g.hello()
    bench.run(5.0)
    kinds = {x.get_type() for x in g.got}
    assert kinds == {"HEARTBEAT"}
    for system in range(1, 6):
        beats = g.of("HEARTBEAT", system)
        assert 4 <= len(beats) <= 6  # 1 Hz of simulated time
        hb = beats[-1]
        assert (hb.type, hb.autopilot) == (m.MAV_TYPE_QUADROTOR, m.MAV_AUTOPILOT_ARDUPILOTMEGA)
        assert hb.custom_mode == CopterMode.STABILIZE
        assert hb.system_status == m.MAV_STATE_STANDBY
        assert hb.base_mode & m.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
        assert not hb.base_mode & m.MAV_MODE_FLAG_SAFETY_ARMED

    # a stream group for one vehicle, at its rate in simulated time
    g.send(m.MAVLink_request_data_stream_message(2, 1, m.MAV_DATA_STREAM_POSITION, 4, 1))
    mark = len(g.got)
    bench.run(10.0)
    positions = g.of("GLOBAL_POSITION_INT", since=mark)
    assert {x.get_srcSystem() for x in positions} == {2}
    assert 36 <= len(positions) <= 41
    assert not g.of("SYS_STATUS", since=mark)
    # stopped, nothing more
    g.send(m.MAVLink_request_data_stream_message(2, 1, m.MAV_DATA_STREAM_POSITION, 4, 0))
    bench.run(1.0)
    mark = len(g.got)
    bench.run(5.0)
    assert not g.of("GLOBAL_POSITION_INT", since=mark)

    # one message by its interval (1 Hz), then off
    result = command(
        bench, g, 3, m.MAV_CMD_SET_MESSAGE_INTERVAL, m.MAVLINK_MSG_ID_BATTERY_STATUS, 1e6
    )
    assert result == m.MAV_RESULT_ACCEPTED
    mark = len(g.got)
    bench.run(10.0)
    batteries = g.of("BATTERY_STATUS", since=mark)
    assert {x.get_srcSystem() for x in batteries} == {3}
    assert 9 <= len(batteries) <= 11
    assert batteries[-1].battery_remaining == 100
    assert 3.5 < batteries[-1].voltages[0] / 1000 < 4.3  # per cell, a 4S pack
    result = command(
        bench, g, 3, m.MAV_CMD_SET_MESSAGE_INTERVAL, m.MAVLINK_MSG_ID_BATTERY_STATUS, -1
    )
    assert result == m.MAV_RESULT_ACCEPTED
    bench.run(1.0)
    mark = len(g.got)
    bench.run(5.0)
    assert not g.of("BATTERY_STATUS", since=mark)
    # a message it does not have is refused; an unknown command is unsupported
    assert command(bench, g, 3, m.MAV_CMD_SET_MESSAGE_INTERVAL, 9999, 1e6) == m.MAV_RESULT_DENIED
    assert command(bench, g, 3, m.MAV_CMD_DO_SET_SERVO, 1, 1500) == m.MAV_RESULT_UNSUPPORTED
    # everything on the extended status stream, for every vehicle of the port (system 0)
    g.send(m.MAVLink_request_data_stream_message(0, 0, m.MAV_DATA_STREAM_EXTENDED_STATUS, 1, 1))
    mark = len(g.got)
    bench.run(3.0)
    for kind in ("SYS_STATUS", "MISSION_CURRENT", "EXTENDED_SYS_STATE"):
        assert {x.get_srcSystem() for x in g.of(kind, since=mark)} == {1, 2, 3, 4, 5}
    status = g.of("SYS_STATUS", 1)[-1]
    assert status.battery_remaining == 100 and 14_000 < status.voltage_battery < 17_200
    # a nearly flat pack: the heartbeat says CRITICAL
    f.world.charge[4] = 0.05
    hb = bench.wait(g, "HEARTBEAT", by(5))
    assert hb.system_status == m.MAV_STATE_CRITICAL
    assert bench.wait(g, "SYS_STATUS", by(5)).battery_remaining == 5


def test_no_position_and_no_arming_until_the_fix(make: Any, mission: mission_mod.Mission) -> None:
    f = make(position_fix_s=3.0)
    g = Gcs(f)
    bench = Bench(f, g)
    g.send(m.MAVLink_request_data_stream_message(1, 1, m.MAV_DATA_STREAM_POSITION, 5, 1))
    bench.run(1.0)
    early = g.of("GLOBAL_POSITION_INT", 1)
    assert early and all(x.lat == 0 and x.lon == 0 for x in early)
    assert command(bench, g, 1, m.MAV_CMD_COMPONENT_ARM_DISARM, 1) == m.MAV_RESULT_DENIED
    texts = [x.text for x in g.of("STATUSTEXT", 1)]
    assert "PreArm: Need Position Estimate" in texts
    assert set_mode(bench, g, 1, CopterMode.GUIDED) == m.MAV_RESULT_FAILED  # needs a position
    assert f.sim_s < 3.0
    bench.run(3.0)
    late = g.of("GLOBAL_POSITION_INT", 1)[-1]
    assert (late.lat, late.lon) == pad_e7(mission, 0)
    assert late.relative_alt == 0
    # AUTO may be entered on the ground, but ArduPilot will not arm in it
    assert set_mode(bench, g, 1, CopterMode.AUTO) == m.MAV_RESULT_ACCEPTED
    assert command(bench, g, 1, m.MAV_CMD_COMPONENT_ARM_DISARM, 1) == m.MAV_RESULT_DENIED
    assert "Arm: Mode not armable" in [x.text for x in g.of("STATUSTEXT", 1)]
    # the SET_MODE message too: ArduPilot acks it as a "command" numbered as the message
    flag = m.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
    g.send(m.MAVLink_set_mode_message(1, flag, int(CopterMode.LOITER)))
    ack = bench.wait(g, "COMMAND_ACK", by(1))
    assert (ack.command, ack.result) == (m.MAVLINK_MSG_ID_SET_MODE, m.MAV_RESULT_ACCEPTED)
    assert heartbeat(bench, g, 1).custom_mode == CopterMode.LOITER
    assert set_mode(bench, g, 1, CopterMode.GUIDED) == m.MAV_RESULT_ACCEPTED
    assert command(bench, g, 1, m.MAV_CMD_COMPONENT_ARM_DISARM, 1) == m.MAV_RESULT_ACCEPTED
    hb = heartbeat(bench, g, 1)
    assert hb.base_mode & m.MAV_MODE_FLAG_SAFETY_ARMED and hb.custom_mode == CopterMode.GUIDED
    # a take-off downwards is refused; armed and never taking off, it disarms after 10 s
    assert command(bench, g, 1, m.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, 0) == m.MAV_RESULT_FAILED
    bench.run(11.0)
    assert not heartbeat(bench, g, 1).base_mode & m.MAV_MODE_FLAG_SAFETY_ARMED
    assert not f.ap.armed[0]


# -- the mission protocol ------------------------------------------------------------------------


def test_mission_and_fence_round_trip(
    make: Any, mission: mission_mod.Mission, route: np.ndarray
) -> None:
    f = make()
    g = Gcs(f)
    bench = Bench(f, g)
    # item 0 as a ground station sends it: not the vehicle's home
    items = route_items(route, mission.pad_xy_m[1] + 500.0, mission.frame)
    assert upload(bench, g, 2, items) == m.MAV_MISSION_ACCEPTED
    back = download(bench, g, 2)
    assert len(back) == len(items)
    assert all(a.same_as(b, check_home=False) for a, b in zip(items, back, strict=True))
    assert (back[0].lat_e7, back[0].lon_e7) == pad_e7(mission, 1)  # item 0 is the real home
    assert back[0].command == m.MAV_CMD_NAV_WAYPOINT
    # the legacy MISSION_REQUEST is answered too
    g.send(m.MAVLink_mission_request_message(2, 1, 3, MISSION))
    assert Item.of(bench.wait(g, "MISSION_ITEM_INT", by(2))).same_as(items[3])
    only = download(bench, g, 1)  # no mission there: only its home
    assert len(only) == 1 and (only[0].lat_e7, only[0].lon_e7) == pad_e7(mission, 0)
    # the fence, kept and given back
    keep_in = mission.frame.geom_to_lonlat(mission.keep_in)
    keep_out = [mission.frame.geom_to_lonlat(z.geometry) for z in mission.keep_out]
    fence = fence_items(keep_in, keep_out)
    assert upload(bench, g, 2, fence, FENCE) == m.MAV_MISSION_ACCEPTED
    assert download(bench, g, 2, FENCE) == fence
    assert download(bench, g, 2, RALLY) == []
    # a fence polygon that does not add up is refused
    broken = [
        Item(k, it.command, it.frame, 9.0, lat_e7=it.lat_e7, lon_e7=it.lon_e7, mission_type=FENCE)
        for k, it in enumerate(fence[:4])
    ]
    assert upload(bench, g, 2, broken, FENCE) == m.MAV_MISSION_ERROR
    assert download(bench, g, 2, FENCE) == fence
    # clearing
    g.send(m.MAVLink_mission_clear_all_message(2, 1, MISSION))
    assert bench.wait(g, "MISSION_ACK").type == m.MAV_MISSION_ACCEPTED
    assert len(download(bench, g, 2)) == 1
    # an absurd count is refused and counted
    g.send(m.MAVLink_mission_count_message(2, 1, 60_000, MISSION))
    assert bench.wait(g, "MISSION_ACK").type == m.MAV_MISSION_NO_SPACE
    bench.step()
    assert f.rejected["absurd field"] >= 1


def test_a_lost_request_is_sent_again_then_the_upload_is_cancelled(
    make: Any, mission: mission_mod.Mission, route: np.ndarray
) -> None:
    f = make()
    g = Gcs(f)
    bench = Bench(f, g)
    items = route_items(route, mission.pad_xy_m[0], mission.frame)
    g.send(m.MAVLink_mission_count_message(1, 1, len(items), MISSION))
    first = bench.wait(g, "MISSION_REQUEST_INT")
    assert first.seq == 0
    t0 = bench.wall
    # the ground station never got it: the vehicle asks again after about a second (wall)
    again = bench.wait(g, "MISSION_REQUEST_INT", sim_s=100.0)
    assert again.seq == 0
    assert 0.9 <= bench.wall - t0 <= 1.2
    mark = len(g.got)
    for it in items:
        g.send(it.message(g.mav, 1, 1))
        bench.step()
    ack = bench.wait(g, "MISSION_ACK", since=mark)
    assert ack.type == m.MAV_MISSION_ACCEPTED
    assert len(download(bench, g, 1)) == len(items)
    # a ground station that goes silent: asked MAX_REQUESTS times, then cancelled
    g.send(m.MAVLink_mission_count_message(1, 1, 3, MISSION))
    mark = len(g.got)
    ack = bench.wait(g, "MISSION_ACK", sim_s=200.0)
    assert ack.type == m.MAV_MISSION_OPERATION_CANCELLED
    assert len(g.of("MISSION_REQUEST_INT", since=mark)) == MAX_REQUESTS
    assert len(download(bench, g, 1)) == len(items)  # the mission on board is unchanged


def test_an_item_out_of_order_is_asked_for_again(
    make: Any, mission: mission_mod.Mission, route: np.ndarray
) -> None:
    f = make()
    g = Gcs(f)
    bench = Bench(f, g)
    items = route_items(route[:3], mission.pad_xy_m[0], mission.frame)
    g.send(m.MAVLink_mission_count_message(1, 1, len(items), MISSION))
    assert bench.wait(g, "MISSION_REQUEST_INT").seq == 0
    g.send(items[0].message(g.mav, 1, 1))
    assert bench.wait(g, "MISSION_REQUEST_INT").seq == 1
    wall = bench.wall
    g.send(items[3].message(g.mav, 1, 1))  # not the one asked for
    assert bench.wait(g, "MISSION_REQUEST_INT").seq == 1
    assert bench.wall - wall < 0.5  # at once, not after a timeout
    mark = len(g.got)
    for it in items[1:]:
        g.send(it.message(g.mav, 1, 1))
        bench.step()
    assert bench.wait(g, "MISSION_ACK", since=mark).type == m.MAV_MISSION_ACCEPTED
    back = download(bench, g, 1)
    assert all(a.same_as(b, check_home=False) for a, b in zip(items, back, strict=True))


# -- flying ------------------------------------------------------------------------------------


def test_fly_a_planned_sortie(make: Any, mission: mission_mod.Mission, route: np.ndarray) -> None:
    f = make()
    g = Gcs(f)
    bench = Bench(f, g)
    items = route_items(route, mission.pad_xy_m[0], mission.frame)
    assert upload(bench, g, 1, items) == m.MAV_MISSION_ACCEPTED
    g.send(m.MAVLink_request_data_stream_message(1, 1, m.MAV_DATA_STREAM_ALL, 2, 1))
    take_off(bench, g, 1, 30.0)
    # a retry of the take-off (confirmation 1) gets the same answer and is not done again
    retry = command(bench, g, 1, m.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, 30, conf=1)
    assert retry == m.MAV_RESULT_ACCEPTED
    state = bench.wait(g, "EXTENDED_SYS_STATE", by(1))
    assert state.landed_state == m.MAV_LANDED_STATE_TAKEOFF
    bench.wait(g, "GLOBAL_POSITION_INT", lambda x: x.relative_alt > 29_000, sim_s=30.0)
    bench.run(5.0)
    pos = g.of("GLOBAL_POSITION_INT", 1)[-1]
    assert abs(pos.relative_alt - 30_000) < 600 and (pos.lat, pos.lon) == pad_e7(mission, 0)
    assert heartbeat(bench, g, 1).custom_mode == CopterMode.GUIDED
    assert g.of("EXTENDED_SYS_STATE", 1)[-1].landed_state == m.MAV_LANDED_STATE_IN_AIR
    # the mission from item 1: the take-off is done (already up), then the route
    mark = len(g.got)
    assert command(bench, g, 1, m.MAV_CMD_MISSION_START, 1, 0) == m.MAV_RESULT_ACCEPTED
    hb = heartbeat(bench, g, 1)
    assert hb.custom_mode == CopterMode.AUTO and hb.system_status == m.MAV_STATE_ACTIVE
    landed = bench.wait(
        g, "HEARTBEAT", by(1, lambda x: not x.base_mode & ARMED), sim_s=600.0,
        dt_wall=0.05,
    )  # fmt: skip
    assert landed.custom_mode == CopterMode.AUTO  # ArduPilot keeps the mode after landing
    seqs = [x.seq for x in g.of("MISSION_CURRENT", 1, since=mark)]
    assert seqs == sorted(seqs)  # it only moves on
    # every waypoint (the first is where the take-off left it), then the LAND item
    assert seqs[0] >= 2 and set(range(3, len(items))) <= set(seqs)
    assert seqs[-1] == len(items) - 1
    pos = g.of("GLOBAL_POSITION_INT", 1)[-1]
    assert pos.relative_alt < 100
    lat0, lon0 = pad_e7(mission, 0)
    assert abs(pos.lat - lat0) < LAT_3M and abs(pos.lon - lon0) < LON_3M  # on the pad
    bench.run(2.0)
    assert g.of("EXTENDED_SYS_STATE", 1)[-1].landed_state == m.MAV_LANDED_STATE_ON_GROUND
    assert f.world.charge[0] == 1.0  # the crew swapped the pack (swap_s = 0)
    # the camera's detections, each a STATUSTEXT from the drone, as many as it made
    detects = [x.text.split() for x in g.of("STATUSTEXT", 1) if x.text.startswith("DETECT")]
    truth = [d for d in f.world.truth.detections if d[1] == 0]
    assert len(detects) == len(truth) > 0
    assert [int(d[3]) for d in detects] == [round(100 * t[3]) for t in truth]
    for _, lat, lon, _pct in detects:
        # the area's box, and the few metres past its edge that the camera sees from an edge lane
        assert 464_999_500 < int(lat) < 465_040_500 and 79_999_500 < int(lon) < 80_060_500


def test_a_new_mission_in_flight_keeps_the_item_until_set(
    make: Any, mission: mission_mod.Mission, route: np.ndarray
) -> None:
    f = make()
    g = Gcs(f)
    bench = Bench(f, g)
    items = route_items(route, mission.pad_xy_m[0], mission.frame)
    assert upload(bench, g, 1, items) == m.MAV_MISSION_ACCEPTED
    take_off(bench, g, 1, 30.0)
    bench.run(10.0)
    assert command(bench, g, 1, m.MAV_CMD_MISSION_START, 1, 0) == m.MAV_RESULT_ACCEPTED
    g.send(m.MAVLink_request_data_stream_message(1, 1, m.MAV_DATA_STREAM_EXTENDED_STATUS, 2, 1))
    bench.wait(g, "MISSION_CURRENT", lambda x: x.seq >= 4, sim_s=200.0)
    current = f.ap.current_item(0)
    # the same route shifted 40 m east: ArduPilot flies on from the same item number
    shifted = route + np.array([40.0, 0.0, 0.0])
    new = route_items(shifted, mission.pad_xy_m[0], mission.frame)
    assert upload(bench, g, 1, new) == m.MAV_MISSION_ACCEPTED
    assert f.ap.current_item(0) == current
    k = current - 2
    target = f.world._wp[f.world._wp_first[0] + f.world.seq[0]]
    np.testing.assert_allclose(target, shifted[k], atol=0.05)
    # the ground station then sets the item it wants
    result = command(bench, g, 1, m.MAV_CMD_DO_SET_MISSION_CURRENT, 2)
    assert result == m.MAV_RESULT_ACCEPTED
    assert bench.wait(g, "MISSION_CURRENT", by(1)).seq == 2
    target = f.world._wp[f.world._wp_first[0] + f.world.seq[0]]
    np.testing.assert_allclose(target, shifted[0], atol=0.05)
    assert heartbeat(bench, g, 1).custom_mode == CopterMode.AUTO
    # an item it does not have is refused
    assert command(bench, g, 1, m.MAV_CMD_DO_SET_MISSION_CURRENT, 500) == m.MAV_RESULT_DENIED


def test_return_and_land(make: Any, mission: mission_mod.Mission) -> None:
    f = make()
    g = Gcs(f)
    bench = Bench(f, g)
    g.send(m.MAVLink_request_data_stream_message(0, 0, m.MAV_DATA_STREAM_POSITION, 2, 1))
    g.send(m.MAVLink_request_data_stream_message(1, 1, m.MAV_DATA_STREAM_EXTENDED_STATUS, 2, 1))
    take_off(bench, g, 1, 20.0)
    bench.wait(g, "GLOBAL_POSITION_INT", by(1, lambda x: x.relative_alt > 19_000))
    # fly 120 m north (a GUIDED reposition, COMMAND_INT), then return
    lat0, lon0 = pad_e7(mission, 0)
    _, lat = mission.frame.to_lonlat(mission.pad_xy_m[:1, 0], mission.pad_xy_m[:1, 1] + 120.0)
    far = round(float(lat[0]) * 1e7)
    g.send(
        m.MAVLink_command_int_message(
            1, 1, m.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT, m.MAV_CMD_DO_REPOSITION, 0, 0,
            -1, 0, 0, float("nan"), far, lon0, 20.0,
        )
    )  # fmt: skip
    assert bench.wait(g, "COMMAND_ACK").result == m.MAV_RESULT_ACCEPTED
    bench.wait(g, "GLOBAL_POSITION_INT", by(1, lambda x: abs(x.lat - far) < LAT_3M))
    assert command(bench, g, 1, m.MAV_CMD_NAV_RETURN_TO_LAUNCH) == m.MAV_RESULT_ACCEPTED
    assert heartbeat(bench, g, 1).custom_mode == CopterMode.RTL
    hb = bench.wait(g, "HEARTBEAT", by(1, lambda x: not x.base_mode & ARMED), sim_s=120.0)
    assert hb.custom_mode == CopterMode.RTL  # kept after landing and disarming
    pos = g.of("GLOBAL_POSITION_INT", 1)[-1]
    assert abs(pos.lat - lat0) < LAT_3M and abs(pos.lon - lon0) < LON_3M and pos.relative_alt < 100
    # LAND where it is: take off, move off the pad, land there
    assert set_mode(bench, g, 1, CopterMode.GUIDED) == m.MAV_RESULT_ACCEPTED
    assert command(bench, g, 1, m.MAV_CMD_COMPONENT_ARM_DISARM, 1) == m.MAV_RESULT_ACCEPTED
    assert command(bench, g, 1, m.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, 0, 0, 0, 15) == 0
    bench.wait(g, "GLOBAL_POSITION_INT", by(1, lambda x: x.relative_alt > 14_000))
    result = command(
        bench, g, 1, m.MAV_CMD_DO_REPOSITION, -1, 0, 0, float("nan"), far / 1e7, lon0 / 1e7, 15
    )
    assert result == m.MAV_RESULT_ACCEPTED
    bench.wait(g, "GLOBAL_POSITION_INT", by(1, lambda x: abs(x.lat - far) < LAT_3M))
    assert command(bench, g, 1, m.MAV_CMD_NAV_LAND) == m.MAV_RESULT_ACCEPTED
    state = bench.wait(g, "HEARTBEAT", by(1))
    assert state.custom_mode == CopterMode.LAND and state.base_mode & ARMED
    landing = bench.wait(g, "EXTENDED_SYS_STATE", by(1))
    assert landing.landed_state == m.MAV_LANDED_STATE_LANDING
    bench.wait(g, "HEARTBEAT", by(1, lambda x: not x.base_mode & ARMED), sim_s=60.0)
    pos = g.of("GLOBAL_POSITION_INT", 1)[-1]
    assert abs(pos.lat - far) < LAT_3M and pos.relative_alt < 100  # landed where it was


def test_guided_target_is_held(make: Any, mission: mission_mod.Mission) -> None:
    f = make()
    g = Gcs(f)
    bench = Bench(f, g)
    g.send(m.MAVLink_request_data_stream_message(2, 1, m.MAV_DATA_STREAM_POSITION, 2, 1))
    take_off(bench, g, 2, 20.0)
    bench.wait(g, "GLOBAL_POSITION_INT", by(2, lambda x: x.relative_alt > 19_000))
    x0, y0 = mission.pad_xy_m[1]
    lon, lat = mission.frame.to_lonlat([x0 + 60.0], [y0 + 150.0])
    lat_e7, lon_e7 = round(float(lat[0]) * 1e7), round(float(lon[0]) * 1e7)
    mask = 0b0000_1111_1111_1000  # position only
    frame = m.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT
    target = m.MAVLink_set_position_target_global_int_message(
        0, 2, 1, frame, mask, lat_e7, lon_e7, 25.0, 0, 0, 0, 0, 0, 0, 0, 0
    )
    # ignored outside GUIDED
    assert set_mode(bench, g, 2, CopterMode.LOITER) == m.MAV_RESULT_ACCEPTED
    g.send(target)
    bench.run(10.0)
    assert abs(g.of("GLOBAL_POSITION_INT", 2)[-1].lat - lat_e7) > 1000
    assert set_mode(bench, g, 2, CopterMode.GUIDED) == m.MAV_RESULT_ACCEPTED
    g.send(target)
    bench.wait(
        g,
        "GLOBAL_POSITION_INT",
        by(2, lambda x: abs(x.lat - lat_e7) < LAT_3M),
        sim_s=60.0,
    )
    mark = len(g.got)
    bench.run(30.0)
    held = g.of("GLOBAL_POSITION_INT", 2, since=mark)
    assert len(held) >= 55
    assert all(abs(x.lat - lat_e7) < LAT_3M and abs(x.lon - lon_e7) < LON_3M for x in held)
    assert all(abs(x.relative_alt - 25_000) < 600 for x in held)
    assert heartbeat(bench, g, 2).custom_mode == CopterMode.GUIDED
    assert f.world.mode[1] == AutopilotMode.HOLD  # holding, not landing
    # an absurd target is counted and ignored
    bad = m.MAVLink_set_position_target_global_int_message(
        0, 2, 1, frame, mask, 950_000_000, lon_e7, 25.0, 0, 0, 0, 0, 0, 0, 0, 0
    )
    g.send(bad)
    bench.run(2.0)
    assert f.rejected["absurd field"] == 1
    assert f.world.mode[1] == AutopilotMode.HOLD
    # no disarming in the air, unless forced: then it falls, and is heard no more
    arm = m.MAV_CMD_COMPONENT_ARM_DISARM
    assert command(bench, g, 2, arm, 0) == m.MAV_RESULT_FAILED
    assert command(bench, g, 2, arm, 0, 21196) == m.MAV_RESULT_ACCEPTED
    assert not f.world.alive[1]
    mark = len(g.got)
    bench.run(3.0)
    assert not g.of("HEARTBEAT", 2, since=mark) and g.of("HEARTBEAT", 1, since=mark)


# -- addressing, signing, bad input -------------------------------------------------------------


def test_two_ports_route_by_system_id(make: Any, mission: mission_mod.Mission) -> None:
    f = make(per_port=3)
    assert len(f.ports) == 2 and f.ports[1] == f.ports[0] + 1
    assert f.sysid(4) == (f.ports[1], 2) and f.sysid(2) == (f.ports[0], 3)
    a, b = Gcs(f, 0), Gcs(f, 1)
    bench = Bench(f, a, b)
    a.hello()
    b.hello()
    bench.run(3.0)
    assert {x.get_srcSystem() for x in a.of("HEARTBEAT")} == {1, 2, 3}
    assert {x.get_srcSystem() for x in b.of("HEARTBEAT")} == {1, 2}
    mark = len(b.got)
    assert command(bench, b, 2, REQ, m.MAVLINK_MSG_ID_HOME_POSITION) == m.MAV_RESULT_ACCEPTED
    home = bench.wait(b, "HOME_POSITION", since=mark)
    assert home.get_srcSystem() == 2
    assert (home.latitude, home.longitude) == pad_e7(mission, 4)
    assert not a.of("HOME_POSITION")
    # system 3 on the second port is no vehicle: nothing answers
    b.send(
        m.MAVLink_command_long_message(
            3, 1, REQ, 0, m.MAVLINK_MSG_ID_HOME_POSITION, 0, 0, 0, 0, 0, 0
        )
    )
    bench.run(2.0)
    assert not b.of("COMMAND_ACK", 3)
    mark = len(a.got)
    assert command(bench, a, 1, REQ, m.MAVLINK_MSG_ID_AUTOPILOT_VERSION) == m.MAV_RESULT_ACCEPTED
    version = bench.wait(a, "AUTOPILOT_VERSION", since=mark)
    assert version.capabilities & m.MAV_PROTOCOL_CAPABILITY_MISSION_INT


def test_parameters_read_true_values_and_refuse_writes(
    make: Any, mission: mission_mod.Mission
) -> None:
    """A ground station reads the whole parameter list (QGroundControl waits for it before it
    shows a vehicle), one by name and one by index; the values are the simulator's own. A write
    is refused as ArduPilot refuses one: the unchanged value and a warning."""
    f = make(per_port=3)
    g = Gcs(f, 1)
    bench = Bench(f, g)
    g.hello()
    bench.run(1.0)
    g.send(m.MAVLink_param_request_list_message(2, 1))
    bench.run(1.0)
    values = {x.param_id: x for x in g.of("PARAM_VALUE", 2)}
    count = next(iter(values.values())).param_count
    assert len(values) == count >= 10
    assert sorted(x.param_index for x in values.values()) == list(range(count))
    assert values["SYSID_THISMAV"].param_value == 2
    assert values["WPNAV_SPEED"].param_value == pytest.approx(mission.fleet.speed_mps[4] * 100)
    assert values["SIM_SPEEDUP"].param_value == SCALE
    assert not g.of("PARAM_VALUE", 1)  # only system 2 was asked
    mark = len(g.got)
    g.send(m.MAVLink_param_request_read_message(1, 1, b"FENCE_ENABLE", -1))
    assert bench.wait(g, "PARAM_VALUE", since=mark).param_value == 1
    mark = len(g.got)
    g.send(m.MAVLink_param_request_read_message(1, 1, b"", values["WPNAV_ACCEL"].param_index))
    assert bench.wait(g, "PARAM_VALUE", since=mark).param_id == "WPNAV_ACCEL"
    mark = len(g.got)
    g.send(m.MAVLink_param_set_message(2, 1, b"WPNAV_SPEED", 2500.0, m.MAV_PARAM_TYPE_REAL32))
    echo = bench.wait(g, "PARAM_VALUE", since=mark)
    assert echo.param_value == values["WPNAV_SPEED"].param_value
    assert any("denied" in t.text for t in g.of("STATUSTEXT", 2, since=mark))
    mark = len(g.got)
    g.send(m.MAVLink_param_request_read_message(2, 1, b"NO_SUCH_PARAM", -1))
    bench.run(1.0)
    assert not g.of("PARAM_VALUE", since=mark)


def test_signing(make: Any) -> None:
    f = make(signing_key=KEY)
    good = Gcs(f, key=KEY)
    plain = Gcs(f)
    wrong = Gcs(f, key=bytes(32))
    bench = Bench(f, good, plain, wrong)
    ask = m.MAVLink_command_long_message(
        1, 1, REQ, 0, m.MAVLINK_MSG_ID_HOME_POSITION, 0, 0, 0, 0, 0, 0
    )
    good.send(ask)
    bench.wait(good, "HOME_POSITION")
    assert good.of("COMMAND_ACK") and good.bad == 0
    assert all(x.get_signed() for x in good.got)  # with the key: the station checked them
    plain.send(ask)
    wrong.send(ask)
    bench.run(2.0)
    assert f.rejected["unsigned"] == 1 and f.rejected["bad signature"] == 1
    assert not plain.of("COMMAND_ACK") and not wrong.of("COMMAND_ACK")
    # an old signed message sent again is a replay
    acks = len(good.of("COMMAND_ACK"))
    mark = len(good.got)
    data = good.send(
        m.MAVLink_command_long_message(
            1, 1, REQ, 0, m.MAVLINK_MSG_ID_AUTOPILOT_VERSION, 0, 0, 0, 0, 0, 0
        )
    )
    bench.wait(good, "AUTOPILOT_VERSION", since=mark)  # sent after its ack
    assert len(good.of("COMMAND_ACK")) == acks + 1
    good.raw(data)
    bench.run(1.0)
    assert f.rejected["replayed"] == 1
    assert len(good.of("COMMAND_ACK")) == acks + 1


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    chunks=st.lists(
        st.one_of(
            st.binary(min_size=1, max_size=300),
            st.binary(min_size=8, max_size=60).map(lambda b: b"\xfd" + b),  # frame-like
        ),
        min_size=1,
        max_size=8,
    )
)
def test_random_bytes_do_no_harm(make: Any, chunks: list[bytes]) -> None:
    f = make()
    g = Gcs(f)
    bench = Bench(f, g)
    for chunk in chunks:
        g.raw(chunk)
    bench.step()
    assert sum(f.rejected.values()) >= 1
    assert not f.ap.armed.any() and (f.world.mode == AutopilotMode.STANDBY).all()
    assert command(bench, g, 1, REQ, m.MAVLINK_MSG_ID_HOME_POSITION) == m.MAV_RESULT_ACCEPTED


def test_a_drone_without_radio_neither_hears_nor_sends(mission_path: Path, tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text("faults:\n  - {at_s: 5, kind: link_lost, drone: quad-002, duration_s: 10}\n")
    f = serve(mission_path, base_port=free_base_port(1), count=3, faults_path=faults)
    try:
        assert len(f.world) == 3 and f.world.ids == ("quad-001", "quad-002", "quad-003")
        g = Gcs(f)
        bench = Bench(f, g)
        g.hello()
        bench.run(4.5, dt_wall=0.5)
        assert g.of("HEARTBEAT", 2)
        bench.run(1.0, dt_wall=0.5)
        mark = len(g.got)
        g.send(m.MAVLink_command_long_message(2, 1, REQ, 0, 242, 0, 0, 0, 0, 0, 0))
        bench.run(8.0, dt_wall=0.5)
        assert not g.of("HEARTBEAT", 2, since=mark) and not g.of("COMMAND_ACK", since=mark)
        assert len(g.of("HEARTBEAT", 1, since=mark)) >= 7
        bench.run(3.0, dt_wall=0.5)
        assert g.of("HEARTBEAT", 2, since=mark)
    finally:
        f.close()


# -- serving -----------------------------------------------------------------------------------


def test_serve_forever_on_the_real_clock(mission_path: Path) -> None:
    base = free_base_port(1)
    f = serve(mission_path, base_port=base, count=2, time_scale=20.0)
    try:
        assert len(f.world) == 2 and f.ports == [base]
        stop = threading.Event()

        def run() -> None:
            numba.set_num_threads(1)  # per thread (see one_thread)
            f.serve_forever(stop)

        thread = threading.Thread(target=run, daemon=True)
        g = Gcs(f)
        g.hello()
        g.send(m.MAVLink_request_data_stream_message(0, 0, m.MAV_DATA_STREAM_POSITION, 2, 1))
        t0 = time.monotonic()
        thread.start()
        while f.sim_s < 10.0 and time.monotonic() - t0 < 10.0:
            time.sleep(0.05)
            g.poll()
        elapsed = time.monotonic() - t0
        stop.set()
        thread.join(2.0)
        assert not thread.is_alive()
        g.poll()
        sim = f.sim_s
        assert 10.0 <= sim <= 20.0 * elapsed + 0.5  # simulated time runs 20× the wall clock
        # 1 Hz and 2 Hz of simulated time, whatever the wall clock did
        assert sim - 2 <= len(g.of("HEARTBEAT", 1)) <= sim + 1
        assert 2 * sim - 4 <= len(g.of("GLOBAL_POSITION_INT", 2)) <= 2 * sim + 1
        assert {x.get_srcSystem() for x in g.of("HEARTBEAT")} == {1, 2}
        f.serve_forever(until_sim_s=f.sim_s + 1.0)  # returns by itself
    finally:
        f.close()
