"""Confirming a detection: the nearest suitable drone flies a tight pattern over it, then goes on
with its sortie; the operator confirms or dismisses it.

A detection that falls within :func:`merge_radius_m` of one still open (no verdict yet) is the
same object seen again: it adds to that one's count of re-detections and starts nothing new.

The pattern is an IAMSAR expanding square (:func:`skysweep.plan.patterns.expanding_square`)
centred on the reported position, a swath in half-side, legs half a swath apart: every point
within a swath of the report is seen from within a quarter swath, where the camera's detection
rate is near its peak. It is flown at the drone's altitude, so it stays in its band.

Pure functions and plain state; the orchestrator gives the orders and the safety kernel checks
them like any route. Positions are local metres (x east, y north).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from skysweep.geo import FloatArray
from skysweep.plan.patterns import expanding_square

#: A detection is given up on (no drone could fly the pattern) after this long, s.
ASSIGN_TIMEOUT_S = 120.0


@dataclass
class Confirmation:
    """One detection being confirmed (orchestrator state, so mutable)."""

    number: int
    """The detection's number (its ``detection`` event)."""
    xy_m: tuple[float, float]
    """The reported position, local metres."""
    reported_s: float
    drone: int = -1
    """The drone flying the pattern (fleet index), -1 until one took it."""
    started_s: float | None = None
    upload: int = 0
    """Which of the drone's route uploads carries the pattern: a later one replaced it."""
    flown_s: float | None = None
    redetections: int = 0
    """Detections of the same object since, by any drone."""
    tried: set[int] = field(default_factory=set)
    """Drones the safety kernel would not let fly it (energy, separation)."""
    gave_up: bool = False

    @property
    def waiting(self) -> bool:
        """Still looking for a drone to fly it."""
        return self.drone < 0 and not self.gave_up


def merge_radius_m(swath_m: float) -> float:
    """Two reports closer than this (metres) are taken for one object: the camera's position
    error is a few metres, and one pass sees an object from up to half a swath away."""
    return max(30.0, float(swath_m))


def pattern_xy(at_m: FloatArray, swath_m: float) -> FloatArray:
    """The tight pattern over a report at ``at_m``: (k, 2) local metres, from the report out."""
    return expanding_square(np.asarray(at_m, float), float(swath_m), 0.5 * float(swath_m)).track


def nearest_drone(
    pos_m: FloatArray, eligible: NDArray[np.bool_], at_m: FloatArray, tried: set[int]
) -> int | None:
    """The eligible drone nearest to ``at_m`` (horizontally) not in ``tried``, or None."""
    ok = np.asarray(eligible, bool).copy()
    if tried:
        ok[list(tried)] = False
    if not ok.any():
        return None
    d = np.hypot(pos_m[:, 0] - at_m[0], pos_m[:, 1] - at_m[1])
    return int(np.argmin(np.where(ok, d, np.inf)))


def open_near(
    confirmations: dict[int, Confirmation],
    verdicts: dict[int, str],
    at_m: FloatArray,
    radius_m: float,
) -> Confirmation | None:
    """The open confirmation (no verdict yet) nearest to ``at_m`` within ``radius_m``, if any."""
    best: Confirmation | None = None
    best_d = radius_m
    for c in confirmations.values():
        if c.number in verdicts:
            continue
        d = float(np.hypot(c.xy_m[0] - at_m[0], c.xy_m[1] - at_m[1]))
        if d <= best_d:
            best, best_d = c, d
    return best
