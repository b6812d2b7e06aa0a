"""Clocks: everything that waits takes one, so a simulated hour can pass in seconds."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the mission started."""

    def sleep_until(self, t_s: float) -> None:
        """Return once ``now() >= t_s``."""


class SimClock:
    """Simulated time: sleeping just moves the clock, as fast as the CPU allows."""

    def __init__(self, start_s: float = 0.0) -> None:
        self._t = start_s

    def now(self) -> float:
        return self._t

    def sleep_until(self, t_s: float) -> None:
        self._t = max(self._t, t_s)


class WallClock:
    """Real time, for real vehicles."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def sleep_until(self, t_s: float) -> None:
        delay = t_s - self.now()
        if delay > 0:
            time.sleep(delay)


class ScaledClock:
    """Real time sped up ``scale`` times: for flying simulated MAVLink vehicles (``skysweep
    vehicles --time-scale``) faster than real time, with the vehicles' clock scaled alike."""

    def __init__(self, scale: float) -> None:
        if scale <= 0:
            raise ValueError(f"time scale must be positive, not {scale}")
        self.scale = scale
        self._t0 = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._t0) * self.scale

    def sleep_until(self, t_s: float) -> None:
        delay = (t_s - self.now()) / self.scale
        if delay > 0:
            time.sleep(delay)
