"""The operator server: ``skysweep serve`` (REST + WebSocket + the offline map page).

:func:`sim_flight` flies a plan in the built-in simulator in real time (or ``speed`` times
faster); :class:`~skysweep.server.live.LiveMission` flies it in a thread;
:func:`~skysweep.server.app.create_app` serves it. Routes and formats: docs/server.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from skysweep.link.sim import SimLink
from skysweep.plan.model import Plan
from skysweep.runtime.clock import ScaledClock
from skysweep.runtime.simulate import sim_world
from skysweep.server.app import create_app
from skysweep.server.live import Flight, LiveMission
from skysweep.sim.faults import Fault
from skysweep.sim.world import warm_up

__all__ = ["Flight", "LiveMission", "create_app", "sim_flight"]


def sim_flight(
    plan: Plan, seed: int = 0, faults: Sequence[Fault] = (), speed: float = 1.0
) -> Flight:
    """The plan's fleet in the simulator, flown ``speed`` times faster than real time; its
    kernels are compiled first, so the first ticks keep the pace."""
    world = sim_world(plan, seed, faults)
    warm_up(world)
    return Flight(
        link=SimLink(world),
        clock_factory=lambda: ScaledClock(speed),
        speed=speed,
        checkpoint_extra={"world": world},
        meta={"seed": seed, "faults": [f.model_dump() for f in faults], "speed": speed},
    )
