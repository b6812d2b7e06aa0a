"""The MAVLink 2 dialect skysweep speaks (ArduPilot's, a superset of ``common``), and the
constants both ends use."""

from __future__ import annotations

from typing import Any

from pymavlink.dialects.v20 import ardupilotmega as mavlink

__all__ = [
    "GCS_COMPONENT",
    "GCS_SYSTEM",
    "HOME_ITEM",
    "VEHICLE_COMPONENT",
    "mavlink",
    "new_mav",
]

#: The ground station's own system and component ids (QGroundControl's, by convention).
GCS_SYSTEM = 255
GCS_COMPONENT = mavlink.MAV_COMP_ID_MISSIONPLANNER
#: An autopilot's component id.
VEHICLE_COMPONENT = mavlink.MAV_COMP_ID_AUTOPILOT1
#: Mission item 0 is the home position on ArduPilot (PX4 starts the mission there).
HOME_ITEM = 0


def new_mav(system: int, component: int) -> Any:
    """A pymavlink MAVLink 2 codec that never raises on bad input: a broken frame comes out as a
    ``BAD_DATA`` message, which the caller counts."""
    mav = mavlink.MAVLink(None, srcSystem=system, srcComponent=component)
    mav.robust_parsing = True
    return mav
