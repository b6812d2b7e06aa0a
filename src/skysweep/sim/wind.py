"""Wind: a mean wind plus gusts that are correlated in space and in time, from a seed.

The gusts live on a coarse grid (cells of half the correlation length) covering the mission.
Each grid update draws white noise, smooths it with a Gaussian kernel of ``length_m`` (so nearby
drones feel nearly the same gust and drones kilometres apart independent ones) and mixes it into
the previous field as a first-order (Ornstein-Uhlenbeck) process with correlation time
``tau_s``. The field's standard deviation per component is ``gust_mps`` everywhere. Drones read
it by bilinear interpolation, in the compiled physics step.

Velocities are (east, north) in m/s, the direction the air moves *to*; positions local metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from skysweep import gridfield
from skysweep.geo import FloatArray
from skysweep.gridfield import geo_of


@dataclass(frozen=True)
class WindParams:
    mean_mps: tuple[float, float] = (0.0, 0.0)
    gust_mps: float = 1.0
    """Standard deviation of each gust component, m/s."""
    length_m: float = 400.0
    """Spatial correlation length of the gusts."""
    tau_s: float = 20.0
    """Correlation time of the gusts."""
    update_s: float = 1.0
    """How often the gust grid moves on."""


class WindField:
    """Gust grid over ``bounds_m`` = (x0, y0, x1, y1); ``grid`` is (ny, nx, 2), m/s."""

    def __init__(
        self,
        params: WindParams,
        bounds_m: tuple[float, float, float, float],
        rng: np.random.Generator,
    ) -> None:
        self.p = params
        self.rng = rng
        self.cell_m = params.length_m / 2.0
        x0, y0, x1, y1 = bounds_m
        self.origin_m = (x0, y0)
        self.nx = max(math.ceil((x1 - x0) / self.cell_m) + 2, 2)
        self.ny = max(math.ceil((y1 - y0) / self.cell_m) + 2, 2)
        self.mean = np.asarray(params.mean_mps, float)
        self._sigma_cells = params.length_m / self.cell_m / 2.0
        # the smoothed noise's variance is the sum of the squared kernel weights: undo it, so
        # the gusts have gust_mps whatever the grid
        probe = np.zeros((9, 9))
        probe[4, 4] = 1.0
        kernel = ndimage.gaussian_filter(probe, self._sigma_cells, mode="constant")
        self._gain = 1.0 / math.sqrt(float((kernel * kernel).sum()))
        self.grid = self._noise() * params.gust_mps
        self.t_s = 0.0

    def _noise(self) -> FloatArray:
        white = self.rng.standard_normal((self.ny, self.nx, 2))
        # smooth across the grid only, not between the two components
        sigma = (self._sigma_cells, self._sigma_cells, 0.0)
        smooth = ndimage.gaussian_filter(white, sigma, mode="wrap")
        smooth *= self._gain
        return smooth

    def advance(self, dt_s: float) -> None:
        """Move the gusts on by ``dt_s`` seconds."""
        if self.p.gust_mps <= 0.0:
            return
        decay = math.exp(-dt_s / self.p.tau_s)
        fresh = self._noise()
        fresh *= self.p.gust_mps * math.sqrt(1.0 - decay * decay)
        self.grid *= decay
        self.grid += fresh
        self.t_s += dt_s

    @property
    def geo(self) -> FloatArray:
        """(x0, y0, cell_m) of the gust grid, as :mod:`skysweep.gridfield` takes it."""
        return geo_of(self.origin_m, self.cell_m)

    def sample(self, xy_m: FloatArray) -> FloatArray:
        """Wind (mean plus gust) at points (n, 2), m/s, (n, 2)."""
        xy = np.ascontiguousarray(np.asarray(xy_m, float).reshape(-1, 2))
        gust, _ = gridfield.sample(self.grid, self.geo, xy)
        return self.mean + gust
