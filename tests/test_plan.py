"""The planner's promises on the bundled demo and on random missions, and the plan exports."""

from __future__ import annotations

import itertools
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from skysweep import mission
from skysweep.errors import InfeasibleError, MissionError
from skysweep.export import KML_NS, plan_to_geojson, plan_to_kml, plan_to_qgc, write_qgc
from skysweep.geo import polygonal
from skysweep.plan import Plan, plan_mission
from skysweep.plan.allocate import sample_area
from skysweep.plan.fleet_bound import fleet_bound_s
from skysweep.plan.metrics import launch_slots
from skysweep.plan.model import Leg
from skysweep.plan.paths import PathFinder

DEMO = Path(__file__).resolve().parents[1] / "src" / "skysweep" / "data" / "demo.yaml"

#: Centre of the generated missions, degrees.
LON0, LAT0 = 8.05, 46.52
EARTH_R_M = 6_371_000.0
#: Landing spots of one site are this far apart with the default min_separation_m (15 m).
PAD_SPACING_M = 30.0


@pytest.fixture(scope="module")
def demo_plan() -> Plan:
    return plan_mission(mission.load(DEMO))


# --------------------------------------------------------------------------------------------
# Checks shared by the demo and the generated missions
# --------------------------------------------------------------------------------------------


def _assert_clear_of_keep_out(plan: Plan) -> None:
    m = plan.mission
    for s in plan.sorties:
        line = shapely.LineString(s.path[:, :2])
        for zone in m.keep_out:
            inside = line.intersection(zone.geometry).length
            assert inside < 1e-6, (
                f"{m.fleet.ids[s.drone]} sortie {s.number} flies {inside:.3f} m in {zone.name!r}"
            )
            core = zone.geometry.buffer(-0.01)
            assert not line.intersects(core), (
                f"{m.fleet.ids[s.drone]} sortie {s.number} enters {zone.name!r}"
            )


def _assert_inside_keep_in(plan: Plan) -> None:
    m = plan.mission
    for s in plan.sorties:
        outside = shapely.LineString(s.path[:, :2]).difference(m.keep_in).length
        assert outside < 1e-6, f"{m.fleet.ids[s.drone]} sortie {s.number} leaves keep_in"


# --------------------------------------------------------------------------------------------
# The demo
# --------------------------------------------------------------------------------------------


def _assert_pad_to_pad(plan: Plan) -> None:
    """Every sortie starts and ends on the ground, on its drone's own spot at its launch site."""
    m = plan.mission
    pads = m.pad_xy_m
    per_site = np.bincount(m.fleet.site, minlength=len(m.sites))
    for s in plan.sorties:
        site_index = int(m.fleet.site[s.drone])
        site = np.array(m.sites[site_index].xy_m)
        # the spots of a site form a square grid around it, pad_spacing_m apart
        reach = m.pad_spacing_m * math.ceil(math.sqrt(per_site[site_index]))
        assert np.hypot(*(pads[s.drone] - site)) <= reach
        for end in (s.path[0], s.path[-1]):
            assert end[2] == 0.0
            np.testing.assert_allclose(end[:2], pads[s.drone], atol=1e-6)
        assert np.all(s.path[1:-1, 2] > 0)


def test_demo_sorties_start_and_end_on_the_pad(demo_plan: Plan) -> None:
    assert demo_plan.sorties
    _assert_pad_to_pad(demo_plan)


def test_demo_routes_avoid_keep_out_zones(demo_plan: Plan) -> None:
    assert demo_plan.mission.keep_out
    _assert_clear_of_keep_out(demo_plan)


def test_demo_routes_stay_in_keep_in(demo_plan: Plan) -> None:
    _assert_inside_keep_in(demo_plan)


def test_demo_sorties_fit_the_battery(demo_plan: Plan) -> None:
    usable = 1.0 - demo_plan.mission.safety.battery_reserve
    for s in demo_plan.sorties:
        assert 0.0 < s.energy <= usable + 1e-9


def test_demo_launches_are_staggered(demo_plan: Plan) -> None:
    m = demo_plan.mission
    first = {s.drone: s.launch_s for s in demo_plan.sorties if s.number == 1}
    assert first
    for i, site in enumerate(m.sites):
        times = np.array([t for d, t in first.items() if m.fleet.site[d] == i])
        if not len(times):
            continue
        slot = times / site.launch_interval_s if site.launch_interval_s > 0 else times * 0
        np.testing.assert_allclose(slot, np.round(slot), atol=1e-9)
        _, per_slot = np.unique(np.round(slot), return_counts=True)
        assert per_slot.max() <= site.pads
        assert np.sum(times == times.min()) <= site.pads
        # slots are filled in order: no slot is skipped before the last one used
        used = np.unique(np.round(slot)).astype(int)
        np.testing.assert_array_equal(used, np.arange(len(used)))


def test_demo_later_sorties_wait_for_the_battery_swap(demo_plan: Plan) -> None:
    m = demo_plan.mission
    for drone in range(len(m.fleet)):
        sorties = demo_plan.of_drone(drone)
        assert [s.number for s in sorties] == list(range(1, len(sorties) + 1))
        for a, b in itertools.pairwise(sorties):
            assert b.launch_s >= a.land_s + m.fleet.swap_s[drone] - 1e-9


