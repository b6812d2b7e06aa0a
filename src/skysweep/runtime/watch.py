"""What the orchestrator watches in the reported telemetry, tick by tick (local metres).

- :class:`BreachWatch`: airborne drones out of the keep-in area or in a keep-out zone, each
  breach counted once when it starts, and the closest approach of two drones in one altitude
  band.
- :class:`SensorLedger`: the ground the drones' cameras have seen (a coverage raster) and,
  with a probability map, the search effort they have put into each of its cells, from which
  the search's POS and the map's posterior follow.

Both judge the *reported* state (GPS error included): they are what the operator sees. The
true state is the simulator's to judge (:mod:`skysweep.bench.reliability`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely
from numpy.typing import NDArray

from skysweep.footprint import CoverageGrid
from skysweep.geo import FloatArray
from skysweep.mission import Mission
from skysweep.proximity import close_pairs
from skysweep.search.effort import pos as success_probability
from skysweep.search.effort import posterior, swept_effort
from skysweep.search.prior import ProbabilityGrid, build_prior, sweep_width_m
from skysweep.store import Event
from skysweep.telemetry import AutopilotMode, FleetState

#: A sensor sees the ground only this close to the search altitude (fraction of it).
SENSOR_MIN_ALT = 0.9


@dataclass
class BreachWatch:
    """Fence breaches and the closest approach among the drones, as reported."""

    keep_in: shapely.Geometry
    """The keep-in area (prepared)."""
    keep_out: shapely.Geometry | None
    """The keep-out zones in force, as one (prepared) geometry; None if there are none."""
    band_m: float
    """How near, across, two drones in one height band are looked at as a pair, metres:
    twice the minimum separation, at least 2 m (the band is
    :data:`~skysweep.proximity.VERTICAL_BAND_M`)."""
    in_keep_out: NDArray[np.bool_]
    """(n,) drones in a keep-out zone at the last look."""
    out_keep_in: NDArray[np.bool_]
    """(n,) drones out of the keep-in area at the last look."""
    keep_out_breaches: int = 0
    keep_in_breaches: int = 0
    min_separation_m: float = np.inf
    """The closest two airborne drones have come, metres (``inf``: no two were near)."""

    @classmethod
    def of(cls, mission: Mission) -> BreachWatch:
        n = len(mission.fleet)
        shapely.prepare(mission.keep_in)
        watch = cls(
            mission.keep_in,
            None,
            2.0 * max(mission.safety.min_separation_m, 1.0),
            np.zeros(n, bool),
            np.zeros(n, bool),
        )
        watch.set_keep_out([z.geometry for z in mission.keep_out])
        return watch

    def set_keep_out(self, zones: Sequence[shapely.Geometry]) -> None:
        """The keep-out zones now in force. A drone found in one counts as a new breach only
        once it was seen out of them all (or, for a zone just laid, see :meth:`already_in`)."""
        union = shapely.union_all(list(zones)) if zones else None
        if union is not None:
            shapely.prepare(union)
        self.keep_out = union

    def already_in(self, inside: NDArray[np.bool_]) -> None:
        """Drones ``inside`` a zone when it was laid: being there is no breach; going back in,
        once out, would be."""
        self.in_keep_out |= inside

    @property
    def breached(self) -> NDArray[np.bool_]:
        """(n,) drones seen at the last look in a keep-out zone or out of the keep-in area."""
        return self.in_keep_out | self.out_keep_in

    def look(
        self,
        fs: FleetState,
        air: NDArray[np.bool_],
        ids: Sequence[str],
        now_s: float,
        events: list[Event],
    ) -> None:
        """Look at the drones of ``fs`` that are in the air (``air``): a ``keep_out_breach`` or
        ``keep_in_breach`` event for each breach that starts now (``ids`` name the drones)."""
        x, y = fs.pos_m[:, 0], fs.pos_m[:, 1]
        if self.keep_out is not None:
            inside = air & shapely.contains_xy(self.keep_out, x, y)
            for i in np.flatnonzero(inside & ~self.in_keep_out).tolist():
                where = {"x_m": float(x[i]), "y_m": float(y[i])}
                events.append(Event(now_s, "keep_out_breach", ids[i], where))
                self.keep_out_breaches += 1
            self.in_keep_out = inside
        outside = air & ~shapely.contains_xy(self.keep_in, x, y)
        for i in np.flatnonzero(outside & ~self.out_keep_in).tolist():
            where = {"x_m": float(x[i]), "y_m": float(y[i])}
            events.append(Event(now_s, "keep_in_breach", ids[i], where))
            self.keep_in_breaches += 1
        self.out_keep_in = outside
        # closest approach within one altitude band, as reported (GPS error included)
        _, d = close_pairs(fs.pos_m, air, self.band_m)
        if len(d):
            self.min_separation_m = min(self.min_separation_m, float(d.min()))


@dataclass
class SensorLedger:
    """The ground the drones' cameras have seen, and the effort put into the probability map."""

    coverage: CoverageGrid
    """Cells of the searchable area some footprint has covered."""
    prior: ProbabilityGrid | None
    """The mission's probability map (None: it gives none)."""
    effort_m2: FloatArray | None
    """Effort per cell of ``prior``: the sweep width W times the distance flown over it, m²."""
    radius_m: FloatArray
    """(n,) each drone's footprint radius, half its swath."""
    sweep_width_m: FloatArray
    """(n,) each drone's sweep width W (:func:`~skysweep.search.prior.sweep_width_m`)."""
    sensing_alt_m: float
    """Below this height a camera sees nothing (:data:`SENSOR_MIN_ALT` of the altitude)."""
    prev_pos: FloatArray | None = None
    """(n, 3) positions at the last look (None before the first)."""
    prev_sensing: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))
    prev_seq: NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, np.intp))

    @classmethod
    def of(cls, mission: Mission) -> SensorLedger:
        n = len(mission.fleet)
        prior = build_prior(mission)
        return cls(
            CoverageGrid(mission.searchable),
            prior,
            np.zeros(prior.shape) if prior is not None else None,
            mission.fleet.swath_m / 2.0,
            sweep_width_m(mission),
            SENSOR_MIN_ALT * mission.altitude_m,
            prev_sensing=np.zeros(n, bool),
            prev_seq=np.zeros(n, np.intp),
        )

    def look(self, fs: FleetState, uploaded: Sequence[FloatArray | None]) -> None:
        """Stamp what each drone at sensing height saw since the last look: the straight line
        between its two reported positions, or, for a drone heard again after a silence, its
        route (``uploaded``: each drone's mission on board, local metres) through the waypoints
        it passed meanwhile.

        Lost drones count too: their telemetry stands still while they are silent (nothing is
        stamped), and if they are heard again their path meanwhile is."""
        sensing = fs.airborne & (fs.pos_m[:, 2] >= self.sensing_alt_m)
        if self.prev_pos is not None:
            both = sensing & self.prev_sensing
            skipped = both & (fs.mission_seq >= self.prev_seq + 2) & (fs.mode == AutopilotMode.AUTO)
            for i in np.flatnonzero(skipped).tolist():
                route = uploaded[i]
                if route is None:
                    continue
                route = np.asarray(route)
                hop = route[int(self.prev_seq[i]) : min(int(fs.mission_seq[i]), len(route)), :2]
                self.stamp_path(np.vstack([self.prev_pos[i, :2], hop, fs.pos_m[i, :2]]), i)
                both[i] = False
            both_i = np.flatnonzero(both)
            if len(both_i):
                a, b = self.prev_pos[both_i, :2], fs.pos_m[both_i, :2]
                step = float(self.coverage.spacing_m) / 2
                k = int(np.ceil(np.hypot(*(b - a).T).max() / step)) + 1
                t = np.linspace(0.0, 1.0, k)
                pts = (a[:, None, :] + (b - a)[:, None, :] * t[None, :, None]).reshape(-1, 2)
                self.coverage.stamp(pts, np.repeat(self.radius_m[both_i], k))
                self._add_effort(a, b, both_i)
        self.prev_pos = fs.pos_m.copy()
        self.prev_seq = np.asarray(fs.mission_seq).copy()
        self.prev_sensing = sensing

    def stamp_path(self, path: FloatArray, i: int) -> None:
        """Stamp drone ``i``'s footprint along a polyline (local metres)."""
        seg = np.diff(path, axis=0)
        length = np.hypot(seg[:, 0], seg[:, 1])
        if not len(length):
            return
        step = float(self.coverage.spacing_m) / 2
        along = np.concatenate([[0.0], np.cumsum(length)])
        s = np.linspace(0.0, along[-1], int(np.ceil(along[-1] / step)) + 2)
        pts = np.column_stack([np.interp(s, along, path[:, 0]), np.interp(s, along, path[:, 1])])
        self.coverage.stamp(pts, np.full(len(pts), self.radius_m[i]))
        self._add_effort(path[:-1], path[1:], np.full(len(path) - 1, i))

    def _add_effort(self, a: FloatArray, b: FloatArray, drones: NDArray[np.intp]) -> None:
        """Add what the cameras of ``drones`` swept flying from ``a`` to ``b`` to the effort
        in each cell of the probability map (the sweep width W × the distance flown)."""
        g = self.prior
        if g is None or self.effort_m2 is None:
            return
        self.effort_m2 += swept_effort(
            g.x0_m, g.y0_m, g.cell_m, g.shape, a, b, self.sweep_width_m[drones]
        )

    @property
    def pos(self) -> float | None:
        """Probability of success of the search flown so far (None without a probability
        map): every cell's POA times its POD from the effort really put in it."""
        if self.prior is None or self.effort_m2 is None:
            return None
        return success_probability(self.prior.poa, self.effort_m2, self.prior.area_m2)

    def poc(self, open_xy: Sequence[tuple[float, float]] = ()) -> FloatArray | None:
        """Each cell's probability of containment now, by Bayes' rule after the unsuccessful
        search flown so far (None without a probability map). A detection at ``open_xy``
        (local metres) that awaits the operator's verdict is no unsuccessful search: the looks
        at its cell are left out until it is dismissed."""
        if self.prior is None or self.effort_m2 is None:
            return None
        g = self.prior
        effort = self.effort_m2
        if open_xy:
            effort = effort.copy()
            ny, nx = g.shape
            for x, y in open_xy:
                col = int((x - g.x0_m) // g.cell_m)
                row = int((y - g.y0_m) // g.cell_m)
                if 0 <= row < ny and 0 <= col < nx:
                    effort[row, col] = 0.0
        return posterior(g.poa, effort, g.area_m2)
