"""The one interface between the orchestrator and vehicles.

A link reports telemetry as a :class:`~skysweep.telemetry.FleetState` and carries missions and
the few commands of :class:`~skysweep.telemetry.Command`; positions are in the mission's local
frame. The simulator implements it (:class:`~skysweep.link.sim.SimLink`); so will MAVLink.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import shapely
from numpy.typing import NDArray

from skysweep.geo import FloatArray
from skysweep.telemetry import Command, FleetState, LinkEvent


class Link(ABC):
    """Vehicles reached through one channel; drone ``i`` is row ``i`` of every array."""

    @abstractmethod
    def poll(self, now_s: float) -> FleetState:
        """Latest telemetry of every vehicle as of ``now_s`` (seconds since mission start)."""

    @abstractmethod
    def upload(self, drone: int, waypoints: FloatArray) -> None:
        """Replace a vehicle's mission by ``waypoints`` (k, 3): x, y, altitude, metres."""

    @abstractmethod
    def send(self, drones: NDArray[np.intp], command: Command) -> None:
        """Send ``command`` to the given vehicles."""

    def set_fence(self, keep_out_m: Sequence[shapely.Geometry]) -> None:
        """The keep-out zones (local metres) changed in flight: vehicles with a geofence of
        their own get the new one (the simulator's onboard separation keeps off it)."""
        return None

    def take_events(self) -> list[LinkEvent]:
        """Events reported since the last call (detections, status messages), oldest first."""
        return []
