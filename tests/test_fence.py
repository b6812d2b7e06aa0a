"""The geofence's signed distance (:mod:`skysweep.fence`) against shapely's exact answer."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from skysweep.fence import FenceField


def exact(allowed: shapely.Geometry, xy: np.ndarray) -> np.ndarray:
    """Signed distance to the boundary of ``allowed``, positive inside, by shapely."""
    d = shapely.distance(allowed.boundary, shapely.points(xy))
    return np.where(shapely.contains_xy(allowed, xy[:, 0], xy[:, 1]), d, -d)


def check(fence: FenceField, allowed: shapely.Geometry, xy: np.ndarray) -> None:
    d, g = fence.sample(xy)
    want = exact(allowed, xy)
    near = np.abs(want) < fence.reach_m - 1e-6
    np.testing.assert_allclose(d[near], want[near], atol=1e-6)
    # beyond the reach: the reach, on the right side, and no direction
    far = np.abs(want) > fence.reach_m + 1e-6
    np.testing.assert_array_equal(d[far], np.where(want[far] > 0, 1.0, -1.0) * fence.reach_m)
    assert not g[far].any()
    # the gradient is a unit vector pointing from the nearest fence point into the allowed
    # space: going back along it by the distance lands on the fence
    ok = near & (np.abs(want) > 1e-3)
    np.testing.assert_allclose(np.hypot(g[ok, 0], g[ok, 1]), 1.0, atol=1e-9)
    foot = xy[ok] - d[ok, None] * g[ok]
    assert shapely.distance(allowed.boundary, shapely.points(foot)).max() < 1e-6


@st.composite
def fences(draw: st.DrawFn) -> tuple[shapely.Geometry, list[shapely.Geometry]]:
    """A random concave keep-in area (a star polygon) with up to 6 keep-out zones, some of them
    crossing its edge."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k = draw(st.integers(3, 14))
    angles = np.sort(rng.uniform(0.0, 2 * np.pi, k))
    radii = rng.uniform(200.0, 900.0, k)
    keep_in = shapely.make_valid(
        shapely.Polygon(np.column_stack([radii * np.cos(angles), radii * np.sin(angles)]))
    )
    zones = []
    for _ in range(draw(st.integers(0, 6))):
        cx, cy = rng.uniform(-700.0, 700.0, 2)
        w, h = rng.uniform(10.0, 200.0, 2)
        zone = shapely.box(cx, cy, cx + w, cy + h)
        if draw(st.booleans()):
            zone = shapely.Point(cx, cy).buffer(w / 2, quad_segs=4)
        zones.append(zone)
    return keep_in, zones


@settings(max_examples=60, deadline=None)
@given(fence=fences(), seed=st.integers(0, 1000))
def test_distance_is_exact_near_the_fence(
    fence: tuple[shapely.Geometry, list[shapely.Geometry]], seed: int
) -> None:
    keep_in, zones = fence
    allowed = shapely.difference(keep_in, shapely.union_all(zones)) if zones else keep_in
    if allowed.is_empty or keep_in.area < 1.0:
        return
    field = FenceField.build(keep_in, zones, cell_m=40.0, reach_m=80.0)
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = keep_in.bounds
    xy = rng.uniform([x0 - 150, y0 - 150], [x1 + 150, y1 + 150], (3000, 2))
    # and points right next to the edges, where the sign is hardest
    edges = shapely.get_coordinates(allowed.boundary)
    jitter = rng.normal(0.0, 0.5, edges.shape)
    check(field, allowed, np.vstack([xy, edges + jitter]))


def test_a_bucket_centre_on_an_edge_does_not_flip_the_sign() -> None:
    """The roof edge runs exactly through bucket centres (625, 825) and others."""
    keep_in = shapely.Polygon([(0, 0), (1000, 0), (1000, 600), (500, 900), (0, 600)])
    field = FenceField.build(keep_in, cell_m=50.0, reach_m=100.0)
    xy = np.array([[649.29, 821.3], [649.29, 805.0], [625.0, 830.0], [625.0, 820.0]])
    check(field, keep_in, xy)
    d, _ = field.sample(xy)
    assert list(np.sign(d)) == [-1.0, 1.0, -1.0, 1.0]


def test_keep_out_zones_and_off_the_table() -> None:
    keep_in = shapely.box(0.0, 0.0, 1000.0, 1000.0)
    zone = shapely.box(400.0, 400.0, 600.0, 600.0)
    field = FenceField.build(keep_in, [zone])
    d, g = field.sample(np.array([[500.0, 390.0], [500.0, 410.0], [500.0, 500.0], [-5000.0, 0]]))
    assert d[:2] == pytest.approx([10.0, -10.0])
    np.testing.assert_allclose(g[:2], [[0.0, -1.0], [0.0, -1.0]], atol=1e-12)
    assert d[2] == -field.reach_m  # deep inside the zone
    assert d[3] == -field.reach_m and not g[3].any()  # far outside everything


def test_an_empty_keep_in_area_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        FenceField.build(shapely.Polygon())
    with pytest.raises(ValueError, match="nothing is left"):
        FenceField.build(shapely.box(0, 0, 10, 10), [shapely.box(-1, -1, 11, 11)])
