"""The probability map: where the person may be before the search, on a grid of square cells.

The mission's ``search.prior`` is a mixture of components, each with a weight (the weights are
normalised to sum to 1):

- **a last known point** with distance rings: the straight-line distances within which 25, 50,
  75 and 95 % of lost persons of the subject's category were found. The distance from the point
  is taken to follow the piecewise-linear distribution through those quartiles, from 0 at the
  point to 100 % at ``q95 + 2 (q95 − q75)``, and every bearing alike;
- **a datum** with its probable error: a circular normal distribution round a point;
- **regions** drawn by the planners, each with its weight (the consensus method): the weight is
  spread evenly over the region;
- **a grid** made elsewhere: polygons with a number each, spread evenly over each polygon;
- **a raster** made elsewhere (a GeoTIFF, read when the mission is loaded): a number per
  pixel, spread evenly over each pixel.

A component's mass that falls outside the searchable area (outside the area, or in a keep-out
zone) is the *rest of the world*: no cell holds it. So the cells' probabilities (POA, local
metres) sum to the probability that the person is somewhere the drones may search.

Pure functions of the :class:`~skysweep.mission.Mission`, no I/O.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from scipy.special import ndtr

from skysweep.errors import MissionError
from skysweep.geo import FloatArray
from skysweep.mission import (
    DatumPriorSpec,
    LastKnownPointSpec,
    Mission,
    PriorRasterSpec,
    PriorSpec,
)
from skysweep.plan.model import Leg, Plan
from skysweep.search.effort import cell_sums, swept_effort
from skysweep.sim.sensor import lateral_range

#: Most cells a probability map may have (cell_m too fine for the area beyond that).
MAX_CELLS = 250_000
#: Where the distance distribution reaches 100 %: this many times (q95 − q75) beyond q95.
TAIL_SPANS = 2.0


@dataclass(frozen=True)
class ProbabilityGrid:
    """Square cells ``cell_m`` metres wide, row ``j`` / column ``i`` covering
    ``[x0 + i·cell_m, x0 + (i+1)·cell_m] × [y0 + j·cell_m, …]`` in the mission's local frame.

    ``poa`` (ny, nx): probability that the person is in the searchable part of each cell;
    ``area_m2`` (ny, nx): that part's area (0 outside the area and in keep-out zones)."""

    x0_m: float
    y0_m: float
    cell_m: float
    poa: FloatArray
    area_m2: FloatArray

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.poa.shape[0]), int(self.poa.shape[1]))

    @property
    def total(self) -> float:
        """Probability that the person is in the searchable area (the rest: elsewhere)."""
        return float(self.poa.sum())

    @property
    def density_per_m2(self) -> FloatArray:
        """POA per square metre of searchable area, 0 in cells with none."""
        a = self.area_m2
        return np.where(a > 0, self.poa / np.where(a > 0, a, 1.0), 0.0)

    def centres_m(self) -> tuple[FloatArray, FloatArray]:
        """(ny, nx) x and y of every cell's centre, local metres."""
        ny, nx = self.shape
        xs = self.x0_m + (np.arange(nx) + 0.5) * self.cell_m
        ys = self.y0_m + (np.arange(ny) + 0.5) * self.cell_m
        gx, gy = np.meshgrid(xs, ys)
        return gx, gy

    def to_geojson(self, mission: Mission, values: dict[str, FloatArray] | None = None) -> Any:
        """The searchable cells as a GeoJSON FeatureCollection (lon/lat): each a square with
        ``poa``, ``density_per_km2`` and any extra per-cell ``values`` as properties."""
        ny, nx = self.shape
        live = np.argwhere(self.area_m2 > 0)
        frame = mission.frame
        c = self.cell_m
        features = []
        dens = self.density_per_m2 * 1e6
        for j, i in live:
            x0, y0 = self.x0_m + i * c, self.y0_m + j * c
            lon, lat = frame.to_lonlat([x0, x0 + c, x0 + c, x0, x0], [y0, y0, y0 + c, y0 + c, y0])
            props: dict[str, Any] = {
                "row": int(j),
                "col": int(i),
                "poa": float(self.poa[j, i]),
                "density_per_km2": float(dens[j, i]),
            }
            for name, arr in (values or {}).items():
                props[name] = float(arr[j, i])
            ring = [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lon, lat, strict=True)]
            features.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                    "properties": props,
                }
            )
        return {
            "type": "FeatureCollection",
            "properties": {"cell_m": c, "poa_total": self.total, "rows": ny, "cols": nx},
            "features": features,
        }


