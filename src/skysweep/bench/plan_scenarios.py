"""The scenario suite of ``skysweep bench plan``: missions the planner is measured on.

Each :class:`PlanScenario` builds a mission as the data of a mission file (a dict with lon/lat
coordinates, see ``docs/mission-format.md``), ready for :func:`skysweep.mission.parse`. Geometry
is drawn in local metres (x east, y north) around a lon/lat origin and converted with an
equirectangular projection: over the few tens of kilometres of a scenario its scale error is
far below a swath.

Across the suite: concave areas; areas with no, a few and 50 keep-out holes; a MultiPolygon
area; a winding river valley 300 m wide and 15.5 km long; several launch sites per mission,
inside and outside the area; heterogeneous fleets; 3 to 2,500 drones; 1 to 10 pads per site;
missions where each drone's share fits one battery and battery-bound ones. The two speed
scenarios are the ones issue 3 names: 2,500 drones over ~500 km² with 50 keep-out zones
(``speed-2500``) and 200 drones over ~100 km² (``speed-200``).

Everything is deterministic: random geometry comes from a numpy generator with a fixed seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import shapely
from shapely import affinity

from skysweep import mission as mission_mod
from skysweep.geo import FloatArray
from skysweep.mission import Mission

#: Mean Earth radius of the equirectangular conversion, metres.
EARTH_R_M = 6_371_000.0

MissionData: TypeAlias = dict[str, Any]
Geometry: TypeAlias = shapely.Polygon | shapely.MultiPolygon


@dataclass(frozen=True)
class PlanScenario:
    """One mission of the suite."""

    name: str
    description: str
    build: Callable[[], MissionData]
    """Returns the mission file's data (lon/lat degrees); the same every call."""
    battery_bound: bool
    """Designed so that drones need several sorties (short packs, much work per drone); the
    benchmark's ``one_battery`` is measured on the plan, this is only the intent."""

    def mission_data(self) -> MissionData:
        """The mission as the data of a mission file."""
        return self.build()

    def mission(self) -> Mission:
        """The mission, parsed and validated."""
        return mission_mod.parse(self.mission_data(), source=f"<scenario {self.name}>")


# --------------------------------------------------------------------------------------------
# Local metres → mission data
# --------------------------------------------------------------------------------------------


def to_lonlat(xy: FloatArray, origin: tuple[float, float]) -> FloatArray:
    """(n, 2) local metres (east, north) of ``origin`` (lon, lat degrees) → (n, 2) lon/lat."""
    lon0, lat0 = origin
    xy = np.asarray(xy, float).reshape(-1, 2)
    lon = lon0 + np.degrees(xy[:, 0] / (EARTH_R_M * math.cos(math.radians(lat0))))
    lat = lat0 + np.degrees(xy[:, 1] / EARTH_R_M)
    # 7 decimals is about a centimetre: short files, same geometry
    return np.column_stack([lon, lat]).round(7)


def lonlat_point(x_m: float, y_m: float, origin: tuple[float, float]) -> dict[str, float]:
    """A point in local metres as a mission file's ``{lon, lat}``."""
    ((lon, lat),) = to_lonlat(np.array([[x_m, y_m]]), origin).tolist()
    return {"lon": lon, "lat": lat}


def geojson(geom: Geometry, origin: tuple[float, float]) -> dict[str, Any]:
    """A local-metre (Multi)Polygon as a GeoJSON geometry in lon/lat."""

    def rings(p: shapely.Polygon) -> list[list[list[float]]]:
        return [
            to_lonlat(np.asarray(r.coords)[:, :2], origin).tolist()
            for r in (p.exterior, *p.interiors)
        ]

    if isinstance(geom, shapely.MultiPolygon):
        return {"type": "MultiPolygon", "coordinates": [rings(p) for p in geom.geoms]}
    return {"type": "Polygon", "coordinates": rings(geom)}


@dataclass(frozen=True)
class Site:
    name: str
    xy: tuple[float, float]
    """Local metres."""
    pads: int
    launch_interval_s: float = 5.0


