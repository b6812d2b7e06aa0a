"""What the sensors see: the ground within half a swath of a flown or planned track.

One estimator serves the planner (coverage of planned routes) and the simulator (coverage of flown
tracks): the searchable area is sampled on a regular grid (:func:`skysweep.geo.sample_points`) and
a sample counts as covered when it lies within ``swath_m / 2`` of a track.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import shapely
from numpy.typing import NDArray

from skysweep.geo import FloatArray


def densify_with_vertices(xy: FloatArray, step_m: float) -> tuple[FloatArray, NDArray[np.intp]]:
    """Points along a polyline (n, 2) no more than ``step_m`` apart, vertices included, and
    where each original vertex stands in the result."""
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
    """Which sample points lie within ``radius`` of some track (exactly: the distance to the
    track's segments, not to points along them).

    ``tracks`` are ``(polyline (n, 2+), radius_m)`` pairs. The tracks' segments go into an
    R-tree (shapely's STRtree) and the samples are queried against it with ``dwithin``.
    """
    by_radius: dict[float, list[FloatArray]] = {}
    for xy, radius in tracks:
        if len(xy):
            by_radius.setdefault(float(radius), []).append(np.asarray(xy, float)[:, :2])
    mask = np.zeros(len(samples), bool)
    for radius, lines in by_radius.items():
        todo = np.flatnonzero(~mask)
        if not len(todo):
            break
        segs = np.concatenate(
            [
                np.stack([xy[:-1], xy[1:]], axis=1) if len(xy) > 1 else np.stack([xy, xy], 1)
                for xy in lines
            ]
        )
        tree = shapely.STRtree(shapely.linestrings(segs))
        hit = tree.query(shapely.points(samples[todo]), predicate="dwithin", distance=radius)[0]
        mask[todo[np.unique(hit)]] = True
    return mask


class CoverageGrid:
    """A raster of the searchable area that sensor footprints are stamped onto, live.

    Cells are ``spacing_m`` squares; a cell is covered once its centre has been within a
    footprint radius of a stamped point. Stamping is vectorised: each point adds a precomputed
    disc of cell offsets.
    """

    def __init__(self, region: shapely.Geometry, max_cells: int = 400_000) -> None:
        self.spacing_m = max(1.0, float(np.sqrt(region.area / max_cells)))
        x0, y0, x1, y1 = region.bounds
        self.origin = np.array([x0, y0])
        self.shape = (
            int(np.ceil((y1 - y0) / self.spacing_m)) + 1,
            int(np.ceil((x1 - x0) / self.spacing_m)) + 1,
        )
        iy, ix = np.indices(self.shape)
        cx = x0 + (ix.ravel() + 0.5) * self.spacing_m
        cy = y0 + (iy.ravel() + 0.5) * self.spacing_m
        shapely.prepare(region)
        self.inside = shapely.contains_xy(region, cx, cy).reshape(self.shape)
        self.covered = np.zeros(self.shape, bool)
        self._stencils: dict[float, NDArray[np.intp]] = {}

    def _box(self, radius_m: float) -> NDArray[np.intp]:
        key = round(radius_m, 3)
        if key not in self._stencils:
            k = int(np.ceil(radius_m / self.spacing_m)) + 1
            dy, dx = np.mgrid[-k : k + 1, -k : k + 1]
            self._stencils[key] = np.column_stack([dy.ravel(), dx.ravel()])
        return self._stencils[key]

    def stamp(self, points: FloatArray, radius_m: FloatArray) -> None:
        """Mark every cell whose centre is within ``radius_m[i]`` of ``points[i]`` (local m)."""
        if not len(points):
            return
        rel = (points[:, :2] - self.origin) / self.spacing_m
        cell = np.floor(rel).astype(np.intp)
        for r in np.unique(radius_m):
            sel = radius_m == r
            box = self._box(float(r))
            iy = cell[sel, None, 1] + box[None, :, 0]
            ix = cell[sel, None, 0] + box[None, :, 1]
            # distance from the point itself to each candidate cell centre, in cells
            d2 = (ix + 0.5 - rel[sel, None, 0]) ** 2 + (iy + 0.5 - rel[sel, None, 1]) ** 2
            ok = (d2 <= (r / self.spacing_m) ** 2) & (iy >= 0) & (iy < self.shape[0])
            ok &= (ix >= 0) & (ix < self.shape[1])
            self.covered[iy[ok], ix[ok]] = True

    @property
    def fraction(self) -> float:
        n = int(self.inside.sum())
        return float((self.covered & self.inside).sum() / n) if n else 0.0
