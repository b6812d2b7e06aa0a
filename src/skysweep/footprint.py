"""What the sensors see: the ground within half a swath of a flown or planned track.

One estimator serves the planner (coverage of planned routes) and the simulator (coverage of flown
tracks): the searchable area is sampled on a regular grid (:func:`skysweep.geo.sample_points`) and
a sample counts as covered when it lies within ``swath_m / 2`` of a track.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from skysweep.geo import FloatArray


def densify(xy: FloatArray, step_m: float) -> FloatArray:
    """Points along a polyline (n, 2) no more than ``step_m`` apart, vertices included."""
    return densify_with_vertices(xy, step_m)[0]


def densify_with_vertices(xy: FloatArray, step_m: float) -> tuple[FloatArray, NDArray[np.intp]]:
    """:func:`densify`, and where each original vertex stands in the result."""
    if len(xy) < 2:
        return xy[:, :2].copy(), np.arange(len(xy))
    seg = np.diff(xy[:, :2], axis=0)
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    n = np.maximum(np.ceil(lengths / step_m).astype(int), 1)
    first = np.cumsum(n) - n  # index of each segment's start vertex in the result
    seg_idx = np.repeat(np.arange(len(seg)), n)
    t = (np.arange(n.sum()) - first[seg_idx]) / n[seg_idx]
    pts = xy[seg_idx, :2] + seg[seg_idx] * t[:, None]
    return np.vstack([pts, xy[-1:, :2]]), np.append(first, n.sum())


def covered_mask(
    samples: FloatArray, tracks: Iterable[tuple[FloatArray, float]]
) -> NDArray[np.bool_]:
    """Which sample points lie within ``radius`` of some track.

    ``tracks`` are ``(polyline (n, 2+), radius_m)`` pairs. Tracks are densified to a tenth of their
    radius (at most 2 m) and a point counts as covered when a densified point is within the
    radius, so the estimate errs, by centimetres, on the side of *less* coverage.
    """
    by_radius: dict[float, list[FloatArray]] = {}
    for xy, radius in tracks:
        if len(xy):
            by_radius.setdefault(float(radius), []).append(xy)
    mask = np.zeros(len(samples), bool)
    for radius, lines in by_radius.items():
        step = min(2.0, radius / 10.0)
        pts = np.vstack([densify(line, step) for line in lines])
        todo = ~mask
        if not todo.any():
            break
        dist, _ = cKDTree(pts).query(samples[todo], k=1, distance_upper_bound=radius)
        mask[np.flatnonzero(todo)[np.isfinite(dist)]] = True
    return mask
