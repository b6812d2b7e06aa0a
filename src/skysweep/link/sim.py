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
        self._failed: list[LinkEvent] = []

    def poll(self, now_s: float) -> FleetState:
        self.world.advance_to(now_s)
        return self.world.state()

    def upload(self, drone: int, waypoints: FloatArray) -> None:
        # a vehicle out of radio contact does not get its route: reported, as the MAVLink
        # link reports an upload that timed out (the runtime must not book a route that is
        # not flown: reliability seed 876 --zones)
        if not self.world.upload(drone, waypoints):
            self._unreached([drone], Command.START_MISSION)

    def send(self, drones: NDArray[np.intp], command: Command) -> None:
        drones = np.asarray(drones, np.intp)
        if command is not Command.START_MISSION:  # (its upload has reported already)
            self._unreached(drones[~self.world.reachable(drones)], command)
        self.world.command(drones, command)

    def _unreached(self, drones: Sequence[int] | NDArray[np.intp], command: Command) -> None:
        for i in drones:
            data = {"command": command.name, "reason": "no link"}
            self._failed.append(LinkEvent(self.world.t_s, "link_command_failed", int(i), data))

    def set_fence(self, keep_out_m: Sequence[shapely.Geometry]) -> None:
        """The simulated vehicles' onboard separation keeps off the new fence."""
        self.world.set_keep_out(keep_out_m)

    def take_events(self) -> list[LinkEvent]:
        failed, self._failed = self._failed, []
        return [*self.world.take_events(), *failed]
