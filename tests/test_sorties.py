"""Sorties cut to battery size (skysweep.plan.sorties.cut_sorties): routes cut together are
each cut as if alone, every sortie fits its pack, flies pad to pad round the keep-outs, and the
sorties of a route sweep it in order, end to end."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skysweep import mission as mission_mod
from skysweep.bench.plan import count_intrusions
from skysweep.bench.plan_scenarios import warm_up_data
from skysweep.energy import PLAN_MARGIN
from skysweep.errors import InfeasibleError
from skysweep.geo import FloatArray
from skysweep.mission import Mission
from skysweep.plan import plan_mission
from skysweep.plan.model import Leg
from skysweep.plan.paths import PathFinder
from skysweep.plan.sorties import (
    FlightLeg,
    _flight_costs,
    cut_sorties,
    fly_routes,
    join_routes,
    schedule_all,
)

Work = tuple[Mission, PathFinder, np.ndarray, list[FloatArray]]


@pytest.fixture(scope="module")
def work() -> Work:
    """A meadow flown from two gates, a pond to fly round, wind, drones on short packs; each
    drone's planned sweeps joined, then flown again backwards: routes of several packs."""
    m = mission_mod.parse(warm_up_data(), source="<warm-up>")
    plan = plan_mission(m)
    finder = PathFinder(m.flyable)
    drones = np.array(sorted({s.drone for s in plan.sorties}), np.intp)
    sweeps = [[s.sweep_xy for s in plan.of_drone(int(i))] for i in drones]
    routes = join_routes(finder, [ws + [w[::-1] for w in ws[::-1]] for ws in sweeps])
    return m, finder, drones, routes


def _same(a: list[FlightLeg], b: list[FlightLeg]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.path, y.path) and np.array_equal(x.legs, y.legs)
        assert x.duration_s == y.duration_s and x.energy == y.energy


def test_routes_cut_together_are_each_cut_alone(work: Work) -> None:
    m, finder, drones, routes = work
    pads = m.pad_xy_m[drones]
    together = cut_sorties(m, drones, routes, finder, pads)
    assert all(len(flights) >= 2 for flights in together)  # several packs each
    for k in range(len(routes)):
        alone = cut_sorties(m, drones[k : k + 1], routes[k : k + 1], finder, pads[k : k + 1])
        _same(alone[0], together[k])


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_the_order_and_company_of_routes_change_no_cut(work: Work, data: st.DataObject) -> None:
    m, finder, drones, routes = work
    reference = cut_sorties(m, drones, routes, finder, m.pad_xy_m[drones])
    picked = data.draw(st.lists(st.sampled_from(range(len(routes))), min_size=1, max_size=8))
    got = cut_sorties(
        m, drones[picked], [routes[k] for k in picked], finder, m.pad_xy_m[drones[picked]]
    )
    for k, flights in zip(picked, got, strict=True):
        _same(flights, reference[k])


def test_every_sortie_fits_its_pack_flies_pad_to_pad_and_sweeps_the_route_in_order(
    work: Work,
) -> None:
    m, finder, drones, routes = work
    pads = m.pad_xy_m[drones]
    budget = 1.0 - m.safety.battery_reserve - PLAN_MARGIN
    flights = cut_sorties(m, drones, routes, finder, pads)
    zones = [z.geometry for z in m.keep_out]
    for route, pad, mine in zip(routes, pads, flights, strict=True):
        swept = []
        for f in mine:
            assert f.energy <= budget + 1e-12
            assert np.allclose(f.path[[0, -1], :2], pad) and np.all(f.path[[0, -1], 2] == 0.0)
            kinds = [Leg(k) for k in f.legs]
            assert kinds[0] is Leg.CLIMB and kinds[-1] is Leg.DESCEND
            # out, sweep, home: in that order, each once
            order = [k for n, k in enumerate(kinds) if n == 0 or k is not kinds[n - 1]]
            assert order in (
                [Leg.CLIMB, Leg.TRANSIT, Leg.SWEEP, Leg.RETURN, Leg.DESCEND],
                [Leg.CLIMB, Leg.SWEEP, Leg.RETURN, Leg.DESCEND],
                [Leg.CLIMB, Leg.TRANSIT, Leg.SWEEP, Leg.DESCEND],
            )
            at = np.flatnonzero(f.legs == int(Leg.SWEEP))
            swept.append(f.path[at[0] : at[-1] + 2, :2])
        assert count_intrusions((f.path for f in mine), zones) == 0
        # each sortie takes up the route where the last one left it
        assert np.array_equal(swept[0][0], route[0]) and np.array_equal(swept[-1][-1], route[-1])
        for a, b in itertools.pairwise(swept):
            assert np.array_equal(a[-1], b[0])
        # every vertex of the route is swept, in order; the sorties' ends lie on the route
        points = np.vstack(swept)
        at = 0
        for vertex in route:
            while not np.array_equal(points[at], vertex):
                at += 1
        on_route = shapely.distance(shapely.LineString(route), shapely.points(points))
        assert np.all(on_route < 1e-6)


