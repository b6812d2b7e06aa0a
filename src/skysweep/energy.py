"""Battery use of a multirotor, shared by the planner (to size sorties) and the simulator.

Battery is a fraction of a full pack, 0–1. A drone with ``endurance_s`` flies that long at its
cruise airspeed in still air. Power relative to cruise grows with airspeed (parasitic drag) and
with climbing; a head-wind therefore costs both time and power.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Share of cruise power drawn at zero airspeed (induced power dominates a hover).
HOVER_POWER = 0.8
#: Extra power, relative to cruise, per m/s of climb; descent recovers none of it.
CLIMB_POWER_PER_MPS = 0.06
#: Battery, fraction of a pack, kept on top of the reserve before a flying drone is sent home.
RETURN_MARGIN = 0.02
#: Battery a planned sortie leaves on top of the reserve: more than RETURN_MARGIN, so gusts that
#: cost a little more than the forecast do not trip the return before the sortie's work is done.
PLAN_MARGIN = 0.04


def power_factor(
    airspeed_mps: ArrayLike, cruise_mps: ArrayLike, climb_mps: ArrayLike = 0.0
) -> NDArray[np.float64]:
    """Power drawn relative to cruise in still air (1.0 at cruise airspeed, level flight)."""
    ratio = np.asarray(airspeed_mps, float) / np.asarray(cruise_mps, float)
    climb = np.maximum(np.asarray(climb_mps, float), 0.0)
    return HOVER_POWER + (1.0 - HOVER_POWER) * ratio * ratio + CLIMB_POWER_PER_MPS * climb


def drain_per_s(
    airspeed_mps: ArrayLike,
    cruise_mps: ArrayLike,
    endurance_s: ArrayLike,
    climb_mps: ArrayLike = 0.0,
) -> NDArray[np.float64]:
    """Battery fraction used per second of flight."""
    return power_factor(airspeed_mps, cruise_mps, climb_mps) / np.asarray(endurance_s, float)
