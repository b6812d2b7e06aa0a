"""How good a plan is: coverage, makespan and the physical lower bound on mission time."""

from __future__ import annotations

import numpy as np
import shapely
from numpy.typing import NDArray

from skysweep.footprint import covered_mask
from skysweep.geo import FloatArray
from skysweep.mission import Mission

#: Distances at which the lower bound's area-versus-distance condition is checked.
_BOUND_RADII = 512


def launch_slots(mission: Mission) -> FloatArray:
    """First take-off time of every drone, seconds from mission start.

    Each site launches ``pads`` drones per slot, one slot every ``launch_interval_s``; a site's
    drones take its slots fastest sweep rate first (ties: fleet order).
    """
    fleet = mission.fleet
    out = np.zeros(len(fleet))
    rate = fleet.sweep_rate_m2ps
    for s, site in enumerate(mission.sites):
        members = np.flatnonzero(fleet.site == s)
        order = members[np.argsort(-rate[members], kind="stable")]
        out[order] = (np.arange(len(order)) // site.pads) * site.launch_interval_s
    return out


def site_distances_m(mission: Mission) -> FloatArray:
    """(S,) each launch site's straight distance to the searchable area, metres (0 inside)."""
    return np.asarray(shapely.distance(mission.searchable, shapely.points(mission.site_xy_m)))


def lower_bound_s(
    mission: Mission, samples: FloatArray, launch_s: FloatArray | None = None
) -> float:
    """The smallest T such that, for every r ≥ 0, the searchable area farther than r from every
    launch site is at most Σ_i rate_i · max(0, T − launch_i − 2·max(r, d_i)/v_i).

    ``samples`` stand for the searchable area (:func:`skysweep.geo.sample_points`); the area
    beyond r is the searchable area times the share of samples at r or farther. Checking the
    condition at finitely many r can only lower T, so the bound stays a bound.
    """
    fleet = mission.fleet
    launch = launch_slots(mission) if launch_s is None else launch_s
    sites = mission.site_xy_m
    # nearest site, site by site: no (samples × sites) temporaries
    near2 = np.full(len(samples), np.inf)
    for x, y in sites:
        near2 = np.minimum(near2, (samples[:, 0] - x) ** 2 + (samples[:, 1] - y) ** 2)
    dist = np.sqrt(near2)
    total = float(mission.searchable.area)
    d = site_distances_m(mission)[fleet.site]
    ordered = np.sort(dist)
    # the distances' quantiles (np.quantile's linear rule) read off the one sort
    at = np.linspace(0.0, len(ordered) - 1.0, _BOUND_RADII)
    radii = np.unique(np.interp(at, np.arange(len(ordered)), ordered))
    beyond = total * (len(dist) - np.searchsorted(ordered, radii, side="left")) / len(dist)
    radii = np.concatenate([[0.0], radii])
    beyond = np.concatenate([[total], beyond])
    rate, v = fleet.sweep_rate_m2ps, fleet.speed_mps
    reach = launch[None, :] + 2.0 * np.maximum(radii[:, None], d[None, :]) / v[None, :]
    return finish_bound_s(reach, rate, beyond)


def finish_bound_s(reach_s: FloatArray, rate_m2ps: FloatArray, beyond_m2: FloatArray) -> float:
    """The smallest T ≥ 0 with Σ_i rate_i · max(0, T − reach_ik) ≥ beyond_k for every k:
    ``reach_s`` (K, D) is when drone i can begin sweeping beyond the k-th distance (seconds),
    ``rate_m2ps`` (D,) its sweep rate (> 0), ``beyond_m2`` (K,) the area beyond that distance.

    Exact: each row's left side is piecewise linear in T with a knee at every drone's reach,
    so the drones are taken in order of reach until the area is swept."""
    order = np.argsort(reach_s, axis=1)
    reach = np.take_along_axis(reach_s, order, axis=1)
    rate = np.asarray(rate_m2ps, float)[order]
    rate_sum = np.cumsum(rate, axis=1)
    weighted = np.cumsum(rate * reach, axis=1)
    # swept by the time the j-th drone can begin: rising with j
    swept = reach * rate_sum - weighted
    need = np.asarray(beyond_m2, float)
    # the drones that have begun when the row's area is swept: those whose reach comes first
    j = np.clip((swept < need[:, None]).sum(axis=1), 1, reach.shape[1]) - 1
    rows = np.arange(len(need))
    t = (need + weighted[rows, j]) / rate_sum[rows, j]
    return float(max(0.0, t[need > 0].max(initial=0.0)))


def coverage_fraction(
    samples: FloatArray, tracks: list[tuple[FloatArray, float]]
) -> tuple[float, NDArray[np.bool_]]:
    """Share of the sample points within half a swath of a track, and which ones."""
    if not len(samples):
        return 0.0, np.zeros(0, bool)
    mask = covered_mask(samples, tracks)
    return float(mask.mean()), mask
