"""The parameter protocol of the simulated vehicles (PARAM_REQUEST_LIST, PARAM_REQUEST_READ,
PARAM_SET → PARAM_VALUE), as ArduPilot answers it.

Ground stations read every parameter when they connect (QGroundControl waits for the whole
list before it shows a vehicle; MAVProxy and Mission Planner fetch it too). The façade serves
the ArduPilot Copter parameters that describe what the simulator really does — each drone's
system id, its waypoint speed, climb rate and acceleration, the disarm delay, the SITL speed-up
— so a ground station reads true values. They are read-only: a PARAM_SET is answered, as
ArduPilot answers a write it refuses, with the unchanged value and a STATUSTEXT.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from skysweep.mavlink.dialect import mavlink as m

if TYPE_CHECKING:
    from skysweep.mavlink.vehicles import VehicleFacade

_REAL = m.MAV_PARAM_TYPE_REAL32
_INT = m.MAV_PARAM_TYPE_INT32
_INT8 = m.MAV_PARAM_TYPE_INT8


def _table(f: VehicleFacade) -> list[tuple[str, int, Callable[[int], float]]]:
    """(name, MAV_PARAM_TYPE, value of drone i) in ArduPilot's names and units."""
    p = f.world.p
    per_port = f.io.per_port
    return [
        ("ARMING_CHECK", _INT, lambda i: 1.0),
        ("DISARM_DELAY", _INT8, lambda i: float(f.ap.disarm_delay_s)),
        ("FENCE_ENABLE", _INT8, lambda i: 1.0),
        ("FENCE_TYPE", _INT8, lambda i: 4.0),  # polygons (inclusion and exclusion)
        ("FRAME_CLASS", _INT8, lambda i: 1.0),  # quad
        ("FS_GCS_ENABLE", _INT8, lambda i: 0.0),  # a silent ground station: fly on
        ("SIM_SPEEDUP", _REAL, lambda i: float(f.time_scale)),
        ("SYSID_MYGCS", _INT, lambda i: 255.0),
        ("SYSID_THISMAV", _INT, lambda i: float(i % per_port + 1)),
        ("WPNAV_ACCEL", _REAL, lambda i: float(p.accel_mps2[i]) * 100.0),  # cm/s²
        ("WPNAV_SPEED", _REAL, lambda i: float(p.speed_mps[i]) * 100.0),  # cm/s
        ("WPNAV_SPEED_UP", _REAL, lambda i: float(p.climb_mps[i]) * 100.0),  # cm/s
    ]


class Params:
    """Answers the parameter protocol for the vehicles of a :class:`VehicleFacade`."""

    def __init__(self, facade: VehicleFacade) -> None:
        self.f = facade
        self.table = _table(facade)
        self.index = {name: k for k, (name, _, _) in enumerate(self.table)}

    def value(self, i: int, k: int) -> Any:
        name, kind, get = self.table[k]
        return m.MAVLink_param_value_message(
            name.encode(), np.float32(get(i)).item(), kind, len(self.table), k
        )

    def on_request_list(self, i: int) -> None:
        for k in range(len(self.table)):
            self.f.io.send(i, self.value(i, k))

    def on_request_read(self, i: int, name: str, k: int) -> bool:
        """Send one parameter (by name, or by index when ``k`` ≥ 0); False if there is none."""
        if k < 0:
            k = self.index.get(name, -1)
        if not 0 <= k < len(self.table):
            return False
        self.f.io.send(i, self.value(i, k))
        return True

    def on_set(self, i: int, name: str) -> bool:
        """Refuse the write, as ArduPilot does for a read-only parameter: the unchanged value
        and a warning. False if there is no such parameter (ArduPilot then stays silent)."""
        k = self.index.get(name)
        if k is None:
            return False
        self.f.ap.text(i, m.MAV_SEVERITY_WARNING, f"Param write denied ({name})")
        self.f.io.send(i, self.value(i, k))
        return True


def param_name(raw: Any) -> str:
    """A param_id field as text (pymavlink gives str, or bytes when not valid text)."""
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)
    return text.rstrip("\x00")
