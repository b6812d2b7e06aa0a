"""The orchestrator: one loop at a fixed tick that flies a plan through a :class:`Link`.

Each tick it reads telemetry, derives every drone's flight mode, runs the failsafe table,
applies the operator's commands, re-plans when drones are lost or cut short or a keep-out zone
is added, and decides launches and battery swaps. Every resulting order goes through the safety
kernel; the kernel's verdicts and every other event are written to the run log, and only then
does the kernel send what it passed. A monitor checks fences, separation and coverage on the
state the link reports: the autopilots' own position estimates, GPS error included.

The mission's lifecycle (planned → authorised → running → complete / aborted) is explicit:
:meth:`Orchestrator.authorise` runs the pre-flight checks and freezes the plan, and only an
authorised mission runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from skysweep.energy import RETURN_MARGIN, power_factor
from skysweep.errors import InfeasibleError, SkysweepError, TransitionError
from skysweep.footprint import CoverageGrid
from skysweep.geo import FloatArray
from skysweep.link.base import Link
from skysweep.mission import zone_from_geojson
from skysweep.plan.model import Leg, Plan
from skysweep.plan.paths import PathFinder
from skysweep.plan.replan import Progress, replan
from skysweep.proximity import close_pairs
from skysweep.runtime.book import SortieBook
from skysweep.runtime.clock import Clock
from skysweep.runtime.lifecycle import Lifecycle, MissionState
from skysweep.runtime.modes import MODE_MACHINE, FlightMode, derive
from skysweep.runtime.preflight import preflight
from skysweep.safety.failsafe import (
    Action,
    Cause,
    FailsafeParams,
    FailsafeState,
    Signals,
    clear,
    decide,
    explain,
    filter_positions,
)
from skysweep.safety.kernel import (
    Order,
    Outcome,
    Purpose,
    SafetyContext,
    SafetyKernel,
    Verdict,
)
from skysweep.store import Event, RunLog
from skysweep.telemetry import AutopilotMode, Command, FleetState

#: A sensor sees the ground only this close to the search altitude (fraction of it).
SENSOR_MIN_ALT = 0.9
#: Work of drones sent home early is handed on at most this often, seconds (a lost drone's at
#: once).
REPLAN_PERIOD_S = 10.0
#: What an operator can ask for (:meth:`Orchestrator.submit`).
OPERATOR_COMMANDS = (
    "pause",
    "resume",
    "home",
    "land",
    "add_keep_out",
    "remove_keep_out",
    "abort",
)


def _ids(drones: Sequence[str] | None) -> list[str] | None:
    return None if drones is None else [str(d) for d in drones]


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
    state: str
    """The mission's lifecycle state at the end: COMPLETE, ABORTED (or RUNNING if cut off)."""
    health: str
    """NOMINAL, or DEGRADED when drones were lost or zones added (``reasons`` say why)."""
    reasons: list[str]
    replans: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Orchestrator:
    """Flies ``plan`` through ``link``, logging to ``log``.

    The link goes straight into a :class:`~skysweep.safety.kernel.SafetyKernel`; the
    orchestrator keeps no reference to it, so every command it gives passes the kernel.
    Operator commands (:meth:`pause`, :meth:`resume`, :meth:`send_home`, :meth:`land`,
    :meth:`add_keep_out`, :meth:`remove_keep_out`, :meth:`abort`) are queued and carried out,
    and logged, on the next tick.
    """

    def __init__(self, plan: Plan, link: Link, log: RunLog, tick_s: float = 0.5) -> None:
        self.plan = plan
        self.log = log
        self.tick_s = tick_s
        m = plan.mission
        fleet = m.fleet
        n = len(fleet)
        self.n = n
        self.ids = fleet.ids
        self._index = {d: i for i, d in enumerate(fleet.ids)}
        self.book = SortieBook.of(plan, n)
        # a drone flying an uploaded route that is not a planned sortie (home, back inside the
        # fence, out of a new zone): its length in mission items, or 0
        self._return_items = np.zeros(n, np.intp)
        self._uploaded: list[FloatArray | None] = [None] * n
        self._finder = PathFinder(m.flyable)
        self._zones: dict[str, shapely.Geometry] = {z.name: z.geometry for z in m.keep_out}
        self._kernel = SafetyKernel(link, SafetyContext.of(m, self._finder))
        self._refused = [""] * n  # the last refusal logged per drone, so a retry is not logged
        self.failsafe_params = FailsafeParams.of(m)
        self.failsafe = FailsafeState.initial(n, m.pad_xy_m, 0.0)
        self._commanded = np.zeros(n, np.int8)  # the failsafe action last carried out
        self.ready_s = np.zeros(n)  # when a drone may next take off (battery swapped)
        self.flown = np.zeros(n, bool)
        self.lost = np.zeros(n, bool)
        self.handed_on = np.zeros(n, bool)  # a lost drone whose work went to the others
        self.recalled = np.zeros(n, bool)  # sent home or landed by the operator: no relaunch
        self.paused = False
        self.held = np.zeros(n, bool)  # held by the operator's pause
        self._cut_short: set[int] = set()
        # drones out of the search until an operator says otherwise (recalled, or grounded by a
        # failsafe): all their work is handed on, at the next tick
        self._withdraw: dict[int, str] = {}
        self._pending_home: set[int] = set()
        self._last_replan_s = -np.inf
        self.plan_version = 0
        self.replan_wall_s: list[float] = []
        self.mode = np.full(n, FlightMode.IDLE, np.int8)
        self.home = m.pad_xy_m
        self.reserve = m.safety.battery_reserve
        self.wind_speed = float(np.hypot(*m.wind_vector_mps))
        self.lifecycle = Lifecycle()
        self._inbox: list[tuple[str, dict[str, Any]]] = []
        self._script: list[tuple[float, str, dict[str, Any]]] = []
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

    # -- lifecycle -----------------------------------------------------------------------------

    def authorise(self, now_s: float = 0.0) -> list[str]:
        """Run the pre-flight checks; if they pass, authorise the mission (the plan is frozen
        from now on). Returns the problems found (empty: authorised); each is logged."""
        fs = self._kernel.poll(now_s)
        problems = preflight(self.plan, self._kernel.ctx, fs, now_s)
        if problems:
            self.log.append([Event(now_s, "preflight_failed", None, {"problems": problems[:50]})])
            return problems
        self.lifecycle = self.lifecycle.to(MissionState.AUTHORISED, now_s)
        self.log.append([Event(now_s, "authorised", None, {"sorties": len(self.plan.sorties)})])
        return []

    def abort(self) -> None:
        """Operator: abort the mission; every airborne drone goes home, nothing more launches."""
        self._inbox.append(("abort", {}))

    # -- operator commands ---------------------------------------------------------------------

    def submit(self, kind: str, args: dict[str, Any] | None = None) -> None:
        """Queue operator command ``kind`` (one of :data:`OPERATOR_COMMANDS`) with its
        arguments as JSON data: ``drones`` (fleet ids, None for all), ``name`` and, for a new
        zone, ``geometry`` (GeoJSON, lon/lat). It is carried out and logged on the next tick;
        a bad command is logged as refused, with the reason."""
        self._inbox.append((kind, dict(args or {})))

    def pause(self) -> None:
        """Hold every drone at work where it is; nothing launches until :meth:`resume`."""
        self._inbox.append(("pause", {}))

    def resume(self, drones: Sequence[str] | None = None) -> None:
        """Go on: held drones carry on with their missions, and the latched failsafes and
        recalls of ``drones`` (all if None) are cleared (a cause still present comes back)."""
        self._inbox.append(("resume", {"drones": _ids(drones)}))

    def send_home(self, drones: Sequence[str] | None = None) -> None:
        """Bring ``drones`` (all if None) home by a flyable route; they stay down."""
        self._inbox.append(("home", {"drones": _ids(drones)}))

    def land(self, drones: Sequence[str] | None = None) -> None:
        """Land ``drones`` (all if None) where they are; they stay down."""
        self._inbox.append(("land", {"drones": _ids(drones)}))

    def add_keep_out(self, name: str, polygon_m: shapely.Geometry) -> None:
        """A new keep-out zone (local metres): every route crossing it is re-planned, and any
        drone inside it leaves by the shortest way out."""
        self._inbox.append(("add_keep_out", {"name": name, "polygon": polygon_m}))

    def remove_keep_out(self, name: str) -> None:
        """Lift a keep-out zone: routes may cross it again (its area is not searched anew)."""
        self._inbox.append(("remove_keep_out", {"name": name}))

    # -- the loop ------------------------------------------------------------------------------

    def run(
        self,
        clock: Clock,
        max_s: float | None = None,
        progress: Callable[[Orchestrator], None] | None = None,
        script: Sequence[tuple[float, str, dict[str, Any]]] = (),
    ) -> RunSummary:
        """Tick until every sortie is flown and every drone is down (or ``max_s`` passes).

        The mission must be authorised (:meth:`authorise`). ``script``: operator commands
        ``(at_s, kind, args)`` to give at set times (as :meth:`submit` takes them); commands
        posted to the run log (``skysweep command``) are taken every tick too."""
        self._script = sorted(script, key=lambda c: c[0])
        if self.lifecycle.state is not MissionState.AUTHORISED:
            raise TransitionError(
                f"mission {self.plan.mission.name!r} is {self.lifecycle.state.name}: "
                "authorise it (pre-flight checks) before it can run"
            )
        self.lifecycle = self.lifecycle.to(MissionState.RUNNING, clock.now())
        self.log.append([Event(clock.now(), "mission_start", None, {"drones": self.n})])
        limit = max_s if max_s is not None else self._default_limit()
        while not self.done and clock.now() <= limit:
            self.tick(clock.now())
            if progress is not None:
                progress(self)
            clock.sleep_until(self.t_s + self.tick_s)
        if self.lifecycle.state is MissionState.RUNNING:
            end = MissionState.COMPLETE if self.done else MissionState.ABORTED
            self.lifecycle = self.lifecycle.to(end, self.t_s)
        summary = self.summary()
        self.log.append(
            [
                Event(
                    self.t_s,
                    "mission_end",
                    None,
                    {
                        "complete": self.done,
                        "state": self.lifecycle.state.name,
                        "health": self.lifecycle.health.name,
                        **summary.as_dict(),
                    },
                )
            ]
        )
        self.log.set_meta("summary", summary.as_dict())
        return summary

    def _default_limit(self) -> float:
        last = max((s.land_s for s in self.plan.sorties), default=0.0)
        return 3.0 * last + 600.0

    def tick(self, now_s: float) -> None:
        self.t_s = now_s
        fs = self._kernel.poll(now_s)
        events: list[Event] = []
        orders: list[Order] = []
        book = self.book

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

        for le in self._kernel.take_events():
            who = self.ids[le.drone] if le.drone is not None else None
            data = dict(le.data)
            if le.kind == "detection":
                self.detections += 1
                lon, lat = self.plan.mission.frame.to_lonlat(data["x_m"], data["y_m"])
                data.update(lon=round(float(lon), 7), lat=round(float(lat), 7))
            events.append(Event(le.t_s, le.kind, who, data))

        leg = self._current_leg(fs)
        mode = derive(fs, leg, self.flown, self.lost)
        odd = MODE_MACHINE.forbidden(self.mode, mode)
        for i in np.flatnonzero(mode != self.mode):
            data = {"from": FlightMode(self.mode[i]).name, "to": FlightMode(mode[i]).name}
            events.append(Event(now_s, "mode", self.ids[i], data))
            if odd[i]:
                # telemetry showed a change the mode machine forbids (a crash, a manual
                # take-over): an alert for the operator, never a reason to stop the loop
                events.append(Event(now_s, "mode_anomaly", self.ids[i], data))
        landed_now = (mode == FlightMode.LANDED) & (self.mode != FlightMode.LANDED) & self.flown
        self.mode = mode

        self._failsafes(fs, mode, silent, now_s, events, orders)
        self._landings(fs, landed_now, now_s, events, orders)
        self._operator(fs, now_s, events, orders)
        self._replan(fs, newly_lost, now_s, events, orders)
        book = self.book

        # launches: a drone on the ground whose next sortie is due and whose battery is ready
        on_ground = np.isin(mode, (FlightMode.IDLE, FlightMode.LANDED)) & ~fs.airborne
        upcoming = book.upcoming
        due = on_ground & ~self.lost & book.remaining & ~self.recalled
        due &= self.failsafe.action == Action.NONE
        due &= now_s + 1e-9 >= np.maximum(book.launch_s[upcoming], self.ready_s)
        if self.paused or self.lifecycle.state is not MissionState.RUNNING:
            due[:] = False
        for i in np.flatnonzero(due):
            sortie = book.next_sortie(int(i))
            orders.append(Order(int(i), Command.START_MISSION, sortie.path, Purpose.WORK, "launch"))

        # every order passes the safety kernel; its verdicts are logged before anything is sent
        checked = self._kernel.check(orders, fs, now_s)
        launch = self._apply_verdicts(checked.verdicts, now_s, events)

        self._monitor(fs, events, now_s)
        self.log.record(now_s, self._columns(fs))
        # write-ahead: the log holds every decision before any vehicle is told
        self.log.append(events)
        self._kernel.send(checked)

        settled = self.lost | (on_ground & ~(book.remaining & ~self.recalled) & ~fs.airborne)
        if self.lifecycle.state is MissionState.ABORTED:
            settled = self.lost | (on_ground & ~fs.airborne)
        self.done = bool(np.all(settled)) and not len(launch)

    # -- failsafes -----------------------------------------------------------------------------

    def _failsafes(
        self,
        fs: FleetState,
        mode: NDArray[np.int8],
        silent: NDArray[np.bool_],
        now_s: float,
        events: list[Event],
        orders: list[Order],
    ) -> None:
        """Run the failsafe table and order what its actions need (level-triggered: an order
        the kernel refused, or that could not reach a silent drone, is given again)."""
        params = self.failsafe_params
        state, jumped = filter_positions(
            self.failsafe,
            fs.pos_m,
            fs.vel_mps,
            now_s,
            params,
            seen_s=fs.last_seen_s,
            airborne=fs.airborne,
        )
        for i in np.flatnonzero(jumped):
            events.append(
                Event(
                    now_s,
                    "gps_outlier",
                    self.ids[i],
                    {"x_m": float(fs.pos_m[i, 0]), "y_m": float(fs.pos_m[i, 1])},
                )
            )
        est = state.est_pos_m
        inside = self._kernel.ctx.hard.sample(est)[0] > 0.0
        signals = Signals(
            airborne=fs.airborne & ~self.lost,
            last_seen_s=fs.last_seen_s,
            battery=fs.battery,
            home_need=self._home_need(est, fs),
            gps_ok=np.ones(self.n, bool),
            inside_fence=inside,
        )
        before = state.action
        state = decide(state, signals, now_s, params)
        self.failsafe = state
        for i in np.flatnonzero(state.action != before):
            a = Action(state.action[i])
            grounding = a in (Action.LAND, Action.HOLD) or (
                a is Action.HOME and state.trigger[i] not in (Cause.BATTERY_LOW, Cause.LINK_LOST)
            )
            if grounding and not self.handed_on[i]:
                self._withdraw.setdefault(int(i), f"grounded by failsafe: {explain(state, int(i))}")
            events.append(
                Event(
                    now_s,
                    "failsafe",
                    self.ids[i],
                    {"action": Action(state.action[i]).name, "why": explain(state, int(i))},
                )
            )
        act = state.action
        todo = (act > self._commanded) & fs.airborne & ~silent
        self._commanded = np.minimum(self._commanded, act)  # a clear() lowers it
        for i in np.flatnonzero(todo):
            a = Action(act[i])
            if a is Action.HOME:
                if mode[i] in (FlightMode.RETURN, FlightMode.LANDING):
                    self._commanded[i] = a
                    continue
                if self._at_work(int(i), mode):
                    self._cut_short.add(int(i))
                orders.append(self._home_order(int(i), est[i], fs, "failsafe", events))
            elif a is Action.RECOVER:
                orders.append(self._recover_order(int(i), est[i], fs, "failsafe", events))
            elif a is Action.HOLD:
                orders.append(Order(int(i), Command.HOLD, None, Purpose.SAFETY, "failsafe"))
            elif a is Action.LAND:
                orders.append(Order(int(i), Command.LAND, None, Purpose.SAFETY, "failsafe"))

    def _at_work(self, i: int, mode: NDArray[np.int8]) -> bool:
        """Whether drone ``i`` is out on a planned sortie it has not finished (so sending it
        home leaves work to hand on)."""
        working = (FlightMode.TAKEOFF, FlightMode.TRANSIT, FlightMode.SWEEP, FlightMode.HOLD)
        return bool(mode[i] in working and self.book.flying[i] >= 0 and self._return_items[i] == 0)

    def _home_need(self, est: FloatArray, fs: FleetState) -> FloatArray:
        """Battery each drone needs to fly home against the wind and come down, plus the
        reserve and the return margin (fraction of a pack)."""
        fleet = self.plan.mission.fleet
        dist = np.hypot(*(est - self.home).T)
        head = power_factor(fleet.speed_mps + self.wind_speed, fleet.speed_mps)
        descent = fs.pos_m[:, 2] / fleet.climb_mps * power_factor(0.0, 1.0)
        need = (dist / fleet.speed_mps * head + descent) / fleet.endurance_s
        return self.reserve + RETURN_MARGIN + need

    def _home_order(
        self, i: int, at: FloatArray, fs: FleetState, reason: str, events: list[Event]
    ) -> Order:
        """A flyable route home from ``at`` at the drone's altitude; the autopilot's own return
        if there is none (the kernel lets that through only if its straight line is clear)."""
        alt = float(max(fs.pos_m[i, 2], self.plan.mission.altitude_m * 0.5))
        try:
            path = self._finder.path(at, self.home[i])
        except InfeasibleError as exc:
            if not self._refused[i].startswith("unrouted"):
                events.append(Event(self.t_s, "return_unrouted", self.ids[i], {"reason": str(exc)}))
                self._refused[i] = "unrouted"
            return Order(i, Command.RETURN, None, Purpose.HOME, reason)
        route = np.column_stack([path[1:], np.full(len(path) - 1, alt)])
        route = np.vstack([route, [*self.home[i], 0.0]])
        return Order(i, Command.START_MISSION, route, Purpose.HOME, reason)

    def _recover_order(
        self, i: int, at: FloatArray, fs: FleetState, reason: str, events: list[Event]
    ) -> Order:
        """Back into the flyable space by the shortest way, then home."""
        inside = self._finder.inside(at)
        home = self._home_order(i, inside, fs, reason, events)
        alt = float(max(fs.pos_m[i, 2], self.plan.mission.altitude_m * 0.5))
        route = np.vstack([[*inside, alt], home.route]) if home.route is not None else None
        if route is None:
            return Order(i, Command.LAND, None, Purpose.SAFETY, reason)
        return Order(i, Command.START_MISSION, route, Purpose.RECOVER, reason)

    def _landings(
        self,
        fs: FleetState,
        landed_now: NDArray[np.bool_],
        now_s: float,
        events: list[Event],
        orders: list[Order],
    ) -> None:
        """A landed drone gets a fresh pack (the ground crew's swap) if it has more to fly; a
        drone that came home only because its battery ran low may fly again."""
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
            self.book.flying[i] = -1
            self._return_items[i] = 0
            if (
                self.failsafe.action[i] == Action.HOME
                and self.failsafe.trigger[i] == Cause.BATTERY_LOW
            ):
                self.failsafe = clear(self.failsafe, [int(i)], now_s)
                self._commanded[i] = Action.NONE
                events.append(
                    Event(now_s, "failsafe_cleared", self.ids[i], {"why": "battery swap"})
                )
            if self.book.remaining[i] and not self.recalled[i]:
                orders.append(Order(int(i), Command.SWAP_BATTERY, None, Purpose.WORK, "swap"))
                self.ready_s[i] = now_s + float(self.plan.mission.fleet.swap_s[i])
                events.append(Event(now_s, "battery_swap", self.ids[i], {}))

    # -- operator ------------------------------------------------------------------------------

    def _operator(
        self, fs: FleetState, now_s: float, events: list[Event], orders: list[Order]
    ) -> None:
        for i in sorted(self._pending_home):
            if fs.airborne[i] and not self.lost[i]:
                if self._at_work(i, self.mode):
                    self._cut_short.add(i)
                orders.append(self._home_order(i, fs.pos_m[i, :2], fs, "cannot resume", events))
        self._pending_home.clear()
        inbox, self._inbox = self._inbox, []
        inbox += [(k, a) for _, k, a in self.log.take_commands()]
        while self._script and self._script[0][0] <= now_s + 1e-9:
            _, k, a = self._script.pop(0)
            inbox.append((k, dict(a)))
        for kind, args in inbox:
            try:
                if kind == "add_keep_out" and "geometry" in args:
                    args = dict(args)
                    args["polygon"] = zone_from_geojson(
                        self.plan.mission, args.pop("geometry"), f"keep-out {args.get('name')}"
                    )
                if kind not in OPERATOR_COMMANDS:
                    raise InfeasibleError(
                        f"unknown operator command {kind!r} (one of {', '.join(OPERATOR_COMMANDS)})"
                    )
                result = self._carry_out(kind, args, fs, now_s, events, orders)
            except (SkysweepError, KeyError) as exc:
                result = f"refused: {exc}"
            shown = {k: v for k, v in args.items() if k != "polygon"}
            if "polygon" in args:
                shown["area_m2"] = round(float(args["polygon"].area), 1)
            events.append(
                Event(now_s, "operator", None, {"command": kind, **shown, "result": result})
            )

    def _select(self, ids: list[str] | None) -> NDArray[np.intp]:
        if ids is None:
            return np.arange(self.n)
        unknown = [d for d in ids if d not in self._index]
        if unknown:
            raise InfeasibleError(f"no drone {', '.join(map(repr, unknown))} in the fleet")
        return np.array([self._index[d] for d in ids], np.intp)

    def _carry_out(
        self,
        kind: str,
        args: dict[str, Any],
        fs: FleetState,
        now_s: float,
        events: list[Event],
        orders: list[Order],
    ) -> str:
        air = fs.airborne & ~self.lost
        if kind == "abort":
            self.lifecycle = self.lifecycle.to(MissionState.ABORTED, now_s)
            self.recalled[:] = True
            for i in np.flatnonzero(air):
                orders.append(self._home_order(int(i), fs.pos_m[i, :2], fs, "abort", events))
            return "ok"
        if kind == "pause":
            self.paused = True
            work = air & np.isin(
                self.mode, (FlightMode.TAKEOFF, FlightMode.TRANSIT, FlightMode.SWEEP)
            )
            self.held |= work
            for i in np.flatnonzero(work):
                orders.append(Order(int(i), Command.HOLD, None, Purpose.SAFETY, "pause"))
            return f"ok: {int(work.sum())} held"
        if kind == "resume":
            sel = self._select(args["drones"])
            self.paused = False
            self.recalled[sel] = False
            latched = sel[self.failsafe.action[sel] != Action.NONE]
            if len(latched):
                self.failsafe = clear(self.failsafe, latched, now_s)
                self._commanded[latched] = Action.NONE
            held = sel[self.held[sel] & air[sel] & (self.mode[sel] == FlightMode.HOLD)]
            for i in held:
                rest = self._rest_of_mission(int(i), fs)
                if rest is not None:
                    orders.append(Order(int(i), Command.RESUME, rest, Purpose.WORK, "resume"))
            self.held[sel] = False
            return f"ok: {len(held)} resumed, {len(latched)} failsafes cleared"
        if kind in ("home", "land"):
            sel = self._select(args["drones"])
            self.recalled[sel] = True
            self.held[sel] = False
            up = sel[air[sel]]
            for i in up:
                if kind == "land":
                    orders.append(Order(int(i), Command.LAND, None, Purpose.SAFETY, "operator"))
                elif self.mode[i] not in (FlightMode.RETURN, FlightMode.LANDING):
                    orders.append(self._home_order(int(i), fs.pos_m[i, :2], fs, "operator", events))
            for i in sel[
                ~self.handed_on[sel] & self.book.remaining[sel] | (self.book.flying[sel] >= 0)
            ]:
                self._withdraw.setdefault(int(i), f"recalled by the operator ({kind})")
            return f"ok: {len(up)} airborne"
        if kind == "add_keep_out":
            return self._add_zone(args["name"], args["polygon"], fs, now_s, events, orders)
        if kind == "remove_keep_out":
            name = args["name"]
            if name not in self._zones:
                raise InfeasibleError(f"no keep-out zone {name!r}")
            del self._zones[name]
            self._set_fence()
            return "ok"
        raise InfeasibleError(f"unknown operator command {kind!r}")  # pragma: no cover

    def _set_fence(self) -> None:
        m = self.plan.mission
        zones = list(self._zones.values())
        flyable = m.keep_in.buffer(-m.safety.geofence_margin_m, join_style="mitre")
        if zones:
            grown = shapely.union_all(zones).buffer(m.safety.geofence_margin_m, join_style="mitre")
            flyable = flyable.difference(grown)
        self._finder = PathFinder(flyable)
        self._kernel.with_context(SafetyContext.of(m, self._finder, keep_out=zones))
        union = shapely.union_all(zones) if zones else None
        if union is not None:
            shapely.prepare(union)
        self._keep_out = union

    def _add_zone(
        self,
        name: str,
        polygon: shapely.Geometry,
        fs: FleetState,
        now_s: float,
        events: list[Event],
        orders: list[Order],
    ) -> str:
        if name in self._zones:
            raise InfeasibleError(f"a keep-out zone {name!r} exists already")
        if not isinstance(polygon, shapely.Polygon | shapely.MultiPolygon) or not polygon.is_valid:
            raise InfeasibleError(f"keep-out zone {name!r} is not a valid polygon")
        self._zones[name] = polygon
        self._set_fence()
        # a drone inside the zone (or its margin) leaves by the shortest way, then goes home
        grown = polygon.buffer(self.plan.mission.safety.geofence_margin_m)
        air = fs.airborne & ~self.lost
        inside = air & shapely.contains_xy(grown, fs.pos_m[:, 0], fs.pos_m[:, 1])
        # being inside when the zone appears is not a breach; going back in would be
        self._in_keep_out |= air & shapely.contains_xy(polygon, fs.pos_m[:, 0], fs.pos_m[:, 1])
        for i in np.flatnonzero(inside):
            self._cut_short.discard(int(i))
            orders.append(
                self._recover_order(int(i), fs.pos_m[i, :2], fs, "new keep-out zone", events)
            )
        self._do_replan(
            fs,
            now_s,
            events,
            orders,
            f"keep-out zone {name!r} added",
            zones=[polygon],
            escaping=inside,
        )
        return f"ok: {int(inside.sum())} drones inside moved out"

    # -- re-planning ---------------------------------------------------------------------------

    def _replan(
        self,
        fs: FleetState,
        newly_lost: NDArray[np.bool_],
        now_s: float,
        events: list[Event],
        orders: list[Order],
    ) -> None:
        """Hand on the work of drones lost this tick at once, and of drones cut short (sent
        home early) every REPLAN_PERIOD_S."""
        lost_now = newly_lost & ~self.handed_on
        withdraw = np.zeros(self.n, bool)
        withdraw[list(self._withdraw)] = True
        withdraw &= ~self.handed_on
        cut_due = bool(self._cut_short) and now_s - self._last_replan_s >= REPLAN_PERIOD_S
        if not lost_now.any() and not withdraw.any() and not cut_due:
            return
        if self.lifecycle.state is not MissionState.RUNNING:
            return
        parts = []
        if lost_now.any():
            parts.append(
                f"drone{'s' if lost_now.sum() > 1 else ''} "
                f"{', '.join(self.ids[i] for i in np.flatnonzero(lost_now))} lost"
            )
        parts += [f"{self.ids[i]} {self._withdraw[int(i)]}" for i in np.flatnonzero(withdraw)]
        degraded = bool(parts) and not all("operator" in p for p in parts)
        if not parts:
            parts.append(f"{len(self._cut_short)} drones sent home early")
        self._withdraw.clear()
        self._do_replan(
            fs, now_s, events, orders, "; ".join(parts), lost=lost_now | withdraw, degrade=degraded
        )

    def _do_replan(
        self,
        fs: FleetState,
        now_s: float,
        events: list[Event],
        orders: list[Order],
        reason: str,
        *,
        lost: NDArray[np.bool_] | None = None,
        zones: Sequence[shapely.Geometry] = (),
        escaping: NDArray[np.bool_] | None = None,
        degrade: bool = True,
    ) -> None:
        lost_idx = np.flatnonzero(lost) if lost is not None else np.zeros(0, np.intp)
        handed = np.flatnonzero(self.lost & ~self.handed_on)
        lost_all = sorted({*map(int, lost_idx), *map(int, handed)})
        tracks = {int(i): fs.pos_m[i : i + 1, :2].copy() for i in np.flatnonzero(self.flown)}
        flying = self.book.flying
        in_air = {
            int(i): int(self.book.last_number[i])
            for i in np.flatnonzero((flying >= 0) & fs.airborne & (self._return_items == 0))
        }
        cut = sorted(self._cut_short)
        started = time.perf_counter()
        try:
            new = replan(
                self.plan,
                Progress(now_s, tracks, in_air),
                lost=lost_all,
                new_keep_out=list(zones),
                cut_short=cut,
            )
        except InfeasibleError as exc:
            events.append(
                Event(now_s, "replan_failed", None, {"reason": reason, "error": str(exc)})
            )
            return
        # wall time is kept out of the event log, which is the same for the same seed
        self.replan_wall_s.append(time.perf_counter() - started)
        self._cut_short.clear()
        self._last_replan_s = now_s
        self.handed_on[lost_all] = True
        self.plan = new
        self.plan_version += 1
        self.book, dropped = self.book.adopt(new)
        if self.lifecycle.state in (MissionState.RUNNING, MissionState.AUTHORISED) and (
            degrade and (lost_all or zones)
        ):
            self.lifecycle = self.lifecycle.degrade(reason, now_s)
        events.append(
            Event(
                now_s,
                "replan",
                None,
                {
                    "reason": reason,
                    "version": self.plan_version,
                    "sorties": len(new.sorties),
                    "coverage": round(new.metrics.coverage_fraction, 4),
                    "makespan_s": round(new.metrics.makespan_s, 1),
                    "health": self.lifecycle.health.name,
                },
            )
        )
        # a drone whose sortie in the air was dropped (it crosses a new zone) comes home now
        skip = escaping if escaping is not None else np.zeros(self.n, bool)
        skip = skip | self.handed_on  # withdrawn drones were told already (home, land, hold)
        for i in np.flatnonzero(dropped & fs.airborne & ~self.lost & ~skip):
            if self.mode[i] not in (FlightMode.RETURN, FlightMode.LANDING):
                orders.append(self._home_order(int(i), fs.pos_m[i, :2], fs, "re-planned", events))

    def _rest_of_mission(self, i: int, fs: FleetState) -> FloatArray | None:
        """The waypoints drone ``i`` has still to fly of the mission it has on board."""
        route = self._uploaded[i]
        if route is None:
            return None
        return np.asarray(route)[min(int(fs.mission_seq[i]), len(route) - 1) :]

    def _apply_verdicts(
        self, verdicts: tuple[Verdict, ...], now_s: float, events: list[Event]
    ) -> NDArray[np.intp]:
        """Book what the kernel let through and log what it refused or clipped (a refusal
        repeated tick after tick is logged once). Returns the drones launched."""
        launched = []
        for v in verdicts:
            o = v.order
            i = o.drone
            if v.outcome is not Outcome.ACCEPTED:
                kind = "refused" if v.outcome is Outcome.REFUSED else "clipped"
                key = f"{kind}:{o.command.name}:{v.why}"
                if self._refused[i] != key:
                    data = {
                        "command": o.command.name,
                        "purpose": o.purpose.name,
                        "reason": v.why,
                        "by": o.reason,
                    }
                    if v.sent is not None:
                        data["sent"] = v.sent.command.name
                    events.append(Event(now_s, kind, self.ids[i], data))
                    self._refused[i] = key
            sent = v.sent
            if sent is None:
                if o.command is Command.RESUME:
                    # it cannot carry on: it comes home, and its work is handed on
                    self._pending_home.add(i)
                continue
            if o.reason == "failsafe":
                self._commanded[i] = self.failsafe.action[i]
            if sent.command is Command.START_MISSION:
                self._uploaded[i] = sent.route
            if o.reason == "launch" and sent is o:
                self._refused[i] = ""
                launched.append(i)
                sortie = self.book.next_sortie(i)
                events.append(
                    Event(
                        now_s,
                        "launch",
                        self.ids[i],
                        {"sortie": sortie.number, "planned_s": sortie.launch_s},
                    )
                )
            elif sent.command is Command.START_MISSION:
                assert sent.route is not None
                self._return_items[i] = len(sent.route)
            elif sent.command is Command.HOLD and o.reason == "pause":
                self.held[i] = True
        launch = np.array(launched, np.intp)
        self.book.launched(launch)
        self._return_items[launch] = 0
        self.flown[launch] = True
        return launch

    def _current_leg(self, fs: FleetState) -> NDArray[np.int8]:
        """Kind of the leg each drone flies in AUTO: the leg into its current mission item."""
        book = self.book
        sortie = book.flying
        active = fs.airborne & (fs.mode == AutopilotMode.AUTO) & (sortie >= 0)
        back = fs.airborne & (fs.mode == AutopilotMode.AUTO) & (self._return_items > 0)
        active &= ~back
        leg = np.zeros(self.n, np.int8)
        if back.any():
            last = fs.mission_seq[back] >= self._return_items[back] - 1
            leg[back] = np.where(last, Leg.DESCEND, Leg.RETURN)
        if active.any():
            k = sortie[active]
            count = book.leg_count[k]
            step = np.clip(fs.mission_seq[active] - 1, 0, np.maximum(count - 1, 0))
            leg[active] = book.leg_table[book.leg_first[k] + step]
        return leg

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
            state=self.lifecycle.state.name,
            health=self.lifecycle.health.name,
            reasons=list(self.lifecycle.reasons),
            replans=self.plan_version,
        )
