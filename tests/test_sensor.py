"""The search sensor: lateral range curves, sweep widths, and the stepped sensor against them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from skysweep.sim import sensor
from skysweep.sim.sensor import (
    TARGET_KINDS,
    Detections,
    LateralRange,
    SensorParams,
    Targets,
    lateral_range,
    place_targets,
    sense,
)

SWATH_M = 50.0
SEARCH_ALT_M = 60.0


def series_sweep_width(lr: LateralRange) -> float:
    """W from the term-by-term integral of P(x) = sum (-1)^(k+1) (A g)^k / k!, where
    integral of g(x)^k dx = sigma sqrt(2 pi / k)."""
    a = lr.peak_exposure
    terms = [
        (-1) ** (k + 1) * math.exp(k * math.log(a) - math.lgamma(k + 1)) / math.sqrt(k)
        for k in range(1, 200)
    ]
    return lr.sigma_m * math.sqrt(2.0 * math.pi) * math.fsum(terms)


def empty_xy() -> np.ndarray:
    return np.zeros((0, 2))


def fleet(n: int, alt: float = SEARCH_ALT_M, speed: float = 10.0) -> dict[str, np.ndarray]:
    """Keyword arguments of `sense` for n drones at the origin, all sensing."""
    return {
        "drone_xy_m": np.zeros((n, 2)),
        "drone_alt_m": np.full(n, alt),
        "drone_speed_mps": np.full(n, speed),
        "sensing": np.ones(n, bool),
        "swath_m": np.full(n, SWATH_M),
    }


def assert_same(a: Detections, b: Detections) -> None:
    for name in ("drone", "xy_m", "confidence", "target"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


# --- lateral range curves and sweep widths ------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(a=st.floats(1e-3, sensor.MAX_PEAK_EXPOSURE), sigma=st.floats(0.1, 500.0))
def test_sweep_width_is_the_integral_of_pod(a: float, sigma: float) -> None:
    lr = LateralRange(peak_exposure=a, sigma_m=sigma)
    w = lr.sweep_width_m()
    x = np.linspace(-12.0 * sigma, 12.0 * sigma, 20_001)
    assert w == pytest.approx(np.trapezoid(lr.pod(x), x), rel=1e-6)
    assert w == pytest.approx(series_sweep_width(lr), rel=1e-6)
    # Never wider than an exposure-limited sensor (P <= A g), nor than a certain one out to
    # where A g = 1.
    assert w <= a * sigma * math.sqrt(2.0 * math.pi) * (1 + 1e-9)


@pytest.mark.parametrize(
    ("swath", "search_alt"), [(SWATH_M, SEARCH_ALT_M), (20.0, 30.0), (120.0, 110.0)]
)
def test_person_sweep_width_at_search_altitude(swath: float, search_alt: float) -> None:
    ratio = lateral_range(swath, search_alt, search_alt).sweep_width_m() / swath
    assert 0.6 <= ratio <= 0.8


def test_sweep_width_orders_target_kinds() -> None:
    w = {
        k: lateral_range(SWATH_M, SEARCH_ALT_M, SEARCH_ALT_M, k).sweep_width_m()
        for k in TARGET_KINDS
    }
    assert w["vehicle"] > w["life_raft"] > w["person"]


def test_unknown_kind_and_bad_geometry_raise() -> None:
    with pytest.raises(ValueError, match="unknown target kind"):
        lateral_range(SWATH_M, SEARCH_ALT_M, SEARCH_ALT_M, "submarine")
    with pytest.raises(ValueError):
        lateral_range(0.0, SEARCH_ALT_M, SEARCH_ALT_M)
    with pytest.raises(ValueError):
        Targets(np.zeros((2, 2)), ("person",))


@settings(max_examples=50, deadline=None)
@given(
    kind=st.sampled_from(sorted(TARGET_KINDS)),
    alt=st.floats(5.0, 300.0),
    x=st.lists(st.floats(-500.0, 500.0), min_size=2, max_size=20),
)
def test_pod_is_symmetric_and_falls_with_distance(kind: str, alt: float, x: list[float]) -> None:
    lr = lateral_range(SWATH_M, SEARCH_ALT_M, alt, kind)
    xs = np.sort(np.abs(x))
    p = lr.pod(xs)
    assert np.all(np.diff(p) <= 0.0)
    np.testing.assert_array_equal(lr.pod(-xs), p)
    assert np.all((p >= 0.0) & (p < 1.0))


def test_pod_falls_with_altitude() -> None:
    alts = np.linspace(5.0, 300.0, 200)
    on_track = np.array([lateral_range(SWATH_M, SEARCH_ALT_M, h).pod(0.0) for h in alts])
    # Flat where the exposure is capped (very low), falling everywhere else.
    assert np.all(np.diff(on_track) <= 0.0)
    above = alts >= SEARCH_ALT_M
    assert np.all(np.diff(on_track[above]) < 0.0)
    # Off track too, out to sqrt(2) sigma: nearer objects are resolved less well from higher up.
    # (Farther out the widening footprint wins, and P(x) rises with altitude.)
    x = 0.9 * math.sqrt(2.0) * lateral_range(SWATH_M, SEARCH_ALT_M, SEARCH_ALT_M).sigma_m
    off_track = np.array([lateral_range(SWATH_M, SEARCH_ALT_M, h).pod(x) for h in alts[above]])
    assert np.all(np.diff(off_track) < 0.0)


def test_sensor_is_off_below_min_altitude() -> None:
    lr = lateral_range(SWATH_M, SEARCH_ALT_M, sensor.MIN_ALT_M - 0.1)
    assert lr.peak_exposure == 0.0
    assert lr.sweep_width_m() == 0.0
    assert np.all(lr.pod([0.0, 10.0]) == 0.0)
    assert np.all(lr.rate_per_s([0.0, 10.0], 10.0) == 0.0)
    assert lateral_range(SWATH_M, SEARCH_ALT_M, sensor.MIN_ALT_M).peak_exposure > 0.0


@pytest.mark.parametrize("speed", [1.0, 12.0])
@pytest.mark.parametrize("x", [0.0, 8.0, 20.0])
def test_rate_integrated_along_a_pass_gives_pod(speed: float, x: float) -> None:
    lr = lateral_range(SWATH_M, SEARCH_ALT_M, 75.0, "life_raft")
    t = np.linspace(-400.0, 400.0, 400_001) / speed
    exposure = np.trapezoid(lr.rate_per_s(np.hypot(x, speed * t), speed), t)
    assert 1.0 - math.exp(-exposure) == pytest.approx(float(lr.pod(x)), rel=1e-9)


# --- the stepped sensor -------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "alt"), [("person", SEARCH_ALT_M), ("vehicle", 90.0)])
def test_monte_carlo_passes_match_pod(kind: str, alt: float) -> None:
    """Straight passes stepped at 0.2 s detect as often as the lateral range curve says.

    The passes are independent, so 2,000 of them per lateral distance fly side by side, each its
    own drone, past a single target.
    """
    lr = lateral_range(SWATH_M, SEARCH_ALT_M, alt, kind)
    xs = np.array([0.0, 0.5, 1.0, 1.5, 2.5]) * lr.sigma_m
    passes, speed, dt = 2000, 10.0, 0.2
    x = np.repeat(xs, passes)
    n = len(x)
    half_len = 6.0 * lr.sigma_m
    steps = math.ceil(2.0 * half_len / (speed * dt))
    targets = Targets(np.zeros((1, 2)), (kind,))
    params = SensorParams(SEARCH_ALT_M, false_alarms_per_h=0.0)
    kw = fleet(n, alt=alt, speed=speed)
    rng = np.random.default_rng(20240601)
    seen = np.zeros(n, bool)
    for k in range(steps):
        kw["drone_xy_m"] = np.column_stack([x, np.full(n, -half_len + speed * dt * (k + 0.5))])
        det = sense(targets, params=params, dt_s=dt, rng=rng, **kw)
        assert np.all(det.target == 0)
        seen[det.drone] = True
    freq = seen.reshape(len(xs), passes).mean(axis=1)
    expect = lr.pod(xs)
    tol = 4.0 * np.sqrt(expect * (1.0 - expect) / passes) + 1e-3
    assert np.all(np.abs(freq - expect) <= tol), (freq, expect)


def test_true_detections_report_noisy_positions_and_confident_scores() -> None:
    n = 4000
    targets = Targets(np.array([[100.0, -50.0]]), ("vehicle",))
    kw = fleet(n, speed=0.0)  # hovering: still detects, at the 1 m/s rate
    kw["drone_xy_m"] = np.tile([100.0, -50.0], (n, 1))
    params = SensorParams(SEARCH_ALT_M, false_alarms_per_h=0.0, position_error_m=5.0)
    det = sense(targets, params=params, dt_s=1.0, rng=np.random.default_rng(3), **kw)
    lam = lateral_range(SWATH_M, SEARCH_ALT_M, SEARCH_ALT_M, "vehicle").rate_per_s(0.0, 1.0)
    p = 1.0 - math.exp(-float(lam))
    assert abs(len(det) - n * p) <= 4.0 * math.sqrt(n * p * (1 - p))
    assert np.all(np.diff(det.drone) > 0)  # (drone, target) order, one row per pair
    err = det.xy_m - [100.0, -50.0]
    assert np.std(err) == pytest.approx(5.0, rel=0.1)
    assert np.all((det.confidence > 0.0) & (det.confidence < 1.0))
    assert np.mean(det.confidence) == pytest.approx(0.8, abs=0.02)


def test_false_alarms_arrive_at_the_configured_rate() -> None:
    n, dt, steps = 50, 1.0, 2000
    rate_per_h = 18.0
    kw = fleet(n)
    kw["drone_xy_m"] = np.column_stack([np.arange(n) * 1000.0, np.zeros(n)])
    kw["sensing"][::5] = False  # only sensing drones raise false alarms
    n_on = int(kw["sensing"].sum())
    params = SensorParams(SEARCH_ALT_M, false_alarms_per_h=rate_per_h)
    rng = np.random.default_rng(11)
    dets = [sense(Targets.empty(), params=params, dt_s=dt, rng=rng, **kw) for _ in range(steps)]
    count = sum(len(d) for d in dets)
    expect = rate_per_h * n_on * dt * steps / 3600.0
    assert abs(count - expect) <= 4.0 * math.sqrt(expect)
    drone = np.concatenate([d.drone for d in dets])
    xy = np.concatenate([d.xy_m for d in dets])
    conf = np.concatenate([d.confidence for d in dets])
    assert np.all(np.concatenate([d.target for d in dets]) == -1)
    assert np.all(kw["sensing"][drone])
    off = np.hypot(*(xy - kw["drone_xy_m"][drone]).T)
    assert np.all(off <= SWATH_M / 2.0)
    # Uniform over the disc: half of them within r / sqrt(2).
    assert np.mean(off <= SWATH_M / 2.0 / math.sqrt(2.0)) == pytest.approx(0.5, abs=0.05)
    assert np.mean(conf) == pytest.approx(2.0 / 6.0, abs=0.03)


def test_same_seed_same_detections() -> None:
    rng = np.random.default_rng(5)
    n = 300
    kw = fleet(n)
    kw["drone_xy_m"] = rng.uniform(0.0, 400.0, (n, 2))
    kw["drone_alt_m"] = rng.uniform(0.0, 120.0, n)
    kw["swath_m"] = rng.uniform(20.0, 80.0, n)
    targets = place_targets(shapely.box(0.0, 0.0, 400.0, 400.0), ["person"] * 30, rng)
    params = SensorParams(SEARCH_ALT_M, false_alarms_per_h=3600.0)
    a = sense(targets, params=params, dt_s=0.5, rng=np.random.default_rng(9), **kw)
    b = sense(targets, params=params, dt_s=0.5, rng=np.random.default_rng(9), **kw)
    assert len(a) > 0 and np.any(a.target >= 0) and np.any(a.target == -1)
    assert_same(a, b)


def test_nothing_when_not_sensing_or_too_low() -> None:
    targets = Targets(np.zeros((3, 2)), ("person", "vehicle", "life_raft"))
    params = SensorParams(SEARCH_ALT_M, false_alarms_per_h=1e9)
    kw = fleet(20)
    kw["sensing"][:] = False
    assert len(sense(targets, params=params, dt_s=1.0, rng=np.random.default_rng(0), **kw)) == 0
    kw = fleet(20, alt=params.min_alt_m - 0.01)
    assert len(sense(targets, params=params, dt_s=1.0, rng=np.random.default_rng(0), **kw)) == 0


def test_empty_inputs() -> None:
    params = SensorParams(SEARCH_ALT_M)
    rng = np.random.default_rng(0)
    targets = Targets(np.zeros((1, 2)), ("person",))
    for t in (targets, Targets.empty()):
        det = sense(t, params=params, dt_s=1.0, rng=rng, **fleet(0))
        assert len(det) == 0
        assert det.xy_m.shape == (0, 2)
        assert det.drone.dtype == np.intp and det.target.dtype == np.intp
    quiet = SensorParams(SEARCH_ALT_M, false_alarms_per_h=0.0)
    assert len(sense(Targets.empty(), params=quiet, dt_s=1.0, rng=rng, **fleet(10))) == 0


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 300),
    m=st.integers(0, 40),
    spread=st.floats(10.0, 1e5),
)
def test_pair_search_matches_brute_force(seed: int, n: int, m: int, spread: float) -> None:
    rng = np.random.default_rng(seed)
    a = rng.uniform(-spread, spread, (n, 2))
    b = rng.uniform(-spread, spread, (m, 2))
    if n and m:  # some pairs exactly on top of each other and some near the radius
        a[: n // 3] = b[rng.integers(m, size=n // 3)]
    radius = rng.uniform(0.5, 0.5 + spread / 4.0, n)
    active = rng.random(n) < 0.8
    i, j, r2 = sensor._pairs_within(a, b, radius, active)
    d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1)
    ie, je = np.nonzero((d2 <= radius[:, None] ** 2) & active[:, None])
    np.testing.assert_array_equal(i, ie)
    np.testing.assert_array_equal(j, je)
    np.testing.assert_allclose(r2, d2[ie, je], rtol=1e-12, atol=1e-9)


# --- target placement ---------------------------------------------------------------------------


def test_place_targets_inside_polygon_with_hole() -> None:
    outer = [(0.0, 0.0), (1000.0, 0.0), (1000.0, 600.0), (0.0, 600.0)]
    hole = [(200.0, 100.0), (900.0, 100.0), (900.0, 500.0), (200.0, 500.0)]
    region = shapely.Polygon(outer, [hole])
    kinds = ["person", "vehicle", "life_raft"] * 400
    t = place_targets(region, kinds, np.random.default_rng(2))
    assert len(t) == len(kinds) and t.kind == tuple(kinds)
    assert t.xy_m.shape == (len(kinds), 2)
    assert np.all(shapely.contains_xy(region, t.xy_m[:, 0], t.xy_m[:, 1]))
    assert not np.any(shapely.contains_xy(shapely.Polygon(hole), t.xy_m[:, 0], t.xy_m[:, 1]))
    # Uniform: the strip left of the hole holds 200 x 600 of the 320,000 m^2.
    left = np.mean(t.xy_m[:, 0] < 200.0)
    assert left == pytest.approx(120_000 / 320_000, abs=0.05)
    again = place_targets(region, kinds, np.random.default_rng(2))
    np.testing.assert_array_equal(again.xy_m, t.xy_m)


def test_place_targets_rejects_empty_region() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        place_targets(shapely.Polygon(), ["person"], rng)
    with pytest.raises(ValueError):
        place_targets(shapely.LineString([(0, 0), (1, 1)]), ["person"], rng)
    with pytest.raises(ValueError, match="unknown target kind"):
        place_targets(shapely.box(0, 0, 1, 1), ["ghost"], rng)
    assert len(place_targets(shapely.box(0, 0, 1, 1), [], rng)) == 0
