"""The telemetry fast path agrees with pymavlink on everything: the same input, fed to a link
with the fast path and to one without, leaves the same telemetry table, the same message count
and the same bad-input counts, whatever the bytes (valid telemetry, other messages, signed and
broken frames, noise)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skysweep import mission as mission_mod
from skysweep.mavlink import fastpath, signing
from skysweep.mavlink.dialect import mavlink as m
from skysweep.mavlink.dialect import new_mav
from skysweep.mavlink.link import MavlinkLink

MISSION = """
name: fast path
area: {type: Polygon, coordinates: [[[8.000, 46.500], [8.012, 46.500], [8.012, 46.509],
       [8.000, 46.509], [8.000, 46.500]]]}
launch_sites:
  - {name: base, lon: 8.002, lat: 46.501, pads: 2}
fleet:
  - {model: quad, count: 3, launch_site: base, speed_mps: 10, endurance_s: 900, swath_m: 50}
"""

TABLE = (
    "lat_e7",
    "lon_e7",
    "pos_valid",
    "rel_alt_m",
    "vel_ned",
    "battery",
    "battery_known",
    "voltage_v",
    "landed_state",
    "mission_current",
    "route_seq",
    "position_wall",
    "heartbeat_wall",
    "custom_mode",
)


@pytest.fixture(scope="module")
def mission(tmp_path_factory: pytest.TempPathFactory) -> mission_mod.Mission:
    path = tmp_path_factory.mktemp("m") / "m.yaml"
    path.write_text(MISSION)
    return mission_mod.load(path)


class Channel:
    name = "fake:0"

    def __init__(self) -> None:
        self.inbox: list[bytes] = []

    def receive(self, now_s: float) -> list[tuple[bytes, Any]]:
        out, self.inbox = self.inbox, []
        return [(d, None) for d in out]

    def send(self, data: bytes, to: Any = None) -> None:
        pass

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        pass


def link_pair(mission: mission_mod.Mission) -> list[tuple[MavlinkLink, Channel]]:
    out = []
    for fast in (True, False):
        ch = Channel()
        link = MavlinkLink(
            mission, channels=[ch], wall=lambda: 100.0, vehicles={"quad-001": (0, 1)}
        )
        link.fast_path = fast
        out.append((link, ch))
    return out


SYSTEMS = st.sampled_from([1, 1, 1, 2, 7])  # bound, unbound, unknown


def _i32(lo: int = -(2**31), hi: int = 2**31 - 1) -> st.SearchStrategy[int]:
    return st.integers(lo, hi)


def hot_message() -> st.SearchStrategy[Any]:
    i16 = st.integers(-(2**15), 2**15 - 1)
    u16 = st.integers(0, 2**16 - 1)
    i8 = st.integers(-128, 127)
    position = st.builds(
        m.MAVLink_global_position_int_message,
        st.integers(0, 2**32 - 1),
        st.one_of(st.just(0), _i32(), _i32(465_000_000, 465_100_000)),
        st.one_of(st.just(0), _i32(), _i32(80_000_000, 80_100_000)),
        _i32(),
        _i32(),
        i16,
        i16,
        i16,
        u16,
    )
    status = st.builds(
        lambda mv, pct: m.MAVLink_sys_status_message(
            0, 0, 0, 0, mv, -1, pct, 0, 0, 0, 0, 0, 0, 0, 0, 0
        ),
        u16,
        i8,
    )
    landed = st.builds(m.MAVLink_extended_sys_state_message, st.integers(0, 4), st.integers(0, 9))
    current = st.builds(
        lambda seq: m.MAVLink_mission_current_message(seq, 0, 0, 0), st.integers(0, 2**16 - 1)
    )
    return st.one_of(position, status, landed, current)


def other_message() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(
            lambda custom: m.MAVLink_heartbeat_message(
                m.MAV_TYPE_QUADROTOR, m.MAV_AUTOPILOT_ARDUPILOTMEGA, 1, custom, 3, 3
            ),
            st.integers(0, 20),
        ),
        st.just(m.MAVLink_command_ack_message(m.MAV_CMD_NAV_LAND, 0)),
        st.builds(
            lambda v: m.MAVLink_battery_status_message(0, 0, 0, 0, [v] * 10, 0, 0, 0, 70),
            st.integers(0, 2**16 - 1),
        ),
    )


@st.composite
def frame(draw: st.DrawFn) -> bytes:
    system = draw(SYSTEMS)
    component = draw(st.sampled_from([1, 1, 1, 190]))
    msg = draw(st.one_of(hot_message(), hot_message(), other_message()))
    mav = new_mav(system, component)
    if draw(st.integers(0, 9)) == 0:
        signing.enable(mav, b"k" * 32, link_id=0)
    data = bytearray(msg.pack(mav))
    damage = draw(st.integers(0, 5))
    if damage == 0 and len(data) > 1:  # a flipped byte
        at = draw(st.integers(0, len(data) - 1))
        data[at] ^= draw(st.integers(1, 255))
    elif damage == 1:  # cut short
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == 2:  # noise before it
        data = bytearray(draw(st.binary(max_size=8))) + data
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datagrams=st.lists(st.lists(frame(), min_size=1, max_size=6), max_size=12))
def test_fast_path_and_pymavlink_leave_the_same_state(
    mission: mission_mod.Mission, datagrams: list[list[bytes]]
) -> None:
    (fast, fch), (slow, sch) = link_pair(mission)
    for chunks in datagrams:
        for link, ch in ((fast, fch), (slow, sch)):
            ch.inbox.append(b"".join(chunks))
            link.pump()
    assert fast.messages == slow.messages
    assert fast.bad_input == slow.bad_input
    for name in TABLE:
        a, b = getattr(fast, name), getattr(slow, name)
        assert np.array_equal(a, b, equal_nan=True), name


def test_telemetry_takes_the_fast_path_and_the_rest_goes_to_pymavlink() -> None:
    mav = new_mav(3, 1)
    pos = m.MAVLink_global_position_int_message(5, 465_000_000, 80_000_000, 1, 2, 3, 4, 5, 6)
    ack = m.MAVLink_command_ack_message(m.MAV_CMD_NAV_LAND, 0)
    pos_bytes, ack_bytes = bytes(pos.pack(mav)), bytes(ack.pack(mav))
    first, second, rest = fastpath.frames(pos_bytes + ack_bytes + b"\x00junk")
    assert first[:3] == (m.MAVLINK_MSG_ID_GLOBAL_POSITION_INT, 3, 1)  # type: ignore[index]
    fields = first[3]  # type: ignore[index]
    assert (fields.lat, fields.lon, fields.relative_alt, fields.hdg) == (
        465_000_000,
        80_000_000,
        2,
        6,
    )
    assert second == ack_bytes
    assert rest == b"\x00junk"


def test_a_signed_link_never_takes_the_fast_path(mission: mission_mod.Mission) -> None:
    link = MavlinkLink(mission, channels=[Channel()], wall=lambda: 0.0, signing_key=b"k" * 32)
    assert not link.fast_path
