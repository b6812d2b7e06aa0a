"""The safety kernel: the pure checker's rules on a small hand-made mission, its vectorisation,
and that nothing reaches a vehicle except through it.

The mission, in local metres (x east, y north): a 1 km square keep-in ``[-500, 500]²``, one
keep-out box ``[-100, 100]²`` in the middle, one launch site at (-350, -350) with three quads
(pads at (-365, -365), (-335, -365), (-365, -335)); geofence margin 10 m, separation 15 m,
reserve 0.2, ceiling 120 m, no wind. The guarded space is therefore ``[-491, 491]²`` minus
``[-109, 109]²``.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from skysweep import mission
from skysweep.errors import InfeasibleError, LinkError
from skysweep.geo import FloatArray, LocalFrame
from skysweep.link.base import Link
from skysweep.mission import Mission
from skysweep.safety.kernel import (
    SEPARATION_BAND_M,
    SEPARATION_HORIZON_S,
    Checked,
    Order,
    Outcome,
    Purpose,
    SafetyContext,
    SafetyKernel,
    Verdict,
    check_orders,
    route_energy,
    stopping_point,
)
from skysweep.telemetry import AutopilotMode, Command, FleetState, LinkEvent

SRC = Path(__file__).resolve().parents[1] / "src" / "skysweep"

#: Centre of the mission, degrees (the frame the mission builds is centred here exactly).
LON0, LAT0 = 8.05, 46.52
HALF = 500.0  # keep-in half side, m
BOX = 100.0  # keep-out half side, m
MARGIN = 10.0
SEPARATION = 15.0
RESERVE = 0.2
CEILING = 120.0
ALT = 60.0
PADS = np.array([[-365.0, -365.0], [-335.0, -365.0], [-365.0, -335.0]])


def _lonlat(points: Sequence[tuple[float, float]]) -> list[list[float]]:
    frame = LocalFrame(LON0, LAT0)
    lon, lat = frame.to_lonlat([p[0] for p in points], [p[1] for p in points])
    return [[float(a), float(b)] for a, b in zip(lon, lat, strict=True)]


def _box(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    ring = _lonlat([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def small_mission_data() -> dict[str, Any]:
    """A mission dict (lon/lat, as in a mission file): the square, the box, one site."""
    site = _lonlat([(-350.0, -350.0)])[0]
    square = _box(-HALF, -HALF, HALF, HALF)
    return {
        "name": "kernel test",
        "area": square,
        "keep_in": square,
        "keep_out": [{"name": "tower", "geometry": _box(-BOX, -BOX, BOX, BOX)}],
        "launch_sites": [{"name": "base", "lon": site[0], "lat": site[1], "pads": 2}],
        "fleet": [
            {
                "model": "quad",
                "count": 3,
                "launch_site": "base",
                "speed_mps": 10,
                "endurance_s": 900,
                "swath_m": 50,
            }
        ],
        "search": {"altitude_m": ALT},
        "safety": {
            "geofence_margin_m": MARGIN,
            "min_separation_m": SEPARATION,
            "battery_reserve": RESERVE,
            "max_altitude_m": CEILING,
        },
    }


@pytest.fixture(scope="module")
def m() -> Mission:
    built = mission.parse(small_mission_data(), source="test")
    # the hand-made coordinates below rely on the frame landing where it was meant to
    np.testing.assert_allclose(built.keep_in.bounds, (-HALF, -HALF, HALF, HALF), atol=1e-6)
    np.testing.assert_allclose(built.keep_out[0].geometry.bounds, (-BOX, -BOX, BOX, BOX), atol=1e-6)
    np.testing.assert_allclose(built.pad_xy_m, PADS, atol=1e-6)
    return built


@pytest.fixture(scope="module")
def ctx(m: Mission) -> SafetyContext:
    return SafetyContext.of(m)


# --------------------------------------------------------------------------------------------
# Helpers: hand-made telemetry and orders
# --------------------------------------------------------------------------------------------


def fleet(
    *,
    pos: dict[int, tuple[float, float, float]] | None = None,
    vel: dict[int, tuple[float, float]] | None = None,
    battery: float | dict[int, float] = 0.9,
    n: int = 3,
) -> FleetState:
    """Every drone on its pad, on the ground, still, with ``battery``; ``pos`` / ``vel`` override
    single drones (a drone above 0.5 m is airborne, flying its mission)."""
    p = np.column_stack([np.resize(PADS, (n, 2)), np.zeros(n)])
    for i, xyz in (pos or {}).items():
        p[i] = xyz
    v = np.zeros((n, 3))
    for i, (vx, vy) in (vel or {}).items():
        v[i, :2] = (vx, vy)
    b = np.full(n, battery if isinstance(battery, float) else 0.9)
    if isinstance(battery, dict):
        for i, x in battery.items():
            b[i] = x
    airborne = p[:, 2] > 0.5
    mode = np.where(airborne, AutopilotMode.AUTO, AutopilotMode.STANDBY).astype(np.int8)
    return FleetState(
        t_s=100.0,
        pos_m=p,
        vel_mps=v,
        battery=b,
        mode=mode,
        mission_seq=np.zeros(n, np.intp),
        airborne=airborne,
        last_seen_s=np.full(n, 100.0),
    )


def route(*points: Sequence[float]) -> FloatArray:
    """Waypoints (k, 3); a 2-tuple is at the search altitude."""
    return np.array([(*p, ALT) if len(p) == 2 else tuple(p) for p in points], float)


def work(drone: int, *points: Sequence[float], purpose: Purpose = Purpose.WORK) -> Order:
    return Order(drone, Command.START_MISSION, route(*points), purpose)


def sortie(drone: int, *points: Sequence[float]) -> Order:
    """A sortie from the drone's pad: up, through ``points``, back, down."""
    pad = tuple(PADS[drone])
    return work(drone, (*pad, 0.0), (*pad, ALT), *points, (*pad, ALT), (*pad, 0.0))


def one(order: Order, fs: FleetState, ctx: SafetyContext) -> Verdict:
    (verdict,) = check_orders([order], fs, ctx)
    return verdict


def need_of(ctx: SafetyContext, fs: FleetState, order: Order) -> float:
    """What the checker charges ``order`` in battery: from the drone (and its stopping point,
    if airborne) through the route."""
    assert order.route is not None
    i = order.drone
    pos = fs.pos_m[i]
    head = [pos]
    if fs.airborne[i]:
        head.append(np.array([*stopping_point(fs, ctx.accel_mps2)[i], pos[2]]))
    path = np.vstack([*head, order.route])
    return float(route_energy(ctx, np.array([i], np.intp), path, np.zeros(len(path), np.intp))[0])


def same_verdict(a: Verdict, b: Verdict) -> bool:
    if a.outcome != b.outcome or a.why != b.why:
        return False
    if (a.sent is None) != (b.sent is None):
        return False
    if a.sent is None or b.sent is None:
        return True
    s, t = a.sent, b.sent
    if (s.drone, s.command, s.purpose) != (t.drone, t.command, t.purpose):
        return False
    if (s.route is None) != (t.route is None):
        return False
    return s.route is None or t.route is None or np.array_equal(s.route, t.route)


