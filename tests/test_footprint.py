"""The coverage estimator: which sample points lie within a radius of a track.

Both of :func:`covered_mask`'s ways (lattice rows, and the R-tree for scattered samples) are
checked against shapely's own distance from every sample to every track, on random tracks that
include the awkward cases: lone points, zero-length and axis-parallel segments, tracks outside
the samples, and several radii.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from skysweep.footprint import covered_mask
from skysweep.geo import sample_points

coords = st.floats(-150.0, 650.0, allow_nan=False, allow_infinity=False)


@st.composite
def tracks(draw: st.DrawFn) -> list[tuple[np.ndarray, float]]:
    out = []
    for _ in range(draw(st.integers(1, 5))):
        n = draw(st.integers(1, 5))
        xy = np.array([[draw(coords), draw(coords)] for _ in range(n)])
        shape = draw(st.sampled_from(["any", "row", "column", "repeat"]))
        if shape == "row":
            xy[:, 1] = xy[0, 1]
        elif shape == "column":
            xy[:, 0] = xy[0, 0]
        elif shape == "repeat":
            xy = np.repeat(xy, 2, axis=0)  # zero-length segments
        out.append((xy, draw(st.sampled_from([3.0, 17.5, 25.0, 60.0]))))
    return out


def _truth(samples: np.ndarray, tracks: list[tuple[np.ndarray, float]]) -> np.ndarray:
    pts = shapely.points(samples)
    hit = np.zeros(len(samples), bool)
    for xy, radius in tracks:
        geom = shapely.Point(xy[0]) if len(xy) == 1 else shapely.LineString(xy)
        hit |= shapely.distance(pts, geom) <= radius
    return hit


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # shapely, degenerate lines
@settings(max_examples=60, deadline=None)
@given(
    tracks(),
    st.floats(50.0, 500.0),
    st.floats(0.0, 80.0),
    st.integers(200, 5000),
)
def test_lattice_rows_match_the_exact_distance(
    tracks: list[tuple[np.ndarray, float]], size: float, hole: float, points: int
) -> None:
    region = shapely.box(0.0, 0.0, size, 0.7 * size).difference(
        shapely.Point(size / 2, size / 3).buffer(hole)
    )
    samples, _ = sample_points(region, max_points=points)
    got = covered_mask(samples, tracks)
    want = _truth(samples, tracks)
    # a sample exactly on a capsule's edge may fall either way in floating point
    edge = np.zeros(len(samples), bool)
    pts = shapely.points(samples)
    for xy, radius in tracks:
        geom = shapely.Point(xy[0]) if len(xy) == 1 else shapely.LineString(xy)
        edge |= np.abs(shapely.distance(pts, geom) - radius) < 1e-6
    assert np.array_equal(got[~edge], want[~edge])


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
@settings(max_examples=30, deadline=None)
@given(tracks(), st.integers(1, 400))
def test_scattered_samples_match_the_exact_distance(
    tracks: list[tuple[np.ndarray, float]], n: int
) -> None:
    samples = np.random.default_rng(n).uniform(-100.0, 600.0, (n, 2))
    assert np.array_equal(covered_mask(samples, tracks), _truth(samples, tracks))


def test_no_tracks_or_no_samples() -> None:
    samples, _ = sample_points(shapely.box(0, 0, 100, 100), max_points=100)
    assert not covered_mask(samples, []).any()
    assert covered_mask(np.empty((0, 2)), [(np.array([[0.0, 0.0], [1.0, 1.0]]), 5.0)]).shape == (0,)


def test_a_lane_covers_its_swath_and_no_more() -> None:
    """A lane 35 m wide on a 1 m lattice: the rows 17 m either side are seen, 18 m not."""
    samples, _ = sample_points(shapely.box(0, -50, 200, 50), max_points=20_000)
    lane = np.array([[20.0, 0.0], [180.0, 0.0]])
    seen = covered_mask(samples, [(lane, 17.5)])
    x, y = samples[:, 0], samples[:, 1]
    within = (x >= 20.0) & (x <= 180.0) & (np.abs(y) <= 17.5)
    assert seen[within].all()
    assert not seen[(np.abs(y) > 17.5 + 1e-9) & (x > 40) & (x < 160)].any()


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.floats(-1e5, 1e5), min_size=1, max_size=40),
    picks=st.lists(st.integers(0, 39), min_size=1, max_size=300),
    on_grid=st.booleans(),
)
def test_distinct_values_are_numpys_on_a_grid_or_off_it(
    values: list[float], picks: list[int], on_grid: bool
) -> None:
    """A lattice's columns and rows are found without sorting every sample when they lie on
    a grid; on a grid or not, the answer is np.unique's, bitwise."""
    from skysweep.footprint import _distinct

    v = np.array([values[k % len(values)] for k in picks])
    if on_grid:
        v = np.round(v / 7.3) * 7.3
    assert np.array_equal(_distinct(v), np.unique(v))


def test_a_plans_samples_lie_on_the_lattice_found_without_a_sort() -> None:
    """sample_points' lattice: its columns and rows as np.unique finds them."""
    from skysweep.footprint import _distinct

    region = shapely.box(0, 0, 3000, 2000).difference(shapely.Point(1500, 1000).buffer(400))
    samples, _ = sample_points(region, 50_000)
    for c in (0, 1):
        assert np.array_equal(_distinct(samples[:, c]), np.unique(samples[:, c]))
