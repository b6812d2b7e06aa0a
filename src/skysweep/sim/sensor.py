"""The search sensor: who sees what, when, with how sure a report, as a pure vectorised model.

Detection model
---------------
Detection of one object by one drone is a Poisson process whose instantaneous rate depends only
on the horizontal range ``r`` (metres) between the drone and the object::

    lambda(r) = lam0 * exp(-r**2 / (2 * sigma**2))            [1/s]

A straight pass at ground speed ``v`` with closest approach (lateral distance) ``x`` integrates
the rate along the track, ``integral lambda(sqrt(x**2 + (v t)**2)) dt``, which gives the lateral
range curve, the probability of detecting the object on that one pass::

    P(x) = 1 - exp(-A * exp(-x**2 / (2 * sigma**2)))
    A    = lam0 * sigma * sqrt(2 * pi) / v                     ("peak exposure", dimensionless)

and the sweep width ``W = integral of P(x) over x in (-inf, inf)`` (metres): the width of a
perfect "cookie cutter" sensor that detects as many objects. ``W / track_spacing`` is the
coverage of a parallel sweep, the number search planners reason with.

The camera is triggered by distance flown, as survey cameras are, so the number of looks at an
object per pass, and with it ``A``, does not depend on speed; ``lam0`` scales with ``v`` instead.
A hovering drone still takes pictures, so the rate uses ``max(v, 1 m/s)``.

Altitude and target kind
------------------------
With the drone at altitude ``h`` (metres above ground), the mission's search altitude ``h_s``
and the swath ``s`` the plan was made for (the camera footprint width at ``h_s``, metres)::

    sigma(h) = SIGMA_PER_SWATH * s * (h / h_s) * size
    A(h)     = min(PEAK_EXPOSURE * (h_s / h)**2 * contrast, MAX_PEAK_EXPOSURE)

The footprint grows linearly with altitude, while the number of pixels on the object falls with
the square of altitude. Below ``MIN_ALT_M`` (take-off and landing) the sensor is off. Each kind of
target (:data:`TARGET_KINDS`) scales ``sigma`` by its size and ``A`` by its contrast.

Frames and units: positions are local metres, x east and y north (see :mod:`skysweep.geo`);
times in seconds; speeds in m/s; altitudes in metres above ground.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from scipy.integrate import quad

from skysweep.geo import FloatArray

# Calibrated so that a person at the search altitude has a sweep width of 0.706 swath: with
# PEAK_EXPOSURE = 3 the integral of P(x) is 3.362 sigma, and 0.21 * 3.362 = 0.706. SAR literature
# puts the probability of detecting a person in one camera sweep at a good track spacing around
# 0.7-0.8.
#: Width (1 sigma) of the detection-rate profile at the search altitude, as a fraction of swath.
SIGMA_PER_SWATH = 0.21
# 1 - exp(-3) = 0.95: even straight below the camera a person is missed one pass in twenty
# (canopy, posture, motion blur), so a single pass never quite settles an area.
#: Peak exposure A of a person seen at the search altitude, dimensionless.
PEAK_EXPOSURE = 3.0
# Flying low does not make the detector better than certain; the cap also keeps the mass lost
# beyond the CUTOFF_SIGMAS pair cut-off below MAX_PEAK_EXPOSURE * exp(-CUTOFF_SIGMAS**2 / 2) = 8e-4.
#: Upper bound on the peak exposure, whatever the altitude or target.
MAX_PEAK_EXPOSURE = 20.0
# Take-off and landing: props wash, the gimbal is parked and the ground is a few metres away.
#: Below this altitude (metres above ground) the sensor reports nothing.
MIN_ALT_M = 5.0
# exp(-4.5**2 / 2) = 4e-5 of the peak rate: pairs farther apart than this cannot matter.
#: Drone-object pairs beyond this many sigmas are not considered in :func:`sense`.
CUTOFF_SIGMAS = 4.5
# 512 x 512 booleans is 256 kB to clear per step: cheap next to one pass over 10,000 drones.
#: Cells per side, at most, of the coarse grid that screens drones for nearby targets.
SCREEN_CELLS = 512
#: Beta distribution of the confidence of a true detection (mean 0.8).
TRUE_CONFIDENCE_AB = (8.0, 2.0)
#: Beta distribution of the confidence of a false alarm (mean 0.33).
FALSE_CONFIDENCE_AB = (2.0, 4.0)

_SQRT_2PI = math.sqrt(2.0 * math.pi)
_NEIGHBOURS = np.array([(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)], np.intp)


@dataclass(frozen=True)
class TargetKind:
    """How a kind of object looks to the camera, relative to a person.

    ``size`` multiplies the width ``sigma`` of the detection profile (a larger object is still
    recognisable near the edge of the frame and at oblique views); ``contrast`` multiplies the
    peak exposure ``A`` (a brighter, more unusual object is found in fewer looks).
    """

    name: str
    size: float
    contrast: float


#: The target kinds the simulator knows. Sweep widths at the search altitude, in swaths:
#: person 0.71, life_raft 0.87, vehicle 1.02.
TARGET_KINDS: dict[str, TargetKind] = {
    k.name: k
    for k in (
        TargetKind("person", size=1.0, contrast=1.0),
        # Orange on water: far more contrast than a person, a little larger.
        TargetKind("life_raft", size=1.05, contrast=1.6),
        # Larger and with hard edges and colours no vegetation has.
        TargetKind("vehicle", size=1.1, contrast=2.5),
    )
}


def _kind(kind: str) -> TargetKind:
    try:
        return TARGET_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown target kind {kind!r}; known: {sorted(TARGET_KINDS)}") from None


def _profile(
    swath_m: ArrayLike,
    search_alt_m: float,
    alt_m: ArrayLike,
    size: FloatArray | float,
    contrast: FloatArray | float,
    min_alt_m: float,
) -> tuple[FloatArray, FloatArray]:
    """``(sigma_m, peak_exposure)`` for broadcastable arrays; the one place the model lives."""
    # Clamped so that sigma stays positive (and finite A) for a drone on the ground; its A is
    # zeroed below anyway.
    alt = np.asarray(alt_m, np.float64)
    h = np.maximum(alt, min_alt_m)
    sigma = SIGMA_PER_SWATH * np.asarray(swath_m, np.float64) * (h / search_alt_m) * size
    peak = np.minimum(PEAK_EXPOSURE * (search_alt_m / h) ** 2 * contrast, MAX_PEAK_EXPOSURE)
    peak = np.where(alt >= min_alt_m, peak, 0.0)
    return np.asarray(sigma, np.float64), np.asarray(peak, np.float64)


@dataclass(frozen=True)
class LateralRange:
    """The detection profile of one drone for one kind of object, at one altitude.

    ``peak_exposure`` is ``A`` (dimensionless) and ``sigma_m`` the width of the rate profile in
    metres; see the module docstring.
    """

    peak_exposure: float
    sigma_m: float

    def pod(self, x_m: ArrayLike) -> NDArray[np.float64]:
        """Probability of detection on one straight pass at lateral distance ``x_m`` (metres)."""
        x = np.asarray(x_m, np.float64)
        # expm1 keeps P accurate far out in the tail where it is ~A * exp(...), not 0.
        return -np.expm1(-self.peak_exposure * np.exp(-0.5 * (x / self.sigma_m) ** 2))

    def sweep_width_m(self) -> float:
        """Sweep width W in metres: the integral of :meth:`pod` over all lateral distances."""
        a = self.peak_exposure
        if a <= 0.0:
            return 0.0
        # Integrate in units of sigma on [0, u_max]; beyond u_max the integrand is below
        # exp(-40) relative and the tail is negligible. The knee of P sits at sqrt(2 ln A).
        u_max = math.sqrt(2.0 * (max(math.log(a), 0.0) + 40.0))
        knee = math.sqrt(2.0 * math.log(a)) if a > 1.0 else 1.0
        half, _ = quad(
            lambda u: -math.expm1(-a * math.exp(-0.5 * u * u)),
            0.0,
            u_max,
            points=[knee],
            epsabs=1e-12,
            epsrel=1e-10,
            limit=200,
        )
        return 2.0 * self.sigma_m * half

    def rate_per_s(self, r_m: ArrayLike, speed_mps: float) -> NDArray[np.float64]:
        """Detection rate lambda(r), 1/s, at horizontal range ``r_m`` (metres).

        The rate that makes a straight pass at ground speed ``speed_mps`` (m/s) produce this
        lateral range curve.
        """
        r = np.asarray(r_m, np.float64)
        lam0 = self.peak_exposure * speed_mps / (self.sigma_m * _SQRT_2PI)
        return np.asarray(lam0 * np.exp(-0.5 * (r / self.sigma_m) ** 2), np.float64)


def lateral_range(
    swath_m: float,
    search_alt_m: float,
    alt_m: float,
    kind: str = "person",
    *,
    min_alt_m: float = MIN_ALT_M,
) -> LateralRange:
    """The detection profile of a drone of swath ``swath_m`` (metres, planned at
    ``search_alt_m``) flying at ``alt_m`` (metres above ground) for objects of ``kind``.

    Below ``min_alt_m`` the sensor is off: ``peak_exposure`` is 0.
    """
    if not swath_m > 0.0 or not search_alt_m > 0.0:
        raise ValueError(f"swath ({swath_m}) and search altitude ({search_alt_m}) must be > 0")
    k = _kind(kind)
    sigma, peak = _profile(swath_m, search_alt_m, alt_m, k.size, k.contrast, min_alt_m)
    return LateralRange(peak_exposure=float(peak), sigma_m=float(sigma))


@dataclass(frozen=True)
class Targets:
    """The objects to be found (simulator truth): positions and kinds."""

    xy_m: NDArray[np.float64]
    """(m, 2) local metres, x east y north."""
    kind: tuple[str, ...]
    """One of :data:`TARGET_KINDS` per target."""

    def __post_init__(self) -> None:
        xy = np.asarray(self.xy_m, np.float64).reshape(-1, 2)
        if len(xy) != len(self.kind):
            raise ValueError(f"{len(xy)} target positions but {len(self.kind)} kinds")
        for k in set(self.kind):
            _kind(k)
        object.__setattr__(self, "xy_m", xy)
        object.__setattr__(self, "kind", tuple(self.kind))

    def __len__(self) -> int:
        return len(self.kind)

    @classmethod
    def empty(cls) -> Targets:
        return cls(np.zeros((0, 2)), ())

    @cached_property
    def _size(self) -> FloatArray:
        return np.array([TARGET_KINDS[k].size for k in self.kind], np.float64)

    @cached_property
    def _contrast(self) -> FloatArray:
        return np.array([TARGET_KINDS[k].contrast for k in self.kind], np.float64)


@dataclass(frozen=True)
class Detections:
    """One row per detection in a sensor step (struct of arrays)."""

    drone: NDArray[np.intp]
    """Index of the detecting drone."""
    xy_m: NDArray[np.float64]
    """(k, 2) reported position of the object, local metres (true position + position error)."""
    confidence: NDArray[np.float64]
    """0-1, the detector's score."""
    target: NDArray[np.intp]
    """Index into :class:`Targets`, -1 for a false alarm (simulator truth only)."""

    def __len__(self) -> int:
        return len(self.drone)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros(0, np.intp), np.zeros((0, 2)), np.zeros(0), np.zeros(0, np.intp))


