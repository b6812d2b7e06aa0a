"""MavlinkLink without a network: scripted vehicles on an in-memory channel, a fake clock.

The protocol steps (upload, read-back, commands) with lost, reordered and refused messages;
telemetry into FleetState; the actuator allowlist; signing; and a fuzzed input stream that
must never crash the link or change the fleet state.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skysweep import mission as mission_mod
from skysweep.errors import LinkError
from skysweep.mavlink import signing
from skysweep.mavlink.allowlist import ALLOWED_COMMANDS, CommandRefused, check_outgoing
from skysweep.mavlink.dialect import mavlink as m
from skysweep.mavlink.dialect import new_mav
from skysweep.mavlink.items import (
    FENCE,
    ROUTE_FIRST_SEQ,
    Item,
    fence_items,
    fence_polygons,
    items_route,
    route_index,
    route_items,
)
from skysweep.mavlink.link import MavlinkLink
from skysweep.mavlink.modes import (
    Autopilot,
    CopterMode,
    Px4Auto,
    Px4Main,
    decode_mode,
    decode_modes,
    px4_custom_mode,
)
from skysweep.mavlink.steps import (
    MAX_TRIES,
    TIMEOUT_S,
    DownloadItems,
    SendCommand,
    Status,
    UploadItems,
)
from skysweep.mavlink.transport import Endpoint
from skysweep.telemetry import AutopilotMode, Command

MISSION = """
name: link test
area: {type: Polygon, coordinates: [[[8.000, 46.500], [8.012, 46.500], [8.012, 46.509],
       [8.000, 46.509], [8.000, 46.500]]]}
keep_out:
  - name: cliff
    geometry: {type: Polygon, coordinates: [[[8.005, 46.503], [8.007, 46.503], [8.007, 46.506],
               [8.005, 46.506], [8.005, 46.503]]]}
launch_sites:
  - {name: base, lon: 8.002, lat: 46.501, pads: 2}
fleet:
  - {model: quad, count: 3, launch_site: base, speed_mps: 10, endurance_s: 900, swath_m: 50}