# --------------------------------------------------------------------------------------------
# Geofence
# --------------------------------------------------------------------------------------------


def test_a_sortie_in_the_flyable_space_is_accepted(ctx: SafetyContext) -> None:
    fs = fleet()
    v = one(sortie(0, (-400, -400), (-400, 400), (400, 400), (400, -400)), fs, ctx)
    assert v.outcome is Outcome.ACCEPTED, v.why
    assert v.sent is v.order and v.why == ""


def test_an_airborne_route_in_the_flyable_space_is_accepted(ctx: SafetyContext) -> None:
    fs = fleet(pos={0: (-300.0, 300.0, ALT)}, vel={0: (5.0, 0.0)})
    v = one(work(0, (300, 300), (300, -300), (-300, -300)), fs, ctx)
    assert v.outcome is Outcome.ACCEPTED, v.why


def test_a_route_through_the_keep_out_is_refused(ctx: SafetyContext) -> None:
    fs = fleet(pos={0: (-300.0, 0.0, ALT)})
    v = one(work(0, (300, 0)), fs, ctx)
    assert v.outcome is Outcome.REFUSED and v.sent is None
    assert "geofence" in v.why


def test_a_waypoint_in_the_keep_out_is_refused(ctx: SafetyContext) -> None:
    fs = fleet(pos={0: (-300.0, 0.0, ALT)})
    v = one(work(0, (0, 0), (-300, 0)), fs, ctx)
    assert v.outcome is Outcome.REFUSED and "fence" in v.why


@pytest.mark.parametrize("out", [(-600.0, 0.0), (0.0, 520.0), (700.0, 700.0)])
def test_a_route_leaving_keep_in_is_refused(ctx: SafetyContext, out: tuple[float, float]) -> None:
    fs = fleet(pos={0: (-300.0, 300.0, ALT)})
    v = one(work(0, (-300, 400), out, (-300, 400)), fs, ctx)
    assert v.outcome is Outcome.REFUSED and "fence" in v.why


@pytest.mark.parametrize(
    ("clearance", "outcome"),
    [
        (MARGIN, Outcome.ACCEPTED),  # the full margin
        (MARGIN - 0.5, Outcome.ACCEPTED),  # within the guard tolerance of it
        (MARGIN - 1.5, Outcome.REFUSED),
        (5.0, Outcome.REFUSED),
        (1.0, Outcome.REFUSED),
    ],
)
def test_a_route_along_the_keep_out_must_keep_the_margin(
    ctx: SafetyContext, clearance: float, outcome: Outcome
) -> None:
    """A leg passing north of the keep-out box, ``clearance`` metres from it; both its ends
    lie well clear of the box."""
    y = BOX + clearance
    fs = fleet(pos={0: (-300.0, y, ALT)})
    v = one(work(0, (300, y), (300, 300)), fs, ctx)
    assert v.outcome is outcome, v.why
    if outcome is Outcome.REFUSED:
        assert "geofence" in v.why and "margin" in v.why


def test_a_route_out_to_the_keep_in_margin_is_accepted(ctx: SafetyContext) -> None:
    fs = fleet(pos={0: (300.0, 0.0, ALT)})
    v = one(work(0, (HALF - MARGIN, 0), (HALF - MARGIN, 300), (300, 100)), fs, ctx)
    assert v.outcome is Outcome.ACCEPTED, v.why


@pytest.mark.parametrize(
    "legs",
    [
        # the refused leg above, with one more waypoint in the middle of it, 5 m from the box
        [(-300.0, BOX + 5.0), (0.0, BOX + 5.0), (300.0, BOX + 5.0)],
        # out to a waypoint 8.5 m (1.5 m into the margin), or 3 m, from the keep-in edge
        [(HALF - MARGIN + 1.5, 0.0), (300.0, 100.0)],
        [(HALF - 3.0, 0.0), (300.0, 100.0)],
        # a whole leg 3 m inside the keep-in edge
        [(HALF - 3.0, -300.0), (HALF - 3.0, 300.0), (300.0, 300.0)],
    ],
)
def test_waypoints_inside_the_margin_are_refused(
    ctx: SafetyContext, legs: list[tuple[float, float]]
) -> None:
    fs = fleet(pos={0: (300.0, 300.0, ALT)})
    v = one(work(0, *legs), fs, ctx)
    assert v.outcome is Outcome.REFUSED, "a route within the margin of the fence was accepted"


# --------------------------------------------------------------------------------------------
# Stopping distance
# --------------------------------------------------------------------------------------------


def test_stopping_point_is_v_squared_over_2a_along_the_velocity(ctx: SafetyContext) -> None:
    fs = fleet(pos={0: (0.0, 140.0, ALT), 1: (200.0, 0.0, ALT)}, vel={0: (0.0, -20.0), 1: (3, 4)})
    stop = stopping_point(fs, ctx.accel_mps2)
    a = float(ctx.accel_mps2[0])
    np.testing.assert_allclose(stop[0], (0.0, 140.0 - 20.0**2 / (2 * a)))
    np.testing.assert_allclose(
        stop[1], np.array([200.0, 0.0]) + np.array([0.6, 0.8]) * 25 / (2 * a)
    )
    np.testing.assert_allclose(stop[2], PADS[2])  # still


@pytest.mark.parametrize(
    ("pos", "heading", "away"),
    [
        ((0.0, 140.0), (0.0, -1.0), (0.0, 250.0)),  # towards the keep-out box
        ((470.0, 0.0), (1.0, 0.0), (300.0, 0.0)),  # towards the keep-in edge
    ],
)
def test_a_new_route_is_checked_from_where_the_drone_stops(
    ctx: SafetyContext,
    pos: tuple[float, float],
    heading: tuple[float, float],
    away: tuple[float, float],
) -> None:
    """Flying fast at the fence, the drone cannot stop before it: a new work route (even one
    turning away) is refused. The same drone flying slowly gets it."""
    hard = shapely.box(-HALF, -HALF, HALF, HALF).difference(shapely.box(-BOX, -BOX, BOX, BOX))
    order = work(0, away, (300, 300))
    fast = fleet(pos={0: (*pos, ALT)}, vel={0: (20.0 * heading[0], 20.0 * heading[1])})
    stop = stopping_point(fast, ctx.accel_mps2)[0]
    assert not hard.contains(shapely.Point(stop)), "the fast drone must brake beyond the fence"
    v = one(order, fast, ctx)
    assert v.outcome is Outcome.REFUSED and "fence" in v.why

    slow = fleet(pos={0: (*pos, ALT)}, vel={0: (3.0 * heading[0], 3.0 * heading[1])})
    stop = stopping_point(slow, ctx.accel_mps2)[0]
    assert hard.buffer(-MARGIN).contains(shapely.Point(stop))
    v = one(order, slow, ctx)
    assert v.outcome is Outcome.ACCEPTED, v.why


