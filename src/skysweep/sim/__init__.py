"""The built-in simulator: a whole fleet as arrays, stepped without a per-drone loop."""

from skysweep.sim.world import World, WorldParams

__all__ = ["World", "WorldParams"]