def test_demo_metrics(demo_plan: Plan) -> None:
    m = demo_plan.mission
    metrics = demo_plan.metrics
    assert metrics.coverage_fraction >= 0.995
    assert metrics.drones == len(m.fleet)
    assert metrics.sorties == len(demo_plan.sorties)
    assert 0.0 < metrics.efficiency <= 1.0
    assert metrics.efficiency == pytest.approx(metrics.lower_bound_s / metrics.makespan_s)
    assert metrics.makespan_s == pytest.approx(max(s.land_s for s in demo_plan.sorties))
    sweep_rate = float(np.sum(m.fleet.speed_mps * m.fleet.swath_m))
    assert metrics.lower_bound_s >= metrics.searchable_area_m2 / sweep_rate
    assert metrics.searchable_area_m2 == pytest.approx(m.searchable.area)


def test_demo_plan_meets_the_efficiency_bar(demo_plan: Plan) -> None:
    # the foundation issue's bar for the bundled demo
    assert demo_plan.metrics.efficiency >= 0.75


def test_demo_drones_sweep_out_and_back_from_the_near_end(demo_plan: Plan) -> None:
    # lanes run out and back, so a sweep ends on the side of its work nearest home and no drone
    # pays the way back from the far end of its cell (the allocation's premise). A sortie that
    # flies on to a second stretch ends at that one's near end, so this holds for most, not all.
    ends = []
    for s in demo_plan.sorties:
        sweep = s.sweep_xy
        if len(sweep) >= 4:
            reach = np.hypot(*(sweep - s.path[0, :2]).T)
            ends.append((reach[-1] - reach.min()) / max(reach.max() - reach.min(), 1.0))
    assert np.median(ends) < 0.1


def test_flyable_distances_go_around_keep_outs() -> None:
    region = shapely.box(0, 0, 1000, 1000).difference(shapely.box(400, 0, 600, 800))
    finder = PathFinder(region)
    src = np.array([100.0, 100.0])
    pts = np.array([[300.0, 500.0], [800.0, 100.0], [900.0, 900.0]])
    d = finder.distances_from(src, pts)
    assert d[0] == pytest.approx(np.hypot(200, 400))  # in sight: straight
    for p, dist in zip(pts, d, strict=True):
        assert dist == pytest.approx(finder.length(src, p), rel=1e-6)
    assert d[1] > 1600.0  # over the top of the wall: 700 m up, 200 m across, 700 m down
    inside_wall = finder.distances_from(src, np.array([[500.0, 400.0]]))
    assert np.isinf(inside_wall[0])


def test_flyable_distances_match_the_straight_or_cornered_path_many_points() -> None:
    """The fast sight test (edges index, best corners first) gives the same distances as
    building each path: many points behind two walls."""
    region = (
        shapely.box(0, 0, 2000, 2000)
        .difference(shapely.box(400, 0, 600, 1500))
        .difference(shapely.box(1200, 500, 1400, 2000))
    )
    finder = PathFinder(region)
    rng = np.random.default_rng(3)
    pts = rng.uniform(0, 2000, (300, 2))
    pts = pts[shapely.contains_xy(finder.flyable, pts[:, 0], pts[:, 1])]
    src = np.array([100.0, 100.0])
    d = finder.distances_from(src, pts)
    want = [finder.length(src, p) for p in pts]
    np.testing.assert_allclose(d, want, rtol=1e-9)


def test_paths_found_together_are_those_found_one_by_one() -> None:
    """Many hops at once (a re-plan's): straight ones found together, the rest round the
    walls, an end outside the region (a pad in the geofence margin) joined to it; each the
    same as asked alone."""
    region = _serpentine()
    finder = PathFinder(region)
    rng = np.random.default_rng(7)
    pts = rng.uniform(0, 2000, (200, 2))
    pts = pts[shapely.contains_xy(finder.flyable, pts[:, 0], pts[:, 1])]
    a, b = pts[:-1].copy(), pts[1:].copy()
    a[0] = [-3.0, 50.0]  # outside the region
    # ends on the fence, as lane ends lie on a keep-out's margin: either side of a house, and
    # along a wall
    fence = np.array(
        [[[680.0, 260.0], [710.0, 265.0]], [[1295.0, 1000.0], [1290.0, 1030.0]],
         [[260.0, 900.0], [1100.0, 1700.0]], [[680.0, 250.0], [1310.0, 1160.0]]]
    )  # fmt: skip
    assert shapely.intersects_xy(region.boundary, *fence.reshape(-1, 2).T).all()
    a, b = np.vstack([a, fence[:, 0]]), np.vstack([b, fence[:, 1]])
    got = finder.paths(a, b)
    straight = sum(len(p) == 2 for p in got)
    assert 0 < straight < len(got)
    assert all(len(p) > 2 for p in got[-len(fence) :])
    for p, x, y in zip(got, a, b, strict=True):
        assert np.array_equal(p, finder.path(x, y))
    assert finder.paths(np.empty((0, 2)), np.empty((0, 2))) == []
    # no way from one part of a region to another: as one by one, an error
    apart = PathFinder(
        shapely.union_all([shapely.box(0, 0, 100, 100) - shapely.box(40, 40, 60, 60),
                           shapely.box(200, 0, 300, 100)])
    )  # fmt: skip
    with pytest.raises(InfeasibleError, match="no flyable path"):
        apart.paths(np.array([[10.0, 50.0], [10.0, 50.0]]), np.array([[90.0, 50.0], [250.0, 50.0]]))


