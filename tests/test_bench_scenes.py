"""The benchmark scenes (skysweep.bench.scenes) and the RVO2 reference harness."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from skysweep.bench.scenes import SeparationScene, dense_scene, separation_scene, sparse_scene


def _neighbour_counts(scene: SeparationScene) -> np.ndarray:
    tree = cKDTree(scene.pos_m)
    hits = tree.query_ball_point(scene.pos_m, scene.neighbor_dist_m, return_length=True)
    return np.asarray(hits) - 1  # minus the agent itself


def _min_pair_distance(pos: np.ndarray) -> float:
    dist, _ = cKDTree(pos).query(pos, k=2)
    return float(dist[:, 1].min())


@pytest.fixture(scope="module")
def dense() -> SeparationScene:
    return dense_scene()


@pytest.fixture(scope="module")
def sparse() -> SeparationScene:
    return sparse_scene()


@pytest.mark.parametrize("n", [1, 7, 200, 1_000])
def test_shapes_and_parameters(n: int) -> None:
    s = separation_scene(n, 5.0, name="x")
    assert s.name == "x"
    assert s.n == n
    for a in (s.pos_m, s.vel_mps, s.pref_vel_mps):
        assert a.shape == (n, 2)
        assert a.dtype == np.float64
        assert np.isfinite(a).all()
        assert not a.flags.writeable
    np.testing.assert_allclose(np.linalg.norm(s.pref_vel_mps, axis=1), s.max_speed_mps)
    np.testing.assert_array_equal(s.vel_mps, s.pref_vel_mps)


def test_dense_and_sparse_parameters(dense: SeparationScene, sparse: SeparationScene) -> None:
    for s in (dense, sparse):
        assert s.n == 10_000
        assert s.radius_m == 2.0
        assert s.max_neighbors == 10
        assert s.time_horizon_s == 2.0
        assert s.dt_s == 0.1
        assert 2.0 <= s.max_speed_mps <= 5.0
    assert dense.neighbor_dist_m == sparse.neighbor_dist_m
    assert dense.name != sparse.name


def test_centred_on_the_origin(dense: SeparationScene) -> None:
    assert np.abs(dense.pos_m.mean(axis=0)).max() < 1.0


@pytest.mark.parametrize("spacing", [4.1, 5.0, 20.0])
def test_no_initial_overlap(spacing: float) -> None:
    s = separation_scene(2_500, spacing, seed=3)
    assert _min_pair_distance(s.pos_m) > 2.0 * s.radius_m


def test_dense_and_sparse_do_not_overlap(dense: SeparationScene, sparse: SeparationScene) -> None:
    assert _min_pair_distance(dense.pos_m) > 2.0 * dense.radius_m
    assert _min_pair_distance(sparse.pos_m) > 2.0 * sparse.radius_m


def test_deterministic_by_seed() -> None:
    a, b, c = dense_scene(500, seed=1), dense_scene(500, seed=1), dense_scene(500, seed=2)
    np.testing.assert_array_equal(a.pos_m, b.pos_m)
    np.testing.assert_array_equal(a.pref_vel_mps, b.pref_vel_mps)
    assert not np.array_equal(a.pos_m, c.pos_m)


def test_flows_cross() -> None:
    s = separation_scene(400, 5.0)
    v = s.pref_vel_mps
    # a quarter each way: east, west, north, south
    for d in ([1, 0], [-1, 0], [0, 1], [0, -1]):
        share = np.mean(np.all(np.isclose(v, s.max_speed_mps * np.array(d)), axis=1))
        assert share == pytest.approx(0.25, abs=0.02)
    # each agent's nearest neighbour flies perpendicular to it
    _, j = cKDTree(s.pos_m).query(s.pos_m, k=2)
    dots = np.einsum("ij,ij->i", v, v[j[:, 1]])
    assert np.allclose(dots, 0.0)


def test_dense_has_about_ten_neighbours(dense: SeparationScene) -> None:
    counts = _neighbour_counts(dense)
    # measured: mean 9.83 (the grid edge pulls it below 10), median 10, 5-95 % range 8-11
    assert 9.0 <= counts.mean() <= 11.0
    assert np.median(counts) == 10


def test_sparse_has_few_neighbours(sparse: SeparationScene) -> None:
    assert _neighbour_counts(sparse).mean() < 1.0


@pytest.mark.parametrize(
    ("n", "spacing_m", "jitter_frac"), [(10, 4.0, 0.25), (0, 5.0, 0.25), (10, 5.0, 0.5)]
)
def test_rejects_bad_arguments(n: int, spacing_m: float, jitter_frac: float) -> None:
    with pytest.raises(ValueError):
        separation_scene(n, spacing_m, jitter_frac=jitter_frac)


def test_rvo2_reference_runs_on_a_small_scene() -> None:
    pytest.importorskip(
        "pyrvo", reason="pyrvo (the RVO2 C++ library, a dev extra) is not installed"
    )
    from skysweep.bench.rvo2_reference import build_rvo2, rvo2_available, time_rvo2

    assert rvo2_available()
    scene = dense_scene(200)
    sim = build_rvo2(scene)
    assert sim.get_num_agents() == 200
    assert sim.get_time_step() == pytest.approx(scene.dt_s)
    assert sim.get_agent_radius(7) == pytest.approx(scene.radius_m)
    assert sim.get_agent_neighbor_dist(7) == pytest.approx(scene.neighbor_dist_m)
    assert sim.get_agent_max_neighbors(7) == scene.max_neighbors
    assert sim.get_agent_time_horizon(7) == pytest.approx(scene.time_horizon_s)
    assert sim.get_agent_max_speed(7) == pytest.approx(scene.max_speed_mps)
    np.testing.assert_allclose(sim.get_agent_position(7).to_tuple(), scene.pos_m[7], atol=1e-4)
    np.testing.assert_allclose(sim.get_agent_velocity(7).to_tuple(), scene.vel_mps[7], atol=1e-5)

    r = time_rvo2(scene, steps=3)
    assert r["agents"] == 200
    assert r["steps"] == 3
    for key in ("do_step_ms", "full_step_ms", "set_pref_ms", "read_back_ms", "min_distance_m"):
        assert r[key] > 0.0, key
    assert r["full_step_ms"] >= r["do_step_ms"]
    # ORCA keeps the agents apart, give or take RVO2's slight overlaps
    assert r["min_distance_m"] > 0.5 * 2.0 * scene.radius_m
