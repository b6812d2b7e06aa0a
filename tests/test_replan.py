"""Re-planning during a flight (:func:`skysweep.plan.replan.replan`)."""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest
import shapely
import shapely.ops
import yaml
from test_run import SMALL

from skysweep import mission
from skysweep.errors import InfeasibleError
from skysweep.plan import Plan, plan_mission
from skysweep.plan.model import Leg, Sortie
from skysweep.plan.replan import Progress, replan

# 500 drones from two staging areas over ~36 km² with a keep-out zone.
FIVE_HUNDRED = """
name: five hundred
area: {type: Polygon, coordinates: [[[11.00, 45.00], [11.08, 45.00], [11.08, 45.045],
       [11.00, 45.045], [11.00, 45.00]]]}
keep_out:
  - name: village
    geometry: {type: Polygon, coordinates: [[[11.030, 45.020], [11.040, 45.020], [11.040, 45.026],
               [11.030, 45.026], [11.030, 45.020]]]}
launch_sites:
  - {name: west, lon: 11.01, lat: 45.005, pads: 10, launch_interval_s: 3}
  - {name: east, lon: 11.07, lat: 45.04, pads: 10, launch_interval_s: 3}
fleet:
  - {model: quad-m, count: 250, launch_site: west, speed_mps: 8, endurance_s: 1800, swath_m: 40}
  - {model: quad-l, count: 250, launch_site: east, speed_mps: 10, endurance_s: 1800, swath_m: 50}
search: {altitude_m: 50}
weather: {wind_mps: 3, wind_from_deg: 200}
"""


@pytest.fixture(scope="module")
def big() -> Plan:
    return plan_mission(mission.parse(yaml.safe_load(FIVE_HUNDRED), "five hundred"))


def flown_until(plan: Plan, now_s: float) -> Progress:
    """Every drone's track as if it flew its plan at cruise speed until ``now_s``."""
    return Progress.as_planned(plan, now_s)


