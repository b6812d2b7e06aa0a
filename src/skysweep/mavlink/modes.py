"""Flight modes as PX4 and ArduPilot name them, mapped to skysweep's :class:`AutopilotMode`.

ArduPilot Copter numbers its modes (``custom_mode`` = 3 for AUTO, 6 for RTL …). PX4 packs a
main mode in bits 16-23 of ``custom_mode`` and an AUTO sub-mode in bits 24-31. Which one a
vehicle is comes from its heartbeat's ``autopilot`` field.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from skysweep.mavlink.dialect import mavlink
from skysweep.telemetry import AutopilotMode


class Autopilot(IntEnum):
    """The flight stacks skysweep can fly (values are MAV_AUTOPILOT)."""

    GENERIC = mavlink.MAV_AUTOPILOT_GENERIC
    ARDUPILOT = mavlink.MAV_AUTOPILOT_ARDUPILOTMEGA
    PX4 = mavlink.MAV_AUTOPILOT_PX4


class CopterMode(IntEnum):
    """ArduPilot Copter's ``custom_mode`` numbers (the ones skysweep uses or may see)."""

    STABILIZE = 0
    ALT_HOLD = 2
    AUTO = 3
    GUIDED = 4
    LOITER = 5
    RTL = 6
    LAND = 9
    POSHOLD = 16
    BRAKE = 17
    SMART_RTL = 21


class Px4Main(IntEnum):
    MANUAL = 1
    ALTCTL = 2
    POSCTL = 3
    AUTO = 4
    ACRO = 5
    OFFBOARD = 6
    STABILIZED = 7


class Px4Auto(IntEnum):
    """PX4's AUTO sub-modes."""

    READY = 1
    TAKEOFF = 2
    LOITER = 3
    MISSION = 4
    RTL = 5
    LAND = 6
    RTGS = 7
    FOLLOW_TARGET = 8
    PRECLAND = 9


def px4_custom_mode(main: Px4Main, sub: Px4Auto | int = 0) -> int:
    return (int(main) << 16) | (int(sub) << 24)


_COPTER = {
    CopterMode.AUTO: AutopilotMode.AUTO,
    CopterMode.RTL: AutopilotMode.RTL,
    CopterMode.SMART_RTL: AutopilotMode.RTL,
    CopterMode.LAND: AutopilotMode.LAND,
    CopterMode.LOITER: AutopilotMode.HOLD,
    CopterMode.BRAKE: AutopilotMode.HOLD,
    CopterMode.POSHOLD: AutopilotMode.HOLD,
    CopterMode.GUIDED: AutopilotMode.HOLD,
    CopterMode.ALT_HOLD: AutopilotMode.HOLD,
    CopterMode.STABILIZE: AutopilotMode.HOLD,
}
_PX4_AUTO = {
    Px4Auto.MISSION: AutopilotMode.AUTO,
    Px4Auto.TAKEOFF: AutopilotMode.AUTO,
    Px4Auto.RTL: AutopilotMode.RTL,
    Px4Auto.LAND: AutopilotMode.LAND,
    Px4Auto.PRECLAND: AutopilotMode.LAND,
    Px4Auto.LOITER: AutopilotMode.HOLD,
    Px4Auto.READY: AutopilotMode.HOLD,
}


def decode_mode(autopilot: int, base_mode: int, custom_mode: int) -> AutopilotMode:
    """The :class:`AutopilotMode` a heartbeat reports. A disarmed vehicle is STANDBY whatever
    its mode; a flying one in a mode skysweep does not command (manual, offboard …) is HOLD:
    it is not flying its mission."""
    if not base_mode & mavlink.MAV_MODE_FLAG_SAFETY_ARMED:
        return AutopilotMode.STANDBY
    if autopilot == Autopilot.PX4:
        main = (custom_mode >> 16) & 0xFF
        sub = (custom_mode >> 24) & 0xFF
        if main == Px4Main.AUTO:
            return _PX4_AUTO.get(sub, AutopilotMode.HOLD)  # type: ignore[call-overload]
        return AutopilotMode.HOLD
    return _COPTER.get(custom_mode, AutopilotMode.HOLD)  # type: ignore[call-overload]


