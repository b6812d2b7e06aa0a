"""The randomized proof of issue 5: many random small missions flown with random faults, an
invariant monitor on the simulator's true state at every physics step.

Each mission is drawn from one integer seed (:func:`random_mission`, :func:`random_faults`): a
random concave area (a star-shaped blob, a union of boxes, or two or three islands), up to four
keep-out holes, one or two launch sites inside or outside it, a mixed fleet of 3 to 10 drones,
wind, and up to three faults from the fault schedule's kinds, each naming a random drone. The
mission is planned and flown in the built-in simulator through the real orchestrator, and an
:class:`Invariants` monitor watches the simulator's *true* state (not the telemetry the
orchestrator sees) after every 0.1 s simulator step. It counts:

- keep-in breaches and keep-out entries by a healthy drone (entries: outside → inside, per drone);
- separation violations between healthy airborne drones (distinct pairs);
- landings (and falls) of a drone with less than the reserve, unless a battery sag hit it or
  its motor weakened where even the slowed trip straight home ate into the reserve;
- orchestrator crashes (any exception out of the run);

and, at the end, whether the coverage reached 0.99 where the fleet could still do it. A drone is
healthy until a fault hits it (the simulator's ``truth.faults``); it is judged only while alive.
What happens to faulty drones is counted too, as "excused", so a run shows the monitor firing.

Everything is deterministic per seed: ``run_mission(seed)`` replays any failure, and
:func:`export_case` writes the mission and fault files for ``skysweep sim``. See
``docs/reliability.md``.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import yaml
from numpy.typing import NDArray
from shapely import affinity

from skysweep import mission as mission_mod
from skysweep.bench.plan_scenarios import MissionData, geojson, to_lonlat
from skysweep.energy import PLAN_MARGIN, drain_per_s, power_factor
from skysweep.errors import MissionError
from skysweep.footprint import CoverageGrid
from skysweep.geo import fence_margin
from skysweep.link.sim import SimLink
from skysweep.mission import Mission, zone_from_geojson
from skysweep.plan import Plan, plan_mission
from skysweep.proximity import VERTICAL_BAND_M, close_pairs
from skysweep.runtime.clock import SimClock
from skysweep.runtime.commands import OperatorCommand
from skysweep.runtime.orchestrator import Orchestrator
from skysweep.runtime.simulate import sim_world
from skysweep.sim.faults import Fault, parse_faults
from skysweep.sim.world import SEPARATION_MIN_ALT_M, World
from skysweep.store import RunLog
from skysweep.telemetry import AutopilotMode

#: Coverage the fleet must reach where it could still do the whole mission.
COVERAGE_BAR = 0.99
#: What must be zero, in report order (field, label): issue 5's invariants (crashes included)
#: and the coverage bar.
INVARIANTS: tuple[tuple[str, str], ...] = (
    ("keep_in_breaches", "keep-in breaches, healthy drones"),
    ("keep_out_entries", "keep-out entries, healthy drones"),
    ("separation_violations", "separation violations, healthy pairs"),
    ("landed_below_reserve", "landed below reserve, no sag"),
    ("crashes", "orchestrator crashes"),
    ("coverage_short", f"coverage < {COVERAGE_BAR} where the fleet could"),
)
#: What faulty drones did: counted, never a failure.
EXCUSED: tuple[tuple[str, str], ...] = (
    ("excused_keep_in", "keep-in breaches, faulty drones"),
    ("excused_keep_out", "keep-out entries, faulty drones"),
    ("excused_separation", "separation pairs with a faulty drone"),
    ("excused_below_reserve", "landed below reserve after a sag/weak motor"),
    ("excused_new_zone", "entries into a zone laid just ahead of the drone"),
)
#: An operator's new zone reaches the drones within one ground-station tick and a command's
#: round trip; a drone it was laid this close ahead of (plus its stopping distance and the
#: geofence margin) is excused an entry for ZONE_GRACE_S.
ZONE_NOTICE_S = 1.0
ZONE_GRACE_S = 10.0
FAULT_KINDS = ("drone_lost", "link_lost", "battery_sag", "gps_glitch", "motor_degraded")
#: Findings kept per mission (the counts are always complete).
MAX_FINDINGS = 20


# --------------------------------------------------------------------------------------------
# Random missions and faults
# --------------------------------------------------------------------------------------------


def _check_seed(seed: int) -> None:
    if seed < 0:
        raise ValueError(f"seeds are non-negative integers, not {seed}")


def _scaled(geom: shapely.Geometry, area_m2: float) -> shapely.Geometry:
    k = math.sqrt(area_m2 / geom.area)
    return affinity.scale(geom, k, k, origin=(0.0, 0.0))


def _blob(rng: np.random.Generator, wobble: float, k: int = 40) -> shapely.Polygon:
    """A star-shaped polygon of radius about 1 around the origin: always simple, concave once
    the wobble is large enough."""
    t = np.linspace(0.0, 2 * np.pi, k, endpoint=False)
    rad = np.ones(k)
    for h in (2, 3, 4, 5):
        rad += rng.uniform(0.3, 1.0) * wobble / h * np.cos(h * t + rng.uniform(0, 2 * np.pi))
    return shapely.Polygon(np.column_stack([rad * np.cos(t), rad * np.sin(t)]))


def _boxes(rng: np.random.Generator) -> shapely.Geometry:
    """A union of 2-4 overlapping boxes (L, T, U, steps), rotated: concave, sometimes with a
    courtyard (an interior ring)."""
    w, h = rng.uniform(300, 1000, 2)
    geom: shapely.Geometry = shapely.box(0, 0, w, h)
    for _ in range(int(rng.integers(1, 4))):
        ring = geom.exterior if isinstance(geom, shapely.Polygon) else geom.boundary
        p = ring.interpolate(rng.uniform(0, ring.length))
        bw, bh = rng.uniform(150, 700, 2)
        fx, fy = rng.uniform(0.15, 0.85, 2)
        geom = shapely.union(
            geom,
            shapely.box(p.x - fx * bw, p.y - fy * bh, p.x + (1 - fx) * bw, p.y + (1 - fy) * bh),
        )
    geom = affinity.rotate(geom, rng.uniform(0, 180), origin=(0.0, 0.0))
    c = geom.centroid
    return affinity.translate(geom, -c.x, -c.y)


def _islands(rng: np.random.Generator, area_m2: float) -> shapely.MultiPolygon:
    """Two or three star-shaped islands, 80-400 m apart."""
    k = int(rng.integers(2, 4))
    share = rng.dirichlet(np.full(k, 4.0)) * area_m2
    parts: list[shapely.Polygon] = []
    for a in share:
        blob = _scaled(_blob(rng, rng.uniform(0.1, 0.35)), float(a))
        for _ in range(200):
            if not parts:
                break
            angle = rng.uniform(0, 2 * np.pi)
            reach = max(shapely.Point(0, 0).hausdorff_distance(p) for p in parts)
            reach += math.sqrt(a / math.pi) * 1.6 + rng.uniform(80, 400)
            moved = affinity.translate(blob, reach * math.cos(angle), reach * math.sin(angle))
            if all(moved.distance(p) >= 80.0 for p in parts):
                blob = moved
                break
        parts.append(blob)
    return shapely.MultiPolygon(parts)


#: An area fills at most this share of its convex hull: clearly concave.
MAX_CONVEXITY = 0.95


def _random_area(rng: np.random.Generator) -> tuple[str, shapely.Geometry]:
    area_m2 = rng.uniform(0.3e6, 1.5e6)
    kind = str(rng.choice(["blob", "boxes", "islands"], p=[0.4, 0.35, 0.25]))
    for _ in range(100):
        if kind == "blob":
            geom = _scaled(_blob(rng, rng.uniform(0.3, 0.5)), area_m2)
        elif kind == "boxes":
            geom = _scaled(_boxes(rng), area_m2)
        else:
            geom = _islands(rng, area_m2)
        geom = shapely.set_precision(geom, 0.01)
        if geom.area <= MAX_CONVEXITY * geom.convex_hull.area:
            break
    return kind, geom


def _point_inside(rng: np.random.Generator, region: shapely.Geometry) -> tuple[float, float] | None:
    if region.is_empty:
        return None
    x0, y0, x1, y1 = region.bounds
    for _ in range(500):
        x, y = rng.uniform((x0, y0), (x1, y1))
        if shapely.contains_xy(region, x, y):
            return float(x), float(y)
    return None


def _point_beyond(rng: np.random.Generator, area: shapely.Geometry) -> tuple[float, float]:
    """A point 80-400 m beyond the far edge of ``area`` along a random ray from its centroid."""
    c = area.centroid
    angle = rng.uniform(0, 2 * np.pi)
    u = np.array([math.cos(angle), math.sin(angle)])
    ray = shapely.LineString([(c.x, c.y), (c.x + u[0] * 1e5, c.y + u[1] * 1e5)])
    hit = ray.intersection(area)
    far = max(
        (shapely.Point(c.x, c.y).distance(shapely.Point(p)) for p in shapely.get_coordinates(hit)),
        default=0.0,
    )
    d = far + rng.uniform(80, 400)
    return float(c.x + u[0] * d), float(c.y + u[1] * d)


def _zone(rng: np.random.Generator, centre: tuple[float, float]) -> shapely.Polygon:
    a, b = rng.uniform(25, 110, 2)
    if rng.random() < 0.5:
        shape = affinity.scale(shapely.Point(0, 0).buffer(1.0, quad_segs=6), a, b)
    else:
        shape = shapely.box(-a, -b, a, b)
    shape = affinity.rotate(shape, rng.uniform(0, 180), origin=(0.0, 0.0))
    return affinity.translate(shape, *centre)


def _draw_mission(rng: np.random.Generator, seed: int) -> MissionData:
    kind, area = _random_area(rng)
    origin = (round(float(rng.uniform(-150, 150)), 4), round(float(rng.uniform(-55, 55)), 4))
    min_sep = float(rng.integers(10, 16))
    # launch sites: inside the area (clear of its edge) or 80-400 m beyond it
    n_sites = int(rng.integers(1, 3))
    sites: list[dict[str, Any]] = []
    site_xy: list[tuple[float, float]] = []
    for s in range(n_sites):
        xy = _point_inside(rng, area.buffer(-80.0)) if rng.random() < 0.5 else None
        where = "inside"
        if xy is None:
            xy, where = _point_beyond(rng, area), "outside"
        site_xy.append(xy)
        sites.append(
            {
                "name": f"site {s + 1} ({where})",
                "xy": xy,
                "pads": int(rng.integers(1, 4)),
                "launch_interval_s": float(rng.integers(3, 9)),
            }
        )
    # keep-out holes, inside the area, apart from each other and from the launch sites
    zones: list[shapely.Polygon] = []
    inner = area.buffer(-30.0)
    shapely.prepare(inner)
    avoid = shapely.union_all([shapely.Point(p).buffer(160.0) for p in site_xy])
    want = int(rng.integers(0, 5))
    for _ in range(300 * want):
        if len(zones) == want:
            break
        centre = _point_inside(rng, inner)
        if centre is None:
            break
        z = _zone(rng, centre)
        if (
            inner.contains(z)
            and not z.intersects(avoid)
            and all(z.distance(o) >= 60.0 for o in zones)
            and area.difference(z).area > 0.5 * area.area
        ):
            zones.append(shapely.set_precision(z, 0.01))
    # a mixed fleet in 1-3 groups
    n = int(rng.integers(3, 11))
    groups = int(rng.integers(1, min(3, n) + 1))
    cuts = np.sort(rng.choice(np.arange(1, n), size=groups - 1, replace=False))
    counts = np.diff(np.concatenate([[0], cuts, [n]])).astype(int)
    fleet = [
        {
            "model": f"{('quad', 'hexa', 'vtol')[g]}-{chr(ord('a') + g)}",
            "count": int(c),
            "launch_site": sites[int(rng.integers(0, n_sites))]["name"],
            "speed_mps": round(float(rng.uniform(8, 15)), 1),
            "swath_m": round(float(rng.uniform(30, 70)), 0),
            "endurance_s": round(float(rng.uniform(900, 1800)), 0),
            "swap_s": round(float(rng.uniform(60, 180)), 0),
            "climb_mps": round(float(rng.uniform(3, 5)), 1),
            "accel_mps2": round(float(rng.uniform(3, 5)), 1),
        }
        for g, c in enumerate(counts)
    ]
    data: MissionData = {
        "name": f"reliability seed {seed} ({kind}, {len(zones)} holes, {n} drones)",
        "area": geojson(area, origin),
        "keep_out": [
            {"name": f"hole {i + 1}", "geometry": geojson(z, origin)} for i, z in enumerate(zones)
        ],
        "launch_sites": [],
        "fleet": fleet,
        "search": {"altitude_m": float(rng.integers(40, 81))},
        "safety": {
            "min_separation_m": min_sep,
            "geofence_margin_m": 10.0,
            "battery_reserve": 0.2,
            "lost_link_timeout_s": 10.0,
        },
        "weather": {
            "wind_mps": round(float(rng.uniform(0, 8)), 1),
            "wind_from_deg": round(float(rng.uniform(0, 360)), 0),
        },
        "simulation": {
            "targets": [{"kind": "person", "count": 1}],
            "gps_noise_m": round(float(rng.uniform(0.2, 1.5)), 2),
            "false_alarms_per_hour": 0.5,
            "separation": True,
        },
    }
    used = {g["launch_site"] for g in fleet}
    for site in sites:
        if site["name"] not in used:
            continue  # a site no group flies from is no site (its ground would go unflown)
        ((lon, lat),) = to_lonlat(np.array([site["xy"]]), origin).tolist()
        data["launch_sites"].append(
            {
                "name": site["name"],
                "lon": lon,
                "lat": lat,
                "pads": site["pads"],
                "launch_interval_s": site["launch_interval_s"],
            }
        )
    return data


def random_mission(seed: int) -> MissionData:
    """A random small mission (the data of a mission file, ready for
    :func:`skysweep.mission.parse`); the same for the same ``seed``.

    0.3-1.5 km², concave (a star-shaped blob, a union of boxes, or two or three islands as a
    MultiPolygon), 0-4 keep-out holes, 1-2 launch sites inside or outside, 3-10 drones in 1-3
    groups (8-15 m/s, 30-70 m swaths, 900-1800 s packs), wind 0-8 m/s from anywhere, onboard
    separation on, a little GPS noise, one person hidden at random.
    """
    _check_seed(seed)
    rng = np.random.default_rng([seed, 1])
    last: Exception | None = None
    for _ in range(50):
        data = _draw_mission(rng, seed)
        try:
            m = mission_mod.parse(data, source=f"<reliability seed {seed}>")
        except MissionError as exc:  # e.g. a site's pads do not fit: draw again
            last = exc
            continue
        if not _within_reach(m):  # a fleet that cannot reach its area: nothing to prove
            last = RuntimeError("part of the area is beyond every drone's battery")
            continue
        return data
    raise RuntimeError(f"seed {seed}: no valid mission in 50 draws (last: {last})")


def _within_reach(m: Mission) -> bool:
    """Whether every corner of the searchable area is within some drone's reach from its pad:
    out and back against the forecast wind on a usable pack, less a tenth for sweeping (the
    planner's own rule for which site may take which ground)."""
    f = m.fleet
    v = np.asarray(f.speed_mps, float)
    head = power_factor(v + float(np.hypot(*m.wind_vector_mps)), v)
    usable = (1.0 - m.safety.battery_reserve - PLAN_MARGIN) * np.asarray(f.endurance_s, float)
    vertical = 2.0 * m.altitude_m / np.asarray(f.climb_mps, float)
    reach = 0.9 * (usable - vertical) * v / (1.0 + head)
    corners = shapely.get_coordinates(m.searchable.boundary)
    dist = np.hypot(*(corners[None, :, :] - m.pad_xy_m[:, None, :]).transpose(2, 0, 1))
    return bool((dist <= reach[:, None]).any(axis=0).all())


def random_faults(seed: int, plan: Plan) -> list[Fault]:
    """0-3 faults of random kinds at random times within ``plan``'s planned flight, each naming
    a random drone; validated by :func:`~skysweep.sim.faults.parse_faults`."""
    _check_seed(seed)
    rng = np.random.default_rng([seed, 2])
    ids = plan.mission.fleet.ids
    horizon = max((s.land_s for s in plan.sorties), default=0.0)
    faults: list[dict[str, Any]] = []
    for _ in range(int(rng.choice(4, p=[0.2, 0.35, 0.3, 0.15]))):
        kind = str(rng.choice(FAULT_KINDS))
        f: dict[str, Any] = {
            "at_s": round(float(rng.uniform(0.05, 0.85) * horizon), 1),
            "kind": kind,
            "drone": str(rng.choice(ids)),
        }
        if kind == "link_lost":
            f["duration_s"] = round(float(rng.uniform(5, 90)), 1)
        elif kind == "battery_sag":
            f["capacity_factor"] = round(float(rng.uniform(0.4, 0.9)), 2)
            f["resistance_factor"] = round(float(rng.uniform(1, 4)), 2)
        elif kind == "gps_glitch":
            f["mode"] = str(rng.choice(["jump", "drift"]))
            f["offset_m"] = round(float(rng.uniform(10, 60)), 1)
            f["drift_mps"] = round(float(rng.uniform(0.2, 2.0)), 2)
            f["duration_s"] = round(float(rng.uniform(5, 40)), 1)
            f["bearing_deg"] = round(float(rng.uniform(0, 360)), 0)
        elif kind == "motor_degraded":
            f["speed_factor"] = round(float(rng.uniform(0.5, 0.9)), 2)
        faults.append(f)
    return parse_faults({"faults": faults}, f"<reliability seed {seed}>", ids)


def random_zones(seed: int, plan: Plan) -> list[OperatorCommand]:
    """0-2 keep-out zones an operator adds during the flight (a landslide, a fire front, a
    crash site): each at a random time within ``plan``'s planned flight, a random box or
    ellipse 50-550 m across over a random point of the searchable area, at least 160 m from
    every launch site and leaving more than half the area outside it."""
    _check_seed(seed)
    rng = np.random.default_rng([seed, 3])
    m = plan.mission
    horizon = max((s.land_s for s in plan.sorties), default=0.0)
    area = m.searchable
    shapely.prepare(area)
    avoid = shapely.union_all([shapely.Point(p).buffer(160.0) for p in m.site_xy_m])
    out: list[OperatorCommand] = []
    want = int(rng.choice(3, p=[0.2, 0.5, 0.3]))
    for k in range(want):
        for _ in range(100):
            centre = _point_inside(rng, area)
            if centre is None:
                break
            zone = affinity.scale(_zone(rng, centre), *(rng.uniform(1.0, 2.5),) * 2)
            if not zone.intersects(avoid) and area.difference(zone).area > 0.5 * area.area:
                out.append(
                    OperatorCommand(
                        command="add_keep_out",
                        at_s=round(float(rng.uniform(0.05, 0.7) * horizon), 1),
                        name=f"operator zone {k + 1}",
                        geometry=json.loads(shapely.to_geojson(m.frame.geom_to_lonlat(zone))),
                    )
                )
                break
    return sorted(out, key=lambda c: c.at_s)


def describe_fault(f: Fault) -> str:
    """One line: ``t=123.4s battery_sag quad-a-002 capacity_factor=0.5 ...``."""
    extra = {
        k: v for k, v in f.model_dump().items() if k not in ("at_s", "kind", "drone", "fraction")
    }
    rest = " ".join(f"{k}={v}" for k, v in extra.items() if v is not None)
    return f"t={f.at_s:g}s {f.kind} {f.drone}" + (f" {rest}" if rest else "")


# --------------------------------------------------------------------------------------------
# The monitor
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One violation (or excused event): what, when, who, and what the drone was doing."""

    kind: str
    t_s: float
    drones: tuple[str, ...]
    detail: str
    excused: bool = False

    def __str__(self) -> str:
        tag = " (excused)" if self.excused else ""
        return f"t={self.t_s:.1f}s {self.kind}{tag} {'/'.join(self.drones)}: {self.detail}"


class Invariants:
    """Checks the simulator's true state against the invariants of issue 5.

    :meth:`check` inspects the world as it is now; :meth:`attach` makes it run after every
    simulator step; calling the monitor with the orchestrator (it is a ``progress`` callback)
    checks too and remembers each drone's flight mode for the findings. :meth:`finish` takes the
    final coverage.
    """

    def __init__(
        self,
        mission: Mission,
        world: World,
        zones: Sequence[tuple[float, shapely.Geometry]] = (),
    ) -> None:
        self.mission = mission
        self.world = world
        n = len(world)
        keep_out = [z.geometry for z in mission.keep_out]
        self._keep_out = shapely.union_all(keep_out) if keep_out else None
        if self._keep_out is not None:
            shapely.prepare(self._keep_out)
        #: keep-out zones an operator adds, (seconds, local metres), by time: in force from then
        self._zones_due = sorted(zones, key=lambda z: z[0])
        self._keep_in = mission.keep_in
        shapely.prepare(self._keep_in)
        self.min_sep = float(mission.safety.min_separation_m)
        self.reserve = float(mission.safety.battery_reserve)
        self.ids = world.ids
        # per-drone state
        self.faults: list[set[str]] = [set() for _ in range(n)]
        self.faulty = np.zeros(n, bool)
        # a motor fault struck where even the slowed trip straight home eats into the reserve
        self._weak_beyond_home = np.zeros(n, bool)
        self._wind_mps = float(np.hypot(*mission.wind_vector_mps))
        self._faults_seen = 0
        self._in_keep_out = np.zeros(n, bool)
        # until when a drone an operator's zone was laid over or just ahead of is excused
        self._caught_until = np.full(n, -np.inf)
        self._out_keep_in = np.zeros(n, bool)
        self._flying = world.flying.copy()
        self._alive = world.alive.copy()
        self._orch_mode: np.ndarray | None = None
        # counts
        self.keep_in_breaches = 0
        self.keep_out_entries = 0
        self.landed_below_reserve = 0
        self.violating_pairs: set[tuple[int, int]] = set()
        self.excused_keep_in = 0
        self.excused_keep_out = 0
        self.excused_pairs: set[tuple[int, int]] = set()
        self.excused_below_reserve = 0
        self.excused_new_zone = 0
        self.landings = 0
        self.falls = 0
        self.findings: list[Finding] = []
        self.min_separation_m = math.inf
        # true coverage: where the cameras really were at the search altitude
        # (coarser than the orchestrator's grid, and fed every other step: it is only a check)
        self.true_coverage = CoverageGrid(mission.searchable, max_cells=100_000)
        self._cov_alt = 0.9 * mission.altitude_m
        self._cov_pts: list[np.ndarray] = []
        self._cov_r: list[np.ndarray] = []
        self._radius = np.asarray(mission.fleet.swath_m, float) / 2.0
        self.steps = 0
        self.error: str | None = None
        self._original_step: Callable[[], None] | None = None

    @property
    def separation_violations(self) -> int:
        return len(self.violating_pairs)

    # -- hooks -------------------------------------------------------------------------------

    def attach(self) -> None:
        """Check after every simulator step (the world's 0.1 s), not only every 0.5 s tick."""
        if self._original_step is not None:
            return
        step = self.world.step
        self._original_step = step

        def watched() -> None:
            step()
            self._safe_check()

        setattr(self.world, "step", watched)  # noqa: B010 (an instance attribute, on purpose)

    def __call__(self, orch: Orchestrator) -> None:
        """A ``progress`` callback: remember each drone's flight mode as the orchestrator sees
        it (for the findings), and check, unless :meth:`attach` already checks every step."""
        modes = getattr(orch, "mode", None)
        self._orch_mode = None if modes is None else np.array(modes, copy=True)
        if self._original_step is None:
            self._safe_check()

    def _safe_check(self) -> None:
        if self.error is not None:
            return
        try:
            self.check()
        except Exception:
            self.error = traceback.format_exc()

    # -- the checks --------------------------------------------------------------------------

    def _note(self, kind: str, drones: Sequence[int], detail: str, excused: bool) -> None:
        if len(self.findings) < MAX_FINDINGS:
            who = tuple(self.ids[i] for i in drones)
            self.findings.append(Finding(kind, round(self.world.t_s, 1), who, detail, excused))

    def _doing(self, i: int) -> str:
        w = self.world
        from skysweep.runtime.modes import FlightMode

        ap = _mode_name(AutopilotMode, int(w.mode[i]))
        orch = "?" if self._orch_mode is None else _mode_name(FlightMode, int(self._orch_mode[i]))
        speed = float(np.hypot(w.vel[i, 0], w.vel[i, 1]))
        faults = ",".join(sorted(self.faults[i])) or "none"
        return (
            f"autopilot {ap}, orchestrator {orch}, at ({w.pos[i, 0]:.0f}, "
            f"{w.pos[i, 1]:.0f}, alt {w.pos[i, 2]:.0f}) m, {speed:.1f} m/s, charge "
            f"{w.charge[i]:.3f}, faults so far: {faults}"
        )

    def _short_of_home(self, i: int) -> bool:
        """Whether drone ``i``, its motor just weakened, now needs more than its charge less
        the reserve to fly straight home at its slowed speed against a head-wind and come
        down. (A flyable path is never shorter, so this excuses no landing the orchestrator
        could have saved.)"""
        w = self.world
        v = float(w.vmax[i])
        dist = float(np.hypot(*(w.pos[i, :2] - w.home[i])))
        cruise, endurance = float(w.cruise[i]), float(w.endurance[i])
        need = dist / v * float(drain_per_s(v + self._wind_mps, cruise, endurance))
        need += float(w.pos[i, 2]) / float(w.climb[i]) * float(drain_per_s(0.0, cruise, endurance))
        return float(w.charge[i]) - need < self.reserve

    def check(self) -> None:
        """Inspect the world's true state now and count what is wrong."""
        w = self.world
        self.steps += 1
        # faults struck since the last check: those drones are no longer healthy
        for _, kind, drones in w.truth.faults[self._faults_seen :]:
            for i in drones:
                self.faults[i].add(kind)
                self.faulty[i] = True
                if kind == "motor_degraded" and w.flying[i]:
                    self._weak_beyond_home[i] |= self._short_of_home(i)
        self._faults_seen = len(w.truth.faults)

        alive = w.alive.copy()
        flying = w.flying.copy()
        x, y = w.pos[:, 0], w.pos[:, 1]

        # came down: landed (alive, motors off) or fell (dead without a drone_lost fault)
        landed = self._flying & ~flying & alive
        fell = self._alive & ~alive
        for i in np.flatnonzero(landed | fell).tolist():
            lost_by_fault = "drone_lost" in self.faults[i]
            if fell[i] and lost_by_fault:
                continue
            if landed[i]:
                self.landings += 1
            else:
                self.falls += 1
            charge = float(w.charge[i])
            if fell[i] or charge < self.reserve:
                # a sag, or a motor that weakened too far out for the reserve to survive
                # the slowed trip home (checked when it struck): the fault spent the reserve
                sagged = "battery_sag" in self.faults[i] or bool(self._weak_beyond_home[i])
                what = "fell (no drone_lost fault)" if fell[i] else "landed"
                detail = f"{what} with charge {charge:.3f} < reserve {self.reserve}; "
                detail += self._doing(int(i))
                if sagged:
                    self.excused_below_reserve += 1
                else:
                    self.landed_below_reserve += 1
                self._note("below_reserve", [int(i)], detail, sagged)

        judged = flying & alive
        while self._zones_due and self._zones_due[0][0] <= w.t_s:
            self._declare(self._zones_due.pop(0)[1], judged)
        # geofences: entries, per drone
        outside = judged & ~shapely.contains_xy(self._keep_in, x, y)
        for i in np.flatnonzero(outside & ~self._out_keep_in).tolist():
            if self.faulty[i]:
                self.excused_keep_in += 1
            else:
                self.keep_in_breaches += 1
            self._note("keep_in_breach", [int(i)], self._doing(int(i)), bool(self.faulty[i]))
        self._out_keep_in = outside
        if self._keep_out is not None:
            inside = judged & shapely.contains_xy(self._keep_out, x, y)
            for i in np.flatnonzero(inside & ~self._in_keep_out).tolist():
                caught = bool(w.t_s < self._caught_until[i])
                if self.faulty[i]:
                    self.excused_keep_out += 1
                elif caught:
                    self.excused_new_zone += 1
                else:
                    self.keep_out_entries += 1
                excused = bool(self.faulty[i]) or caught
                self._note("keep_out_entry", [int(i)], self._doing(int(i)), excused)
            self._in_keep_out = inside

        # separation: distinct pairs in one altitude band closer than the minimum
        if self.min_sep > 0:
            up = judged & (w.pos[:, 2] >= SEPARATION_MIN_ALT_M)
            pairs, d = _band_pairs(w.pos, up, 2.0 * self.min_sep)
            if len(d):
                self.min_separation_m = min(self.min_separation_m, float(d.min()))
            close = d < self.min_sep
            for (a, b), dist in zip(pairs[close].tolist(), d[close].tolist(), strict=True):
                key = (min(a, b), max(a, b))
                excused = bool(self.faulty[a] or self.faulty[b])
                seen = self.excused_pairs if excused else self.violating_pairs
                if key not in seen:
                    seen.add(key)
                    detail = f"{dist:.1f} m apart (minimum {self.min_sep:g} m); "
                    detail += f"{self.ids[a]}: {self._doing(a)}; {self.ids[b]}: {self._doing(b)}"
                    self._note("separation", list(key), detail, excused)

        # true coverage, stamped in batches
        sensing = judged & (w.pos[:, 2] >= self._cov_alt)
        if self.steps % 2 == 0 and sensing.any():
            self._cov_pts.append(w.pos[sensing, :2].copy())
            self._cov_r.append(self._radius[sensing])
            if len(self._cov_pts) >= 25:
                self._stamp()

        self._flying = flying
        self._alive = alive

    def _declare(self, zone: shapely.Geometry, judged: NDArray[np.bool_]) -> None:
        """An operator's zone is in force from now. A drone inside it is not entering it, and
        one it was laid just ahead of is excused an entry for a while: what it takes to stop
        from cruise speed (its acceleration), the ground station's tick and the geofence margin
        is more than a zone laid in front of it leaves."""
        w = self.world
        x, y = w.pos[:, 0], w.pos[:, 1]
        inside = judged & shapely.contains_xy(zone, x, y)
        self._in_keep_out |= inside
        speed = np.asarray(self.mission.fleet.speed_mps, float)
        accel = np.asarray(self.mission.fleet.accel_mps2, float)
        stop_m = speed * (ZONE_NOTICE_S + speed / (2.0 * accel))
        stop_m += float(self.mission.safety.geofence_margin_m)
        near = judged & (shapely.distance(zone, shapely.points(w.pos[:, :2])) < stop_m)
        self._caught_until[near] = w.t_s + ZONE_GRACE_S
        union = [zone] if self._keep_out is None else [self._keep_out, zone]
        self._keep_out = shapely.union_all(union)
        shapely.prepare(self._keep_out)

    def _stamp(self) -> None:
        if self._cov_pts:
            self.true_coverage.stamp(np.vstack(self._cov_pts), np.concatenate(self._cov_r))
            self._cov_pts.clear()
            self._cov_r.clear()

    def true_coverage_fraction(self) -> float:
        self._stamp()
        return self.true_coverage.fraction


def _band_pairs(
    pos: np.ndarray, active: np.ndarray, within_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of active drones in one altitude band and their horizontal distances: all of them
    for a small fleet (brute force, cheaper than a k-d tree there), else those closer than
    ``within_m`` (:func:`skysweep.proximity.close_pairs`). The definition of "too close" is
    the one :mod:`skysweep.proximity` gives the simulator and the orchestrator."""
    idx = np.flatnonzero(active)
    if len(idx) > 64:
        return close_pairs(pos, active, within_m, VERTICAL_BAND_M)
    if len(idx) < 2:
        return np.zeros((0, 2), np.intp), np.zeros(0)
    p = pos[idx]
    a, b = np.triu_indices(len(idx), 1)
    same = np.abs(p[a, 2] - p[b, 2]) < VERTICAL_BAND_M
    a, b = a[same], b[same]
    d = np.hypot(p[a, 0] - p[b, 0], p[a, 1] - p[b, 1])
    return np.column_stack([idx[a], idx[b]]), d


def _mode_name(enum: Any, value: int) -> str:
    try:
        return str(enum(value).name)
    except ValueError:
        return str(value)


# --------------------------------------------------------------------------------------------
# One mission, a batch
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MissionOutcome:
    """What one random mission did; ``failed`` lists the invariants it broke."""

    seed: int
    name: str
    drones: int
    holes: int
    faults: tuple[str, ...]
    """The fault schedule, one line per fault (:func:`describe_fault`)."""
    faults_hit: tuple[str, ...]
    """Fault kinds that struck a living drone."""
    planned_s: float
    plan_coverage: float
    """The plan's own coverage estimate (of the planned routes)."""
    mission_time_s: float
    wall_s: float
    complete: bool
    """The orchestrator finished (every sortie flown, every drone down) before its time limit."""
    end_state: str
    """The mission's lifecycle state and health at the end, e.g. ``COMPLETE/DEGRADED``."""
    coverage: float
    """The orchestrator's own coverage (from telemetry)."""
    coverage_true: float
    """Coverage stamped from the simulator's true positions."""
    capable: bool
    """The fleet could still do the whole mission: no drone fell or stayed lost (see docs)."""
    keep_in_breaches: int
    keep_out_entries: int
    separation_violations: int
    landed_below_reserve: int
    crashes: int
    coverage_short: int
    excused_keep_in: int
    excused_keep_out: int
    excused_separation: int
    excused_below_reserve: int
    min_separation_true_m: float | None
    landings: int
    airborne_at_end: int
    """Drones alive and still in the air when the run stopped."""
    findings: tuple[str, ...] = ()
    error: str | None = None
    """Traceback of an orchestrator crash, or why the mission could not be set up."""
    zones: tuple[str, ...] = ()
    """Keep-out zones an operator added in flight (``--zones``), one line each."""
    excused_new_zone: int = 0
    setup_error: bool = False
    """The mission could not be drawn or planned (a harness or planner problem, not a flight)."""

    @property
    def failed(self) -> tuple[str, ...]:
        bad = tuple(k for k, _ in INVARIANTS if getattr(self, k))
        return (*bad, "setup_error") if self.setup_error else bad

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failed": list(self.failed)}


def run_mission(seed: int, tick_s: float = 0.5, zones: bool = False) -> MissionOutcome:
    """Draw, plan and fly the mission of ``seed`` with its faults, watching the invariants;
    with ``zones``, an operator also adds keep-out zones in flight (:func:`random_zones`).

    The simulator's kernels run on one thread meanwhile (restored after): for ten drones the
    threads only cost synchronisation, and a batch already keeps every core busy. The results
    do not depend on it.
    """
    import numba

    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return _run_mission(seed, tick_s, zones)
    finally:
        numba.set_num_threads(threads)


def run_mission_with_zones(seed: int) -> MissionOutcome:
    """:func:`run_mission` with keep-out zones added in flight (importable by name, for the
    worker processes)."""
    return run_mission(seed, zones=True)


def _zone_line(c: OperatorCommand, m: Mission) -> str:
    local = _local_zone(c, m)
    at = local.centroid
    return f"t={c.at_s:g}s {c.name}: {local.area / 1e4:.1f} ha at ({at.x:.0f}, {at.y:.0f}) m"


def _local_zone(c: OperatorCommand, m: Mission) -> shapely.Geometry:
    """The zone as the ground station reads it, local metres."""
    return zone_from_geojson(m, c.geometry or {}, f"keep-out {c.name}")


def _coverage_outside(
    grid: CoverageGrid, zones: Sequence[shapely.Geometry], margin_m: float
) -> float:
    """``grid``'s coverage of its region less ``zones`` grown by the geofence margin (the
    ground nobody may fly over any more)."""
    if not zones:
        return grid.fraction
    return grid.fraction_outside(fence_margin(shapely.union_all(list(zones)), margin_m))


def _run_mission(seed: int, tick_s: float, with_zones: bool = False) -> MissionOutcome:
    t0 = time.perf_counter()
    name, drones, holes, planned, plan_cov = f"seed {seed}", 0, 0, 0.0, 0.0
    fault_lines: tuple[str, ...] = ()
    try:
        data = random_mission(seed)
        m = mission_mod.parse(data, source=f"<reliability seed {seed}>")
        name, drones, holes = m.name, len(m.fleet), len(m.keep_out)
        plan = plan_mission(m)
        planned = max((s.land_s for s in plan.sorties), default=0.0)
        plan_cov = float(plan.metrics.coverage_fraction)
        faults = random_faults(seed, plan)
        fault_lines = tuple(describe_fault(f) for f in faults)
        commands = random_zones(seed, plan) if with_zones else []
        zones = [(c.at_s, _local_zone(c, m)) for c in commands]
        zone_lines = tuple(_zone_line(c, m) for c in commands)
    except Exception:
        return _blank(seed, name, drones, holes, fault_lines, planned, t0, traceback.format_exc())

    world = sim_world(plan, seed, faults)
    monitor = Invariants(m, world, zones)
    monitor.attach()
    crash: str | None = None
    refused: list[str] = []
    orch: Orchestrator | None = None
    with RunLog(Path(":memory:"), create=True) as log:
        try:
            # as runtime.simulate does: pre-flight checks (authorise), then fly
            orch = Orchestrator(plan, SimLink(world), log, tick_s=tick_s)
            # the monitor wraps the simulator (not picklable), and the log is in memory: a
            # checkpoint would protect nothing here (tests/test_resume.py proves resuming)
            orch.checkpoint_every_s = math.inf
            authorise = getattr(orch, "authorise", None)
            refused = list(authorise(0.0)) if authorise is not None else []
            if not refused:
                script = [(c.at_s, c.command, c.args()) for c in commands]
                orch.run(SimClock(), progress=monitor, script=script)
        except Exception:
            crash = traceback.format_exc()
    if monitor.error is not None:  # the monitor itself broke: a harness bug, never hidden
        return _blank(seed, name, drones, holes, fault_lines, planned, t0, monitor.error)
    if refused:  # a valid, planned mission the ground station will not fly
        why = "pre-flight checks refused the mission: " + "; ".join(refused[:5])
        return _blank(seed, name, drones, holes, fault_lines, planned, t0, why)

    hit = tuple(sorted({k for _, k, ds in world.truth.faults if ds}))
    fell_by_fault = any(k == "drone_lost" and ds for _, k, ds in world.truth.faults)
    still_lost = bool(orch is not None and np.asarray(getattr(orch, "lost", [])).any())
    capable = not fell_by_fault and bool(world.alive.all()) and not still_lost
    margin = float(m.safety.geofence_margin_m)
    added = [z for _, z in zones]
    monitor.true_coverage_fraction()  # stamps what is pending
    true_cov = _coverage_outside(monitor.true_coverage, added, margin)
    coverage = _coverage_outside(orch.coverage, added, margin) if orch is not None else 0.0
    short = int(capable and crash is None and coverage < COVERAGE_BAR)
    findings = [str(f) for f in monitor.findings]
    if short:
        findings.append(
            f"coverage {coverage:.4f} < {COVERAGE_BAR} (true "
            f"{true_cov:.4f}, planned {plan_cov:.4f})"
            f" though no drone was lost; faults: {'; '.join(fault_lines) or 'none'}"
        )
    if crash is not None:
        findings.append("orchestrator crashed: " + crash.strip().splitlines()[-1])
    min_sep = monitor.min_separation_m
    return MissionOutcome(
        seed=seed,
        name=name,
        drones=drones,
        holes=holes,
        faults=fault_lines,
        faults_hit=hit,
        planned_s=round(planned, 1),
        plan_coverage=round(plan_cov, 5),
        mission_time_s=round(world.t_s, 1),
        wall_s=round(time.perf_counter() - t0, 2),
        complete=bool(orch is not None and getattr(orch, "done", False)),
        end_state=_end_state(orch),
        coverage=round(coverage, 5),
        coverage_true=round(true_cov, 5),
        capable=capable,
        keep_in_breaches=monitor.keep_in_breaches,
        keep_out_entries=monitor.keep_out_entries,
        separation_violations=monitor.separation_violations,
        landed_below_reserve=monitor.landed_below_reserve,
        crashes=int(crash is not None),
        coverage_short=short,
        excused_keep_in=monitor.excused_keep_in,
        excused_keep_out=monitor.excused_keep_out,
        excused_separation=len(monitor.excused_pairs),
        excused_below_reserve=monitor.excused_below_reserve,
        min_separation_true_m=round(min_sep, 2) if math.isfinite(min_sep) else None,
        landings=monitor.landings,
        airborne_at_end=int((world.flying & world.alive).sum()),
        findings=tuple(findings),
        error=crash,
        zones=zone_lines,
        excused_new_zone=monitor.excused_new_zone,
    )


def _end_state(orch: Orchestrator | None) -> str:
    life = getattr(orch, "lifecycle", None)
    state, health = getattr(life, "state", None), getattr(life, "health", None)
    return "/".join(str(getattr(x, "name", x)) for x in (state, health) if x is not None)


def _blank(
    seed: int,
    name: str,
    drones: int,
    holes: int,
    faults: tuple[str, ...],
    planned: float,
    t0: float,
    error: str,
) -> MissionOutcome:
    return MissionOutcome(
        seed=seed,
        name=name,
        drones=drones,
        holes=holes,
        faults=faults,
        faults_hit=(),
        planned_s=round(planned, 1),
        plan_coverage=0.0,
        mission_time_s=0.0,
        wall_s=round(time.perf_counter() - t0, 2),
        complete=False,
        end_state="",
        coverage=0.0,
        coverage_true=0.0,
        capable=False,
        keep_in_breaches=0,
        keep_out_entries=0,
        separation_violations=0,
        landed_below_reserve=0,
        crashes=0,
        coverage_short=0,
        excused_keep_in=0,
        excused_keep_out=0,
        excused_separation=0,
        excused_below_reserve=0,
        min_separation_true_m=None,
        landings=0,
        airborne_at_end=0,
        findings=("could not set up: " + error.strip().splitlines()[-1],),
        error=error,
        setup_error=True,
    )


@dataclass(frozen=True)
class ReliabilityReport:
    """A batch of missions: totals, and every failing mission with its seed."""

    seeds: tuple[int, ...]
    workers: int
    wall_s: float
    outcomes: tuple[MissionOutcome, ...]
    totals: dict[str, int] = field(default_factory=dict)
    """Per invariant (and excused count): the sum over the missions."""
    missions_failing: dict[str, int] = field(default_factory=dict)
    """Per invariant: how many missions broke it."""

    @property
    def failures(self) -> tuple[MissionOutcome, ...]:
        return tuple(o for o in self.outcomes if o.failed)

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        o = self.outcomes
        return {
            "missions": len(o),
            "seeds": [min(self.seeds, default=0), max(self.seeds, default=0)],
            "workers": self.workers,
            "wall_s": self.wall_s,
            "simulated_s": round(sum(x.mission_time_s for x in o), 1),
            "drones_flown": sum(x.drones for x in o),
            "faults_scheduled": sum(len(x.faults) for x in o),
            "totals": self.totals,
            "missions_failing": self.missions_failing,
            "capable_missions": sum(x.capable for x in o),
            "ok": self.ok,
            "failures": [x.as_dict() for x in self.failures],
        }


def _summarise(
    seeds: Sequence[int], workers: int, wall_s: float, outcomes: Iterable[MissionOutcome]
) -> ReliabilityReport:
    out = tuple(sorted(outcomes, key=lambda x: x.seed))
    keys = [k for k, _ in INVARIANTS] + [k for k, _ in EXCUSED]
    totals = {k: sum(int(getattr(x, k)) for x in out) for k in keys}
    totals["setup_errors"] = sum(x.setup_error for x in out)
    failing = {k: sum(1 for x in out if getattr(x, k)) for k, _ in INVARIANTS}
    failing["setup_errors"] = totals["setup_errors"]
    return ReliabilityReport(tuple(seeds), workers, round(wall_s, 1), out, totals, failing)


def run_batch(
    seeds: Iterable[int],
    workers: int = 1,
    progress: Callable[[MissionOutcome], None] | None = None,
    zones: bool = False,
) -> ReliabilityReport:
    """Fly the missions of ``seeds``, in ``workers`` processes when more than one; with
    ``zones``, an operator adds keep-out zones in flight (:func:`random_zones`)."""
    seeds = list(seeds)
    t0 = time.perf_counter()
    outcomes: list[MissionOutcome] = []

    def done(o: MissionOutcome) -> None:
        outcomes.append(o)
        if progress is not None:
            progress(o)

    if workers <= 1 or len(seeds) <= 1:
        for s in seeds:
            done(run_mission(s, zones=True) if zones else run_mission(s))
    else:
        _run_pooled(seeds, workers, done, run_mission_with_zones if zones else None)
    return _summarise(seeds, max(1, workers), time.perf_counter() - t0, outcomes)


def _run_pooled(
    seeds: list[int],
    workers: int,
    done: Callable[[MissionOutcome], None],
    fly: Callable[[int], MissionOutcome] | None = None,
) -> None:
    """``run_mission`` over ``seeds`` in worker processes that survive their workers dying.

    A worker that dies (a segfault, a kill) breaks the pool: the missions not finished are
    flown again in a fresh pool, twice at most; then each one left is flown alone, and one
    whose process still dies is counted as a crash, so a batch never hangs or loses a seed.
    ``fly`` (default :func:`run_mission`) must be importable by name in a fresh process.
    """
    fly = fly or run_mission
    # spawn, not fork: the numba kernels and BLAS threads of the parent are not fork-safe
    ctx = multiprocessing.get_context("spawn")
    pending = list(seeds)
    for attempt in range(3):
        alone = attempt == 2
        pending = _pool_pass(pending, 1 if alone else workers, ctx, done, fly, alone)
        if not pending:
            return


def _pool_pass(
    seeds: list[int],
    workers: int,
    ctx: Any,
    done: Callable[[MissionOutcome], None],
    fly: Callable[[int], MissionOutcome],
    alone: bool,
) -> list[int]:
    """One pass over ``seeds``; returns those whose worker died before they finished."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    left: list[int] = []
    groups = [[s] for s in seeds] if alone else [seeds]
    for group in groups:
        with ProcessPoolExecutor(min(workers, len(group)), mp_context=ctx) as pool:
            futures = {pool.submit(fly, s): s for s in group}
            for fut in as_completed(futures):
                seed = futures[fut]
                try:
                    done(fut.result())
                except BrokenProcessPool:
                    if alone:
                        done(_died(seed))
                    else:
                        left.append(seed)
    return left


def _died(seed: int) -> MissionOutcome:
    why = "the worker process flying this mission died (a crash below Python, or killed)"
    out = _blank(seed, f"seed {seed}", 0, 0, (), 0.0, time.perf_counter(), why)
    return replace(out, setup_error=False, crashes=1, findings=(why,))


def merge(reports: Sequence[ReliabilityReport]) -> ReliabilityReport:
    """One report of several batches."""
    seeds = [s for r in reports for s in r.seeds]
    outcomes = [o for r in reports for o in r.outcomes]
    workers = max((r.workers for r in reports), default=1)
    return _summarise(seeds, workers, sum(r.wall_s for r in reports), outcomes)


def format_report(report: ReliabilityReport, max_failures: int = 20) -> str:
    """The counts as a small table, then the failing seeds and what went wrong."""
    d = report.as_dict()
    o = report.outcomes
    lines = [
        f"reliability: {d['missions']} random missions (seeds {d['seeds'][0]}-{d['seeds'][1]}), "
        f"{d['drones_flown']} drones, {d['faults_scheduled']} faults scheduled, "
        f"{d['simulated_s'] / 3600:.1f} h simulated in {report.wall_s:.0f} s wall "
        f"({report.workers} worker{'s' if report.workers != 1 else ''})",
        "",
        f"{'invariant (must be 0)':<46}{'count':>7}{'missions':>10}",
    ]
    for k, label in INVARIANTS:
        lines.append(f"{label:<46}{report.totals[k]:>7}{report.missions_failing[k]:>10}")
    lines.append(f"{'missions that could not be set up':<46}{report.totals['setup_errors']:>7}")
    lines += ["", f"{'excused (a fault hit the drone first)':<46}{'count':>7}"]
    for k, label in EXCUSED:
        lines.append(f"{label:<46}{report.totals[k]:>7}")
    flown = [x for x in o if not x.setup_error]
    capable = [x for x in flown if x.capable]
    lines.append("")
    if flown:
        cov = np.array([x.coverage for x in capable]) if capable else np.zeros(0)
        lines.append(
            f"fleet could still do it in {len(capable)} of {len(flown)} missions"
            + (
                f"; their coverage min {cov.min():.4f}, median {np.median(cov):.4f}"
                if len(cov)
                else ""
            )
        )
        hidden = [x for x in capable if x.coverage_true < COVERAGE_BAR]
        lines.append(
            f"  of those, true coverage < {COVERAGE_BAR}: {len(hidden)} (the ground station "
            f"believed >= {COVERAGE_BAR} in {sum(x.coverage >= COVERAGE_BAR for x in hidden)})"
        )
        others = np.array([x.coverage for x in flown if not x.capable])
        if len(others):
            lines.append(
                f"missions that lost a drone: {len(others)}; their coverage median "
                f"{np.median(others):.4f} (not judged)"
            )
        incomplete = [x.seed for x in flown if not x.complete]
        aloft = sum(x.airborne_at_end for x in flown)
        which = f" (seeds {', '.join(map(str, incomplete[:20]))})" if incomplete else ""
        lines.append(
            f"runs stopped at the time limit: {len(incomplete)}{which}; "
            f"drones still airborne at the end: {aloft}"
        )
        wall = np.array([x.wall_s for x in flown])
        lines.append(
            f"wall time per mission: median {np.median(wall):.2f} s, max {wall.max():.2f} s"
        )
    lines.append("")
    if report.ok:
        lines.append("ALL INVARIANTS HOLD")
    else:
        bad = report.failures
        lines.append(f"FAILED: {len(bad)} mission(s); replay one with run_mission(SEED)")
        for x in bad[:max_failures]:
            lines.append(f"  seed {x.seed}: {', '.join(x.failed)}  [{x.name}]")
            for fl in x.faults:
                lines.append(f"      fault  {fl}")
            for zl in x.zones:
                lines.append(f"      zone   {zl}")
            for f in x.findings[:4]:
                lines.append(f"      -> {f}")
        if len(bad) > max_failures:
            lines.append(f"  ... and {len(bad) - max_failures} more")
    return "\n".join(lines)


def export_case(seed: int, out_dir: str | Path, zones: bool = False) -> tuple[Path, Path]:
    """Write the mission and fault files of ``seed``, to replay with
    ``skysweep sim MISSION --faults FAULTS --seed SEED``; with ``zones``, also the operator's
    zones as ``commands-SEED.yaml``, for ``--commands``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = random_mission(seed)
    plan = plan_mission(mission_mod.parse(data, source=f"<reliability seed {seed}>"))
    faults = random_faults(seed, plan)
    mpath = out / f"mission-{seed}.json"
    fpath = out / f"faults-{seed}.yaml"
    mpath.write_text(json.dumps(data, indent=1))
    dumped = [f.model_dump(exclude_none=True) for f in faults]
    fpath.write_text(yaml.safe_dump({"faults": dumped}, sort_keys=False))
    if zones:
        cmds = [c.model_dump(exclude_none=True) for c in random_zones(seed, plan)]
        cpath = out / f"commands-{seed}.yaml"
        cpath.write_text(yaml.safe_dump({"commands": cmds}, sort_keys=False))
    return mpath, fpath


def main_bench(
    missions: int,
    start_seed: int = 0,
    workers: int = 1,
    as_json: bool = False,
    zones: bool = False,
) -> int:
    """``skysweep bench reliability``: fly seeds ``start_seed`` … ``start_seed + missions - 1``
    (with ``zones``, keep-out zones added in flight), print the report (or JSON), return 0 if
    every invariant held, else 1."""
    seeds = range(start_seed, start_seed + missions)
    done = 0

    def tick(o: MissionOutcome) -> None:
        nonlocal done
        done += 1
        if not as_json and (done % 25 == 0 or o.failed):
            mark = f"  seed {o.seed} FAILED: {', '.join(o.failed)}" if o.failed else ""
            print(f"{done}/{missions}{mark}", file=sys.stderr, flush=True)

    report = run_batch(seeds, workers, progress=tick, zones=zones)
    if as_json:
        print(json.dumps(report.as_dict()))
    else:
        print(format_report(report))
    return 0 if report.ok else 1
