"""The least-deadline bisection shared by the planners."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skysweep.plan.deadline import least_deadline


@given(need=st.floats(0.0, 1e6), hi=st.floats(1.0, 1e5), tol=st.floats(0.01, 10.0))
def test_the_least_deadline_is_found_to_the_tolerance(need: float, hi: float, tol: float) -> None:
    """A plan that needs ``need`` seconds: the deadline found meets it, within ``tol``, and the
    plan returned is the one made at that deadline, whether ``hi`` starts above or below."""
    calls: list[float] = []

    def attempt(t: float) -> float | None:
        calls.append(t)
        return t if t >= need else None

    found = least_deadline(attempt, hi, tol)
    assert found is not None
    t, plan = found
    assert need <= t <= need + tol
    assert plan == t and t in calls


def test_no_deadline_is_met_within_the_doublings() -> None:
    assert least_deadline(lambda t: None, 10.0, 0.5, grow=3) is None
    # met only past the doublings allowed
    assert least_deadline(lambda t: t if t > 100.0 else None, 10.0, 0.5, grow=3) is None
    assert least_deadline(lambda t: t if t > 100.0 else None, 10.0, 0.5, grow=4) is not None


def test_without_growing_a_deadline_below_the_start_is_searched_only() -> None:
    """The split's second search (blocks of pieces) only has to beat the first's deadline."""
    assert least_deadline(lambda t: t if t >= 50.0 else None, 40.0, 0.5, grow=0) is None
    found = least_deadline(lambda t: t if t >= 30.0 else None, 40.0, 0.5, grow=0)
    assert found is not None and found[0] == pytest.approx(30.0, abs=0.5)
