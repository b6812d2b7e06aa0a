"""Re-allocating the search in flight: the effort still to spend is planned anew from the map's
posterior (the search flown so far), on request or every N seconds, and the search still gets
to its target when drones are lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pydantic import TypeAdapter

from skysweep import mission
from skysweep.bench.plan_scenarios import Site, drones_entry, lonlat_point, mission_data
from skysweep.plan import Plan, plan_mission
from skysweep.plan.optimal_search import reallocate
from skysweep.runtime.commands import OperatorCommand
from skysweep.runtime.simulate import simulate
from skysweep.search import build_prior, pos, posterior
from skysweep.search.prior import ProbabilityGrid, plan_effort
from skysweep.sim.faults import Fault
from skysweep.store import RunLog

ORIGIN = (8.0, 46.5)


def _mission(**search: Any) -> mission.Mission:
    """1.2 km x 1 km with a pond, four drones at the west end, a datum prior off centre."""
    data = mission_data(
        "reallocate test",
        ORIGIN,
        shapely.box(0, 0, 1200, 1000),
        [Site("base", (80.0, 500.0), pads=4)],
        [drones_entry("quad", 4, "base", 10.0, 50.0, 900.0)],
        keep_out=[("pond", shapely.box(700, 300, 850, 450))],
        wind_mps=2.0,
    )
    data["search"].update(search)
    data["search"]["prior"] = {
        "cell_m": 50,
        "target_pos": 0.7,
        "datum": {**lonlat_point(650.0, 550.0, ORIGIN), "sigma_m": 300},
    }
    data["simulation"] = {"false_alarms_per_hour": 0.0, "targets": []}
    return mission.parse(data, source="<test>")


def _assert_safe(plan: Plan) -> None:
    m = plan.mission
    for s in plan.sorties:
        line = shapely.LineString(s.path[:, :2])
        for zone in m.keep_out:
            assert not line.intersects(zone.geometry.buffer(-0.01))
        assert s.energy <= 1.0 - m.safety.battery_reserve + 1e-9


def test_reallocating_keeps_what_is_flown_and_plans_the_rest_from_the_posterior() -> None:
    m = _mission()
    plan = plan_mission(m)
    grid = build_prior(m)
    assert grid is not None
    # the first sorties are flown; drone 0 is lost: the rest goes to drones 1-3
    launched = {i: 1 for i in range(4)}
    first = [s for s in plan.sorties if s.number == 1]
    flown = Plan(m, tuple(first), plan.cells, plan.metrics)
    effort = plan_effort(flown, grid)
    poc = posterior(grid.poa, effort, grid.area_m2)
    done = pos(grid.poa, effort, grid.area_m2)
    goal = 0.7 * grid.total
    goal_rest = 1 - (1 - goal) / (1 - done)
    free = {s.drone: s.land_s + 120.0 for s in first if s.drone != 0}
    new = reallocate(
        plan,
        ProbabilityGrid(grid.x0_m, grid.y0_m, grid.cell_m, poc, grid.area_m2),
        goal_rest,
        launched,
        free,
    )
    _assert_safe(new)
    kept = [s for s in new.sorties if s.number == 1]
    assert kept == first  # the very sorties, unchanged
    later = [s for s in new.sorties if s.number > 1]
    assert later and {s.drone for s in later} == {1, 2, 3}
    for s in later:
        assert s.launch_s >= free[s.drone] - 1e-6
    # flown and re-allocated together, the search reaches its target (exponential detection)
    assert pos(grid.poa, plan_effort(new, grid), grid.area_m2) >= goal - 0.02
    # and the new work goes where the posterior is densest: more of it near the datum
    new_effort = plan_effort(Plan(m, tuple(later), new.cells, new.metrics), grid)
    gx, gy = grid.centres_m()
    px, py = m.frame.to_local(
        m.spec.search.prior.datum.lon,  # type: ignore[union-attr]
        m.spec.search.prior.datum.lat,  # type: ignore[union-attr]
    )
    r = np.hypot(gx - px, gy - py)
    live = grid.area_m2 > 0
    per_m2 = new_effort / np.where(live, grid.area_m2, 1.0)
    assert per_m2[live & (r < 250)].mean() > per_m2[live & (r > 550)].mean()


def _fly(
    m: mission.Mission, tmp_path: Path, faults: list[dict[str, Any]], commands: list[dict[str, Any]]
) -> tuple[Any, list[Any], float]:
    plan = plan_mission(m)
    last: dict[str, Any] = {}
    with RunLog(tmp_path / "run.db", create=True) as log:
        summary, _ = simulate(
            plan,
            log,
            seed=3,
            faults=TypeAdapter(list[Fault]).validate_python(faults),
            commands=[OperatorCommand.model_validate(c) for c in commands],
            progress=lambda o: last.update(pos=o.pos, total=o.prior.total),
        )
        events = list(log.events("reallocate"))
    return summary, events, last["pos"] / last["total"]


def test_an_operator_reallocates_in_flight(tmp_path: Path) -> None:
    m = _mission()
    summary, events, share = _fly(m, tmp_path, [], [{"at_s": 240, "command": "reallocate"}])
    assert summary.state == "COMPLETE"
    assert [e.data["result"] for e in events] == ["ok"]
    assert events[0].data["reason"] == "operator" and events[0].data["version"] == 1
    assert share >= 0.7 - 0.05


def test_with_a_drone_lost_periodic_reallocation_still_reaches_the_target(tmp_path: Path) -> None:
    m = _mission(reallocate_every_s=200)
    lost = [{"at_s": 150, "kind": "drone_lost", "drone": "quad-002"}]
    summary, events, share = _fly(m, tmp_path, lost, [])
    assert len(events) >= 2 and all(e.data["result"] in ("ok", "target reached") for e in events)
    assert all(abs(e.t_s / 200 - round(e.t_s / 200)) < 0.01 for e in events)
    assert share >= 0.7 - 0.05
    assert summary.state == "COMPLETE"
