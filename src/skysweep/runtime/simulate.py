"""Fly a plan in the built-in simulator, through the same orchestrator real vehicles use."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import shapely

from skysweep.errors import InfeasibleError, StoreError
from skysweep.fence import FenceField
from skysweep.link.sim import SimLink
from skysweep.mission import Mission
from skysweep.plan.model import Plan
from skysweep.runtime.clock import SimClock
from skysweep.runtime.commands import OperatorCommand
from skysweep.runtime.orchestrator import Orchestrator, RunSummary
from skysweep.runtime.preflight import summarise
from skysweep.sim.faults import Fault
from skysweep.sim.sensor import SensorParams, Targets, place_targets
from skysweep.sim.separation import SeparationParams
from skysweep.sim.threads import kernel_threads
from skysweep.sim.wind import WindParams
from skysweep.sim.world import World, WorldParams
from skysweep.store import RunLog

#: Gusts, as a share of the mean wind, when the mission file does not say.
GUST_SHARE = 0.25


@dataclass(frozen=True)
class SimTruth:
    """What only the simulator knows, for scoring a run; merged into ``skysweep sim --json``."""

    targets: int
    targets_found: int
    first_detection_s: float | None
    """Time of the first true detection of any target."""
    detections_made: int
    """Every detection the cameras made, true or false; ``detections`` (the orchestrator's)
    counts those that reached the ground station."""
    false_alarms: int
    separation_violations: int
    """Distinct pairs of drones that ever came closer than the minimum separation."""
    min_separation_true_m: float | None
    faults_injected: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def place_mission_targets(mission: Mission, seed: int) -> Targets:
    """The search objects of the mission's ``simulation.targets``, random ones from ``seed``."""
    rng = np.random.default_rng([seed, 0x7A7])
    xy: list[np.ndarray] = []
    kinds: list[str] = []
    for t in mission.spec.simulation.targets:
        if t.lon is not None and t.lat is not None:
            x, y = mission.frame.to_local([t.lon], [t.lat])
            xy.append(np.array([[float(x[0]), float(y[0])]]))
            kinds.append(t.kind)
        else:
            placed = place_targets(mission.searchable, [t.kind] * t.count, rng)
            xy.append(placed.xy_m)
            kinds.extend(placed.kind)
    if not xy:
        return Targets(np.zeros((0, 2)), ())
    return Targets(np.vstack(xy), tuple(kinds))


def sim_world(
    plan: Plan | Mission,
    seed: int,
    faults: Sequence[Fault] = (),
    targets: Targets | None = None,
) -> World:
    """A simulated fleet for a mission (or a plan's), every drone on its pad; ``targets``
    replaces the mission's ``simulation.targets``."""
    m = plan.mission if isinstance(plan, Plan) else plan
    f = m.fleet
    sim = m.spec.simulation
    gust = sim.gust_mps if sim.gust_mps is not None else GUST_SHARE * m.spec.weather.wind_mps
    x0, y0, x1, y1 = shapely.bounds(m.keep_in)
    safety = m.safety
    fence = None
    separation = None
    if sim.separation and safety.min_separation_m > 0:
        fence = FenceField.build(m.keep_in, [z.geometry for z in m.keep_out])
        # routes keep geofence_margin_m from every fence; a manoeuvre may use half of it
        separation = SeparationParams(
            min_separation_m=safety.min_separation_m,
            fence_hard_margin_m=0.5 * safety.geofence_margin_m,
        )
    params = WorldParams(
        speed_mps=f.speed_mps,
        endurance_s=f.endurance_s,
        climb_mps=f.climb_mps,
        accel_mps2=f.accel_mps2,
        home_m=m.pad_xy_m,
        swath_m=f.swath_m,
        wind=WindParams(mean_mps=tuple(m.wind_vector_mps), gust_mps=gust),
        bounds_m=(x0 - 1000.0, y0 - 1000.0, x1 + 1000.0, y1 + 1000.0),
        gps_noise_m=sim.gps_noise_m,
        gps_glitches_per_h=sim.gps_glitches_per_hour,
        sensor=SensorParams(
            search_alt_m=m.altitude_m, false_alarms_per_h=sim.false_alarms_per_hour
        ),
        separation=separation,
        min_separation_m=safety.min_separation_m,
    )
    return World(
        params,
        seed=seed,
        targets=place_mission_targets(m, seed) if targets is None else targets,
        faults=faults,
        fence=fence,
        keep_in=m.keep_in,
        drone_ids=f.ids,
    )


def score(world: World) -> SimTruth:
    """Score a finished run against the simulator's truth."""
    truth = world.truth
    n_targets = len(world.targets) if world.targets is not None else 0
    true_hits = [d for d in truth.detections if d[2] >= 0]
    min_sep = truth.min_separation_m
    return SimTruth(
        targets=n_targets,
        targets_found=len({d[2] for d in true_hits}),
        first_detection_s=round(min(d[0] for d in true_hits), 1) if true_hits else None,
        detections_made=len(truth.detections),
        false_alarms=sum(1 for d in truth.detections if d[2] < 0),
        separation_violations=len(truth.violating_pairs),
        min_separation_true_m=round(min_sep, 2) if math.isfinite(min_sep) else None,
        faults_injected=len(truth.faults),
    )


def simulate(
    plan: Plan,
    log: RunLog,
    seed: int = 0,
    tick_s: float = 0.5,
    progress: Callable[[Orchestrator], None] | None = None,
    faults: Sequence[Fault] = (),
    commands: Sequence[OperatorCommand] = (),
) -> tuple[RunSummary, SimTruth]:
    """Fly ``plan`` in the simulator, faster than real time, logging to ``log``; ``commands``
    are operator commands given at their ``at_s``."""
    world = sim_world(plan, seed, faults)
    orch = Orchestrator(plan, SimLink(world), log, tick_s=tick_s)
    orch.checkpoint_extra = {"world": world}
    problems = orch.authorise(0.0)
    if problems:
        raise InfeasibleError(f"pre-flight checks failed: {summarise(problems)}")
    script = [(c.at_s, c.command, c.args()) for c in commands]
    with kernel_threads(len(plan.mission.fleet)):
        summary = orch.run(SimClock(), progress=progress, script=script)
    truth = score(world)
    log.set_meta("sim_truth", truth.as_dict())
    return summary, truth


def resume_simulation(
    log: RunLog, progress: Callable[[Orchestrator], None] | None = None
) -> tuple[RunSummary, SimTruth]:
    """Fly on a simulated run that stopped without ending (killed, crashed) from its last
    checkpoint in ``log``: the orchestrator and the simulated fleet are restored together, and
    the ticks after the checkpoint are flown again, giving the events already logged."""
    orch, extra = Orchestrator.restore(log)
    world = extra.get("world")
    if not isinstance(world, World):
        raise StoreError(f"{log.path}: not a simulated run (its checkpoint has no simulator)")
    with kernel_threads(orch.n):
        summary = orch.carry_on(SimClock(orch.next_tick_s), progress=progress)
    truth = score(world)
    log.set_meta("sim_truth", truth.as_dict())
    return summary, truth