def mode_name(autopilot: int, custom_mode: int) -> str:
    """The autopilot's own name of a mode, e.g. ``GUIDED`` or ``AUTO.MISSION``."""
    if autopilot == Autopilot.PX4:
        main = (custom_mode >> 16) & 0xFF
        sub = (custom_mode >> 24) & 0xFF
        try:
            name = Px4Main(main).name
        except ValueError:
            return f"PX4:{custom_mode:#x}"
        if main == Px4Main.AUTO:
            try:
                return f"AUTO.{Px4Auto(sub).name}"
            except ValueError:
                return f"AUTO.{sub}"
        return name
    try:
        return CopterMode(custom_mode).name
    except ValueError:
        return f"MODE{custom_mode}"


def set_mode_params(autopilot: int, mode: AutopilotMode | CopterMode) -> tuple[float, float, float]:
    """``param1-3`` of MAV_CMD_DO_SET_MODE for the mode each autopilot names for ``mode``:
    AUTO (the mission), RTL, LAND, HOLD (LOITER on ArduPilot, AUTO.LOITER on PX4), or an
    ArduPilot :class:`CopterMode` such as GUIDED."""
    flag = float(mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED)
    if autopilot == Autopilot.PX4:
        sub = {
            AutopilotMode.AUTO: Px4Auto.MISSION,
            AutopilotMode.RTL: Px4Auto.RTL,
            AutopilotMode.LAND: Px4Auto.LAND,
            AutopilotMode.HOLD: Px4Auto.LOITER,
        }.get(AutopilotMode(mode) if not isinstance(mode, CopterMode) else AutopilotMode.HOLD)
        if sub is None:
            raise ValueError(f"no PX4 mode for {mode!r}")
        return flag, float(Px4Main.AUTO), float(sub)
    if isinstance(mode, CopterMode):
        return flag, float(mode), 0.0
    copter = {
        AutopilotMode.AUTO: CopterMode.AUTO,
        AutopilotMode.RTL: CopterMode.RTL,
        AutopilotMode.LAND: CopterMode.LAND,
        AutopilotMode.HOLD: CopterMode.LOITER,
    }.get(mode)
    if copter is None:
        raise ValueError(f"no ArduPilot mode for {mode!r}")
    return flag, float(copter), 0.0


def _tables() -> tuple[NDArray[np.int8], NDArray[np.int8]]:
    copter = np.full(256, AutopilotMode.HOLD, np.int8)
    for k, v in _COPTER.items():
        copter[int(k)] = v
    px4_auto = np.full(256, AutopilotMode.HOLD, np.int8)
    for k2, v2 in _PX4_AUTO.items():
        px4_auto[int(k2)] = v2
    return copter, px4_auto


_COPTER_TABLE, _PX4_AUTO_TABLE = _tables()


def decode_modes(
    autopilot: NDArray[np.integer], base_mode: NDArray[np.integer], custom_mode: NDArray[np.integer]
) -> NDArray[np.int8]:
    """:func:`decode_mode` over arrays, one row per vehicle."""
    custom = np.asarray(custom_mode, np.int64)
    armed = (np.asarray(base_mode, np.int64) & mavlink.MAV_MODE_FLAG_SAFETY_ARMED) != 0
    copter = _COPTER_TABLE[np.clip(custom, 0, 255)]
    copter = np.where(custom > 255, AutopilotMode.HOLD, copter)
    main = (custom >> 16) & 0xFF
    sub = (custom >> 24) & 0xFF
    px4 = np.where(main == Px4Main.AUTO, _PX4_AUTO_TABLE[sub], AutopilotMode.HOLD)
    mode = np.where(np.asarray(autopilot) == Autopilot.PX4, px4, copter)
    return np.where(armed, mode, AutopilotMode.STANDBY).astype(np.int8)