# --------------------------------------------------------------------------------------------
# Altitude band
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("z", "outcome"),
    [
        (CEILING, Outcome.ACCEPTED),
        (CEILING - 20.0, Outcome.ACCEPTED),
        (0.0, Outcome.ACCEPTED),
        (CEILING + 1.0, Outcome.REFUSED),
        (400.0, Outcome.REFUSED),
        (-1.0, Outcome.REFUSED),
        (-20.0, Outcome.REFUSED),
    ],
)
def test_altitude_band(ctx: SafetyContext, z: float, outcome: Outcome) -> None:
    fs = fleet(pos={0: (-300.0, 300.0, ALT)})
    v = one(work(0, (-300, 350, ALT), (-250, 350, z), (-250, 300, ALT)), fs, ctx)
    assert v.outcome is outcome, v.why
    if outcome is Outcome.REFUSED:
        assert "altitude" in v.why and f"{CEILING:g}" in v.why


def test_the_ceiling_is_the_missions() -> None:
    data = small_mission_data()
    data["safety"]["max_altitude_m"] = 80.0
    low = SafetyContext.of(mission.parse(data, source="test"))
    assert low.ceiling_m == 80.0
    fs = fleet(pos={0: (-300.0, 300.0, ALT)})
    assert one(work(0, (-300, 350, 100.0)), fs, low).outcome is Outcome.REFUSED
    assert one(work(0, (-300, 350, 80.0)), fs, low).outcome is Outcome.ACCEPTED


# --------------------------------------------------------------------------------------------
# Separation
# --------------------------------------------------------------------------------------------


def test_a_launch_waits_while_a_drone_hovers_over_the_pad(ctx: SafetyContext) -> None:
    order = sortie(0, (-400, 400))
    over = fleet(pos={1: (PADS[0, 0] + 8.0, PADS[0, 1] + 5.0, 30.0)})
    v = one(order, over, ctx)
    assert v.outcome is Outcome.REFUSED and "separation" in v.why

    gone = fleet(pos={1: (-200.0, -300.0, 30.0)})
    assert one(order, gone, ctx).outcome is Outcome.ACCEPTED
    # a drone on the ground next door is no obstacle
    assert one(order, fleet(), ctx).outcome is Outcome.ACCEPTED


@pytest.mark.parametrize(
    ("vx", "z_above_band_s", "outcome"),
    [
        (7.0, 5.0, Outcome.REFUSED),  # will cross over the pad as the climb reaches its level
        (-7.0, 5.0, Outcome.ACCEPTED),  # flying away from the pad
        (7.0, 60.0, Outcome.ACCEPTED),  # crosses above the highest the launch climbs to
    ],
)
def test_a_launch_waits_for_a_drone_about_to_pass_over_its_pad(
    ctx: SafetyContext, vx: float, z_above_band_s: float, outcome: Outcome
) -> None:
    """A drone in transit 40 m from the pad at 7 m/s, at the altitude the climbing drone
    reaches ``z_above_band_s`` seconds after its band (seed 776 of the reliability run: a
    climb-out came up under a drone passing over at 51 m)."""
    climb = float(ctx.climb_mps[0])
    z = SEPARATION_BAND_M + climb * z_above_band_s
    x, y = PADS[0]
    fs = fleet(pos={1: (x - 40.0, y, z)}, vel={1: (vx, 0.0)})
    v = one(sortie(0, (-400, 400)), fs, ctx)
    assert v.outcome is outcome, v.why


@pytest.mark.parametrize(
    ("to", "dz", "outcome"),
    [
        ((400.0, 300.0), 0.0, Outcome.REFUSED),  # straight at the neighbour 20 m ahead
        ((300.0, 400.0), 0.0, Outcome.ACCEPTED),  # at right angles: passes 20 m off
        ((200.0, 300.0), 0.0, Outcome.ACCEPTED),  # away from it
        ((400.0, 300.0), 20.0, Outcome.ACCEPTED),  # straight at it, but 20 m below it
    ],
)
def test_an_airborne_route_keeps_its_distance(
    ctx: SafetyContext, to: tuple[float, float], dz: float, outcome: Outcome
) -> None:
    fs = fleet(pos={0: (300.0, 300.0, ALT), 1: (320.0, 300.0, ALT + dz)})
    v = one(work(0, to, (300, 200)), fs, ctx)
    assert v.outcome is outcome, v.why
    if outcome is Outcome.REFUSED:
        assert v.why == "separation"


def test_a_neighbour_flying_into_the_path_is_seen(ctx: SafetyContext) -> None:
    """Both flying straight on: a neighbour 60 m off, crossing the new heading at 10 m/s, would
    meet the drone in under the horizon."""
    fs = fleet(pos={0: (200.0, 300.0, ALT), 1: (260.0, 360.0, ALT)}, vel={1: (0.0, -10.0)})
    assert one(work(0, (400, 300)), fs, ctx).outcome is Outcome.REFUSED
    fs = fleet(pos={0: (200.0, 300.0, ALT), 1: (260.0, 360.0, ALT)}, vel={1: (0.0, 10.0)})
    assert one(work(0, (400, 300)), fs, ctx).outcome is Outcome.ACCEPTED


def _silent(fs: FleetState, drone: int, silent_s: float) -> FleetState:
    seen = fs.last_seen_s.copy()
    seen[drone] = fs.t_s - silent_s
    return dataclasses.replace(fs, last_seen_s=seen)


@pytest.mark.parametrize(
    ("silent_s", "outcome"),
    [
        (0.0, Outcome.REFUSED),  # heard now: it flies on into the path
        (9.0, Outcome.REFUSED),  # within the lost-link timeout (10 s): still taken as flying
        (250.0, Outcome.ACCEPTED),  # minutes old: where it was seen, at rest, 60 m off the path
        (np.inf, Outcome.ACCEPTED),  # never heard since (NaN below)
    ],
)
def test_a_neighbour_not_heard_for_long_is_not_flown_on(
    ctx: SafetyContext, silent_s: float, outcome: Outcome
) -> None:
    """Reliability seed 930: a drone that fell at 50 s, its last report 'crossing the path at
    10 m/s' still taken as flying at 300 s, kept a neighbour's way home refused for minutes."""
    fs = fleet(pos={0: (200.0, 300.0, ALT), 1: (260.0, 360.0, ALT)}, vel={1: (0.0, -10.0)})
    fs = _silent(fs, 1, silent_s)
    if np.isinf(silent_s):
        fs.last_seen_s[1] = np.nan
    v = one(work(0, (400, 300)), fs, ctx)
    assert v.outcome is outcome, v.why


