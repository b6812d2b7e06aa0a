"""Links to vehicles: real autopilots and simulated ones look the same to the orchestrator."""

from skysweep.link.base import Link
from skysweep.link.sim import SimLink

__all__ = ["Link", "SimLink"]
