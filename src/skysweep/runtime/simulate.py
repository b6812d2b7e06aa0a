"""Fly a plan in the built-in simulator, through the same orchestrator real vehicles use."""

from __future__ import annotations

from collections.abc import Callable

from skysweep.link.sim import SimLink
from skysweep.plan.model import Plan
from skysweep.runtime.clock import SimClock
from skysweep.runtime.orchestrator import Orchestrator, RunSummary
from skysweep.sim.world import World, WorldParams
from skysweep.store import RunLog


def sim_world(plan: Plan, seed: int) -> World:
    """A simulated fleet for ``plan``'s mission, every drone on its pad."""
    m = plan.mission
    f = m.fleet
    params = WorldParams(
        speed_mps=f.speed_mps,
        endurance_s=f.endurance_s,
        climb_mps=f.climb_mps,
        accel_mps2=f.accel_mps2,
        home_m=m.pad_xy_m,
        wind_mps=m.wind_vector_mps,
        gust_mps=0.25 * m.spec.weather.wind_mps,
    )
    return World(params, seed=seed)


def simulate(
    plan: Plan,
    log: RunLog,
    seed: int = 0,
    tick_s: float = 0.5,
    progress: Callable[[Orchestrator], None] | None = None,
) -> RunSummary:
    """Fly ``plan`` in the simulator, faster than real time, logging to ``log``."""
    link = SimLink(sim_world(plan, seed))
    orch = Orchestrator(plan, link, log, tick_s=tick_s)
    return orch.run(SimClock(), progress=progress)
