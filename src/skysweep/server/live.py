"""A mission flown in a thread of its own, with what the operator's screen needs published
after every tick.

The flight is the same orchestrator ``skysweep sim`` and ``skysweep run`` use, with its own
SQLite connection to the run log; the server reads the log through another one and speaks to
the flight only through the log's command queue (write-ahead: a command is on disk before the
flight takes it). After each tick the flight thread publishes a :class:`Snapshot`, the fleet
as the binary stream frame and a summary, and wakes the server's event loop.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skysweep import mission as mission_mod
from skysweep.errors import InfeasibleError, SkysweepError
from skysweep.link.base import Link
from skysweep.plan.model import Plan
from skysweep.proximity import close_pairs
from skysweep.runtime.clock import Clock
from skysweep.runtime.modes import FlightMode
from skysweep.runtime.orchestrator import Orchestrator
from skysweep.runtime.preflight import summarise
from skysweep.safety.failsafe import Action, Cause
from skysweep.server.frames import (
    ALERT_NAMES,
    Alert,
    FleetView,
    alert_list,
    encode_frame,
    heading_deg,
)
from skysweep.store import RunLog

#: A drone not heard for this long, seconds of mission time, is flagged LINK before it is lost.
LINK_ALERT_S = 2.0
#: The search's POS is kept for the operator's chart every this much mission time, seconds.
POS_EVERY_S = 10.0
#: The completion estimate extrapolates the coverage of this much mission time, seconds.
ETA_WINDOW_S = 60.0


@dataclass(frozen=True)
class Snapshot:
    """The flight as of one tick, ready to send."""

    number: int
    view: FleetView
    frame: bytes
    summary: dict[str, Any]
    summary_text: str


@dataclass
class Flight:
    """How to fly: the link to the vehicles, the clock, and what a checkpoint must hold."""

    link: Link | None
    """Handed to the flight's orchestrator (and its safety kernel) and dropped from here."""
    clock_factory: Callable[[], Clock]
    speed: float = 1.0
    """Mission seconds per wall second of the clock."""
    checkpoint_extra: dict[str, Any] = field(default_factory=dict)
    checkpoints: bool = True
    meta: dict[str, Any] = field(default_factory=dict)


class WakeableClock:
    """A clock whose sleep an operator's command cuts short: the flight ticks at once and
    takes the command, instead of up to a tick later."""

    def __init__(self, clock: Clock, speed: float) -> None:
        self.clock = clock
        self.speed = speed
        self._wake = threading.Event()

    def now(self) -> float:
        return self.clock.now()

    def wake(self) -> None:
        self._wake.set()

    def sleep_until(self, t_s: float) -> None:
        delay_s = (t_s - self.clock.now()) / self.speed
        if delay_s > 0 and self._wake.wait(delay_s):
            self._wake.clear()
            return
        self.clock.sleep_until(t_s)


