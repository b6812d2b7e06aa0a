"""``skysweep bench sim``: the simulator step and the separation step, timed, beside RVO2.

Figures are medians over repeated steps, in milliseconds, on the machine it runs on. Three
groups:

- ``sim_step``: one :meth:`World.step` of a fleet flying survey missions with gusts, GPS
  error, the battery model and the camera on, without separation; ``median_ms`` is a plain step,
  ``mean_ms`` the average over whole seconds of simulated time, which includes the
  once-a-second processes (gust grid, GPS, camera);
- ``sim_step_separated``: the same with ORCA separation on;
- ``separation``: one separation step (neighbour search, ORCA, moving the agents) on the dense
  and sparse scenes of :mod:`skysweep.bench.scenes`, and the RVO2 C++ library (``pyrvo``) on the
  very same scenes: its ``do_step`` alone, and with the Python calls that set and read agents.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from skysweep.bench.rvo2_reference import rvo2_available, time_rvo2
from skysweep.bench.scenes import SeparationScene, dense_scene, sparse_scene
from skysweep.sim.sensor import SensorParams, Targets
from skysweep.sim.separation import SeparationParams, separate
from skysweep.sim.wind import WindParams
from skysweep.sim.world import World, WorldParams
from skysweep.telemetry import Command


def _median_ms(fn: Callable[[], object], steps: int, warmup: int = 3) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, statistics.fmean(times) * 1e3


def survey_world(n: int, *, separation: bool, seed: int = 0) -> World:
    """``n`` drones already at search altitude, each flying a lawnmower over its own strip."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    spacing = 200.0
    k = np.arange(n)
    home = np.column_stack([(k % side) * spacing, (k // side) * spacing]).astype(float)
    extent = side * spacing
    params = WorldParams(
        speed_mps=np.full(n, 12.0),
        endurance_s=np.full(n, 2400.0),
        climb_mps=np.full(n, 4.0),
        accel_mps2=np.full(n, 4.0),
        home_m=home,
        swath_m=np.full(n, 50.0),
        wind=WindParams(mean_mps=(3.0, -2.0), gust_mps=1.0),
        bounds_m=(-500.0, -500.0, extent + 500.0, extent + 500.0),
        gps_noise_m=1.0,
        gps_glitches_per_h=0.01,
        sensor=SensorParams(search_alt_m=60.0),
        separation=SeparationParams(min_separation_m=15.0) if separation else None,
        # the plain step is physics only; with separation on, violations are counted too
        min_separation_m=15.0 if separation else 0.0,
    )
    targets = Targets(rng.uniform(0, extent, (10, 2)), ("person",) * 10)
    world = World(params, seed=seed, targets=targets)
    # lanes 50 m apart inside each drone's own 200 m cell, at 60 m
    lanes = []
    for j in range(4):
        y = 25.0 + 50.0 * j
        xs = (0.0, 190.0) if j % 2 == 0 else (190.0, 0.0)
        lanes += [(xs[0], y), (xs[1], y)]
    pattern = np.array(lanes * 20)
    for i in range(n):
        wps = np.column_stack([home[i] + pattern, np.full(len(pattern), 60.0)])
        world.upload(i, wps)
    world.command(np.arange(n), Command.START_MISSION)
    # climb out and get onto the lanes first
    world.pos[:, 2] = 60.0
    for _ in range(50):
        world.step()
    return world


def bench_world(n: int, *, separation: bool, steps: int) -> dict[str, float]:
    world = survey_world(n, separation=separation)
    median, _ = _median_ms(world.step, steps)
    # whole seconds, so the once-a-second processes are in the mean
    per_second = round(1.0 / world.p.dt_s)
    seconds = max(steps // per_second, 3)

    def one_second() -> None:
        for _ in range(per_second):
            world.step()

    _, mean_s = _median_ms(one_second, seconds, 1)
    airborne = int(world.flying.sum())
    return {
        "drones": n,
        "airborne": airborne,
        "median_ms": round(median, 4),
        "mean_ms": round(mean_s / per_second, 4),
    }


def bench_separation(scene: SeparationScene, steps: int) -> dict[str, float]:
    """Our separation step on ``scene``: neighbours, ORCA, and moving the agents by one step."""
    params = SeparationParams(
        min_separation_m=2.0 * scene.radius_m,
        buffer_m=0.0,
        time_horizon_s=scene.time_horizon_s,
        neighbor_dist_m=scene.neighbor_dist_m,
        max_neighbors=scene.max_neighbors,
    )
    pos = np.array(scene.pos_m, dtype=np.float64)
    vel = np.array(scene.vel_mps, dtype=np.float64)
    pref = np.array(scene.pref_vel_mps, dtype=np.float64)
    vmax = np.full(scene.n, scene.max_speed_mps)
    active = np.ones(scene.n, bool)
    state = {"pos": pos, "vel": vel}

    def step() -> None:
        res = separate(state["pos"], state["vel"], pref, vmax, active, params, scene.dt_s)
        state["vel"] = res.vel_mps
        state["pos"] = state["pos"] + res.vel_mps * scene.dt_s

    median, _ = _median_ms(step, steps, warmup=2)
    p = state["pos"]
    from scipy.spatial import cKDTree

    d, _ = cKDTree(p).query(p, k=2)
    return {
        "agents": scene.n,
        "step_ms": round(median, 3),
        "min_distance_m": round(float(d[:, 1].min()), 3),
        "overlap_pairs": len(cKDTree(p).query_pairs(2.0 * scene.radius_m - 1e-9)),
    }


def run(steps: int = 50, *, with_rvo2: bool = True) -> dict[str, Any]:
    """Every figure of ``skysweep bench sim`` as one dictionary."""
    import os

    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "numba_threads": _numba_threads()},
        "sim_step": [bench_world(n, separation=False, steps=steps) for n in (2500, 10_000)],
        "sim_step_separated": [
            bench_world(n, separation=True, steps=max(steps // 2, 5)) for n in (2500, 10_000)
        ],
        "separation": {},
    }
    for scene in (dense_scene(), sparse_scene()):
        kind = scene.name.split("-")[0]
        row: dict[str, Any] = {"ours": bench_separation(scene, steps=max(steps // 2, 10))}
        if with_rvo2 and rvo2_available():
            ref = time_rvo2(scene, steps=max(steps // 5, 5))
            row["rvo2"] = {k: round(v, 3) if isinstance(v, float) else v for k, v in ref.items()}
            row["speedup_vs_do_step"] = round(ref["do_step_ms"] / row["ours"]["step_ms"], 2)
            row["speedup_vs_full_step"] = round(ref["full_step_ms"] / row["ours"]["step_ms"], 2)
        else:
            row["rvo2"] = None
        out["separation"][kind] = row
    return out


def _numba_threads() -> int:
    import numba

    return int(numba.get_num_threads())
