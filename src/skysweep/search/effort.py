"""Optimal search effort: Stone's allocation for the exponential detection function.

A cell ``i`` of area ``a_i`` (m²) holds the searched-for person with probability ``p_i`` (its
POA). Effort ``z_i`` is the area swept in it (m²: sweep width × track length flown over it),
its coverage ``c_i = z_i / a_i``, and with the exponential (random-search) detection function
the probability of detecting the person there, if there, is ``POD_i = 1 − exp(−c_i)``. The
probability of success of an allocation is ``POS = Σ p_i · POD_i``.

For a total effort ``E = Σ z_i`` the allocation that maximises POS (Stone, *Theory of Optimal
Search*, 1975, §2.2; Koopman's result for the exponential function) spends on every cell whose
density ``d_i = p_i / a_i`` is above a threshold ``λ``:

    z_i = a_i · ln(d_i / λ)  where d_i > λ, else 0,

with ``λ`` set by ``Σ z_i = E``: the search levels the posterior density of the cells it
covers down to ``λ`` (a water-filling). Travel is not part of this (the planner counts it);
for a circular normal prior of standard deviation ``σ`` (m) the optimum has the closed form
of :func:`circular_normal_pos`.

Pure functions over numpy arrays, no I/O.
"""

from __future__ import annotations

import math

import numpy as np

from skysweep.errors import InfeasibleError
from skysweep.geo import FloatArray


def optimal_effort(poa: FloatArray, area_m2: FloatArray, effort_m2: float) -> FloatArray:
    """Stone's optimal effort per cell (m² swept) for ``effort_m2`` in all.

    ``poa``: probability of the person in each cell (any shape; need not sum to 1);
    ``area_m2``: each cell's searchable area (same shape, or a scalar); cells with no area or
    no probability get nothing.
    """
    p = np.asarray(poa, float)
    a = np.broadcast_to(np.asarray(area_m2, float), p.shape)
    if effort_m2 < 0 or not math.isfinite(effort_m2):
        raise InfeasibleError(f"effort must be a finite number of m², not {effort_m2!r}")
    if np.any(p < 0) or np.any(a < 0):
        raise InfeasibleError("probabilities and cell areas must not be negative")
    out = np.zeros(p.shape)
    live = (p > 0) & (a > 0)
    if effort_m2 == 0 or not live.any():
        return out
    pl, al = p[live], a[live]
    ln_d = np.log(pl / al)
    order = np.argsort(-ln_d, kind="stable")
    ln_d_sorted, a_sorted = ln_d[order], al[order]
    cum_a = np.cumsum(a_sorted)
    ln_lam = (np.cumsum(a_sorted * ln_d_sorted) - effort_m2) / cum_a
    # the top k cells are searched as long as the threshold stays below the k-th density
    k = int(np.flatnonzero(ln_lam < ln_d_sorted)[-1]) + 1
    z = np.zeros(len(pl))
    z[order[:k]] = a_sorted[:k] * (ln_d_sorted[:k] - ln_lam[k - 1])
    out[live] = z
    return out


def pod(effort_m2: FloatArray, area_m2: FloatArray) -> FloatArray:
    """Probability of detection in each cell, if the person is there: ``1 − exp(−z / a)``
    (0 in a cell with no area)."""
    z = np.asarray(effort_m2, float)
    a = np.broadcast_to(np.asarray(area_m2, float), z.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        cover = np.where(a > 0, z / np.where(a > 0, a, 1.0), 0.0)
    return -np.expm1(-cover)


def pos(poa: FloatArray, effort_m2: FloatArray, area_m2: FloatArray) -> float:
    """Probability of success of an allocation: ``Σ POA_i · POD_i``."""
    return float(np.sum(np.asarray(poa, float) * pod(effort_m2, area_m2)))


def circular_normal_pos(effort_m2: float, sigma_m: float) -> float:
    """Stone's optimal POS for a circular normal prior of standard deviation ``sigma_m``
    (metres) and ``effort_m2`` swept in all, with exponential detection and no travel:
    ``P* = 1 − (1 + H)·e^(−H)``, ``H = √(E / (π σ²))``."""
    if sigma_m <= 0:
        raise InfeasibleError(f"sigma must be positive, not {sigma_m!r} m")
    h = math.sqrt(max(effort_m2, 0.0) / (math.pi * sigma_m**2))
    return 1.0 - (1.0 + h) * math.exp(-h)


def posterior(poa: FloatArray, effort_m2: FloatArray, area_m2: FloatArray) -> FloatArray:
    """Bayes' rule after an unsuccessful search: each cell's probability of containment
    becomes ``POC_i · (1 − POD_i) / (1 − POS)``. What ``poa`` leaves out (``1 − Σ poa``: the
    rest of the world, outside the cells) is not searched and grows by the same factor, so the
    cells and the rest still sum to 1."""
    p = np.asarray(poa, float)
    miss = p * (1.0 - pod(effort_m2, area_m2))
    total = float(p.sum())
    left = float(miss.sum()) + (1.0 - total if total <= 1.0 else 0.0)
    if left <= 0:
        raise InfeasibleError("the search cannot have missed: every cell was certain to detect")
    return miss / left


def swept_effort(
    grid_x0_m: float,
    grid_y0_m: float,
    cell_m: float,
    shape: tuple[int, int],
    a_m: FloatArray,
    b_m: FloatArray,
    swath_m: FloatArray,
) -> FloatArray:
    """Effort (m² swept) per cell of a grid by straight tracks from ``a_m[k]`` to ``b_m[k]``
    ((k, 2) local metres) each flown with a sensor ``swath_m[k]`` wide: every track is cut into
    steps of a quarter cell, each counted, swath × step, in the cell its middle lies in."""
    a = np.asarray(a_m, float).reshape(-1, 2)
    b = np.asarray(b_m, float).reshape(-1, 2)
    w = np.broadcast_to(np.asarray(swath_m, float), (len(a),))
    if not len(a):
        return np.zeros(shape)
    length = np.hypot(*(b - a).T)
    steps = np.maximum(1, np.ceil(length / (cell_m / 4.0))).astype(np.intp)
    seg = np.repeat(np.arange(len(a)), steps)
    start = np.cumsum(steps) - steps
    t = (np.arange(len(seg)) - start[seg] + 0.5) / steps[seg]
    p = a[seg] + (b[seg] - a[seg]) * t[:, None]
    z = w[seg] * length[seg] / steps[seg]
    return cell_sums(grid_x0_m, grid_y0_m, cell_m, shape, p[:, 0], p[:, 1], z)


def cell_sums(
    grid_x0_m: float,
    grid_y0_m: float,
    cell_m: float,
    shape: tuple[int, int],
    x_m: FloatArray,
    y_m: FloatArray,
    weights: FloatArray,
) -> FloatArray:
    """(ny, nx) sum of the ``weights`` of the points (local metres) in each cell of a grid of
    ``cell_m`` squares from (``grid_x0_m``, ``grid_y0_m``); points off the grid are dropped."""
    ny, nx = shape
    i = np.floor((np.asarray(x_m) - grid_x0_m) / cell_m).astype(np.intp)
    j = np.floor((np.asarray(y_m) - grid_y0_m) / cell_m).astype(np.intp)
    on = (i >= 0) & (i < nx) & (j >= 0) & (j < ny)
    sums = np.bincount(j[on] * nx + i[on], weights=np.asarray(weights)[on], minlength=ny * nx)
    return sums.astype(float).reshape(ny, nx)
