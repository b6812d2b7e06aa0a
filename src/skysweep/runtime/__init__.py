"""The imperative shell: one loop that reads telemetry, decides, logs, then commands."""

from skysweep.runtime.clock import Clock, SimClock, WallClock
from skysweep.runtime.modes import FlightMode
from skysweep.runtime.orchestrator import Orchestrator, RunSummary

__all__ = ["Clock", "FlightMode", "Orchestrator", "RunSummary", "SimClock", "WallClock"]