@dataclass(frozen=True)
class SensorParams:
    """Mission-wide sensor settings."""

    search_alt_m: float
    """Altitude (metres above ground) the swaths were planned for."""
    false_alarms_per_h: float = 0.5
    """False alarms per drone-hour of sensing."""
    position_error_m: float = 5.0
    """1-sigma error, per axis, of a reported object position, metres."""
    min_alt_m: float = MIN_ALT_M
    """Below this altitude (metres above ground) the sensor is off."""


def _pairs_within(
    a_xy: FloatArray, b_xy: FloatArray, radius: FloatArray, active: NDArray[np.bool_]
) -> tuple[NDArray[np.intp], NDArray[np.intp], FloatArray]:
    """Pairs ``(i, j, r**2)`` of active points ``a_i`` and points ``b_j`` with
    ``r = |a_i - b_j| <= radius_i``, sorted by ``(i, j)``.

    Time is linear in ``len(a) + len(b)`` plus the pairs found. For 10,000 drones and 10 targets
    a dense distance table (several passes over 100,000 pairs) or k-d trees rebuilt every step
    cost several times more than this screen-then-join.
    """
    no_pairs = (np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0))
    # The margin keeps a pair exactly ``c`` apart within one cell of each other despite rounding.
    c = float(np.max(radius, where=active, initial=0.0)) * (1.0 + 1e-6)
    if len(b_xy) == 0 or not c > 0.0:
        return no_pairs
    lo = b_xy.min(axis=0) - c
    extent = b_xy.max(axis=0) + c - lo

    # Screen: a coarse occupancy grid over the targets' bounding box, cells at least ``c`` wide,
    # marks the 3 x 3 cells around each target. Most drones fail the box test and cost a few
    # comparisons; the grid stays small however far apart the targets are.
    cell = max(c, float(extent.max()) / SCREEN_CELLS)
    shape = (extent // cell).astype(np.intp) + 1
    grid = np.zeros(shape, bool)
    tc = ((b_xy - lo) // cell).astype(np.intp)
    nb = np.clip((tc[:, None, :] + _NEIGHBOURS).reshape(-1, 2), 0, shape - 1)
    grid[nb[:, 0], nb[:, 1]] = True
    u = (a_xy[:, 0] - lo[0]) / cell
    v = (a_xy[:, 1] - lo[1]) / cell
    cand = np.flatnonzero(active & (u >= 0.0) & (u < shape[0]) & (v >= 0.0) & (v < shape[1]))
    cand = cand[grid[u[cand].astype(np.intp), v[cand].astype(np.intp)]]
    if len(cand) == 0:
        return no_pairs

    # Join: cells ``c`` wide, keyed exactly; each candidate meets the targets whose 3 x 3
    # neighbourhood holds its cell. Cells are offset by one so that neighbours are >= 0.
    # Candidates may lie up to one coarse cell past the box: ny leaves room so no keys collide.
    ny = int((extent[1] + cell) // c) + 4
    tc = ((b_xy - lo) // c).astype(np.int64) + 1
    nb = (tc[:, None, :] + _NEIGHBOURS).reshape(-1, 2)
    # Stable, and the neighbours are laid out target by target: equal keys stay in target order.
    order = np.argsort(nb[:, 0] * ny + nb[:, 1], kind="stable")
    keys = (nb[:, 0] * ny + nb[:, 1])[order]
    dc = ((a_xy[cand] - lo) // c).astype(np.int64) + 1
    dk = dc[:, 0] * ny + dc[:, 1]
    first = np.searchsorted(keys, dk, "left")
    count = np.searchsorted(keys, dk, "right") - first
    i = np.repeat(cand, count)
    run_start = np.repeat(np.cumsum(count) - count, count)
    j = (order[np.repeat(first, count) + np.arange(len(i)) - run_start] // 9).astype(np.intp)
    d = a_xy[i] - b_xy[j]
    r2 = np.einsum("ij,ij->i", d, d)
    keep = r2 <= radius[i] ** 2
    return i[keep], j[keep], r2[keep]


def sense(
    targets: Targets,
    drone_xy_m: NDArray[np.float64],
    drone_alt_m: NDArray[np.float64],
    drone_speed_mps: NDArray[np.float64],
    sensing: NDArray[np.bool_],
    swath_m: NDArray[np.float64],
    params: SensorParams,
    dt_s: float,
    rng: np.random.Generator,
) -> Detections:
    """One sensor step of ``dt_s`` seconds for the whole fleet.

    Arrays have one row per drone: ``drone_xy_m`` (n, 2) true horizontal positions in local
    metres, ``drone_alt_m`` metres above ground, ``drone_speed_mps`` ground speed, ``sensing``
    whether the sensor is on (airborne and alive), ``swath_m`` each drone's planned swath.

    Every sensing drone at or above ``params.min_alt_m`` detects each object within
    ``CUTOFF_SIGMAS`` sigmas with probability ``1 - exp(-lambda(r) * dt_s)``, under its own
    detection profile; then false alarms arrive as a Poisson process at
    ``params.false_alarms_per_h`` per sensing drone-hour, each uniformly placed within half a
    swath of a random sensing drone. True detections come first, in (drone, target) order.

    Random numbers are drawn from ``rng`` in a fixed order (pair uniforms, true-detection
    confidences, position errors, false-alarm count, their drones, positions, confidences), so
    the same generator state gives the same detections.
    """
    alt = np.asarray(drone_alt_m, np.float64)
    active = np.asarray(sensing, bool) & (alt >= params.min_alt_m)
    n_on = int(np.count_nonzero(active))
    if n_on == 0:
        return Detections.empty()
    xy = np.asarray(drone_xy_m, np.float64).reshape(-1, 2)
    swath = np.asarray(swath_m, np.float64)
    h_s, min_alt = params.search_alt_m, params.min_alt_m

    drone_parts: list[NDArray[np.intp]] = []
    xy_parts: list[FloatArray] = []
    conf_parts: list[FloatArray] = []
    target_parts: list[NDArray[np.intp]] = []

    if len(targets):
        # sigma for the largest kind present, without _profile's extra passes over the fleet.
        reach = CUTOFF_SIGMAS * SIGMA_PER_SWATH * targets._size.max() / h_s
        radius = reach * swath * np.maximum(alt, min_alt)
        i, j, r2 = _pairs_within(xy, targets.xy_m, radius, active)
        sigma, peak = _profile(
            swath[i], h_s, alt[i], targets._size[j], targets._contrast[j], min_alt
        )
        # A hovering drone keeps taking pictures: rate as if passing at walking pace.
        speed = np.maximum(np.asarray(drone_speed_mps, np.float64)[i], 1.0)
        lam = peak * speed / (sigma * _SQRT_2PI) * np.exp(-0.5 * r2 / (sigma * sigma))
        p = -np.expm1(-lam * dt_s)
        hit = rng.random(len(i)) < p
        i, j = i[hit], j[hit]
        conf = rng.beta(*TRUE_CONFIDENCE_AB, size=len(i))
        err = rng.normal(0.0, params.position_error_m, size=(len(i), 2))
        drone_parts.append(i)
        xy_parts.append(targets.xy_m[j] + err)
        conf_parts.append(conf)
        target_parts.append(j)

    n_fa = int(rng.poisson(params.false_alarms_per_h * n_on * dt_s / 3600.0))
    if n_fa:
        who = np.flatnonzero(active)[rng.integers(n_on, size=n_fa)]
        u = rng.random((n_fa, 2))
        # sqrt(u) makes the points uniform over the disc's area, not crowded at its centre.
        rho = 0.5 * swath[who] * np.sqrt(u[:, 0])
        theta = 2.0 * np.pi * u[:, 1]
        drone_parts.append(who)
        xy_parts.append(xy[who] + np.column_stack([rho * np.cos(theta), rho * np.sin(theta)]))
        conf_parts.append(rng.beta(*FALSE_CONFIDENCE_AB, size=n_fa))
        target_parts.append(np.full(n_fa, -1, np.intp))

    if not drone_parts:
        return Detections.empty()
    return Detections(
        drone=np.concatenate(drone_parts).astype(np.intp),
        xy_m=np.concatenate(xy_parts).reshape(-1, 2),
        confidence=np.concatenate(conf_parts),
        target=np.concatenate(target_parts).astype(np.intp),
    )


def place_targets(
    region: shapely.Geometry, kinds: Sequence[str], rng: np.random.Generator
) -> Targets:
    """One target of each of ``kinds``, uniformly at random inside ``region`` (local metres).

    Raises ValueError if the region is empty or has no area.
    """
    if region.is_empty or not region.area > 0.0:
        raise ValueError("cannot place targets in an empty region")
    for k in set(kinds):
        _kind(k)
    m = len(kinds)
    x0, y0, x1, y1 = region.bounds
    accept = region.area / ((x1 - x0) * (y1 - y0))
    found: list[FloatArray] = []
    n_found = 0
    while n_found < m:
        # Enough candidates for the expected acceptance rate, plus slack, to finish in one round.
        batch = int(1.2 * (m - n_found) / accept) + 16
        pts = rng.uniform((x0, y0), (x1, y1), size=(batch, 2))
        pts = pts[shapely.contains_xy(region, pts[:, 0], pts[:, 1])]
        found.append(pts)
        n_found += len(pts)
    xy = np.concatenate(found)[:m] if found else np.zeros((0, 2))
    return Targets(xy, tuple(kinds))