def test_the_cut_costs_each_sortie_as_the_re_plan_costs_a_whole_path(work: Work) -> None:
    """Two ways to the same figure: the cutter adds up the way out, the route between its
    points and the way home as it cuts; the re-plan's costing takes the finished path."""
    m, finder, drones, routes = work
    flights = cut_sorties(m, drones, routes, finder, m.pad_xy_m[drones])
    who = np.array([i for i, mine in zip(drones, flights, strict=True) for _ in mine], np.intp)
    legs = [f for mine in flights for f in mine]
    energy_cs, duration_s = _flight_costs(m, who, [f.path for f in legs], [f.legs for f in legs])
    np.testing.assert_allclose(energy_cs / m.fleet.endurance_s[who], [f.energy for f in legs])
    np.testing.assert_allclose(duration_s, [f.duration_s for f in legs])


def test_a_route_of_fewer_than_two_points_has_no_sorties(work: Work) -> None:
    m, finder, drones, routes = work
    got = cut_sorties(
        m, drones[:3], [routes[0][:1], np.empty((0, 2)), routes[2]], finder, m.pad_xy_m[:3]
    )
    assert got[0] == [] and got[1] == [] and len(got[2]) >= 1


def test_work_beyond_one_battery_is_an_error_that_names_the_drone() -> None:
    data = copy.deepcopy(warm_up_data())
    data["fleet"][0]["endurance_s"] = 200.0  # the gate's quads: 2,000 m of flight at most
    m = mission_mod.parse(data, source="<short packs>")
    finder = PathFinder(m.flyable)
    far = np.array([[0.0, 880.0], [40.0, 880.0]])  # 1.5 km from the gate, 3 km there and back
    with pytest.raises(InfeasibleError, match=f"{m.fleet.ids[0]}: its work .* beyond one"):
        cut_sorties(m, [0], [far], finder, m.pad_xy_m[:1])


def test_routes_are_joined_by_flyable_hops_round_the_pond(work: Work) -> None:
    m, finder, _, _ = work
    west, east = np.array([[-220.0, 10.0], [-200.0, 10.0]]), np.array([[150.0, 10.0]])
    (joined,) = join_routes(finder, [[west, np.empty((0, 2)), east]])
    assert np.array_equal(joined[:2], west) and np.array_equal(joined[-1], east[0])
    assert len(joined) > 3  # round the pond, not across it
    assert count_intrusions([joined], [z.geometry for z in m.keep_out]) == 0
    # and flown: the same as cutting the joined route
    pad = m.pad_xy_m[3]
    flown = fly_routes(m, 3, [west, east], finder, 100.0, 4, pad)
    _same([_leg(s) for s in flown], cut_sorties(m, [3], [joined], finder, pad[None])[0])
    assert flown[0].launch_s == 100.0 and flown[0].number == 4


def _leg(s: object) -> FlightLeg:
    return FlightLeg(s.path, s.legs, s.duration_s, s.energy)  # type: ignore[attr-defined]


def test_each_drones_flights_are_chained_in_turn_with_swaps(work: Work) -> None:
    """Routes of two drones, interleaved: each drone's sorties numbered from 1 in its own
    order, the first at its start, each next one a swap after the one before lands; a route
    with no sorties leaves the chain as it was."""
    m, finder, drones, routes = work
    a, b = int(drones[0]), int(drones[1])
    order = [a, b, a, b, a]
    picked = [routes[0], routes[1], routes[0][:1], routes[1], routes[0]]
    flights = cut_sorties(m, np.array(order, np.intp), picked, finder, m.pad_xy_m[order])
    assert flights[2] == []
    start = np.arange(len(m.fleet), dtype=float) * 7.0
    out = schedule_all(m, order, flights, start)
    assert len(out) == sum(len(f) for f in flights)
    for d in (a, b):
        mine = [s for s in out if s.drone == d]
        assert [s.number for s in mine] == list(range(1, len(mine) + 1))
        assert mine[0].launch_s == start[d]
        for before, after in itertools.pairwise(mine):
            assert after.launch_s == pytest.approx(before.land_s + float(m.fleet.swap_s[d]))
        legs = [leg for k, f in enumerate(flights) if order[k] == d for leg in f]
        assert [s.duration_s for s in mine] == [leg.duration_s for leg in legs]