def test_losing_a_tenth_of_500_drones_mid_mission_still_covers_the_area(big: Plan) -> None:
    assert big.metrics.coverage_fraction >= 0.995
    progress = flown_until(big, 0.5 * big.metrics.makespan_s)
    flying = np.array(sorted(progress.tracks))
    lost = np.random.default_rng(1).choice(flying, size=len(big.mission.fleet) // 10, replace=False)
    new = replan(big, progress, lost=lost.tolist())
    assert new.metrics.coverage_fraction >= 0.995
    # no work goes to a lost drone, not even what it was flying
    assert not {s.drone for s in new.sorties} & set(lost.tolist())
    # the healthy keep their own sorties: untouched, or flown as planned up to their last
    # sweep point and then on to some of the lost drones' work before going home
    before = {(s.drone, s.number): s for s in big.sorties if s.land_s > progress.now_s}
    longer = []
    for s in new.sorties:
        old = before.get((s.drone, s.number))
        if old is None or s is old:
            continue
        j = int(np.flatnonzero(old.legs == Leg.SWEEP)[-1]) + 1
        assert s.launch_s == old.launch_s and np.array_equal(s.path[: j + 1], old.path[: j + 1])
        assert np.array_equal(s.legs[:j], old.legs[:j]) and s.land_s > old.land_s
        longer.append(s)
    extra = [s for s in new.sorties if (s.drone, s.number) not in before]
    assert longer or extra
    assert all(s.launch_s >= progress.now_s for s in extra)
    budget = 1.0 - big.mission.safety.battery_reserve
    assert max(s.energy for s in new.sorties) <= budget
    # drones with battery to spare sweep some of it on their way
    assert longer


def _as_the_runtime_tells(plan: Plan, now_s: float, launched: dict[int, int]) -> Progress:
    """What the runtime gives the re-planner: where each drone is (not the track it flew),
    which sortie it last took off on and which it is flying; ``launched`` is updated."""
    tracks = {i: t[-1:].copy() for i, t in Progress.as_planned(plan, now_s).tracks.items()}
    in_air = {}
    for s in plan.sorties:
        if s.launch_s < now_s:
            launched[s.drone] = max(launched.get(s.drone, 0), s.number)
            if s.land_s > now_s:
                in_air[s.drone] = s.number
    return Progress(now_s, tracks, in_air, dict(launched))


@pytest.fixture(scope="module")
def forty() -> Plan:
    """Forty drones, two or three sorties each."""
    text = FIVE_HUNDRED.replace("count: 250", "count: 20").replace("1800", "2400")
    return plan_mission(mission.parse(yaml.safe_load(text), "forty"))


def test_a_re_plan_counts_what_earlier_plans_swept(forty: Plan) -> None:
    """In a flight the re-planner is told where each drone is, not the track it flew: its
    coverage counts the sweeps flown before it (in full, or as far as a lost drone got), and
    those an earlier re-plan counted, so a second re-plan still reports the area covered (the
    sorties flown before the first are in neither plan)."""
    big = forty
    fleet = np.arange(len(big.mission.fleet))
    rng = np.random.default_rng(7)
    launched: dict[int, int] = {}
    plan = big
    for share in (0.4, 0.7):
        now = share * big.metrics.makespan_s
        progress = _as_the_runtime_tells(plan, now, launched)
        lost = rng.choice(sorted(progress.in_air), size=len(fleet) // 20, replace=False)
        plan = replan(plan, progress, lost=lost.tolist())
        assert plan.metrics.coverage_fraction >= 0.995, share
        assert plan.swept
    # what it counts is what was flown: the sweeps of the sorties landed by the first re-plan
    # are among them
    landed = [s for s in big.sorties if s.land_s < 0.4 * big.metrics.makespan_s]
    assert landed
    counted = {id(xy) for _, xy in plan.swept}
    assert all(id(s.sweep_xy) in counted for s in landed)


def test_a_new_keep_out_zone_is_flown_round(big: Plan) -> None:
    """Nothing flies into a new zone from now on: sorties still to launch are planned round
    it, and one in the air whose path crossed it is flown round it from where its drone is
    (or its work handed on and the drone brought home). A drone's sorties still follow each
    other with a battery swap between, though one flown round the zone lands later."""
    m = big.mission
    progress = flown_until(big, 0.3 * big.metrics.makespan_s)
    x, y = m.frame.to_local([11.055], [45.012])
    zone = shapely.box(float(x[0]) - 400, float(y[0]) - 300, float(x[0]) + 400, float(y[0]) + 300)
    new = replan(big, progress, new_keep_out=[zone])
    before = {(s.drone, s.number): s for s in big.sorties}
    speed = m.fleet.speed_mps
    rerouted = 0
    for s in new.sorties:
        if s.launch_s > progress.now_s:
            assert not shapely.intersects(shapely.LineString(s.path[:, :2]), zone)
        elif s.land_s > progress.now_s:
            # in the air: its path as far as the drone has flown it (at cruise speed, as
            # flown_until has it), then none of it in the zone
            xy = s.path[:, :2]
            cum = np.r_[0.0, np.cumsum(np.hypot(*np.diff(xy, axis=0).T))]
            flown = (progress.now_s - s.launch_s) * float(speed[s.drone])
            ahead = cum > flown + 1e-6
            at = [np.interp(flown, cum, xy[:, 0]), np.interp(flown, cum, xy[:, 1])]
            if ahead.any():
                rest = shapely.LineString(np.vstack([at, xy[ahead]]))
                assert not shapely.intersects(rest, zone), (s.drone, s.number)
            old = before[(s.drone, s.number)]
            if s is not old:
                assert s.launch_s == old.launch_s and np.array_equal(s.path[:2], old.path[:2])
                rerouted += 1
    assert rerouted
    swap = m.fleet.swap_s
    for d in {s.drone for s in new.sorties}:
        mine = new.of_drone(d)
        for a, b in itertools.pairwise(mine):
            assert b.launch_s >= a.land_s + swap[d] - 1e-6
    assert new.metrics.coverage_fraction >= 0.99


def test_added_drones_take_a_share_of_the_work_still_to_fly() -> None:
    """Forty drones, most with several sorties ahead; two of them are held back as reserves
    (their sorties dropped) and then added: they take a share of the later sorties of the
    drones that finish last, and the area stays covered. (The finish does not improve yet:
    handed-on work is flown in fresh sorties from the pad, which costs what it saves.)"""
    text = FIVE_HUNDRED.replace("count: 250", "count: 20").replace("1800", "2400")
    plan = plan_mission(mission.parse(yaml.safe_load(text), "forty"))
    reserves = [0, 20]
    others = tuple(s for s in plan.sorties if s.drone not in reserves)
    # the same plan as if the reserves had not been there: their work goes to the others first
    progress = flown_until(plan, 0.0)
    without = replan(plan, progress, lost=reserves)
    assert not {s.drone for s in without.sorties} & set(reserves)
    new = replan(without, progress, added_drones=reserves)
    assert {s.drone for s in new.sorties} >= set(reserves)
    assert sum(s.drone in reserves for s in new.sorties) >= 2
    assert new.metrics.coverage_fraction >= 0.995
    assert others  # the fixture has work for everyone else


def test_nobody_left_is_an_error(big: Plan) -> None:
    progress = flown_until(big, 10.0)
    with pytest.raises(InfeasibleError, match="no drone is left"):
        replan(big, progress, lost=list(range(len(big.mission.fleet))))
    with pytest.raises(InfeasibleError, match="no drone 9999"):
        replan(big, progress, lost=[9999])


def test_sorties_running_late_are_judged_by_what_flew_not_by_the_clock() -> None:
    """The runtime says which sortie each drone last took off on (``Progress.launched``) and
    which it is flying (``in_air``). A drone still on its pad waiting for a battery when its
    next sortie was due has all of that sortie to do: lost there, the whole sweep is handed on
    (the clock would have cut it where the route passes nearest the pad). New work for a drone
    is numbered after every sortie it flew, even one whose own sorties were all handed on."""
    text = FIVE_HUNDRED.replace("count: 250", "count: 4").replace("1800", "2400")
    data = yaml.safe_load(text)
    data.setdefault("search", {})["sidelap_m"] = 0.0
    plan = plan_mission(mission.parse(data, "eight"))
    pads = plan.mission.pad_xy_m

    def nearest_at(s: Sortie) -> float:
        """How far along its sweep (0-1) a sortie passes nearest its drone's pad."""
        d = np.hypot(*(s.sweep_xy - pads[s.drone]).T)
        return float(np.argmin(d)) / max(len(d) - 1, 1)

    # the victim: a drone whose second route passes nearest its pad well after its start, so
    # that the clock's cut (below) visibly loses the sortie; one that passes nearest at the
    # start would be handed on whole by the clock too, by luck
    second = max((s for s in plan.sorties if s.number == 2), key=nearest_at)
    assert nearest_at(second) > 0.5
    victim = second.drone
    now = second.launch_s + 0.25 * second.duration_s  # due a while ago; still on its pad
    pad = plan.mission.pad_xy_m[victim]
    tracks = {victim: pad[None].copy()}
    launched = {i: 1 for i in range(len(plan.mission.fleet))}
    in_air = {i: 1 for i in launched if i != victim}  # the rest are late in their first sortie

    by_clock = replan(plan, Progress(now, tracks), lost=[victim])
    as_flown = replan(plan, Progress(now, tracks, in_air, launched), lost=[victim])

    def handed(new: Plan) -> float:
        lines = [s.sweep_xy for s in new.sorties if s.drone != victim and len(s.sweep_xy) > 1]
        gained = shapely.union_all([shapely.LineString(x).buffer(1.0) for x in lines])
        own = shapely.LineString(second.sweep_xy)
        return float(shapely.intersection(own, gained).length / own.length)

    assert handed(as_flown) >= 0.99
    assert handed(as_flown) > handed(by_clock) + 0.05  # the clock lost part of it

    # the victim is back: its new work follows the sortie it flew (1), not its plan (none)
    back = replan(as_flown, Progress(now + 60, tracks, in_air, launched), added_drones=[victim])
    mine = [s.number for s in back.sorties if s.drone == victim]
    assert mine and min(mine) == 2


def test_handed_on_lanes_go_to_drones_with_a_swath_as_wide(big: Plan) -> None:
    """A lost drone's lanes are spaced for its swath; a drone with a narrower one would leave
    stripes between them unseen (reliability run, seed 444). Lost 50 m drones' work goes to
    the other 50 m drones, none to the 40 m ones, when those can reach it."""
    swath = big.mission.fleet.swath_m
    progress = flown_until(big, 0.5 * big.metrics.makespan_s)
    wide = [i for i in sorted(progress.tracks) if swath[i] == 50.0]
    lost = wide[:: max(1, len(wide) // 10)][:10]
    new = replan(big, progress, lost=lost)
    before = {(s.drone, s.number) for s in big.sorties}
    extra = [s for s in new.sorties if (s.drone, s.number) not in before]
    assert extra
    assert {float(swath[s.drone]) for s in extra} == {50.0}


MIXED = """
name: one wide drone
area: {type: Polygon, coordinates: [[[9.000, 46.000], [9.012, 46.000], [9.012, 46.008],
       [9.000, 46.008], [9.000, 46.000]]]}
launch_sites:
  - {name: a, lon: 9.002, lat: 46.002, pads: 2}
  - {name: b, lon: 9.010, lat: 46.006, pads: 1}
fleet:
  - {model: quad, count: 2, launch_site: a, speed_mps: 10, endurance_s: 1800, swath_m: 33}
  - {model: hexa, count: 1, launch_site: b, speed_mps: 10.7, endurance_s: 1000, swath_m: 50}
"""


def test_lanes_of_a_wider_swath_are_swept_again_when_no_drone_that_wide_is_left() -> None:
    """The only 50 m drone is lost on its pad between sorties (reliability run, seed 690): its
    lanes, 50 m apart, go to 33 m drones, which sweep their strips again at their own spacing
    instead of flying the wide lanes and leaving stripes unseen."""
    plan = plan_mission(mission.parse(yaml.safe_load(MIXED), "mixed"))
    hexa = 2
    first = plan.of_drone(hexa)[0]
    assert len(plan.of_drone(hexa)) > 1
    now = first.land_s + 1.0
    progress = flown_until(plan, now)
    launched = {i: sum(s.launch_s < now for s in plan.of_drone(i)) for i in range(3)}
    in_air = {s.drone: s.number for s in plan.sorties if s.launch_s < now < s.land_s}
    progress = Progress(now, progress.tracks, in_air, launched)
    new = replan(plan, progress, lost=[hexa])
    assert all(s.drone != hexa or s.number <= 1 for s in new.sorties)
    assert new.metrics.coverage_fraction >= 0.995


SHORT_WIDE = """
name: two short-lived wide drones
area: {type: Polygon, coordinates: [[[9.000, 46.000], [9.016, 46.000], [9.016, 46.010],
       [9.000, 46.010], [9.000, 46.000]]]}
launch_sites:
  - {name: a, lon: 9.002, lat: 46.002, pads: 3}
fleet:
  - {model: quad, count: 3, launch_site: a, speed_mps: 10, endurance_s: 2400, swath_m: 33}
  - {model: hexa, count: 2, launch_site: a, speed_mps: 12, endurance_s: 700, swath_m: 50}
"""


def test_narrower_drones_share_a_lost_wide_drones_lanes_where_that_lands_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One of two wide drones on short packs is lost: the other could reach all its lanes,
    but flying them alone takes it sortie after sortie (reliability seed 158 with --zones: a
    time limit ran out). Narrower drones with battery to spare take some, swept again at their
    own spacing, and the mission lands sooner than with the wide drone alone."""
    plan = plan_mission(mission.parse(yaml.safe_load(SHORT_WIDE), "short wide"))
    fleet = plan.mission.fleet
    hexa = int(np.flatnonzero(fleet.swath_m == 50.0)[0])
    progress = Progress.as_planned(plan, 0.3 * plan.metrics.makespan_s)
    new = replan(plan, progress, lost=[hexa])
    assert new.metrics.coverage_fraction >= 0.995
    before = {(s.drone, s.number) for s in plan.sorties}
    gained = [s for s in new.sorties if (s.drone, s.number) not in before]
    assert any(fleet.swath_m[s.drone] < 50.0 for s in gained)
    # the same re-plan with the wide drone given all it can reach
    module = sys.modules[replan.__module__]
    assign = module._assign
    monkeypatch.setattr(module, "_assign", lambda *a, **k: assign(*a, **{**k, "wide_first": True}))
    alone = replan(plan, progress, lost=[hexa])
    assert alone.metrics.coverage_fraction >= 0.995
    assert new.metrics.makespan_s < alone.metrics.makespan_s - 30.0


# test_run's four drones round a cliff, with three times the battery their sorties need.
ROOMY = SMALL.replace("endurance_s: 900", "endurance_s: 2400")


@pytest.fixture(scope="module")
def roomy() -> Plan:
    return plan_mission(mission.parse(yaml.safe_load(ROOMY), "roomy"))


def _lose_one_mid_sweep(plan: Plan, reroutable: frozenset[int] | None = None) -> Plan:
    first = plan.of_drone(0)[0]
    now = first.launch_s + 0.5 * first.duration_s
    tracks = Progress.as_planned(plan, now).tracks
    return replan(plan, Progress(now, tracks, reroutable=reroutable), lost=[0])


def test_drones_in_the_air_with_battery_to_spare_sweep_a_lost_drones_rest(roomy: Plan) -> None:
    """The lost drone's rest is swept by the others on the sorties they are flying, before
    they go home: no fresh sortie, the same path as far as their own sweep went, round the
    cliff, within the battery, and the mission ends sooner than with fresh sorties."""
    m = roomy.mission
    assert {s.number for s in roomy.sorties} == {1}
    assert max(s.energy for s in roomy.sorties) < 0.4  # battery to spare
    new = _lose_one_mid_sweep(roomy)
    assert new.metrics.coverage_fraction >= 0.995
    assert {s.number for s in new.sorties} == {1} and 0 not in {s.drone for s in new.sorties}
    cliff = m.keep_out[0].geometry
    budget = 1.0 - m.safety.battery_reserve
    longer = 0
    for s in new.sorties:
        old = roomy.of_drone(s.drone)[0]
        assert s.energy <= budget
        assert not shapely.intersects(shapely.LineString(s.path[:, :2]), cliff)
        if s is old:
            continue
        longer += 1
        j = int(np.flatnonzero(old.legs == Leg.SWEEP)[-1]) + 1
        assert np.array_equal(s.path[: j + 1], old.path[: j + 1]) and s.launch_s == old.launch_s
        assert s.land_s > old.land_s and (s.legs[j:] == Leg.SWEEP).any()
    assert longer
    # told that no drone in the air can be re-routed, the re-plan flies fresh sorties instead
    fresh = _lose_one_mid_sweep(roomy, reroutable=frozenset())
    assert fresh.metrics.coverage_fraction >= 0.995
    assert max(s.number for s in fresh.sorties) == 2
    assert all(s is roomy.of_drone(s.drone)[0] for s in fresh.sorties if s.number == 1)
    assert new.metrics.makespan_s < fresh.metrics.makespan_s


def test_a_longer_sortie_that_would_not_fit_the_battery_is_not_made(roomy: Plan) -> None:
    from skysweep.plan.paths import PathFinder
    from skysweep.plan.sorties import extend_sortie

    m = roomy.mission
    s = roomy.of_drone(1)[0]
    finder = PathFinder.of(m)
    pad = m.pad_xy_m[1]
    lane = np.array([[-400.0, 300.0], [400.0, 300.0]])
    near = extend_sortie(m, s, [lane], finder, pad)
    assert near is not None and near.energy > s.energy and near.duration_s > s.duration_s
    # back and forth over the area until no battery could fly it
    far = [lane if k % 2 == 0 else lane[::-1] for k in range(40)]
    assert extend_sortie(m, s, far, finder, pad) is None


def test_the_rest_of_a_route_that_crosses_itself_begins_at_the_first_pass() -> None:
    """A route joined from pieces of work crosses its own later lanes: a drone at a crossing
    is on the earlier pass, and what lies between is still to sweep (taking the later pass
    would count it as swept)."""
    from skysweep.plan.replan import _rests_of

    def _rest_of(route: np.ndarray, at: np.ndarray) -> np.ndarray:
        return _rests_of([route], at[None])[0]

    route = np.array([[0.0, 0.0], [100.0, 0.0], [100.0, 50.0], [50.0, 50.0], [50.0, -50.0]])
    # where the drone got to on its first pass, with the rounding of a foot on its leg
    rest = _rest_of(route, np.array([50.0, 1e-9]))
    assert np.allclose(rest[0], [50.0, 0.0]) and len(rest) == 5
    # off the crossing, the nearest pass is the one
    later = _rest_of(route, np.array([50.0, -20.0]))
    assert np.allclose(later, [[50.0, -20.0], [50.0, -50.0]])


def _on_its_sweep(
    plan: Plan, done: float, half_m: float, behind: bool = False
) -> tuple[Sortie, float, Progress, np.ndarray, shapely.Polygon]:
    """Drone 1's first sortie, ``done`` of the way through it as planned: the sortie, the time,
    the progress, where the drone is on its sweep, and a square zone ``2 half_m`` wide over
    the middle of the sweep still ahead of it (or already ``behind`` it)."""
    s = plan.of_drone(1)[0]
    now = s.launch_s + done * s.duration_s
    progress = Progress.as_planned(plan, now)
    at = progress.tracks[1][-1]
    line = shapely.LineString(s.sweep_xy)
    here = line.project(shapely.Point(at))
    part = shapely.ops.substring(line, *((0.0, here) if behind else (here, line.length)))
    mid = part.interpolate(0.5, normalized=True)
    zone = shapely.box(mid.x - half_m, mid.y - half_m, mid.x + half_m, mid.y + half_m)
    return s, now, progress, at, zone


def test_a_sortie_in_the_air_is_flown_round_a_new_zone_on_its_way(roomy: Plan) -> None:
    """A zone laid over the rest of a drone's sweep while it flies: the drone keeps its sortie
    (same number and launch, the same path as far as it got), sweeps its rest outside the
    zone by flyable ways round it, and is home within its battery; no fresh sortie, nothing
    handed on. Told the drone cannot be re-routed, its rest is handed on instead."""
    m = roomy.mission
    s, now, progress, at, zone = _on_its_sweep(roomy, 0.5, 80.0)
    line = shapely.LineString(s.sweep_xy)
    ahead = shapely.ops.substring(line, line.project(shapely.Point(at)), line.length)
    assert shapely.distance(shapely.Point(at), zone) > 100
    new = replan(roomy, progress, new_keep_out=[zone])
    mine = new.of_drone(1)
    assert [x.number for x in mine] == [1] and mine[0] is not s
    around = mine[0]
    assert around.launch_s == s.launch_s and around.energy <= 1.0 - m.safety.battery_reserve
    j = int(np.flatnonzero(np.any(around.path[: len(s.path)] != s.path[: len(around.path)], 1))[0])
    assert np.hypot(*(around.path[j, :2] - at)) < 1.0  # it leaves the old path where it is
    assert not shapely.intersects(shapely.LineString(around.path[j:, :2]), zone)
    swept = shapely.LineString(around.sweep_xy).buffer(1.0)
    outside = shapely.difference(ahead, zone.buffer(m.safety.geofence_margin_m + 1.0))
    assert shapely.intersection(outside, swept).length >= 0.99 * outside.length
    assert {x.number for x in new.sorties} == {1}
    assert new.metrics.coverage_fraction >= 0.995
    held = replan(
        roomy, Progress(now, progress.tracks, reroutable=frozenset()), new_keep_out=[zone]
    )
    assert all(x.number != 1 for x in held.of_drone(1))
    assert held.metrics.coverage_fraction >= 0.995


def test_a_zone_over_the_way_a_drone_has_flown_leaves_its_sortie_as_it_is(roomy: Plan) -> None:
    """Only what a drone in the air has still to fly is judged against a new zone: with the
    zone over the sweep behind it, its sortie stays in the plan as it is, re-routable or not.
    (A drone flown round a zone at one re-plan crosses it on the way it has flown at the next;
    one on its way home lost its sortie then, and the runtime its route: seed 820 --zones.)"""
    s, now, progress, at, zone = _on_its_sweep(roomy, 0.6, 40.0, behind=True)
    assert shapely.distance(shapely.Point(at), zone) > 100
    for reroutable in (None, frozenset()):
        new = replan(
            roomy, Progress(now, progress.tracks, reroutable=reroutable), new_keep_out=[zone]
        )
        assert new.of_drone(1)[0] is s
    # over what is still ahead of it and not re-routable, its sortie is dropped (handed on)
    later = _on_its_sweep(roomy, 0.6, 40.0)[-1]
    held = replan(
        roomy, Progress(now, progress.tracks, reroutable=frozenset()), new_keep_out=[later]
    )
    assert all(x.number != 1 for x in held.of_drone(1))


def test_a_sortie_flown_round_a_zone_is_kept_as_it_is_at_the_next_re_plan(roomy: Plan) -> None:
    """A sortie flown round a new zone runs along the zone's grown edge. At the next re-plan
    (the runtime gives every re-plan the zones added so far) it touches the zone but does not
    cross it: it is kept as it is, not dropped and its drone brought home (reliability seed
    653 --zones)."""
    _, now, progress, _, zone = _on_its_sweep(roomy, 0.5, 80.0)
    first = replan(roomy, progress, new_keep_out=[zone])
    (around,) = first.of_drone(1)
    grown = zone.buffer(roomy.mission.safety.geofence_margin_m, join_style="mitre")
    assert shapely.intersects(shapely.LineString(around.path[:, :2]), grown)  # it touches
    later = now + 30.0
    for reroutable in (None, frozenset()):
        again = replan(
            first,
            Progress(later, Progress.as_planned(first, later).tracks, reroutable=reroutable),
            new_keep_out=[zone],
        )
        assert again.of_drone(1)[0] is around


def test_a_late_drones_next_sortie_waits_for_the_one_flown_round_a_new_zone(forty: Plan) -> None:
    """A flight running late: the runtime says a drone is still on its first sortie when its
    second was due. The first, flown round a new zone, lands later; the second, not launched
    (whatever the plan's clock says), is put back to launch after it and a pack swap."""
    first, second = forty.of_drone(0)[:2]
    now = second.launch_s + 30.0
    line = shapely.LineString(first.sweep_xy)
    at = line.interpolate(0.9, normalized=True)
    # a wall across the lanes it has still to sweep: it sweeps one side, then the other
    c = line.interpolate(0.94, normalized=True)
    zone = shapely.box(c.x - 200, c.y - 15, c.x + 200, c.y + 15)
    assert shapely.distance(at, zone) > 100
    progress = Progress(now, {0: np.array([[at.x, at.y]])}, {0: 1}, {0: 1}, frozenset({0}))
    new = replan(forty, progress, new_keep_out=[zone])
    around, after = new.of_drone(0)[:2]
    assert (around.number, after.number) == (1, 2) and around is not first
    assert around.land_s > first.land_s + 30.0
    assert after.launch_s >= around.land_s + float(forty.mission.fleet.swap_s[0]) - 1e-6


def test_a_sortie_not_launched_yet_is_planned_round_a_new_zone(roomy: Plan) -> None:
    """Before launch, a sortie whose sweep a new zone cuts is planned round it from its pad:
    same number and launch, none of it in the zone, its sweep outside the zone all kept."""
    s = roomy.of_drone(2)[0]
    c = shapely.LineString(s.sweep_xy).interpolate(0.5, normalized=True)
    zone = shapely.box(c.x - 100, c.y - 100, c.x + 100, c.y + 100)
    launched = {i: 0 for i in range(len(roomy.mission.fleet))}
    new = replan(roomy, Progress(0.0, {}, {}, launched), new_keep_out=[zone])
    (around,) = new.of_drone(2)
    assert (around.number, around.launch_s) == (1, s.launch_s)
    assert not shapely.intersects(shapely.LineString(around.path[:, :2]), zone)
    margin = roomy.mission.safety.geofence_margin_m + 1.0
    outside = shapely.difference(shapely.LineString(s.sweep_xy), zone.buffer(margin))
    swept = shapely.LineString(around.sweep_xy).buffer(1.0)
    assert shapely.intersection(outside, swept).length >= 0.99 * outside.length


def test_ground_a_new_zone_closes_off_from_every_pad_is_left_out(roomy: Plan) -> None:
    """A zone laid as a wall round a corner of the area closes it off: no drone can reach it
    without crossing the zone. The re-plan leaves that ground out and routes everybody else's
    work round the wall, in the air and on the ground. (One such pocket failed the whole
    re-plan, and with it the routes of every drone round the new zone: reliability seed 267
    --zones.)"""
    m = roomy.mission
    _, _, x1, y1 = m.searchable.bounds
    _, _, fx, fy = m.keep_in.bounds
    # an L-shaped wall 40 m thick round the area's north-east corner, out to the keep-in's edge
    wall = shapely.union(
        shapely.box(x1 - 300, y1 - 340, fx + 50, y1 - 300),
        shapely.box(x1 - 340, y1 - 340, x1 - 300, fy + 50),
    )
    pocket = shapely.intersection(shapely.box(x1 - 300, y1 - 300, fx, fy), m.searchable)
    assert pocket.area > 50_000
    now = 0.25 * roomy.metrics.makespan_s
    new = replan(roomy, Progress.as_planned(roomy, now), new_keep_out=[wall])
    assert new.sorties
    progress = Progress.as_planned(roomy, now)
    inner = pocket.buffer(-m.safety.geofence_margin_m - 1.0)
    for s in new.sorties:
        xy = s.path[:, :2]
        if s.launch_s >= now:
            assert not shapely.intersects(shapely.LineString(xy), wall), s.drone
            assert not shapely.intersects(shapely.LineString(xy), inner), s.drone
        else:
            # in the air: what it has still to fly keeps out of the wall and the pocket
            at = progress.tracks[s.drone][-1]
            k = int(np.argmin(np.hypot(*(xy - at).T)))
            left = shapely.LineString(np.vstack([at, xy[k + 1 :]]))
            assert not shapely.intersects(left, wall.buffer(-1.0)), s.drone
    # the rest of the area is still covered
    assert new.metrics.coverage_fraction >= 0.9


def test_sorties_costed_together_cost_what_the_planner_cut_them_to(big: Plan) -> None:
    """The re-plan costs hundreds of longer sorties at once (joined paths, what lies across
    two of them left out): on the planner's own sorties of a mixed fleet in wind, that gives
    the battery use and duration the sortie cutter gave each, sortie by sortie."""
    from skysweep.plan.sorties import _flight_costs

    m = big.mission
    sorties = list(big.sorties)
    drones = np.array([s.drone for s in sorties])
    assert len(set(m.fleet.speed_mps[drones])) > 1 and np.hypot(*m.wind_vector_mps) > 0
    energy_cs, duration_s = _flight_costs(
        m, drones, [s.path for s in sorties], [s.legs for s in sorties]
    )
    np.testing.assert_allclose(energy_cs, [s.energy for s in sorties] * m.fleet.endurance_s[drones])
    np.testing.assert_allclose(duration_s, [s.duration_s for s in sorties])


def test_sortie_ends_found_together_match_each_sortie_alone(big: Plan) -> None:
    """When each sortie reaches its last sweep point and the battery it has used by then:
    for all sorties at once, as worked out for one (its way home taken off at full head-wind,
    its descent too); a sortie that sweeps nothing, its landing and all its battery."""
    from dataclasses import replace

    from skysweep.energy import power_factor
    from skysweep.plan.sorties import sweep_ends

    m = big.mission
    fleet = m.fleet
    wind = float(np.hypot(*m.wind_vector_mps))
    sorties = list(big.sorties[:300])
    idle = replace(
        sorties[0], legs=np.where(sorties[0].legs == Leg.SWEEP, Leg.TRANSIT, sorties[0].legs)
    )
    t, used = sweep_ends(m, [*sorties, idle])
    for k, s in enumerate(sorties):
        v = float(fleet.speed_mps[s.drone])
        j = int(np.flatnonzero(s.legs == Leg.SWEEP)[-1]) + 1
        home_m = float(np.hypot(*np.diff(s.path[j:-1, :2], axis=0).T).sum())
        down_s = m.altitude_m / float(fleet.climb_mps[s.drone])
        assert t[k] == pytest.approx(s.land_s - home_m / v - down_s)
        want = s.energy * float(fleet.endurance_s[s.drone])
        want -= home_m * float(power_factor(v + wind, v)) / v + down_s * float(
            power_factor(0.0, 1.0)
        )
        assert used[k] == pytest.approx(want)
    assert t[-1] == idle.land_s
    assert used[-1] == pytest.approx(idle.energy * float(fleet.endurance_s[idle.drone]))
    assert sweep_ends(m, [])[0].shape == (0,)


def test_sorties_extended_together_are_those_extended_one_by_one(roomy: Plan) -> None:
    """Extending many sorties in one call (hops found together, costs together) gives each the
    sortie extending it alone gives, a None where the battery would not last among them."""
    from skysweep.plan.paths import PathFinder
    from skysweep.plan.sorties import extend_sortie, extend_sorties

    m = roomy.mission
    finder = PathFinder.of(m)
    lane = np.array([[-400.0, 300.0], [400.0, 300.0]])
    far = [lane if k % 2 == 0 else lane[::-1] for k in range(40)]
    jobs = [(s, [lane] if k % 3 else far) for k, s in enumerate(roomy.sorties[:12])]
    pads = m.pad_xy_m[[s.drone for s, _ in jobs]]
    together = extend_sorties(m, jobs, finder, pads)
    alone = [extend_sortie(m, s, r, finder, pad) for (s, r), pad in zip(jobs, pads, strict=True)]
    assert any(x is None for x in together) and any(x is not None for x in together)
    for x, y in zip(together, alone, strict=True):
        assert (x is None) == (y is None)
        if x is not None and y is not None:
            assert np.array_equal(x.path, y.path) and np.array_equal(x.legs, y.legs)
            assert x.energy == pytest.approx(y.energy) and x.duration_s == pytest.approx(
                y.duration_s
            )


def test_which_drones_reach_a_chunk_is_its_farthest_point_from_their_pad() -> None:
    """The re-plan keeps a drone off a chunk whose farthest point lies beyond its reach; the
    bounds it takes first (the chunk's centre, and that plus its radius) leave the answer the
    same as measuring every point: random chunks, pads shared, reaches either side."""
    from skysweep.plan.replan import _within

    rng = np.random.default_rng(0)
    for _ in range(40):
        chunks = [
            rng.uniform(0, 2000, (int(rng.integers(2, 9)), 2)) + rng.uniform(0, 20_000, 2)
            for _ in range(int(rng.integers(1, 60)))
        ]
        pads = rng.uniform(0, 20_000, (int(rng.integers(1, 40)), 2))
        pads = np.vstack([pads, pads[:5]])  # drones share pads
        spots, spot_of = np.unique(pads, axis=0, return_inverse=True)
        reach = rng.uniform(0, 25_000, len(pads))
        got = _within(spots, spot_of.ravel(), chunks, reach)
        want = [
            [np.hypot(*(c - p).T).max() <= r for c in chunks]
            for p, r in zip(pads, reach, strict=True)
        ]
        assert np.array_equal(got, want)


def test_the_rests_of_many_routes_cut_together_are_each_cut_alone() -> None:
    """Every drone in the air has its sweep cut where its track ends, all at once: each rest
    is the one a walk along that route alone finds (its first segment passing within a metre
    of the nearest, from the foot of the point on it)."""
    from skysweep.plan.replan import REST_TOLERANCE_M, _rests_of

    def alone(route: np.ndarray, at: np.ndarray) -> np.ndarray:
        feet, offs = [], []
        for a, b in itertools.pairwise(route):
            ab = b - a
            t = min(max(float(np.dot(at - a, ab)) / max(float(np.dot(ab, ab)), 1e-12), 0.0), 1.0)
            feet.append(a + t * ab)
            offs.append(float(np.hypot(*(feet[-1] - at))))
        k = next(j for j, o in enumerate(offs) if o <= min(offs) + REST_TOLERANCE_M)
        return np.vstack([feet[k], route[k + 1 :]])

    rng = np.random.default_rng(4)
    routes = [rng.uniform(0, 1000, (int(rng.integers(2, 12)), 2)) for _ in range(60)]
    routes[3] = np.array([[0.0, 0.0], [100.0, 0.0], [100.0, 50.0], [50.0, 50.0], [50.0, -50.0]])
    ats = np.array([r[int(rng.integers(len(r)))] + rng.normal(0, 20, 2) for r in routes])
    ats[3] = [50.0, 1e-9]  # at the crossing: the first pass
    for route, at, rest in zip(routes, ats, _rests_of(routes, ats), strict=True):
        np.testing.assert_allclose(rest, alone(route, at), atol=1e-9)
    assert _rests_of([], np.empty((0, 2))) == []
