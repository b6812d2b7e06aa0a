"""What a link reports about the fleet, as a table: one numpy array per field, one row per drone.

Positions are in the mission's local frame (x east, y north, metres; altitude above the launch
site, metres). Real autopilots and simulated ones fill the same table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from skysweep.geo import FloatArray


class AutopilotMode(IntEnum):
    """The autopilot's own flight mode, as PX4 and ArduPilot both have it."""

    STANDBY = 0  # on the ground, disarmed
    AUTO = 1  # flying the uploaded mission
    RTL = 2  # returning to its launch point, then landing
    LAND = 3  # descending where it is
    HOLD = 4  # hovering in place


class Command(IntEnum):
    """Commands a link can send; nothing else can ever reach a vehicle."""

    START_MISSION = 0  # arm, take off and fly the uploaded mission
    RETURN = 1
    LAND = 2
    HOLD = 3
    SWAP_BATTERY = 4  # ground crew: a fresh pack on a landed drone
    RESUME = 5  # go on with the uploaded mission from the item it was flying to


@dataclass
class FleetState:
    """Latest telemetry of every drone."""

    t_s: float
    pos_m: FloatArray
    """(n, 3): x east, y north, altitude above launch site (m)."""
    vel_mps: FloatArray
    """(n, 3): ground velocity (m/s)."""
    battery: FloatArray
    """Remaining charge, fraction of a full pack."""
    mode: NDArray[np.int8]
    """:class:`AutopilotMode` of each drone."""
    mission_seq: NDArray[np.intp]
    """Index of the mission item each drone is flying to."""
    airborne: NDArray[np.bool_]
    last_seen_s: FloatArray
    """When the link last heard from each drone."""
    voltage_v: FloatArray | None = None
    """Per-cell battery voltage under load, where the link reports it."""

    @property
    def speed_mps(self) -> FloatArray:
        return np.hypot(self.vel_mps[:, 0], self.vel_mps[:, 1])

    def __len__(self) -> int:
        return len(self.battery)


@dataclass(frozen=True)
class LinkEvent:
    """Something a vehicle reported besides its state: a sensor detection, a status message.

    Kinds: ``detection`` (data: ``x_m``, ``y_m`` of the object in the local frame, and
    ``confidence`` 0-1); the simulator adds ``sim_fault`` for each fault it injects.
    """

    t_s: float
    kind: str
    drone: int | None
    data: dict[str, Any] = field(default_factory=dict)