def drones_entry(
    model: str,
    count: int,
    site: str,
    speed_mps: float,
    swath_m: float,
    endurance_s: float,
    swap_s: float = 120.0,
    climb_mps: float = 4.0,
) -> dict[str, Any]:
    """One fleet entry (SI units, as in a mission file)."""
    return {
        "model": model,
        "count": count,
        "launch_site": site,
        "speed_mps": speed_mps,
        "swath_m": swath_m,
        "endurance_s": endurance_s,
        "swap_s": swap_s,
        "climb_mps": climb_mps,
    }


def mission_data(
    name: str,
    origin: tuple[float, float],
    area: Geometry,
    sites: Sequence[Site],
    fleet: Sequence[dict[str, Any]],
    *,
    keep_out: Sequence[tuple[str, shapely.Polygon]] = (),
    keep_in: Geometry | None = None,
    altitude_m: float = 60.0,
    min_separation_m: float = 15.0,
    wind_mps: float = 4.0,
    wind_from_deg: float = 270.0,
    battery_reserve: float = 0.2,
) -> MissionData:
    """Mission data from geometry in local metres around ``origin`` (lon, lat degrees)."""
    data: MissionData = {
        "name": name,
        "area": geojson(area, origin),
        "keep_out": [{"name": n, "geometry": geojson(g, origin)} for n, g in keep_out],
        "launch_sites": [],
        "fleet": list(fleet),
        "search": {"altitude_m": altitude_m},
        "safety": {
            "min_separation_m": min_separation_m,
            "geofence_margin_m": 10.0,
            "battery_reserve": battery_reserve,
        },
        "weather": {"wind_mps": wind_mps, "wind_from_deg": wind_from_deg},
    }
    for s in sites:
        ((lon, lat),) = to_lonlat(np.array([s.xy]), origin).tolist()
        data["launch_sites"].append(
            {
                "name": s.name,
                "lon": lon,
                "lat": lat,
                "pads": s.pads,
                "launch_interval_s": s.launch_interval_s,
            }
        )
    if keep_in is not None:
        data["keep_in"] = geojson(keep_in, origin)
    return data


# --------------------------------------------------------------------------------------------
# Shapes (local metres)
# --------------------------------------------------------------------------------------------


def _box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    return shapely.box(x0, y0, x1, y1)


def _ellipse(cx: float, cy: float, a: float, b: float, angle_deg: float = 0.0) -> shapely.Polygon:
    disc = shapely.Point(cx, cy).buffer(1.0, quad_segs=8)
    return affinity.rotate(affinity.scale(disc, a, b), angle_deg)


def _blob(
    rng: np.random.Generator, cx: float, cy: float, r: float, wobble: float, k: int = 24
) -> shapely.Polygon:
    """A star-shaped (so always simple) polygon: ``k`` vertices at radius ``r`` ± ``wobble``·r,
    the wobble smooth (a few low harmonics with random phases)."""
    t = np.linspace(0.0, 2 * np.pi, k, endpoint=False)
    rad = np.ones(k)
    for h in (2, 3, 5):
        rad += wobble / h * np.cos(h * t + rng.uniform(0, 2 * np.pi))
    xy = np.column_stack([cx + r * rad * np.cos(t), cy + r * rad * np.sin(t)])
    return shapely.Polygon(xy)


def _beyond(area: shapely.Geometry, angle_deg: float, by_m: float) -> tuple[float, float]:
    """The point ``by_m`` beyond the far edge of ``area`` seen from the origin, at ``angle_deg``
    (counter-clockwise from east)."""
    u = np.array([math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))])
    ray = shapely.LineString([(0.0, 0.0), tuple(u * 1e6)])
    far = max(float(np.hypot(*p)) for p in shapely.get_coordinates(ray.intersection(area)))
    x, y = u * (far + by_m)
    return float(x), float(y)