def build_prior(mission: Mission) -> ProbabilityGrid | None:
    """The mission's probability map, or None if it gives no ``search.prior``."""
    spec = mission.spec.search.prior
    if spec is None:
        return None
    x0, y0, x1, y1 = shapely.bounds(mission.searchable)
    c = spec.cell_m
    nx, ny = max(1, math.ceil((x1 - x0) / c)), max(1, math.ceil((y1 - y0) / c))
    if nx * ny > MAX_CELLS:
        raise MissionError(
            mission.source,
            "search.prior.cell_m",
            f"{c:g} m cells over the area make {nx * ny:,} cells, more than {MAX_CELLS:,}: "
            "give larger cells",
        )
    area = _searchable_area(mission.searchable, x0, y0, c, nx, ny)
    weights, masses = _components(spec, mission, x0, y0, c, nx, ny, area)
    poa = np.zeros((ny, nx))
    for w, m in zip(weights, masses, strict=True):
        poa += w * m
    return ProbabilityGrid(float(x0), float(y0), float(c), poa, area)


# -- the components ---------------------------------------------------------------------------


def _components(
    spec: PriorSpec,
    mission: Mission,
    x0: float,
    y0: float,
    c: float,
    nx: int,
    ny: int,
    area: FloatArray,
) -> tuple[list[float], list[FloatArray]]:
    """Each component's weight and its mass per cell (searchable part only)."""
    weights: list[float] = []
    masses: list[FloatArray] = []
    if spec.last_known_point is not None:
        lkp = spec.last_known_point
        weights.append(lkp.weight)
        # the ring density is even within a cell: its searchable part holds its share
        masses.append(_rings(lkp, mission, x0, y0, c, nx, ny) * (area / (c * c)))
    if spec.datum is not None:
        weights.append(spec.datum.weight)
        masses.append(_datum(spec.datum, mission, x0, y0, c, nx, ny) * (area / (c * c)))
    for r in spec.regions:
        geom = mission.frame.geom_to_local(shapely.geometry.shape(r.geometry))
        weights.append(r.weight)
        masses.append(_evenly(geom, mission.searchable, x0, y0, c, nx, ny))
    if spec.grid is not None:
        g = spec.grid
        feats = g.cells["features"]
        values = np.array([float(f["properties"][g.property]) for f in feats])
        if values.sum() <= 0:
            raise MissionError(
                mission.source, "search.prior.grid.cells", f"every {g.property} is 0"
            )
        for f, v in zip(feats, values / values.sum(), strict=True):
            if v <= 0:
                continue
            geom = mission.frame.geom_to_local(shapely.geometry.shape(f["geometry"]))
            weights.append(g.weight * float(v))
            masses.append(_evenly(geom, mission.searchable, x0, y0, c, nx, ny))
    if spec.raster is not None:
        weights.append(spec.raster.weight)
        masses.append(_raster(spec.raster, mission, x0, y0, c, nx, ny) * (area / (c * c)))
    total = sum(weights)
    if total <= 0:
        raise MissionError(mission.source, "search.prior", "every component's weight is 0")
    return [w / total for w in weights], masses


