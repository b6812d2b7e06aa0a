"""``skysweep bench search``: how fast the search finds the person, against theory and against a
plain lawnmower, by Monte Carlo in the simulator.

For each scenario the person is placed by sampling the scenario's probability map: a cell with
probability its POA, a point uniformly in the cell's searchable part; with the probability the
map leaves out (``1 − Σ POA``, the rest of the world) the person is somewhere no drone looks and
is never found. The mission is then flown in the simulator, through the real planner,
orchestrator and safety kernel, with the sensor model deciding every detection, twice: with
the plan steered by the map (``search.allocation: optimal``) and with a plain lawnmower over
the whole area with the same fleet (``uniform``). The time to find is the time of the first
true detection of the person.

Nothing in a flight depends on where the person is (a detection does not divert a drone in
this benchmark), and the sensor model decides each object's detection independently, so one
flight carries many persons at once: each is one independent Monte Carlo run of the mission,
with its own draws of the detector. ``flights`` flights with different seeds (wind gusts, GPS
noise, launch jitter) share the runs.

Theory: for a circular normal prior of standard deviation ``σ``, Stone's best probability of
success for effort ``E`` (m², no travel) is ``P* = 1 − (1 + H)·e^(−H)``, ``H = √(E / (πσ²))``.
``E(t)`` is counted from the flight: every drone's speed × sweep width W × its airborne time up
to ``t`` (transit, climb and landing included), and, for the second ratio, × its time on sweep
legs only. For other priors the reference is the POS of Stone's allocation of the same effort
on the grid (:func:`skysweep.search.effort.optimal_effort`), without travel.

Everything in the mission's local frame (metres) and seconds from mission start.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from skysweep import mission as mission_mod
from skysweep.bench.plan_scenarios import (
    MissionData,
    Site,
    drones_entry,
    geojson,
    lonlat_point,
    mission_data,
)
from skysweep.errors import InfeasibleError
from skysweep.geo import FloatArray
from skysweep.link.sim import SimLink
from skysweep.mission import Mission
from skysweep.plan import plan_mission
from skysweep.plan.model import Plan
from skysweep.runtime.clock import SimClock
from skysweep.runtime.modes import AIRBORNE_MODES, FlightMode
from skysweep.runtime.orchestrator import Orchestrator
from skysweep.runtime.simulate import sim_world
from skysweep.search.effort import circular_normal_pos, optimal_effort, pos
from skysweep.search.prior import ProbabilityGrid, build_prior, sweep_width_m, width_per_swath
from skysweep.sim.sensor import Targets
from skysweep.sim.threads import kernel_threads
from skysweep.store import RunLog

#: POS over time is reported at this step, seconds.
STEP_S = 60.0
#: The two plans flown in every scenario.
ALLOCATIONS = ("optimal", "uniform")
#: Targets the issue sets: POS ≥ this × P* (circular normal), mean time ≤ this × lawnmower's.
POS_RATIO_BAR = 0.9
TIME_RATIO_BAR = 0.7


@dataclass(frozen=True)
class SearchScenario:
    """One mission of the search benchmark."""

    name: str
    description: str
    build: Callable[[], MissionData]
    sigma_m: float | None = None
    """The standard deviation of a circular normal prior (the P* reference), else None."""
    lost_person: bool = False
    """A lost-person scenario: the mean-time bar applies."""

    def mission(self, allocation: str) -> Mission:
        data = self.build()
        data["search"]["allocation"] = allocation
        # the flight must not depend on where the persons are (see the module docstring)
        data["search"]["confirm_detections"] = False
        return mission_mod.parse(data, source=f"<search scenario {self.name}>")


# -- scenarios (local metres round the origin; the launch site at the last known point) -------

_ORIGIN = (8.0, 46.5)
#: The last known point / datum of every scenario, where its command post is.
_AT_ORIGIN = lonlat_point(0.0, 0.0, _ORIGIN)


def _circular_normal() -> MissionData:
    s = 500.0
    data = mission_data(
        "circular normal datum",
        _ORIGIN,
        shapely.box(-3.5 * s, -3.5 * s, 3.5 * s, 3.5 * s),
        [Site("datum", (0.0, 0.0), pads=4)],
        [drones_entry("quad", 10, "datum", 12.0, 50.0, 1500.0)],
        wind_mps=3.0,
    )
    data["search"]["prior"] = {
        "cell_m": 50,
        "datum": {**_AT_ORIGIN, "sigma_m": s},
    }
    return data


def _lost_hiker() -> MissionData:
    area = shapely.Polygon(
        [(-1800, -1500), (2200, -1700), (2600, 600), (1200, 2300), (-1500, 2000), (-2300, 200)]
    )
    lake = shapely.Point(900, 900).buffer(350)
    cliff = shapely.box(-1200, -900, -700, -300)
    data = mission_data(
        "lost hiker",
        _ORIGIN,
        area,
        [Site("command post at the last known point", (0.0, 0.0), pads=4)],
        [drones_entry("quad", 12, "command post at the last known point", 12.0, 50.0, 1500.0)],
        keep_out=[("lake", lake), ("cliff", cliff)],
        wind_mps=4.0,
    )
    trail = shapely.LineString([(0, 0), (-600, 700), (-1300, 1600)]).buffer(120)
    data["search"]["prior"] = {
        "cell_m": 50,
        # illustrative quartile distances for an adult hiker over a small area, km
        "last_known_point": {
            **_AT_ORIGIN,
            "rings_km": [0.3, 0.65, 1.1, 1.9],
            "weight": 3,
        },
        "regions": [{"name": "trail", "geometry": geojson(trail, _ORIGIN), "weight": 1}],
    }
    return data


def _lost_child() -> MissionData:
    area = shapely.box(-1500, -1400, 1600, 1500)
    houses = shapely.box(300, -1400, 1600, -800)
    data = mission_data(
        "lost child",
        _ORIGIN,
        area,
        [Site("command post at the last known point", (0.0, 0.0), pads=4)],
        [drones_entry("quad", 8, "command post at the last known point", 10.0, 40.0, 1500.0)],
        keep_out=[("houses", houses)],
        wind_mps=2.0,
    )
    stream = shapely.LineString([(-1500, 300), (-300, 200), (600, 900), (1600, 1100)]).buffer(80)
    data["search"]["prior"] = {
        "cell_m": 50,
        "last_known_point": {
            **_AT_ORIGIN,
            "rings_km": [0.2, 0.4, 0.7, 1.3],
            "weight": 2,
        },
        "regions": [{"name": "stream", "geometry": geojson(stream, _ORIGIN), "weight": 1}],
    }
    return data


SCENARIOS: dict[str, SearchScenario] = {
    s.name: s
    for s in (
        SearchScenario(
            "circular-normal",
            "datum, σ 500 m, 12 km² square, 10 drones launched at the datum",
            _circular_normal,
            sigma_m=500.0,
        ),
        SearchScenario(
            "lost-hiker",
            "last known point + trail, 16 km² with a lake and a cliff, 12 drones",
            _lost_hiker,
            lost_person=True,
        ),
        SearchScenario(
            "lost-child",
            "last known point + stream, 8 km² round houses, 8 slower drones",
            _lost_child,
            lost_person=True,
        ),
    )
}


# -- Monte Carlo ------------------------------------------------------------------------------


def sample_persons(
    grid: ProbabilityGrid, searchable: shapely.Geometry, n: int, rng: np.random.Generator
) -> FloatArray:
    """``n`` persons drawn from the map: (n, 2) local metres, NaN for those in the rest of the
    world (the probability the map leaves out)."""
    p = grid.poa.ravel()
    rest = max(0.0, 1.0 - float(p.sum()))
    which = rng.choice(len(p) + 1, size=n, p=np.append(p, rest) / (p.sum() + rest))
    out = np.full((n, 2), np.nan)
    shapely.prepare(searchable)
    nx = grid.shape[1]
    for k in np.flatnonzero(which < len(p)):
        j, i = divmod(int(which[k]), nx)
        x0, y0 = grid.x0_m + i * grid.cell_m, grid.y0_m + j * grid.cell_m
        # uniform over the cell's searchable part (it has area: its POA is above 0)
        for _ in range(10_000):
            x, y = rng.uniform((x0, y0), (x0 + grid.cell_m, y0 + grid.cell_m))
            if shapely.contains_xy(searchable, x, y):
                out[k] = (x, y)
                break
    return out


@dataclass(frozen=True)
class Flight:
    """One simulated flight with persons aboard: when each was first detected, and the effort
    flown by then."""

    found_s: FloatArray
    """Per person: time of the first true detection, inf if never (or not in the area)."""
    t_s: FloatArray
    """Tick times."""
    effort_air_m2: FloatArray
    """Σ speed × W × airborne time up to each tick (m²)."""
    effort_sweep_m2: FloatArray
    """The same counting sweep legs only."""
    end_s: float


def fly(plan: Plan, persons_xy: FloatArray, seed: int) -> Flight:
    """Fly ``plan`` in the simulator with a person at each of ``persons_xy`` (NaN: nowhere)."""
    m = plan.mission
    if m.spec.search.confirms:
        raise InfeasibleError(
            f"{m.name}: search.confirm_detections must be false here: a confirmation pattern "
            "flown over one person would change the flight for all the others"
        )
    placed = np.flatnonzero(np.isfinite(persons_xy[:, 0]))
    targets = Targets(persons_xy[placed], ("person",) * len(placed))
    world = sim_world(plan, seed, targets=targets)
    rate = m.fleet.speed_mps * sweep_width_m(m)
    t: list[float] = []
    air: list[float] = []
    sweep: list[float] = []
    totals = [0.0, 0.0]

    def count(orch: Orchestrator) -> None:
        up = np.isin(orch.mode, AIRBORNE_MODES)
        totals[0] += float(rate[up].sum()) * orch.tick_s
        totals[1] += float(rate[orch.mode == FlightMode.SWEEP].sum()) * orch.tick_s
        t.append(orch.t_s)
        air.append(totals[0])
        sweep.append(totals[1])

    with kernel_threads(len(m.fleet)), RunLog(Path(":memory:"), create=True) as log:
        orch = Orchestrator(plan, SimLink(world), log, tick_s=0.5)
        problems = orch.authorise(0.0)
        if problems:
            raise InfeasibleError(f"{m.name}: pre-flight checks failed: {problems[0]}")
        orch.run(SimClock(), progress=count)
    found = np.full(len(persons_xy), np.inf)
    for when, _, target, _ in world.truth.detections:
        if target >= 0:
            k = placed[target]
            found[k] = min(found[k], when)
    return Flight(found, np.array(t), np.array(air), np.array(sweep), float(orch.t_s))


def _time_stats(found_s: FloatArray, horizon_s: float) -> dict[str, Any]:
    """Time-to-find figures over the runs, up to ``horizon_s``: found share, mean and median
    of those found, and the restricted mean E[min(T, horizon)] (a miss counts as the horizon)."""
    hit = found_s[found_s <= horizon_s]
    return {
        "found": round(len(hit) / len(found_s), 4),
        "mean_found_s": round(float(hit.mean()), 1) if len(hit) else None,
        "median_found_s": round(float(np.median(hit)), 1) if len(hit) else None,
        "restricted_mean_s": round(float(np.minimum(found_s, horizon_s).mean()), 1),
    }


def run_scenario(
    scenario: SearchScenario, runs: int = 500, flights: int = 2, seed: int = 0
) -> dict[str, Any]:
    """Every figure of one scenario (see the module docstring)."""
    started = time.perf_counter()
    per_flight = math.ceil(runs / flights)
    results: dict[str, list[Flight]] = {}
    plans: dict[str, Plan] = {}
    grid: ProbabilityGrid | None = None
    for allocation in ALLOCATIONS:
        mission = scenario.mission(allocation)
        grid = build_prior(mission)
        assert grid is not None
        plans[allocation] = plan_mission(mission)
        results[allocation] = []
        for f in range(flights):
            # the same persons for both plans: the comparison is paired
            rng = np.random.default_rng([seed, f, 0x5EA])
            persons = sample_persons(grid, mission.searchable, per_flight, rng)
            results[allocation].append(fly(plans[allocation], persons, seed + f))
    assert grid is not None
    ends = {a: max(fl.end_s for fl in results[a]) for a in ALLOCATIONS}
    horizon = min(ends.values())
    times = np.arange(0.0, max(ends.values()) + STEP_S, STEP_S)
    out: dict[str, Any] = {
        "scenario": scenario.name,
        "description": scenario.description,
        "runs": per_flight * flights,
        "flights": flights,
        "poa_total": round(grid.total, 4),
        "horizon_s": round(horizon, 1),
        "time_s": times.tolist(),
    }
    for a in ALLOCATIONS:
        found = np.concatenate([fl.found_s for fl in results[a]])
        out[a] = {
            "makespan_s": round(ends[a], 1),
            "pos_end": round(float(np.isfinite(found).mean()), 4),
            **_time_stats(found, horizon),
            "pos_over_time": [round(float((found <= t).mean()), 4) for t in times],
        }
    # the theory at the effort the steered plan has flown by each time (mean over flights)
    air = np.mean([np.interp(times, fl.t_s, fl.effort_air_m2) for fl in results["optimal"]], 0)
    sw = np.mean([np.interp(times, fl.t_s, fl.effort_sweep_m2) for fl in results["optimal"]], 0)
    sigma = scenario.sigma_m

    def best(effort_m2: float) -> float:
        if sigma is not None:
            return circular_normal_pos(effort_m2, sigma)
        return pos(grid.poa, optimal_effort(grid.poa, grid.area_m2, effort_m2), grid.area_m2)

    best_air = [best(float(e)) for e in air]
    best_sweep = [best(float(e)) for e in sw]
    k = int(np.searchsorted(times, horizon, "right")) - 1
    got = out["optimal"]["pos_over_time"][k]
    if sigma is not None:
        # the same with the swath taken for the sweep width (E = speed × swath × time, a
        # stricter reference: the camera's W is 0.706 swath)
        best_swath = best(float(air[k]) / width_per_swath())
        out["pos_ratio_at_horizon_swath_as_width"] = round(got / best_swath, 4)
    out["effort_airborne_m2"] = [round(float(e)) for e in air]
    out["pos_best_airborne_effort"] = [round(v, 4) for v in best_air]
    out["pos_best_sweep_effort"] = [round(v, 4) for v in best_sweep]
    out["pos_ratio_at_horizon"] = round(got / best_air[k], 4) if best_air[k] > 0 else None
    out["pos_ratio_sweep_only_at_horizon"] = (
        round(got / best_sweep[k], 4) if best_sweep[k] else None
    )
    # the whole curve, from the first tenth of the horizon on (before that both are ~0)
    early = times >= 0.1 * horizon
    ratios = [
        o / b
        for o, b, e in zip(out["optimal"]["pos_over_time"], best_air, early, strict=True)
        if e and b > 0
    ]
    out["pos_ratio_min"] = round(min(ratios), 4) if ratios else None
    uni, opt = out["uniform"], out["optimal"]
    out["time_ratio_restricted_mean"] = round(
        opt["restricted_mean_s"] / uni["restricted_mean_s"], 4
    )
    if opt["mean_found_s"] and uni["mean_found_s"]:
        out["time_ratio_mean_found"] = round(opt["mean_found_s"] / uni["mean_found_s"], 4)
    out["wall_s"] = round(time.perf_counter() - started, 1)
    return out


def check_bars(result: dict[str, Any], scenario: SearchScenario) -> list[str]:
    """The issue's bars this scenario misses (empty: all met)."""
    misses = []
    if scenario.sigma_m is not None:
        r = result.get("pos_ratio_at_horizon")
        if r is None or r < POS_RATIO_BAR:
            misses.append(f"POS {r} × P* at equal effort, bar ≥ {POS_RATIO_BAR}")
    if scenario.lost_person:
        r = result["time_ratio_restricted_mean"]
        if r > TIME_RATIO_BAR:
            misses.append(f"mean time to find {r} × the lawnmower's, bar ≤ {TIME_RATIO_BAR}")
    return misses