def _zone_shape(rng: np.random.Generator, c: FloatArray, size: float) -> shapely.Polygon:
    """A keep-out of about ``size`` metres across: a rotated rectangle (a building, a yard) or
    an irregular blob (a pond, a town), at random."""
    if rng.random() < 0.5:
        w, h = size, size * rng.uniform(0.3, 1.0)
        rect = _box(c[0] - w / 2, c[1] - h / 2, c[0] + w / 2, c[1] + h / 2)
        return affinity.rotate(rect, rng.uniform(0.0, 180.0))
    return _blob(rng, float(c[0]), float(c[1]), size / 2, 0.35, k=9)


def scatter_zones(
    rng: np.random.Generator,
    region: shapely.Geometry,
    count: int,
    size_m: tuple[float, float],
    *,
    avoid: Sequence[tuple[float, float]] = (),
    clearance_m: float = 300.0,
    gap_m: float = 60.0,
    edge_m: float = 100.0,
) -> list[shapely.Polygon]:
    """``count`` keep-out shapes inside ``region``, holes in it.

    Each lies at least ``edge_m`` inside the region's edge, ``gap_m`` from every other (so no
    pocket of the area is sealed off once the geofence margin grows them) and ``clearance_m``
    from every point of ``avoid`` (launch sites with their landing spots).
    """
    inner = region.buffer(-edge_m)
    shapely.prepare(inner)
    blocked = shapely.union_all([shapely.Point(p).buffer(clearance_m) for p in avoid])
    x0, y0, x1, y1 = inner.bounds
    zones: list[shapely.Polygon] = []
    for _ in range(400 * count):
        if len(zones) == count:
            break
        zone = _zone_shape(rng, rng.uniform((x0, y0), (x1, y1)), rng.uniform(*size_m))
        if (
            inner.contains(zone)
            and not zone.intersects(blocked)
            and all(zone.distance(z) >= gap_m for z in zones)
        ):
            zones.append(zone)
    if len(zones) < count:
        raise RuntimeError(f"placed only {len(zones)} of {count} keep-out zones")
    return zones


def river_centreline(length_m: float = 15_500.0, step_m: float = 250.0) -> shapely.LineString:
    """A meandering valley floor about ``length_m`` long, running east: a sine of 4 km
    wavelength and 1.2 km amplitude (bends of 340 m radius at the tightest) on a slower swing,
    with a vertex every ``step_m`` along it, as a valley drawn by hand would have."""
    x = np.linspace(0.0, 1.0, 4001)

    def curve(span: float) -> FloatArray:
        xs = x * span
        ys = 1200.0 * np.sin(2 * np.pi * xs / 4000.0) + 250.0 * np.sin(2 * np.pi * xs / 9000.0)
        return np.column_stack([xs, ys])

    # the arc length grows with the span: bisect for the span that gives length_m
    lo, hi = 0.0, length_m
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if np.hypot(*np.diff(curve(mid), axis=0).T).sum() < length_m:
            lo = mid
        else:
            hi = mid
    dense = shapely.LineString(curve(hi))
    at = np.linspace(0.0, dense.length, round(dense.length / step_m) + 1)
    return shapely.LineString(shapely.get_coordinates(shapely.line_interpolate_point(dense, at)))


#: Width of the river valley of ``river-16``, metres.
RIVER_WIDTH_M = 300.0
#: Where ``river-16`` is, (lon, lat) degrees: the origin of its local metres.
RIVER_ORIGIN = (14.40, 46.30)


# --------------------------------------------------------------------------------------------
# The scenarios
# --------------------------------------------------------------------------------------------


def _meadow_3() -> MissionData:
    sites = [Site("gate", (600.0, -200.0), pads=1)]
    return mission_data(
        "meadow, 3 drones",
        (8.30, 47.05),
        _box(0, 0, 1200, 900),
        sites,
        [drones_entry("quad-s", 3, "gate", 10, 50, 1800)],
        wind_mps=3,
        wind_from_deg=250,
    )