def _rings(
    lkp: LastKnownPointSpec, mission: Mission, x0: float, y0: float, c: float, nx: int, ny: int
) -> FloatArray:
    """Mass per cell (whole cell) of the last known point's distance distribution.

    The distribution is cut into thin rings; each ring's mass (the rise of the distance
    distribution across it) is spread over points evenly spaced round it, and the points are
    counted into the cells they fall in: exact at the point itself, where the density (per m²)
    grows without bound."""
    q = np.array(lkp.rings_km) * 1000.0
    r_end = q[3] + TAIL_SPANS * (q[3] - q[2])
    knots_r = np.array([0.0, *q, r_end])
    knots_f = np.array([0.0, 0.25, 0.5, 0.75, 0.95, 1.0])
    px, py = mission.frame.to_local(lkp.lon, lkp.lat)
    # rings a fraction of a cell wide (at most ~4,000), points half a cell apart round each
    dr = max(c / 4.0, r_end / 4000.0)
    edges = np.unique(np.r_[np.arange(0.0, r_end, dr), knots_r])
    mass = np.diff(np.interp(edges, knots_r, knots_f))
    mid = 0.5 * (edges[1:] + edges[:-1])
    n_pts = np.maximum(8, np.ceil(2.0 * math.pi * mid / (c / 2.0))).astype(np.intp)
    # keep the number of points bounded: thin the angular sampling far out if need be
    budget = 4_000_000
    if n_pts.sum() > budget:
        n_pts = np.maximum(8, (n_pts * budget / n_pts.sum()).astype(np.intp))
    ring = np.repeat(np.arange(len(mid)), n_pts)
    start = np.cumsum(n_pts) - n_pts
    k = np.arange(len(ring)) - start[ring]
    # a golden-angle offset per ring keeps the points of successive rings from lining up
    theta = 2.0 * math.pi * (k + 0.5) / n_pts[ring] + ring * 2.399963
    x = float(px) + mid[ring] * np.cos(theta)
    y = float(py) + mid[ring] * np.sin(theta)
    return cell_sums(x0, y0, c, (ny, nx), x, y, mass[ring] / n_pts[ring])


def _datum(
    datum: DatumPriorSpec, mission: Mission, x0: float, y0: float, c: float, nx: int, ny: int
) -> FloatArray:
    """Mass per cell (whole cell) of a circular normal round the datum: exact, the product of
    the normal's mass across the cell's columns and across its rows."""
    px, py = mission.frame.to_local(datum.lon, datum.lat)
    s = datum.sigma_m
    across_x = np.diff(ndtr((x0 + np.arange(nx + 1) * c - float(px)) / s))
    across_y = np.diff(ndtr((y0 + np.arange(ny + 1) * c - float(py)) / s))
    return np.outer(across_y, across_x)


def _raster(
    raster: PriorRasterSpec, mission: Mission, x0: float, y0: float, c: float, nx: int, ny: int
) -> FloatArray:
    """Mass per cell (whole cell) of a raster's pixels, each pixel's value over the sum spread
    evenly over it: every pixel is cut into k × k points (k so that they lie at most half a
    cell apart), carried from the raster's CRS to lon/lat (pyproj) and the local frame."""
    vals = np.asarray(raster.values, float)
    rows, cols = vals.shape
    to_lonlat = Transformer.from_crs(raster.crs, "EPSG:4326", always_xy=True)

    def local(col: FloatArray, row: FloatArray) -> tuple[FloatArray, FloatArray]:
        lon, lat = to_lonlat.transform(raster.x0 + col * raster.dx, raster.y0 - row * raster.dy)
        x, y = mission.frame.to_local(lon, lat)
        return np.asarray(x, float), np.asarray(y, float)

    # a pixel's size on the ground, from its neighbours in the middle of the raster
    mx, my = local(
        np.array([cols / 2, cols / 2 + 1, cols / 2]), np.array([rows / 2] * 2 + [rows / 2 + 1])
    )
    pixel_m = max(
        math.hypot(mx[1] - mx[0], my[1] - my[0]), math.hypot(mx[2] - mx[0], my[2] - my[0])
    )
    k = max(1, math.ceil(pixel_m / (c / 2.0)))
    k = max(1, min(k, int(math.sqrt(4_000_000 / vals.size))))
    r, q = np.nonzero(vals > 0)
    share = vals[r, q] / vals.sum() / (k * k)
    sub = (np.arange(k) + 0.5) / k
    col = (q[:, None, None] + sub[None, None, :]).repeat(k, axis=1).ravel()
    row = (r[:, None, None] + sub[None, :, None]).repeat(k, axis=2).ravel()
    x, y = local(col, row)
    return cell_sums(x0, y0, c, (ny, nx), x, y, np.repeat(share, k * k))


