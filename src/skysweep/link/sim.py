"""A link to the built-in simulator: commands go straight into the simulated autopilots."""

from __future__ import annotations

import numpy as np
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

    def take_events(self) -> list[LinkEvent]:
        return self.world.take_events()