def warm_up_data() -> MissionData:
    """Not in the suite: the meadow flown from two gates, one with a keep-out beside it, the
    drones of one on short packs, so that planning it once reaches every compiled kernel the
    suite's larger missions use (sharing the area among sites, paths around keep-outs, the
    split weighing every split where drones fly several sorties) before any is timed."""
    sites = [Site("gate", (600.0, -200.0), pads=1), Site("stile", (-200.0, 450.0), pads=2)]
    return mission_data(
        "meadow from two gates (warm-up)",
        (8.30, 47.05),
        _box(0, 0, 1200, 900),
        sites,
        [
            drones_entry("quad-s", 3, "gate", 10, 50, 500),
            drones_entry("quad-m", 2, "stile", 12, 40, 1500),
        ],
        keep_out=[("pond", _box(500, 400, 640, 520))],
        wind_mps=3,
        wind_from_deg=250,
    )


def _l_valley_12() -> MissionData:
    area = shapely.union_all([_box(0, 0, 3000, 800), _box(0, 0, 800, 2500)])
    sites = [Site("junction", (400.0, 400.0), pads=2)]
    return mission_data(
        "L-shaped valley, 12 drones",
        (9.10, 46.70),
        area,
        sites,
        [drones_entry("quad-s", 12, "junction", 12, 60, 1800)],
        wind_from_deg=300,
    )


def _u_bowl_30() -> MissionData:
    area = _box(0, 0, 4000, 3500).difference(_box(1300, 1000, 2700, 3600))
    keep_out = [
        ("hut", _box(500, 500, 620, 600)),
        ("power line", _box(2900, 1500, 4100, 1540).intersection(area.buffer(-1.0))),
        ("nest", _ellipse(600, 2600, 220, 140, 30)),
    ]
    # the site sits in the hollow of the U: outside the area, surrounded by it on three sides
    sites = [Site("hollow", (2000.0, 2400.0), pads=3)]
    return mission_data(
        "U-shaped bowl, 30 drones, 3 keep-outs",
        (7.60, 46.20),
        area,
        sites,
        [drones_entry("quad-s", 30, "hollow", 12, 60, 2100)],
        keep_out=keep_out,
        wind_mps=5,
        wind_from_deg=200,
    )


def _star(points: int, r_out: float, r_in: float) -> shapely.Polygon:
    t = np.arange(2 * points) * np.pi / points + np.pi / 2
    r = np.where(np.arange(2 * points) % 2 == 0, r_out, r_in)
    return shapely.Polygon(np.column_stack([r * np.cos(t), r * np.sin(t)]))


def _star_hetero_40() -> MissionData:
    sites = [
        Site("hub", (0.0, 0.0), pads=4),
        # between the two southern points of the star: outside the area
        Site("airstrip", (0.0, -2600.0), pads=2, launch_interval_s=10),
    ]
    fleet = [
        drones_entry("quad-m", 24, "hub", 10, 40, 1500),
        drones_entry("vtol-w", 16, "airstrip", 18, 100, 3600, swap_s=300, climb_mps=3),
    ]
    return mission_data(
        "star-shaped burn scar, 40 mixed drones",
        (-120.50, 38.80),
        _star(5, 3000, 1300),
        sites,
        fleet,
        altitude_m=80,
        wind_mps=6,
        wind_from_deg=240,
    )


def _islands_24() -> MissionData:
    rng = np.random.default_rng(5)
    parts = [
        _blob(rng, 0, 0, 1000, 0.15).intersection(_ellipse(0, 0, 1300, 750)),
        _blob(rng, 2300, 700, 550, 0.15),
        _blob(rng, 900, -1500, 500, 0.15).intersection(_ellipse(900, -1500, 700, 380)),
    ]
    area = shapely.MultiPolygon(parts)
    sites = [
        Site("jetty", (-500.0, 0.0), pads=3),
        Site("mainland", (-1800.0, -1500.0), pads=2),
    ]
    fleet = [
        drones_entry("quad-s", 14, "jetty", 12, 60, 1800),
        drones_entry("quad-lr", 10, "mainland", 15, 80, 2700),
    ]
    return mission_data(
        "three islands, 24 mixed drones",
        (23.50, 37.90),
        area,
        sites,
        fleet,
        wind_mps=7,
        wind_from_deg=330,
    )


