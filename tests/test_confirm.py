"""Confirming detections: the nearest suitable drone flies a tight pattern over a detection and
goes on with its sortie; the operator's verdict ends the search or folds the looks back into the
probability map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely

from skysweep import mission
from skysweep.bench.plan_scenarios import Site, drones_entry, lonlat_point, mission_data
from skysweep.plan import plan_mission
from skysweep.runtime.confirm import Confirmation, nearest_drone, open_near, pattern_xy
from skysweep.runtime.orchestrator import Orchestrator
from skysweep.runtime.simulate import simulate
from skysweep.search.effort import posterior
from skysweep.store import RunLog

ORIGIN = (8.0, 46.5)


def _lonlat(x: float, y: float) -> tuple[float, float]:
    p = lonlat_point(x, y, ORIGIN)
    return p["lon"], p["lat"]


def _mission(targets: list[dict[str, Any]], false_alarms_per_hour: float) -> mission.Mission:
    """900 m x 600 m, four drones from one site at the west end, a datum prior in the middle."""
    data = mission_data(
        "confirm test",
        ORIGIN,
        shapely.box(0, 0, 900, 600),
        [Site("base", (60.0, 300.0), pads=4)],
        [drones_entry("quad", 4, "base", 10.0, 50.0, 1200.0)],
        wind_mps=2.0,
    )
    lon, lat = _lonlat(450, 300)
    data["search"]["prior"] = {
        "cell_m": 50,
        "target_pos": 0.6,
        "datum": {"lon": lon, "lat": lat, "sigma_m": 250},
    }
    data["simulation"] = {"targets": targets, "false_alarms_per_hour": false_alarms_per_hour}
    return mission.parse(data, source="<test>")


# -- the pure parts -----------------------------------------------------------------------------


def test_the_nearest_eligible_drone_not_yet_tried_is_picked() -> None:
    pos = np.array([[0.0, 0.0], [10.0, 0.0], [50.0, 0.0], [200.0, 0.0]])
    eligible = np.array([True, False, True, True])
    assert nearest_drone(pos, eligible, np.array([12.0, 0.0]), set()) == 0
    assert nearest_drone(pos, eligible, np.array([40.0, 0.0]), set()) == 2
    assert nearest_drone(pos, eligible, np.array([40.0, 0.0]), {2}) == 0
    assert nearest_drone(pos, eligible, np.array([40.0, 0.0]), {0, 2, 3}) is None


def test_a_report_near_an_open_detection_is_the_same_object() -> None:
    open_ = {
        1: Confirmation(1, (0.0, 0.0), 10.0),
        2: Confirmation(2, (100.0, 0.0), 20.0),
    }
    assert open_near(open_, {}, np.array([20.0, 5.0]), 30.0) is open_[1]
    assert open_near(open_, {}, np.array([85.0, 0.0]), 30.0) is open_[2]
    assert open_near(open_, {}, np.array([50.0, 0.0]), 30.0) is None
    # one the operator has ruled on is closed: a new report there is a new detection
    assert open_near(open_, {1: "dismissed"}, np.array([5.0, 0.0]), 30.0) is None


def test_the_pattern_is_a_tight_square_round_the_report() -> None:
    at = np.array([300.0, -40.0])
    track = pattern_xy(at, 50.0)
    np.testing.assert_allclose(track[0], at)
    assert np.abs(track - at).max() <= 50.0 + 1e-9
    legs = np.hypot(*np.diff(track, axis=0).T)
    assert legs.min() <= 25.0 + 1e-9  # legs half a swath apart at most
    assert 300.0 < legs.sum() < 800.0  # about a minute at survey speed


# -- in flight ----------------------------------------------------------------------------------


def _fly(m: mission.Mission, tmp_path: Path, on_tick: Any, seed: int) -> tuple[Any, RunLog]:
    plan = plan_mission(m)
    log = RunLog(tmp_path / "run.db", create=True)
    summary, _ = simulate(plan, log, seed=seed, progress=on_tick)
    return summary, log


def test_a_detection_is_confirmed_by_the_nearest_drone_and_the_search_ends(
    tmp_path: Path,
) -> None:
    lon, lat = _lonlat(470, 320)
    m = _mission([{"kind": "person", "lon": lon, "lat": lat}], false_alarms_per_hour=0.0)
    seen: dict[str, Any] = {}

    def on_tick(o: Orchestrator) -> None:
        flown = [c for c in o.confirmations.values() if c.flown_s is not None]
        if flown and "verdict_s" not in seen:
            c = flown[0]
            seen["verdict_s"] = o.t_s
            seen["at_start"] = o.last_state.pos_m[:, :2].copy() if o.last_state else None
            o.submit("confirm_detection", {"detection": c.number})

    summary, log = _fly(m, tmp_path, on_tick, seed=4)
    with log:
        detections = list(log.events("detection"))
        starts = list(log.events("confirm_start"))
        flown = list(log.events("confirmation_flown"))
        found = list(log.events("found"))
        launches = list(log.events("launch"))
    assert detections, "the person was never seen"
    first = detections[0]
    assert starts, "no drone was sent to confirm"
    start = starts[0]
    assert start.data["detection"] == first.data["detection"]
    assert start.t_s - first.t_s <= 2.0  # at the next tick or so
    # the pattern was flown over the person, who was seen again from it
    assert flown[0].data["complete"] is True
    assert flown[0].data["redetections"] >= 1
    # later reports of the same person start no second confirmation
    same = [d for d in detections[1:] if d.data.get("same_as") == first.data["detection"]]
    assert len(starts) == 1 and same
    # the operator's confirmation ends the search: everyone home, nobody launches again
    assert found and found[0].data["search_ended"] is True
    assert found[0].data["lon"] == pytest.approx(lon, abs=3e-4)
    assert summary.state == "COMPLETE"
    assert all(e.t_s <= seen["verdict_s"] + 1.0 for e in launches)
    assert summary.mission_time_s < max(s.land_s for s in plan_mission(m).sorties)


def test_a_dismissed_false_alarm_is_folded_back_into_the_map(tmp_path: Path) -> None:
    m = _mission([{"kind": "person", "lon": _lonlat(880, 20)[0], "lat": _lonlat(880, 20)[1]}], 40.0)
    checked: dict[str, Any] = {}

    def on_tick(o: Orchestrator) -> None:
        assert o.prior is not None and o.search_effort is not None
        open_ = [
            c
            for c in o.confirmations.values()
            if c.flown_s is not None and c.number not in o.detection_status
        ]
        if open_ and "before" not in checked:
            c = open_[0]
            g = o.prior
            cell = (int((c.xy_m[1] - g.y0_m) // g.cell_m), int((c.xy_m[0] - g.x0_m) // g.cell_m))
            full = posterior(g.poa, o.search_effort, g.area_m2)
            poc = o.poc
            assert poc is not None
            # awaiting a verdict, the looks at its cell do not count as an unsuccessful search
            checked["before"] = (float(poc[cell]), float(full[cell]), o.search_effort[cell])
            checked["cell"], checked["number"] = cell, c.number
            o.submit("dismiss_detection", {"detection": c.number})
        elif "before" in checked and "after" not in checked and o.detection_status:
            full = posterior(o.prior.poa, o.search_effort, o.prior.area_m2)
            poc = o.poc
            assert poc is not None
            # other detections may still await their verdict (their cells left out of the
            # update, so all others are scaled a little): the dismissed cell is scaled alike
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = poc / full
            checked["after"] = (float(ratio[checked["cell"]]), float(np.nanmedian(ratio)))
            checked["recalled"] = bool(o.recalled.any())
            o.stop()  # seen what matters: no need to fly the rest

    _, log = _fly(m, tmp_path, on_tick, seed=7)
    with log:
        found = list(log.events("found"))
        starts = list(log.events("confirm_start"))
    assert starts, "no false alarm was confirmed"
    assert "before" in checked and "after" in checked
    pending_poc, full_poc, effort = checked["before"]
    assert effort > 0 and pending_poc > full_poc
    cell_ratio, ratio_elsewhere = checked["after"]
    assert cell_ratio == pytest.approx(ratio_elsewhere, rel=1e-9)
    # a dismissal ends nothing: the search goes on
    assert not found and not checked["recalled"]


def test_a_drone_confirms_again_once_its_pattern_is_flown(tmp_path: Path) -> None:
    m = _mission([], false_alarms_per_hour=90.0)

    def on_tick(o: Orchestrator) -> None:
        if o.t_s >= 900:
            o.stop()

    _, log = _fly(m, tmp_path, on_tick, seed=11)
    with log:
        starts = [(e.t_s, e.drone) for e in log.events("confirm_start")]
        flown = {e.data["detection"]: e.t_s for e in log.events("confirmation_flown")}
        by = {e.data["detection"]: e.drone for e in log.events("confirm_start")}
    drones = [d for _, d in starts]
    assert len(starts) > 4 and max(drones.count(d) for d in set(drones)) >= 2
    # never two patterns at once for one drone: each starts after its previous one is flown
    for d in set(drones):
        mine = sorted((t, n) for n, t in flown.items() if by[n] == d)
        begun = sorted(t for t, who in starts if who == d)
        for (end, _), nxt in zip(mine, begun[1:], strict=False):
            assert nxt >= end
