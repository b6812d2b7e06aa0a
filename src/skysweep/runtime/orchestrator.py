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
from typing import Any, get_args

import numpy as np
import shapely
from numpy.typing import NDArray

from skysweep.energy import RETURN_MARGIN, power_factor
from skysweep.errors import InfeasibleError, SkysweepError, StoreError, TransitionError
from skysweep.fence import segments_clear
from skysweep.footprint import CoverageGrid
from skysweep.geo import FloatArray, fence_margin
from skysweep.link.base import Link
from skysweep.mission import zone_from_geojson
from skysweep.plan.model import Leg, Plan, Sortie
from skysweep.plan.optimal_search import reallocate
from skysweep.plan.paths import PathFinder
from skysweep.plan.patterns import track_runs
from skysweep.plan.replan import Progress, replan
from skysweep.proximity import close_pairs
from skysweep.runtime.book import SortieBook
from skysweep.runtime.clock import Clock
from skysweep.runtime.commands import CommandKind
from skysweep.runtime.confirm import (
    ASSIGN_TIMEOUT_S,
    Confirmation,
    merge_radius_m,
    nearest_drone,
    open_near,
    pattern_xy,
)
from skysweep.runtime.drain import DrainTally
from skysweep.runtime.lifecycle import Lifecycle, MissionState
from skysweep.runtime.modes import MODE_MACHINE, FlightMode, derive
from skysweep.runtime.preflight import preflight
from skysweep.runtime.watch import BreachWatch, SensorLedger
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
from skysweep.search.prior import ProbabilityGrid
from skysweep.store import Event, RunLog
from skysweep.telemetry import AutopilotMode, Command, FleetState

