"""Bilinear lookup in a regular grid of vectors: the one interpolation the wind field, the
geofence field and the compiled kernels share.

A grid is an array (ny, nx, k) of k-vectors at cell centres; ``geo`` is (x0, y0, cell_m): the
local-frame position (metres) of cell (0, 0) and the cell size. Points beyond the grid take the
value at its nearest edge; :func:`lookup` also reports how far beyond (metres).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from skysweep.geo import FloatArray


@njit(cache=True, inline="always")
def lookup(
    grid: FloatArray, geo: FloatArray, x: float, y: float, c: int
) -> tuple[float, float]:  # pragma: no cover - compiled
    """Component ``c`` of the grid at (x, y), and the distance (m) the point lies off the grid."""
    ny, nx = grid.shape[0], grid.shape[1]
    fx = (x - geo[0]) / geo[2]
    fy = (y - geo[1]) / geo[2]
    cx = min(max(fx, 0.0), nx - 1.000001)
    cy = min(max(fy, 0.0), ny - 1.000001)
    ix, iy = int(cx), int(cy)
    tx, ty = cx - ix, cy - iy
    v = (1 - ty) * ((1 - tx) * grid[iy, ix, c] + tx * grid[iy, ix + 1, c])
    v += ty * ((1 - tx) * grid[iy + 1, ix, c] + tx * grid[iy + 1, ix + 1, c])
    off = max(abs(fx - cx), abs(fy - cy)) * geo[2]
    return v, off


@njit(cache=True)
def sample(grid: FloatArray, geo: FloatArray, xy: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Every component at points ``xy`` (n, 2): values (n, k) and off-grid distances (n,)."""
    n, k = len(xy), grid.shape[2]
    out = np.empty((n, k))
    off = np.empty(n)
    for i in range(n):
        for c in range(k):
            out[i, c], off[i] = lookup(grid, geo, xy[i, 0], xy[i, 1], c)
    return out, off


def geo_of(origin_m: tuple[float, float], cell_m: float) -> FloatArray:
    return np.array([origin_m[0], origin_m[1], cell_m], dtype=np.float64)


__all__ = ["geo_of", "lookup", "sample"]
