"""Reproducible crowded scenes for benchmarking the separation (ORCA) step.

A scene is a frozen snapshot: agents on a jittered square grid, each already flying at its
preferred velocity. Flows cross in a checkerboard: agents on the "white" squares fly along the
rows (even rows east, odd rows west) and agents on the "black" squares along the columns (even
columns north, odd columns south). Every agent's four nearest neighbours therefore fly
perpendicular to it and are on a collision course within the time horizon, and its diagonal
neighbours fly the opposite way, so ORCA has real conflicts to resolve from the first step.

The module is pure numpy so that both our vectorised step and the RVO2 reference
(:mod:`skysweep.bench.rvo2_reference`) can be fed exactly the same arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: Grid spacing of :func:`dense_scene`, metres.
DENSE_SPACING_M = 5.0
#: Grid spacing of :func:`sparse_scene`, metres.
SPARSE_SPACING_M = 20.0
#: Agent radius, metres: minimum separation 4 m.
RADIUS_M = 2.0
#: Cruise speed, m/s; also the preferred speed of every agent.
MAX_SPEED_MPS = 3.0
#: Neighbour search radius, metres. On the 5 m grid it takes in the 8 agents of the
#: surrounding ring (at 5 m and 7.1 m) plus about half of the 4 at 10 m, that the jitter pulls
#: inside: about 10 neighbours per agent (9.9 measured with a cKDTree at n = 10 000).
NEIGHBOR_DIST_M = 10.0
MAX_NEIGHBORS = 10
TIME_HORIZON_S = 2.0
DT_S = 0.1
#: Jitter half-width as a fraction of the clearance ``spacing - 2 * radius``. Below 0.5 no two
#: agents can start overlapping; 0.25 keeps a margin of half the clearance.
JITTER_FRAC = 0.25


@dataclass(frozen=True)
class SeparationScene:
    """One snapshot of a crowded fleet for the separation step; all arrays are read-only."""

    name: str
    pos_m: NDArray[np.float64]
    """(n, 2) positions, local metres (east, north), centred on the origin."""
    vel_mps: NDArray[np.float64]
    """(n, 2) current velocities."""
    pref_vel_mps: NDArray[np.float64]
    """(n, 2) preferred (planned) velocities."""
    radius_m: float
    """Each agent's radius: half the minimum separation."""
    max_speed_mps: float
    neighbor_dist_m: float
    max_neighbors: int
    time_horizon_s: float
    dt_s: float

    @property
    def n(self) -> int:
        """Number of agents."""
        return int(self.pos_m.shape[0])


def _frozen(a: NDArray[np.float64]) -> NDArray[np.float64]:
    a = np.ascontiguousarray(a, dtype=np.float64)
    a.flags.writeable = False
    return a


def separation_scene(
    n: int,
    spacing_m: float,
    *,
    name: str = "",
    seed: int = 0,
    radius_m: float = RADIUS_M,
    max_speed_mps: float = MAX_SPEED_MPS,
    neighbor_dist_m: float = NEIGHBOR_DIST_M,
    max_neighbors: int = MAX_NEIGHBORS,
    time_horizon_s: float = TIME_HORIZON_S,
    dt_s: float = DT_S,
    jitter_frac: float = JITTER_FRAC,
) -> SeparationScene:
    """``n`` agents on a jittered square grid ``spacing_m`` apart, in crossing flows.

    The grid is ``ceil(sqrt(n))`` columns wide, filled row by row and centred on the origin.
    Each coordinate is jittered uniformly by up to ``jitter_frac * (spacing_m - 2 * radius_m)``;
    with ``jitter_frac < 0.5`` every pair starts farther apart than ``2 * radius_m``. Preferred
    and current velocities are equal, of magnitude ``max_speed_mps``, in the checkerboard
    pattern described in the module docstring. The same arguments always give the same scene.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if radius_m <= 0.0 or spacing_m <= 2.0 * radius_m:
        raise ValueError(
            f"spacing_m ({spacing_m}) must exceed the minimum separation 2 * radius_m "
            f"({2.0 * radius_m}) and radius_m must be positive"
        )
    if not 0.0 <= jitter_frac < 0.5:
        raise ValueError(f"jitter_frac must be in [0, 0.5) so agents cannot overlap: {jitter_frac}")
    if max_speed_mps <= 0.0 or neighbor_dist_m <= 0.0 or time_horizon_s <= 0.0 or dt_s <= 0.0:
        raise ValueError("max_speed_mps, neighbor_dist_m, time_horizon_s and dt_s must be > 0")
    if max_neighbors < 1:
        raise ValueError(f"max_neighbors must be at least 1, got {max_neighbors}")

    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    idx = np.arange(n)
    row, col = idx // cols, idx % cols
    grid = np.column_stack([col - (cols - 1) / 2.0, row - (rows - 1) / 2.0]) * spacing_m

    rng = np.random.default_rng(seed)
    jitter_m = jitter_frac * (spacing_m - 2.0 * radius_m)
    pos = grid + rng.uniform(-jitter_m, jitter_m, size=(n, 2))

    along_row = (row + col) % 2 == 0
    sign_row = np.where(row % 2 == 0, 1.0, -1.0)  # even rows east, odd rows west
    sign_col = np.where(col % 2 == 0, 1.0, -1.0)  # even columns north, odd columns south
    pref = np.zeros((n, 2))
    pref[along_row, 0] = sign_row[along_row] * max_speed_mps
    pref[~along_row, 1] = sign_col[~along_row] * max_speed_mps

    return SeparationScene(
        name=name or f"grid-{n}-{spacing_m:g}m",
        pos_m=_frozen(pos),
        vel_mps=_frozen(pref.copy()),
        pref_vel_mps=_frozen(pref),
        radius_m=float(radius_m),
        max_speed_mps=float(max_speed_mps),
        neighbor_dist_m=float(neighbor_dist_m),
        max_neighbors=int(max_neighbors),
        time_horizon_s=float(time_horizon_s),
        dt_s=float(dt_s),
    )


def dense_scene(n: int = 10_000, seed: int = 0) -> SeparationScene:
    """5 m grid, 4 m minimum separation: about 10 agents within ``neighbor_dist_m`` of each."""
    return separation_scene(n, DENSE_SPACING_M, name=f"dense-{n}", seed=seed)


def sparse_scene(n: int = 10_000, seed: int = 0) -> SeparationScene:
    """20 m grid, otherwise as :func:`dense_scene`: no agent starts within ``neighbor_dist_m``."""
    return separation_scene(n, SPARSE_SPACING_M, name=f"sparse-{n}", seed=seed)