def _serpentine() -> shapely.Geometry:
    """A 2 km square keep-in cut by six walls into a serpentine, rows of houses in its lanes:
    many corners, and far ends reached only down the serpentine."""
    walls = [
        shapely.box(300 * k + 200, 0 if k % 2 else 200, 300 * k + 260, 1800 if k % 2 else 2000)
        for k in range(6)
    ]
    houses = [
        shapely.box(x, y, x + 30, y + 30) for x in (80, 680, 1280) for y in range(100, 1900, 150)
    ]
    return shapely.box(0, 0, 2000, 2000).difference(shapely.union_all(walls + houses))


@pytest.mark.parametrize("first_corners", [8, 1, 0])
def test_flyable_distances_among_many_corners_match_the_paths(
    first_corners: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Among many corners (a serpentine keep-in around rows of buildings) a point's distance
    comes from the first corner it sees among its few best, or, far down the serpentine, from
    the rest of its corners sorted: the same as building each path, however many are picked
    before the sort."""
    import skysweep.plan.paths as paths

    monkeypatch.setattr(paths, "_FIRST_CORNERS", first_corners)
    region = _serpentine()
    finder = PathFinder(region)
    assert len(finder.nodes) > 64
    rng = np.random.default_rng(11)
    pts = rng.uniform(0, 2000, (400, 2))
    pts = pts[shapely.contains_xy(finder.flyable, pts[:, 0], pts[:, 1])]
    src = np.array([20.0, 20.0])
    d = finder.distances_from(src, pts)
    want = [finder.length(src, p) for p in pts]
    np.testing.assert_allclose(d, want, rtol=1e-9)
    assert np.max(d) > 5000.0  # the far end is reached down the serpentine, not across it


def test_paths_through_the_nearest_corners_are_the_shortest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A path tries the corners in growing ellipses around its ends and stops once its length
    fits the ellipse: the same lengths as joining the graph at every corner in sight, for
    short hops round a house and long ways down a serpentine; and no path into a wall."""
    import skysweep.plan.paths as paths

    region = _serpentine()
    finder = PathFinder(region)
    rng = np.random.default_rng(5)
    pts = rng.uniform(0, 2000, (400, 2))
    pts = pts[shapely.contains_xy(finder.flyable, pts[:, 0], pts[:, 1])]
    ends = [(pts[k], pts[k + 1]) for k in range(0, len(pts) - 1, 2)]
    # hops across a house: a few metres either side of it
    ends += [
        (np.array([x - 5.0, y + 15.0]), np.array([x + 35.0, y + 12.0]))
        for x, y in [(680, 250), (1280, 1000)]
    ]
    got = [finder.length(a, b) for a, b in ends]
    monkeypatch.setattr(paths, "_ELLIPSE_START", np.inf)
    every = PathFinder(region)
    want = [every.length(a, b) for a, b in ends]
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert max(got) > 5000.0 and min(got) < 80.0
    # two fields with a wall between them: every ellipse is tried, then it gives up
    apart = PathFinder(
        shapely.box(0, 0, 1000, 1000)
        .difference(shapely.box(450, -10, 550, 1010))
        .union(shapely.box(200, 200, 300, 300).exterior.buffer(1.0))
    )
    with pytest.raises(InfeasibleError):
        apart.path(np.array([100.0, 100.0]), np.array([900.0, 500.0]))


@pytest.mark.parametrize("theta_deg", [0.0, 30.0, 90.0])
def test_columns_narrower_than_the_sample_spacing_all_get_area(theta_deg: float) -> None:
    """Samples ~86 m apart, columns 70 m wide: every column between the first and the last
    gets a share of the samples it overlaps (once columns between samples got none, and 19 %
    of a 449 km² area went unplanned), and every sample's shares add up to one."""
    from skysweep.plan.allocate import AreaSamples, _columns

    class _M:
        searchable = shapely.box(0.0, 0.0, 20_000.0, 20_000.0)
        site_xy_m = np.array([[10_000.0, 10_000.0]])

    from skysweep.geo import sample_points

    xy, cell = sample_points(_M.searchable, 60_000)
    assert math.sqrt(cell) > 80.0
    samples = AreaSamples(xy, cell, np.zeros((1, len(xy))), np.arange(len(xy))[None, :])
    cols = _columns(_M(), samples, math.radians(theta_deg), 70.0)  # type: ignore[arg-type]
    used = np.unique(cols.column)
    assert np.array_equal(used, np.arange(used.max() + 1))
    np.testing.assert_allclose(np.bincount(cols.sample, weights=cols.share), 1.0)


# --------------------------------------------------------------------------------------------
# Random missions
# --------------------------------------------------------------------------------------------


def _to_lonlat(xy: Any) -> list[list[float]]:
    """Local metres around (LON0, LAT0) to [lon, lat], equirectangular."""
    xy = np.atleast_2d(np.asarray(xy, float))
    lon = LON0 + np.degrees(xy[:, 0] / (EARTH_R_M * math.cos(math.radians(LAT0))))
    lat = LAT0 + np.degrees(xy[:, 1] / EARTH_R_M)
    return [[float(a), float(b)] for a, b in zip(lon, lat, strict=True)]


def _closed(ring: list[list[float]]) -> list[list[float]]:
    return [*ring, ring[0]]


@st.composite
def random_missions(draw: st.DrawFn) -> dict[str, Any]:
    """A mission dict: a star-shaped area, rectangular keep-outs inside it, sites near the
    centre, a mixed fleet."""
    n = draw(st.integers(8, 14))
    step = 2 * math.pi / n
    jitter = draw(st.lists(st.floats(-0.3, 0.3), min_size=n, max_size=n))
    radii = draw(st.lists(st.floats(1500.0, 3000.0), min_size=n, max_size=n))
    angles = [k * step + j * step for k, j in enumerate(jitter)]
    star = [(r * math.cos(a), r * math.sin(a)) for r, a in zip(radii, angles, strict=True)]
    area = shapely.Polygon(star)
    assume(area.is_valid)

    sites_xy = [(draw(st.floats(-300.0, 300.0)), draw(st.floats(-300.0, 300.0)))]
    if draw(st.booleans()):
        d, b = draw(st.floats(150.0, 500.0)), draw(st.floats(0.0, 2 * math.pi))
        sites_xy.append((sites_xy[0][0] + d * math.cos(b), sites_xy[0][1] + d * math.sin(b)))

    launch_sites = [
        {"name": f"site {k}", "lon": ll[0], "lat": ll[1], "pads": draw(st.integers(1, 6))}
        for k, ll in enumerate(_to_lonlat(sites_xy))
    ]
    fleet = [
        {
            "model": f"m{k}",
            "count": draw(st.integers(2, 12)),
            "launch_site": draw(st.sampled_from([s["name"] for s in launch_sites])),
            "speed_mps": draw(st.floats(8.0, 15.0)),
            "swath_m": draw(st.floats(30.0, 80.0)),
            "endurance_s": draw(st.floats(1500.0, 3000.0)),
        }
        for k in range(draw(st.integers(1, 3)))
    ]
    # every drone lands on a spot of its own in a grid around its site; a keep-out zone over a
    # site or one of its spots is a mission error, not a planning case
    clear = []
    for site in launch_sites:
        n = sum(f["count"] for f in fleet if f["launch_site"] == site["name"])
        clear.append(PAD_SPACING_M * math.ceil(math.sqrt(max(n, 1))) + 5.0)

    keep_out = []
    for k in range(draw(st.integers(0, 4))):
        a = draw(st.floats(0.0, 2 * math.pi))
        r = draw(st.floats(0.0, 800.0))
        w, h = draw(st.floats(100.0, 400.0)), draw(st.floats(100.0, 400.0))
        cx, cy = r * math.cos(a), r * math.sin(a)
        rect = shapely.box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        assume(area.contains(rect))
        assume(
            all(rect.distance(shapely.Point(p)) > c for p, c in zip(sites_xy, clear, strict=True))
        )
        keep_out.append(
            {
                "name": f"zone {k}",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [_closed(_to_lonlat(np.asarray(rect.exterior.coords)[:-1]))],
                },
            }
        )

    return {
        "name": "generated",
        "area": {"type": "Polygon", "coordinates": [_closed(_to_lonlat(star))]},
        "keep_out": keep_out,
        "launch_sites": launch_sites,
        "fleet": fleet,
    }


