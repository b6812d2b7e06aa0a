"""A tighter lower bound on any plan's makespan: how much efficiency a mission allows at all.

The mission's lower bound (:func:`skysweep.plan.metrics.lower_bound_s`, the foundation issue's
definition) measures each point's straight distance from the *nearest* site and lets every
drone sweep it as if it flew from there; it counts no climb and no battery. On a mission whose
sites differ (quads at a hub inside the area, VTOLs at an airstrip outside it) or whose drones
need several packs, no plan comes near it, however good. This bound keeps the same fluid model
(area swept at speed × swath, every point flown out to and back from) and tightens it where
the physics does:

- each site's drones fly from their own site, over the flyable distance (round keep-outs),
  to within half a swath of what they sweep;
- every sortie climbs to the mission altitude and comes down again (time and battery);
- a sortie sweeps beyond distance r for at most B/k − 2r'/v seconds, r' = r less half a
  swath, B the usable pack (endurance less the reserve, less the climb and descent) in
  cruise-seconds, and the pack is swapped at the site between sorties. k = 1 + (1 − h)·w²/v²
  is what a second of level flight costs on average over any closed path flown at ground
  speed v in a wind w, h the share of cruise power a hover takes (:mod:`skysweep.energy`):
  the power is h + (1 − h)·|v·u − w|²/v² for the ground track's heading u, and over a loop u
  averages to nothing.

Each of these only holds a plan to what it must do anyway (corners, lane overlap and the
battery rule's head-wind home are left out). So, with the mission's launch slots
(:func:`skysweep.plan.metrics.launch_slots`, as the planner launches), no plan that meets the
mission's battery rule lands before this bound: ``lower_bound_s / fleet_bound_s`` is the most
efficiency any plan can reach on a mission (its *ceiling*), and ``fleet_bound_s / makespan_s``
says how close the planner comes to it.

Whether the fleet can finish by T is a maximum flow: each area sample's share runs to one of
the sites, down that site's chain of distance levels (the level of r holds at most what the
site's drones can sweep beyond r by T, which nests) to the sink. The smallest such T is found
by bisection. Samples stand for the area as in the mission's bound; checking finitely many
distances can only lower T, so the bound stays a bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow

from skysweep.energy import HOVER_POWER
from skysweep.geo import FloatArray
from skysweep.mission import Mission
from skysweep.plan.allocate import AreaSamples, DroneCosts
from skysweep.plan.deadline import least_deadline
from skysweep.plan.metrics import site_distances_m

#: Area samples the flow runs on (a fixed random subset of the area's samples).
FLOW_SAMPLES = 4_000
#: Distance levels per site: quantiles of the site's distances to the samples.
LEVELS = 48
#: The bisection stops when the bound is known to this many seconds.
TOLERANCE_S = 0.5
#: The flow's capacities are integers: the area is counted in this many units (int32 room).
AREA_UNITS = 2**26


def fleet_bound_s(mission: Mission, area: AreaSamples, launch_s: FloatArray) -> float:
    """The smallest T by which the fleet could sweep the searchable area, seconds from mission
    start, by the model above; ``area``: the area's samples with every site's flyable distance
    (:func:`skysweep.plan.allocate.sample_area`), ``launch_s``: every drone's first take-off
    (:func:`skysweep.plan.metrics.launch_slots`). ``inf`` if no drone can reach the area."""
    pick = np.random.default_rng(0).permutation(len(area.xy))[:FLOW_SAMPLES]
    dist = area.dist[:, pick]
    n_sites, k = dist.shape
    unit_m2 = float(mission.searchable.area) / AREA_UNITS
    # samples' supplies rounded down, the levels' capacities up: only ever easier to finish
    supply = int(AREA_UNITS // k)
    radii = [
        np.unique(np.concatenate([[0.0], np.quantile(d, np.linspace(0, 1, LEVELS))])) for d in dist
    ]
    level = [np.searchsorted(r, d, side="right") - 1 for r, d in zip(radii, dist, strict=True)]
    d_site = site_distances_m(mission)
    costs = DroneCosts.of(mission, launch_s)
    sweepers = [_Sweepers.of(mission, costs, s, float(d_site[s]), radii[s]) for s in range(n_sites)]
    graph = _Graph(k, [len(r) for r in radii], level, supply)

    def feasible(t_s: float) -> bool:
        caps = [np.ceil(sw.beyond_m2(t_s) / unit_m2) for sw in sweepers]
        return graph.max_flow(caps) >= supply * k

    hi = max(1.0, float(np.max(launch_s, initial=0.0)))
    # (30 doublings pass 1e9 s: beyond that the fleet cannot finish at all)
    found = least_deadline(lambda t: True if feasible(t) else None, hi, TOLERANCE_S, grow=30)
    return float("inf") if found is None else found[0]


@dataclass(frozen=True)
class _Sweepers:
    """One site's drones: what they can sweep beyond each distance level by a time T. Every
    array is (levels, the site's drones)."""

    rate_m2ps: FloatArray
    start_s: FloatArray
    overhead_s: FloatArray
    """A sortie's time out to the level (less half a swath) and back, with its climb and
    descent."""
    sweep_s: FloatArray
    """The seconds a sortie has left to sweep beyond the level."""
    swap_s: FloatArray

    @classmethod
    def of(
        cls, mission: Mission, costs: DroneCosts, site: int, d_site_m: float, radii_m: FloatArray
    ) -> _Sweepers:
        fleet = mission.fleet
        drones = np.flatnonzero(costs.site == site)
        v = costs.speed_mps[drones]
        # the whole usable pack: the planner's own margin (costs.budget_cs) is no rule
        budget_cs = fleet.endurance_s[drones] * (1.0 - mission.safety.battery_reserve)
        wind2 = float(np.hypot(*mission.wind_vector_mps)) ** 2
        # the battery's level flight in seconds: a loop's mean power in the wind (see above)
        level_s = (budget_cs - costs.vertical_cs[drones]) / (
            1.0 + (1.0 - HOVER_POWER) * wind2 / v**2
        )
        # a drone sweeps a point from half a swath off it
        reach_m = np.maximum(radii_m, d_site_m)[:, None] - 0.5 * fleet.swath_m[drones][None, :]
        out_back_s = 2.0 * np.maximum(reach_m, 0.0) / v[None, :]
        return cls(
            rate_m2ps=np.broadcast_to(fleet.sweep_rate_m2ps[drones], out_back_s.shape),
            start_s=np.broadcast_to(costs.launch_s[drones], out_back_s.shape),
            overhead_s=out_back_s + costs.vertical_s[drones],
            sweep_s=level_s - out_back_s,
            swap_s=np.broadcast_to(costs.swap_s[drones], out_back_s.shape),
        )

    def beyond_m2(self, t_s: float) -> FloatArray:
        """(L,) the most area the site's drones can sweep beyond each level by ``t_s``, m².

        A drone that sweeps for x seconds beyond r flies n ≥ max(1, x / sweep) sorties there,
        each with its overhead (out and back to r, climb and descent) and a swap between two:
        x + n·overhead + (n − 1)·swap ≤ t − launch, solved for x with the smallest n."""
        avail = t_s - self.start_s
        b, a, w = self.sweep_s, self.overhead_s, self.swap_s
        one = np.maximum(0.0, avail - a)
        safe_b = np.maximum(b, 1e-9)
        several = (avail + w) * safe_b / (safe_b + a + w)
        x = np.where(avail <= b + a, one, several)
        x = np.where(b > 0.0, x, 0.0)
        out: FloatArray = (self.rate_m2ps * x).sum(axis=1)
        return out


class _Graph:
    """The flow network: source → samples → each site's levels (a chain, far to near) → sink.

    Only the chain's capacities change with T; the rest is built once."""

    def __init__(
        self, k: int, levels: list[int], level: list[NDArray[np.intp]], supply: int
    ) -> None:
        self.source, self.sink = 0, 1
        first = 2 + k
        self.level_node = []
        tails: list[NDArray[np.intp]] = [np.zeros(k, np.intp)]
        heads: list[NDArray[np.intp]] = [2 + np.arange(k)]
        caps: list[NDArray[np.int64]] = [np.full(k, supply, np.int64)]
        for n_levels, lv in zip(levels, level, strict=True):
            nodes = first + np.arange(n_levels)
            self.level_node.append(nodes)
            first += n_levels
            tails.append(2 + np.arange(k))
            heads.append(nodes[lv])
            caps.append(np.full(k, supply, np.int64))
        self.fixed = (np.concatenate(tails), np.concatenate(heads), np.concatenate(caps))
        # the chain: level j → level j − 1, level 0 → sink
        chain_tails = np.concatenate(self.level_node)
        chain_heads = np.concatenate(
            [np.concatenate([[self.sink], n[:-1]]) for n in self.level_node]
        )
        self.chain = (chain_tails, chain_heads)
        self.n_nodes = first

    def max_flow(self, level_caps: list[FloatArray]) -> int:
        """The most area units that reach the sink with each site's levels capped so."""
        tails, heads, caps = self.fixed
        chain_caps = np.minimum(np.concatenate(level_caps), np.iinfo(np.int32).max).astype(np.int64)
        graph = csr_matrix(
            (
                np.concatenate([caps, chain_caps]).astype(np.int32),
                (np.concatenate([tails, self.chain[0]]), np.concatenate([heads, self.chain[1]])),
            ),
            shape=(self.n_nodes, self.n_nodes),
        )
        return int(maximum_flow(graph, self.source, self.sink, method="dinic").flow_value)
