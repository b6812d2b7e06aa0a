"""How much more of its pack each drone uses than the energy model says, from its telemetry.

The planner, and the failsafe that brings a drone home on a low battery, cost flight with
:mod:`skysweep.energy` and the forecast's mean wind. A real pack does worse than that model:
gusts add their variance to the mean square airspeed (and power grows with its square), a cold
or tired pack holds less, and a forecast can be wrong. So the orchestrator keeps a tally per
drone and per pack. It adds the battery the drone's telemetry shows used, and the battery the
model gives for the same flight (its reported ground velocity against the forecast wind, its
climb). It then scales the battery the drone needs to get home by their ratio
(:meth:`DrainTally.ratio`). A pack that does better than the model earns no later return.

Pure: the tally moves on with each :class:`~skysweep.telemetry.FleetState` and does no I/O.
Units: seconds, m/s, fractions of a full pack.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from skysweep.energy import power_factor
from skysweep.geo import FloatArray
from skysweep.telemetry import FleetState

#: Battery (fraction of a pack) counted on both sides of the ratio at the start of each pack,
#: so that the ratio starts at 1 and comes to the measured one as the flight goes on. A MAVLink
#: battery reports whole percent: one step early in a flight moves the ratio by at most 0.01 /
#: (PRIOR_PACK + the battery used).
PRIOR_PACK = 0.05
#: The largest ratio taken, whatever the telemetry says (a sagging pack's sudden drop).
MAX_RATIO = 1.5
#: A gap between two reports of a drone longer than this (seconds) is left out of both sides:
#: how it flew meanwhile is not known.
MAX_GAP_S = 5.0


@dataclass(frozen=True)
class DrainTally:
    """Per drone, on the pack it flies: the battery its telemetry shows used (``used``) and the
    battery the model gives for the same flight (``modelled``), fractions of a pack; and the
    last report they were counted up to (``battery``, ``seen_s``, ``airborne``)."""

    used: FloatArray
    modelled: FloatArray
    battery: FloatArray
    seen_s: FloatArray
    airborne: NDArray[np.bool_]

    @classmethod
    def start(cls, n: int) -> DrainTally:
        """A fleet of ``n`` drones, none heard from yet."""
        zero = np.zeros(n)
        return cls(zero, zero, zero, np.full(n, -np.inf), np.zeros(n, bool))

    def after(
        self,
        fs: FleetState,
        wind_mps: FloatArray,
        cruise_mps: FloatArray,
        endurance_s: FloatArray,
    ) -> DrainTally:
        """The tally with ``fs``'s new reports counted: for a drone airborne at its last report
        and at this one, heard no more than :data:`MAX_GAP_S` apart, the battery it used between
        them, and the model's for flying that time at its reported velocity (rectangle rule)
        against the forecast wind ``wind_mps`` (east, north). A drone reported on the ground
        starts afresh (its pack is changed there)."""
        seen = np.nan_to_num(np.asarray(fs.last_seen_s, float), nan=-np.inf)
        heard = seen > self.seen_s
        dt = seen - self.seen_s
        counted = heard & fs.airborne & self.airborne & (dt <= MAX_GAP_S)
        dt = np.where(counted, dt, 0.0)
        air = fs.vel_mps[:, :2] - np.asarray(wind_mps, float)
        climb = np.maximum(fs.vel_mps[:, 2], 0.0)
        rate = power_factor(np.hypot(air[:, 0], air[:, 1]), cruise_mps, climb) / endurance_s
        grounded = heard & ~fs.airborne
        used = np.where(counted, self.used + (self.battery - fs.battery), self.used)
        modelled = np.where(counted, self.modelled + rate * dt, self.modelled)
        return DrainTally(
            used=np.where(grounded, 0.0, used),
            modelled=np.where(grounded, 0.0, modelled),
            battery=np.where(heard, fs.battery, self.battery),
            seen_s=np.where(heard, seen, self.seen_s),
            airborne=np.where(heard, fs.airborne, self.airborne),
        )

    def ratio(self) -> FloatArray:
        """Per drone, the battery its pack has used over what the model gives for the same
        flight, from 1 (no worse than the model, or too little flown to tell) to
        :data:`MAX_RATIO`."""
        return np.clip((self.used + PRIOR_PACK) / (self.modelled + PRIOR_PACK), 1.0, MAX_RATIO)