"""


@pytest.fixture(scope="module")
def mission(tmp_path_factory: pytest.TempPathFactory) -> mission_mod.Mission:
    path = tmp_path_factory.mktemp("m") / "m.yaml"
    path.write_text(MISSION)
    return mission_mod.load(path)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class FakeChannel:
    """An in-memory channel: ``inbox`` is what vehicles sent, ``sent`` what the link wrote."""

    def __init__(self, name: str = "fake:0") -> None:
        self.name = name
        self.inbox: list[bytes] = []
        self.sent: list[bytes] = []

    def receive(self, now_s: float) -> list[tuple[bytes, Any]]:
        out, self.inbox = self.inbox, []
        return [(d, None) for d in out]

    def send(self, data: bytes, to: Any = None) -> None:
        self.sent.append(data)

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        pass


class Vehicle:
    """The vehicle end of a fake channel: encodes what a vehicle says, decodes what it heard."""

    def __init__(self, ch: FakeChannel, system: int, autopilot: int = Autopilot.ARDUPILOT) -> None:
        self.ch = ch
        self.mav = new_mav(system, 1)
        self.rx = new_mav(system, 1)
        self.autopilot = autopilot
        self.seen = 0

    def say(self, msg: Any) -> bytes:
        data = bytes(msg.pack(self.mav))
        self.ch.inbox.append(data)
        return data

    def heartbeat(self, armed: bool = False, custom: int = 0) -> None:
        base = m.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | (m.MAV_MODE_FLAG_SAFETY_ARMED if armed else 0)
        self.say(
            m.MAVLink_heartbeat_message(m.MAV_TYPE_QUADROTOR, self.autopilot, base, custom, 3, 3)
        )

    def position(self, lat: float, lon: float, rel_alt_m: float = 0.0, vx: int = 0) -> None:
        self.say(
            m.MAVLink_global_position_int_message(
                1000, round(lat * 1e7), round(lon * 1e7), 0, round(rel_alt_m * 1000), vx, 0, 0, 0
            )
        )

    def battery(self, remaining_pct: int = 100) -> None:
        self.say(
            m.MAVLink_sys_status_message(
                0, 0, 0, 0, 15800, -1, remaining_pct, 0, 0, 0, 0, 0, 0, 0, 0, 0
            )
        )

    def heard(self) -> list[Any]:
        """Messages the link sent to this vehicle since the last call."""
        out = []
        for data in self.ch.sent[self.seen :]:
            out += self.rx.parse_buffer(data) or []
        self.seen = len(self.ch.sent)
        return [
            msg
            for msg in out
            if getattr(msg, "target_system", self.mav.srcSystem) in (0, self.mav.srcSystem)
        ]


def make_link(
    mission: mission_mod.Mission, n_channels: int = 1, **kw: Any
) -> tuple[MavlinkLink, list[FakeChannel], Clock]:
    chans = [FakeChannel(f"fake:{k}") for k in range(n_channels)]
    clock = Clock()
    link = MavlinkLink(mission, channels=chans, wall=clock, **kw)
    return link, chans, clock


def bound_link(
    mission: mission_mod.Mission, **kw: Any
) -> tuple[MavlinkLink, list[Vehicle], FakeChannel, Clock]:
    """A link with three ArduPilot vehicles (systems 1-3) discovered and bound."""
    link, (ch,), clock = make_link(mission, **kw)
    vs = [Vehicle(ch, s) for s in (3, 1, 2)]
    for v in vs:
        v.heartbeat()
    link.pump()
    link.bind_discovered()
    return link, sorted(vs, key=lambda v: v.mav.srcSystem), ch, clock


# -- steps ---------------------------------------------------------------------------------------


def run_step(step: Any, now: float = 0.0) -> list[Any]:
    sent: list[Any] = []
    step.begin(sent.append, (7, 1), now)
    return sent


def test_upload_sends_each_requested_item_and_ends_on_accept() -> None:
    items = [Item(k, m.MAV_CMD_NAV_WAYPOINT, lat_e7=k, lon_e7=k) for k in range(3)]
    step = UploadItems(items)
    sent = run_step(step)
    assert sent[0].get_type() == "MISSION_COUNT" and sent[0].count == 3
    for seq in range(3):
        step.on_message(m.MAVLink_mission_request_int_message(255, 190, seq, 0), 0.1)
        assert sent[-1].get_type() == "MISSION_ITEM_INT" and sent[-1].seq == seq
    step.on_message(m.MAVLink_mission_ack_message(255, 190, m.MAV_MISSION_ACCEPTED, 0), 0.2)
    assert step.status is Status.DONE


def test_upload_resends_on_a_lost_request_and_gives_up_after_max_tries() -> None:
    step = UploadItems([Item(0, m.MAV_CMD_NAV_WAYPOINT)])
    sent = run_step(step)
    for k in range(1, MAX_TRIES):
        step.on_time(k * TIMEOUT_S + 0.01)
        assert len(sent) == k + 1 and sent[-1].get_type() == "MISSION_COUNT"
    assert step.status is Status.PENDING
    step.on_time(MAX_TRIES * TIMEOUT_S + 0.02)
    assert step.status is Status.FAILED and "no answer" in step.reason


def test_upload_fails_on_a_refusal_with_its_name() -> None:
    step = UploadItems([Item(0, m.MAV_CMD_NAV_WAYPOINT)])
    run_step(step)
    step.on_message(m.MAVLink_mission_ack_message(255, 190, m.MAV_MISSION_NO_SPACE, 0), 0.1)
    assert step.status is Status.FAILED and "MAV_MISSION_NO_SPACE" in step.reason


def test_upload_ignores_other_mission_types_and_an_early_accept() -> None:
    step = UploadItems([Item(0, m.MAV_CMD_NAV_WAYPOINT), Item(1, m.MAV_CMD_NAV_WAYPOINT)])
    sent = run_step(step)
    step.on_message(m.MAVLink_mission_request_int_message(255, 190, 0, FENCE), 0.1)
    assert len(sent) == 1
    step.on_message(m.MAVLink_mission_ack_message(255, 190, m.MAV_MISSION_ACCEPTED, 0), 0.1)
    assert step.status is Status.PENDING  # nothing was asked for yet: a stale ack


def test_download_rerequests_out_of_order_items_and_checks_them() -> None:
    items = [Item(k, m.MAV_CMD_NAV_WAYPOINT, lat_e7=10 * k, alt_m=5.0) for k in range(3)]
    step = DownloadItems(expect=items)
    sent = run_step(step)
    assert sent[-1].get_type() == "MISSION_REQUEST_LIST"
    step.on_message(m.MAVLink_mission_count_message(255, 190, 3, 0), 0.1)
    assert sent[-1].get_type() == "MISSION_REQUEST_INT" and sent[-1].seq == 0
    wrong = _item_msg(items[2])
    step.on_message(wrong, 0.2)
    assert sent[-1].seq == 0  # asked again for item 0
    for it in items:
        step.on_message(_item_msg(it), 0.3)
    assert step.status is Status.DONE
    assert sent[-1].get_type() == "MISSION_ACK"


def test_download_fails_when_the_vehicle_holds_something_else() -> None:
    items = [Item(k, m.MAV_CMD_NAV_WAYPOINT, lat_e7=10 * k) for k in range(2)]
    step = DownloadItems(expect=items)
    run_step(step)
    step.on_message(m.MAVLink_mission_count_message(255, 190, 2, 0), 0.1)
    step.on_message(_item_msg(items[0]), 0.1)
    step.on_message(_item_msg(Item(1, m.MAV_CMD_NAV_WAYPOINT, lat_e7=999)), 0.1)
    assert step.status is Status.FAILED and "item 1" in step.reason


def _item_msg(it: Item) -> Any:
    return m.MAVLink_mission_item_int_message(
        255, 190, it.seq, it.frame, it.command, 0, 1, it.param1, it.param2, it.param3,
        it.param4, it.lat_e7, it.lon_e7, it.alt_m, it.mission_type,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("result", "status"),
    [
        (m.MAV_RESULT_ACCEPTED, Status.DONE),
        (m.MAV_RESULT_DENIED, Status.FAILED),
        (m.MAV_RESULT_UNSUPPORTED, Status.FAILED),
        (m.MAV_RESULT_TEMPORARILY_REJECTED, Status.PENDING),
        (m.MAV_RESULT_IN_PROGRESS, Status.PENDING),
    ],
)
def test_command_ends_on_its_ack(result: int, status: Status) -> None:
    step = SendCommand(m.MAV_CMD_NAV_LAND)
    sent = run_step(step)
    assert sent[0].command == m.MAV_CMD_NAV_LAND and sent[0].confirmation == 0
    step.on_message(
        m.MAVLink_command_ack_message(m.MAV_CMD_NAV_RETURN_TO_LAUNCH, 0, 0, 0, 255, 190), 0.1
    )
    assert step.status is Status.PENDING  # an ack of another command
    step.on_message(m.MAVLink_command_ack_message(m.MAV_CMD_NAV_LAND, result, 0, 0, 255, 190), 0.1)
    assert step.status is status


def test_command_resent_with_a_new_confirmation_number() -> None:
    step = SendCommand(m.MAV_CMD_NAV_LAND)
    sent = run_step(step)
    step.on_time(TIMEOUT_S + 0.01)
    assert [s.confirmation for s in sent] == [0, 1]


# -- items ---------------------------------------------------------------------------------------


def test_route_items_round_trip(mission: mission_mod.Mission) -> None:
    route = np.array([[0.0, 0.0, 60.0], [300.0, 100.0, 60.0], [-50.0, 400.0, 55.0]])
    home = mission.pad_xy_m[0]
    items = route_items(route, home, mission.frame)
    assert items[0].seq == 0 and items[1].command == m.MAV_CMD_NAV_TAKEOFF
    assert items[ROUTE_FIRST_SEQ].command == m.MAV_CMD_NAV_WAYPOINT
    assert items[-1].command == m.MAV_CMD_NAV_LAND
    assert [it.seq for it in items] == list(range(len(route) + 3))
    back, home_back = items_route(items, mission.frame)
    np.testing.assert_allclose(home_back, home, atol=0.02)
    # the take-off climbs over the first point; then every route point, to the centimetre
    np.testing.assert_allclose(back[1:], route, atol=0.02)


def test_a_sortie_takes_off_and_lands_instead_of_flying_to_ground_points(
    mission: mission_mod.Mission,
) -> None:
    pad = mission.pad_xy_m[0]
    sortie = np.array(
        [
            [*pad, 0.0],
            [*pad, 50.0],
            [300.0, 100.0, 50.0],
            [-50.0, 400.0, 50.0],
            [*pad, 50.0],
            [*pad, 0.0],
        ]
    )
    items = route_items(sortie, pad, mission.frame)
    commands = [it.command for it in items]
    assert commands == [m.MAV_CMD_NAV_WAYPOINT, m.MAV_CMD_NAV_TAKEOFF] + [
        m.MAV_CMD_NAV_WAYPOINT
    ] * 4 + [m.MAV_CMD_NAV_LAND]
    assert items[1].alt_m == 50.0  # a take-off to 0 m is refused by ArduPilot
    assert all(it.alt_m >= 50.0 for it in items[ROUTE_FIRST_SEQ:-1])
    # item → route point: take-off and first waypoint to point 1, landing to the last point
    assert route_index(sortie).tolist() == [1, 1, 1, 2, 3, 4, 5]
    airborne_end = sortie[1:-1]
    assert route_index(airborne_end).tolist() == [0, 0, 0, 1, 2, 3, 4]
    with pytest.raises(LinkError, match="never leaves the ground"):
        route_items(sortie[[0, -1]], pad, mission.frame)


def test_fence_items_round_trip(mission: mission_mod.Mission) -> None:
    keep_in = mission.frame.geom_to_lonlat(mission.keep_in)
    zones = [mission.frame.geom_to_lonlat(z.geometry) for z in mission.keep_out]
    items = fence_items(keep_in, zones)
    assert all(it.mission_type == FENCE for it in items)
    inc, exc = fence_polygons(items)
    assert len(inc) == 1 and len(exc) == 1
    np.testing.assert_allclose(exc[0], np.asarray(zones[0].exterior.coords)[:-1], atol=1e-7)
    with pytest.raises(LinkError, match="incomplete"):
        fence_polygons(items[:-1])


# -- modes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("autopilot", "custom", "mode"),
    [
        (Autopilot.ARDUPILOT, CopterMode.AUTO, AutopilotMode.AUTO),
        (Autopilot.ARDUPILOT, CopterMode.RTL, AutopilotMode.RTL),
        (Autopilot.ARDUPILOT, CopterMode.LAND, AutopilotMode.LAND),
        (Autopilot.ARDUPILOT, CopterMode.LOITER, AutopilotMode.HOLD),
        (Autopilot.PX4, px4_custom_mode(Px4Main.AUTO, Px4Auto.MISSION), AutopilotMode.AUTO),
        (Autopilot.PX4, px4_custom_mode(Px4Main.AUTO, Px4Auto.RTL), AutopilotMode.RTL),
        (Autopilot.PX4, px4_custom_mode(Px4Main.AUTO, Px4Auto.LOITER), AutopilotMode.HOLD),
        (Autopilot.PX4, px4_custom_mode(Px4Main.POSCTL), AutopilotMode.HOLD),
    ],
)
def test_modes_decode_per_autopilot(autopilot: int, custom: int, mode: AutopilotMode) -> None:
    armed = m.MAV_MODE_FLAG_SAFETY_ARMED | 1
    assert decode_mode(autopilot, armed, int(custom)) == mode
    assert decode_mode(autopilot, 1, int(custom)) == AutopilotMode.STANDBY
    vec = decode_modes(np.array([autopilot]), np.array([armed]), np.array([int(custom)]))
    assert vec[0] == mode


# -- the link: telemetry ------------------------------------------------------------------------


def test_discovery_binds_in_system_order_and_telemetry_fills_fleet_state(
    mission: mission_mod.Mission,
) -> None:
    link, vs, _, _ = bound_link(mission)
    assert [link.vehicles[i].system for i in range(3)] == [1, 2, 3]  # type: ignore[union-attr]
    lon, lat = mission.frame.to_lonlat([120.0], [-40.0])
    vs[1].position(float(lat[0]), float(lon[0]), rel_alt_m=35.5, vx=250)
    vs[1].say(m.MAVLink_sys_status_message(0, 0, 0, 0, 15800, -1, 73, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    vs[1].heartbeat(armed=True, custom=CopterMode.AUTO)
    vs[1].say(m.MAVLink_mission_current_message(ROUTE_FIRST_SEQ + 4, 0, 0, 0))
    link.pump()
    fs = link.poll(50.0)
    np.testing.assert_allclose(fs.pos_m[1], [120.0, -40.0, 35.5], atol=0.02)
    assert fs.vel_mps[1, 1] == pytest.approx(2.5)  # vx is north
    assert fs.battery[1] == pytest.approx(0.73)
    assert fs.mode[1] == AutopilotMode.AUTO and fs.airborne[1]
    assert fs.mission_seq[1] == 4
    assert fs.last_seen_s[1] == pytest.approx(50.0)
    assert np.isnan(fs.pos_m[0, 0])  # no position from drone 0 yet
    assert fs.battery[0] == 0.0  # not reported: not called charged


def test_last_seen_follows_heartbeats_in_mission_time(mission: mission_mod.Mission) -> None:
    link, vs, _, clock = bound_link(mission, time_scale=10.0)
    vs[0].heartbeat()
    link.pump()
    clock.t += 2.0  # two wall seconds of silence are twenty mission seconds
    fs = link.poll(300.0)
    assert fs.last_seen_s[0] == pytest.approx(280.0)


def test_absurd_values_are_counted_and_never_applied(mission: mission_mod.Mission) -> None:
    link, vs, _, _ = bound_link(mission)
    lon, lat = mission.frame.to_lonlat([0.0], [0.0])
    vs[0].position(float(lat[0]), float(lon[0]), 10.0)
    vs[0].say(m.MAVLink_sys_status_message(0, 0, 0, 0, 15800, -1, 90, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    link.pump()
    before = link.poll(1.0)
    vs[0].say(m.MAVLink_global_position_int_message(0, 2_000_000_000, 0, 0, 0, 0, 0, 0, 0))
    vs[0].say(m.MAVLink_sys_status_message(0, 0, 0, 0, 15800, -1, -40, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    vs[0].say(m.MAVLink_extended_sys_state_message(0, 9))
    link.pump()
    after = link.poll(1.0)
    np.testing.assert_array_equal(before.pos_m, after.pos_m)
    np.testing.assert_array_equal(before.battery, after.battery)
    reasons = {r for _, r in link.bad_input}
    assert "GLOBAL_POSITION_INT: position out of range" in reasons
    assert "SYS_STATUS: battery_remaining out of range" in reasons
    assert "EXTENDED_SYS_STATE: landed_state out of range" in reasons
    events = link.take_events()
    assert any(e.kind == "link_bad_input" and e.data["count"] == 1 for e in events)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    noise=st.lists(st.binary(min_size=0, max_size=300), max_size=6),
    cut=st.integers(min_value=1, max_value=60),
    flip=st.integers(min_value=0, max_value=59),
)
def test_a_broken_stream_never_crashes_the_link_or_moves_a_drone(
    mission: mission_mod.Mission, noise: list[bytes], cut: int, flip: int
) -> None:
    link, vs, ch, _ = bound_link(mission)
    lon, lat = mission.frame.to_lonlat([10.0], [20.0])
    vs[2].position(float(lat[0]), float(lon[0]), 40.0)
    link.pump()
    before = link.poll(1.0)
    # random bytes, a frame cut short, a frame with one byte flipped (bad CRC)
    frame = bytes(
        m.MAVLink_global_position_int_message(0, 10, 10, 0, 0, 0, 0, 0, 0).pack(vs[2].mav)
    )
    flipped = bytearray(frame)
    flipped[flip % len(frame)] ^= 0x5A
    ch.inbox += [*noise, frame[: cut % len(frame)], bytes(flipped)]
    link.pump()
    after = link.poll(1.0)
    # only a flipped byte that leaves a valid frame (none: the CRC covers it) could move it
    np.testing.assert_array_equal(before.pos_m, after.pos_m)
    assert after.mode.tolist() == before.mode.tolist()


# -- the link: commands -------------------------------------------------------------------------


def answer_everything(link: MavlinkLink, v: Vehicle, rounds: int = 2000) -> list[str]:
    """Play an obliging ArduPilot: answer requests and commands until the link is quiet;
    returns the names of what the link asked for, in order."""
    stored: list[Any] = []
    expecting = 0
    log: list[str] = []
    for _ in range(rounds):
        link.pump()
        msgs = v.heard()
        if not msgs and not link._busy:
            break
        for msg in msgs:
            kind = msg.get_type()
            if kind == "MISSION_COUNT":
                log.append(kind)
                expecting, stored = msg.count, []
                v.say(m.MAVLink_mission_request_int_message(255, 190, 0, msg.mission_type))
            elif kind == "MISSION_ITEM_INT":
                stored.append(msg)
                if len(stored) < expecting:
                    v.say(
                        m.MAVLink_mission_request_int_message(
                            255, 190, len(stored), msg.mission_type
                        )
                    )
                else:
                    v.say(m.MAVLink_mission_ack_message(255, 190, 0, msg.mission_type))
            elif kind == "MISSION_REQUEST_LIST":
                log.append(kind)
                v.say(m.MAVLink_mission_count_message(255, 190, len(stored), msg.mission_type))
            elif kind == "MISSION_REQUEST_INT":
                it = stored[msg.seq]
                v.say(
                    m.MAVLink_mission_item_int_message(
                        255, 190, it.seq, it.frame, it.command, 0, 1, it.param1, it.param2,
                        it.param3, it.param4, it.x, it.y, it.z, it.mission_type,
                    )
                )  # fmt: skip
            elif kind == "COMMAND_LONG":
                log.append(m.enums["MAV_CMD"][msg.command].name)
                if msg.command == m.MAV_CMD_NAV_TAKEOFF:
                    log.append(f"to {msg.param7:g} m")
                v.say(m.MAVLink_command_ack_message(msg.command, 0, 0, 0, 255, 190))
    return log


def test_a_launch_uploads_reads_back_then_arms_and_starts(mission: mission_mod.Mission) -> None:
    link, vs, _, clock = bound_link(mission)
    v = vs[0]
    link.vehicles[0].fence_ok = True  # type: ignore[union-attr]
    route = np.array(
        [[*mission.pad_xy_m[0], 60.0], [200.0, 200.0, 60.0], [*mission.pad_xy_m[0], 60.0]]
    )
    link.upload(0, route)
    link.send(np.array([0]), Command.START_MISSION)
    fs = link.poll(0.0)
    # until the vehicle says so, the drone is reported as the command will leave it
    assert fs.mode[0] == AutopilotMode.AUTO and fs.airborne[0] and fs.mission_seq[0] == 0
    log = answer_everything(link, v)
    assert log == [
        "MISSION_COUNT",
        "MISSION_REQUEST_LIST",
        "MAV_CMD_DO_SET_MODE",
        "MAV_CMD_COMPONENT_ARM_DISARM",
        "MAV_CMD_NAV_TAKEOFF",
        "to 60 m",  # the first altitude in the air: a sortie starts on its pad at 0 m
        "MAV_CMD_MISSION_START",
    ]
    assert not link._busy
    # done, but until the vehicle's next heartbeat says so it is reported as launched
    # (telemetry in flight still shows it disarmed on its pad: it must not count as landed)
    assert link.poll(1.0).mode[0] == AutopilotMode.AUTO and link.poll(1.0).airborne[0]
    clock.t += 0.2
    v.heartbeat(armed=False)  # a vehicle that disarmed again at once: the heartbeat rules
    link.pump()
    fs = link.poll(1.5)
    assert fs.mode[0] == AutopilotMode.STANDBY and not fs.airborne[0]


def test_no_arming_without_a_confirmed_fence(mission: mission_mod.Mission) -> None:
    link, vs, _, _ = bound_link(mission)
    link.upload(1, np.array([[0.0, 0.0, 60.0]]))
    link.send(np.array([1]), Command.START_MISSION)
    log = answer_everything(link, vs[1])
    assert "MAV_CMD_COMPONENT_ARM_DISARM" not in log
    events = link.take_events()
    failed = [e for e in events if e.kind == "link_command_failed"]
    assert failed and "geofence" in failed[0].data["reason"]


def test_fence_upload_is_read_back_before_it_counts(mission: mission_mod.Mission) -> None:
    link, vs, _, _ = bound_link(mission)
    link.upload_fence()
    for v in vs:
        answer_everything(link, v)
    assert all(v is not None and v.fence_ok for v in link.vehicles)


def test_a_later_command_supersedes_a_launch_in_progress(mission: mission_mod.Mission) -> None:
    link, vs, _, _ = bound_link(mission)
    link.upload(2, np.array([[0.0, 0.0, 60.0], [100.0, 0.0, 60.0]]))
    link.send(np.array([2]), Command.START_MISSION)
    link.send(np.array([2]), Command.RETURN)
    assert link.poll(0.0).mode[2] == AutopilotMode.RTL
    log = answer_everything(link, vs[2])
    assert log[-1] == "MAV_CMD_NAV_RETURN_TO_LAUNCH" and "MISSION_REQUEST_LIST" not in log
    kinds = [e.kind for e in link.take_events()]
    assert "link_command_superseded" in kinds


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (Command.RETURN, "MAV_CMD_NAV_RETURN_TO_LAUNCH"),
        (Command.LAND, "MAV_CMD_NAV_LAND"),
        (Command.HOLD, "MAV_CMD_DO_SET_MODE"),
        (Command.RESUME, "MAV_CMD_DO_SET_MODE"),
    ],
)
def test_commands_map_to_mavlink(
    mission: mission_mod.Mission, command: Command, expected: str
) -> None:
    link, vs, _, _ = bound_link(mission)
    link.send(np.array([0]), command)
    assert answer_everything(link, vs[0]) == [expected]


def test_px4_modes_are_set_as_px4_names_them(mission: mission_mod.Mission) -> None:
    link, (ch,), _ = make_link(mission)
    vs = [Vehicle(ch, s, Autopilot.PX4) for s in (1, 2, 3)]
    for v in vs:
        v.heartbeat()
    link.pump()
    link.bind_discovered()
    link.send(np.array([0]), Command.HOLD)
    link.pump()
    (cmd,) = [x for x in vs[0].heard() if x.get_type() == "COMMAND_LONG"]
    assert (cmd.param2, cmd.param3) == (Px4Main.AUTO, Px4Auto.LOITER)


def test_the_allowlist_refuses_actuator_commands(mission: mission_mod.Mission) -> None:
    link, _, ch, _ = bound_link(mission)
    servo = m.MAVLink_command_long_message(1, 1, m.MAV_CMD_DO_SET_SERVO, 0, 9, 1900, 0, 0, 0, 0, 0)
    sent = len(ch.sent)
    with pytest.raises(CommandRefused, match="MAV_CMD_DO_SET_SERVO"):
        link._emit(0, servo)
    assert len(ch.sent) == sent
    assert link.refused == 1
    assert any(e.kind == "link_refused" for e in link.take_events())


@pytest.mark.parametrize(
    "command",
    [
        m.MAV_CMD_DO_SET_SERVO,
        m.MAV_CMD_DO_REPEAT_SERVO,
        m.MAV_CMD_DO_SET_ACTUATOR,
        m.MAV_CMD_DO_GRIPPER,
        m.MAV_CMD_DO_WINCH,
        m.MAV_CMD_DO_SET_RELAY,
        m.MAV_CMD_DO_PARACHUTE,
        m.MAV_CMD_PAYLOAD_PREPARE_DEPLOY,
        m.MAV_CMD_PAYLOAD_CONTROL_DEPLOY,
        m.MAV_CMD_DO_MOTOR_TEST,
        m.MAV_CMD_DO_FLIGHTTERMINATION,
    ],
)
def test_no_actuator_command_is_on_the_allowlist(command: int) -> None:
    assert command not in ALLOWED_COMMANDS
    with pytest.raises(CommandRefused):
        check_outgoing(m.MAVLink_command_long_message(1, 1, command, 0, 0, 0, 0, 0, 0, 0, 0))
    item = Item(0, command).message(new_mav(255, 190), 1, 1)
    with pytest.raises(CommandRefused):
        check_outgoing(item)


def test_actuator_messages_are_refused() -> None:
    override = m.MAVLink_rc_channels_override_message(1, 1, *([1500] * 18))
    with pytest.raises(CommandRefused, match="RC_CHANNELS_OVERRIDE"):
        check_outgoing(override)


# -- signing -------------------------------------------------------------------------------------

KEY = hashlib.sha256(b"skysweep test key").digest()


def test_signed_link_rejects_unsigned_wrong_key_and_replayed(mission: mission_mod.Mission) -> None:
    link, (ch,), _ = make_link(mission, signing_key=KEY)
    good = Vehicle(ch, 1)
    signing.enable(good.mav, KEY)
    good.heartbeat()
    link.pump()
    assert (0, 1) in link.heard
    unsigned = Vehicle(ch, 2)
    unsigned.heartbeat()
    wrong = Vehicle(ch, 3)
    signing.enable(wrong.mav, hashlib.sha256(b"another key").digest())
    wrong.heartbeat()
    link.pump()
    assert set(link.heard) == {(0, 1)}
    # a replay: an old signed frame sent again after newer ones
    old = good.say(m.MAVLink_statustext_message(m.MAV_SEVERITY_CRITICAL, b"first", 0, 0))
    good.heartbeat()
    link.pump()
    link.bind_discovered()
    link.take_events()
    ch.inbox.append(old)
    link.pump()
    assert not [e for e in link.take_events() if e.kind == "statustext"]
    assert link.bad_input[("fake:0", "signature rejected")] == 3
    # what the link sends is signed with the key, and the key is nowhere in its reports
    rx = new_mav(1, 1)
    signing.enable(rx, KEY, sign_outgoing=False)
    assert all(
        msg.get_type() != "BAD_DATA" for data in ch.sent for msg in rx.parse_buffer(data) or []
    )
    assert KEY.hex() not in repr(link.take_events()) and KEY.hex() not in repr(vars(link))


def test_a_message_signed_with_another_key_does_not_block_the_real_sender() -> None:
    """pymavlink moves a stream's replay stamp on before it checks the signature: a frame
    signed with another key for the same link, system and component, stamped later, made the
    real sender's next frames be refused as replays (a flaky test of the vehicle facade's
    signing). The signature is now checked first."""
    rx = new_mav(255, 190)
    signing.enable(rx, KEY, sign_outgoing=False)
    real, forger = new_mav(1, 1), new_mav(1, 1)
    signing.enable(real, KEY)
    signing.enable(forger, hashlib.sha256(b"another key").digest())
    forger.signing.timestamp = real.signing.timestamp + 1_000_000  # ten seconds later

    def kinds(mav: Any, text: bytes) -> list[str]:
        frame = m.MAVLink_statustext_message(m.MAV_SEVERITY_INFO, text, 0, 0).pack(mav)
        return [x.get_type() for x in rx.parse_buffer(frame) or []]

    assert kinds(real, b"first") == ["STATUSTEXT"]
    assert kinds(forger, b"forged") == ["BAD_DATA"]
    assert kinds(real, b"second") == ["STATUSTEXT"]
    # a replay is refused as before, and so is a new stream more than a minute behind
    frame = m.MAVLink_statustext_message(m.MAV_SEVERITY_INFO, b"third", 0, 0).pack(real)
    assert [x.get_type() for x in rx.parse_buffer(frame) or []] == ["STATUSTEXT"]
    assert [x.get_type() for x in rx.parse_buffer(frame) or []] == ["BAD_DATA"]
    stale = new_mav(2, 1)
    signing.enable(stale, KEY)
    stale.signing.timestamp = rx.signing.timestamp - 7_000_000
    assert kinds(stale, b"late") == ["BAD_DATA"]


def test_key_file_forms(tmp_path: Path) -> None:
    hexfile = tmp_path / "k.hex"
    hexfile.write_text(KEY.hex() + "\n")
    raw = tmp_path / "k.bin"
    raw.write_bytes(KEY)
    phrase = tmp_path / "k.txt"
    phrase.write_text("correct horse battery staple\n")
    assert signing.load_key(hexfile) == KEY
    assert signing.load_key(raw) == KEY
    assert signing.load_key(phrase) == hashlib.sha256(b"correct horse battery staple").digest()
    (tmp_path / "empty").write_text("")
    with pytest.raises(LinkError, match="empty"):
        signing.load_key(tmp_path / "empty")
    with pytest.raises(LinkError, match="cannot read"):
        signing.load_key(tmp_path / "missing")


# -- endpoints -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "host", "port"),
    [
        ("udp:127.0.0.1:14550", "udp", "127.0.0.1", 14550),
        ("udpin:0.0.0.0:14560", "udpin", "0.0.0.0", 14560),
        ("udpout:10.0.0.2:14550", "udp", "10.0.0.2", 14550),
        ("tcp:localhost:5760", "tcp", "localhost", 5760),
        ("serial:/dev/ttyUSB0:57600", "serial", "/dev/ttyUSB0", 57600),
        ("serial:/dev/ttyACM0", "serial", "/dev/ttyACM0", 57600),
    ],
)
def test_endpoints_parse(text: str, kind: str, host: str, port: int) -> None:
    e = Endpoint.parse(text)
    assert (e.kind, e.host, e.port) == (kind, host, port)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("http://x", "unknown kind"),
        ("udp:127.0.0.1:abc", "not a number"),
        ("udp:127.0.0.1:70000", "out of range"),
        ("serial:", "needs a device"),
    ],
)
def test_bad_endpoints_name_the_text(text: str, problem: str) -> None:
    with pytest.raises(LinkError, match=problem) as err:
        Endpoint.parse(text)
    assert text in str(err.value)


def test_explicit_vehicle_map_is_checked(mission: mission_mod.Mission) -> None:
    with pytest.raises(LinkError, match="not a drone"):
        make_link(mission, vehicles={"nobody": (0, 1)})
    ids = mission.fleet.ids
    with pytest.raises(LinkError, match="both name system 4"):
        make_link(mission, vehicles={ids[0]: (0, 4), ids[1]: (0, 4)})
    with pytest.raises(LinkError, match="no vehicle address"):
        make_link(mission, vehicles={ids[0]: (3, 4)})


def test_a_fence_change_waits_for_the_command_in_hand(mission: mission_mod.Mission) -> None:
    link, vs, _, _ = bound_link(mission)
    link.send(np.array([0]), Command.RETURN)
    zone = mission.keep_out[0].geometry.buffer(50.0)
    link.set_fence([zone])
    log = answer_everything(link, vs[0])
    # the return is not cancelled: it goes first, then the new fence, read back
    assert log[:3] == ["MAV_CMD_NAV_RETURN_TO_LAUNCH", "MISSION_COUNT", "MISSION_REQUEST_LIST"]
    assert link.vehicles[0].fence_ok  # type: ignore[union-attr]
    assert not any(e.kind == "link_command_superseded" for e in link.take_events())


def test_a_command_during_a_fence_upload_goes_first_and_the_fence_follows(
    mission: mission_mod.Mission,
) -> None:
    link, vs, _, _ = bound_link(mission)
    link.upload_fence()
    link.pump()
    link.send(np.array([1]), Command.LAND)
    log = answer_everything(link, vs[1])
    # the fence upload had begun (its MISSION_COUNT was out); the landing cut in, the fence
    # was uploaded again after it, and read back
    assert log[:4] == ["MISSION_COUNT", "MAV_CMD_NAV_LAND", "MISSION_COUNT", "MISSION_REQUEST_LIST"]
    assert link.vehicles[1].fence_ok  # type: ignore[union-attr]


def test_a_silent_heartbeat_is_a_lost_link_even_with_positions(
    mission: mission_mod.Mission,
) -> None:
    link, vs, _, clock = bound_link(mission)
    lon, lat = mission.frame.to_lonlat([0.0], [0.0])
    vs[0].heartbeat()
    vs[0].position(float(lat[0]), float(lon[0]))
    link.pump()
    clock.t += 12.0
    vs[0].position(float(lat[0]), float(lon[0]))  # positions go on, heartbeats stopped
    link.pump()
    assert link.poll(100.0).last_seen_s[0] == pytest.approx(88.0)


def test_goto_sets_guided_then_a_position_target(mission: mission_mod.Mission) -> None:
    link, vs, _, _ = bound_link(mission)
    link.goto(mission.fleet.ids[0], 250.0, -120.0, 45.0)
    link.pump()
    msgs = [x for x in vs[0].heard() if x.get_type() != "HEARTBEAT"]
    assert [x.get_type() for x in msgs] == ["COMMAND_LONG"]
    assert msgs[0].command == m.MAV_CMD_DO_SET_MODE and msgs[0].param2 == CopterMode.GUIDED
    vs[0].say(m.MAVLink_command_ack_message(m.MAV_CMD_DO_SET_MODE, 0, 0, 0, 255, 190))
    link.pump()
    (target,) = [x for x in vs[0].heard() if x.get_type() == "SET_POSITION_TARGET_GLOBAL_INT"]
    lon, lat = mission.frame.to_lonlat([250.0], [-120.0])
    assert target.lat_int == round(float(lat[0]) * 1e7)
    assert target.lon_int == round(float(lon[0]) * 1e7)
    assert target.alt == pytest.approx(45.0)
    assert target.coordinate_frame == m.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT


def test_tcp_and_serial_channels_carry_frames(mission: mission_mod.Mission) -> None:
    import os
    import socket
    import time

    from skysweep.mavlink.transport import SerialChannel, TcpChannel

    frame = bytes(
        m.MAVLink_heartbeat_message(m.MAV_TYPE_QUADROTOR, Autopilot.PX4, 0, 0, 3, 3).pack(
            new_mav(7, 1)
        )
    )
    server = socket.create_server(("127.0.0.1", 0))
    tcp = TcpChannel("tcp:test", server.getsockname())
    peer, _ = server.accept()
    peer.sendall(frame)
    master, slave = os.openpty()
    serial = SerialChannel("serial:pty", os.ttyname(slave), 57600)
    os.write(master, frame)
    link = MavlinkLink(mission, channels=[tcp, serial])
    deadline = time.monotonic() + 5.0
    while len(link.heard) < 2 and time.monotonic() < deadline:
        link.pump()
        time.sleep(0.01)
    assert link.heard == {(0, 7): Autopilot.PX4, (1, 7): Autopilot.PX4}
    # and what the link sends reaches the other end: its own heartbeat, once a second
    got = peer.recv(4096)
    assert got and new_mav(255, 190).parse_buffer(got)[0].get_type() == "HEARTBEAT"
    assert os.read(master, 4096)
    link.close()
    peer.close()
    server.close()
    os.close(master)
    os.close(slave)


def test_run_names_a_bad_link_vehicle_map_or_key(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from skysweep.cli import app

    path = tmp_path / "m.yaml"
    path.write_text(MISSION)
    runner = CliRunner()
    bad = runner.invoke(app, ["run", str(path), "--link", "http://127.0.0.1:14550"])
    assert bad.exit_code == 2 and "http://127.0.0.1:14550" in bad.output
    assert "unknown kind" in bad.output
    vmap = tmp_path / "vehicles.yaml"
    vmap.write_text("quad-001: seventeen\n")
    bad = runner.invoke(
        app, ["run", str(path), "--link", "udp:127.0.0.1:14550", "--vehicles", str(vmap)]
    )
    assert bad.exit_code == 2 and "vehicles.yaml" in bad.output and "LINK:SYSTEM" in bad.output
    bad = runner.invoke(
        app,
        ["run", str(path), "--link", "udp:127.0.0.1:14550", "--signing-key", str(tmp_path / "k")],
    )
    assert bad.exit_code == 2 and "cannot read the signing key" in bad.output


def test_the_link_thread_survives_an_error_and_reports_it(mission: mission_mod.Mission) -> None:
    import time

    link, vs, _, _ = bound_link(mission)
    link.wall = time.monotonic  # the thread runs on the real clock

    def broken(msg: Any, i: int) -> None:
        raise ValueError("boom")

    link._handlers[m.MAVLINK_MSG_ID_SYS_STATUS] = broken
    link.start()
    try:
        vs[0].say(
            m.MAVLink_sys_status_message(0, 0, 0, 0, 15800, -1, 50, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        )
        deadline = time.monotonic() + 5.0
        while not link.bad_input and time.monotonic() < deadline:
            time.sleep(0.01)
        lon, lat = mission.frame.to_lonlat([5.0], [5.0])
        vs[0].position(float(lat[0]), float(lon[0]), 10.0)
        deadline = time.monotonic() + 5.0
        while not link.pos_valid[0] and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        link.close()
    assert link.pos_valid[0]  # still ingesting after the error
    ((source, reason),) = link.bad_input
    assert source == "link" and "ValueError: boom" in reason


def test_connect_names_a_vehicle_that_is_not_on_its_pad(mission: mission_mod.Mission) -> None:
    import time

    link, vs, _, _ = bound_link(mission)
    link.wall = time.monotonic
    pads = mission.pad_xy_m
    for k, v in enumerate(vs):
        x, y = pads[k] + (np.array([300.0, 0.0]) if k == 1 else 0.0)
        lon, lat = mission.frame.to_lonlat([x], [y])
        v.position(float(lat[0]), float(lon[0]))
        v.battery()
    link.upload_fence = lambda *a: None  # type: ignore[method-assign]  # no fence exchange here
    problems = link.connect(timeout_s=2.0)
    off = [p for p in problems if "from its pad" in p]
    assert len(off) == 1 and mission.fleet.ids[1] in off[0] and "300 m" in off[0]


def test_connect_waits_for_each_vehicles_battery_and_names_one_that_never_reports(
    mission: mission_mod.Mission,
) -> None:
    """Until a vehicle reports its charge the link reads it as flat, and a launch on it would
    be refused for energy: connect waits for the report and names a vehicle that never sends
    one (it is not flown)."""
    import time

    link, vs, _, _ = bound_link(mission)
    link.wall = time.monotonic
    for k, v in enumerate(vs):
        lon, lat = mission.frame.to_lonlat(*mission.pad_xy_m[k])
        v.position(float(lat), float(lon))
        if k != 2:
            v.battery(97)
    link.upload_fence = lambda *a: None  # type: ignore[method-assign]  # no fence exchange here
    problems = link.connect(timeout_s=1.0)
    assert [p for p in problems if "battery" in p] == [
        f"drone {mission.fleet.ids[2]}: no battery report from system 3 on fake:0"
    ]
    assert link.battery[0] == 0.97 and not link.battery_known[2]
