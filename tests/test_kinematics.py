"""How an autopilot takes a route's corners (:mod:`skysweep.kinematics`)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skysweep.kinematics import ARRIVE_MPS, CORNER_SWING_M, corner_loss_s, corner_speeds_mps


def test_corner_speeds_follow_the_swing_the_autopilot_allows() -> None:
    """Into a corner of deflection d the autopilot slows to sqrt(swing · a / sin(d / 2)): a
    right angle, a U-turn; straight on (or over a leg of no length) it does not slow; never
    below the speed it arrives at a waypoint with."""
    a = 2.5
    xy = np.array([[0, 0], [100, 0], [100, 100], [200, 100], [200, 100], [300, 100], [0, 100.0]])
    speed = corner_speeds_mps(xy, a)
    assert speed[0] == np.float64(math.sqrt(CORNER_SWING_M * a / math.sin(math.pi / 4)))
    assert np.isinf(speed[2]) and np.isinf(speed[3])  # a repeated point goes straight on
    assert speed[4] == math.sqrt(CORNER_SWING_M * a)  # a U-turn: sin(d / 2) = 1
    assert corner_speeds_mps(xy, 1e-6).min() == ARRIVE_MPS


def test_a_corner_costs_the_braking_to_its_speed_and_back() -> None:
    """(v − v_c)² / (a v) seconds a corner, none straight on or where v_c is above cruise."""
    v, a = 10.0, 2.0
    right = np.array([[0.0, 0.0], [100.0, 0.0], [100.0, 100.0]])
    vc = math.sqrt(CORNER_SWING_M * a / math.sin(math.pi / 4))
    assert corner_loss_s(right, v, a)[0] == (v - vc) ** 2 / (a * v)
    assert corner_loss_s(right, 1.0, a)[0] == 0.0  # cruise below the corner speed
    assert corner_loss_s(right[:2], v, a).shape == (0,)
    straight = np.array([[0.0, 0.0], [50.0, 0.0], [100.0, 0.0]])
    assert corner_loss_s(straight, v, a)[0] == 0.0


@settings(max_examples=200, deadline=None)
@given(
    xy=arrays(np.float64, st.tuples(st.integers(3, 25), st.sampled_from([2, 3])),
              elements=st.floats(-5000, 5000).map(lambda x: round(x, 1))),
    v=st.floats(1.0, 30.0),
    a=st.floats(0.5, 8.0),
)  # fmt: skip
def test_corner_losses_are_worked_out_from_the_corner_speeds(
    xy: np.ndarray, v: float, a: float
) -> None:
    """The compiled corner losses (the planner's hot path) are the corner speeds' formula,
    value for value, on any polyline: repeated points, straight runs, 3-D paths."""
    vc = np.minimum(corner_speeds_mps(xy, a), v)
    np.testing.assert_array_equal(corner_loss_s(xy, v, a), (v - vc) ** 2 / (a * v))
