"""skysweep: fleets of drones for search and rescue."""

__version__ = "0.1.0"
