"""The vehicle façade (skysweep.mavlink.vehicles) flown by MAVLink implementations written
elsewhere, over real UDP on 127.0.0.1:

* MAVSDK (the C++ library through its ctypes bindings, ``mavsdk`` 4) as a ground station:
  telemetry, a mission uploaded, read back and flown, a GUIDED go-to and a return to launch;
* MAVProxy, headless, as a subprocess: it detects a fleet sharing one port, asks every vehicle
  for its streams, and arms and takes off one of them by system id.

The façade serves in a thread on the real clock, ``time_scale`` simulated seconds per wall
second, so a flight takes seconds. Every wait has a wall-clock limit.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import numba
import numpy as np
import pytest
from pymavlink import mavutil
from pymavlink.dialects.v20 import ardupilotmega as apm
from udp_ports import free_base_port

from skysweep import mission as mission_mod
from skysweep.mavlink.items import Item, route_items
from skysweep.mavlink.vehicles import VehicleFacade, serve

MISSION_YAML = """
name: peers test
area: {type: Polygon, coordinates: [[[8.000, 46.500], [8.006, 46.500], [8.006, 46.504],
       [8.000, 46.504], [8.000, 46.500]]]}
launch_sites:
  - {name: base, lon: 8.001, lat: 46.5005, pads: 5}
fleet:
  - {model: quad, count: 5, launch_site: base, speed_mps: 12, endurance_s: 900, swath_m: 80}
search: {altitude_m: 30}
simulation: {false_alarms_per_hour: 0, gps_noise_m: 0, targets: []}
"""
#: Simulated seconds per wall second. Not more: ArduPilot disarms a drone armed on the ground
#: that has not taken off within 10 simulated seconds, 1 wall second here.
SCALE = 10.0
EARTH_M = 6_371_000.0
ALT_M = 15.0  # the mission's altitude
LEG_M = 40.0  # the mission flies a square of this side from the pad
MISSION_CURRENT_ID = 42
SET_MESSAGE_INTERVAL = 511
T = TypeVar("T")


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """The simulator's kernels on one thread (parallel kernels stall on a busy machine)."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


@pytest.fixture(scope="module")
def mission_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("peers") / "mission.yaml"
    path.write_text(MISSION_YAML)
    return path


@pytest.fixture(scope="module")
def mission(mission_path: Path) -> mission_mod.Mission:
    return mission_mod.load(mission_path)


# -- helpers ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def served(path: Path, count: int, scale: float = SCALE) -> Iterator[VehicleFacade]:
    """The first ``count`` drones of the mission served on one UDP port, in a thread."""
    facade = serve(path, base_port=free_base_port(1), count=count, time_scale=scale)
    stop = threading.Event()

    def run() -> None:
        numba.set_num_threads(1)  # per thread (see one_thread)
        facade.serve_forever(stop)

    thread = threading.Thread(target=run, name="facade", daemon=True)
    thread.start()
    try:
        yield facade
    finally:
        stop.set()
        thread.join(5.0)
        facade.close()
        assert not thread.is_alive(), "the façade did not stop"


def wait_for(what: str, check: Callable[[], T], timeout_s: float, every_s: float = 0.02) -> T:
    """The first truthy value of ``check()``; fails after ``timeout_s`` wall seconds."""
    end = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)


