"""What the orchestrator watches in the telemetry (skysweep.runtime.watch): fence breaches
counted once when they start, the closest approach, the ground the cameras saw and the search
effort they put into the probability map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
import yaml
from test_run import SMALL

from skysweep import mission as mission_mod
from skysweep.mission import Mission
from skysweep.runtime.watch import SENSOR_MIN_ALT, BreachWatch, SensorLedger
from skysweep.search.effort import posterior
from skysweep.store import Event
from skysweep.telemetry import AutopilotMode, FleetState

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def small() -> Mission:
    return mission_mod.parse(yaml.safe_load(SMALL), "small")


def _state(pos: list[list[float]], seq: list[int] | None = None) -> FleetState:
    p = np.asarray(pos, float)
    n = len(p)
    return FleetState(
        t_s=0.0,
        pos_m=p,
        vel_mps=np.zeros((n, 3)),
        battery=np.ones(n),
        mode=np.full(n, AutopilotMode.AUTO, np.int8),
        mission_seq=np.asarray(seq if seq is not None else [1] * n, np.intp),
        airborne=np.ones(n, bool),
        last_seen_s=np.zeros(n),
    )


def test_a_breach_is_counted_once_when_it_starts(small: Mission) -> None:
    watch = BreachWatch.of(small)
    cliff = small.keep_out[0].geometry.centroid
    _, _, x1, y1 = small.keep_in.bounds
    inside_area = [float(small.site_xy_m[0][0]), float(small.site_xy_m[0][1]), 60.0]
    far_off = [x1 + 500.0, y1 + 500.0, 60.0]
    ids = ["a", "b", "c", "d"]
    air = np.ones(4, bool)
    events: list[Event] = []
    at_cliff = [cliff.x, cliff.y, 60.0]
    away = [[inside_area[0] + 200.0 * k, inside_area[1] + 100.0, 60.0] for k in range(4)]
    for pos in ([at_cliff, far_off, *away[2:]], [at_cliff, far_off, *away[2:]]):
        watch.look(_state(pos), air, ids, 1.0, events)
    assert [(e.kind, e.drone) for e in events] == [
        ("keep_out_breach", "a"),
        ("keep_in_breach", "b"),
    ]
    assert (watch.keep_out_breaches, watch.keep_in_breaches) == (1, 1)
    assert watch.breached.tolist() == [True, True, False, False]
    # out and back in: a second breach
    watch.look(_state(away), air, ids, 2.0, events)
    watch.look(_state([at_cliff, *away[1:]]), air, ids, 3.0, events)
    assert watch.keep_out_breaches == 2
    # a drone inside a zone when it is laid has not breached it, until it leaves and comes back
    zone = shapely.Point(away[3][:2]).buffer(30.0)
    watch.set_keep_out([small.keep_out[0].geometry, zone])
    watch.already_in(np.array([False, False, False, True]))
    watch.look(_state([at_cliff, *away[1:]]), air, ids, 4.0, events)
    assert watch.keep_out_breaches == 2
    # a drone on the ground is not looked at
    watch.look(_state(away), air, ids, 5.0, events)
    watch.look(_state([at_cliff, *away[1:]]), np.zeros(4, bool), ids, 6.0, events)
    assert watch.keep_out_breaches == 2 and not watch.breached.any()


def test_the_closest_approach_is_within_one_band(small: Mission) -> None:
    watch = BreachWatch.of(small)
    x, y = small.site_xy_m[0]
    pos = [[x, y, 60.0], [x + 12.0, y, 60.0], [x + 3.0, y, 90.0], [x + 400.0, y, 60.0]]
    watch.look(_state(pos), np.ones(4, bool), ["a", "b", "c", "d"], 0.0, [])
    assert watch.min_separation_m == pytest.approx(12.0)  # not the 3 m to one 30 m above


def test_the_cameras_see_what_the_drones_fly_over_at_height(small: Mission) -> None:
    ledger = SensorLedger.of(small)
    x, y = small.site_xy_m[0]
    alt = small.altitude_m
    start = [[x + 100.0, y + 100.0, alt], [x + 100.0, y + 300.0, SENSOR_MIN_ALT * alt - 1.0]]
    ledger.look(_state(start), [None, None])
    assert ledger.coverage.fraction == 0.0
    # the first flies 400 m east at height; the second as far, too low to see
    ledger.look(_state([[x + 500.0, y + 100.0, alt], [x + 500.0, y + 300.0, 5.0]]), [None, None])
    seen = ledger.coverage.fraction * float(small.searchable.area)
    swath = float(small.fleet.swath_m[0])
    assert seen == pytest.approx(400.0 * swath, rel=0.2)


def test_a_drone_heard_again_after_a_silence_sweeps_its_route_meanwhile(small: Mission) -> None:
    ledger = SensorLedger.of(small)
    x, y = small.site_xy_m[0]
    alt = small.altitude_m
    route = np.array([[x, y, 0.0], [x + 100, y + 100, alt], [x + 700, y + 100, alt],
                      [x + 700, y + 300, alt], [x + 100, y + 300, alt]])  # fmt: skip
    ledger.look(_state([[x + 100.0, y + 100.0, alt]], [2]), [route])
    # heard again three items on, on its way back along the second lane
    ledger.look(_state([[x + 400.0, y + 300.0, alt]], [4]), [route])
    swath = float(small.fleet.swath_m[0])
    seen = ledger.coverage.fraction * float(small.searchable.area)
    assert seen == pytest.approx((600.0 + 200.0 + 300.0) * swath, rel=0.25)


def test_effort_gives_the_search_its_pos_and_the_map_its_posterior() -> None:
    m = mission_mod.load(EXAMPLES / "lost-hiker-prior.yaml")
    ledger = SensorLedger.of(m)
    assert ledger.prior is not None and ledger.effort_m2 is not None
    assert ledger.pos == 0.0
    g = ledger.prior
    # a pass through the map's most likely cell
    row, col = np.unravel_index(np.argmax(g.poa), g.shape)
    cx, cy = g.x0_m + (col + 0.5) * g.cell_m, g.y0_m + (row + 0.5) * g.cell_m
    path = np.array([[cx - g.cell_m, cy], [cx + g.cell_m, cy]])
    ledger.stamp_path(path, 0)
    assert ledger.effort_m2[row, col] > 0.0
    assert ledger.pos is not None and ledger.pos > 0.0
    poc = ledger.poc()
    assert poc is not None
    np.testing.assert_allclose(poc, posterior(g.poa, ledger.effort_m2, g.area_m2))
    assert poc[row, col] < g.poa[row, col] / g.poa.sum()
    # a detection there awaiting the operator's verdict: its cell's looks do not count yet
    held = ledger.poc([(cx, cy)])
    assert held is not None and held[row, col] > poc[row, col]


def test_without_a_probability_map_there_is_no_pos(small: Mission) -> None:
    ledger = SensorLedger.of(small)
    assert ledger.prior is None and ledger.pos is None and ledger.poc() is None
