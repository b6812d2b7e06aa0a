"""Reference timings of the RVO2 C++ library (through ``pyrvo``) on a :class:`SeparationScene`.

``pyrvo`` (PyPI) is a pybind11 wrapper of RVO2 2.0.3. Its API is per agent only: there is no
batched (array) setter or getter, so a user pays one Python call per agent per quantity. The
wheel's ``libRVO`` is built without OpenMP (it links neither libgomp nor libomp, so the
``#pragma omp parallel for`` in ``RVOSimulator::doStep`` is compiled out): ``do_step`` runs on
one thread whatever ``OMP_NUM_THREADS`` says. RVO2 works in single precision (``float``).

``pyrvo`` is a dev-only dependency; everything here imports it lazily so that
:func:`rvo2_available` can be asked first.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from skysweep.bench.scenes import SeparationScene


def rvo2_available() -> bool:
    """Whether ``pyrvo`` (the RVO2 bindings) can be imported."""
    try:
        import pyrvo  # noqa: F401
    except ImportError:
        return False
    return True


def build_rvo2(scene: SeparationScene) -> Any:
    """An ``pyrvo.RVOSimulator`` holding the scene's agents, with exactly its parameters."""
    import pyrvo

    params = (
        scene.neighbor_dist_m,
        scene.max_neighbors,
        scene.time_horizon_s,
        scene.time_horizon_s,  # timeHorizonObst: there are no obstacles
        scene.radius_m,
        scene.max_speed_mps,
    )
    # The constructor's trailing six arguments set the agent defaults; add_agent repeats them
    # explicitly so that no agent depends on them.
    sim = pyrvo.RVOSimulator(scene.dt_s, *params)
    add = sim.add_agent
    for p, v in zip(scene.pos_m.tolist(), scene.vel_mps.tolist(), strict=True):
        add(p, *params, v)
    for i, v in enumerate(scene.pref_vel_mps.tolist()):
        sim.set_agent_pref_velocity(i, v)
    return sim


def _set_pref(sim: Any, pref: NDArray[np.float64]) -> None:
    set_pref = sim.set_agent_pref_velocity
    for i, v in enumerate(pref.tolist()):
        set_pref(i, v)


def _read_back(sim: Any, n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    get_pos, get_vel = sim.get_agent_position, sim.get_agent_velocity
    pos = np.array([get_pos(i).to_tuple() for i in range(n)], dtype=np.float64)
    vel = np.array([get_vel(i).to_tuple() for i in range(n)], dtype=np.float64)
    return pos.reshape(n, 2), vel.reshape(n, 2)


def time_rvo2(scene: SeparationScene, steps: int = 20, warmup: int = 2) -> dict[str, float]:
    """Time RVO2 stepping ``scene``: medians over ``steps`` steps, in milliseconds.

    Every step (warm-up steps included, which are not timed) resets each agent's preferred
    velocity to ``scene.pref_vel_mps``, calls ``do_step`` and reads every position and velocity
    back into numpy arrays. Keys:

    - ``do_step_ms``: the library's step call alone (neighbour search + ORCA + integration);
    - ``set_pref_ms``, ``read_back_ms``: the per-agent Python calls on either side of it;
    - ``full_step_ms``: all three, what a Python user of the library pays per step;
    - ``agents``, ``steps``, ``warmup``;
    - ``min_distance_m``: the smallest distance between two agents after the last step, and
      ``overlap_pairs``: how many pairs are then closer than ``2 * radius_m`` (RVO2 lets
      agents overlap slightly now and then).
    """
    if steps < 1 or warmup < 0:
        raise ValueError(f"need steps >= 1 and warmup >= 0, got {steps=} {warmup=}")
    sim = build_rvo2(scene)
    n = scene.n
    pref = scene.pref_vel_mps
    clock = time.perf_counter

    pos = np.asarray(scene.pos_m, dtype=np.float64)
    set_ms: list[float] = []
    step_ms: list[float] = []
    read_ms: list[float] = []
    full_ms: list[float] = []
    for k in range(warmup + steps):
        t0 = clock()
        _set_pref(sim, pref)
        t1 = clock()
        sim.do_step()
        t2 = clock()
        pos, _vel = _read_back(sim, n)
        t3 = clock()
        if k >= warmup:
            set_ms.append((t1 - t0) * 1e3)
            step_ms.append((t2 - t1) * 1e3)
            read_ms.append((t3 - t2) * 1e3)
            full_ms.append((t3 - t0) * 1e3)

    if n >= 2:
        tree = cKDTree(pos)
        dist, _ = tree.query(pos, k=2)
        min_distance_m = float(dist[:, 1].min())
        overlap_pairs = len(tree.query_pairs(2.0 * scene.radius_m))
    else:
        min_distance_m, overlap_pairs = float("inf"), 0

    return {
        "agents": n,
        "steps": steps,
        "warmup": warmup,
        "do_step_ms": statistics.median(step_ms),
        "set_pref_ms": statistics.median(set_ms),
        "read_back_ms": statistics.median(read_ms),
        "full_step_ms": statistics.median(full_ms),
        "min_distance_m": min_distance_m,
        "overlap_pairs": overlap_pairs,
    }