def _check_random_mission(data: dict[str, Any]) -> None:
    try:
        m = mission.parse(data, source="gen")
    except MissionError as exc:
        # the generator keeps keep-outs clear of the landing spots; anything else is a bug
        if not exc.field.endswith(".pads"):
            raise
        assume(False)
    try:
        plan = plan_mission(m)
    except InfeasibleError as exc:
        assert str(exc), "InfeasibleError without a message"
        assume(False)
        raise  # unreachable: assume(False) discards the example
    assert plan.metrics.coverage_fraction >= 0.995
    _assert_clear_of_keep_out(plan)
    _assert_pad_to_pad(plan)
    _assert_inside_keep_in(plan)
    usable = 1.0 - m.safety.battery_reserve
    assert all(s.energy <= usable + 1e-9 for s in plan.sorties)
    # no plan beats the fleet bound, which is at least the mission's (4,000 of its samples:
    # a little slack for the sampling)
    fleet = fleet_bound_s(m, sample_area(m, PathFinder.of(m)), launch_slots(m))
    assert fleet <= plan.metrics.makespan_s
    assert fleet >= 0.99 * plan.metrics.lower_bound_s


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=random_missions())
def test_random_missions_are_covered_and_avoid_keep_out(data: dict[str, Any]) -> None:
    _check_random_mission(data)


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=random_missions())
def test_random_missions_are_covered_and_avoid_keep_out_long(data: dict[str, Any]) -> None:
    _check_random_mission(data)


# --------------------------------------------------------------------------------------------
# Exports
# --------------------------------------------------------------------------------------------