def _river_16() -> MissionData:
    line = river_centreline()
    area = line.buffer(RIVER_WIDTH_M / 2, cap_style="flat", quad_segs=4)
    # the valley walls: drones stay over the valley floor and its slopes
    keep_in = line.buffer(RIVER_WIDTH_M / 2 + 150.0, quad_segs=4)
    ends = 200.0, line.length - 200.0
    at = [line.interpolate(d) for d in np.linspace(*ends, 4)]
    sites = [
        Site(name, (p.x, p.y), pads=2)
        for name, p in zip(("bridge", "ford", "mill", "weir"), at, strict=True)
    ]
    fleet = [drones_entry("quad-s", 4, s.name, 10, 30, 1200) for s in sites]
    return mission_data(
        "winding river valley 300 m x 15.5 km, 16 drones",
        RIVER_ORIGIN,
        area,
        sites,
        fleet,
        keep_in=keep_in,
        altitude_m=40,
        min_separation_m=10,
        wind_mps=5,
        wind_from_deg=180,
    )


def _village_60() -> MissionData:
    rng = np.random.default_rng(60)
    area = shapely.Polygon([(0, 0), (3800, 0), (3800, 2000), (2400, 2000), (2400, 3000), (0, 3000)])
    square, road = (1200.0, 1500.0), (3000.0, -300.0)
    zones = scatter_zones(rng, area, 50, (40.0, 160.0), avoid=[square], clearance_m=250.0)
    sites = [Site("square", square, pads=4), Site("road", road, pads=6)]
    fleet = [
        drones_entry("quad-m", 36, "square", 10, 40, 1500),
        drones_entry("quad-m", 24, "road", 10, 40, 1500),
    ]
    return mission_data(
        "village with 50 keep-out buildings, 60 drones",
        (5.90, 45.60),
        area,
        sites,
        fleet,
        keep_out=[(f"building {i + 1}", z) for i, z in enumerate(zones)],
        min_separation_m=12,
        wind_from_deg=20,
    )


def _ridge_30() -> MissionData:
    sites = [Site("base", (-300.0, -300.0), pads=10)]
    return mission_data(
        "ridge from one corner base, 30 drones, battery-bound",
        (8.01, 46.50),
        _box(0, 0, 5000, 6000),
        sites,
        [drones_entry("quad-s", 30, "base", 12, 60, 2400)],
        keep_out=[("power line", _box(2400, 800, 2460, 5200))],
    )


def _moor_4() -> MissionData:
    area = _box(0, 0, 2600, 1800).difference(
        shapely.union_all([_box(600, 900, 1000, 1900), _box(1600, 900, 2000, 1900)])
    )
    sites = [Site("crofter", (300.0, 300.0), pads=1)]
    return mission_data(
        "comb-shaped moor, 4 drones, windy, battery-bound",
        (-4.20, 57.10),
        area,
        sites,
        [drones_entry("quad-s", 4, "crofter", 10, 50, 1500)],
        altitude_m=50,
        wind_mps=8,
        wind_from_deg=240,
    )


def _crescent_8() -> MissionData:
    area = _ellipse(0, 0, 1800, 1800).difference(_ellipse(800, 0, 1500, 1500))
    # in the crescent's hollow: outside the area
    sites = [Site("hollow", (900.0, 0.0), pads=1)]
    return mission_data(
        "crescent dune, 8 drones, strong wind, battery-bound",
        (-15.60, 27.90),
        area,
        sites,
        [drones_entry("quad-s", 8, "hollow", 10, 50, 1200)],
        altitude_m=70,
        wind_mps=10,
        wind_from_deg=0,
    )


