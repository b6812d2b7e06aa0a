"""The actuator allowlist: the only MAVLink commands and messages skysweep can ever send.

skysweep is a rescue and mapping tool. It navigates, changes modes, arms, points cameras and
gimbals and switches lights; it never moves a servo, relay, gripper, winch or payload. Every
outgoing message passes :func:`check_outgoing` at the one place a link writes to the wire, so
nothing outside this list can reach a vehicle, whoever asks.
"""

from __future__ import annotations

from typing import Any

from skysweep.errors import LinkError
from skysweep.mavlink.dialect import mavlink as m


class CommandRefused(LinkError):
    """An outgoing command or message that is not on the allowlist."""


#: MAV_CMDs that may be sent, as a command or as a mission item.
ALLOWED_COMMANDS: frozenset[int] = frozenset(
    {
        # navigation
        m.MAV_CMD_NAV_WAYPOINT,
        m.MAV_CMD_NAV_LOITER_UNLIM,
        m.MAV_CMD_NAV_LOITER_TURNS,
        m.MAV_CMD_NAV_LOITER_TIME,
        m.MAV_CMD_NAV_RETURN_TO_LAUNCH,
        m.MAV_CMD_NAV_LAND,
        m.MAV_CMD_NAV_TAKEOFF,
        m.MAV_CMD_NAV_DELAY,
        m.MAV_CMD_CONDITION_DELAY,
        m.MAV_CMD_CONDITION_YAW,
        m.MAV_CMD_DO_CHANGE_SPEED,
        m.MAV_CMD_DO_CHANGE_ALTITUDE,
        m.MAV_CMD_DO_REPOSITION,
        m.MAV_CMD_DO_PAUSE_CONTINUE,
        m.MAV_CMD_DO_SET_MISSION_CURRENT,
        m.MAV_CMD_DO_JUMP,
        m.MAV_CMD_MISSION_START,
        # geofence and rally points (uploaded as fence / rally mission items)
        m.MAV_CMD_DO_FENCE_ENABLE,
        m.MAV_CMD_NAV_FENCE_RETURN_POINT,
        m.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION,
        m.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_EXCLUSION,
        m.MAV_CMD_NAV_FENCE_CIRCLE_INCLUSION,
        m.MAV_CMD_NAV_FENCE_CIRCLE_EXCLUSION,
        m.MAV_CMD_NAV_RALLY_POINT,
        # mode, arming, home
        m.MAV_CMD_DO_SET_MODE,
        m.MAV_CMD_COMPONENT_ARM_DISARM,
        m.MAV_CMD_DO_SET_HOME,
        # telemetry requests
        m.MAV_CMD_SET_MESSAGE_INTERVAL,
        m.MAV_CMD_REQUEST_MESSAGE,
        m.MAV_CMD_GET_HOME_POSITION,
        m.MAV_CMD_REQUEST_AUTOPILOT_CAPABILITIES,
        m.MAV_CMD_REQUEST_PROTOCOL_VERSION,
        # camera and gimbal
        m.MAV_CMD_DO_DIGICAM_CONFIGURE,
        m.MAV_CMD_DO_DIGICAM_CONTROL,
        m.MAV_CMD_DO_SET_CAM_TRIGG_DIST,
        m.MAV_CMD_DO_SET_CAM_TRIGG_INTERVAL,
        m.MAV_CMD_DO_MOUNT_CONTROL,
        m.MAV_CMD_DO_SET_ROI_LOCATION,
        m.MAV_CMD_DO_SET_ROI_NONE,
        m.MAV_CMD_DO_GIMBAL_MANAGER_PITCHYAW,
        m.MAV_CMD_DO_GIMBAL_MANAGER_CONFIGURE,
        m.MAV_CMD_IMAGE_START_CAPTURE,
        m.MAV_CMD_IMAGE_STOP_CAPTURE,
        m.MAV_CMD_VIDEO_START_CAPTURE,
        m.MAV_CMD_VIDEO_STOP_CAPTURE,
        m.MAV_CMD_SET_CAMERA_MODE,
        m.MAV_CMD_SET_CAMERA_ZOOM,
        m.MAV_CMD_SET_CAMERA_FOCUS,
        # lights
        m.MAV_CMD_ILLUMINATOR_ON_OFF,
    }
)

#: Message types a ground station may send. Everything that drives an actuator directly
#: (SET_ACTUATOR_CONTROL_TARGET, RC_CHANNELS_OVERRIDE, servo and gripper messages) is absent.
ALLOWED_MESSAGES: frozenset[str] = frozenset(
    {
        "HEARTBEAT",
        "COMMAND_LONG",
        "COMMAND_INT",
        "SET_MODE",
        "MISSION_COUNT",
        "MISSION_ITEM_INT",
        "MISSION_REQUEST_INT",
        "MISSION_REQUEST_LIST",
        "MISSION_ACK",
        "MISSION_SET_CURRENT",
        "MISSION_CLEAR_ALL",
        "REQUEST_DATA_STREAM",
        "SET_POSITION_TARGET_GLOBAL_INT",
        "SYSTEM_TIME",
        "TIMESYNC",
    }
)

_WITH_COMMAND = {"COMMAND_LONG", "COMMAND_INT", "MISSION_ITEM_INT"}


def command_name(command: int) -> str:
    entry = m.enums["MAV_CMD"].get(command)
    return entry.name if entry is not None else f"MAV_CMD {command}"


def check_command(command: int) -> None:
    """Raise :class:`CommandRefused` unless ``command`` (a MAV_CMD) is on the allowlist."""
    if command not in ALLOWED_COMMANDS:
        raise CommandRefused(
            f"refused: {command_name(command)} is not on skysweep's actuator allowlist "
            "(navigation, mode, camera/gimbal and lights only)"
        )


def check_outgoing(msg: Any) -> None:
    """Raise :class:`CommandRefused` unless ``msg`` (a pymavlink message) may be sent."""
    kind = msg.get_type()
    if kind not in ALLOWED_MESSAGES:
        raise CommandRefused(f"refused: {kind} is not a message skysweep sends")
    if kind in _WITH_COMMAND:
        check_command(int(msg.command))