#: Work of drones sent home early is handed on at most this often, seconds (a lost drone's at
#: once).
REPLAN_PERIOD_S = 10.0
#: A drone's way home is measured round the keep-out zones (not straight) once its battery
#: is within this much (fraction of a pack) of what the straight way home needs: the failsafe
#: that brings it home on a low battery (:meth:`Orchestrator._home_need`).
HOME_NEED_CHECK = 0.1
#: A drone pushed this far, metres, off the leg it flies (dodging other drones) whose straight
#: line on to its next waypoint leaves the flyable space, for OFF_ROUTE_S seconds, is led back
#: to that waypoint by a flyable detour, at most MAX_DETOURS times a sortie; then, or if there
#: is no detour, it is brought home by a flyable route and its work handed on (see
#: :meth:`Orchestrator._off_route`).
OFF_ROUTE_M = 10.0
OFF_ROUTE_S = 5.0
#: ... and so is one on its leg that has all but stopped, m/s (ground speed), where that
#: leg's line on crosses the fence: a zone laid across its route that the re-plan did not
#: re-route it round holds it at the zone's edge (reliability seed 951 with --zones stood
#: there on its leg and jittered into the zone)
STALLED_MPS = 0.5
MAX_DETOURS = 3
#: A resume the kernel refuses for separation (neighbours still hovering in the way) is tried
#: again every tick for this long, seconds, before the drone is brought home instead.
RESUME_RETRY_S = 120.0
#: A drone on a transit leg whose resume, or one whose way home, has been refused for
#: separation this long, seconds, steps up (or down) out of the band of the drones in its way
#: before it flies on, by STEP_UP_M metres or the minimum separation, whichever is more (out of
#: the kernel's separation band, and the separation apart as it passes over one): two drones
#: that stopped in each other's way cannot move off on one level.
STEP_AFTER_S = 1.0
STEP_UP_M = 12.0
#: A drone on its way home in AUTO that got nearer its next waypoint by less than STUCK_PACE
#: of its cruise speed over STUCK_S seconds, with another drone within twice the minimum
#: separation in its height band, is held up by that drone: two drones head-on along one line
#: can hold each other for minutes, each one's onboard avoidance yielding to the other (in the
#: simulator, a drone flying home on 0.42 of a pack was pushed back for 470 s by one flying
#: out along the same lane, and landed on 0.087). It steps out of their band
#: (:data:`STEP_UP_M`) and flies home from there.
STUCK_S = 15.0
STUCK_PACE = 0.25
#: A drone whose launch on a swapped pack is refused for energy waits at least this long,
#: seconds (or its swap time, if longer), for its telemetry to show the new pack before its
#: work is handed on.
LAUNCH_ENERGY_WAIT_S = 10.0
#: Mission time between checkpoints, seconds: the most a run resumed after a crash flies again
#: (more for a big fleet flown faster than real time, see CHECKPOINT_WALL_SHARE).
CHECKPOINT_EVERY_S = 10.0
#: Checkpoints take at most about this share of the wall time: a big fleet's (tens of ms each)
#: are spaced out further in mission time when it is flown faster than real time.
CHECKPOINT_WALL_SHARE = 0.05
#: How fast, m/s per second, the estimate of the ground speed a drone can make falls while
#: it flies slower than that estimate in level flight (see :meth:`Orchestrator._home_need`).
SPEED_ESTIMATE_DECAY_MPS2 = 0.1
#: What an operator can ask for (:meth:`Orchestrator.submit`).
OPERATOR_COMMANDS: tuple[str, ...] = get_args(CommandKind)
#: What an operator can say of a detection (:data:`OPERATOR_COMMANDS` ``*_detection``).
DETECTION_VERDICTS = {"confirm_detection": "confirmed", "dismiss_detection": "dismissed"}


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
    pos: float | None = None
    """Probability of success of the search flown (with a ``search.prior``; else None)."""

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
        self._finder = PathFinder.of(m)
        self._zones: dict[str, shapely.Geometry] = {z.name: z.geometry for z in m.keep_out}
        self._kernel = SafetyKernel(link, SafetyContext.of(m, self._finder))
        self._refused = [""] * n  # the last refusal logged per drone, so a retry is not logged
        self.failsafe_params = FailsafeParams.of(m)
        self.failsafe = FailsafeState.initial(n, m.pad_xy_m, 0.0)
        self._commanded = np.zeros(n, np.int8)  # the failsafe action last carried out
        self.ready_s = np.zeros(n)  # when a drone may next take off (battery swapped)
        self.spent = np.zeros(n, bool)  # on the ground on the pack it last flew
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
        # drones to bring home at the next tick, and why (a resume the kernel refused, a drone
        # heard again flying a sortie whose work went to the others)
        self._pending_home: dict[int, str] = {}
        #: drones whose recall the kernel refused for separation this tick: they hold
        self._hold_for_way_home: set[int] = set()
        #: drones whose way home the kernel refuses for separation, and since when
        self._home_blocked: dict[int, float] = {}
        #: keep-out zones added this tick, to route round once its orders are out: name,
        #: polygon (local metres), drones that were inside
        self._new_zones: list[tuple[str, shapely.Geometry, NDArray[np.bool_]]] = []
        # drones whose resume the kernel refused for separation, and since when: tried again
        self._pending_resume: dict[int, float] = {}
        # steps out of the band tried by each of them (up on odd tries, down on even ones)
        self._steps: dict[int, int] = {}
        # drones heard again on the ground after their work was handed on: they take a share of
        # what is still to fly at the next re-plan
        self._rejoin: set[int] = set()
        # drones heard from again in the air after their work was handed on: on the ground,
        # they take a share of the rest
        self._came_back: set[int] = set()
        self._last_replan_s = -np.inf
        self.plan_version = 0
        self.replan_wall_s: list[float] = []
        self.mode = np.full(n, FlightMode.IDLE, np.int8)
        self.home = m.pad_xy_m
        self.reserve = m.safety.battery_reserve
        self.wind_speed = float(np.hypot(*m.wind_vector_mps))
        # the ground speed each drone has shown it can make in level flight, m/s: a weak motor
        # or a strong head wind makes the way home slower, and dearer, than the plan assumed
        self.speed_est = np.array(m.fleet.speed_mps, float)
        # the battery each drone's pack has used against what the energy model gives for the
        # same flight: gusts, a cold pack or a wrong forecast make the way home dearer
        self.drain = DrainTally.start(n)
        self.lifecycle = Lifecycle()
        self._inbox: list[tuple[str, dict[str, Any]]] = []
        self._script: list[tuple[float, str, dict[str, Any]]] = []
        # what the telemetry shows: fence breaches and the closest approach, and what the
        # cameras have seen (the coverage raster, the effort put into the probability map)
        self.watch = BreachWatch.of(m)
        self.sensors = SensorLedger.of(m)
        # drones in a zone (or its margin) when the operator added it, until they are out:
        # they are being led out (_add_zone), and the geofence failsafe leaves them be
        self._caught = np.zeros(n, bool)
        # the leg each drone flies in AUTO (from, to; local metres), for the off-route check,
        # refreshed when its mission item changes or a route is uploaded
        self._leg_seq = np.full(n, -1, np.intp)
        self._leg_ab = np.full((n, 4), np.nan)
        #: where each drone was when it first flew its mission last uploaded (``_leg_seq`` -1):
        #: its first leg starts there
        self._upload_from = np.full((n, 2), np.nan)
        self._off_since = np.full(n, np.nan)
        # the way-home watch (_stuck): the waypoint each drone flies to (local metres, 3-D),
        # for which item of which upload, and when and how far from it it last got nearer
        self._wp = np.full((n, 3), np.nan)
        self._wp_key = np.full((n, 2), -1, np.intp)
        self._nearer_s = np.zeros(n)
        self._nearer_m = np.full(n, np.inf)
        self._off_told = np.zeros(n, bool)
        # a sortie flown on with a detour in front of the rest of it: item k of the mission on
        # board is item k + shift of the sortie, and items up to detour_end are the detour
        self._seq_shift = np.zeros(n, np.intp)
        self._detour_end = np.zeros(n, np.intp)
        self._detours = np.zeros(n, np.intp)
        self._detour_pending: dict[int, tuple[int, int]] = {}
        # where each drone has got to along its route (local metres), for the re-planner
        self._route_at = np.full((n, 2), np.nan)
        self.landed_below_reserve = 0
        self.detections = 0
        #: The operator's verdict on detections, by number (1-based, the ``detection`` of
        #: each detection event): "confirmed" or "dismissed"; absent: not looked at yet.
        self.detection_status: dict[int, str] = {}
        #: Detections being (or that were) confirmed by a drone's tight pattern, by number
        #: (see :mod:`skysweep.runtime.confirm`); empty if the mission does not confirm.
        self.confirmations: dict[int, Confirmation] = {}
        self._confirms = m.spec.search.confirms
        self._merge_m = merge_radius_m(float(np.median(fleet.swath_m)))
        self._confirm_pending: dict[int, int] = {}  # drone -> detection, order under way
        self._uploads = np.zeros(n, np.intp)  # routes uploaded to each drone so far
        #: The detection the operator confirmed first: the person found (None: not yet).
        self.found: int | None = None
        # re-allocating the search's effort from the map's posterior: asked for (why), and
        # when it was last done
        self._reallocate_why: str | None = None
        self._last_reallocate_s = 0.0
        #: The telemetry of the last tick (what the operator's screen shows).
        self.last_state: FleetState | None = None
        self.t_s = 0.0
        self.done = False
        #: Mission time between checkpoints, s: a resumed run flies at most this much again.
        self.checkpoint_every_s = CHECKPOINT_EVERY_S
        #: More state to checkpoint with the orchestrator (picklable), e.g. the simulated fleet.
        self.checkpoint_extra: dict[str, Any] = {}
        self._next_checkpoint_s = 0.0
        self._checkpoint_wall_ok = 0.0  # time.perf_counter() before which none is written
        #: Mission time of the next tick, s.
        self.next_tick_s = 0.0
        self._limit_s = np.inf
        self._stop = False

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

    def stop(self) -> None:
        """Stop flying after the tick under way (the ground station is shutting down; safe
        from another thread). Nothing is sent to the drones: an airborne fleet flies on
        under its autopilots' own failsafes, and the run ends ABORTED in the log."""
        self._stop = True

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
        posted to the run log (``skysweep command``) are taken every tick too. The run is
        checkpointed to the log every :attr:`checkpoint_every_s` of mission time."""
        self._script = sorted(script, key=lambda c: c[0])
        if self.lifecycle.state is not MissionState.AUTHORISED:
            raise TransitionError(
                f"mission {self.plan.mission.name!r} is {self.lifecycle.state.name}: "
                "authorise it (pre-flight checks) before it can run"
            )
        self.lifecycle = self.lifecycle.to(MissionState.RUNNING, clock.now())
        self.t_s = clock.now()
        self._limit_s = max_s if max_s is not None else self._default_limit()
        self.log.append([Event(self.t_s, "mission_start", None, {"drones": self.n})])
        self.next_tick_s = self.t_s
        if np.isfinite(self.checkpoint_every_s):
            self._checkpoint()
        else:
            self._next_checkpoint_s = np.inf  # checkpoints off (a run on real vehicles)
        return self._fly(clock, progress)

    def carry_on(
        self, clock: Clock, progress: Callable[[Orchestrator], None] | None = None
    ) -> RunSummary:
        """Fly on a run restored by :meth:`restore`; ``clock`` reads mission time, which the
        next tick is flown at (:attr:`next_tick_s`)."""
        return self._fly(clock, progress)

    @classmethod
    def restore(cls, log: RunLog) -> tuple[Orchestrator, dict[str, Any]]:
        """The orchestrator of the stopped run in ``log``, as of its last checkpoint, and the
        rest of the checkpointed state (``checkpoint_extra``: the simulated fleet, for a
        simulated run). Fly on with :meth:`carry_on`."""
        cp = log.resume()
        state = cp.state
        orch = state.get("orchestrator") if isinstance(state, dict) else None
        if not isinstance(orch, Orchestrator):
            raise StoreError(f"{log.path}: its checkpoint holds no orchestrator")
        orch.log = log
        return orch, {k: v for k, v in state.items() if k != "orchestrator"}

    def __getstate__(self) -> dict[str, Any]:
        # the log is the checkpoint's container, not part of it; wall time is this process's
        return {**self.__dict__, "log": None, "_checkpoint_wall_ok": 0.0}

    def _checkpoint(self) -> None:
        self._next_checkpoint_s = self.t_s + self.checkpoint_every_s
        try:
            self.log.save_checkpoint(self.t_s, {"orchestrator": self, **self.checkpoint_extra})
        except StoreError as exc:
            # the flight goes on without: the operator is told that a crash now could not be
            # resumed, and no more are tried
            self._next_checkpoint_s = np.inf
            self.log.append([Event(self.t_s, "checkpoint_failed", None, {"error": str(exc)})])

    def _fly(self, clock: Clock, progress: Callable[[Orchestrator], None] | None) -> RunSummary:
        while True:
            clock.sleep_until(self.next_tick_s)
            if self.done or self._stop or clock.now() > self._limit_s:
                break
            self.tick(clock.now())
            self.next_tick_s = self.t_s + self.tick_s
            due = self.t_s >= self._next_checkpoint_s - 1e-9 and not self.done
            if due and time.perf_counter() >= self._checkpoint_wall_ok:
                started = time.perf_counter()
                self._checkpoint()
                cost = time.perf_counter() - started
                self._checkpoint_wall_ok = started + cost / CHECKPOINT_WALL_SHARE
            if progress is not None:
                progress(self)
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
        self.log.db.commit()
        return summary

    def _default_limit(self) -> float:
        last = max((s.land_s for s in self.plan.sorties), default=0.0)
        return 3.0 * last + 600.0

    def tick(self, now_s: float) -> None:
        self.t_s = now_s
        fs = self._kernel.poll(now_s)
        self.last_state = fs
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
            if not self.handed_on[i]:
                continue
            # its work went to the others: in the air it is flying lanes someone else now
            # sweeps, so it comes home; on the ground it may take a share of the rest
            if fs.airborne[i] and self.book.flying[i] < 0:
                self._pending_home[int(i)] = "work handed on"
                self._came_back.add(int(i))
            elif not fs.airborne[i]:
                self._rejoin.add(int(i))
        self.lost = (self.lost | newly_lost) & ~back

        for le in self._kernel.take_events():
            who = self.ids[le.drone] if le.drone is not None else None
            data = dict(le.data)
            # a vehicle that would not take off (a pre-arm check, a refused upload) is out of
            # the search until an operator says otherwise: its work is handed on
            if (
                le.kind == "link_command_failed"
                and le.drone is not None
                and data.get("command") == "START_MISSION"
                and not fs.airborne[le.drone]
            ):
                self._withdraw.setdefault(
                    le.drone, f"could not launch ({data.get('reason', 'refused')})"
                )
            elif (
                le.kind == "link_command_failed"
                and le.drone is not None
                and data.get("command") == "START_MISSION"
                and fs.airborne[le.drone]
                and not self.lost[le.drone]
            ):
                self._undelivered(le.drone)
            if le.kind == "detection":
                self.detections += 1
                data["detection"] = self.detections
                lon, lat = self.plan.mission.frame.to_lonlat(data["x_m"], data["y_m"])
                data.update(lon=round(float(lon), 7), lat=round(float(lat), 7))
                self._note_detection(data, le.t_s)
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

        self._estimate_speed(fs, mode)
        fleet = self.plan.mission.fleet
        self.drain = self.drain.after(
            fs, self.plan.mission.wind_vector_mps, fleet.speed_mps, fleet.endurance_s
        )
        self._failsafes(fs, mode, silent, now_s, events, orders)
        self._landings(fs, landed_now, now_s, events, orders)
        self._operator(fs, now_s, events, orders)
        self._off_route(fs, leg, now_s, events, orders)
        self._stuck(fs, leg, now_s, events, orders)
        self._confirmations(fs, now_s, events, orders)
        # what safety and the operator call for goes out before any re-plan is worked out
        # (a re-plan of thousands of drones takes a good part of a tick): those drones turn
        # at once, and the re-plan's own orders follow in the second batch
        checked = self._kernel.check(orders, fs, now_s)
        self._apply_verdicts(checked.verdicts, now_s, events)
        self.log.append(events)
        self._kernel.send(checked)
        events, orders = [], []

        self._replan(fs, newly_lost, now_s, events, orders)
        self._swaps(fs, now_s, events, orders)
        for d in sorted(self._hold_for_way_home):
            # (never over a failsafe's landing: a recall refused in the tick a drone's battery
            # went critical held it in the air until it fell, reliability seed 820 --zones)
            if self.failsafe.action[d] >= Action.HOLD:
                continue
            if fs.airborne[d] and not self.lost[d] and fs.mode[d] != AutopilotMode.HOLD:
                orders.append(Order(d, Command.HOLD, None, Purpose.SAFETY, "way home blocked"))
        self._hold_for_way_home.clear()
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

    def _undelivered(self, i: int) -> None:
        """A route for drone ``i`` in the air never reached it (its radio was down): it flies
        on with the one it had, which the runtime's bookkeeping of its route no longer
        matches. It comes home by a route sent again until one goes up, and the rest of its
        work is handed on, as for a longer route the kernel refused (reliability seed 876
        --zones: a re-plan's route sent into a link drop-out was booked as flown, and the next
        re-plan cut the drone's sweep where the runtime wrongly had it, leaving 4.5 ha)."""
        self._detour_pending.pop(i, None)
        if self.failsafe.action[i] != Action.NONE:
            # the failsafe's own order did not go up: it gives it again (from the next tick)
            self._commanded[i] = Action.NONE
            self._return_items[i] = 0
            return
        if self._at_work(i, self.mode):
            self._cut_short.add(i)
            self._last_replan_s = -np.inf
        self._pending_home.setdefault(i, "route not delivered")

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
        # a drone a new zone was laid over did not breach the fence: it is led out and home
        # like the others the zone cut short, and flies again (a failsafe would ground it)
        self._caught &= ~inside & fs.airborne & ~self.lost
        inside = inside | self._caught
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
                home = self._home_order(int(i), est[i], fs, "failsafe", events)
                orders.append(self._round_the_block(home, fs, now_s))
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

    def _estimate_speed(self, fs: FleetState, mode: NDArray[np.int8]) -> None:
        """Track the ground speed each drone makes in level flight: a peak hold that decays at
        ``SPEED_ESTIMATE_DECAY_MPS2`` while the drone flies slower, between a third of cruise and
        cruise. Turns and slow-downs into waypoints are short; a drone that never gets back up
        to speed (a weak motor, a head wind beyond the forecast) is believed slower."""
        cruise = np.asarray(self.plan.mission.fleet.speed_mps, float)
        # (transit too: a drone whose motor weakened on the ground flew 434 s out at 0.62 of
        # cruise, was believed at cruise, and landed on 0.171: seed 858 --zones)
        moving = (FlightMode.TRANSIT, FlightMode.SWEEP, FlightMode.RETURN)
        level = fs.airborne & ~self.lost & np.isin(mode, moving)
        level &= fs.pos_m[:, 2] >= 0.5 * self.plan.mission.altitude_m
        speed = np.hypot(fs.vel_mps[:, 0], fs.vel_mps[:, 1])
        decayed = np.maximum(speed, self.speed_est - SPEED_ESTIMATE_DECAY_MPS2 * self.tick_s)
        self.speed_est = np.where(level, np.clip(decayed, cruise / 3.0, cruise), self.speed_est)

    def _home_need(self, est: FloatArray, fs: FleetState) -> FloatArray:
        """Battery each drone needs to fly home against the wind and come down, plus the
        reserve and the return margin (fraction of a pack), at the ground speed it has shown
        it can make (:meth:`_estimate_speed`), and as much dearer than the energy model as its
        pack has been so far (:class:`~skysweep.runtime.drain.DrainTally`)."""
        fleet = self.plan.mission.fleet
        dist = np.hypot(*(est - self.home).T)
        head = power_factor(self.speed_est + self.wind_speed, fleet.speed_mps)
        descent = fs.pos_m[:, 2] / fleet.climb_mps * power_factor(0.0, 1.0)
        dearer = self.drain.ratio()

        def threshold() -> FloatArray:
            way = (dist / self.speed_est * head + descent) / fleet.endurance_s
            # (the margin, for what the model misses on the way home, drains as fast)
            return self.reserve + (RETURN_MARGIN + way) * dearer

        # the way home goes round the keep-out zones (an operator's new ones can be large):
        # flown, it is longer than the straight line. Measured for the drones it could
        # concern, those within HOME_NEED_CHECK of their threshold by the straight line
        near = np.flatnonzero(fs.airborne & (fs.battery < threshold() + HOME_NEED_CHECK))
        homes, which = np.unique(self.home[near], axis=0, return_inverse=True)
        for h, home in enumerate(homes):
            idx = near[which.ravel() == h]
            flown = self._finder.distances_from(home, est[idx])
            dist[idx] = np.where(np.isfinite(flown), np.maximum(flown, dist[idx]), dist[idx])
        return threshold()

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
        """A landed drone's pack is spent (see :meth:`_swaps`); a drone that came home only
        because its battery ran low may fly again."""
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
            self.spent[i] = True
            if int(i) in self._came_back:
                # (it flew home with nothing left to do; seed 653 --zones: the three others
                # ran out of mission time on the work handed on from it)
                self._came_back.discard(int(i))
                if self._available(int(i)):
                    self._rejoin.add(int(i))

    def _swaps(
        self, fs: FleetState, now_s: float, events: list[Event], orders: list[Order]
    ) -> None:
        """A drone on the ground on a used pack gets a fresh one (the ground crew's swap) once
        it has more to fly: when it lands, or later if a re-plan gives it work."""
        due = self.spent & self.book.remaining & ~self.recalled & ~self.lost & ~fs.airborne
        for i in np.flatnonzero(due):
            orders.append(Order(int(i), Command.SWAP_BATTERY, None, Purpose.WORK, "swap"))
            self.ready_s[i] = now_s + float(self.plan.mission.fleet.swap_s[i])
            self.spent[i] = False
            events.append(Event(now_s, "battery_swap", self.ids[i], {}))

    # -- operator ------------------------------------------------------------------------------

    def _operator(
        self, fs: FleetState, now_s: float, events: list[Event], orders: list[Order]
    ) -> None:
        waiting: dict[int, str] = {}
        for i, why in sorted(self._pending_home.items()):
            act = self.failsafe.action[i]
            if act in (Action.HOME, Action.LAND):
                continue  # the failsafe flies its own way home, or lands it where it is
            if act != Action.NONE:
                waiting[i] = why  # asked again once the failsafe's hold or recovery ends
                continue
            if fs.airborne[i] and not self.lost[i]:
                if self._at_work(i, self.mode):
                    self._cut_short.add(i)
                home = self._home_order(i, fs.pos_m[i, :2], fs, why, events)
                orders.append(self._round_the_block(home, fs, now_s))
            else:
                self._home_blocked.pop(i, None)
        self._pending_home = waiting
        legs = self._legs(fs, fs.airborne) if self._pending_resume else None
        for i, since in sorted(self._pending_resume.items()):
            still = fs.airborne[i] and not self.lost[i] and not self.recalled[i]
            rest = self._rest_of_mission(i, fs) if still and not self.paused else None
            if self.mode[i] != FlightMode.HOLD or rest is None:
                if not self.paused:
                    self._pending_resume.pop(i)
                continue
            step = None
            if legs is not None and legs[i] == Leg.TRANSIT and now_s - since >= STEP_AFTER_S:
                step = self._step_order(i, fs)
            orders.append(step or Order(i, Command.RESUME, rest, Purpose.WORK, "resume"))
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
        if kind in DETECTION_VERDICTS:
            number = int(args["detection"])
            if not 1 <= number <= self.detections:
                raise InfeasibleError(f"no detection {number} (there are {self.detections})")
            self.detection_status[number] = DETECTION_VERDICTS[kind]
            if kind == "confirm_detection" and self.found is None:
                return self._found(number, fs, now_s, events, orders)
            return "ok"
        if kind == "reallocate":
            if self.prior is None:
                raise InfeasibleError("the mission has no probability map (search.prior)")
            if self.found is not None:
                raise InfeasibleError(f"the search is over: detection {self.found} confirmed")
            # worked out after this tick's orders have gone, as a re-plan is (see tick)
            self._reallocate_why = "operator"
            return "ok: after this tick's orders"
        if kind == "remove_keep_out":
            name = args["name"]
            if name not in self._zones:
                raise InfeasibleError(f"no keep-out zone {name!r}")
            del self._zones[name]
            self._set_fence()
            return "ok"
        raise InfeasibleError(f"unknown operator command {kind!r}")  # pragma: no cover

    @property
    def zones(self) -> dict[str, shapely.Geometry]:
        """The keep-out zones in force (local metres), by name: the mission's and those added
        in flight, less those lifted."""
        return dict(self._zones)

    @property
    def fence_breached(self) -> NDArray[np.bool_]:
        """Drones the monitor saw, at the last tick, in a keep-out zone or out of keep-in."""
        return self.watch.breached

    def _set_fence(self) -> None:
        m = self.plan.mission
        zones = list(self._zones.values())
        flyable = fence_margin(m.keep_in, -m.safety.geofence_margin_m)
        if zones:
            flyable = flyable.difference(
                fence_margin(shapely.union_all(zones), m.safety.geofence_margin_m)
            )
        self._finder = PathFinder(flyable)
        self._kernel.with_context(SafetyContext.of(m, self._finder, keep_out=zones), zones)
        self.watch.set_keep_out(zones)

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
        grown = fence_margin(polygon, self.plan.mission.safety.geofence_margin_m)
        air = fs.airborne & ~self.lost
        inside = air & shapely.contains_xy(grown, fs.pos_m[:, 0], fs.pos_m[:, 1])
        # being inside when the zone appears is not a breach; going back in would be
        self.watch.already_in(air & shapely.contains_xy(polygon, fs.pos_m[:, 0], fs.pos_m[:, 1]))
        self._caught |= inside
        for i in np.flatnonzero(inside):
            self._cut_short.discard(int(i))
            orders.append(
                self._recover_order(int(i), fs.pos_m[i, :2], fs, "new keep-out zone", events)
            )
        # routes are re-planned round it after this tick's orders have gone (see tick)
        self._new_zones.append((name, polygon, inside))
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
        home early) every REPLAN_PERIOD_S; route round keep-out zones added this tick."""
        if self._new_zones:
            names = ", ".join(repr(name) for name, _, _ in self._new_zones)
            zones = [zone for _, zone, _ in self._new_zones]
            escaping = np.logical_or.reduce([inside for _, _, inside in self._new_zones])
            self._new_zones = []
            self._do_replan(
                fs,
                now_s,
                events,
                orders,
                f"keep-out zone{'s' if len(zones) > 1 else ''} {names} added",
                zones=zones,
                escaping=escaping,
            )
        every = self.plan.mission.spec.search.reallocate_every_s
        if every is not None and now_s - self._last_reallocate_s >= every - 1e-9:
            self._reallocate_why = self._reallocate_why or f"every {every:g} s"
        if self._reallocate_why is not None:
            why, self._reallocate_why = self._reallocate_why, None
            self._reallocate(fs, now_s, events, why)
        lost_now = newly_lost & ~self.handed_on
        withdraw = np.zeros(self.n, bool)
        withdraw[list(self._withdraw)] = True
        withdraw &= ~self.handed_on
        due = now_s - self._last_replan_s >= REPLAN_PERIOD_S
        cut_due = bool(self._cut_short) and due
        self._rejoin = {i for i in self._rejoin if self._available(i) and not fs.airborne[i]}
        rejoin_due = bool(self._rejoin) and due
        if not lost_now.any() and not withdraw.any() and not cut_due and not rejoin_due:
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
        if self._cut_short:
            parts.append(f"{len(self._cut_short)} drones sent home early")
        added = np.zeros(self.n, bool)
        if self._rejoin:
            added[sorted(self._rejoin)] = True
            parts.append(f"{', '.join(self.ids[i] for i in sorted(self._rejoin))} back")
        self._withdraw.clear()
        self._do_replan(
            fs,
            now_s,
            events,
            orders,
            "; ".join(parts),
            lost=lost_now | withdraw,
            added=added if self._rejoin else None,
            degrade=degraded,
        )
        self._rejoin.clear()

    def _reallocate(self, fs: FleetState, now_s: float, events: list[Event], why: str) -> None:
        """Re-allocate the effort still to spend from the map's posterior (the search flown so
        far): every drone's sorties from its next one on are replaced by its share of new
        passes over the posterior (:func:`skysweep.plan.optimal_search.reallocate`), until the
        search's expected POS reaches ``target_pos`` of the map's total."""
        self._last_reallocate_s = now_s
        g, poc, pos_now = self.prior, self.poc, self.pos
        spec = self.plan.mission.spec.search.prior
        if g is None or poc is None or pos_now is None or spec is None:
            return
        if self.found is not None or self.lifecycle.state is not MissionState.RUNNING:
            return
        goal = spec.target_pos * g.total
        data: dict[str, Any] = {"reason": why, "pos": round(pos_now, 5)}
        if pos_now >= goal:
            events.append(Event(now_s, "reallocate", None, {**data, "result": "target reached"}))
            return
        # the rest must find the person, if not found yet, with probability 1 − (1 − goal) /
        # (1 − pos_now): in terms of the posterior, whose cells hold the rest of the odds
        goal_rest = 1.0 - (1.0 - goal) / (1.0 - pos_now)
        free: dict[int, float] = {}
        for i in range(self.n):
            if not self._available(i) or self.handed_on[i]:
                continue
            if fs.airborne[i]:
                rest = self._rest_of_mission(i, fs)
                if self.book.flying[i] < 0 or rest is None:
                    continue  # on its way home, or on a route of the kernel's: not now
                length = float(np.hypot(*np.diff(rest[:, :2], axis=0).T).sum())
                v = float(self.plan.mission.fleet.speed_mps[i])
                down = float(fs.pos_m[i, 2]) / float(self.plan.mission.fleet.climb_mps[i])
                swap = float(self.plan.mission.fleet.swap_s[i])
                free[i] = now_s + length / v + down + swap
            else:
                free[i] = max(now_s, float(self.ready_s[i]))
        launched = {i: int(n) for i, n in enumerate(self.book.last_number)}
        posterior_grid = ProbabilityGrid(g.x0_m, g.y0_m, g.cell_m, poc, g.area_m2)
        started = time.perf_counter()
        try:
            new = reallocate(self.plan, posterior_grid, goal_rest, launched, free)
        except InfeasibleError as exc:
            events.append(Event(now_s, "reallocate", None, {**data, "result": str(exc)}))
            return
        self.replan_wall_s.append(time.perf_counter() - started)
        self.plan = new
        self.plan_version += 1
        self.book, _ = self.book.adopt(new)
        data.update(
            result="ok",
            version=self.plan_version,
            drones=len(free),
            sorties=len(new.sorties),
            makespan_s=round(new.metrics.makespan_s, 1),
        )
        events.append(Event(now_s, "reallocate", None, data))

    def _reserves(self, lost: NDArray[np.intp], fs: FleetState) -> NDArray[np.intp]:
        """Drones to bring in for ``lost`` ones that had work left: healthy drones on the
        ground that the plan never used (more would only have queued at the pads), one for
        each, from the same launch site where there is one."""
        had_work = [int(i) for i in lost if self.book.remaining[i] or self.book.flying[i] >= 0]
        if not had_work:
            return np.zeros(0, np.intp)
        idle = ~self.flown & ~self.book.remaining & ~fs.airborne & ~self.handed_on
        idle &= ~self.lost & ~self.recalled & (self.failsafe.action == Action.NONE)
        idle[list(lost)] = False
        # heard from lately (a reserve is never declared lost: it has not flown)
        timeout = self.plan.mission.safety.lost_link_timeout_s
        idle &= fs.t_s - np.nan_to_num(fs.last_seen_s, nan=-np.inf) <= timeout
        site = self.plan.mission.fleet.site
        picked: list[int] = []
        for i in had_work:
            pool = np.flatnonzero(idle & (site == site[i]))
            if not len(pool):
                pool = np.flatnonzero(idle)
            if not len(pool):
                break
            picked.append(int(pool[0]))
            idle[pool[0]] = False
        return np.array(sorted(picked), np.intp)

    def _available(self, i: int) -> bool:
        """Whether drone ``i`` may be given work: not lost, not recalled by the operator and
        no failsafe holding it (those wait for an operator's resume)."""
        return bool(
            not self.lost[i] and not self.recalled[i] and self.failsafe.action[i] == Action.NONE
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
        added: NDArray[np.bool_] | None = None,
        degrade: bool = True,
    ) -> None:
        lost_idx = np.flatnonzero(lost) if lost is not None else np.zeros(0, np.intp)
        # nobody gives work to a drone that cannot fly it: lost, recalled, or held by a
        # failsafe after its work was handed on (one coming home on a low battery flies again)
        benched = self.lost | self.recalled
        benched |= self.handed_on & (self.failsafe.action != Action.NONE)
        lost_all = sorted({*map(int, lost_idx), *map(int, np.flatnonzero(benched))})
        # the re-planner takes what is left of a sortie from the point on its sweep nearest
        # where the track ends: give it how far the drone got along its sweep (see _off_route),
        # not where it is, which for a drone in transit, on its way home or pushed off its
        # route may lie beside any part of the sweep
        at = self._swept_to(fs)
        tracks = {int(i): at[i : i + 1].copy() for i in np.flatnonzero(self.flown)}
        # which sorties are flown, under way or still to fly, as this flight has gone (not
        # by the plan's clock: launches wait for batteries, sorties run late)
        # (a lost drone's telemetry is stale: one lost on its pad as it was sent off still
        # reads landed, and its sortie would count as flown; the reliability run's seed 997)
        up = np.flatnonzero((self.book.flying >= 0) & (fs.airborne | self.lost))
        in_air = {int(i): int(self.book.last_number[i]) for i in up}
        launched = {i: int(n) for i, n in enumerate(self.book.last_number)}
        cut = sorted(self._cut_short)
        joining = set() if added is None else set(np.flatnonzero(added).tolist())
        reserves = self._reserves(lost_idx, fs)
        if len(reserves):
            joining |= set(reserves.tolist())
            reason += f"; reserve{'s' if len(reserves) > 1 else ''} " + ", ".join(
                self.ids[i] for i in reserves
            )
        # zones the operator added since the mission was planned, this one and earlier ones:
        # the plan's mission does not have them, and new routes must go round every one
        # (by identity: a zone removed may be added again under its name, with a new shape)
        planned = {id(z.geometry) for z in self.plan.mission.keep_out}
        added_zones = [z for z in self._zones.values() if id(z) not in planned]
        reroutable = self._reroutable(fs, lost_all)
        was_flying = {i: self._flying_sortie(i) for i in reroutable}
        started = time.perf_counter()
        try:
            new = replan(
                self.plan,
                Progress(now_s, tracks, in_air, launched, frozenset(reroutable)),
                lost=lost_all,
                new_keep_out=added_zones,
                cut_short=cut,
                added_drones=sorted(joining),
            )
        except InfeasibleError as exc:
            events.append(
                Event(now_s, "replan_failed", None, {"reason": reason, "error": str(exc)})
            )
            if lost_all:
                # the handed-on work has nobody to fly it: the mission ends short of its
                # area, and the operator is told why
                self.lifecycle = self.lifecycle.degrade(f"{reason}: {exc}", now_s)
            return
        # wall time is kept out of the event log, which is the same for the same seed
        self.replan_wall_s.append(time.perf_counter() - started)
        self._cut_short.clear()
        self._last_replan_s = now_s
        self.handed_on[lost_all] = True
        # a drone given new work (one back, or given a share of someone's) owns it: lost
        # again, that work is handed on again
        fresh = np.zeros(self.n, bool)
        for s in new.sorties:
            fresh[s.drone] |= s.number > self.book.last_number[s.drone]
        self.handed_on &= ~fresh
        self.plan = new
        self.plan_version += 1
        self.book, dropped = self.book.adopt(new)
        # a drone whose sortie in the air was given more to sweep before it goes home, or was
        # routed round a new zone, gets the new route from where it is on it now (its path so
        # far is the same)
        for d, old in was_flying.items():
            longer = self._flying_sortie(d)
            if longer is None or longer is old or old is None:
                continue
            k = int(fs.mission_seq[d] + self._seq_shift[d])
            # routed round a zone, the new path leaves the old where the re-planner took the
            # drone to be on its sweep (on a route that crosses itself, its first pass there):
            # a drone already past that goes back to it, not on along another path's waypoints
            n = min(k, len(old.path), len(longer.path))
            differs = np.flatnonzero(np.any(old.path[:n] != longer.path[:n], axis=1))
            k = int(differs[0]) if len(differs) else k
            self._detour_pending[d] = (k, 0)
            orders.append(
                Order(d, Command.START_MISSION, longer.path[k:], Purpose.WORK, "more work")
            )
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
        air = fs.airborne & ~self.lost & ~skip
        across = self._way_crosses(zones, fs) & air
        # withdrawn drones were told already (home, land, hold), unless on a way a zone crosses
        for i in np.flatnonzero(air & ((dropped & ~self.handed_on) | across)):
            if not across[i] and self.mode[i] in (FlightMode.RETURN, FlightMode.LANDING):
                continue
            p = fs.pos_m[i, :2]
            # (one still being led out of an earlier zone is led out again, by a way that now
            # keeps out of this one too: reliability seed 434 --zones)
            if self._kernel.ctx.hard.sample(p[None])[0][0] > 0.0:
                orders.append(self._home_order(int(i), p, fs, "re-planned", events))
            else:
                orders.append(self._recover_order(int(i), p, fs, "re-planned", events))

    def _way_crosses(self, zones: Sequence[shapely.Geometry], fs: FleetState) -> NDArray[np.bool_]:
        """Drones flying a route the plan does not hold (home, or a sortie the re-plan dropped)
        in AUTO whose rest crosses one of the new ``zones`` (grown by the geofence margin): a
        drone on its way home by such a route would stop at the zone's edge (reliability seed
        820 --zones)."""
        out = np.zeros(self.n, bool)
        if not zones:
            return out
        grown = fence_margin(shapely.union_all(zones), self.plan.mission.safety.geofence_margin_m)
        auto = fs.airborne & (fs.mode == AutopilotMode.AUTO) & (self.book.flying < 0)
        who, ways = [], []
        for i in np.flatnonzero(auto):
            rest = self._rest_of_mission(int(i), fs)
            if rest is not None:
                who.append(int(i))
                ways.append(shapely.LineString(np.vstack([fs.pos_m[i, :2], rest[:, :2]])))
        if who:
            # (crossing, not touching: a route home drawn round the zone runs along its margin)
            out[who] = shapely.length(shapely.intersection(np.array(ways), grown)) > 1.0
        return out

    def _swept_to(self, fs: FleetState) -> FloatArray:
        """(n, 2) how far each drone got along its sortie's sweep, for the re-planner: where it
        was last on a sweep leg (see _off_route), or, for one flying the transit between two
        cells of its sortie, the next cell's first point. The re-planner's rest of a sweep
        runs through those transits; taken from where the drone last swept, a transit it had
        flown was swept again, a drone 130 m on sent back along it (seed 653 --zones)."""
        at = np.where(np.isnan(self._route_at), fs.pos_m[:, :2], self._route_at)
        on = fs.airborne & (fs.mode == AutopilotMode.AUTO) & ~self.lost & (self.book.flying >= 0)
        on &= (self._return_items == 0) & (fs.mission_seq >= self._detour_end)
        on &= self._current_leg(fs) == Leg.TRANSIT
        for i in np.flatnonzero(on):
            sortie = self._flying_sortie(int(i))
            if sortie is None:
                continue
            # the leg into item k is legs[k - 1]; the next cell starts where transit ends
            k = max(int(fs.mission_seq[i] + self._seq_shift[i]) - 1, 0)
            ahead = np.flatnonzero(sortie.legs[k:] != Leg.TRANSIT)
            if len(ahead) and sortie.legs[k + int(ahead[0])] == Leg.SWEEP:
                at[i] = sortie.path[k + int(ahead[0]), :2]
        return at

    def _flying_sortie(self, i: int) -> Sortie | None:
        """The planned sortie drone ``i`` is flying, if any."""
        k = int(self.book.flying[i])
        return None if k < 0 else self.book.sorties[i][k - int(self.book.first[i])]

    def _reroutable(self, fs: FleetState, lost: Sequence[int]) -> set[int]:
        """Drones in the air that a re-plan may give more to sweep before they go home, by
        uploading a longer route (see Progress.reroutable): flying their own sortie in AUTO,
        not yet past its last sweep point, with no failsafe, detour, recall or other order
        for them under way."""
        ok = fs.airborne & (fs.mode == AutopilotMode.AUTO) & ~self.lost & ~self.held
        ok &= ~self.recalled & (self.failsafe.action == Action.NONE) & (self.book.flying >= 0)
        ok &= (self._return_items == 0) & (fs.mission_seq >= self._detour_end)
        ok &= np.isin(self.mode, (FlightMode.TRANSIT, FlightMode.SWEEP))
        ok[list(lost)] = False
        busy = {*self._cut_short, *self._pending_home, *self._detour_pending}
        busy |= {*self._confirm_pending, *self._pending_resume, *self._steps}
        out = set()
        for i in np.flatnonzero(ok):
            sortie = self._flying_sortie(int(i))
            if int(i) in busy or sortie is None:
                continue
            sweeps = np.flatnonzero(sortie.legs == Leg.SWEEP)
            k = int(fs.mission_seq[i] + self._seq_shift[i])
            if len(sweeps) and 1 <= k <= int(sweeps[-1]) + 1:
                out.add(int(i))
        return out

    def _off_route(
        self,
        fs: FleetState,
        leg: NDArray[np.int8],
        now_s: float,
        events: list[Event],
        orders: list[Order],
    ) -> None:
        """An autopilot pushed off its leg (by its onboard separation, dodging others) flies
        straight on to its next waypoint, as ArduPilot and PX4 do. Where that line crosses a
        fence the drone would end up held against it (or, its neighbours gone, through it);
        so would one stopped on its leg where the leg itself now crosses one (a new zone laid
        across it, :data:`STALLED_MPS`). Once it has been so for OFF_ROUTE_S, it gets a
        detour on to its waypoint, or comes home by a flyable route and its work is handed
        on."""
        auto = fs.airborne & (fs.mode == AutopilotMode.AUTO) & ~self.lost & ~self.held
        auto &= self.failsafe.action == Action.NONE
        p = fs.pos_m[:, :2]
        # legs change a few times a sortie: refresh only the drones whose item moved on
        for i in np.flatnonzero(auto & (fs.mission_seq != self._leg_seq)):
            route = self._uploaded[i]
            fresh = self._leg_seq[i] == -1
            self._leg_seq[i] = fs.mission_seq[i]
            self._leg_ab[i] = np.nan
            if route is not None and 1 <= fs.mission_seq[i] < len(route):
                k = int(fs.mission_seq[i])
                self._leg_ab[i] = [*route[k - 1, :2], *route[k, :2]]
            elif route is not None and fs.mission_seq[i] == 0 and len(route):
                # its first leg, from where it was sent it: a drone led out of a zone laid over
                # it and pushed out another way by its onboard fence would wait at the fence
                # for good (reliability seed 12 with --zones)
                if fresh:
                    self._upload_from[i] = p[i]
                self._leg_ab[i] = [*self._upload_from[i], *route[0, :2]]
        a, b = self._leg_ab[:, :2], self._leg_ab[:, 2:]
        ab = b - a
        with np.errstate(invalid="ignore", divide="ignore"):
            u = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.einsum("ij,ij->i", ab, ab), 0, 1)
        u = np.nan_to_num(u)
        foot = a + u[:, None] * ab
        cross = np.hypot(*(p - foot).T)
        # how far along its sweep a drone got is where it was last on a sweep leg of it (a
        # drone pushed off its leg sweeps none of the rest of it); kept through transits
        # between cells, the way home and failsafes, and reset at each launch
        on = auto & (cross <= OFF_ROUTE_M) & (leg == Leg.SWEEP) & (self._return_items == 0)
        self._route_at[on] = foot[on]
        stalled = fs.speed_mps < STALLED_MPS
        off = auto & ((cross > OFF_ROUTE_M) | stalled) & np.isfinite(b[:, 0])
        cand = np.flatnonzero(off)
        if len(cand):
            # the fence itself, not its margin: a dodge may take a drone into the margin
            off[cand] = ~segments_clear(self._kernel.ctx.hard, p[cand], b[cand])
        self._off_since[~off] = np.nan
        start = off & np.isnan(self._off_since)
        self._off_since[start] = now_s
        # once due, the way home is asked for every tick until the kernel lets it through
        # (a neighbour too close for a new route now is gone in a moment)
        for i in np.flatnonzero(off & (now_s - self._off_since >= OFF_ROUTE_S - 1e-9)):
            at_work = self._at_work(int(i), self.mode)
            detour = None
            if at_work and self._detours[i] < MAX_DETOURS:
                detour = self._detour_order(int(i), p[i], int(leg[i]), fs)
            if not self._off_told[i]:
                self._off_told[i] = True
                data = {
                    "cross_track_m": round(float(cross[i]), 1),
                    "stalled": bool(stalled[i]),
                    "item": int(fs.mission_seq[i]),
                    "action": "detour" if detour is not None else "home",
                }
                events.append(Event(now_s, "off_route", self.ids[i], data))
            if detour is not None:
                orders.append(detour)
                continue
            if at_work:
                self._cut_short.add(int(i))
            # (one pushed out of the fence, into a zone or its neighbour, is led back in first:
            # a route home from outside is refused)
            if self._kernel.ctx.hard.sample(p[i : i + 1])[0][0] > 0.0:
                orders.append(self._home_order(int(i), p[i], fs, "off route", events))
            else:
                orders.append(self._recover_order(int(i), p[i], fs, "off route", events))
        self._off_told &= off

    def _stuck(
        self,
        fs: FleetState,
        leg: NDArray[np.int8],
        now_s: float,
        events: list[Event],
        orders: list[Order],
    ) -> None:
        """A drone on its way home held up by another (:data:`STUCK_S`) is sent home from
        a step out of their band (:meth:`_step_home`); the kernel judges the step,
        and a step it refuses goes the way of any refused way home (held, then tried again)."""
        home = fs.airborne & ~self.lost & (fs.mode == AutopilotMode.AUTO)
        home &= (leg == Leg.RETURN) & ~self.held
        key = np.column_stack([fs.mission_seq, self._uploads])
        # waypoints change a few times a sortie: refreshed only for the drones whose moved on
        for i in np.flatnonzero(home & np.any(key != self._wp_key, axis=1)).tolist():
            self._wp_key[i] = key[i]
            route, k = self._uploaded[i], int(fs.mission_seq[i])
            self._wp[i] = (
                np.asarray(route)[k, :3] if route is not None and k < len(route) else np.nan
            )
            self._nearer_s[i], self._nearer_m[i] = now_s, np.inf
        dist = np.linalg.norm(fs.pos_m[:, :3] - self._wp, axis=1)
        # judged window by window: how much nearer it got over the last STUCK_S
        fresh = ~home | ~np.isfinite(self._nearer_m)
        due = home & ~fresh & (now_s - self._nearer_s >= STUCK_S - 1e-9)
        pace = STUCK_PACE * self.plan.mission.fleet.speed_mps * STUCK_S
        slow = due & ~(self._nearer_m - dist >= pace)
        restart = fresh | due
        self._nearer_s[restart] = now_s
        self._nearer_m[restart] = np.where(home[restart], dist[restart], np.inf)
        # (nearer its waypoint than that, what holds it up waits at the waypoint itself)
        band_m = 2.0 * max(self.plan.mission.safety.min_separation_m, 1.0)
        slow &= dist > band_m
        if not slow.any():
            return
        pairs, _ = close_pairs(fs.pos_m, fs.airborne & ~self.lost, band_m)
        crowded = np.zeros(self.n, bool)
        crowded[pairs.ravel()] = True
        for i in np.flatnonzero(slow & crowded).tolist():
            if i in self._pending_home or i in self._hold_for_way_home:
                continue
            way = self._home_order(i, fs.pos_m[i, :2], fs, "stuck", events)
            step = self._step_home(way, fs)
            data: dict[str, Any] = {"item": int(fs.mission_seq[i])}
            data["battery"] = round(float(fs.battery[i]), 3)
            data["action"] = "step" if step is not None else "home"
            events.append(Event(now_s, "stuck", self.ids[i], data))
            orders.append(step or way)

    def _step_alt(self, i: int, fs: FleetState) -> float | None:
        """The altitude drone ``i`` steps to on its next try out of the band of the drones in
        its way (up on odd tries, down on even ones); None if that is outside the band."""
        tries = self._steps.get(i, 0) + 1
        self._steps[i] = tries
        rise = max(STEP_UP_M, self.plan.mission.safety.min_separation_m)
        alt = float(fs.pos_m[i, 2]) + (rise if tries % 2 else -rise)
        ceiling = self.plan.mission.spec.safety.max_altitude_m
        return alt if rise <= alt <= ceiling else None

    def _round_the_block(self, home: Order, fs: FleetState, now_s: float) -> Order:
        """``home``, or, for a drone holding because its way home has been refused for
        separation for :data:`STEP_AFTER_S`, the same way flown a step out of the band of the
        drones in its way (:meth:`_step_home`)."""
        i = home.drone
        since = self._home_blocked.get(i, now_s)
        if fs.mode[i] == AutopilotMode.HOLD and now_s - since >= STEP_AFTER_S:
            return self._step_home(home, fs) or home
        return home

    def _step_home(self, home: Order, fs: FleetState) -> Order | None:
        """A route home from where the drone holds, flown a step higher (or lower, see
        :data:`STEP_UP_M`) from a step in place (None if that altitude is outside the band)."""
        i = home.drone
        alt = self._step_alt(i, fs)
        if home.route is None or alt is None:
            return None
        way = np.asarray(home.route).copy()
        way[:-1, 2] = alt  # all but the landing on the pad
        # the step in place, or, for a drone that has drifted into the geofence margin, at the
        # nearest point out of it: a waypoint in the margin is refused (reliability seed 601:
        # a drone back from a link loss 3.6 m into the margin held there until its battery
        # was spent, every step home refused)
        x, y = self._finder.inside(fs.pos_m[i, :2])
        step = np.array([[x, y, alt]])
        if np.hypot(*(way[0, :2] - step[0, :2])) <= 1e-6:
            step = step[:0]
        route = np.vstack([step, way])
        return Order(i, Command.START_MISSION, route, home.purpose, home.reason)

    def _step_order(self, i: int, fs: FleetState) -> Order | None:
        """The rest of drone ``i``'s sortie, from a transit leg it holds on, flown a step
        higher (or lower, every other try) as far as its next waypoint: up (or down) where it
        is, across, and back down onto the waypoint (None if that altitude is outside the
        band). The kernel judges the step and the flight at the new altitude apart."""
        route = self._uploaded[i]
        seq = int(fs.mission_seq[i])
        if route is None or not 1 <= seq < len(route):
            return None
        rest = np.asarray(route)[seq:]
        at = fs.pos_m[i]
        alt = self._step_alt(i, fs)
        if alt is None or np.hypot(*(rest[0, :2] - at[:2])) <= 1.0:
            return None
        # (stepped out of the geofence margin if the drone has drifted into it, see _step_home)
        x, y = self._finder.inside(at[:2])
        hops = np.array([[x, y, alt], [rest[0, 0], rest[0, 1], alt]])
        # as a detour: item k of the new mission is item k + shift of the sortie; the legs
        # into its first three items (the step, across, down onto the waypoint) are transit
        self._detour_pending[i] = (seq + int(self._seq_shift[i]) - len(hops), len(hops) + 1)
        return Order(i, Command.START_MISSION, np.vstack([hops, rest]), Purpose.WORK, "resume")

    def _detour_order(self, i: int, at: FloatArray, leg: int, fs: FleetState) -> Order | None:
        """The rest of drone ``i``'s sortie with a flyable detour from ``at`` in front of it
        (None if there is no such way); the kernel checks it as any route. Off a sweep leg, the
        detour goes back to where the drone left the leg, so that the rest of the leg is swept."""
        route = self._uploaded[i]
        seq = int(fs.mission_seq[i])
        if route is None or not 1 <= seq < len(route):
            return None
        rest = np.asarray(route)[seq:]
        a, b = self._leg_ab[i, :2], self._leg_ab[i, 2:]
        rejoin = rest[0, :2]
        if leg == Leg.SWEEP:
            # where it left the leg (see _off_route), if that is on this leg, else its start
            left = self._route_at[i]
            ab = b - a
            u = float(np.clip(np.dot(left - a, ab) / max(float(np.dot(ab, ab)), 1e-9), 0, 1))
            on_leg = bool(np.hypot(*(a + u * ab - left)) < 1.0)
            rejoin = left if on_leg else a
        try:
            path = self._finder.path(at, rejoin)
        except InfeasibleError:
            return None
        alt = float(max(fs.pos_m[i, 2], rest[0, 2]))
        hops = path[1:] if leg == Leg.SWEEP else path[1:-1]
        detour = np.column_stack([hops, np.full(len(hops), alt)])
        # item k of the new mission is item k + shift of the sortie; the legs into its first
        # `end` items are the detour's
        shift = seq + int(self._seq_shift[i]) - len(hops)
        end = len(hops) + (0 if leg == Leg.SWEEP else 1)
        self._detour_pending[i] = (shift, end)
        return Order(i, Command.START_MISSION, np.vstack([detour, rest]), Purpose.WORK, "off route")

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
            if o.reason == "confirm" and sent is not o:
                # the kernel would not let this one fly the pattern: another may
                self._detour_pending.pop(i, None)
                number = self._confirm_pending.pop(i, None)
                if number is not None:
                    self.confirmations[number].tried.add(i)
            if o.reason == "more work" and sent is not o:
                # it flies on with the route it has, and the plan gives it more: it comes
                # home at the next re-plan (at once), and the rest of its sweep is handed on
                self._detour_pending.pop(i, None)
                self._cut_short.add(i)
                self._last_replan_s = -np.inf
                continue
            if sent is None:
                waited = now_s - self._pending_resume.get(i, now_s)
                if o.reason == "resume" and v.why.startswith("separation"):
                    if waited < RESUME_RETRY_S:
                        # the neighbours in the way move off as they resume: next tick
                        self._pending_resume.setdefault(i, now_s)
                    else:
                        self._pending_resume.pop(i, None)
                        self._pending_home[i] = "cannot resume"
                elif o.reason == "resume":
                    # it cannot carry on: it comes home, and its work is handed on
                    self._pending_resume.pop(i, None)
                    self._pending_home[i] = "cannot resume"
                elif o.purpose is Purpose.HOME:
                    # a recall the kernel refused this tick (another drone on the way home
                    # right now) is tried again next tick, until it goes: a drone the operator
                    # called home must not fly on with its sortie (failsafes retry their own).
                    # One whose way home is blocked by a neighbour, recalled or sent home by a
                    # failsafe, stops where it is meanwhile and soon steps out of their band
                    # (seed 354: a failsafe return refused for 300 s hovered its battery flat)
                    if o.reason != "failsafe":
                        self._pending_home[i] = o.reason
                    if v.why.startswith("separation"):
                        self._hold_for_way_home.add(i)
                        self._home_blocked.setdefault(i, now_s)
                elif o.reason == "launch" and v.why.startswith("energy"):
                    # a launch is ordered only on a swapped pack: a pack that still cannot fly
                    # the sortie (a battery that lost capacity) never will, so its work is
                    # handed on rather than waiting for a launch that never comes. A real
                    # vehicle reports its new pack a little after the crew's swap (telemetry
                    # lags, crews are slower than planned): it is given one more swap time.
                    wait_s = max(float(self.plan.mission.fleet.swap_s[i]), LAUNCH_ENERGY_WAIT_S)
                    if now_s >= self.ready_s[i] + wait_s:
                        self._withdraw.setdefault(i, f"cannot fly its next sortie ({v.why})")
                continue
            if o.reason == "resume":
                self._pending_resume.pop(i, None)
                self._steps.pop(i, None)
            if o.purpose is Purpose.HOME:
                self._home_blocked.pop(i, None)
                self._steps.pop(i, None)
            if o.reason == "failsafe":
                self._commanded[i] = self.failsafe.action[i]
            if sent.command is Command.START_MISSION:
                self._uploaded[i] = sent.route
                self._leg_seq[i] = -1
                self._uploads[i] += 1
            if o.reason == "confirm" and sent is o:
                self._seq_shift[i], self._detour_end[i] = self._detour_pending.pop(i)
                c = self.confirmations[self._confirm_pending.pop(i)]
                c.drone, c.started_s, c.upload = i, now_s, int(self._uploads[i])
                far = float(np.hypot(*(np.asarray(c.xy_m) - self._uploaded_at(i))))
                started = {"detection": c.number, "distance_m": round(far, 1)}
                events.append(Event(now_s, "confirm_start", self.ids[i], started))
                continue
            if o.reason == "more work" and sent is o:
                self._seq_shift[i], self._detour_end[i] = self._detour_pending.pop(i)
                more: dict[str, Any] = {"sortie": int(self.book.last_number[i])}
                events.append(Event(now_s, "more_work", self.ids[i], more))
                continue
            if o.reason == "resume" and sent.command is Command.START_MISSION:
                # a step out of the band: the rest of the sortie as a detour
                self._seq_shift[i], self._detour_end[i] = self._detour_pending.pop(i)
                continue
            if o.reason == "off route" and o.purpose is Purpose.WORK:
                shift, end = self._detour_pending.pop(i, (0, 0))
                if sent is o:  # back on its sortie by the detour
                    self._seq_shift[i], self._detour_end[i] = shift, end
                    self._detours[i] += 1
                    continue
                if sent.command is Command.START_MISSION:  # the kernel sent it home instead
                    assert sent.route is not None
                    self._return_items[i] = len(sent.route)
                if self._at_work(i, self.mode):
                    self._cut_short.add(i)
                continue
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
        for i in launch:
            sweep = self.book.sorties[i][int(self.book.next[i]) - 1].sweep_xy
            self._route_at[i] = sweep[0] if len(sweep) else np.nan
        self._return_items[launch] = 0
        self._seq_shift[launch] = 0
        self._detour_end[launch] = 0
        self._detours[launch] = 0
        self.flown[launch] = True
        return launch

    def _current_leg(self, fs: FleetState) -> NDArray[np.int8]:
        """Kind of the leg each drone flies in AUTO: the leg into its current mission item."""
        return self._legs(fs, fs.airborne & (fs.mode == AutopilotMode.AUTO))

    def _legs(self, fs: FleetState, auto: NDArray[np.bool_]) -> NDArray[np.int8]:
        """Kind of the leg into the current mission item of each drone in ``auto`` (flying
        its mission, or holding on it), 0 for the others."""
        book = self.book
        sortie = book.flying
        active = auto & (sortie >= 0)
        back = auto & (self._return_items > 0)
        active &= ~back
        leg = np.zeros(self.n, np.int8)
        # in AUTO on a route the book no longer has (a recall waiting for its way home)
        leg[auto & (sortie < 0) & ~back] = Leg.TRANSIT
        if back.any():
            last = fs.mission_seq[back] >= self._return_items[back] - 1
            leg[back] = np.where(last, Leg.DESCEND, Leg.RETURN)
        if active.any():
            k = sortie[active]
            count = book.leg_count[k]
            seq = fs.mission_seq[active] + self._seq_shift[active]
            step = np.clip(seq - 1, 0, np.maximum(count - 1, 0))
            leg[active] = book.leg_table[book.leg_first[k] + step]
            end = self._detour_end[active]
            leg[active] = np.where(fs.mission_seq[active] < end, Leg.TRANSIT, leg[active])
        return leg

    def _monitor(self, fs: FleetState, events: list[Event], now_s: float) -> None:
        self.watch.look(fs, fs.airborne & ~self.lost, self.ids, now_s, events)
        self.sensors.look(fs, self._uploaded)

    # -- confirming detections ----------------------------------------------------------------

    def _note_detection(self, data: dict[str, Any], t_s: float) -> None:
        """A new detection (its event's ``data``): the same object as an open confirmation
        (``same_as`` in the event), or a new one to confirm, if the mission confirms."""
        if not self._confirms or self.found is not None:
            return
        xy = np.array([float(data["x_m"]), float(data["y_m"])])
        near = open_near(self.confirmations, self.detection_status, xy, self._merge_m)
        if near is not None:
            near.redetections += 1
            data["same_as"] = near.number
            return
        number = int(data["detection"])
        self.confirmations[number] = Confirmation(number, (float(xy[0]), float(xy[1])), t_s)

    def _uploaded_at(self, i: int) -> FloatArray:
        """Where drone ``i`` was when its current route went up: the route's last point (the
        pattern comes back there before its sortie goes on)."""
        route = self._uploaded[i]
        end = int(self._detour_end[i])
        if route is None or end < 1:
            return np.full(2, np.nan)
        return np.asarray(route)[end - 1, :2]

    def _confirmations(
        self, fs: FleetState, now_s: float, events: list[Event], orders: list[Order]
    ) -> None:
        """Note the patterns flown; send the nearest suitable drone over each detection that
        waits for one (an eligible drone is at work in AUTO on a planned sortie, not already on
        a detour); give up on one no drone could take for ASSIGN_TIMEOUT_S."""
        if not self.confirmations:
            return
        for c in self.confirmations.values():
            if c.drone < 0 or c.flown_s is not None:
                continue
            i = c.drone
            gone = not fs.airborne[i] or self.lost[i] or self._uploads[i] != c.upload
            if gone or fs.mission_seq[i] >= self._detour_end[i]:
                c.flown_s = now_s
                data = {"detection": c.number, "redetections": c.redetections, "complete": not gone}
                events.append(Event(now_s, "confirmation_flown", self.ids[i], data))
        waiting = [c for c in self.confirmations.values() if c.waiting]
        if not waiting or self.paused or self.found is not None:
            return
        eligible = fs.airborne & ~self.lost & ~self.held & ~self.recalled
        eligible &= (fs.mode == AutopilotMode.AUTO) & (self.book.flying >= 0)
        eligible &= np.isin(self.mode, (FlightMode.SWEEP, FlightMode.TRANSIT))
        eligible &= (self.failsafe.action == Action.NONE) & (self._return_items == 0)
        eligible &= fs.mission_seq >= self._detour_end  # not on a detour already
        # one pattern at a time: a drone flying one, or asked to this tick, takes no other
        flying = [c.drone for c in self.confirmations.values() if c.flown_s is None]
        busy = [o.drone for o in orders] + flying + list(self._confirm_pending)
        eligible[[b for b in busy if b >= 0]] = False
        for c in waiting:
            if now_s - c.reported_s > ASSIGN_TIMEOUT_S:
                c.gave_up = True
                data = {"detection": c.number, "tried": len(c.tried)}
                events.append(Event(now_s, "confirmation_unassigned", None, data))
                continue
            while True:
                d = nearest_drone(fs.pos_m, eligible, np.asarray(c.xy_m), c.tried)
                if d is None:
                    break
                order = self._confirm_order(d, c, fs)
                if order is None:
                    c.tried.add(d)
                    continue
                self._confirm_pending[d] = c.number
                orders.append(order)
                eligible[d] = False
                break

    def _confirm_order(self, i: int, c: Confirmation, fs: FleetState) -> Order | None:
        """Drone ``i``'s sortie with the tight pattern over ``c`` in front of the rest of it:
        out to the pattern, the pattern (its flyable parts), back to where the drone left its
        leg; None if there is no flyable way."""
        route = self._uploaded[i]
        seq = int(fs.mission_seq[i])
        if route is None or not 1 <= seq < len(route):
            return None
        rest = np.asarray(route)[seq:]
        at = fs.pos_m[i, :2]
        pattern = pattern_xy(np.asarray(c.xy_m), float(self.plan.mission.fleet.swath_m[i]))
        runs = track_runs(pattern, self._finder.flyable)
        if not runs:
            return None
        way = [at[None]]
        cur = at
        try:
            for run in runs:
                way += [self._finder.path(cur, run[0])[1:], run[1:]]
                cur = run[-1]
            way.append(self._finder.path(cur, at)[1:])
        except InfeasibleError:
            return None
        hops = np.vstack(way)[1:]
        alt = float(max(fs.pos_m[i, 2], rest[0, 2]))
        detour = np.column_stack([hops, np.full(len(hops), alt)])
        # as any detour: item k of the new mission is item k + shift of the sortie, and the
        # legs into its first len(hops) items are the pattern's (transit to the book)
        self._detour_pending[i] = (seq + int(self._seq_shift[i]) - len(hops), len(hops))
        return Order(i, Command.START_MISSION, np.vstack([detour, rest]), Purpose.WORK, "confirm")

    def _found(
        self, number: int, fs: FleetState, now_s: float, events: list[Event], orders: list[Order]
    ) -> str:
        """The operator confirmed detection ``number``: the person is found. An alert; with a
        probability map (the search for one missing person) the search ends: every drone is
        called home, and none launches again."""
        self.found = number
        c = self.confirmations.get(number)
        data: dict[str, Any] = {"detection": number}
        if c is not None:
            lon, lat = self.plan.mission.frame.to_lonlat(*c.xy_m)
            data.update(lon=round(float(lon), 7), lat=round(float(lat), 7))
        ends = self.prior is not None
        data["search_ended"] = ends
        events.append(Event(now_s, "found", None, data))
        if not ends:
            return "ok: found"
        self.recalled[:] = True
        self.held[:] = False
        self._pending_resume.clear()
        air = fs.airborne & ~self.lost
        for i in np.flatnonzero(air):
            if self.mode[i] not in (FlightMode.RETURN, FlightMode.LANDING):
                orders.append(self._home_order(int(i), fs.pos_m[i, :2], fs, "found", events))
        return f"ok: found, {int(air.sum())} airborne called home"

    @property
    def coverage(self) -> CoverageGrid:
        """The ground the cameras have seen so far (:class:`~skysweep.footprint.CoverageGrid`)."""
        return self.sensors.coverage

    @property
    def prior(self) -> ProbabilityGrid | None:
        """The mission's probability map (None: it gives none)."""
        return self.sensors.prior

    @property
    def search_effort(self) -> FloatArray | None:
        """The effort (m² swept) the cameras have really put into each cell of :attr:`prior`."""
        return self.sensors.effort_m2

    @property
    def pos(self) -> float | None:
        """Probability of success of the search flown so far (None without a probability
        map): every cell's POA times its POD from the effort really put in it."""
        return self.sensors.pos

    @property
    def poc(self) -> FloatArray | None:
        """Each cell's probability of containment now, by Bayes' rule after the unsuccessful
        search flown so far (None without a probability map). A detection awaiting the
        operator's verdict is no unsuccessful search: the looks at its cell are folded back in
        only once it is dismissed."""
        open_ = [c for c in self.confirmations.values() if c.number not in self.detection_status]
        return self.sensors.poc([c.xy_m for c in open_])

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
            keep_out_breaches=self.watch.keep_out_breaches,
            keep_in_breaches=self.watch.keep_in_breaches,
            min_separation_m=(
                round(self.watch.min_separation_m, 2)
                if np.isfinite(self.watch.min_separation_m)
                else None
            ),
            landed=int(((self.mode == FlightMode.LANDED) & self.flown).sum()),
            landed_below_reserve=self.landed_below_reserve,
            detections=self.detections,
            state=self.lifecycle.state.name,
            health=self.lifecycle.health.name,
            reasons=list(self.lifecycle.reasons),
            replans=self.plan_version,
            pos=None if self.pos is None else round(self.pos, 5),
        )
