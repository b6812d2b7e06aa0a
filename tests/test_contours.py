"""Contour lanes (skysweep.plan.contours): rings parallel to the ground's edge that sweep all
of it, and the split that flies them along a corridor instead of across it."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from skysweep.bench.plan_scenarios import scenario
from skysweep.geo import oriented_box, sample_points
from skysweep.plan import planner, snake
from skysweep.plan.allocate import sample_area, share_sites
from skysweep.plan.contours import contour_rings, contour_routes, corner_spurs
from skysweep.plan.metrics import coverage_fraction, launch_slots
from skysweep.plan.paths import PathFinder
from skysweep.plan.sorties import fly_routes


def _flown(lanes: np.ndarray) -> np.ndarray:
    """The polyline a drone flies over ``lanes`` (L, 2, 2) in order, connectors included."""
    return lanes.reshape(-1, 2)


def _seen(ground: shapely.Geometry, lanes: np.ndarray, radius_m: float) -> float:
    samples, _ = sample_points(ground, 40_000)
    share, _ = coverage_fraction(samples, [(_flown(lanes), radius_m)])
    return share


def test_a_rectangle_is_ringed_half_a_spacing_in_with_spurs_into_its_corners() -> None:
    spacing = 49.0
    ground = shapely.box(0, 0, 1200, 900)
    rings = contour_rings(ground, spacing)
    # 900 m across: rings at 24.5, 73.5, ... 416.5 m in, nine of them
    assert len(rings) == 9
    outer = rings[0]
    # a rectangle's ring: four sides and four spurs, each spur out and back (V, tip, V)
    assert len(outer) == 4 * 3 + 1
    tips = outer[1:-1:3]
    corners = np.array([[0, 0], [1200, 0], [1200, 900], [0, 900]])
    # each tip sees the corner from half a spacing: none of the corner goes unseen
    dist = np.hypot(*(tips[:, None, :] - corners[None]).transpose(2, 0, 1)).min(axis=1)
    np.testing.assert_allclose(dist, spacing / 2, atol=1e-6)
    # the sides stay half a spacing in
    sides = outer[np.abs(outer[:, 0] - 24.5) < 1e-6]
    assert len(sides) >= 2


def test_a_spur_goes_out_of_convex_corners_only() -> None:
    """An L-shaped ring: its five convex corners get spurs, its one concave corner none."""
    ell = np.array([[0, 0], [200, 0], [200, 100], [100, 100], [100, 200], [0, 200], [0, 0]], float)
    spurred = corner_spurs(ell, 40.0)
    assert len(spurred) == len(ell) + 2 * 5
    # the concave corner (100, 100) is flown once, straight through
    assert np.sum(np.all(spurred == [100.0, 100.0], axis=1)) == 1


def test_a_spur_is_cut_short_where_it_would_leave_the_ground() -> None:
    """A ring's corner need not face one of the ground's: here the first ring turns between
    a hole's corner and the ground's edge, and its spur along the bisector once ran 0.375 m
    out across the narrow neck between them (found by the property below). It now stops
    inside the ground."""
    ground = shapely.Polygon(
        [
            (82.5075, -253.9321),
            (-121.3525, -88.1678),
            (-121.3525, 88.1678),
            (46.3525, 142.6585),
            (360.0, 0.0),
        ],
        [[(312.0, 20.0), (192.0, 20.0), (192.0, 0.0), (312.0, 0.0)]],
    )
    for lanes in contour_routes(ground, 33.0, np.array([0.0, -900.0])):
        ends = shapely.points(lanes.reshape(-1, 2))
        assert shapely.covers(ground.buffer(0.05), ends).all()
        assert _seen(ground, lanes, 33.0 / 2 + 0.5) >= 0.995


@st.composite
def concave_grounds(draw: st.DrawFn) -> tuple[shapely.Geometry, float]:
    """A star-shaped ground of a few hundred metres with up to three holes, and a spacing."""
    n = draw(st.integers(5, 12))
    step = 2 * math.pi / n
    radii = draw(st.lists(st.floats(150.0, 700.0), min_size=n, max_size=n))
    jitter = draw(st.lists(st.floats(-0.3, 0.3), min_size=n, max_size=n))
    pts = [
        (r * math.cos((k + j) * step), r * math.sin((k + j) * step))
        for k, (r, j) in enumerate(zip(radii, jitter, strict=True))
    ]
    ground = shapely.Polygon(pts)
    assume(ground.is_valid)
    for _ in range(draw(st.integers(0, 3))):
        x, y = draw(st.floats(-300.0, 300.0)), draw(st.floats(-300.0, 300.0))
        w, h = draw(st.floats(20.0, 120.0)), draw(st.floats(20.0, 120.0))
        ground = ground.difference(shapely.box(x, y, x + w, y + h))
    ground = shapely.make_valid(ground)
    assume(ground.area > 50_000.0)
    return ground, draw(st.floats(20.0, 60.0))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=concave_grounds())
def test_contour_lanes_cover_random_concave_grounds_and_stay_on_them(
    case: tuple[shapely.Geometry, float],
) -> None:
    ground, spacing = case
    routes = contour_routes(ground, spacing, np.array([0.0, -900.0]))
    assert len(routes) == 2
    for lanes in routes:
        # every lane lies on the ground (its connectors, flown around obstacles, may not)
        ends = shapely.points(lanes.reshape(-1, 2))
        assert shapely.covers(ground.buffer(0.05), ends).all()
        inside = shapely.covers(ground.buffer(0.05), shapely.linestrings(lanes))
        assert inside.mean() > 0.99
        # seen at the swath of a 1 m sidelap: ≥ 0.995, as the planner's bar
        assert _seen(ground, lanes, spacing / 2 + 0.5) >= 0.995


def test_a_piece_with_a_vertex_a_hair_from_another_gets_its_rectangle_without_a_warning() -> None:
    """GEOS's overlay can leave a piece a vertex 1e-231 m from another (hypothesis seed 110
    of the test above). Shapely's minimum rotated rectangle then divides by that edge's zero
    length and warns; the box is taken without the twin vertex, and is the same rectangle."""
    y = 4.691363262464316e-231
    corners = [(160, y), (160, 0), (153.29514056249522, -8.416423172986924)]
    corners += [(148.338983852, -0.282220608), (147.17651819839807, y)]
    piece = shapely.Polygon(corners)
    with pytest.warns(RuntimeWarning):
        raw = shapely.minimum_rotated_rectangle(piece)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        box = oriented_box(piece)
    assert box.shape == (4, 2) and np.all(np.isfinite(box))
    assert shapely.Polygon(box).equals_exact(
        shapely.Polygon(shapely.get_coordinates(raw)[:4]), 1e-9
    )
    assert shapely.Polygon(box).contains(piece.buffer(-1e-6))


def test_a_corridor_is_swept_along_its_length_not_across(monkeypatch: pytest.MonkeyPatch) -> None:
    """river-16's second site: 4.6 km of winding valley 300 m wide, four drones in its middle.
    Contour lanes, out along one bank and home along the other, land far earlier than any
    straight lawnmower, whose lanes cross the valley and whose far blocks are reached in
    transit."""
    m = scenario("river-16").mission()
    finder = PathFinder(m.flyable)
    launch = launch_slots(m)
    site = 1
    shares = share_sites(m, launch, sample_area(m, finder))
    ground = planner._site_grounds(m, shares)[site]
    drones = np.flatnonzero(m.fleet.site == site)
    spacing = float(m.fleet.track_spacing_m[drones].min())
    crew = snake._Drones.of(m, drones, launch)
    home = m.site_xy_m[site]

    def finish(lawnmowers: tuple[tuple[np.ndarray, np.ndarray], ...]) -> float:
        found = [
            snake._split_route(raw, bands, ground, crew, m.wind_vector_mps, finder, home, ())
            for raw, bands in lawnmowers
        ]
        return min(f.deadline_s for f in found if f is not None)

    contours = tuple(snake._contour_lawnmowers(ground, spacing, home))
    assert contours
    monkeypatch.setattr(snake, "CONTOUR_MAX_LANE_M", 0.0)
    straight = snake._lawnmowers(ground, spacing, len(drones), finder, home)
    # 1,731 s against 2,012 s on the first round's share
    assert finish(contours) < 0.9 * finish(straight)


def test_a_contour_split_is_flown_as_estimated_without_repeated_waypoints() -> None:
    """The rings' segments touch end to start: the estimate counts their corners as the
    route without its repeated points, and the routes flown have none."""
    m = scenario("meadow-3").mission()
    finder = PathFinder(m.flyable)
    launch = launch_slots(m)
    drones = np.arange(len(m.fleet))
    spacing = float(m.fleet.track_spacing_m.min())
    crew = snake._Drones.of(m, drones, launch)
    site = m.site_xy_m[0]
    for raw, bands in snake._contour_lawnmowers(m.searchable, spacing, site):
        split = snake._split_route(
            raw, bands, m.searchable, crew, m.wind_vector_mps, finder, site, ()
        )
        assert split is not None and split.along_contours
        land = 0.0
        for i, routes in split.drone_routes(finder).items():
            for route in routes:
                assert np.all(np.hypot(*np.diff(route, axis=0).T) > 0)
                flown = fly_routes(m, i, [route], finder, float(launch[i]), 1, m.pad_xy_m[i])
                assert len(flown) == 1
                land = max(land, flown[-1].land_s)
        assert land == pytest.approx(split.deadline_s, rel=0.01)


def test_the_river_valley_plans_along_its_banks() -> None:
    """river-16 (15.5 km of winding valley, four sites): 0.414 with straight lanes only."""
    m = scenario("river-16").mission()
    plan = planner.plan_mission(m)
    assert plan.metrics.efficiency > 0.53
    assert plan.metrics.coverage_fraction >= 0.995