def within(timeout_s: float, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a worker thread (MAVSDK's calls block in C++), failing the test if it
    has not returned after ``timeout_s`` wall seconds."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise AssertionError(f"{getattr(fn, '__name__', fn)} still blocked after {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


def metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Horizontal distance between two points in degrees (equirectangular: metres apart)."""
    north = math.radians(lat2 - lat1) * EARTH_M
    east = math.radians(lon2 - lon1) * EARTH_M * math.cos(math.radians(0.5 * (lat1 + lat2)))
    return math.hypot(north, east)


def pads(facade: VehicleFacade, mission: mission_mod.Mission) -> list[tuple[float, float]]:
    """(lat, lon) in degrees of every served drone's pad."""
    home = facade.world.home
    lon, lat = mission.frame.to_lonlat(home[:, 0], home[:, 1])
    return [(float(a), float(o)) for a, o in zip(lat, lon, strict=True)]


# -- MAVSDK --------------------------------------------------------------------------------------


def mavsdk_api() -> SimpleNamespace:
    """MAVSDK 4's synchronous API, or a skip saying why it cannot be loaded."""
    try:
        from mavsdk import ComponentType, Configuration, ConnectionResult, Mavsdk
        from mavsdk.plugins.action import Action
        from mavsdk.plugins.mavlink_direct import MavlinkDirect, MavlinkMessage
        from mavsdk.plugins.mission_raw import MissionItem, MissionRaw
        from mavsdk.plugins.telemetry import FlightMode, LandedState, Telemetry
    except (ImportError, OSError) as exc:  # OSError: the bundled libcmavsdk does not load
        pytest.skip(f"MAVSDK 4 (mavsdk>=4, ctypes API) cannot be loaded: {exc}")
    return SimpleNamespace(
        Mavsdk=Mavsdk,
        Configuration=Configuration,
        ComponentType=ComponentType,
        ConnectionResult=ConnectionResult,
        Action=Action,
        MavlinkDirect=MavlinkDirect,
        MavlinkMessage=MavlinkMessage,
        MissionRaw=MissionRaw,
        MissionItem=MissionItem,
        Telemetry=Telemetry,
        FlightMode=FlightMode,
        LandedState=LandedState,
    )


@contextlib.contextmanager
def mavsdk_autopilot(api: SimpleNamespace, port: int) -> Iterator[Any]:
    """A MAVSDK ground station sending to the façade's port; the autopilot it found."""
    sdk = api.Mavsdk(api.Configuration.create_with_component_type(api.ComponentType.GROUND_STATION))
    try:
        # udpout: MAVSDK sends (its heartbeats) to the port; the façade answers the sender
        result = sdk.add_any_connection(f"udpout://127.0.0.1:{port}")
        assert result == api.ConnectionResult.SUCCESS, result
        system = within(15.0, sdk.first_autopilot, 10.0)
        assert system is not None, "MAVSDK found no autopilot on the façade's port"
        yield system
    finally:
        sdk.destroy()


def ask_mission_current(api: SimpleNamespace, system: Any, hz: float) -> None:
    """SET_MESSAGE_INTERVAL for MISSION_CURRENT, sent by MAVSDK (its MissionRaw plugin reads
    progress from MISSION_CURRENT; ArduPilot streams it only when a ground station asks)."""
    direct = api.MavlinkDirect(system)
    fields = {
        "target_system": 1,
        "target_component": 1,
        "command": SET_MESSAGE_INTERVAL,
        "param1": MISSION_CURRENT_ID,
        "param2": 1e6 / hz,
    }
    command = api.MavlinkMessage("COMMAND_LONG", 0, 0, 1, 1, json.dumps(fields))
    ack = within(10.0, direct.send_command, command)
    assert json.loads(ack.fields_json)["result"] == 0, ack.fields_json


def fixed_position(tel: Any) -> Any:
    """The position, once there is one (NaN before the first GLOBAL_POSITION_INT, lat = lon =
    0 while ArduPilot has no fix)."""
    p = tel.position()
    return p if math.isfinite(p.latitude_deg) and p.latitude_deg != 0.0 else None


def mavsdk_item(api: SimpleNamespace, it: Item) -> Any:
    """A skysweep mission item as MAVSDK's MissionRaw item (a MISSION_ITEM_INT). ``current``
    is 1 on item 0 only, as MAVSDK's own Mission plugin uploads it (ArduPilot ignores it in an
    upload)."""
    return api.MissionItem(
        seq=it.seq,
        frame=it.frame,
        command=it.command,
        current=1 if it.seq == 0 else 0,
        autocontinue=it.autocontinue,
        param1=it.param1,
        param2=it.param2,
        param3=it.param3,
        param4=it.param4,
        x=it.lat_e7,
        y=it.lon_e7,
        z=it.alt_m,
        mission_type=it.mission_type,
    )


def item_row(x: Any) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The integer fields and the float32 fields of a MAVSDK mission item."""
    ints = (x.seq, x.frame, x.command, x.autocontinue, x.x, x.y, x.mission_type)
    floats = np.float32([x.param1, x.param2, x.param3, x.param4, x.z])
    return tuple(int(v) for v in ints), tuple(float(v) for v in floats)


def test_mavsdk_uploads_downloads_and_flies_a_mission(
    mission_path: Path, mission: mission_mod.Mission
) -> None:
    api = mavsdk_api()
    with served(mission_path, count=1) as f, mavsdk_autopilot(api, f.ports[0]) as system:
        tel, action, raw = api.Telemetry(system), api.Action(system), api.MissionRaw(system)
        pad_lat, pad_lon = pads(f, mission)[0]
        within(10.0, tel.set_rate_position, 4.0)  # simulated Hz, as the façade keeps them
        within(10.0, tel.set_rate_landed_state, 2.0)
        ask_mission_current(api, system, 4.0)

        # telemetry: on the pad, on the ground, disarmed
        p = wait_for("a position fix", lambda: fixed_position(tel), 10.0)
        assert metres(p.latitude_deg, p.longitude_deg, pad_lat, pad_lon) < 2.0
        assert abs(p.relative_altitude_m) < 0.5
        home = wait_for("home", lambda: math.isfinite(tel.home().latitude_deg) and tel.home(), 10.0)
        assert metres(home.latitude_deg, home.longitude_deg, pad_lat, pad_lon) < 1.0
        wait_for("ON_GROUND", lambda: tel.landed_state() == api.LandedState.ON_GROUND, 5.0)
        assert not tel.armed() and not tel.in_air()

        # a square of LEG_M from the pad at ALT_M, landing at its last corner
        hx, hy = (float(v) for v in f.world.home[0])
        corners = [(0.0, 0.0), (LEG_M, 0.0), (LEG_M, LEG_M), (0.0, LEG_M)]
        route = np.array([[hx + dx, hy + dy, ALT_M] for dx, dy in corners])
        items = route_items(route, (hx, hy), mission.frame)
        wp, takeoff, land = apm.MAV_CMD_NAV_WAYPOINT, apm.MAV_CMD_NAV_TAKEOFF, apm.MAV_CMD_NAV_LAND
        assert [it.command for it in items] == [wp, takeoff, wp, wp, wp, wp, land]
        progress: list[tuple[int, int]] = []
        raw.subscribe_mission_progress(lambda p, _: progress.append((p.current, p.total)))
        within(20.0, raw.upload_mission, [mavsdk_item(api, it) for it in items])

        # read back: item 0 is the vehicle's home (ArduPilot's), the rest as uploaded
        down = within(20.0, raw.download_mission)
        assert [x.seq for x in down] == list(range(len(items)))
        assert down[0].command == wp and down[0].frame == apm.MAV_FRAME_GLOBAL
        assert metres(down[0].x / 1e7, down[0].y / 1e7, pad_lat, pad_lon) < 1.0
        sent = [item_row(mavsdk_item(api, it)) for it in items]
        assert [item_row(x) for x in down[1:]] == sent[1:]

        # arm and take off in GUIDED (MAVSDK switches the mode, then NAV_TAKEOFF)
        within(10.0, action.arm)
        wait_for("armed", tel.armed, 5.0)
        within(10.0, action.set_takeoff_altitude, 8.0)
        within(10.0, action.takeoff)
        wait_for("in the air", tel.in_air, 10.0)
        wait_for("8 m up", lambda: tel.position().relative_altitude_m > 7.4, 10.0)
        time.sleep(0.5)  # 5 simulated seconds: it holds there
        p = tel.position()
        assert abs(p.relative_altitude_m - 8.0) < 1.0
        assert metres(p.latitude_deg, p.longitude_deg, pad_lat, pad_lon) < 2.0
        assert tel.in_air() and tel.armed()

        # fly the mission to its end: landed at the last corner, disarmed
        track: list[tuple[float, float, float]] = []
        tel.subscribe_position(
            lambda p, _: track.append((p.latitude_deg, p.longitude_deg, p.relative_altitude_m))
        )
        mark = len(progress)
        within(10.0, raw.start_mission)
        wait_for("AUTO", lambda: tel.flight_mode() == api.FlightMode.MISSION, 5.0)
        wait_for("landed and disarmed", lambda: not tel.armed() and not tel.in_air(), 40.0)
        wait_for("ON_GROUND", lambda: tel.landed_state() == api.LandedState.ON_GROUND, 5.0)
        time.sleep(0.2)  # the last position and progress in

        flown = np.array(track)
        assert len(flown) > 20
        assert flown[:, 2].max() == pytest.approx(ALT_M, abs=1.0)
        for it in items[2:-1]:  # every waypoint flown through (3-D distance)
            gap = [
                math.hypot(metres(a, o, it.lat_e7 / 1e7, it.lon_e7 / 1e7), z - it.alt_m)
                for a, o, z in flown
            ]
            assert min(gap) < 6.0, f"waypoint {it.seq} missed by {min(gap):.1f} m"
        end = items[-1]
        p = tel.position()
        assert metres(p.latitude_deg, p.longitude_deg, end.lat_e7 / 1e7, end.lon_e7 / 1e7) < 3
        assert abs(p.relative_altitude_m) < 0.3

        # MAVSDK's mission progress (from MISSION_CURRENT): item by item, to the LAND (item 2,
        # the first waypoint, is where the take-off ends: reached at once)
        after = progress[mark:]
        assert after, "no mission progress"
        currents = [c for c, _ in after]
        assert {t for _, t in after} == {len(items)}
        assert currents == sorted(currents)
        assert {1, 3, 4, 5} <= set(currents)
        # every item reached, the landing too (MISSION_ITEM_REACHED): MAVSDK counts the
        # mission through to its end
        assert currents[-1] == len(items)
        assert raw.mission_progress().current == raw.mission_progress().total == len(items)


def test_mavsdk_goto_and_return_to_launch(mission_path: Path, mission: mission_mod.Mission) -> None:
    api = mavsdk_api()
    with served(mission_path, count=1) as f, mavsdk_autopilot(api, f.ports[0]) as system:
        tel, action = api.Telemetry(system), api.Action(system)
        pad_lat, pad_lon = pads(f, mission)[0]
        within(10.0, tel.set_rate_position, 4.0)
        wait_for("a position fix", lambda: fixed_position(tel), 10.0)

        within(10.0, action.arm)
        within(10.0, action.set_takeoff_altitude, 10.0)
        within(10.0, action.takeoff)
        wait_for("10 m up", lambda: tel.position().relative_altitude_m > 9.4, 10.0)
        assert tel.in_air()

        # a GUIDED go-to 50 m north, 5 m higher (altitudes above mean sea level)
        p = tel.position()
        lat = pad_lat + math.degrees(50.0 / EARTH_M)
        alt = p.absolute_altitude_m + 5.0
        within(10.0, action.goto_location, lat, pad_lon, alt, float("nan"))

        def there() -> bool:
            q = tel.position()
            return (
                metres(q.latitude_deg, q.longitude_deg, lat, pad_lon) < 3.0
                and abs(q.absolute_altitude_m - alt) < 1.0
            )

        wait_for("the go-to target", there, 15.0)
        time.sleep(0.5)  # 5 simulated seconds: it holds there
        assert there() and tel.in_air()

        # RTL: back to the pad, landed, disarmed
        within(10.0, action.return_to_launch)
        wait_for("RTL", lambda: tel.flight_mode() == api.FlightMode.RETURN_TO_LAUNCH, 5.0)
        wait_for("landed and disarmed", lambda: not tel.armed() and not tel.in_air(), 30.0)
        time.sleep(0.2)
        q = tel.position()
        assert metres(q.latitude_deg, q.longitude_deg, pad_lat, pad_lon) < 2.0
        assert abs(q.relative_altitude_m) < 0.3
        assert tel.landed_state() == api.LandedState.ON_GROUND


# -- MAVProxy ------------------------------------------------------------------------------------


def mavproxy_script() -> Path:
    """MAVProxy's ``mavproxy.py`` of this environment, or a skip saying why it cannot run."""
    script = Path(sys.executable).parent / "mavproxy.py"
    if importlib.util.find_spec("MAVProxy") is None or not script.exists():
        pytest.skip(f"MAVProxy is not installed in this environment (no module or no {script})")
    try:
        done = subprocess.run(
            [sys.executable, str(script), "--version"], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.skip("MAVProxy does not start: `mavproxy.py --version` still running after 60 s")
    if done.returncode != 0 or "MAVProxy Version" not in done.stdout:
        pytest.skip(f"MAVProxy does not start: {(done.stdout + done.stderr)[-500:]}")
    return script


class MavproxyRun:
    """MAVProxy as a subprocess driven through its command line on stdin: every line it
    prints is kept."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.lines: list[str] = []
        self._mark = 0  # where the output after the last command starts
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            # its own HOME: no startup scripts or keys of whoever runs the tests
            env={**os.environ, "HOME": str(cwd), "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def expect(self, pattern: str, timeout_s: float = 10.0) -> re.Match[str]:
        """The first match of ``pattern`` in what MAVProxy printed since the last command
        (waiting for it)."""

        def found() -> re.Match[str] | None:
            if self.proc.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"MAVProxy exited:\n{self.output[-3000:]}")
            return re.search(pattern, self.output[self._mark :])

        try:
            return wait_for(repr(pattern), found, timeout_s)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; MAVProxy printed:\n{self.output[-3000:]}") from None

    def command(self, line: str) -> None:
        assert self.proc.stdin is not None
        self._mark = len(self.output)
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        """End of input ends MAVProxy's command line, and MAVProxy (flushing its log)."""
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(10.0)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5.0)
        self._reader.join(5.0)


class Listener:
    """What MAVProxy forwards to its ``--out``, per system id."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])
        self.mav = apm.MAVLink(None)
        self.mav.robust_parsing = True
        self.positions: dict[int, list[tuple[float, float, float]]] = {}
        self.armed: dict[int, list[bool]] = {}
        self.mode: dict[int, int] = {}

    def poll(self) -> None:
        while True:
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                return
            for msg in self.mav.parse_buffer(data) or []:
                s, kind = msg.get_srcSystem(), msg.get_type()
                if kind == "GLOBAL_POSITION_INT" and msg.lat != 0:
                    pos = (msg.lat / 1e7, msg.lon / 1e7, msg.relative_alt / 1000.0)
                    self.positions.setdefault(s, []).append(pos)
                elif kind == "HEARTBEAT" and msg.type != apm.MAV_TYPE_GCS:
                    self.armed.setdefault(s, []).append(
                        bool(msg.base_mode & apm.MAV_MODE_FLAG_SAFETY_ARMED)
                    )
                    self.mode[s] = int(msg.custom_mode)

    def alt(self, system: int) -> float:
        self.poll()
        track = self.positions.get(system)
        return track[-1][2] if track else math.nan

    def close(self) -> None:
        self.sock.close()


def test_mavproxy_sees_a_fleet_and_flies_one_of_it(
    mission_path: Path, mission: mission_mod.Mission, tmp_path: Path
) -> None:
    script = mavproxy_script()
    count, target = 4, 2
    listener = Listener()
    tlog = tmp_path / "fleet.tlog"
    with served(mission_path, count=count, scale=5.0) as f:
        mp = MavproxyRun(
            [
                sys.executable,
                str(script),
                f"--master=udpout:127.0.0.1:{f.ports[0]}",
                f"--out=udp:127.0.0.1:{listener.port}",
                f"--state-basedir={tmp_path}",
                f"--logfile={tlog}",
                "--streamrate=1",
            ],
            tmp_path,
        )
        try:
            # MAVProxy tells of every vehicle whose heartbeat it hears on the link
            for s in range(1, count + 1):
                mp.expect(rf"Detected vehicle {s}:1 on link 0", 20.0)
            # a new stream rate is asked of every vehicle detected (at start: only the first)
            mp.command("set streamrate 2")
            wait_for(
                "positions of every vehicle",
                lambda: listener.poll() or len(listener.positions) == count,
                10.0,
            )

            # one vehicle, by system id: GUIDED, armed, up to 10 m; then LAND
            mp.command(f"vehicle {target}")
            mp.expect(rf"Set vehicle {target}")
            # the parameter list, as a ground station fetches it on connecting: the simulator's
            # own values (this drone's speed, the SITL speed-up)
            mp.command("param fetch")
            mp.expect(r"Received \d+ parameters", 20.0)
            mp.command("param show WPNAV_SPEED")
            speed = float(mp.expect(r"WPNAV_SPEED\s+([\d.]+)").group(1))
            assert speed == pytest.approx(mission.fleet.speed_mps[target - 1] * 100)
            mp.command("mode guided")
            mp.expect(r"Got COMMAND_ACK: DO_SET_MODE: ACCEPTED")
            mp.command("arm throttle")
            mp.expect(r"Got COMMAND_ACK: COMPONENT_ARM_DISARM: ACCEPTED")
            mp.command("takeoff 10")
            mp.expect(r"Got COMMAND_ACK: NAV_TAKEOFF: ACCEPTED")
            wait_for("10 m up", lambda: listener.alt(target) > 9.4, 15.0)
            assert listener.mode[target] == apm.COPTER_MODE_GUIDED and listener.armed[target][-1]
            mp.command("mode land")
            wait_for(
                "LAND",
                lambda: listener.poll() or listener.mode.get(target) == apm.COPTER_MODE_LAND,
                10.0,
            )
            wait_for(
                "landed and disarmed",
                lambda: listener.alt(target) < 0.1 and not listener.armed[target][-1],
                20.0,
            )
            mp.expect(r"DISARMED", 5.0)
        finally:
            mp.stop()
            listener.poll()
            listener.close()

    # every vehicle on its own pad; only the one commanded flew
    for s, (lat, lon) in enumerate(pads(f, mission), start=1):
        track = np.array(listener.positions[s])
        gap = [metres(a, o, lat, lon) for a, o in track[:, :2]]
        assert max(gap) < 2.0, f"system {s} strayed {max(gap):.1f} m from its pad"
        if s == target:
            assert track[:, 2].max() == pytest.approx(10.0, abs=1.0)
            assert True in listener.armed[s] and not listener.armed[s][-1]
        else:
            assert track[:, 2].max() < 0.1 and not any(listener.armed[s])

    # MAVProxy's own telemetry log holds every vehicle's heartbeats and positions
    log = mavutil.mavlink_connection(str(tlog), dialect="ardupilotmega")
    kinds: dict[int, set[str]] = {}
    while (msg := log.recv_match(type=["HEARTBEAT", "GLOBAL_POSITION_INT"])) is not None:
        kinds.setdefault(msg.get_srcSystem(), set()).add(msg.get_type())
    log.close()
    for s in range(1, count + 1):
        assert kinds.get(s) == {"HEARTBEAT", "GLOBAL_POSITION_INT"}, (s, kinds)
