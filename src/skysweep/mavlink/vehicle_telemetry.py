"""What the simulated vehicles (:mod:`skysweep.mavlink.vehicles`) report, as ArduPilot Copter
fills each message: one encoder per :class:`~skysweep.mavlink.vehicle_streams.Kind`, computing
its fields for every vehicle due at once with numpy; only building and packing the messages is
per vehicle.

Positions are the autopilot's estimate (truth plus GPS error) in WGS84, 1e-7 degrees, lat = lon
= 0 until the position is valid; altitudes are above home with home at 0 m AMSL; velocities are
NED in cm/s. The battery is a 4-cell pack: the World's per-cell voltage × 4.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from skysweep.mavlink.dialect import mavlink as m
from skysweep.mavlink.modes import CopterMode
from skysweep.mavlink.vehicle_streams import Kind
from skysweep.telemetry import AutopilotMode

if TYPE_CHECKING:
    from skysweep.mavlink.vehicles import VehicleFacade

#: Cells of the simulated pack (voltages are per cell in the World).
CELLS = 4
#: Charge (fraction of a full pack) at which the battery is LOW, and CRITICAL (the heartbeat's
#: system status says so).
LOW_CHARGE = 0.25
CRITICAL_CHARGE = 0.10
#: The ArduPilot Copter version reported (4.5.7, official).
FIRMWARE = (4 << 24) | (5 << 16) | (7 << 8) | m.FIRMWARE_VERSION_TYPE_OFFICIAL

_STANDBY = AutopilotMode.STANDBY
#: Modes without position control (no GUIDED_ENABLED flag in the heartbeat).
_MANUAL = [int(CopterMode.STABILIZE), int(CopterMode.ALT_HOLD)]
_SENSORS = (
    m.MAV_SYS_STATUS_SENSOR_3D_GYRO
    | m.MAV_SYS_STATUS_SENSOR_3D_ACCEL
    | m.MAV_SYS_STATUS_SENSOR_3D_MAG
    | m.MAV_SYS_STATUS_SENSOR_ABSOLUTE_PRESSURE
    | m.MAV_SYS_STATUS_SENSOR_GPS
    | m.MAV_SYS_STATUS_SENSOR_ANGULAR_RATE_CONTROL
    | m.MAV_SYS_STATUS_SENSOR_ATTITUDE_STABILIZATION
    | m.MAV_SYS_STATUS_SENSOR_Z_ALTITUDE_CONTROL
    | m.MAV_SYS_STATUS_SENSOR_XY_POSITION_CONTROL
    | m.MAV_SYS_STATUS_SENSOR_MOTOR_OUTPUTS
    | m.MAV_SYS_STATUS_SENSOR_BATTERY
    | m.MAV_SYS_STATUS_PREARM_CHECK
)
#: Unhealthy until the position is valid (QGroundControl reads "ready to arm" from these).
_NEED_FIX = m.MAV_SYS_STATUS_SENSOR_GPS | m.MAV_SYS_STATUS_PREARM_CHECK
_CAPABILITIES = (
    m.MAV_PROTOCOL_CAPABILITY_MISSION_FLOAT
    | m.MAV_PROTOCOL_CAPABILITY_MISSION_INT
    | m.MAV_PROTOCOL_CAPABILITY_COMMAND_INT
    | m.MAV_PROTOCOL_CAPABILITY_SET_POSITION_TARGET_GLOBAL_INT
    | m.MAV_PROTOCOL_CAPABILITY_MAVLINK2
    | m.MAV_PROTOCOL_CAPABILITY_MISSION_FENCE
    | m.MAV_PROTOCOL_CAPABILITY_MISSION_RALLY
)

Idx = NDArray[np.intp]


def _boot_ms(v: VehicleFacade) -> int:
    return int(v.now_s * 1000.0) & 0xFFFFFFFF


def _flying(v: VehicleFacade, idx: Idx) -> NDArray[np.bool_]:
    w = v.world
    flying: NDArray[np.bool_] = w.alive[idx] & (w.mode[idx] != _STANDBY)
    return flying


def heartbeat(v: VehicleFacade, idx: Idx) -> None:
    """Copter's base mode flags (armed, position control), its mode number, and STANDBY on
    the ground / ACTIVE flying / CRITICAL on a critical battery."""
    flying = _flying(v, idx)
    cmode = v.ap.cmode[idx]
    manual = np.isin(cmode, _MANUAL)
    base = (
        m.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
        | m.MAV_MODE_FLAG_STABILIZE_ENABLED
        | m.MAV_MODE_FLAG_MANUAL_INPUT_ENABLED
        | np.where(v.ap.armed[idx], m.MAV_MODE_FLAG_SAFETY_ARMED, 0)
        | np.where(flying & ~manual, m.MAV_MODE_FLAG_GUIDED_ENABLED, 0)
    )
    status = np.where(
        v.world.charge[idx] <= CRITICAL_CHARGE,
        m.MAV_STATE_CRITICAL,
        np.where(flying, m.MAV_STATE_ACTIVE, m.MAV_STATE_STANDBY),
    )
    quad, ardupilot = m.MAV_TYPE_QUADROTOR, m.MAV_AUTOPILOT_ARDUPILOTMEGA
    send = v.io.send
    rows = zip(idx.tolist(), base.tolist(), cmode.tolist(), status.tolist(), strict=True)
    for i, b, c, s in rows:
        send(i, m.MAVLink_heartbeat_message(quad, ardupilot, b, c, s, 3))


def global_position(v: VehicleFacade, idx: Idx) -> None:
    w = v.world
    if v.ap.fix:
        est = w.pos[idx, :2] + w.nav_err[idx]
        lon, lat = v.frame.to_lonlat(est[:, 0], est[:, 1])  # one projection for all
        lat_e7 = np.rint(lat * 1e7).astype(np.int64).tolist()
        lon_e7 = np.rint(lon * 1e7).astype(np.int64).tolist()
    else:  # ArduPilot's "no position yet"
        lat_e7 = lon_e7 = [0] * len(idx)
    alt = np.rint(w.pos[idx, 2] * 1000.0).astype(np.int64).tolist()
    vel = w.vel[idx]
    ned = np.column_stack([vel[:, 1], vel[:, 0], -vel[:, 2]]) * 100.0
    vn, ve, vd = np.clip(np.rint(ned), -32767, 32767).astype(np.int64).T.tolist()
    hdg = (np.rint(v.ap.heading_deg[idx] * 100.0).astype(np.int64) % 36000).tolist()
    tb = _boot_ms(v)
    send = v.io.send
    for k, i in enumerate(idx.tolist()):
        msg = m.MAVLink_global_position_int_message(
            tb, lat_e7[k], lon_e7[k], alt[k], alt[k], vn[k], ve[k], vd[k], hdg[k]
        )
        send(i, msg)


def _percent(v: VehicleFacade, idx: Idx) -> list[int]:
    pct: list[int] = np.clip(np.rint(v.world.charge[idx] * 100.0), 0, 100).astype(int).tolist()
    return pct


def sys_status(v: VehicleFacade, idx: Idx) -> None:
    health = _SENSORS if v.ap.fix else _SENSORS & ~_NEED_FIX
    # ArduPilot reports the fence healthy whenever it has not been breached (even with none):
    # without the bit MAVProxy announces a fence breach on connect
    health |= m.MAV_SYS_STATUS_GEOFENCE
    mv = np.clip(np.rint(v.world.voltage[idx] * CELLS * 1000.0), 0, 65534).astype(int).tolist()
    send = v.io.send
    for i, volt, pct in zip(idx.tolist(), mv, _percent(v, idx), strict=True):
        send(
            i,
            m.MAVLink_sys_status_message(
                _SENSORS, _SENSORS, health, 200, volt, -1, pct, 0, 0, 0, 0, 0, 0
            ),
        )


def battery_status(v: VehicleFacade, idx: Idx) -> None:
    cell = np.clip(np.rint(v.world.voltage[idx] * 1000.0), 0, 65534).astype(int).tolist()
    send = v.io.send
    for i, mv, pct in zip(idx.tolist(), cell, _percent(v, idx), strict=True):
        if pct <= 100 * CRITICAL_CHARGE:
            state = m.MAV_BATTERY_CHARGE_STATE_CRITICAL
        elif pct <= 100 * LOW_CHARGE:
            state = m.MAV_BATTERY_CHARGE_STATE_LOW
        else:
            state = m.MAV_BATTERY_CHARGE_STATE_OK
        cells = [mv] * CELLS + [65535] * (10 - CELLS)
        msg = m.MAVLink_battery_status_message(
            0, m.MAV_BATTERY_FUNCTION_ALL, m.MAV_BATTERY_TYPE_LIPO, 32767, cells, -1, -1, -1, pct,
            0, state,
        )  # fmt: skip
        send(i, msg)


def extended_sys_state(v: VehicleFacade, idx: Idx) -> None:
    """Landed state: on the ground; taking off (below the take-off altitude); landing (LAND,
    or the end of an RTL over home); else in the air."""
    w = v.world
    mode = w.mode[idx]
    flying = _flying(v, idx)
    near_home = np.hypot(*(w.pos[idx, :2] - w.home[idx]).T) < 4.0
    landing = (mode == AutopilotMode.LAND) | ((mode == AutopilotMode.RTL) & near_home)
    with np.errstate(invalid="ignore"):
        rising = w.pos[idx, 2] < v.ap.takeoff_alt[idx] - 1.0  # NaN (no take-off) is False
    landed = np.select(
        [~flying, landing, rising],
        [m.MAV_LANDED_STATE_ON_GROUND, m.MAV_LANDED_STATE_LANDING, m.MAV_LANDED_STATE_TAKEOFF],
        m.MAV_LANDED_STATE_IN_AIR,
    )
    send = v.io.send
    for i, state in zip(idx.tolist(), landed.tolist(), strict=True):
        send(i, m.MAVLink_extended_sys_state_message(m.MAV_VTOL_STATE_UNDEFINED, state))


def mission_current(v: VehicleFacade, idx: Idx) -> None:
    """The item flown to (MAVLink seq), the mission's size without home, and its state."""
    auto = v.ap.cmode[idx] == CopterMode.AUTO
    flying = _flying(v, idx)
    send = v.io.send
    for k, i in enumerate(idx.tolist()):
        plan = v.ap.missions.plans[i]
        seq = v.ap.current_item(i)
        if plan is None:
            total, state = 0xFFFF, m.MISSION_STATE_NO_MISSION
        else:
            total = plan.count - 1
            if v.ap.on_mission[i] and v.ap.route_done(i):
                state = m.MISSION_STATE_COMPLETE
            elif v.ap.on_mission[i] and auto[k]:
                state = m.MISSION_STATE_ACTIVE
            elif seq > 1 and flying[k]:
                state = m.MISSION_STATE_PAUSED
            else:
                state = m.MISSION_STATE_NOT_STARTED
        send(i, m.MAVLink_mission_current_message(seq, total, state, 1 if auto[k] else 2))


