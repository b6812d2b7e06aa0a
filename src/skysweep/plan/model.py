"""What a plan is: sorties per drone, each a 3-D path with the kind of every leg."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property

import numpy as np
import shapely
from numpy.typing import NDArray

from skysweep.geo import FloatArray
from skysweep.mission import Mission


class Leg(IntEnum):
    """What a drone does on a leg of its path; the executor's flight phase follows from it."""

    CLIMB = 0
    TRANSIT = 1
    SWEEP = 2
    RETURN = 3
    DESCEND = 4


# plain ints for hot paths: Python 3.11 looks enum members up through a slow __getattr__
SWEEP_LEG = int(Leg.SWEEP)


@dataclass(frozen=True)
class Sortie:
    """One flight on one battery, pad to pad.

    ``path`` is (n, 3): x east, y north in the mission's local frame (metres) and altitude above
    the launch site (metres); it starts and ends on the pad at altitude 0. ``legs[k]`` is the
    kind of the leg from ``path[k]`` to ``path[k + 1]``.
    """

    drone: int
    number: int
    launch_s: float
    path: FloatArray
    legs: NDArray[np.int8]
    duration_s: float
    energy: float
    """Planned battery use, fraction of a full pack (head-wind on the way home)."""

    @property
    def land_s(self) -> float:
        return self.launch_s + self.duration_s

    @cached_property
    def sweep_xy(self) -> FloatArray:
        """The sweep part of the path, (m, 2) (computed once: do not write to it)."""
        idx = np.flatnonzero(self.legs == SWEEP_LEG)
        if not len(idx):
            return np.empty((0, 2))
        return self.path[idx[0] : idx[-1] + 2, :2]


@dataclass(frozen=True)
class PlanMetrics:
    """Figures of merit of a plan (see ``docs/planning.md``)."""

    drones: int
    sorties: int
    searchable_area_m2: float
    coverage_fraction: float
    makespan_s: float
    lower_bound_s: float

    @property
    def efficiency(self) -> float:
        return self.lower_bound_s / self.makespan_s if self.makespan_s > 0 else 0.0


@dataclass(frozen=True)
class Plan:
    """Every drone's sorties and the cell of the area each drone was given.

    ``swept`` is, for a plan made during a flight (:func:`skysweep.plan.replan.replan`), what
    earlier plans' sorties swept before it was made: (fleet index, (k, 2) local metres) per
    sweep flown in full or up to where its drone got. Its coverage counts them.
    """

    mission: Mission
    sorties: tuple[Sortie, ...]
    cells: tuple[shapely.Geometry, ...]
    metrics: PlanMetrics
    swept: tuple[tuple[int, FloatArray], ...] = ()

    def of_drone(self, drone: int) -> tuple[Sortie, ...]:
        """``drone``'s sorties, in the plan's order."""
        return self._by_drone.get(drone, ())

    @cached_property
    def _by_drone(self) -> dict[int, tuple[Sortie, ...]]:
        # (asked for every drone in turn: one pass, not one per drone)
        out: dict[int, list[Sortie]] = {}
        for s in self.sorties:
            out.setdefault(s.drone, []).append(s)
        return {d: tuple(mine) for d, mine in out.items()}
