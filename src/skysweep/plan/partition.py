"""Split the searchable area into one compact cell per drone, so that all drones finish together.

Recursive bisection over a sampled area: a region and a group of drones are cut in two by a line
across the region's long axis; each half goes to the half of the group whose launch sites lie on
its side, and the cut is placed where the two halves' predicted finish times are equal. A
group's predicted finish time for a region of area A is

    T = (A + Σ rate_i · (launch_i + 2 · r̄_i / v_i)) / Σ rate_i

with rate_i = speed·swath, launch_i the drone's launch slot and r̄_i the mean distance from its
site to the region: a far cell costs its drone a longer round trip, so it gets less area. The
cuts are straight lines, so every cell is the searchable area clipped to a convex polygon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray

from skysweep.geo import FloatArray

#: Half-extent of the clip box that stands for a half-plane, metres (far beyond any mission).
_FAR_M = 1e7


@dataclass(frozen=True)
class Cells:
    """One cell per drone: ``regions[i]`` is drone i's share (local metres, may be empty)."""

    regions: tuple[shapely.Geometry, ...]
    predicted_finish_s: FloatArray


def partition(
    region: shapely.Geometry,
    samples: FloatArray,
    sample_area_m2: float,
    site_xy: FloatArray,
    drone_site: NDArray[np.intp],
    rate_m2ps: FloatArray,
    speed_mps: FloatArray,
    launch_s: FloatArray,
) -> Cells:
    """Cells for every drone; ``samples`` are points standing for ``sample_area_m2`` each."""
    n = len(rate_m2ps)
    # distance of every sample to every site: (n_samples, n_sites)
    dist = np.hypot(
        samples[:, None, 0] - site_xy[None, :, 0], samples[:, None, 1] - site_xy[None, :, 1]
    )
    regions: list[shapely.Geometry] = [shapely.Polygon()] * n
    finish = np.zeros(n)
    stack: list[tuple[shapely.Geometry, NDArray[np.intp], NDArray[np.intp]]] = [
        (region, np.arange(len(samples)), np.arange(n))
    ]
    while stack:
        reg, pts, drones = stack.pop()
        if len(drones) == 1:
            d = int(drones[0])
            regions[d] = reg
            finish[d] = (
                _finish(
                    pts, drones, dist, drone_site, rate_m2ps, speed_mps, launch_s, sample_area_m2
                )[-1]
                if len(pts)
                else launch_s[d]
            )
            continue
        axis = _long_axis(samples[pts]) if len(pts) > 2 else np.array([1.0, 0.0])
        t = samples[pts] @ axis
        order = np.argsort(t, kind="stable")
        pts, t = pts[order], t[order]
        # the group half whose sites lie lower on the axis takes the lower half of the region
        site_t = site_xy[drone_site[drones]] @ axis
        drones = drones[np.lexsort((-rate_m2ps[drones], site_t))]
        g1, g2 = drones[: len(drones) // 2], drones[len(drones) // 2 :]
        k = _balanced_cut(
            pts, g1, g2, dist, drone_site, rate_m2ps, speed_mps, launch_s, sample_area_m2
        )
        if len(pts) == 0:
            cut = 0.0
        elif k == 0:
            cut = t[0] - 1.0
        elif k == len(pts):
            cut = t[-1] + 1.0
        else:
            cut = 0.5 * (t[k - 1] + t[k])
        lo, hi = _halves(reg, axis, cut)
        stack.append((lo, pts[:k], g1))
        stack.append((hi, pts[k:], g2))
    return Cells(tuple(regions), finish)


def _finish(
    pts: NDArray[np.intp],
    group: NDArray[np.intp],
    dist: FloatArray,
    drone_site: NDArray[np.intp],
    rate: FloatArray,
    speed: FloatArray,
    launch: FloatArray,
    cell_area: float,
) -> FloatArray:
    """Predicted finish time of ``group`` sweeping the first k of ``pts``, for k = 0..len(pts)."""
    k = np.arange(len(pts) + 1)
    sites = np.unique(drone_site[group])
    # running mean distance from each of the group's sites to the first k points
    csum = np.vstack([np.zeros(len(sites)), np.cumsum(dist[np.ix_(pts, sites)], axis=0)])
    mean = csum / np.maximum(k, 1)[:, None]
    site_col = np.searchsorted(sites, drone_site[group])
    # Σ_i rate_i·(launch_i + 2·r̄_site(i)/v_i), summed per site so no (points × drones) array forms
    per_site = np.bincount(site_col, rate[group] / speed[group], minlength=len(sites))
    transit = float(rate[group] @ launch[group]) + 2.0 * (mean @ per_site)
    return (k * cell_area + transit) / rate[group].sum()


def _balanced_cut(
    pts: NDArray[np.intp],
    g1: NDArray[np.intp],
    g2: NDArray[np.intp],
    dist: FloatArray,
    drone_site: NDArray[np.intp],
    rate: FloatArray,
    speed: FloatArray,
    launch: FloatArray,
    cell_area: float,
) -> int:
    """How many of the sorted ``pts`` go to ``g1`` so that both halves finish together."""
    if len(pts) == 0:
        return 0
    t1 = _finish(pts, g1, dist, drone_site, rate, speed, launch, cell_area)
    t2 = _finish(pts[::-1], g2, dist, drone_site, rate, speed, launch, cell_area)[::-1]
    return int(np.argmin(np.maximum(t1, t2)))


def _long_axis(xy: FloatArray) -> FloatArray:
    """Unit vector of the principal axis of a point cloud."""
    centred = xy - xy.mean(axis=0)
    cov = centred.T @ centred
    w, v = np.linalg.eigh(cov)
    return v[:, int(np.argmax(w))]


def _halves(
    reg: shapely.Geometry, axis: FloatArray, cut: float
) -> tuple[shapely.Geometry, shapely.Geometry]:
    """``reg`` split by the line {p : p·axis = cut}: the part below, the part above."""
    normal = np.array([-axis[1], axis[0]])
    base = axis * cut
    corners_lo = [
        base + normal * _FAR_M,
        base - normal * _FAR_M,
        base - normal * _FAR_M - axis * _FAR_M,
        base + normal * _FAR_M - axis * _FAR_M,
    ]
    corners_hi = [
        base + normal * _FAR_M,
        base - normal * _FAR_M,
        base - normal * _FAR_M + axis * _FAR_M,
        base + normal * _FAR_M + axis * _FAR_M,
    ]
    lo = shapely.intersection(reg, shapely.Polygon(corners_lo))
    hi = shapely.intersection(reg, shapely.Polygon(corners_hi))
    return lo, hi