def test_a_neighbour_not_heard_for_long_still_bars_where_it_was_seen(ctx: SafetyContext) -> None:
    """Its last fix is kept: a route straight through it is refused, and one a step above its
    band goes (the way out the orchestrator takes)."""
    fs = _silent(fleet(pos={0: (300.0, 300.0, ALT), 1: (320.0, 300.0, ALT)}), 1, 250.0)
    assert one(work(0, (400, 300)), fs, ctx).why == "separation"
    up = ALT + SEPARATION_BAND_M + 2.0
    step = work(0, (300, 300, up), (400, 300, up))
    assert one(step, fs, ctx).outcome is Outcome.ACCEPTED
    # its stale velocity does not carry it under the column of the step
    fs = dataclasses.replace(fs, vel_mps=np.array([[0.0, 0, 0], [-15.0, 0, 0], [0, 0, 0]]))
    assert one(step, fs, ctx).outcome is Outcome.ACCEPTED
    assert one(step, _silent(fs, 1, 0.0), ctx).why == "separation"


def test_a_launch_is_not_kept_waiting_by_a_phantom(ctx: SafetyContext) -> None:
    """A drone not heard for minutes, last seen 40 m from the pad flying at it, is not taken to
    be passing over the pad now."""
    x, y = PADS[0]
    fs = fleet(pos={1: (x - 40.0, y, 20.0)}, vel={1: (7.0, 0.0)})
    assert one(sortie(0, (-400, 400)), fs, ctx).why == "separation"
    assert one(sortie(0, (-400, 400)), _silent(fs, 1, 250.0), ctx).outcome is Outcome.ACCEPTED


@pytest.mark.parametrize("to", [(200.0, 300.0), (300.0, 400.0), (300.0, 200.0)])
def test_drones_already_too_close_may_still_be_given_routes(
    ctx: SafetyContext, to: tuple[float, float]
) -> None:
    """10 m apart already (a dodge, a launch): a route that does not close the gap is not
    refused for separation, or they could never be separated again."""
    fs = fleet(pos={0: (300.0, 300.0, ALT), 1: (310.0, 300.0, ALT)})
    v = one(work(0, to), fs, ctx)
    assert v.outcome is Outcome.ACCEPTED, v.why


def test_drones_already_too_close_are_not_sent_into_each_other(ctx: SafetyContext) -> None:
    fs = fleet(pos={0: (300.0, 300.0, ALT), 1: (310.0, 300.0, ALT)})
    v = one(work(0, (400, 300)), fs, ctx)  # through the neighbour 10 m ahead
    assert v.outcome is Outcome.REFUSED


def sized(ctx: SafetyContext, n: int) -> SafetyContext:
    """``ctx`` for a fleet of ``n`` drones like the first (pads repeated)."""
    return dataclasses.replace(
        ctx,
        home_m=np.resize(ctx.home_m, (n, 2)),
        speed_mps=np.resize(ctx.speed_mps, n),
        endurance_s=np.resize(ctx.endurance_s, n),
        climb_mps=np.resize(ctx.climb_mps, n),
        accel_mps2=np.resize(ctx.accel_mps2, n),
    )


def test_a_stream_resumed_together_flies_on_together(ctx: SafetyContext) -> None:
    """Six drones hovering in a line 20 m apart, all sent on along it in one batch (the last
    one first): each follows the one ahead as it moves off, so none waits."""
    n = 6
    fs = fleet(pos={k: (-300.0 + 20.0 * k, 300.0, ALT) for k in range(n)}, n=n)
    batch = [work(k, (400.0, 300.0)) for k in range(n)]
    verdicts = check_orders(batch, fs, sized(ctx, n))
    assert [v.outcome for v in verdicts] == [Outcome.ACCEPTED] * n, [v.why for v in verdicts]


def test_of_two_drones_sent_to_meet_one_goes_and_the_other_waits(ctx: SafetyContext) -> None:
    """Judged as if both flew, both would be refused tick after tick; one of them goes."""
    fs = fleet(pos={0: (-300.0, 300.0, ALT), 1: (-300.0, 330.0, ALT)})
    meet = (-250.0, 315.0)
    verdicts = check_orders([work(0, meet), work(1, meet)], fs, ctx)
    assert sorted(v.outcome.name for v in verdicts) == ["ACCEPTED", "REFUSED"]
    assert [v.why for v in verdicts if v.outcome is Outcome.REFUSED] == ["separation"]


def step(drone: int, at: Sequence[float], to: Sequence[float], rise_m: float) -> Order:
    """From ``at`` (where the drone hovers), up (or down) by ``rise_m``, across to ``to`` and
    back down onto it."""
    z = ALT + rise_m
    return work(drone, (*at, z), (*to, z), to)


def test_two_drones_holding_head_on_step_out_of_each_others_way(ctx: SafetyContext) -> None:
    """Hovering a little over the separation apart, each with its way ahead through the other:
    neither may go on its level; one may step up and cross over, then the other may step down
    (not up into the first one's new band) while the first still stands in its column."""
    a, b = (-300.0, 300.0), (-300.0 + 1.3 * SEPARATION, 300.0)
    fs = fleet(pos={0: (*a, ALT), 1: (*b, ALT)})
    east, west = (-150.0, 300.0), (-450.0, 300.0)
    level = check_orders([work(0, east), work(1, west)], fs, ctx)
    assert [v.why for v in level] == ["separation", "separation"]
    up = check_orders([step(0, a, east, 12.0), work(1, west)], fs, ctx)
    assert [v.outcome for v in up] == [Outcome.ACCEPTED, Outcome.REFUSED]
    both_up = check_orders([step(0, a, east, 12.0), step(1, b, west, 12.0)], fs, ctx)
    assert [v.outcome for v in both_up] == [Outcome.ACCEPTED, Outcome.REFUSED]
    up_down = check_orders([step(0, a, east, 12.0), step(1, b, west, -12.0)], fs, ctx)
    assert [v.outcome for v in up_down] == [Outcome.ACCEPTED, Outcome.ACCEPTED]


@pytest.mark.parametrize(
    ("crosser_alt", "refused"),
    [(ALT + 12.0, True), (ALT + 30.0, False)],
    ids=["through-the-new-band", "well-above"],
)
def test_a_step_waits_for_a_drone_about_to_cross_its_column(
    ctx: SafetyContext, crosser_alt: float, refused: bool
) -> None:
    a = (-300.0, 300.0)
    # 40 m off, flying at the column at 10 m/s: over it in about 4 s, as the step ends
    fs = fleet(pos={0: (*a, ALT), 1: (a[0] - 40.0, a[1], crosser_alt)}, vel={1: (10.0, 0.0)})
    (v,) = check_orders([step(0, a, (-300.0, 450.0), 12.0)], fs, ctx)
    assert (v.outcome is Outcome.REFUSED) is refused
    if refused:
        assert v.why == "separation"