def test_geojson_has_a_feature_per_sortie(demo_plan: Plan) -> None:
    gj = plan_to_geojson(demo_plan)
    json.dumps(gj, allow_nan=False)  # serialisable as it stands
    assert gj["type"] == "FeatureCollection"
    assert "properties" not in gj
    assert len(gj["features"]) == len(demo_plan.sorties)
    ids = demo_plan.mission.fleet.ids
    for feat, s in zip(gj["features"], demo_plan.sorties, strict=True):
        assert feat["type"] == "Feature"
        assert set(feat["properties"]) == {"drone", "sortie", "launch_s", "speed_mps", "swath_m"}
        assert feat["properties"]["drone"] == ids[s.drone]
        assert feat["properties"]["sortie"] == s.number >= 1
        assert isinstance(feat["properties"]["launch_s"], float)
        assert feat["geometry"]["type"] == "LineString"
        coords = feat["geometry"]["coordinates"]
        assert len(coords) == len(s.path)
        for lon, lat, alt in coords:
            assert 8.0 < lon < 8.1 and 46.49 < lat < 46.56
            assert 0.0 <= alt <= demo_plan.mission.altitude_m
        assert coords[0][2] == coords[-1][2] == 0.0
    meta = gj["skysweep"]
    assert set(meta) == {
        "name",
        "drones",
        "sorties",
        "coverage_fraction",
        "makespan_s",
        "lower_bound_s",
        "efficiency",
    }
    assert meta["name"] == demo_plan.mission.name
    assert meta["sorties"] == len(demo_plan.sorties)


def test_geojson_round_trips_to_the_local_frame(demo_plan: Plan) -> None:
    s = demo_plan.sorties[0]
    coords = np.array(plan_to_geojson(demo_plan)["features"][0]["geometry"]["coordinates"])
    x, y = demo_plan.mission.frame.to_local(coords[:, 0], coords[:, 1])
    np.testing.assert_allclose(np.column_stack([x, y]), s.path[:, :2], atol=0.05)


def test_qgc_plans(demo_plan: Plan, tmp_path: Path) -> None:
    plans = plan_to_qgc(demo_plan)
    fleet = demo_plan.mission.fleet
    flying = {s.drone for s in demo_plan.sorties}
    assert len(plans) == len(demo_plan.sorties)
    for d in flying:
        n = len(demo_plan.of_drone(d))
        names = (
            [f"{fleet.ids[d]}.plan"]
            if n == 1
            else [f"{fleet.ids[d]}-s{k}.plan" for k in range(1, n + 1)]
        )
        assert all(name in plans for name in names)

    for d in flying:
        name = (
            f"{fleet.ids[d]}.plan" if len(demo_plan.of_drone(d)) == 1 else f"{fleet.ids[d]}-s1.plan"
        )
        lon, lat = demo_plan.mission.frame.to_lonlat(*demo_plan.mission.pad_xy_m[d])
        home = plans[name]["mission"]["plannedHomePosition"]
        assert home == pytest.approx([float(lat), float(lon), 0.0], abs=1e-7)

    paths = write_qgc(demo_plan, tmp_path / "qgc")
    assert sorted(p.name for p in paths) == sorted(plans)
    for p in paths:
        doc = json.loads(p.read_text(encoding="utf-8"))
        assert doc["fileType"] == "Plan" and doc["version"] == 1
        assert doc["groundStation"] == "skysweep"
        fence = doc["geoFence"]
        assert fence["version"] == 2
        assert [poly["inclusion"] for poly in fence["polygons"]].count(False) == len(
            demo_plan.mission.keep_out
        )
        for poly in fence["polygons"]:
            for lat, lon in poly["polygon"]:
                assert 46.4 < lat < 46.6 and 7.9 < lon < 8.2
        assert doc["rallyPoints"] == {"points": [], "version": 2}
        mis = doc["mission"]
        assert mis["version"] == 2 and mis["firmwareType"] == 12 and mis["vehicleType"] == 2
        items = mis["items"]
        assert [it["doJumpId"] for it in items] == list(range(1, len(items) + 1))
        assert items[0]["command"] == 22 and items[-1]["command"] == 20
        assert len(items) > 3
        for it in items[1:-1]:
            assert it["command"] == 16 and it["frame"] == 3 and it["type"] == "SimpleItem"
            lat, lon, alt = it["params"][4:]
            assert 46.49 < lat < 46.56 and 8.0 < lon < 8.1
            assert alt == pytest.approx(demo_plan.mission.altitude_m)
        home_lat, home_lon, _ = mis["plannedHomePosition"]
        assert items[0]["params"][4:6] == [home_lat, home_lon]


def test_kml_parses(demo_plan: Plan) -> None:
    text = plan_to_kml(demo_plan)
    root = ET.fromstring(text.encode("utf-8"))
    ns = {"k": KML_NS}
    assert root.tag == f"{{{KML_NS}}}kml"
    lines = root.findall(".//k:Placemark/k:LineString", ns)
    assert len(lines) == len(demo_plan.sorties)
    names = [p.findtext("k:name", namespaces=ns) for p in root.findall(".//k:Placemark", ns)]
    s = demo_plan.sorties[0]
    assert f"{demo_plan.mission.fleet.ids[s.drone]} sortie {s.number}" in names
    for zone in demo_plan.mission.keep_out:
        assert zone.name in names
    assert len(root.findall(".//k:Polygon", ns)) == len(demo_plan.mission.keep_out)
    first = lines[0].findtext("k:coordinates", namespaces=ns)
    assert first is not None
    lon, lat, alt = (float(v) for v in first.split()[0].split(","))
    assert 8.0 < lon < 8.1 and 46.49 < lat < 46.56 and alt == 0.0


