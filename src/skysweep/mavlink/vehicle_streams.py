"""Which telemetry each simulated vehicle sends, and when: ArduPilot's stream groups
(REQUEST_DATA_STREAM) and per-message intervals (MAV_CMD_SET_MESSAGE_INTERVAL), scheduled in
simulated seconds for the whole fleet at once.

Like ArduPilot, a vehicle streams nothing but its heartbeat until a ground station asks. A
message's interval is its own (SET_MESSAGE_INTERVAL) if one was set, else its group's rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from skysweep.geo import FloatArray
from skysweep.mavlink.dialect import mavlink as m

#: Fastest stream a vehicle sends, Hz (ArduPilot's cap).
MAX_HZ = 50.0
#: The heartbeat's default period, simulated seconds.
HEARTBEAT_S = 1.0


class Kind(IntEnum):
    """Messages a vehicle can send on a schedule."""

    HEARTBEAT = 0
    GLOBAL_POSITION_INT = 1
    SYS_STATUS = 2
    MISSION_CURRENT = 3
    EXTENDED_SYS_STATE = 4
    BATTERY_STATUS = 5
    ATTITUDE = 6
    VFR_HUD = 7
    HOME_POSITION = 8


#: MAVLink message id → kind.
KIND_OF_MSGID: dict[int, Kind] = {getattr(m, f"MAVLINK_MSG_ID_{k.name}"): k for k in Kind}
_ALL = m.MAV_DATA_STREAM_ALL
_GROUPS = 13  # MAV_DATA_STREAM ids 0-12
#: The stream group each kind belongs to (ArduPilot's, with EXTENDED_SYS_STATE in
#: EXTENDED_STATUS so that a ground station asking for the usual groups learns the landed state).
_GROUP_OF: dict[Kind, int | None] = {
    Kind.HEARTBEAT: None,
    Kind.GLOBAL_POSITION_INT: m.MAV_DATA_STREAM_POSITION,
    Kind.SYS_STATUS: m.MAV_DATA_STREAM_EXTENDED_STATUS,
    Kind.MISSION_CURRENT: m.MAV_DATA_STREAM_EXTENDED_STATUS,
    Kind.EXTENDED_SYS_STATE: m.MAV_DATA_STREAM_EXTENDED_STATUS,
    Kind.BATTERY_STATUS: m.MAV_DATA_STREAM_EXTRA3,
    Kind.ATTITUDE: m.MAV_DATA_STREAM_EXTRA1,
    Kind.VFR_HUD: m.MAV_DATA_STREAM_EXTRA2,
    Kind.HOME_POSITION: None,
}
_DEFAULT_S = {Kind.HEARTBEAT: HEARTBEAT_S}
#: Per-vehicle phase in [0, 1) of every schedule, so that a fleet's messages spread over the
#: period instead of leaving in one burst (the golden-ratio sequence fills the interval evenly).
_PHI = 0.6180339887498949


class Streams:
    """Schedules of ``n`` vehicles: one row per :class:`Kind`, one column per vehicle."""

    def __init__(self, n: int, now_s: float = 0.0) -> None:
        k = len(Kind)
        self.phase = (np.arange(n) * _PHI) % 1.0
        self.group_hz = np.zeros((_GROUPS, n))
        self.override_s = np.full((k, n), np.nan)
        """Interval set by SET_MESSAGE_INTERVAL, s (NaN: none, inf: off)."""
        self.interval_s = np.full((k, n), np.inf)
        self.next_s = np.full((k, n), np.inf)
        everyone = np.arange(n)
        self._update(everyone, now_s)

    def request_stream(
        self, drones: Sequence[int], stream_id: int, hz: float, now_s: float
    ) -> bool:
        """REQUEST_DATA_STREAM: ``hz`` (0 stops) for a group or all; False for an unknown id."""
        if not 0 <= stream_id < _GROUPS:
            return False
        idx = np.asarray(drones, np.intp)
        rate = min(max(float(hz), 0.0), MAX_HZ)
        if stream_id == _ALL:
            self.group_hz[:, idx] = rate
        else:
            self.group_hz[stream_id, idx] = rate
        self._update(idx, now_s)
        return True

    def set_interval(
        self, drones: Sequence[int], kind: Kind, interval_us: float, now_s: float
    ) -> None:
        """SET_MESSAGE_INTERVAL: microseconds; 0 restores the default, negative stops."""
        idx = np.asarray(drones, np.intp)
        if interval_us == 0:
            value = np.nan
        elif interval_us < 0:
            value = np.inf
        else:
            value = max(interval_us * 1e-6, 1.0 / MAX_HZ)
        self.override_s[kind, idx] = value
        self._update(idx, now_s)

    def _update(self, idx: NDArray[np.intp], now_s: float) -> None:
        for kind in Kind:
            group = _GROUP_OF[kind]
            if group is None:
                base: FloatArray | float = _DEFAULT_S.get(kind, np.inf)
            else:
                hz = self.group_hz[group, idx]
                with np.errstate(divide="ignore"):
                    base = np.where(hz > 0, 1.0 / np.maximum(hz, 1e-9), np.inf)
            over = self.override_s[kind, idx]
            new = np.where(np.isnan(over), base, over)
            old = self.interval_s[kind, idx]
            # a message switched on starts within one period, at the vehicle's phase
            start = np.isinf(old) & np.isfinite(new)
            first = now_s + np.where(start, new, 0.0) * self.phase[idx]
            nxt = np.where(start, first, self.next_s[kind, idx])
            self.next_s[kind, idx] = np.where(np.isfinite(new), nxt, np.inf)
            self.interval_s[kind, idx] = new

    def due(self, kind: Kind, now_s: float, live: NDArray[np.bool_]) -> NDArray[np.intp]:
        """Vehicles whose ``kind`` is due at ``now_s`` and that can send (``live``); every due
        schedule moves on one period (one that fell behind restarts from now: no bursts)."""
        nxt = self.next_s[kind]
        hit = nxt <= now_s
        if not hit.any():
            return np.empty(0, np.intp)
        iv = self.interval_s[kind, hit]
        after = nxt[hit] + iv
        nxt[hit] = np.where(after <= now_s, now_s + iv, after)
        return np.flatnonzero(hit & live)
