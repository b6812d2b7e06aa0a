"""The least deadline a greedy plan meets, found by bisection (seconds)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def least_deadline(
    attempt: Callable[[float], T | None], hi_s: float, tol_s: float, grow: int = 40
) -> tuple[float, T] | None:
    """The least deadline, to ``tol_s`` seconds, at which ``attempt`` gives a plan (not None),
    and that plan; None if it never does.

    The search is between 0 and ``hi_s``, which is first doubled, at most ``grow`` times,
    until ``attempt`` is met there. A plan met at one deadline is taken to be met at every
    later one; a greedy's nearly is, and the plan returned is one met at the deadline
    returned."""
    lo, hi = 0.0, float(hi_s)
    found = attempt(hi)
    for _ in range(grow):
        if found is not None:
            break
        lo, hi = hi, 2.0 * hi
        found = attempt(hi)
    if found is None:
        return None
    while hi - lo > tol_s:
        mid = 0.5 * (lo + hi)
        tried = attempt(mid)
        if tried is None:
            lo = mid
        else:
            hi, found = mid, tried
    return hi, found