def _coast_120() -> MissionData:
    area = _box(0, 0, 9000, 4500).difference(_ellipse(4500, 4500, 2200, 2200))
    keep_out = [
        ("harbour", _box(6900, 3600, 7600, 4500).intersection(area.buffer(-50.0))),
        ("heliport", _ellipse(1500, 2200, 200, 150)),
    ]
    sites = [
        Site("road west", (1500.0, -300.0), pads=6),
        Site("road centre", (4500.0, -300.0), pads=4, launch_interval_s=8),
        Site("road east", (7500.0, -300.0), pads=6),
        # a lifeboat in the bay: outside the area, on the water
        Site("lifeboat", (4500.0, 3600.0), pads=1, launch_interval_s=15),
    ]
    fleet = [
        drones_entry("quad-s", 40, "road west", 12, 60, 1800),
        drones_entry("vtol-w", 30, "road centre", 18, 100, 3000, swap_s=300, climb_mps=3),
        drones_entry("quad-s", 40, "road east", 12, 60, 1800),
        drones_entry("quad-xs", 10, "lifeboat", 8, 30, 900, swap_s=60),
    ]
    return mission_data(
        "storm coast around a bay, 120 mixed drones from 4 sites",
        (-9.30, 38.70),
        area,
        sites,
        fleet,
        keep_out=keep_out,
        wind_mps=7,
        wind_from_deg=320,
    )


def _speed_200() -> MissionData:
    area = shapely.Polygon(
        [(0, 0), (10500, 0), (11000, 5000), (10000, 10000), (500, 10000), (-500, 5000)]
    )
    sites = [
        Site("north inside", (3000.0, 7500.0), pads=5),
        Site("south inside", (7500.0, 2500.0), pads=5),
        Site("west road", (-900.0, 2500.0), pads=5),
        Site("east road", (11400.0, 7500.0), pads=5),
    ]
    fleet = [drones_entry("quad-s", 50, s.name, 12, 60, 2400) for s in sites]
    return mission_data(
        "plain, 200 drones over ~100 km² (issue 3 speed bar)",
        (11.60, 44.90),
        area,
        sites,
        fleet,
    )


def _wildfire_150() -> MissionData:
    rng = np.random.default_rng(150)
    area = _blob(rng, 0, 0, 7000, 0.3, k=48)
    inside = [(-3000.0, 2000.0), (2500.0, 2500.0), (0.0, -3000.0)]
    outside = [_beyond(area, a, 400.0) for a in (190.0, 340.0, 90.0)]
    sites = [Site(f"camp {i + 1}", xy, pads=6 + i % 3) for i, xy in enumerate(inside)] + [
        Site(f"road {i + 1}", xy, pads=8) for i, xy in enumerate(outside)
    ]
    zones = scatter_zones(
        rng, area, 10, (300.0, 900.0), avoid=[s.xy for s in sites], clearance_m=600.0
    )
    fleet = []
    for i, s in enumerate(sites):
        fleet.append(drones_entry("quad-m", 17 if i < 3 else 16, s.name, 12, 50, 1200))
        fleet.append(drones_entry("vtol-w", 8 if i < 3 else 9, s.name, 18, 100, 3000, 300, 3))
    return mission_data(
        "wildfire burn scar ~150 km², 150 mixed drones from 6 sites, 10 keep-outs",
        (-122.30, 40.10),
        area,
        sites,
        fleet,
        keep_out=[(f"village {i + 1}", z) for i, z in enumerate(zones)],
        altitude_m=100,
        wind_mps=6,
        wind_from_deg=225,
    )


