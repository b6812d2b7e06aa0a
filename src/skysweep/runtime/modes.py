"""Each drone's flight mode, derived from telemetry and its sortie's leg kinds (vectorised)."""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from skysweep.plan.model import Leg
from skysweep.telemetry import AutopilotMode, FleetState


class FlightMode(IntEnum):
    IDLE = 0  # on the ground, not flown yet
    TAKEOFF = 1
    TRANSIT = 2
    SWEEP = 3
    RETURN = 4
    LANDING = 5
    LANDED = 6
    LOST = 7
    HOLD = 8


_LEG_MODE = np.array(
    [
        FlightMode.TAKEOFF,
        FlightMode.TRANSIT,
        FlightMode.SWEEP,
        FlightMode.RETURN,
        FlightMode.LANDING,
    ],
    np.int8,
)
assert list(range(5)) == [Leg.CLIMB, Leg.TRANSIT, Leg.SWEEP, Leg.RETURN, Leg.DESCEND]


def derive(
    fs: FleetState,
    leg_kind: NDArray[np.int8],
    flown: NDArray[np.bool_],
    lost: NDArray[np.bool_],
) -> NDArray[np.int8]:
    """Flight mode of every drone.

    ``leg_kind`` is the kind of the leg each drone is flying in AUTO (the leg into its current
    mission item); ``flown`` says whether it has taken off at least once; ``lost`` whether the
    runtime has given it up.
    """
    mode = np.where(flown, FlightMode.LANDED, FlightMode.IDLE).astype(np.int8)
    air = fs.airborne
    ap = fs.mode
    auto = air & (ap == AutopilotMode.AUTO)
    mode[auto] = _LEG_MODE[np.clip(leg_kind[auto], 0, 4)]
    mode[air & (ap == AutopilotMode.RTL)] = FlightMode.RETURN
    mode[air & (ap == AutopilotMode.LAND)] = FlightMode.LANDING
    mode[air & (ap == AutopilotMode.HOLD)] = FlightMode.HOLD
    mode[lost] = FlightMode.LOST
    return mode
