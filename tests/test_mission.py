"""Mission files: the example loads as written, and every bad input is one MissionError that
names the file, the field path and the problem."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from skysweep import mission
from skysweep.errors import MissionError, SkysweepError
from skysweep.mission import DEFAULT_KEEP_IN_MARGIN_M, Mission, MissionSpec, load, parse

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pine-ridge.yaml"
EXAMPLE_TEXT = EXAMPLE.read_text(encoding="utf-8")
BASE: dict[str, Any] = yaml.safe_load(EXAMPLE_TEXT)
SRC = "pine.yaml"

AREA_RING = [[8.010, 46.500], [8.090, 46.500], [8.090, 46.560], [8.010, 46.560], [8.010, 46.500]]
ZONE_RING = [[8.040, 46.510], [8.043, 46.510], [8.043, 46.550], [8.040, 46.550], [8.040, 46.510]]
BOW_TIE = [[8.040, 46.510], [8.043, 46.550], [8.043, 46.510], [8.040, 46.550], [8.040, 46.510]]


def pine() -> dict[str, Any]:
    """A fresh, mutable copy of the example mission as loaded from YAML."""
    return copy.deepcopy(BASE)


def minimal() -> dict[str, Any]:
    """The example with every optional field left out."""
    d = pine()
    for key in ("keep_out", "keep_in", "search", "safety", "weather"):
        del d[key]
    d["launch_sites"] = [{"name": "base", "lon": 8.005, "lat": 46.505}]
    d["fleet"] = [dict(model="quad-s", count=3, launch_site="base", speed_mps=12.0)]
    d["fleet"][0].update(endurance_s=2400, swath_m=60)
    return d


def error_of(data: Any, base_dir: Path | str = ".") -> MissionError:
    with pytest.raises(MissionError) as info:
        parse(data, source=SRC, base_dir=base_dir)
    return info.value


def assert_error(err: MissionError, field: str, problem: str, *, source: str = SRC) -> None:
    assert (err.source, err.field, err.problem) == (source, field, problem)
    assert str(err) == (f"{source}: {field}: {problem}" if field else f"{source}: {problem}")


# --------------------------------------------------------------------------------------------
# The example
# --------------------------------------------------------------------------------------------


def test_example_loads_exactly_as_written() -> None:
    m = load(EXAMPLE)
    assert isinstance(m, Mission)
    assert m.name == "Pine Ridge missing hiker"
    assert m.source == str(EXAMPLE)
    assert len(m.fleet) == 50
    assert m.fleet.ids[0] == "quad-s-001" and m.fleet.ids[-1] == "quad-s-050"
    assert set(m.fleet.models) == {"quad-s"}
    np.testing.assert_array_equal(m.fleet.speed_mps, 12.0)
    np.testing.assert_array_equal(m.fleet.endurance_s, 2400.0)
    np.testing.assert_array_equal(m.fleet.swath_m, 60.0)
    # lanes are planned with the default sidelap of a metre between footprints
    np.testing.assert_array_equal(m.fleet.track_spacing_m, 59.0)
    np.testing.assert_array_equal(m.fleet.swap_s, 120.0)
    np.testing.assert_array_equal(m.fleet.sweep_rate_m2ps, 720.0)
    np.testing.assert_array_equal(m.fleet.site, 0)
    assert not m.fleet.speed_mps.flags.writeable

    assert [z.name for z in m.keep_out] == ["power line"]
    # 0.08° × 0.06° at 46.53° N ≈ 6.13 km × 6.67 km
    assert m.area.area == pytest.approx(40.9e6, rel=0.01)
    zone_m2 = m.keep_out[0].geometry.area
    assert zone_m2 == pytest.approx(1.02e6, rel=0.02)
    assert m.searchable.area == pytest.approx(m.area.area - zone_m2, rel=1e-9)
    assert m.keep_in.area == pytest.approx(8.5e6 * 8.9, rel=0.02)  # 0.11° × 0.08°
    assert m.keep_in.contains(m.area)
    assert m.flyable.area < m.keep_in.area

    (site,) = m.sites
    assert (site.name, site.lon, site.lat, site.pads, site.launch_interval_s) == (
        "base",
        8.005,
        46.505,
        10,
        5.0,
    )
    assert m.site_xy_m.shape == (1, 2)
    assert m.keep_in.contains(shapely.Point(site.xy_m))
    assert not m.area.contains(shapely.Point(site.xy_m))

    assert m.altitude_m == 60.0
    assert m.safety.min_separation_m == 15.0
    assert m.safety.geofence_margin_m == 10.0
    assert m.safety.battery_reserve == 0.2
    assert m.safety.lost_link_timeout_s == 10.0
    # wind from 270° (west) blows towards the east
    np.testing.assert_allclose(m.wind_vector_mps, [4.0, 0.0], atol=1e-12)


def test_local_frame_is_metric_and_centred() -> None:
    m = load(EXAMPLE)
    x0, y0, x1, y1 = m.area.bounds
    assert x1 - x0 == pytest.approx(6130, rel=0.01)
    assert y1 - y0 == pytest.approx(6672, rel=0.01)
    assert (x0 + x1) / 2 == pytest.approx(0, abs=50)
    assert (y0 + y1) / 2 == pytest.approx(0, abs=50)


def test_json_mission_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "pine.json"
    path.write_text(json.dumps(BASE), encoding="utf-8")
    m = load(path)
    assert m.name == "Pine Ridge missing hiker" and len(m.fleet) == 50


@pytest.mark.parametrize(
    ("wind_from_deg", "expected"),
    [(0, [0, -1]), (90, [-1, 0]), (180, [0, 1]), (270, [1, 0]), (360, [0, -1]), (45, [-1, -1])],
)
def test_wind_from_is_meteorological(wind_from_deg: float, expected: list[float]) -> None:
    d = pine()
    d["weather"] = {"wind_mps": 2.0, "wind_from_deg": wind_from_deg}
    v = parse(d, source=SRC).wind_vector_mps
    np.testing.assert_allclose(v, 2.0 * np.array(expected) / np.linalg.norm(expected), atol=1e-9)


def test_defaults() -> None:
    m = parse(minimal(), source=SRC)
    spec = m.spec
    assert spec.keep_out == [] and spec.keep_in is None and m.keep_out == ()
    (site,) = m.sites
    assert (site.pads, site.launch_interval_s) == (1, 5.0)
    np.testing.assert_array_equal(m.fleet.swap_s, 120.0)
    np.testing.assert_array_equal(m.fleet.climb_mps, 4.0)
    np.testing.assert_array_equal(m.fleet.accel_mps2, 4.0)
    assert spec.search.altitude_m == 60.0
    assert spec.safety.model_dump() == {
        "min_separation_m": 15.0,
        "geofence_margin_m": 10.0,
        "battery_reserve": 0.2,
        "lost_link_timeout_s": 10.0,
        "max_altitude_m": 120.0,
    }
    assert spec.weather.wind_mps == 0.0 and spec.weather.wind_from_deg == 0.0
    np.testing.assert_array_equal(m.wind_vector_mps, [0.0, 0.0])
    assert m.searchable.area == pytest.approx(m.area.area)


def test_default_keep_in_is_hull_of_area_and_sites_grown_by_margin() -> None:
    m = parse(minimal(), source=SRC)
    site = shapely.Point(m.sites[0].xy_m)
    hull = shapely.union_all([m.area, site]).convex_hull
    assert DEFAULT_KEEP_IN_MARGIN_M == 500.0
    assert m.keep_in.area == pytest.approx(hull.buffer(DEFAULT_KEEP_IN_MARGIN_M).area, rel=1e-9)
    assert m.keep_in.contains(m.area.buffer(DEFAULT_KEEP_IN_MARGIN_M - 1))
    assert m.keep_in.contains(site.buffer(DEFAULT_KEEP_IN_MARGIN_M - 1))
    assert not m.keep_in.contains(m.area.buffer(DEFAULT_KEEP_IN_MARGIN_M + 1))
    # the geofence margin shrinks it into the flyable region
    assert m.flyable.area == pytest.approx(m.keep_in.buffer(-10, join_style="mitre").area)


def test_drone_ids_number_per_model_across_fleet_entries() -> None:
    d = pine()
    d["launch_sites"].append({"name": "north", "lon": 8.05, "lat": 46.565})
    row = {"launch_site": "base", "speed_mps": 10, "endurance_s": 1800, "swath_m": 40}
    d["fleet"] = [
        row | {"model": "quad-s", "count": 2},
        row | {"model": "wing-x", "count": 1, "launch_site": "north", "speed_mps": 20},
        row | {"model": "quad-s", "count": 2, "launch_site": "north"},
    ]
    m = parse(d, source=SRC)
    assert m.fleet.ids == ("quad-s-001", "quad-s-002", "wing-x-001", "quad-s-003", "quad-s-004")
    assert m.fleet.models == ("quad-s", "quad-s", "wing-x", "quad-s", "quad-s")
    np.testing.assert_array_equal(m.fleet.site, [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(m.fleet.speed_mps, [10, 10, 20, 10, 10])
    assert len(set(m.fleet.ids)) == len(m.fleet)


def test_json_round_trip_inlines_geometry_files(tmp_path: Path) -> None:
    write_geojson(tmp_path / "area.geojson", polygon(AREA_RING))
    d = pine()
    d["area"] = {"file": "area.geojson"}
    m = parse(d, source=SRC, base_dir=tmp_path)
    again = mission.from_json(mission.to_json(m.spec))
    assert again.spec == m.spec
    assert again.fleet.ids == m.fleet.ids
    assert again.area.equals(m.area)


# --------------------------------------------------------------------------------------------
# Geometry from files: {file: path} relative to the mission file
# --------------------------------------------------------------------------------------------


def polygon(ring: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [ring]}


def write_geojson(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")


def _west_east() -> tuple[list[list[float]], list[list[float]]]:
    # apart: polygons that share an edge are an invalid MultiPolygon ("polygons overlap")
    west = [[8.010, 46.500], [8.049, 46.500], [8.049, 46.560], [8.010, 46.560], [8.010, 46.500]]
    east = [[8.051, 46.500], [8.090, 46.500], [8.090, 46.560], [8.051, 46.560], [8.051, 46.500]]
    return west, east


GEOJSON_FORMS: dict[str, Any] = {
    "Polygon": polygon(AREA_RING),
    "MultiPolygon": {"type": "MultiPolygon", "coordinates": [[AREA_RING]]},
    "Feature": {"type": "Feature", "properties": {"name": "x"}, "geometry": polygon(AREA_RING)},
    "FeatureCollection": {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {}, "geometry": polygon(AREA_RING)}],
    },
    # two halves with a 0.002° gap: loaded as one MultiPolygon
    "FeatureCollection of two": {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {}, "geometry": polygon(ring)}
            for ring in _west_east()
        ],
    },
}


@pytest.mark.parametrize("form", list(GEOJSON_FORMS))
def test_area_from_file_in_any_geojson_form(tmp_path: Path, form: str) -> None:
    write_geojson(tmp_path / "geo" / "area.geojson", GEOJSON_FORMS[form])
    d = pine()
    d["area"] = {"file": "geo/area.geojson"}
    m = parse(d, source=SRC, base_dir=tmp_path)
    two = form == "FeatureCollection of two"
    kind = "MultiPolygon" if two or form == "MultiPolygon" else "Polygon"
    assert m.spec.area["type"] == kind
    share = 0.078 / 0.080 if two else 1.0
    assert m.area.area == pytest.approx(parse(pine(), source=SRC).area.area * share, rel=1e-4)


@pytest.mark.parametrize("form", list(GEOJSON_FORMS)[:4])
def test_keep_out_and_keep_in_from_files(tmp_path: Path, form: str) -> None:
    zone = polygon(ZONE_RING)
    fence = BASE["keep_in"]
    wrap: dict[str, Callable[[dict[str, Any]], Any]] = {
        "Polygon": lambda g: g,
        "MultiPolygon": lambda g: {"type": "MultiPolygon", "coordinates": [g["coordinates"]]},
        "Feature": lambda g: {"type": "Feature", "properties": None, "geometry": g},
        "FeatureCollection": lambda g: {
            "type": "FeatureCollection",
            "features": [{"type": "Feature", "properties": None, "geometry": g}],
        },
    }
    write_geojson(tmp_path / "zone.geojson", wrap[form](zone))
    write_geojson(tmp_path / "fence.json", wrap[form](fence))
    d = pine()
    d["keep_out"][0]["geometry"] = {"file": "zone.geojson"}
    d["keep_in"] = {"file": "fence.json"}
    m = parse(d, source=SRC, base_dir=tmp_path)
    ref = parse(pine(), source=SRC)
    assert m.keep_out[0].geometry.area == pytest.approx(ref.keep_out[0].geometry.area, rel=1e-6)
    assert m.keep_in.area == pytest.approx(ref.keep_in.area, rel=1e-6)
    assert m.searchable.area == pytest.approx(ref.searchable.area, rel=1e-6)


def test_geometry_files_resolve_relative_to_the_mission_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mdir = tmp_path / "missions"
    write_geojson(mdir / "geo" / "area.geojson", polygon(AREA_RING))
    write_geojson(
        mdir / "geo" / "zone.geojson", {"type": "Feature", "geometry": polygon(ZONE_RING)}
    )
    text = EXAMPLE_TEXT.replace(
        "geometry: {type: Polygon, coordinates: [[[8.040, 46.510], [8.043, 46.510], "
        "[8.043, 46.550], [8.040, 46.550], [8.040, 46.510]]]}",
        "geometry: {file: geo/zone.geojson}",
    )
    assert text != EXAMPLE_TEXT
    data = yaml.safe_load(text)
    data["area"] = {"file": "geo/area.geojson"}
    path = mdir / "pine.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # not the mission's directory
    m = load(path)
    assert m.area.area == pytest.approx(40.9e6, rel=0.01)
    assert m.keep_out[0].name == "power line"


# --------------------------------------------------------------------------------------------
# Bad input: one MissionError "<file>: <field path>: <problem>"
# --------------------------------------------------------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting ``a.b[0].c``-style ``path`` (dots only; ints index lists)."""

    def mutate(d: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node: Any = d
        for p in parents:
            node = node[p]
        node[last] = value

    return mutate


def _del(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(d: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node: Any = d
        for p in parents:
            node = node[p]
        del node[last]

    return mutate


def _area_pos(i: int, pos: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(d: dict[str, Any]) -> None:
        d["area"]["coordinates"][0][i] = pos

    return mutate


BAD: dict[str, tuple[Callable[[dict[str, Any]], None], str, str]] = {
    # missing fields
    "missing speed": (_del("fleet.0.speed_mps"), "fleet[0].speed_mps", "is required"),
    "missing name": (_del("name"), "name", "is required"),
    "missing area": (_del("area"), "area", "is required"),
    "missing fleet": (_del("fleet"), "fleet", "is required"),
    "missing zone name": (_del("keep_out.0.name"), "keep_out[0].name", "is required"),
    "missing zone geometry": (_del("keep_out.0.geometry"), "keep_out[0].geometry", "is required"),
    "missing site lat": (_del("launch_sites.0.lat"), "launch_sites[0].lat", "is required"),
    # unknown fields
    "unknown top": (_set("notes", "x"), "notes", "unknown field"),
    "unknown fleet": (_set("fleet.0.colour", "red"), "fleet[0].colour", "unknown field"),
    "unknown weather": (_set("weather.gusts_mps", 9), "weather.gusts_mps", "unknown field"),
    "unknown zone": (_set("keep_out.0.height", 9), "keep_out[0].height", "unknown field"),
    "unknown geojson member": (
        _set("area.crs", "x"),
        "area",
        "unknown GeoJSON member(s): ['crs']",
    ),
    "mixed-type geojson members": (
        lambda d: d["area"].update({1: 2, "x": 3}),
        "area",
        "unknown GeoJSON member(s): [1, 'x']",
    ),
    # wrong types
    "name not str": (_set("name", 5), "name", "must be a string"),
    "empty name": (_set("name", ""), "name", "String should have at least 1 character"),
    "speed str": (_set("fleet.0.speed_mps", "fast"), "fleet[0].speed_mps", "must be a number"),
    "speed None": (_set("fleet.0.speed_mps", None), "fleet[0].speed_mps", "must be a number"),
    "count str": (_set("fleet.0.count", "many"), "fleet[0].count", "must be a whole number"),
    "count float": (_set("fleet.0.count", 2.5), "fleet[0].count", "must be a whole number"),
    "count huge float": (_set("fleet.0.count", 1e300), "fleet[0].count", "is too large"),
    "pads list": (
        _set("launch_sites.0.pads", [1]),
        "launch_sites[0].pads",
        "must be a whole number",
    ),
    "site ref list": (_set("fleet.0.launch_site", [1]), "fleet[0].launch_site", "must be a string"),
    "fleet not list": (_set("fleet", {"a": 1}), "fleet", "must be a list"),
    "keep_out not list": (_set("keep_out", None), "keep_out", "must be a list"),
    "fleet entry not mapping": (_set("fleet.0", 3), "fleet[0]", "must be a mapping"),
    "search not mapping": (_set("search", 5), "search", "must be a mapping"),
    "area str": (
        _set("area", "somewhere"),
        "area",
        "must be a GeoJSON Polygon or MultiPolygon, or {file: path}",
    ),
    "keep_in list": (
        _set("keep_in", [1, 2]),
        "keep_in",
        "must be a GeoJSON Polygon or MultiPolygon, or {file: path}",
    ),
    "area Point": (
        _set("area", {"type": "Point", "coordinates": [8.0, 46.5]}),
        "area",
        "must be a Polygon or MultiPolygon, not 'Point'",
    ),
    "inline Feature": (
        _set("area", {"type": "Feature", "geometry": polygon(AREA_RING)}),
        "area",
        "must be a Polygon or MultiPolygon, not 'Feature'",
    ),
    "coordinates str": (
        _set("area.coordinates", "abc"),
        "area",
        "coordinates must be a list of rings",
    ),
    "coordinates empty": (
        _set("area.coordinates", []),
        "area",
        "coordinates must be a list of rings",
    ),
    "multi coords empty": (
        _set("area", {"type": "MultiPolygon", "coordinates": []}),
        "area",
        "coordinates must be a non-empty list",
    ),
    "position str": (
        _area_pos(1, "8.09, 46.5"),
        "area",
        "ring 0, position 1: must be [lon, lat] numbers",
    ),
    "position bool": (
        _area_pos(1, [True, 46.5]),
        "area",
        "ring 0, position 1: must be [lon, lat] numbers",
    ),
    "position 1-d": (
        _area_pos(2, [8.09]),
        "area",
        "ring 0, position 2: must be [lon, lat] numbers",
    ),
    "position 4-d": (
        _area_pos(2, [8.09, 46.5, 1, 2]),
        "area",
        "ring 0, position 2: must be [lon, lat] numbers",
    ),
    # NaN and infinities (YAML .nan / .inf also in test_yaml_nan_and_inf)
    "speed nan": (
        _set("fleet.0.speed_mps", math.nan),
        "fleet[0].speed_mps",
        "must be a finite number",
    ),
    "wind inf": (_set("weather.wind_mps", math.inf), "weather.wind_mps", "must be a finite number"),
    "lat -inf": (
        _set("launch_sites.0.lat", -math.inf),
        "launch_sites[0].lat",
        "must be a finite number",
    ),
    "coordinate nan": (
        _area_pos(1, [math.nan, 46.5]),
        "area",
        "ring 0, position 1: must be finite numbers",
    ),
    "coordinate inf": (
        _area_pos(1, [8.09, math.inf]),
        "area",
        "ring 0, position 1: must be finite numbers",
    ),
    "coordinate huge int": (
        _area_pos(1, [10**400, 46.5]),
        "area",
        "ring 0, position 1: must be finite numbers",
    ),
    # ranges
    "site lat 91": (_set("launch_sites.0.lat", 91), "launch_sites[0].lat", "must be <= 90"),
    "site lon -181": (_set("launch_sites.0.lon", -181), "launch_sites[0].lon", "must be >= -180"),
    "coordinate lon 181": (
        _area_pos(1, [181, 46.5]),
        "area",
        "ring 0, position 1: longitude 181.0 out of range [-180, 180]",
    ),
    "coordinate lat -91": (
        _area_pos(3, [8.01, -91]),
        "area",
        "ring 0, position 3: latitude -91.0 out of range [-90, 90]",
    ),
    "speed 0": (_set("fleet.0.speed_mps", 0), "fleet[0].speed_mps", "must be > 0"),
    "speed -3": (_set("fleet.0.speed_mps", -3), "fleet[0].speed_mps", "must be > 0"),
    "speed 101": (_set("fleet.0.speed_mps", 101), "fleet[0].speed_mps", "must be <= 100"),
    "endurance 0": (_set("fleet.0.endurance_s", 0), "fleet[0].endurance_s", "must be > 0"),
    "swath 0": (_set("fleet.0.swath_m", 0), "fleet[0].swath_m", "must be > 0"),
    "swap -1": (_set("fleet.0.swap_s", -1), "fleet[0].swap_s", "must be >= 0"),
    "sidelap -1": (_set("search.sidelap_m", -1), "search.sidelap_m", "must be >= 0"),
    "sidelap over half a swath": (
        _set("search.sidelap_m", 31),
        "search.sidelap_m",
        "31 m is more than half the swath of fleet[0] ('quad-s', 60 m): lanes would overlap "
        "more than they are apart",
    ),
    "climb 31": (_set("fleet.0.climb_mps", 31), "fleet[0].climb_mps", "must be <= 30"),
    "accel 0": (_set("fleet.0.accel_mps2", 0), "fleet[0].accel_mps2", "must be > 0"),
    "pads 0": (_set("launch_sites.0.pads", 0), "launch_sites[0].pads", "must be > 0"),
    "interval -1": (
        _set("launch_sites.0.launch_interval_s", -1),
        "launch_sites[0].launch_interval_s",
        "must be >= 0",
    ),
    "altitude 0": (_set("search.altitude_m", 0), "search.altitude_m", "must be > 0"),
    "altitude 501": (_set("search.altitude_m", 501), "search.altitude_m", "must be <= 500"),
    "reserve 1": (_set("safety.battery_reserve", 1), "safety.battery_reserve", "must be < 1"),
    "separation -1": (
        _set("safety.min_separation_m", -1),
        "safety.min_separation_m",
        "must be >= 0",
    ),
    "lost link 0": (
        _set("safety.lost_link_timeout_s", 0),
        "safety.lost_link_timeout_s",
        "must be > 0",
    ),
    "wind 61": (_set("weather.wind_mps", 61), "weather.wind_mps", "must be <= 60"),
    "wind from 361": (
        _set("weather.wind_from_deg", 361),
        "weather.wind_from_deg",
        "must be <= 360",
    ),
    # zero drones
    "count 0": (_set("fleet.0.count", 0), "fleet[0].count", "must be > 0"),
    "empty fleet": (_set("fleet", []), "fleet", "must have at least 1 item(s)"),
    "no launch sites": (_set("launch_sites", []), "launch_sites", "must have at least 1 item(s)"),
    # rings
    "unclosed ring": (
        _set("area.coordinates", [[*AREA_RING[:-1], [8.011, 46.5]]]),
        "area",
        "ring 0 is not closed: the first and last positions differ",
    ),
    "too few positions": (
        _set("area.coordinates", [[[8.0, 46.5], [8.1, 46.5], [8.0, 46.5]]]),
        "area",
        "ring 0 needs at least 4 positions (a closed triangle), has 3",
    ),
    "ring not list": (
        _set("area.coordinates", [5]),
        "area",
        "ring 0 must be a list of [lon, lat] positions",
    ),
    "hole unclosed": (
        _set("area.coordinates", [AREA_RING, ZONE_RING[:-1]]),
        "area",
        "ring 1 is not closed: the first and last positions differ",
    ),
    "multi ring unclosed": (
        _set("area", {"type": "MultiPolygon", "coordinates": [[AREA_RING[:-1]]]}),
        "area",
        "polygon 0, ring 0 is not closed: the first and last positions differ",
    ),
    # fences and references
    "keep-out covers area": (
        _set("keep_out.0.geometry", polygon(AREA_RING)),
        "keep_out",
        "the keep-out zones cover the whole area: nothing left to search",
    ),
    "site in keep-out": (
        lambda d: d["launch_sites"][0].update(lon=8.0415, lat=46.52),
        "launch_sites[0]",
        "launch site 'base' is inside keep-out zone 'power line'",
    ),
    "site outside keep_in": (
        lambda d: d["launch_sites"][0].update(lon=7.9, lat=46.52),
        "launch_sites[0]",
        "launch site 'base' is outside keep_in",
    ),
    "unknown launch site": (
        _set("fleet.0.launch_site", "nowhere"),
        "fleet[0].launch_site",
        "unknown launch site 'nowhere' (known: base)",
    ),
    "duplicate site": (
        lambda d: d["launch_sites"].append(dict(d["launch_sites"][0])),
        "launch_sites[1].name",
        "duplicate launch site name 'base'",
    ),
    "duplicate zone": (
        lambda d: d["keep_out"].append(copy.deepcopy(d["keep_out"][0])),
        "keep_out[1].name",
        "duplicate keep-out name 'power line'",
    ),
    "margin eats keep_in": (
        _set("safety.geofence_margin_m", 1e6),
        "keep_in",
        "nothing is left to fly in once the geofence margin is applied",
    ),
    "margin overflows": (
        _set("safety.geofence_margin_m", 1e308),
        "keep_in",
        "nothing is left to fly in once the geofence margin is applied",
    ),
}


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_names_field_and_problem(case: str) -> None:
    mutate, field, problem = BAD[case]
    d = pine()
    mutate(d)
    assert_error(error_of(d), field, problem)


def test_site_outside_area_is_fine_with_default_keep_in() -> None:
    d = pine()
    del d["keep_in"]
    d["launch_sites"][0].update(lon=7.9, lat=46.52)  # ~8 km west of the area
    m = parse(d, source=SRC)
    assert m.keep_in.contains(shapely.Point(m.sites[0].xy_m))


def test_keep_in_must_contain_area() -> None:
    d = pine()
    d["keep_in"] = polygon(
        [[8.000, 46.49], [8.05, 46.49], [8.05, 46.57], [8.000, 46.57], [8.000, 46.49]]
    )
    err = error_of(d)
    assert err.field == "keep_in"
    assert err.problem.startswith("does not contain the area (")
    assert err.problem.endswith(" m² of it lie outside)")


def test_bow_tie_keep_out_is_self_intersecting() -> None:
    d = pine()
    d["keep_out"][0]["geometry"]["coordinates"] = [BOW_TIE]
    err = error_of(d)
    assert err.field == "keep_out[0].geometry"
    assert "self-intersecting" in err.problem
    assert err.problem == "ring is self-intersecting (near lon 8.0415, lat 46.53)"
    assert str(err) == f"{SRC}: keep_out[0].geometry: {err.problem}"


def test_bow_tie_in_multipolygon_names_the_polygon() -> None:
    d = pine()
    d["area"] = {"type": "MultiPolygon", "coordinates": [[AREA_RING], [BOW_TIE]]}
    err = error_of(d)
    assert err.field == "area"
    assert err.problem.startswith("polygon 1: ring is self-intersecting (near lon ")


def test_overlapping_multipolygon() -> None:
    d = pine()
    d["area"] = {"type": "MultiPolygon", "coordinates": [[AREA_RING], [ZONE_RING]]}
    err = error_of(d)
    assert (err.field, err.problem.split(" (")[0]) == ("area", "polygons overlap")


def test_bbox_member_is_allowed() -> None:
    d = pine()
    d["area"]["bbox"] = [8.01, 46.5, 8.09, 46.56]
    assert parse(d, source=SRC).area.area == pytest.approx(40.9e6, rel=0.01)


@pytest.mark.parametrize(
    ("old", "new", "field", "problem"),
    [
        ("speed_mps: 12", "speed_mps: .nan", "fleet[0].speed_mps", "must be a finite number"),
        ("speed_mps: 12", "speed_mps: .inf", "fleet[0].speed_mps", "must be a finite number"),
        ("wind_mps: 4", "wind_mps: -.inf", "weather.wind_mps", "must be a finite number"),
        ("lat: 46.505", "lat: .NaN", "launch_sites[0].lat", "must be a finite number"),
        (
            "[[[8.010, 46.500], [8.090",
            "[[[8.010, 46.500], [.inf",
            "area",
            "ring 0, position 1: must be finite numbers",
        ),
        (
            "[[[8.010, 46.500], [8.090",
            "[[[8.010, 46.500], [.nan",
            "area",
            "ring 0, position 1: must be finite numbers",
        ),
        ("speed_mps: 12", "speed_mps: 0", "fleet[0].speed_mps", "must be > 0"),
        ("count: 50", "count: 0", "fleet[0].count", "must be > 0"),
        ("count: 50", "count: fifty", "fleet[0].count", "must be a whole number"),
        (
            "  altitude_m: 60",
            "  altitude_m: 60\n  ceiling_m: 120",
            "search.ceiling_m",
            "unknown field",
        ),
    ],
)
def test_yaml_nan_and_inf_and_friends(
    tmp_path: Path, old: str, new: str, field: str, problem: str
) -> None:
    assert EXAMPLE_TEXT.count(old) == 1
    path = tmp_path / "pine.yaml"
    path.write_text(EXAMPLE_TEXT.replace(old, new), encoding="utf-8")
    with pytest.raises(MissionError) as info:
        load(path)
    assert_error(info.value, field, problem, source=str(path))


# --- whole-file problems: the field path is empty -----------------------------------------


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "pine.yaml"
    path.write_text("name: [unclosed\narea: x\n", encoding="utf-8")
    with pytest.raises(MissionError) as info:
        load(path)
    err = info.value
    assert (err.source, err.field) == (str(path), "")
    assert err.problem.startswith("line ")
    assert "not valid YAML/JSON: " in err.problem
    assert str(err) == f"{path}: {err.problem}"


def test_tab_indentation_is_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "pine.yaml"
    path.write_text("\tname: x\n", encoding="utf-8")
    with pytest.raises(MissionError, match=r"line 1, column 1: not valid YAML/JSON"):
        load(path)


@pytest.mark.parametrize(
    "text", ["- a\n- b\n", "just a string\n", "42\n", "", "# only a comment\n"]
)
def test_file_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "pine.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MissionError) as info:
        load(path)
    assert_error(
        info.value, "", "must be a mapping of fields (name, area, fleet, ...)", source=str(path)
    )


@pytest.mark.parametrize("data", [None, [], "name: x", 3, ("a",)])
def test_parse_rejects_non_mapping(data: Any) -> None:
    assert_error(error_of(data), "", "must be a mapping of fields (name, area, fleet, ...)")


def test_missing_mission_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(MissionError) as info:
        load(path)
    assert_error(info.value, "", "file not found", source=str(path))


def test_unreadable_mission_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(MissionError) as info:
        load(path)
    assert info.value.field == "" and info.value.problem.startswith("cannot read: ")


# --- geometry files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "mutate"),
    [
        ("area", _set("area", {"file": "missing.geojson"})),
        ("keep_in", _set("keep_in", {"file": "missing.geojson"})),
        ("keep_out[0].geometry", _set("keep_out.0.geometry", {"file": "missing.geojson"})),
    ],
)
def test_missing_geometry_file(tmp_path: Path, field: str, mutate: Any) -> None:
    d = pine()
    mutate(d)
    assert_error(
        error_of(d, tmp_path), field, f"geometry file not found: {tmp_path / 'missing.geojson'}"
    )


def test_missing_geometry_file_via_load(tmp_path: Path) -> None:
    d = pine()
    d["area"] = {"file": "geo/area.geojson"}
    path = tmp_path / "pine.yaml"
    path.write_text(yaml.safe_dump(d), encoding="utf-8")
    with pytest.raises(MissionError) as info:
        load(path)
    assert_error(
        info.value,
        "area",
        f"geometry file not found: {tmp_path / 'geo' / 'area.geojson'}",
        source=str(path),
    )


BAD_FILES: dict[str, tuple[str, str]] = {
    # file text -> problem, {f} standing for the file's path
    "not json": ("{bad", "cannot read geometry file {f}: Expecting property name enclosed"),
    "a list": ("[1, 2]", "{f}: not a GeoJSON object"),
    "no type": ('{"coordinates": []}', "{f}: not a GeoJSON object"),
    "a point": (
        '{"type": "Point", "coordinates": [8, 46]}',
        "must be a Polygon or MultiPolygon, not 'Point'",
    ),
    "feature without geometry": (
        '{"type": "Feature", "geometry": null}',
        "{f}: not a GeoJSON object",
    ),
    "empty collection": (
        '{"type": "FeatureCollection", "features": []}',
        "{f}: FeatureCollection holds no Polygon or MultiPolygon",
    ),
    "features not a list": (
        '{"type": "FeatureCollection", "features": 5}',
        "{f}: FeatureCollection features must be a list",
    ),
    "feature of null": (
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": null}]}',
        "{f}: features[0]: not a GeoJSON object",
    ),
    "collection of points": (
        '{"type": "FeatureCollection", "features": [{"type": "Feature", '
        '"geometry": {"type": "Point", "coordinates": [8, 46]}}]}',
        "must be a Polygon or MultiPolygon, not 'Point'",
    ),
    "bow tie in file": (json.dumps(polygon(BOW_TIE)), "ring is self-intersecting (near lon 8.0415"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_geometry_file(tmp_path: Path, case: str) -> None:
    text, problem = BAD_FILES[case]
    f = tmp_path / "zone.geojson"
    f.write_text(text, encoding="utf-8")
    d = pine()
    d["keep_out"][0]["geometry"] = {"file": "zone.geojson"}
    err = error_of(d, tmp_path)
    assert err.field == "keep_out[0].geometry"
    assert err.problem.startswith(problem.format(f=f))
    assert str(err) == f"{SRC}: keep_out[0].geometry: {err.problem}"


def test_geometry_file_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "geo").mkdir()
    d = pine()
    d["area"] = {"file": "geo"}
    err = error_of(d, tmp_path)
    assert err.field == "area"
    assert err.problem.startswith(f"cannot read geometry file {tmp_path / 'geo'}: ")


def test_mission_error_is_a_skysweep_error() -> None:
    assert issubclass(MissionError, SkysweepError)


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

Path_ = tuple[str | int, ...]


def _paths(node: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every key / index path in a tree of dicts and lists (not the root)."""
    out: list[Path_] = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((*prefix, k))
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((*prefix, i))
            out.extend(_paths(v, (*prefix, i)))
    return out


def _get(node: Any, path: Path_) -> Any:
    for p in path:
        node = node[p]
    return node


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=8),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from([0, -1, -0.0, 1e-300, 1e308, -1e308, 10**400, -(10**400), 2**63]),
)
_values = st.one_of(
    _scalars,
    st.floats(-1000, 1000),  # often still valid
    st.integers(-5, 100),
    st.lists(st.lists(_scalars, max_size=3), max_size=3),
    st.lists(st.lists(st.lists(st.floats(-200, 200), max_size=3), max_size=5), max_size=2),
    st.dictionaries(st.sampled_from(["file", "type", "coordinates", "x"]), _scalars, max_size=3),
)

#: Parsing builds one table row per drone, so an absurd ``count`` (e.g. 10**400) never returns:
#: there is no upper bound on ``fleet[].count`` (see the report). Keep such draws out.
MAX_TESTED_COUNT = 10_000


def _absurd_count(path: Path_, value: Any) -> bool:
    if not path or path[-1] != "count" or isinstance(value, bool):
        return False
    try:
        n = float(value)
    except (TypeError, ValueError, OverflowError):
        return isinstance(value, int)  # an int too large for a float
    return math.isfinite(n) and n > MAX_TESTED_COUNT


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_mutated_mission_loads_or_raises_mission_error(tmp_path: Path, data: st.DataObject) -> None:
    d = pine()
    d["fleet"][0]["count"] = 3  # keep the build cheap; mutations may raise it a little
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        if not d:
            break
        # a top-level field first, so that every field is hit as often as the many coordinates
        top = data.draw(st.sampled_from(sorted(d)), label="field")
        path = data.draw(st.sampled_from([(top,), *_paths(d[top], (top,))]), label="path")
        parent = _get(d, path[:-1])
        if data.draw(st.booleans(), label="delete"):
            del parent[path[-1]]
        else:
            value = data.draw(_values, label="value")
            assume(not _absurd_count(path, value))
            parent[path[-1]] = value
    try:
        m = parse(d, source=SRC, base_dir=tmp_path)
    except MissionError as err:
        assert err.source == SRC
        assert err.field, str(err)
        assert err.problem, str(err)
        root = err.field.split(".")[0].split("[")[0]
        assert root in set(MissionSpec.model_fields) | set(d), str(err)
        assert str(err) == f"{SRC}: {err.field}: {err.problem}"
    else:
        assert isinstance(m, Mission)
        assert len(m.fleet) >= 1
        assert m.searchable.area >= 1.0


@st.composite
def star_polygons(draw: st.DrawFn) -> tuple[float, float, list[list[float]]]:
    """A simple polygon: vertices at increasing angles around a centre, random radii."""
    lon0 = draw(st.floats(-170, 170))
    lat0 = draw(st.floats(-70, 70))
    n = draw(st.integers(4, 24))  # angular gaps stay < 180°, so the centre is inside
    step = 2 * math.pi / n
    jitter = draw(st.lists(st.floats(-0.4, 0.4), min_size=n, max_size=n))
    radii = draw(st.lists(st.floats(0.002, 0.05), min_size=n, max_size=n))
    ring = []
    for k in range(n):
        a = (k + jitter[k]) * step
        ring.append([lon0 + radii[k] * math.cos(a), lat0 + radii[k] * math.sin(a)])
    if draw(st.booleans()):
        ring.reverse()  # orientation does not matter
    ring.append(list(ring[0]))
    return lon0, lat0, ring


@settings(max_examples=150, deadline=None)
@given(star=star_polygons())
def test_random_simple_polygons_load_with_positive_area(
    star: tuple[float, float, list[list[float]]],
) -> None:
    lon0, lat0, ring = star
    d = minimal()
    d["fleet"][0]["count"] = 1
    d["area"] = polygon(ring)
    d["launch_sites"][0].update(lon=lon0, lat=lat0)  # the centre is inside a star polygon
    m = parse(d, source=SRC)
    assert m.area.is_valid
    assert m.area.area > 0
    assert m.searchable.area == pytest.approx(m.area.area)
    assert m.keep_in.contains(m.area)
    assert m.area.contains(shapely.Point(m.sites[0].xy_m))
    # the local frame is centred on the area's bounding box
    assert abs(m.frame.lon0 - lon0) < 0.06 and abs(m.frame.lat0 - lat0) < 0.06


def test_search_altitude_above_the_ceiling_is_refused() -> None:
    data = minimal()
    data["search"] = {"altitude_m": 150}
    with pytest.raises(MissionError, match="max_altitude_m") as err:
        parse(data, source=SRC)
    assert err.value.field == "search.altitude_m"


def test_landing_spots_of_neighbouring_sites_may_not_overlap() -> None:
    """Two sites so close that their landing spots interleave would launch drones side by
    side, inside each other's separation (found by the reliability run, seed 638)."""
    d = pine()
    d["fleet"][0]["count"] = 10
    d["fleet"].append({**d["fleet"][0], "launch_site": "annex", "count": 4})
    d["launch_sites"].append({"name": "annex", "lon": 8.0051, "lat": 46.5051, "pads": 2})
    err = error_of(d)
    assert err.field == "launch_sites[1]"
    assert "'annex'" in err.problem and "'base'" in err.problem
    assert "safety.min_separation_m" in err.problem
    # a few hundred metres apart they are fine
    d["launch_sites"][1].update(lon=8.009, lat=46.508)
    assert len(parse(d, source=SRC).sites) == 2