def _closest(p: FloatArray, v: FloatArray, q: FloatArray, w: FloatArray) -> tuple[float, float]:
    """Distance now and closest distance within the horizon of two straight flights."""
    rel_p, rel_v = q - p, w - v
    t = np.clip(-(rel_p @ rel_v) / max(rel_v @ rel_v, 1e-12), 0.0, SEPARATION_HORIZON_S)
    return float(np.hypot(*rel_p)), float(np.hypot(*(rel_p + rel_v * t)))


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 9),
    moving=st.floats(0.0, 1.0),
)
def test_every_pair_a_batch_lets_go_was_judged_as_both_fly(
    ctx: SafetyContext, seed: int, n: int, moving: float
) -> None:
    """Drones crowded in 120 m (some moving, some hovering), most given new routes in one batch:
    no two drones the batch lets go, and no drone let go and one that stays on its way, come
    closer than the separation within the horizon (unless too close already and parting)."""
    rng = np.random.default_rng(seed)
    pos = {k: (*rng.uniform(-360.0, -240.0, 2), ALT) for k in range(n)}
    vel = {k: tuple(rng.uniform(-6.0, 6.0, 2)) for k in range(n) if rng.random() < moving}
    fs = fleet(pos=pos, vel=vel, n=n)
    big = sized(ctx, n)
    ordered = [k for k in range(n) if rng.random() < 0.8]
    targets = {k: rng.uniform(-450.0, -150.0, 2) for k in ordered}
    verdicts = check_orders([work(k, tuple(targets[k])) for k in ordered], fs, big)
    flying = {k: fs.vel_mps[k, :2] for k in range(n)}
    for k, v in zip(ordered, verdicts, strict=True):
        if v.outcome is Outcome.ACCEPTED:
            d = targets[k] - fs.pos_m[k, :2]
            flying[k] = d / max(np.hypot(*d), 1e-9) * big.speed_mps[k]
    gone = [k for k, v in zip(ordered, verdicts, strict=True) if v.outcome is Outcome.ACCEPTED]
    for a in gone:
        for b in range(n):
            if b == a or abs(fs.pos_m[a, 2] - fs.pos_m[b, 2]) >= SEPARATION_BAND_M:
                continue
            now, closest = _closest(fs.pos_m[a, :2], flying[a], fs.pos_m[b, :2], flying[b])
            assert closest >= SEPARATION - 1e-6 or (now < SEPARATION and closest >= now - 1e-6), (
                a,
                b,
                now,
                closest,
            )


# --------------------------------------------------------------------------------------------
# Energy
# --------------------------------------------------------------------------------------------


def test_a_work_route_must_keep_the_reserve(ctx: SafetyContext) -> None:
    order = sortie(0, (-400, 400), (400, 400), (400, -400))
    need = need_of(ctx, fleet(), order)
    assert 0.2 < need < 0.5
    assert one(order, fleet(battery=RESERVE + need + 0.02), ctx).outcome is Outcome.ACCEPTED
    v = one(order, fleet(battery=RESERVE + need - 0.02), ctx)
    assert v.outcome is Outcome.REFUSED and v.why.startswith("energy")
    assert v.sent is None


def test_the_way_home_may_use_the_reserve_down_to_the_critical_level(
    ctx: SafetyContext,
) -> None:
    fs = fleet(pos={0: (400.0, -300.0, ALT)})
    home = work(0, (*PADS[0], ALT), (*PADS[0], 0.0), purpose=Purpose.HOME)
    need = need_of(ctx, fs, home)
    battery = ctx.critical + need + 0.03
    assert battery < RESERVE + need  # not enough for work
    fs = fleet(pos={0: (400.0, -300.0, ALT)}, battery=battery)
    assert one(home, fs, ctx).outcome is Outcome.ACCEPTED
    as_work = dataclasses.replace(home, purpose=Purpose.WORK)
    assert one(as_work, fs, ctx).outcome is Outcome.REFUSED


def test_a_way_home_the_battery_cannot_afford_becomes_a_landing(ctx: SafetyContext) -> None:
    fs = fleet(pos={0: (450.0, -400.0, ALT)}, battery=0.1)
    home = work(0, (*PADS[0], ALT), (*PADS[0], 0.0), purpose=Purpose.HOME)
    assert 0.1 - need_of(ctx, fs, home) < ctx.critical
    v = one(home, fs, ctx)
    assert v.outcome is Outcome.CLIPPED and v.why.startswith("energy")
    assert v.sent is not None
    assert (v.sent.drone, v.sent.command, v.sent.purpose) == (0, Command.LAND, Purpose.SAFETY)
    assert v.sent.route is None
    # on the ground there is nothing to clip it to: refused
    ground = fleet(battery=0.05)
    assert one(home, ground, ctx).outcome is Outcome.REFUSED


def test_head_wind_costs_more_than_tail_wind(ctx: SafetyContext) -> None:
    """An eastbound route: the wind vector is where the air moves to."""
    fs = fleet(pos={0: (-400.0, 300.0, ALT)})
    order = work(0, (400, 300))
    head = dataclasses.replace(ctx, wind_mps=np.array([-8.0, 0.0]))
    tail = dataclasses.replace(ctx, wind_mps=np.array([8.0, 0.0]))
    winds = {"head": head, "still": ctx, "tail": tail}
    need = {name: need_of(c, fs, order) for name, c in winds.items()}
    assert need["head"] > need["still"] > need["tail"] > 0
    # the same battery does for the trip down-wind, not up-wind
    battery = RESERVE + (need["head"] + need["tail"]) / 2
    fs = fleet(pos={0: (-400.0, 300.0, ALT)}, battery=battery)
    assert one(order, fs, tail).outcome is Outcome.ACCEPTED
    assert one(order, fs, head).outcome is Outcome.REFUSED


def test_route_energy_is_per_route_and_vectorised(ctx: SafetyContext) -> None:
    a = np.array([[0.0, 300.0, ALT], [100.0, 300.0, ALT]])  # 100 m, 10 s
    b = np.array([[0.0, 300.0, 0.0], [0.0, 300.0, ALT], [300.0, 300.0, ALT]])  # climb, 300 m
    both = route_energy(
        ctx, np.array([0, 1], np.intp), np.vstack([a, b]), np.array([0, 0, 1, 1, 1], np.intp)
    )
    alone_a = route_energy(ctx, np.array([0], np.intp), a, np.zeros(2, np.intp))
    alone_b = route_energy(ctx, np.array([1], np.intp), b, np.zeros(3, np.intp))
    np.testing.assert_allclose(both, [alone_a[0], alone_b[0]])
    # level flight at cruise speed in still air: 10 s of a 900 s endurance
    np.testing.assert_allclose(alone_a[0], 10.0 / 900.0)
    assert alone_b[0] > 30.0 / 900.0  # 30 s cruising plus 15 s climbing


# --------------------------------------------------------------------------------------------
# RETURN, LAND, HOLD, SWAP_BATTERY
# --------------------------------------------------------------------------------------------


def test_a_straight_return_clear_of_the_fence_is_accepted(ctx: SafetyContext) -> None:
    fs = fleet(pos={0: (-300.0, 200.0, ALT)})
    order = Order(0, Command.RETURN, purpose=Purpose.HOME)
    v = one(order, fs, ctx)
    assert v.outcome is Outcome.ACCEPTED and v.sent is order