class LiveMission:
    """Flies ``plan`` through ``flight`` in a background thread, logging to ``log_path``.

    :meth:`start` returns once the mission is authorised (pre-flight checks passed) and
    flying, or raises what stopped it. ``on_tick`` is called in the flight thread after every
    published snapshot (the server wakes its event loop with it).
    """

    def __init__(self, plan: Plan, flight: Flight, log_path: Path, tick_s: float = 0.5) -> None:
        self.plan = plan
        self.mission = plan.mission
        self.flight = flight
        self.log_path = log_path
        self.tick_s = tick_s
        self.ids = list(plan.mission.fleet.ids)
        self.orch: Orchestrator | None = None
        self.snapshot: Snapshot | None = None
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self.on_tick: Callable[[], None] | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._heading = np.zeros(len(self.ids))
        self._number = 0
        self._coverage: deque[tuple[float, float]] = deque()
        #: The search's POS over mission time, ``(t_s, pos)`` every POS_EVERY_S (with a
        #: probability map; the flight thread appends, the server reads a copy).
        self.pos_history: list[tuple[float, float]] = []
        self._zone_names: tuple[str, ...] = ()
        self._clock: WakeableClock | None = None
        self.zones_version = 0
        self._thread = threading.Thread(target=self._fly, name="skysweep-flight", daemon=True)

    # -- the flight thread ---------------------------------------------------------------------

    def start(self, timeout_s: float = 120.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise InfeasibleError(f"the mission did not start within {timeout_s:.0f} s")
        if self.error is not None:
            raise self.error

    def wake(self) -> None:
        """A command is queued: tick now rather than at the next tick's time."""
        if self._clock is not None:
            self._clock.wake()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop flying after the tick under way (the server is shutting down) and wait."""
        if self.orch is not None:
            self.orch.stop()
        self.wake()
        self._thread.join(timeout_s)

    def _fly(self) -> None:
        try:
            with RunLog(self.log_path, create=True) as log:
                log.set_meta("mission", json.loads(mission_mod.to_json(self.mission.spec)))
                log.set_meta("drones", self.ids)
                for key, value in self.flight.meta.items():
                    log.set_meta(key, value)
                link, self.flight.link = self.flight.link, None
                if link is None:
                    raise InfeasibleError("this flight's link was handed on already")
                # from here only the orchestrator's safety kernel holds the link
                orch = Orchestrator(self.plan, link, log, tick_s=self.tick_s)
                orch.checkpoint_extra = self.flight.checkpoint_extra
                if not self.flight.checkpoints:
                    orch.checkpoint_every_s = float("inf")
                clock = self._clock = WakeableClock(self.flight.clock_factory(), self.flight.speed)
                problems = orch.authorise(clock.now())
                if problems:
                    raise InfeasibleError(f"pre-flight checks failed: {summarise(problems)}")
                self.orch = orch
                log.db.commit()
                self._ready.set()
                orch.run(clock, progress=self._publish)
                self._publish(orch)
        except SkysweepError as exc:
            self.error = exc
        except BaseException as exc:  # reported to the server, which stops on it
            self.error = exc
            raise
        finally:
            self._ready.set()
            self.finished.set()
            if self.on_tick is not None:
                self.on_tick()

    def _publish(self, orch: Orchestrator) -> None:
        fs = orch.last_state
        if fs is None:
            return
        m = self.mission
        lon, lat = m.frame.to_lonlat(fs.pos_m[:, 0], fs.pos_m[:, 1])
        self._heading = heading_deg(fs.vel_mps, self._heading)
        link_age = np.maximum(orch.t_s - np.nan_to_num(fs.last_seen_s, nan=-np.inf), 0.0)
        view = FleetView(
            t_s=orch.t_s,
            lon=np.asarray(lon),
            lat=np.asarray(lat),
            alt_m=fs.pos_m[:, 2],
            heading_deg=self._heading,
            speed_mps=fs.speed_mps,
            battery=fs.battery,
            mode=orch.mode.copy(),
            alerts=self._alerts(orch),
            link_age_s=np.where(np.isfinite(link_age), link_age, np.nan),
        )
        summary = self._summary(orch, view)
        self._number += 1
        snap = Snapshot(
            number=self._number,
            view=view,
            frame=encode_frame(self._number, orch.plan_version, view),
            summary=summary,
            summary_text=json.dumps(summary),
        )
        with self._lock:
            self.snapshot = snap
        if self.on_tick is not None:
            self.on_tick()

    def _alerts(self, orch: Orchestrator) -> np.ndarray:
        fs = orch.last_state
        assert fs is not None
        safety = self.mission.safety
        fsf = orch.failsafe
        cause = fsf.cause.astype(np.int64)
        air = fs.airborne & ~orch.lost
        alerts = np.zeros(len(self.ids), np.uint8)
        alerts[orch.lost] |= np.uint8(Alert.LOST)
        alerts[(cause & (Cause.BATTERY_LOW | Cause.BATTERY_CRITICAL)) != 0] |= np.uint8(
            Alert.LOW_BATTERY
        )
        alerts[orch.fence_breached | ((cause & Cause.GEOFENCE) != 0)] |= np.uint8(Alert.GEOFENCE)
        if safety.min_separation_m > 0:
            pairs, _ = close_pairs(fs.pos_m, air, safety.min_separation_m)
            if len(pairs):
                alerts[pairs.ravel()] |= np.uint8(Alert.SEPARATION)
        silent = orch.t_s - np.nan_to_num(fs.last_seen_s, nan=-np.inf) > LINK_ALERT_S
        alerts[silent & ~orch.lost & orch.flown] |= np.uint8(Alert.LINK)
        alerts[fsf.action != Action.NONE] |= np.uint8(Alert.FAILSAFE)
        return alerts

    def _summary(self, orch: Orchestrator, view: FleetView) -> dict[str, Any]:
        counts = np.bincount(view.mode.astype(np.intp), minlength=len(FlightMode))
        progress = orch.coverage.fraction
        self._coverage.append((orch.t_s, progress))
        while self._coverage and self._coverage[0][0] < orch.t_s - ETA_WINDOW_S:
            self._coverage.popleft()
        t0, p0 = self._coverage[0]
        rate = (progress - p0) / (orch.t_s - t0) if orch.t_s > t0 else 0.0
        eta = (1.0 - progress) / rate if rate > 0 else None
        names = tuple(sorted(orch.zones))
        if names != self._zone_names:
            self._zone_names = names
            self.zones_version += 1
        life = orch.lifecycle
        pos = orch.pos
        if pos is not None and (
            not self.pos_history or orch.t_s - self.pos_history[-1][0] >= POS_EVERY_S
        ):
            self.pos_history.append((round(orch.t_s, 1), round(pos, 5)))
        return {
            "type": "summary",
            "frame": self._number + 1,
            "t_s": round(orch.t_s, 2),
            "state": life.state.name,
            "health": life.health.name,
            "reasons": list(life.reasons),
            "counts": {FlightMode(k).name: int(c) for k, c in enumerate(counts)},
            "progress": round(progress, 5),
            "eta_s": round(eta, 1) if eta is not None else None,
            "plan_version": orch.plan_version,
            "zones_version": self.zones_version,
            "detections": orch.detections,
            "detections_version": orch.detections + len(orch.detection_status),
            "pos": round(pos, 5) if pos is not None else None,
            "found": orch.found,
            "alerts": alert_list(self.ids, view),
            "alert_counts": {a.name: int(np.count_nonzero(view.alerts & a)) for a in Alert},
        }

    # -- read by the server (any thread) -------------------------------------------------------

    def latest(self) -> Snapshot | None:
        with self._lock:
            return self.snapshot

    def hello(self) -> dict[str, Any]:
        return {
            "type": "hello",
            "mission": self.mission.name,
            "ids": self.ids,
            "modes": [m.name for m in FlightMode],
            "alerts": ALERT_NAMES,
            "tick_s": self.tick_s,
            "frame": "SKY1",
        }
