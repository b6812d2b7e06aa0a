"""The geofence as a signed-distance field: how far each point is from leaving the allowed space.

The allowed space is the keep-in area minus every keep-out zone. The field is sampled once on a
regular grid (local metres), from a raster of the allowed space and two Euclidean distance
transforms, so that looking up thousands of drones per step costs a bilinear interpolation each
instead of a polygon distance query. Positive distances are inside the allowed space, negative
ones outside; the gradient points into the allowed space.

The grid cell is at most ``max_cell_m``, and coarser only when the fence is so large that the
grid would pass ``max_cells``. Inside, the field errs by up to a cell on the safe side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from scipy import ndimage

from skysweep import gridfield
from skysweep.geo import FloatArray
from skysweep.gridfield import geo_of


@dataclass(frozen=True)
class FenceField:
    """Signed distance (m) to the fence on a grid; x east, y north, local metres."""

    origin_m: tuple[float, float]
    """Centre of grid cell (0, 0)."""
    cell_m: float
    field: FloatArray
    """(ny, nx, 3) at cell centres: the signed distance (positive inside the allowed space),
    then the unit vector pointing into the allowed space."""

    @property
    def geo(self) -> FloatArray:
        """(x0, y0, cell_m), as :mod:`skysweep.gridfield` takes it."""
        return geo_of(self.origin_m, self.cell_m)

    @classmethod
    def build(
        cls,
        keep_in: shapely.Geometry,
        keep_out: Sequence[shapely.Geometry] = (),
        *,
        max_cell_m: float = 5.0,
        max_cells: int = 4_000_000,
        pad_m: float = 200.0,
    ) -> FenceField:
        """Sample the signed distance to the fence: inside ``keep_in``, outside every zone of
        ``keep_out`` (polygonal geometries, local metres)."""
        if keep_in.is_empty:
            raise ValueError("the keep-in area is empty")
        x0, y0, x1, y1 = keep_in.bounds
        x0, y0, x1, y1 = x0 - pad_m, y0 - pad_m, x1 + pad_m, y1 + pad_m
        cell = max(max_cell_m, math.sqrt((x1 - x0) * (y1 - y0) / max_cells))
        nx = math.ceil((x1 - x0) / cell) + 1
        ny = math.ceil((y1 - y0) / cell) + 1
        xs = x0 + cell * np.arange(nx)
        ys = y0 + cell * np.arange(ny)
        gx, gy = np.meshgrid(xs, ys)
        shapely.prepare(keep_in)
        inside = shapely.contains_xy(keep_in, gx, gy)
        for zone in keep_out:
            # only the zone's own box of cells needs testing
            zx0, zy0, zx1, zy1 = zone.bounds
            i0, i1 = np.searchsorted(xs, [zx0, zx1])
            j0, j1 = np.searchsorted(ys, [zy0, zy1])
            inside[j0:j1, i0:i1] &= ~shapely.contains_xy(zone, gx[j0:j1, i0:i1], gy[j0:j1, i0:i1])
        # distance from each cell centre to the nearest cell on the other side; inside, one
        # cell less, so the field never says a point is farther in than it is (it errs by up
        # to a cell toward caution, never toward the fence)
        d_in = ndimage.distance_transform_edt(inside) * cell - cell
        d_out = ndimage.distance_transform_edt(~inside) * cell
        dist = np.where(inside, d_in, -d_out)
        gy_, gx_ = np.gradient(dist, cell)
        norm = np.maximum(np.hypot(gx_, gy_), 1e-9)
        field = np.stack([dist, gx_ / norm, gy_ / norm], axis=-1).astype(np.float64)
        return cls((x0, y0), cell, field)

    def sample(self, xy_m: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Signed distance (n,) and inward unit gradient (n, 2) at points ``xy_m`` (n, 2)."""
        xy = np.ascontiguousarray(np.asarray(xy_m, float).reshape(-1, 2))
        values, off = gridfield.sample(self.field, self.geo, xy)
        grad = values[:, 1:]
        norm = np.maximum(np.hypot(grad[:, 0], grad[:, 1]), 1e-9)
        # outside the grid the nearest edge cell answers, and the point is farther out still
        return values[:, 0] - off, grad / norm[:, None]