def test_a_straight_return_across_the_keep_out_is_routed_round_it(ctx: SafetyContext) -> None:
    fs = fleet(pos={0: (300.0, 300.0, ALT)})
    order = Order(0, Command.RETURN, purpose=Purpose.HOME, reason="low battery")
    v = one(order, fs, ctx)
    assert v.outcome is Outcome.CLIPPED and "fence" in v.why
    sent = v.sent
    assert sent is not None and sent.route is not None
    assert (sent.drone, sent.command, sent.purpose) == (0, Command.START_MISSION, Purpose.HOME)
    assert sent.reason == "low battery"
    np.testing.assert_allclose(sent.route[-1], [*PADS[0], 0.0])
    assert np.all(sent.route[:-1, 2] == ALT)
    line = shapely.LineString(np.vstack([fs.pos_m[0], sent.route])[:, :2])
    assert line.distance(shapely.box(-BOX, -BOX, BOX, BOX)) >= MARGIN - 1.0
    # the replacement passes the checker itself
    again = one(sent, fs, ctx)
    assert again.outcome is Outcome.ACCEPTED, again.why


def test_a_return_with_no_way_home_becomes_a_landing(
    ctx: SafetyContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    def nowhere(a: FloatArray, b: FloatArray) -> FloatArray:
        raise InfeasibleError("no flyable path (test)")

    monkeypatch.setattr(ctx.finder, "path", nowhere)
    fs = fleet(pos={0: (300.0, 300.0, ALT)})
    v = one(Order(0, Command.RETURN, purpose=Purpose.HOME), fs, ctx)
    assert v.outcome is Outcome.CLIPPED and v.sent is not None
    assert v.sent.command is Command.LAND and v.sent.purpose is Purpose.SAFETY


def test_a_routed_return_the_battery_cannot_afford_becomes_a_landing(
    ctx: SafetyContext,
) -> None:
    fs = fleet(pos={0: (300.0, 300.0, ALT)}, battery=0.05)  # below the critical level already
    v = one(Order(0, Command.RETURN, purpose=Purpose.HOME), fs, ctx)
    assert v.sent is not None
    assert v.sent.command is Command.LAND, "an unaffordable routed return was sent"


@pytest.mark.parametrize("command", [Command.LAND, Command.HOLD])
@pytest.mark.parametrize(
    "where",
    [
        (PADS[0, 0], PADS[0, 1], 0.0),  # on the ground
        (-300.0, 300.0, ALT),  # flying
        (0.0, 0.0, ALT),  # in the keep-out
        (700.0, 0.0, 400.0),  # out of keep-in, above the ceiling
    ],
)
def test_land_and_hold_are_always_accepted(
    ctx: SafetyContext, command: Command, where: tuple[float, float, float]
) -> None:
    # a neighbour right there, and an empty battery: neither matters
    fs = fleet(
        pos={0: where, 1: (where[0] + 2.0, where[1], max(where[2], 1.0))},
        vel={0: (25.0, 0.0)},
        battery=0.0,
    )
    order = Order(0, command, purpose=Purpose.SAFETY)
    v = one(order, fs, ctx)
    assert v.outcome is Outcome.ACCEPTED and v.sent is order


def test_a_battery_swap_only_on_the_ground(ctx: SafetyContext) -> None:
    order = Order(1, Command.SWAP_BATTERY)
    v = one(order, fleet(battery=0.1), ctx)
    assert v.outcome is Outcome.ACCEPTED and v.sent is order
    v = one(order, fleet(pos={1: (-300.0, 300.0, ALT)}), ctx)
    assert v.outcome is Outcome.REFUSED and v.sent is None and "airborne" in v.why


def test_a_start_without_a_route_is_refused(ctx: SafetyContext) -> None:
    v = one(Order(0, Command.START_MISSION), fleet(), ctx)
    assert v.outcome is Outcome.REFUSED and "no route" in v.why


@pytest.mark.parametrize("command", list(Command))
@pytest.mark.parametrize("airborne", [False, True])
def test_every_command_has_a_rule(ctx: SafetyContext, command: Command, airborne: bool) -> None:
    fs = fleet(pos={0: (-300.0, 300.0, ALT)}) if airborne else fleet()
    orders = [Order(0, command), Order(0, command, route(*[(-300, 350), (-300, 300)]))]
    for v in check_orders(orders, fs, ctx):
        assert v.outcome in Outcome
        assert (v.sent is None) == (v.outcome is Outcome.REFUSED)


# --------------------------------------------------------------------------------------------
# RECOVER
# --------------------------------------------------------------------------------------------


def test_a_recovery_from_outside_the_fence_is_accepted_as_such_only(ctx: SafetyContext) -> None:
    """A GPS glitch left the drone 50 m inside the keep-out box: straight out north, round,
    and home."""
    fs = fleet(pos={0: (0.0, 50.0, ALT)}, battery=0.6)
    legs = [(0, 150), (-200, 150), (*PADS[0], ALT), (*PADS[0], 0.0)]
    v = one(work(0, *legs, purpose=Purpose.RECOVER), fs, ctx)
    assert v.outcome is Outcome.ACCEPTED, v.why
    v = one(work(0, *legs, purpose=Purpose.WORK), fs, ctx)
    assert v.outcome is Outcome.REFUSED and "fence" in v.why
    # once back inside, a recovery is held to the fence like any route
    bad = [(0, 150), (0, -150), (*PADS[0], ALT)]  # straight back through the box
    assert one(work(0, *bad, purpose=Purpose.RECOVER), fs, ctx).outcome is Outcome.REFUSED


def test_a_recovery_from_outside_keep_in(ctx: SafetyContext) -> None:
    fs = fleet(pos={0: (530.0, 300.0, ALT)}, battery=0.6)
    legs = [(450, 300), (450, -400), (*PADS[0], ALT), (*PADS[0], 0.0)]
    assert one(work(0, *legs, purpose=Purpose.RECOVER), fs, ctx).outcome is Outcome.ACCEPTED
    assert one(work(0, *legs), fs, ctx).outcome is Outcome.REFUSED


# --------------------------------------------------------------------------------------------
# Vectorised: a batch gives the verdicts of its orders checked one by one (but separation,
# where a batch's airborne orders are judged with each other's new velocities, tested above)
# --------------------------------------------------------------------------------------------

N_DRONES = 3
_COMMANDS = [
    Command.START_MISSION,
    Command.START_MISSION,
    Command.START_MISSION,
    Command.RETURN,
    Command.LAND,
    Command.HOLD,
    Command.SWAP_BATTERY,
]
_coord = st.floats(-600.0, 600.0, allow_nan=False)
_point = st.tuples(_coord, _coord, st.sampled_from([0.0, 30.0, ALT, ALT, CEILING, 130.0, -2.0]))


@st.composite
def fleet_states(draw: st.DrawFn) -> FleetState:
    pos = {}
    vel = {}
    for i in range(N_DRONES):
        if draw(st.booleans()):
            pos[i] = (draw(_coord), draw(_coord), draw(st.sampled_from([20.0, ALT, 70.0])))
            vel[i] = (draw(st.floats(-20.0, 20.0)), draw(st.floats(-20.0, 20.0)))
    battery = {i: draw(st.floats(0.0, 1.0)) for i in range(N_DRONES)}
    return fleet(pos=pos, vel=vel, battery=battery, n=N_DRONES)


@st.composite
def orders(draw: st.DrawFn) -> Order:
    command = draw(st.sampled_from(_COMMANDS))
    pts = None
    if command is Command.START_MISSION and draw(st.integers(0, 9)):
        pts = np.array(draw(st.lists(_point, min_size=1, max_size=4)), float)
    return Order(
        draw(st.integers(0, N_DRONES - 1)), command, pts, draw(st.sampled_from(list(Purpose)))
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fs=fleet_states(), batch=st.lists(orders(), min_size=1, max_size=12))
def test_a_batch_is_checked_as_its_orders_one_by_one(
    ctx: SafetyContext, fs: FleetState, batch: list[Order]
) -> None:
    # separation is the one check that depends on the rest of a batch (tested above)
    ctx = dataclasses.replace(ctx, min_separation_m=0.0)
    together = check_orders(batch, fs, ctx)
    assert len(together) == len(batch)
    for order, v in zip(batch, together, strict=True):
        assert v.order is order
        alone = one(order, fs, ctx)
        assert same_verdict(v, alone), (order, v, alone)


def test_a_large_mixed_batch_is_checked_as_its_orders_one_by_one(ctx: SafetyContext) -> None:
    rng = np.random.default_rng(5)
    n = 12
    pos = rng.uniform(-550, 550, (n, 3))
    pos[:, 2] = np.where(rng.random(n) < 0.3, 0.0, rng.uniform(20, 80, n))
    fs = FleetState(
        t_s=0.0,
        pos_m=pos,
        vel_mps=np.column_stack([rng.uniform(-15, 15, (n, 2)), np.zeros(n)]),
        battery=rng.uniform(0.05, 1.0, n),
        mode=np.zeros(n, np.int8),
        mission_seq=np.zeros(n, np.intp),
        airborne=pos[:, 2] > 0.5,
        last_seen_s=np.zeros(n),
    )
    big = dataclasses.replace(
        ctx,
        min_separation_m=0.0,  # the one check that depends on the rest of a batch
        home_m=np.tile(PADS, (4, 1)),
        speed_mps=np.full(n, 10.0),
        endurance_s=np.full(n, 900.0),
        climb_mps=np.full(n, 4.0),
        accel_mps2=np.full(n, 4.0),
    )
    batch = []
    for _ in range(300):
        command = _COMMANDS[int(rng.integers(len(_COMMANDS)))]
        pts = None
        if command is Command.START_MISSION:
            k = int(rng.integers(1, 6))
            pts = np.column_stack([rng.uniform(-550, 550, (k, 2)), rng.uniform(-5, 130, k)])
        purpose = Purpose(int(rng.integers(len(Purpose))))
        batch.append(Order(int(rng.integers(n)), command, pts, purpose))
    together = check_orders(batch, fs, big)
    outcomes = {v.outcome for v in together}
    assert outcomes == set(Outcome)  # the batch really is mixed
    for order, v in zip(batch, together, strict=True):
        assert same_verdict(v, one(order, fs, big))


# --------------------------------------------------------------------------------------------
# The kernel cannot be bypassed
# --------------------------------------------------------------------------------------------


class RecordingLink(Link):
    """A fake link that only records what reaches it."""

    def __init__(self, fs: FleetState) -> None:
        self.fs = fs
        self.uploads: list[tuple[int, FloatArray]] = []
        self.sends: list[tuple[list[int], Command]] = []

    def poll(self, now_s: float) -> FleetState:
        return self.fs

    def upload(self, drone: int, waypoints: FloatArray) -> None:
        self.uploads.append((drone, np.array(waypoints, float)))

    def send(self, drones: NDArray[np.intp], command: Command) -> None:
        self.sends.append(([int(d) for d in drones], command))

    def take_events(self) -> list[LinkEvent]:
        return [LinkEvent(self.fs.t_s, "detection", 0, {"x_m": 1.0, "y_m": 2.0})]


N_BIG = 6


@pytest.fixture()
def six(ctx: SafetyContext) -> SafetyContext:
    """The context for six drones, two per pad, so one batch can hold every kind of order."""
    return dataclasses.replace(
        ctx,
        home_m=np.vstack([PADS, PADS]),
        speed_mps=np.full(N_BIG, 10.0),
        endurance_s=np.full(N_BIG, 900.0),
        climb_mps=np.full(N_BIG, 4.0),
        accel_mps2=np.full(N_BIG, 4.0),
    )


def _mixed(six: SafetyContext) -> tuple[FleetState, list[Order]]:
    fs = fleet(
        n=N_BIG,
        pos={
            1: (-300.0, 0.0, ALT),
            2: (300.0, 300.0, ALT),
            3: (-300.0, 300.0, ALT),
            4: (450.0, -400.0, ALT),
            5: (PADS[2, 0], PADS[2, 1], 0.0),
        },
        battery={4: 0.1},
    )
    batch = [
        sortie(0, (-400, 400)),  # accepted
        work(1, (300, 0)),  # refused: through the keep-out
        Order(2, Command.RETURN, purpose=Purpose.HOME),  # clipped to a routed return
        Order(3, Command.SWAP_BATTERY),  # refused: airborne
        work(4, (*PADS[1], ALT), (*PADS[1], 0.0), purpose=Purpose.HOME),  # clipped to LAND
        Order(3, Command.HOLD, purpose=Purpose.SAFETY),  # accepted
        Order(5, Command.SWAP_BATTERY),  # accepted
        work(1, (-300, 400, CEILING + 50)),  # refused: altitude
    ]
    return fs, batch


def test_send_delivers_only_what_passed(six: SafetyContext) -> None:
    fs, batch = _mixed(six)
    link = RecordingLink(fs)
    kernel = SafetyKernel(link, six)
    assert kernel.poll(1.0) is fs
    assert [e.kind for e in kernel.take_events()] == ["detection"]
    checked = kernel.check(batch, fs, 1.0)
    assert [v.outcome for v in checked.verdicts] == [
        Outcome.ACCEPTED,
        Outcome.REFUSED,
        Outcome.CLIPPED,
        Outcome.REFUSED,
        Outcome.CLIPPED,
        Outcome.ACCEPTED,
        Outcome.ACCEPTED,
        Outcome.REFUSED,
    ]
    assert not link.uploads and not link.sends  # checking sends nothing
    kernel.send(checked)

    # uploads: the accepted sortie and the routed return, as checked
    assert [d for d, _ in link.uploads] == [0, 2]
    np.testing.assert_array_equal(link.uploads[0][1], np.asarray(batch[0].route))
    routed = checked.verdicts[2].sent
    assert routed is not None and routed.route is not None
    np.testing.assert_array_equal(link.uploads[1][1], routed.route)
    sent = {command: drones for drones, command in link.sends}
    assert len(sent) == len(link.sends)  # one send per command
    assert sent == {
        Command.START_MISSION: [0, 2],
        Command.LAND: [4],
        Command.HOLD: [3],
        Command.SWAP_BATTERY: [5],
    }
    # nothing refused reached the link in any form; the autopilot's straight RTL never did
    assert Command.RETURN not in sent
    assert 1 not in {d for drones, _ in link.sends for d in drones}
    assert 1 not in {d for d, _ in link.uploads}


def test_send_refuses_a_batch_it_did_not_check(six: SafetyContext) -> None:
    fs, batch = _mixed(six)
    link = RecordingLink(fs)
    kernel = SafetyKernel(link, six)
    other = SafetyKernel(RecordingLink(fs), six)
    theirs = other.check(batch, fs, 1.0)
    with pytest.raises(LinkError, match="not checked by this safety kernel"):
        kernel.send(theirs)
    anything = tuple(Verdict(o, Outcome.ACCEPTED, o) for o in batch)
    for forged in (
        Checked(anything, 1.0, object()),
        Checked(anything, 1.0, None),
        Checked(anything, 1.0, kernel),
    ):
        with pytest.raises(LinkError):
            kernel.send(forged)
    assert not link.uploads and not link.sends
    # its own batch it does send
    kernel.send(kernel.check(batch, fs, 1.0))
    assert link.sends


def test_a_checked_batch_cannot_be_refilled(six: SafetyContext) -> None:
    fs, batch = _mixed(six)
    link = RecordingLink(fs)
    kernel = SafetyKernel(link, six)
    genuine = kernel.check([Order(0, Command.HOLD, purpose=Purpose.SAFETY)], fs, 1.0)
    through_keep_out = batch[1]
    refilled = dataclasses.replace(
        genuine, verdicts=(Verdict(through_keep_out, Outcome.ACCEPTED, through_keep_out),)
    )
    with pytest.raises(LinkError):
        kernel.send(refilled)
    assert not link.uploads


def test_the_kernel_hands_out_no_link(six: SafetyContext) -> None:
    fs, _ = _mixed(six)
    kernel = SafetyKernel(RecordingLink(fs), six)
    public = {name: getattr(kernel, name) for name in dir(kernel) if not name.startswith("_")}
    assert not [name for name, value in public.items() if isinstance(value, Link)]


# --- structural: only the kernel, the links, the simulator and the sim runners touch a Link ----

#: Files that may call ``.upload``/``.send`` on anything and build links.
ALLOWED = {
    "safety/kernel.py",
    "runtime/simulate.py",
}
#: ``mavlink/`` is a link (MavlinkLink) and the simulator's vehicle side (the façade).
ALLOWED_DIRS = ("link/", "sim/", "mavlink/")
#: (file, class) of links built outside a wrapper, and why that is safe: ``skysweep run``
#: connects its MavlinkLink first (binds the vehicles, uploads and reads back their geofence)
#: and then hands it to the Orchestrator; the ingest benchmark only pumps and polls one. Both
#: are still held to the rule that nothing there calls ``.upload`` or ``.send``.
BUILT_THEN_HANDED = {
    ("cli.py", "MavlinkLink"),
    ("bench/link.py", "MavlinkLink"),
    # the operator server's flight: LiveMission hands it to its Orchestrator, keeping none
    ("server/__init__.py", "SimLink"),
}
#: (file, receiver) pairs outside those that drive the simulator's ``World`` directly, with no
#: Link and no orchestrator involved: the physics benchmark.
SIM_ONLY_CALLS = {("bench/sim.py", "world")}
#: A Link may be built elsewhere only as an argument handed straight to one of these, which
#: wrap it in the kernel at once.
WRAPPERS = {"Orchestrator", "SafetyKernel"}


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        yield rel, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _link_classes(modules: list[tuple[str, ast.Module]]) -> set[str]:
    """``Link`` and every class in the package that derives from it (by name, transitively)."""
    names = {"Link"}
    grew = True
    while grew:
        grew = False
        for _, tree in modules:
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.ClassDef)
                    and node.name not in names
                    and any(_name(b) in names for b in node.bases)
                ):
                    names.add(node.name)
                    grew = True
    return names


