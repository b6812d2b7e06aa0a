"""Search theory: the probability map (search.prior) and Stone's optimal effort, checked against
the closed forms, and what `skysweep plan` prints of them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from skysweep import mission
from skysweep.cli import app
from skysweep.errors import InfeasibleError, MissionError
from skysweep.search import (
    build_prior,
    circular_normal_pos,
    optimal_effort,
    pos,
    posterior,
)
from skysweep.search.effort import swept_effort

LON, LAT = 8.10, 46.50


def _box(lon0: float, lat0: float, dlon: float, dlat: float) -> dict[str, Any]:
    ring = [
        [lon0, lat0],
        [lon0 + dlon, lat0],
        [lon0 + dlon, lat0 + dlat],
        [lon0, lat0 + dlat],
        [lon0, lat0],
    ]
    return {"type": "Polygon", "coordinates": [ring]}


def _fleet(count: int, speed_mps: float = 10, endurance_s: float = 1200) -> list[Any]:
    return [
        {
            "model": "quad",
            "count": count,
            "launch_site": "base",
            "speed_mps": speed_mps,
            "endurance_s": endurance_s,
            "swath_m": 50,
        }
    ]


def _mission(prior: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    """About 20 km x 20 km round (LON, LAT), one site at its centre."""
    data: dict[str, Any] = {
        "name": "prior test",
        "area": _box(LON - 0.13, LAT - 0.09, 0.26, 0.18),
        "launch_sites": [{"name": "base", "lon": LON, "lat": LAT}],
        "fleet": _fleet(3),
        **extra,
    }
    if prior is not None:
        data["search"] = {"prior": prior}
    return data


def _radius(m: mission.Mission, lon: float, lat: float) -> np.ndarray:
    grid = build_prior(m)
    assert grid is not None
    gx, gy = grid.centres_m()
    px, py = m.frame.to_local(lon, lat)
    return np.hypot(gx - px, gy - py)


# -- the map ------------------------------------------------------------------------------------


def test_a_last_known_point_puts_each_quartile_inside_its_ring() -> None:
    rings = [0.5, 1.0, 2.0, 4.0]
    m = mission.parse(
        _mission({"cell_m": 50, "last_known_point": {"lon": LON, "lat": LAT, "rings_km": rings}})
    )
    grid = build_prior(m)
    assert grid is not None
    r = _radius(m, LON, LAT)
    for ring_km, share in zip(rings, (0.25, 0.5, 0.75, 0.95), strict=True):
        # cells are counted whole by their centre: a ring 50 m cells wide blurs the edge a little
        assert grid.poa[r < ring_km * 1000].sum() == pytest.approx(share, abs=0.01)
    # the whole distribution (to q95 + 2 (q95 - q75) = 8 km) lies inside the 20 km square
    assert grid.total == pytest.approx(1.0, abs=1e-9)
    # denser near the point, every bearing alike
    d = grid.density_per_m2
    assert d[r < 200].mean() > d[(r > 900) & (r < 1100)].mean() > d[(r > 3000) & (r < 3500)].mean()


def test_what_lies_outside_the_area_or_in_a_keep_out_zone_is_the_rest_of_the_world() -> None:
    lkp = {"lon": LON - 0.12, "lat": LAT, "rings_km": [0.5, 1.0, 2.0, 4.0]}  # near the west edge
    near_edge = build_prior(mission.parse(_mission({"cell_m": 100, "last_known_point": lkp})))
    assert near_edge is not None
    assert 0.5 < near_edge.total < 0.8  # about half the rings lie west of the area
    zone = {"name": "lake", "geometry": _box(LON - 0.12, LAT - 0.01, 0.02, 0.02)}
    m = mission.parse(_mission({"cell_m": 100, "last_known_point": lkp}, keep_out=[zone]))
    holed = build_prior(m)
    assert holed is not None
    assert holed.total < near_edge.total - 0.1
    # no cell inside the zone holds anything, and no cell's POA exceeds its searchable share
    gx, gy = holed.centres_m()
    x0, y0 = m.frame.to_local(LON - 0.119, LAT - 0.009)
    x1, y1 = m.frame.to_local(LON - 0.101, LAT + 0.009)
    inside = (gx > x0) & (gx < x1) & (gy > y0) & (gy < y1)
    assert inside.any() and np.all(holed.poa[inside] == 0) and np.all(holed.area_m2[inside] == 0)


def test_regions_share_the_probability_by_their_weights() -> None:
    west = {"name": "west", "weight": 3, "geometry": _box(LON - 0.10, LAT - 0.05, 0.04, 0.04)}
    east = {"name": "east", "weight": 1, "geometry": _box(LON + 0.05, LAT + 0.01, 0.02, 0.02)}
    m = mission.parse(_mission({"cell_m": 100, "regions": [west, east]}))
    grid = build_prior(m)
    assert grid is not None
    gx, _ = grid.centres_m()
    x_mid, _ = m.frame.to_local(LON, LAT)
    assert grid.poa[gx < x_mid].sum() == pytest.approx(0.75, abs=1e-9)
    assert grid.poa[gx > x_mid].sum() == pytest.approx(0.25, abs=1e-9)
    # evenly within a region: the densities of its inner cells are all alike
    d = grid.density_per_m2[gx < x_mid]
    inner = d[d > 0]
    assert np.median(inner) == pytest.approx(inner.max(), rel=1e-6)


def test_a_grid_of_weighted_cells_is_a_component_too(tmp_path: Path) -> None:
    cells = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"score": v},
                "geometry": _box(LON - 0.05 + 0.02 * k, LAT, 0.02, 0.02),
            }
            for k, v in enumerate((1.0, 3.0))
        ],
    }
    (tmp_path / "cells.geojson").write_text(json.dumps(cells))
    lkp = {"lon": LON, "lat": LAT, "rings_km": [0.5, 1.0, 2.0, 4.0], "weight": 1}
    prior = {
        "cell_m": 100,
        "last_known_point": lkp,
        "grid": {"cells": {"file": "cells.geojson"}, "property": "score", "weight": 1},
    }
    path = tmp_path / "m.yaml"
    path.write_text(json.dumps(_mission(prior)))
    grid = build_prior(mission.load(path))
    assert grid is not None
    assert grid.total == pytest.approx(1.0, abs=1e-6)  # both components lie inside the area


@pytest.mark.parametrize(
    ("prior", "field", "words"),
    [
        ({"cell_m": 50}, "search.prior", "last_known_point, a datum, regions, a grid or a raster"),
        (
            {"last_known_point": {"lon": LON, "lat": LAT, "rings_km": [1, 0.5, 2, 3]}},
            "search.prior.last_known_point.rings_km",
            "increasing",
        ),
        (
            {"regions": [{"name": "a", "weight": 0, "geometry": _box(LON, LAT, 0.01, 0.01)}]},
            "search.prior",
            "all 0",
        ),
        (
            {
                "grid": {
                    "cells": {
                        "type": "FeatureCollection",
                        "features": [
                            {
                                "type": "Feature",
                                "properties": {"p": "high"},
                                "geometry": _box(LON, LAT, 0.01, 0.01),
                            }
                        ],
                    }
                }
            },
            "search.prior.grid",
            "features[0].properties.p must be a number",
        ),
        (
            {"grid": {"cells": {"file": "nowhere.geojson"}}},
            "search.prior.grid.cells",
            "not found",
        ),
        (
            {"datum": {"lon": LON, "lat": LAT, "sigma_m": 0}},
            "search.prior.datum.sigma_m",
            "must be > 0",
        ),
        (
            {"datum": {"lon": LON, "lat": LAT, "sigma_m": 300}, "target_pos": 1.0},
            "search.prior.target_pos",
            "must be < 1",
        ),
    ],
)
def test_a_bad_prior_is_refused_naming_the_field(
    prior: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(MissionError) as err:
        mission.parse(_mission(prior))
    assert err.value.field == field
    assert words in str(err.value)


def test_cells_too_fine_for_the_area_are_refused_naming_cell_m() -> None:
    lkp = {"lon": LON, "lat": LAT, "rings_km": [0.5, 1.0, 2.0, 4.0]}
    m = mission.parse(_mission({"cell_m": 10, "last_known_point": lkp}))
    with pytest.raises(MissionError) as err:
        build_prior(m)
    assert err.value.field == "search.prior.cell_m"


# -- Stone's allocation ------------------------------------------------------------------------


def _circular_normal(sigma_m: float, cell_m: float) -> tuple[np.ndarray, float]:
    xs = np.arange(-6 * sigma_m, 6 * sigma_m, cell_m) + cell_m / 2
    x, y = np.meshgrid(xs, xs)
    density = np.exp(-(x**2 + y**2) / (2 * sigma_m**2)) / (2 * math.pi * sigma_m**2)
    return density * cell_m**2, cell_m**2


@pytest.mark.parametrize("h", [0.3, 1.0, 2.0, 4.0])
def test_the_allocation_reaches_stones_closed_form_on_a_circular_normal_prior(h: float) -> None:
    sigma = 400.0
    poa, a = _circular_normal(sigma, 20.0)
    effort = h**2 * math.pi * sigma**2
    z = optimal_effort(poa, a, effort)
    assert z.sum() == pytest.approx(effort, rel=1e-9)
    assert pos(poa, z, a) == pytest.approx(circular_normal_pos(effort, sigma), abs=2e-4)
    # and it beats spreading the same effort evenly
    even = np.full(poa.shape, effort / poa.size)
    assert pos(poa, z, a) > pos(poa, even, a)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 60),
    effort_share=st.floats(0.01, 20.0),
)
def test_no_other_allocation_of_the_same_effort_does_better(
    seed: int, n: int, effort_share: float
) -> None:
    rng = np.random.default_rng(seed)
    poa = rng.dirichlet(np.full(n, 0.5)) * rng.uniform(0.3, 1.0)
    poa[rng.random(n) < 0.2] = 0.0
    area = rng.uniform(1e3, 1e5, n)
    effort = effort_share * float(area.sum())
    z = optimal_effort(poa, area, effort)
    assert np.all(z >= 0)
    if poa.sum() > 0:
        assert z.sum() == pytest.approx(effort, rel=1e-9)
    assert np.all(z[poa == 0] == 0)
    best = pos(poa, z, area)
    for _ in range(20):
        other = rng.dirichlet(np.ones(n)) * effort
        assert pos(poa, other, area) <= best + 1e-9
    # every searched cell is left with the same posterior density, the unsearched ones below it
    searched = z > 0
    if searched.sum() > 1:
        # log of p (1 - POD) / a, exactly: 1 - POD underflows for a heavy search
        left = np.log(poa[searched] / area[searched]) - z[searched] / area[searched]
        assert np.ptp(left) < 1e-6
        rest = ~searched & (poa > 0)
        if rest.any():
            assert np.log(poa[rest] / area[rest]).max() <= left.max() + 1e-9


def test_a_bad_effort_is_refused() -> None:
    with pytest.raises(InfeasibleError):
        optimal_effort(np.ones(3) / 3, 1.0, -1.0)
    with pytest.raises(InfeasibleError):
        circular_normal_pos(1.0, 0.0)


def test_an_unsuccessful_search_moves_probability_to_what_was_not_searched() -> None:
    poa = np.array([0.5, 0.3, 0.0])  # 0.2 lies outside the cells
    area = np.full(3, 1e4)
    z = np.array([2e4, 0.0, 0.0])
    after = posterior(poa, z, area)
    miss = 1 - pos(poa, z, area)
    assert after.sum() + 0.2 / miss == pytest.approx(1.0)
    assert after[0] < poa[0] and after[1] > poa[1] and after[2] == 0


def test_swept_effort_counts_swath_times_length_into_the_cells_under_the_track() -> None:
    z = swept_effort(0.0, 0.0, 100.0, (3, 5), np.array([[10.0, 150.0]]), [[490.0, 150.0]], 40.0)
    assert z.sum() == pytest.approx(40.0 * 480.0)
    assert np.all(z[1] > 0) and np.all(z[0] == 0) and np.all(z[2] == 0)


# -- skysweep plan ------------------------------------------------------------------------------


def _plan_json(tmp_path: Path, data: dict[str, Any], *extra: str) -> dict[str, Any]:
    path = tmp_path / "m.yaml"
    path.write_text(json.dumps(data))
    args = ["plan", str(path), "--out", str(tmp_path / "p.geojson"), "--json", *extra]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def test_plan_prints_the_maps_poa_and_the_plans_pos_and_writes_the_map(tmp_path: Path) -> None:
    small = {
        "name": "lost hiker",
        "area": _box(8.0, 46.5, 0.03, 0.02),
        "launch_sites": [{"name": "base", "lon": 8.015, "lat": 46.51, "pads": 4}],
        "fleet": _fleet(6, speed_mps=12, endurance_s=1500),
        "search": {
            "allocation": "uniform",
            "prior": {
                "cell_m": 50,
                "last_known_point": {"lon": 8.015, "lat": 46.51, "rings_km": [0.3, 0.6, 1.1, 2]},
            },
        },
    }
    prob = tmp_path / "prob.geojson"
    s = _plan_json(tmp_path, small, "--probability", str(prob))
    assert 0.5 < s["poa_total"] < 1.0  # the 95 % ring reaches past the 2.3 km x 2.2 km area
    # the whole area swept once at a swath's spacing: coverage W / swath = 0.706 in every cell,
    # so POS = (1 - e^-0.706) POA or a bit more
    assert s["pos_plan"] >= (1 - math.exp(-0.706)) * s["poa_total"] - 0.01
    assert s["pos_plan"] < 0.85 * s["pos_optimal_same_effort"]
    assert s["pos_optimal_same_effort"] <= s["poa_total"]
    fc = json.loads(prob.read_text())
    poa = sum(f["properties"]["poa"] for f in fc["features"])
    assert poa == pytest.approx(s["poa_total"], abs=1e-4)
    assert {"pod_plan", "pod_optimal", "density_per_km2"} <= set(fc["features"][0]["properties"])
    # the default, the plan steered by the map: close to Stone's optimum at its own effort, and
    # it searches on until the expected POS reaches target_pos of the map's
    small["search"]["allocation"] = "optimal"  # type: ignore[index]
    small["search"]["prior"]["target_pos"] = 0.8  # type: ignore[index]
    s = _plan_json(tmp_path, small)
    assert s["pos_plan"] >= 0.95 * s["pos_optimal_same_effort"]
    assert s["pos_plan"] >= 0.8 * s["poa_total"]


def test_plan_without_a_prior_prints_no_probabilities(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        json.dumps(_mission(None) | {"area": _box(LON - 0.005, LAT - 0.005, 0.01, 0.01)})
    )
    r = CliRunner().invoke(app, ["plan", str(path), "--out", str(tmp_path / "p.geojson"), "--json"])
    assert r.exit_code == 0, r.output
    assert "poa_total" not in json.loads(r.stdout)
    r = CliRunner().invoke(
        app,
        [
            "plan",
            str(path),
            "--out",
            str(tmp_path / "p.geojson"),
            "--probability",
            str(tmp_path / "x"),
        ],
    )
    assert r.exit_code != 0 and "search.prior" in r.output + r.stderr


def test_the_example_mission_with_a_prior_builds_its_map() -> None:
    m = mission.load(Path(__file__).parent.parent / "examples" / "lost-hiker-prior.yaml")
    grid = build_prior(m)
    assert grid is not None
    assert 0.5 < grid.total < 1.0


# -- the live update ------------------------------------------------------------------------------


def test_a_flown_search_updates_the_map_from_the_tracks_flown(tmp_path: Path) -> None:
    """The orchestrator counts the effort the cameras really put into each cell: the POS of the
    search so far rises as it flies, ends close to what the plan promised, and the posterior
    (POC) is the prior scaled cell by cell by what was missed."""
    from skysweep.plan import plan_mission
    from skysweep.runtime.simulate import simulate
    from skysweep.store import RunLog

    data = {
        "name": "live prior",
        "area": _box(8.0, 46.5, 0.012, 0.008),
        "launch_sites": [{"name": "base", "lon": 8.006, "lat": 46.504, "pads": 2}],
        "fleet": _fleet(3),
        "search": {
            "prior": {
                "cell_m": 50,
                "last_known_point": {"lon": 8.006, "lat": 46.504, "rings_km": [0.1, 0.2, 0.4, 0.8]},
                "target_pos": 0.6,
            }
        },
    }
    m = mission.parse(data)
    plan = plan_mission(m)
    grid = build_prior(m)
    assert grid is not None
    from skysweep.search.prior import plan_effort

    promised = pos(grid.poa, plan_effort(plan, grid), grid.area_m2)
    seen: list[float] = []

    last: dict[str, Any] = {}

    def watch(o: Any) -> None:
        seen.append(o.pos)
        last["orch"] = o

    with RunLog(tmp_path / "r.db", create=True) as log:
        log.set_meta("mission", json.loads(mission.to_json(m.spec)))
        summary, _ = simulate(plan, log, seed=2, progress=watch)
    assert summary.state == "COMPLETE"
    assert seen[0] == 0.0 and np.all(np.diff(seen) >= -1e-12)
    assert seen[-1] == pytest.approx(summary.pos, abs=1e-5)
    assert summary.pos == pytest.approx(promised, abs=0.05)
    poc = last["orch"].poc
    assert poc.sum() + (1 - grid.total) / (1 - summary.pos) == pytest.approx(1.0, abs=1e-4)
    swept = last["orch"].search_effort > 0
    assert np.all(poc[swept] < grid.poa[swept] / (1 - summary.pos) + 1e-12)
    # the run's report draws the maps and the POS over time, recomputed from the telemetry
    from skysweep.report import write_report

    write_report(tmp_path / "r.db", tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert "<h2>Search</h2>" in page and 'alt="probability maps"' in page
    final = float(page.split("<th>pos_final</th><td>")[1].split("<")[0])
    assert final == pytest.approx(summary.pos, abs=0.01)