def _speed_2500() -> MissionData:
    rng = np.random.default_rng(2500)
    # a flood plain 26.5 km × 21.5 km with a bite out of its north-east: ~500 km², concave
    area = shapely.Polygon(
        [(0, 0), (26500, 0), (26500, 14000), (19500, 14000), (17500, 21500), (0, 21500)]
    )
    xy = [
        (2500.0, 4500.0),
        (7500.0, 4500.0),
        (12500.0, 4500.0),
        (17500.0, 4500.0),
        (27100.0, 4500.0),  # on the levee beyond the east edge: outside
        (2500.0, 15500.0),
        (7500.0, 15500.0),
        (12500.0, 22100.0),  # on the levee beyond the north edge: outside
        (16000.0, 15500.0),
        (22500.0, 10000.0),  # south of the bite
    ]
    sites = [Site(f"staging {i + 1}", p, pads=10, launch_interval_s=3) for i, p in enumerate(xy)]
    zones = scatter_zones(rng, area, 50, (200.0, 800.0), avoid=xy, clearance_m=500.0, gap_m=100)
    fleet = [
        drones_entry("quad-m", 250, s.name, 10, 40, 2400)
        if i % 2 == 0
        else drones_entry("quad-l", 250, s.name, 12, 50, 2400)
        for i, s in enumerate(sites)
    ]
    return mission_data(
        "flood plain ~500 km², 2,500 drones, 50 keep-outs (issue 3 speed bar)",
        (11.00, 45.00),
        area,
        sites,
        fleet,
        keep_out=[(f"town {i + 1}", z) for i, z in enumerate(zones)],
        altitude_m=50,
        min_separation_m=10,
        wind_mps=3,
        wind_from_deg=200,
    )


#: The issue's speed scenarios and their planning-time bars, seconds.
SPEED_BARS_S: dict[str, float] = {"speed-2500": 5.0, "speed-200": 0.5}

SCENARIOS: tuple[PlanScenario, ...] = (
    PlanScenario(
        "meadow-3", "1.1 km² rectangle, 3 drones, one 1-pad site outside", _meadow_3, False
    ),
    PlanScenario("l-valley-12", "concave L, 3.8 km², 12 drones, site inside", _l_valley_12, False),
    PlanScenario(
        "u-bowl-30", "concave U, 3 keep-outs, site in the U's hollow (outside)", _u_bowl_30, False
    ),
    PlanScenario(
        "star-40",
        "5-point star, quads at the hub + VTOLs outside, 11.5 km²",
        _star_hetero_40,
        False,
    ),
    PlanScenario(
        "islands-24",
        "MultiPolygon: 3 islands, sites on one and on the mainland",
        _islands_24,
        False,
    ),
    PlanScenario(
        "river-16", "winding valley 300 m wide, 15.5 km long, 4 sites, keep_in", _river_16, True
    ),
    PlanScenario(
        "village-60", "concave, 50 keep-out buildings, 60 drones, 2 sites", _village_60, False
    ),
    PlanScenario("ridge-30", "30 km² from one corner base, 10 pads, 1 keep-out", _ridge_30, True),
    PlanScenario("moor-4", "comb-shaped 4 km², 4 drones on 1 pad, 8 m/s wind", _moor_4, True),
    PlanScenario(
        "crescent-8", "crescent, site in its hollow (outside), 10 m/s wind", _crescent_8, True
    ),
    PlanScenario(
        "coast-120", "concave bay, 2 keep-outs, 4 mixed sites (all outside)", _coast_120, False
    ),
    PlanScenario(
        "speed-200", "issue 3: 200 drones over ~100 km², 4 sites (2 outside)", _speed_200, False
    ),
    PlanScenario(
        "wildfire-150",
        "~150 km² blob, 10 keep-outs, 6 sites, mixed, short packs",
        _wildfire_150,
        True,
    ),
    PlanScenario(
        "speed-2500", "issue 3: 2,500 drones, ~500 km², 50 keep-outs, 10 sites", _speed_2500, False
    ),
)


def scenario(name: str) -> PlanScenario:
    """The scenario called ``name``; ``KeyError`` naming the known ones if there is none."""
    for s in SCENARIOS:
        if s.name == name:
            return s
    raise KeyError(f"unknown scenario {name!r} (known: {', '.join(s.name for s in SCENARIOS)})")