def run(
    names: list[str] | None = None, runs: int = 500, flights: int = 2, seed: int = 0
) -> list[dict[str, Any]]:
    """Run the named scenarios (all by default)."""
    out = []
    for name in names or list(SCENARIOS):
        scenario = SCENARIOS[name]
        result = run_scenario(scenario, runs, flights, seed)
        result["misses"] = check_bars(result, scenario)
        out.append(result)
    return out


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """POS over time of every scenario, both plans and the theory, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.6 * len(results), 3.6), squeeze=False)
    for ax, r in zip(axes[0], results, strict=True):
        t = np.array(r["time_s"]) / 60.0
        ax.plot(t, r["optimal"]["pos_over_time"], label="steered by the map", color="C0")
        ax.plot(t, r["uniform"]["pos_over_time"], label="uniform lawnmower", color="C1")
        ax.plot(
            t,
            r["pos_best_airborne_effort"],
            "--",
            color="0.3",
            label="Stone's optimum, same effort",
        )
        ax.axvline(r["horizon_s"] / 60.0, color="0.7", lw=0.8)
        ax.set_title(f"{r['scenario']} ({r['runs']} runs)", fontsize=9)
        ax.set_xlabel("minutes from launch")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("POS: share of persons found")
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pair(o: dict[str, Any], u: dict[str, Any], key: str) -> str:
    """``optimal / uniform`` of a figure in seconds, in minutes."""
    return " / ".join("-" if r[key] is None else f"{r[key] / 60:.1f}" for r in (o, u))


def summary_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per scenario for the CLI table."""
    rows = []
    for r in results:
        o, u = r["optimal"], r["uniform"]
        rows.append(
            {
                "scenario": r["scenario"],
                "runs": r["runs"],
                "horizon_min": round(r["horizon_s"] / 60.0, 1),
                "found_by_horizon": f"{o['found']:.3f} / {u['found']:.3f}",
                "restricted_mean_min": _pair(o, u, "restricted_mean_s"),
                "median_found_min": _pair(o, u, "median_found_s"),
                "time_ratio": r["time_ratio_restricted_mean"],
                "pos_ratio": r["pos_ratio_at_horizon"],
                "bars": "met" if not r["misses"] else "; ".join(r["misses"]),
            }
        )
    return rows