SQUARE = """
name: sidelap square
area: {type: Polygon, coordinates: [[[8.000, 46.500], [8.013, 46.500], [8.013, 46.509],
       [8.000, 46.509], [8.000, 46.500]]]}
launch_sites:
  - {name: base, lon: 7.999, lat: 46.499, pads: 3}
fleet:
  - {model: quad, count: 3, launch_site: base, speed_mps: 10, endurance_s: 3000, swath_m: 40}
"""


def _lane_gaps(plan: Plan) -> np.ndarray:
    """Distances, metres, between neighbouring lanes (sweep legs over 200 m) of each sortie
    (less than 60 m: a sortie that sweeps two stretches jumps between them)."""
    gaps = []
    for s in plan.sorties:
        seg = np.diff(s.sweep_xy, axis=0)
        long = np.hypot(seg[:, 0], seg[:, 1]) > 200.0
        if long.sum() < 2:
            continue
        u = seg[long][0] / np.hypot(*seg[long][0])
        normal = np.array([-u[1], u[0]])
        across = np.unique(np.round(s.sweep_xy[:-1][long] @ normal, 3))
        gaps.append(np.diff(np.sort(across)))
    gap = np.concatenate(gaps)
    return gap[gap < 60.0]


@pytest.mark.parametrize("sidelap_m", [0.0, 1.0, 6.0])
def test_lanes_are_spaced_at_the_swath_less_the_sidelap(sidelap_m: float) -> None:
    """Neighbouring footprints overlap by ``search.sidelap_m``, so that a drone a little off
    its lane leaves no stripe unseen; the plan still counts the camera's whole swath."""
    data = yaml.safe_load(SQUARE)
    data["search"] = {"sidelap_m": sidelap_m}
    plan = plan_mission(mission.parse(data))
    gaps = _lane_gaps(plan)
    assert len(gaps) > 10
    assert gaps.max() <= 40.0 - sidelap_m + 1e-6
    assert np.median(gaps) >= 0.95 * (40.0 - sidelap_m)  # not more lanes than needed
    assert plan.metrics.coverage_fraction >= 0.995


def test_lanes_over_a_ground_its_rotation_leaves_invalid_stay_on_it() -> None:
    """The reliability run's seed 755: a site's outer ring, rotated to a lane direction of
    39°, came out an invalid polygon, and cut into bands it gave lanes up to 300 m beyond the
    area; the plan swept half of it (0.49). The rotated ground is made valid first."""
    from skysweep.bench.reliability import random_mission

    m = mission.parse(random_mission(755), source="<reliability seed 755>")
    plan = plan_mission(m)
    assert plan.metrics.coverage_fraction >= 0.995
    x0, y0, x1, y1 = m.searchable.bounds
    for s in plan.sorties:
        sweep = s.path[1:][s.legs == Leg.SWEEP, :2]  # the sweep legs' ends
        assert np.all((sweep >= [x0 - 50, y0 - 50]) & (sweep <= [x1 + 50, y1 + 50]))


def test_lanes_joined_around_keep_outs_keep_their_ends_in_order() -> None:
    """The lawnmower joined around two keep-outs flies every lane end in order, and says where
    each stands in the joined route: no connector leaves the flyable region."""
    from skysweep.plan.lanes import connect_lanes_at, lane_orderings, lane_pieces

    region = (
        shapely.box(0, 0, 2000, 1000)
        .difference(shapely.box(300, 200, 700, 800))
        .difference(shapely.box(1200, -10, 1300, 600))
    )
    finder = PathFinder(region)
    raw, _ = lane_orderings(lane_pieces(region, 60.0, np.pi / 2, region))[0]
    route, at = connect_lanes_at(raw, finder)
    assert len(route) > len(raw)  # detours were needed
    np.testing.assert_array_equal(route[at], raw)
    assert np.all(np.diff(at) > 0)
    assert finder.visible(route[:-1], route[1:]).all()


def test_flyable_distances_in_a_convex_field_are_straight() -> None:
    """In a convex field every point is in sight: distances are straight lines, found without
    sight tests, the same as the general way; a point outside cannot be reached."""
    field = shapely.Polygon([(0, 0), (3000, -200), (3500, 1800), (400, 2500)])
    finder = PathFinder(field)
    assert finder._convex and not len(finder.nodes)
    rng = np.random.default_rng(2)
    pts = np.vstack([rng.uniform(-500, 4000, (300, 2)), [[1500.0, 1000.0]]])
    src = np.array([1000.0, 500.0])
    d = finder.distances_from(src, pts)
    inside = shapely.contains_xy(field, pts[:, 0], pts[:, 1])
    np.testing.assert_allclose(d[inside], np.hypot(*(pts[inside] - src).T))
    assert np.isinf(d[~inside]).all() and (~inside).sum() > 20
    finder._convex = False
    np.testing.assert_array_equal(finder.distances_from(src, pts), d)
    # a field with a bay is not convex: no shortcut
    assert not PathFinder(field.difference(shapely.box(1400, -300, 1600, 1200)))._convex


