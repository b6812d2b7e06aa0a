"""A concave ground cut into arms, each swept along its own length (skysweep.plan.arms)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from skysweep.plan.arms import arm_parts, long_axis, rectangularity


def _axes_deg(parts: list[shapely.Polygon]) -> list[int]:
    return [round(float(np.degrees(long_axis(p)))) % 180 for p in parts]


def test_an_l_is_cut_into_its_two_arms_each_along_its_length() -> None:
    ground = shapely.union_all([shapely.box(0, 0, 3000, 800), shapely.box(0, 0, 800, 2500)])
    parts = arm_parts(ground, 60.0)
    assert len(parts) == 2
    assert shapely.union_all(parts).symmetric_difference(ground).area < 1.0
    assert rectangularity(parts) > 0.99 > 0.6 > rectangularity([ground])
    assert sorted(_axes_deg(parts)) == [0, 90]


def test_a_u_needs_two_cuts_and_gets_them() -> None:
    """Cutting one arm off a U leaves an L, no nearer a rectangle than the U: only looking one
    cut ahead finds the three parts."""
    ground = shapely.box(0, 0, 4000, 3500).difference(shapely.box(1000, 800, 3000, 3600))
    parts = arm_parts(ground, 60.0)
    assert len(parts) == 3
    assert shapely.union_all(parts).symmetric_difference(ground).area < 1.0
    assert rectangularity(parts) > 0.99


def test_a_nearly_rectangular_ground_is_not_cut() -> None:
    notched = shapely.box(0, 0, 2000, 1000).difference(shapely.box(900, 900, 1100, 1100))
    assert arm_parts(shapely.box(0, 0, 2000, 1000), 60.0) == []
    assert arm_parts(notched, 60.0) == []  # a notch shallower than it is worth


def test_islands_are_parts_already() -> None:
    ground = shapely.MultiPolygon([shapely.box(0, 0, 500, 100), shapely.box(0, 300, 100, 900)])
    parts = arm_parts(ground, 30.0)
    assert len(parts) == 2
    assert sorted(_axes_deg(parts)) == [0, 90]


def test_a_nearly_convex_or_scattered_ground_is_not_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    """A share of an open field (nearly convex, however far from a rectangle, with a bite out
    of it and a keep-out in it) is swept whole; so is a ground in more pieces than arms."""
    import skysweep.plan.arms as arms

    triangle = shapely.Polygon([(0, 0), (6000, 0), (3000, 4000)])
    bitten = triangle.difference(shapely.box(2700, -10, 3300, 600)).difference(
        shapely.box(2800, 1500, 3200, 1900)  # a keep-out: holes do not count against it
    )
    assert rectangularity([bitten]) < 0.5
    assert arm_parts(bitten, 60.0) == []
    scattered = shapely.union_all(
        [shapely.box(3000 * k, 0, 3000 * k + 1000, 500) for k in range(6)]
    )
    assert arm_parts(scattered, 60.0) == []
    # without the convexity gate the bite would be cut from
    monkeypatch.setattr(arms, "MAX_CONVEXITY", 1.01)
    assert len(arm_parts(bitten, 60.0)) == 2
