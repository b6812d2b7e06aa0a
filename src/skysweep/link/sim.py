"""A link to the built-in simulator: commands go straight into the simulated autopilots."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from numpy.typing import NDArray

from skysweep.geo import FloatArray
from skysweep.link.base import Link
from skysweep.sim.world import World
from skysweep.telemetry import Command, FleetState, LinkEvent


class SimLink(Link):
    """In-process link to a :class:`~skysweep.sim.world.World`; polling advances its time."""

    def __init__(self, world: World) -> None:
        self.world = world

    def poll(self, now_s: float) -> FleetState:
        self.world.advance_to(now_s)
        return self.world.state()

    def upload(self, drone: int, waypoints: FloatArray) -> None:
        self.world.upload(drone, waypoints)

    def send(self, drones: NDArray[np.intp], command: Command) -> None:
        self.world.command(np.asarray(drones, np.intp), command)

    def set_fence(self, keep_out_m: Sequence[shapely.Geometry]) -> None:
        """The simulated vehicles' onboard separation keeps off the new fence."""
        self.world.set_keep_out(keep_out_m)

    def take_events(self) -> list[LinkEvent]:
        return self.world.take_events()