def test_a_band_the_rectangle_clip_gets_wrong_is_cut_again_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GEOS's clip by rectangle once left one band of 300 invalid, at 4.7 times its area
    (wildfire-150); that band alone is cut again by intersection, not all of them."""
    from skysweep.plan import lanes

    region = shapely.box(0, 0, 1000, 300).difference(shapely.box(400, 120, 600, 180))
    lo = np.array([0.0, 100.0, 200.0])
    clip = shapely.clip_by_rect
    cut_again: list[int] = []
    intersection = shapely.intersection

    def wrong_once(
        geom: shapely.Geometry, x0: float, y0: float, x1: float, y1: float
    ) -> shapely.Geometry:
        if y0 == 100.0:  # a bow tie: invalid, and not the band's area
            return shapely.Polygon([(0, 100), (1000, 200), (1000, 100), (0, 200)])
        return clip(geom, x0, y0, x1, y1)

    def counted(a: object, b: object) -> object:
        cut_again.append(len(np.atleast_1d(a)))
        return intersection(a, b)

    monkeypatch.setattr(lanes.shapely, "clip_by_rect", wrong_once)
    monkeypatch.setattr(lanes.shapely, "intersection", counted)
    bands = lanes._cut_bands(region, -1.0, 1001.0, lo, 100.0)
    assert cut_again == [1]
    for band, y in zip(bands, lo, strict=True):
        want = intersection(region, shapely.box(-1.0, y, 1001.0, y + 100.0))
        assert shapely.is_valid(band) and band.symmetric_difference(want).area < 1e-6


def test_lines_never_cross_a_fence_even_when_the_quick_clip_is_wrong(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lines (a missed strip's lanes) are cut against the region near them, taken by GEOS's
    clip by rectangle; were that part wrong (here: the whole rectangle, the keep-out
    forgotten), the cut pieces would leave the region, and they are cut against the whole
    region."""
    from skysweep.plan import lanes

    flyable = shapely.box(0, 0, 1000, 600).difference(shapely.box(400, 200, 600, 400))
    box = shapely.clip_by_rect

    def forgetful(geom: shapely.Geometry, x0: float, y0: float, x1: float, y1: float) -> object:
        if geom is flyable:
            return shapely.box(x0, y0, x1, y1)
        return box(geom, x0, y0, x1, y1)

    monkeypatch.setattr(lanes.shapely, "clip_by_rect", forgetful)
    lines = shapely.linestrings([[(10, y), (990, y)] for y in (100.0, 250.0, 300.0, 500.0)])
    cut = lanes._clip_lines(lines, flyable)
    hole = shapely.box(400, 200, 600, 400).buffer(-1e-6)
    assert not shapely.intersects(cut, hole).any()
    assert shapely.length(cut) == pytest.approx([980, 780, 780, 980])


@st.composite
def fenced_lanes(draw: st.DrawFn) -> tuple[shapely.Geometry, float, float]:
    """A concave field with keep-outs (some boxes with corners at whole metres, on the lanes'
    lines), a lane direction (radians from east) and a lane spacing (metres)."""
    n = draw(st.integers(4, 12))
    radii = draw(st.lists(st.floats(300, 1500), min_size=n, max_size=n))
    angles = np.sort(draw(st.lists(st.floats(0, 6.28), min_size=n, max_size=n, unique=True)))
    corners = np.column_stack([np.cos(angles), np.sin(angles)]) * np.array(radii)[:, None]
    field = polygonal(shapely.make_valid(shapely.Polygon(np.round(corners, 3))))
    holes = []
    for _ in range(draw(st.integers(0, 10))):
        x, y = draw(st.integers(-900, 900)), draw(st.integers(-900, 900))
        if draw(st.booleans()):
            w, h = draw(st.integers(10, 300)), draw(st.integers(10, 300))
            holes.append(shapely.box(x, y, x + w, y + h))
        else:
            holes.append(shapely.Point(x, y).buffer(draw(st.floats(10, 200)), quad_segs=3))
    flyable = polygonal(shapely.difference(field, shapely.union_all(holes))) if holes else field
    level = draw(st.booleans())
    theta = draw(st.sampled_from([0.0, np.pi / 2]) if level else st.floats(0, 3.14))
    return flyable, theta, float(draw(st.integers(10, 80)))


@settings(max_examples=60, deadline=None)
@given(case=fenced_lanes())
def test_lanes_are_cut_where_geos_cuts_them(case: tuple[shapely.Geometry, float, float]) -> None:
    """The scan line cuts level lanes, some through the keep-outs' corners, where GEOS's
    intersection with the flyable region cuts them. A lane along an edge of the region is cut
    as the lane a hair above it (GEOS keeps all of it, boundary included): what it keeps is on
    the region all the same."""
    from skysweep.geo import rotation
    from skysweep.plan.lanes import scan_clip

    flyable, theta, spacing = case
    assume(not flyable.is_empty and flyable.is_valid)
    to_lane = rotation(-theta)
    x0, y0, x1, y1 = shapely.transform(flyable, lambda xy: xy @ to_lane.T).bounds
    y = np.arange(np.floor(y0), y1, spacing)  # whole metres: through the boxes' corners
    assume(len(y))
    left, right = np.full(len(y), x0 - 5.0), np.full(len(y), x1 + 5.0)
    left[::3] += 0.3 * (x1 - x0)  # some lanes end inside the region
    seg, a, b = scan_clip(y, left, right, flyable, to_lane)
    assert np.all(b > a) and np.all(np.diff(seg) >= 0)
    got = shapely.linestrings(
        np.stack([np.column_stack([a, y[seg]]), np.column_stack([b, y[seg]])], axis=1) @ to_lane
    )
    for share in (0.0, 0.3, 0.5, 0.7, 1.0):  # on the region (to rounding)
        at = shapely.line_interpolate_point(got, share, normalized=True)
        assert shapely.distance(at, flyable).max(initial=0.0) < 1e-6
    # GEOS keeps all of a lane that runs along the region's edge (to rounding); the scan line
    # may keep less of it, never more
    lines = shapely.linestrings(
        np.stack([np.column_stack([left, y]), np.column_stack([right, y])], axis=1) @ to_lane
    )
    want = shapely.length(shapely.intersection(lines, flyable))
    along_edge = shapely.length(shapely.intersection(lines, flyable.boundary.buffer(1e-6)))
    length = np.bincount(seg, shapely.length(got), minlength=len(y))
    assert np.all(np.abs(length - want) <= along_edge + 1e-6)