def attitude(v: VehicleFacade, idx: Idx) -> None:
    yaw = np.radians((v.ap.heading_deg[idx] + 180.0) % 360.0 - 180.0).tolist()
    tb = _boot_ms(v)
    send = v.io.send
    for i, y in zip(idx.tolist(), yaw, strict=True):
        send(i, m.MAVLink_attitude_message(tb, 0.0, 0.0, y, 0.0, 0.0, 0.0))


def vfr_hud(v: VehicleFacade, idx: Idx) -> None:
    w = v.world
    vel = w.vel[idx]
    speed = np.hypot(vel[:, 0], vel[:, 1]).tolist()
    throttle = np.where(_flying(v, idx), 50, 0).tolist()
    hdg = (np.rint(v.ap.heading_deg[idx]).astype(int) % 360).tolist()
    alt = w.pos[idx, 2].tolist()
    climb = vel[:, 2].tolist()
    send = v.io.send
    for k, i in enumerate(idx.tolist()):
        s = speed[k]
        send(i, m.MAVLink_vfr_hud_message(s, s, hdg[k], throttle[k], alt[k], climb[k]))


def home_position(v: VehicleFacade, idx: Idx) -> None:
    """Home: the drone's pad, at 0 m; the local frame's origin is home too."""
    us = int(v.now_s * 1e6)
    send = v.io.send
    for i in idx.tolist():
        lat, lon = int(v.ap.home_lat_e7[i]), int(v.ap.home_lon_e7[i])
        q = [1.0, 0.0, 0.0, 0.0]
        send(i, m.MAVLink_home_position_message(lat, lon, 0, 0.0, 0.0, 0.0, q, 0, 0, 0, us))


def autopilot_version(v: VehicleFacade, i: int) -> None:
    zeros = [0] * 8
    v.io.send(
        i,
        m.MAVLink_autopilot_version_message(
            _CAPABILITIES, FIRMWARE, 0, 0, 0, zeros, zeros, zeros, 0, 0, i + 1
        ),
    )


#: The encoder of every kind, in the order a pass sends them (heartbeat first).
ENCODERS: dict[Kind, Callable[[VehicleFacade, Idx], None]] = {
    Kind.HEARTBEAT: heartbeat,
    Kind.GLOBAL_POSITION_INT: global_position,
    Kind.SYS_STATUS: sys_status,
    Kind.MISSION_CURRENT: mission_current,
    Kind.EXTENDED_SYS_STATE: extended_sys_state,
    Kind.BATTERY_STATUS: battery_status,
    Kind.ATTITUDE: attitude,
    Kind.VFR_HUD: vfr_hud,
    Kind.HOME_POSITION: home_position,
}