def _evenly(
    region: shapely.Geometry,
    searchable: shapely.Geometry,
    x0: float,
    y0: float,
    c: float,
    nx: int,
    ny: int,
) -> FloatArray:
    """A unit mass spread evenly over ``region``: what each cell's searchable part holds."""
    whole = float(region.area)
    out = np.zeros((ny, nx))
    if whole <= 0:
        return out
    part = shapely.intersection(region, searchable)
    if part.is_empty:
        return out
    return _searchable_area(part, x0, y0, c, nx, ny) / whole


def _searchable_area(
    geom: shapely.Geometry, x0: float, y0: float, c: float, nx: int, ny: int
) -> FloatArray:
    """Area of ``geom`` in each cell (m²): whole cells inside at once, the edge ones cut."""
    out = np.zeros((ny, nx))
    gx0, gy0, gx1, gy1 = shapely.bounds(geom)
    i0, i1 = max(0, int((gx0 - x0) // c)), min(nx, math.ceil((gx1 - x0) / c))
    j0, j1 = max(0, int((gy0 - y0) // c)), min(ny, math.ceil((gy1 - y0) / c))
    if i1 <= i0 or j1 <= j0:
        return out
    ii, jj = np.meshgrid(np.arange(i0, i1), np.arange(j0, j1))
    xa, ya = x0 + ii.ravel() * c, y0 + jj.ravel() * c
    boxes = shapely.box(xa, ya, xa + c, ya + c)
    shapely.prepare(geom)
    inside = shapely.contains(geom, boxes)
    touch = ~inside & shapely.intersects(geom, boxes)
    a = np.where(inside, c * c, 0.0)
    if touch.any():
        a[touch] = shapely.area(shapely.intersection(boxes[touch], geom))
    out[j0:j1, i0:i1] = a.reshape(ii.shape)
    return out


@functools.cache
def width_per_swath() -> float:
    """A drone's sweep width W for a person at the search altitude, per metre of its swath
    (the sensor model's lateral range curve integrated: 0.706); also the coverage ``W / s`` of
    a lawnmower pass with track spacing ``s`` equal to the swath."""
    # the ratio is the same at every search altitude: 100 m is just above the sensor cut-off
    return lateral_range(1.0, 100.0, 100.0, "person").sweep_width_m()


def sweep_width_m(mission: Mission) -> FloatArray:
    """Each drone's sweep width W (metres) for a person, flying at the search altitude: the
    integral of the sensor model's lateral range curve (:mod:`skysweep.sim.sensor`), about
    0.71 of the drone's swath. Effort is W × distance flown."""
    return np.asarray(mission.fleet.swath_m, float) * width_per_swath()


def plan_effort(plan: Plan, grid: ProbabilityGrid) -> FloatArray:
    """Effort (m² swept) per cell of ``grid`` by the sweep legs of every sortie of ``plan``,
    each with its drone's sweep width."""
    a_parts, b_parts, w_parts = [], [], []
    swath = sweep_width_m(plan.mission)
    for s in plan.sorties:
        k = np.flatnonzero(s.legs == Leg.SWEEP)
        if len(k):
            a_parts.append(s.path[k, :2])
            b_parts.append(s.path[k + 1, :2])
            w_parts.append(np.full(len(k), float(swath[s.drone])))
    if not a_parts:
        return np.zeros(grid.shape)
    return swept_effort(
        grid.x0_m,
        grid.y0_m,
        grid.cell_m,
        grid.shape,
        np.vstack(a_parts),
        np.vstack(b_parts),
        np.concatenate(w_parts),
    )