def test_a_strip_beside_a_keep_outs_margin_gets_a_lane_of_its_own() -> None:
    """A band whose middle lies in a keep-out's margin loses its lane there; the flyable strip
    beside the margin (here 15 m of a 50 m band, 1.2 km long) was left to the next band's
    swath, which does not reach it (one of u-bowl-30's lawnmowers left a strip 1.1 km long so,
    0.4 % of its area). It gets a lane through its own middle, in the band's number; a narrow
    strip does not."""
    from skysweep.plan import lanes

    field = shapely.box(0, 0, 2000, 500)
    wall = shapely.box(800, 55, 2100, 85)  # a keep-out with its margin, across band 1's middle
    flyable = field.buffer(20.0).difference(wall)
    pieces = lanes.lane_pieces(field, 50.0, 0.0, flyable)
    strip = [xy for _, xy in pieces if 85 < xy[0, 1] < 100]
    assert len(strip) == 1
    assert strip[0][:, 1] == pytest.approx([92.5, 92.5])
    assert strip[0][0, 0] < 820 and strip[0][1, 0] > 1980
    band_of = {round(float(xy[0, 1]), 1): band for band, xy in pieces}
    assert band_of[92.5] == band_of[25.0] + 1  # the band it lies in
    swept = shapely.union_all([shapely.LineString(xy).buffer(25.0) for _, xy in pieces])
    assert shapely.box(800, 85, 2000, 100).difference(swept).area < 1.0
    for _, xy in pieces:
        assert shapely.covered_by(shapely.LineString(xy), flyable)
    # the 5 m strip below the wall is left to the lanes on either side
    assert not [xy for _, xy in pieces if 50 < xy[0, 1] < 55]


def test_a_strip_beside_a_wall_across_the_whole_band_gets_its_lane() -> None:
    """A keep-out's margin over the whole length of a band's middle leaves its lane nothing;
    the strip beside it still gets a lane of its own."""
    from skysweep.plan import lanes

    field = shapely.box(0, 0, 2000, 500)
    flyable = field.buffer(20.0).difference(shapely.box(-100, 55, 2100, 85))
    pieces = lanes.lane_pieces(field, 50.0, 0.0, flyable)
    strip = [xy for _, xy in pieces if 85 < xy[0, 1] < 100]
    assert len(strip) == 1 and strip[0][:, 1] == pytest.approx([92.5, 92.5])
    assert strip[0][0, 0] < 1 and strip[0][1, 0] > 1999
    assert not [xy for _, xy in pieces if 55 <= xy[0, 1] <= 85]


def test_a_strip_beside_a_keep_out_is_found_whatever_the_last_bits() -> None:
    """Lanes north-south past a box keep-out: the strip beside it gets its lane. The scan
    line cuts a lane in the lanes' frame; turned back to the world, the end of a kept lane
    can stop a hair (1e-14 m) short of the box's edge, and the sliver between them joined the
    strips either side of the box into one piece, whose lane through its middle crossed the
    box and was cut away: 6,400 m² left unswept here (the box's corners are as they are for
    that)."""
    from skysweep.plan import lanes

    field = shapely.box(0, -800, 1000, 800)
    x0, y0, y1 = 547.567557458432, 28.612560408283557, 319.6884604089534
    box = shapely.box(x0, y0, x0 + 193.8774156770538, y1)
    pieces = lanes.lane_pieces(field, 55.5, np.pi / 2, field.buffer(20.0).difference(box))
    swept = shapely.union_all(
        [shapely.LineString(xy).buffer(27.75, cap_style="flat") for _, xy in pieces]
    )
    assert field.difference(box).difference(swept).area < 1000.0
    assert [xy for _, xy in pieces if x0 - 56 < xy[0, 0] < x0 and y0 < xy[0, 1] < y1]


def test_a_ground_keeps_only_its_polygons() -> None:
    """Making a ground valid or cutting it can leave stray lines and points in a collection;
    only the polygons are ground (GEOS's clip by rectangle miscounts a collection's area)."""
    from skysweep.geo import polygonal

    square = shapely.box(0, 0, 10, 10)
    other = shapely.box(20, 0, 30, 10)
    stray = shapely.GeometryCollection(
        [square, shapely.LineString([(10, 0), (20, 0)]), shapely.Point(40, 40)]
    )
    assert polygonal(stray).equals(square)
    both = shapely.GeometryCollection([shapely.MultiPolygon([square, other]), shapely.Point(1, 1)])
    got = polygonal(both)
    assert got.geom_type == "MultiPolygon" and got.area == 200.0
    assert polygonal(square) is square
    assert polygonal(shapely.LineString([(0, 0), (1, 1)])).is_empty