def _allowed(rel: str) -> bool:
    return rel in ALLOWED or rel.startswith(ALLOWED_DIRS)


def test_nothing_but_the_kernel_talks_to_a_link() -> None:
    modules = list(_modules())
    links = _link_classes(modules)
    assert {"Link", "SimLink"} <= links
    bad: list[str] = []
    for rel, tree in modules:
        wrapped: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node.func) in WRAPPERS:
                wrapped |= {id(a) for a in node.args}
                wrapped |= {id(k.value) for k in node.keywords}
        for node in ast.walk(tree):
            where = f"src/skysweep/{rel}:{getattr(node, 'lineno', '?')}"
            private = isinstance(node, ast.Attribute) and node.attr.endswith("__link")
            if private and rel != "safety/kernel.py":
                bad.append(f"{where}: reaches into the kernel's private link")
            if not isinstance(node, ast.Call) or _allowed(rel):
                continue
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in ("upload", "send"):
                receiver = _name(func.value) or ""
                if receiver.lower().endswith("kernel"):
                    continue  # SafetyKernel.send: the checked way
                if (rel, receiver) in SIM_ONLY_CALLS:
                    continue
                bad.append(f"{where}: {ast.unparse(func)}(...) outside the safety kernel")
            elif (
                _name(func) in links
                and id(node) not in wrapped
                and (rel, _name(func)) not in BUILT_THEN_HANDED
            ):
                bad.append(f"{where}: {ast.unparse(func)}(...) built and not handed to the kernel")
    assert not bad, "\n".join(["the safety kernel can be bypassed:", *bad])


def test_the_orchestrator_holds_no_link(m: Mission) -> None:
    from skysweep.link.sim import SimLink
    from skysweep.plan import plan_mission
    from skysweep.runtime.orchestrator import Orchestrator
    from skysweep.runtime.simulate import sim_world
    from skysweep.store import RunLog

    plan = plan_mission(m)
    link = SimLink(sim_world(plan, seed=0))
    with RunLog(Path(":memory:"), create=True) as log:
        orch = Orchestrator(plan, link, log)
        orch.tick(0.0)  # and not after a tick either

        def held(value: object, depth: int = 0) -> bool:
            if isinstance(value, Link):
                return True
            if depth < 2 and isinstance(value, list | tuple | set | frozenset):
                return any(held(x, depth + 1) for x in value)
            if depth < 2 and isinstance(value, dict):
                return any(held(x, depth + 1) for x in value.values())
            return False

        holding = [name for name, value in vars(orch).items() if held(value)]
        assert not holding, f"Orchestrator attributes holding a Link: {holding}"
        kernels = [v for v in vars(orch).values() if isinstance(v, SafetyKernel)]
        assert len(kernels) == 1
