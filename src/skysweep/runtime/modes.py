"""Each drone's flight mode, derived from telemetry and its sortie's leg kinds (vectorised).

:data:`MODE_MACHINE` holds the mode changes a drone can really make between two ticks (0.5 s)
when its mode is derived from telemetry. Ticks can miss a short state, so it is not the
minimal chain of a nominal flight. Staying in a mode is always allowed.

============  =====================================================================
from          to
============  =====================================================================
IDLE          TAKEOFF, LANDED, LOST
TAKEOFF       TRANSIT, SWEEP, RETURN, LANDING, LANDED, HOLD, LOST
TRANSIT       SWEEP, RETURN, LANDING, HOLD, LOST
SWEEP         TRANSIT, RETURN, LANDING, HOLD, LOST
RETURN        LANDING, LANDED, HOLD, LOST
LANDING       LANDED, HOLD, LOST
LANDED        TAKEOFF, LOST
HOLD          TAKEOFF, TRANSIT, SWEEP, RETURN, LANDING, LANDED, LOST
LOST          every other mode (link restored: whatever the telemetry says)
============  =====================================================================

- RETURN never goes back to TRANSIT or SWEEP: a drone sent home does not resume work on its
  own. An operator's resume goes through HOLD.
- IDLE → LANDED: the runtime marks a drone ``flown`` when it sends the launch, and
  :func:`derive` calls a flown drone on the ground LANDED; a real autopilot takes longer than
  a tick to arm and lift off, or misses the command.
- HOLD → TAKEOFF: a drone held during its climb and then resumed climbs on.
- Nothing is terminal: a drone can always fly again.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from skysweep.plan.model import Leg
from skysweep.statemachine import StateMachine
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
#: The modes of a drone in the air (for ``np.isin``): every leg of a sortie, and holding.
AIRBORNE_MODES = np.append(_LEG_MODE, np.int8(FlightMode.HOLD))

_F = FlightMode

#: The mode changes a drone can make between two ticks (table in the module docstring).
MODE_MACHINE = StateMachine(
    "flight mode",
    FlightMode,
    {
        _F.IDLE: {_F.TAKEOFF, _F.LANDED, _F.LOST},
        _F.TAKEOFF: {
            _F.TRANSIT,
            _F.SWEEP,
            _F.RETURN,
            _F.LANDING,
            _F.LANDED,
            _F.HOLD,
            _F.LOST,
        },
        _F.TRANSIT: {_F.SWEEP, _F.RETURN, _F.LANDING, _F.HOLD, _F.LOST},
        _F.SWEEP: {_F.TRANSIT, _F.RETURN, _F.LANDING, _F.HOLD, _F.LOST},
        # home-bound: never back to work without an operator (who resumes through HOLD)
        _F.RETURN: {_F.LANDING, _F.LANDED, _F.HOLD, _F.LOST},
        _F.LANDING: {_F.LANDED, _F.HOLD, _F.LOST},
        _F.LANDED: {_F.TAKEOFF, _F.LOST},
        _F.HOLD: {
            _F.TAKEOFF,
            _F.TRANSIT,
            _F.SWEEP,
            _F.RETURN,
            _F.LANDING,
            _F.LANDED,
            _F.LOST,
        },
        # the link is back: the drone is in whatever mode its telemetry says
        _F.LOST: set(FlightMode) - {_F.LOST},
    },
    initial=FlightMode.IDLE,
)


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
