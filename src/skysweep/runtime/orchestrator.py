"""The orchestrator: one loop at a fixed tick that flies a plan through a :class:`Link`.

Each tick it reads telemetry, derives every drone's flight mode, decides (launch a sortie, swap
a battery, send a drone home that is running low), writes the resulting events to the run log,
and only then sends the commands. A monitor checks fences, separation and coverage on the state
the link reports: the autopilots' own position estimates, GPS error included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from skysweep.energy import RETURN_MARGIN, power_factor
from skysweep.errors import InfeasibleError
from skysweep.footprint import CoverageGrid
from skysweep.link.base import Link
from skysweep.plan.model import Leg, Plan, Sortie
from skysweep.plan.paths import PathFinder
from skysweep.proximity import close_pairs
from skysweep.runtime.clock import Clock
from skysweep.runtime.modes import FlightMode, derive
from skysweep.store import Event, RunLog
from skysweep.telemetry import AutopilotMode, Command, FleetState

#: A sensor sees the ground only this close to the search altitude (fraction of it).
SENSOR_MIN_ALT = 0.9


@dataclass(frozen=True)
class RunSummary:
    """What a run achieved; the fields of ``skysweep sim --json``."""

    mission_time_s: float
    covered_fraction: float
    drones: int
    drones_lost: int
    keep_out_breaches: int
    keep_in_breaches: int
    min_separation_m: float | None
    landed: int
    landed_below_reserve: int
    detections: int

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


class Orchestrator:
    """Flies ``plan`` through ``link``, logging to ``log``."""

    def __init__(self, plan: Plan, link: Link, log: RunLog, tick_s: float = 0.5) -> None:
        self.plan = plan
        self.link = link
        self.log = log
        self.tick_s = tick_s
        m = plan.mission
        fleet = m.fleet
        n = len(fleet)
        self.n = n
        self.ids = fleet.ids
        self._sorties: list[list[Sortie]] = [[] for _ in range(n)]
        for sortie in sorted(plan.sorties, key=lambda x: (x.drone, x.number)):
            self._sorties[sortie.drone].append(sortie)
        # the plan as flat tables, so a tick looks things up for all drones at once
        ordered = [s for per_drone in self._sorties for s in per_drone]
        self._sortie_count = np.array([len(x) for x in self._sorties], np.intp)
        self._first_sortie = np.cumsum(self._sortie_count) - self._sortie_count
        self._sortie_launch_s = np.array([s.launch_s for s in ordered] + [np.inf])
        self._leg_table = np.concatenate([s.legs for s in ordered] or [np.zeros(0, np.int8)])
        leg_counts = np.array([len(s.legs) for s in ordered], np.intp)
        self._sortie_leg_first = np.cumsum(leg_counts) - leg_counts
        self._sortie_leg_count = leg_counts
        self.next_sortie = np.zeros(n, np.intp)  # index into _sorties[i] of the next to fly
        self._flying_sortie = np.full(n, -1, np.intp)  # global index of the sortie in the air
        # a drone sent home early flies an uploaded return route round the keep-out zones (an
        # autopilot's own RTL flies straight); its length in mission items, or 0
        self._return_items = np.zeros(n, np.intp)
        self._finder = PathFinder(m.flyable)
        self.ready_s = np.zeros(n)  # when a drone may next take off (battery swapped)
        self.flown = np.zeros(n, bool)
        self.lost = np.zeros(n, bool)
        self.mode = np.full(n, FlightMode.IDLE, np.int8)
        self.home = self._homes()
        self.reserve = m.safety.battery_reserve
        self.wind_speed = float(np.hypot(*m.wind_vector_mps))
        # monitor state
        keep_out = shapely.union_all([z.geometry for z in m.keep_out]) if m.keep_out else None
        self._keep_out = keep_out
        if keep_out is not None:
            shapely.prepare(keep_out)
        shapely.prepare(m.keep_in)
        self._in_keep_out = np.zeros(n, bool)
        self._out_keep_in = np.zeros(n, bool)
        self.keep_out_breaches = 0
        self.keep_in_breaches = 0
        self.min_sep = np.inf
        self.coverage = CoverageGrid(m.searchable)
        self._radius = fleet.swath_m / 2.0
        self._prev_pos: NDArray[np.float64] | None = None
        self._prev_sensing = np.zeros(n, bool)
        self.landed_below_reserve = 0
        self.detections = 0
        self.t_s = 0.0
        self.done = False

    def _homes(self) -> NDArray[np.float64]:
        m = self.plan.mission
        out = m.site_xy_m[m.fleet.site].copy()
        for i, sorties in enumerate(self._sorties):
            if sorties:
                out[i] = sorties[0].path[0, :2]
        return out

    # -- the loop ------------------------------------------------------------------------------

    def run(
        self,
        clock: Clock,
        max_s: float | None = None,
        progress: Callable[[Orchestrator], None] | None = None,
    ) -> RunSummary:
        """Tick until every sortie is flown and every drone is down (or ``max_s`` passes)."""
        self.log.append([Event(clock.now(), "mission_start", None, {"drones": self.n})])
        limit = max_s if max_s is not None else self._default_limit()
        while not self.done and clock.now() <= limit:
            self.tick(clock.now())
            if progress is not None:
                progress(self)
            clock.sleep_until(self.t_s + self.tick_s)
        summary = self.summary()
        self.log.append(
            [Event(self.t_s, "mission_end", None, {"complete": self.done, **summary.as_dict()})]
        )
        self.log.set_meta("summary", summary.as_dict())
        return summary

    def _default_limit(self) -> float:
        last = max((s.land_s for s in self.plan.sorties), default=0.0)
        return 3.0 * last + 600.0

    def tick(self, now_s: float) -> None:
        self.t_s = now_s
        fs = self.link.poll(now_s)
        events: list[Event] = []
        commands: list[tuple[NDArray[np.intp], Command, list[tuple[int, NDArray[np.float64]]]]] = []

        timeout = self.plan.mission.safety.lost_link_timeout_s
        silent = ~(now_s - np.nan_to_num(fs.last_seen_s, nan=-np.inf) <= timeout)
        newly_lost = silent & ~self.lost & self.flown
        for i in np.flatnonzero(newly_lost):
            events.append(Event(now_s, "lost", self.ids[i], {"silent_s": timeout}))
        # a drone heard from again is back: its link dropped out, it did not fall
        back = self.lost & ~silent
        for i in np.flatnonzero(back):
            events.append(Event(now_s, "link_restored", self.ids[i], {}))
        self.lost = (self.lost | newly_lost) & ~back

        for le in self.link.take_events():
            who = self.ids[le.drone] if le.drone is not None else None
            data = dict(le.data)
            if le.kind == "detection":
                self.detections += 1
                lon, lat = self.plan.mission.frame.to_lonlat(data["x_m"], data["y_m"])
                data.update(lon=round(float(lon), 7), lat=round(float(lat), 7))
            events.append(Event(le.t_s, le.kind, who, data))

        leg = self._current_leg(fs)
        mode = derive(fs, leg, self.flown, self.lost)
        landed_now = (mode == FlightMode.LANDED) & (self.mode != FlightMode.LANDED) & self.flown
        for i in np.flatnonzero(mode != self.mode):
            events.append(
                Event(
                    now_s,
                    "mode",
                    self.ids[i],
                    {"from": FlightMode(self.mode[i]).name, "to": FlightMode(mode[i]).name},
                )
            )
        self.mode = mode

        # a landed drone gets a fresh pack (the ground crew's swap) if it has more to fly
        swap = []
        for i in np.flatnonzero(landed_now):
            below = bool(fs.battery[i] < self.reserve)
            self.landed_below_reserve += below
            events.append(
                Event(
                    now_s,
                    "landed",
                    self.ids[i],
                    {"battery": round(float(fs.battery[i]), 4), "below_reserve": below},
                )
            )
            if self.next_sortie[i] < self._sortie_count[i]:
                swap.append(i)
                self.ready_s[i] = now_s + float(self.plan.mission.fleet.swap_s[i])
                events.append(Event(now_s, "battery_swap", self.ids[i], {}))
        if swap:
            commands.append((np.array(swap, np.intp), Command.SWAP_BATTERY, []))

        # launches: a drone on the ground whose next sortie is due and whose battery is ready
        on_ground = np.isin(mode, (FlightMode.IDLE, FlightMode.LANDED))
        remaining = self.next_sortie < self._sortie_count
        upcoming = np.where(remaining, self._first_sortie + self.next_sortie, -1)
        due = on_ground & ~self.lost & remaining
        due &= now_s + 1e-9 >= np.maximum(self._sortie_launch_s[upcoming], self.ready_s)
        launch = np.flatnonzero(due)
        uploads = []
        for i in launch:
            sortie = self._sorties[i][self.next_sortie[i]]
            uploads.append((int(i), sortie.path))
            events.append(
                Event(
                    now_s,
                    "launch",
                    self.ids[i],
                    {"sortie": sortie.number, "planned_s": sortie.launch_s},
                )
            )
        self._flying_sortie[launch] = upcoming[launch]
        self._return_items[launch] = 0
        self.next_sortie[launch] += 1
        self.flown[launch] = True
        if len(launch):
            commands.append((launch, Command.START_MISSION, uploads))

        # energy: home when what is left barely covers the way back against the wind
        going_home = self._needs_home(fs, mode)
        for i in np.flatnonzero(going_home):
            events.append(
                Event(
                    now_s, "low_battery", self.ids[i], {"battery": round(float(fs.battery[i]), 4)}
                )
            )
        if going_home.any():
            home = np.flatnonzero(going_home)
            routed, straight = self._return_routes(fs, home, now_s, events)
            if len(routed):
                uploads_home = [(int(i), r) for i, r in routed]
                commands.append(
                    (np.array([i for i, _ in routed], np.intp), Command.START_MISSION, uploads_home)
                )
            if len(straight):
                commands.append((np.array(straight, np.intp), Command.RETURN, []))

        self._monitor(fs, events, now_s)
        self.log.record(now_s, self._columns(fs))
        # write-ahead: the log holds every decision before any vehicle is told
        self.log.append(events)
        for drones, command, ups in commands:
            for drone, path in ups:
                self.link.upload(drone, path)
            self.link.send(drones, command)

        remaining = self.next_sortie < self._sortie_count
        settled = self.lost | (on_ground & ~remaining & ~fs.airborne)
        self.done = bool(np.all(settled)) and not len(launch)

    def _return_routes(
        self, fs: FleetState, drones: NDArray[np.intp], now_s: float, events: list[Event]
    ) -> tuple[list[tuple[int, NDArray[np.float64]]], list[int]]:
        """Flyable routes home for ``drones``: at the search altitude round the keep-out zones
        to the pad, then down onto it. A drone with no flyable way home (logged) is left to
        its autopilot's own return: better home straight than not at all."""
        alt = self.plan.mission.altitude_m
        routed, straight = [], []
        for i in drones:
            try:
                path = self._finder.path(fs.pos_m[i, :2], self.home[i])
            except InfeasibleError as exc:
                events.append(Event(now_s, "return_unrouted", self.ids[i], {"reason": str(exc)}))
                straight.append(int(i))
                continue
            route = np.column_stack([path[1:], np.full(len(path) - 1, alt)])
            route = np.vstack([route, [*self.home[i], 0.0]])
            self._return_items[i] = len(route)
            routed.append((int(i), route))
        return routed, straight

    def _current_leg(self, fs: FleetState) -> NDArray[np.int8]:
        """Kind of the leg each drone flies in AUTO: the leg into its current mission item."""
        sortie = self._flying_sortie
        active = fs.airborne & (fs.mode == AutopilotMode.AUTO) & (sortie >= 0)
        back = active & (self._return_items > 0)
        active &= ~back
        leg = np.zeros(self.n, np.int8)
        if back.any():
            last = fs.mission_seq[back] >= self._return_items[back] - 1
            leg[back] = np.where(last, Leg.DESCEND, Leg.RETURN)
        if active.any():
            k = sortie[active]
            count = self._sortie_leg_count[k]
            step = np.clip(fs.mission_seq[active] - 1, 0, np.maximum(count - 1, 0))
            leg[active] = self._leg_table[self._sortie_leg_first[k] + step]
        return leg

    def _needs_home(self, fs: FleetState, mode: NDArray[np.int8]) -> NDArray[np.bool_]:
        fleet = self.plan.mission.fleet
        working = fs.airborne & np.isin(mode, (FlightMode.TRANSIT, FlightMode.SWEEP))
        dist = np.hypot(*(fs.pos_m[:, :2] - self.home).T)
        head = power_factor(fleet.speed_mps + self.wind_speed, fleet.speed_mps)
        descent = fs.pos_m[:, 2] / fleet.climb_mps * power_factor(0.0, 1.0)
        need = (dist / fleet.speed_mps * head + descent) / fleet.endurance_s
        return working & (fs.battery <= self.reserve + RETURN_MARGIN + need)

    def _monitor(self, fs: FleetState, events: list[Event], now_s: float) -> None:
        m = self.plan.mission
        air = fs.airborne & ~self.lost
        x, y = fs.pos_m[:, 0], fs.pos_m[:, 1]
        if self._keep_out is not None:
            inside = air & shapely.contains_xy(self._keep_out, x, y)
            for i in np.flatnonzero(inside & ~self._in_keep_out):
                events.append(
                    Event(
                        now_s,
                        "keep_out_breach",
                        self.ids[i],
                        {"x_m": float(x[i]), "y_m": float(y[i])},
                    )
                )
                self.keep_out_breaches += 1
            self._in_keep_out = inside
        outside = air & ~shapely.contains_xy(m.keep_in, x, y)
        for i in np.flatnonzero(outside & ~self._out_keep_in):
            events.append(
                Event(
                    now_s, "keep_in_breach", self.ids[i], {"x_m": float(x[i]), "y_m": float(y[i])}
                )
            )
            self.keep_in_breaches += 1
        self._out_keep_in = outside

        # closest approach within one altitude band, as reported (GPS error included)
        _, d = close_pairs(fs.pos_m, air, 2.0 * max(m.safety.min_separation_m, 1.0))
        if len(d):
            self.min_sep = min(self.min_sep, float(d.min()))

        sensing = air & (fs.pos_m[:, 2] >= SENSOR_MIN_ALT * m.altitude_m)
        if self._prev_pos is not None:
            both = np.flatnonzero(sensing & self._prev_sensing)
            if len(both):
                a, b = self._prev_pos[both, :2], fs.pos_m[both, :2]
                step = float(self.coverage.spacing_m) / 2
                k = int(np.ceil(np.hypot(*(b - a).T).max() / step)) + 1
                t = np.linspace(0.0, 1.0, k)
                pts = (a[:, None, :] + (b - a)[:, None, :] * t[None, :, None]).reshape(-1, 2)
                self.coverage.stamp(pts, np.repeat(self._radius[both], k))
        self._prev_pos = fs.pos_m.copy()
        self._prev_sensing = sensing

    def _columns(self, fs: FleetState) -> dict[str, NDArray[Any]]:
        return {
            "x_m": fs.pos_m[:, 0],
            "y_m": fs.pos_m[:, 1],
            "alt_m": fs.pos_m[:, 2],
            "speed_mps": fs.speed_mps,
            "battery": fs.battery,
            "mode": self.mode,
        }

    def summary(self) -> RunSummary:
        return RunSummary(
            mission_time_s=round(self.t_s, 1),
            covered_fraction=round(self.coverage.fraction, 5),
            drones=self.n,
            drones_lost=int(self.lost.sum()),
            keep_out_breaches=self.keep_out_breaches,
            keep_in_breaches=self.keep_in_breaches,
            min_separation_m=round(self.min_sep, 2) if np.isfinite(self.min_sep) else None,
            landed=int(((self.mode == FlightMode.LANDED) & self.flown).sum()),
            landed_below_reserve=self.landed_below_reserve,
            detections=self.detections,
        )
