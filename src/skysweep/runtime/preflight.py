"""Pre-flight checks: a mission is authorised only when its fences, its sorties and its drones
pass (pure: reads the plan, the safety context and telemetry; returns the problems found)."""

from __future__ import annotations

import numpy as np
import shapely

from skysweep.plan.model import Plan
from skysweep.safety.kernel import Order, Outcome, Purpose, SafetyContext, check_orders
from skysweep.telemetry import AutopilotMode, Command, FleetState

#: A drone must report at least this charge (fraction of a pack) to be called ready.
READY_BATTERY = 0.95


def summarise(problems: list[str], shown: int = 5) -> str:
    """The first ``shown`` problems on one line, and how many more there are."""
    more = len(problems) - shown
    return "; ".join(problems[:shown]) + (f"; and {more} more" if more > 0 else "")


def preflight(plan: Plan, ctx: SafetyContext, fs: FleetState, now_s: float) -> list[str]:
    """Every problem that stops ``plan`` from being authorised, one line each; empty if none.

    - fences: keep-in and keep-out zones are valid polygons, every pad is inside the fence;
    - sorties: each one, flown from its pad on a full pack, passes the safety kernel's checks;
    - drones: every drone with work is heard from, on the ground, disarmed and charged.
    """
    m = plan.mission
    problems: list[str] = []
    for name, geom in [("keep_in", m.keep_in)] + [
        (f"keep_out {z.name}", z.geometry) for z in m.keep_out
    ]:
        if not shapely.is_valid(geom) or geom.is_empty:
            reason = shapely.is_valid_reason(geom)
            problems.append(f"fence: {name} is not a valid polygon ({reason})")
    pads = m.pad_xy_m
    inside = ctx.hard.sample(pads)[0] > 0.0
    for i in np.flatnonzero(~inside):
        problems.append(f"fence: the pad of {m.fleet.ids[i]} is outside the geofence")

    # every sortie as its own launch: on the ground at its pad with a full pack
    n = len(m.fleet)
    ground = FleetState(
        t_s=now_s,
        pos_m=np.column_stack([pads, np.zeros(n)]),
        vel_mps=np.zeros((n, 3)),
        battery=np.ones(n),
        mode=np.full(n, AutopilotMode.STANDBY, np.int8),
        mission_seq=np.zeros(n, np.intp),
        airborne=np.zeros(n, bool),
        last_seen_s=np.full(n, now_s),
    )
    orders = [Order(s.drone, Command.START_MISSION, s.path, Purpose.WORK) for s in plan.sorties]
    for s, v in zip(plan.sorties, check_orders(orders, ground, ctx), strict=True):
        # a sortie is not refused for separation here: the pads are empty before take-off
        if v.outcome is not Outcome.ACCEPTED:
            problems.append(f"sortie {m.fleet.ids[s.drone]}#{s.number}: {v.why}")

    busy = np.zeros(n, bool)
    for s in plan.sorties:
        busy[s.drone] = True
    timeout = m.safety.lost_link_timeout_s
    silent = ~(now_s - np.nan_to_num(fs.last_seen_s, nan=-np.inf) <= timeout)
    for i in np.flatnonzero(busy & silent):
        problems.append(f"drone {m.fleet.ids[i]}: no telemetry")
    for i in np.flatnonzero(busy & ~silent & fs.airborne):
        problems.append(f"drone {m.fleet.ids[i]}: already airborne")
    for i in np.flatnonzero(busy & ~silent & (fs.battery < READY_BATTERY)):
        problems.append(f"drone {m.fleet.ids[i]}: battery {fs.battery[i]:.0%}, not charged")
    return problems
