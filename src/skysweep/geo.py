"""Geodesy at the edge: WGS84 lon/lat in files, a local metric frame inside.

The planner and the simulator work in a local east/north frame in metres (x east, y north),
an azimuthal equidistant projection centred on the mission, built with pyproj. Distances from the
centre are exact; over the tens of kilometres of a mission the scale error elsewhere is far below
a swath width.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pyproj
import shapely
from numpy.typing import ArrayLike, NDArray

G = TypeVar("G", bound=shapely.Geometry)

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class LocalFrame:
    """A local tangent frame: metres east (x) and north (y) of ``(lon0, lat0)`` in degrees."""

    lon0: float
    lat0: float
    _fwd: pyproj.Transformer = field(init=False, repr=False, compare=False)
    _inv: pyproj.Transformer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        local = pyproj.CRS.from_proj4(
            f"+proj=aeqd +lat_0={self.lat0} +lon_0={self.lon0} +datum=WGS84 +units=m +no_defs"
        )
        wgs84 = pyproj.CRS.from_epsg(4326)
        object.__setattr__(self, "_fwd", pyproj.Transformer.from_crs(wgs84, local, always_xy=True))
        object.__setattr__(self, "_inv", pyproj.Transformer.from_crs(local, wgs84, always_xy=True))

    @classmethod
    def around(cls, geom: shapely.Geometry) -> LocalFrame:
        """A frame centred on the bounding-box centre of a lon/lat geometry."""
        x0, y0, x1, y1 = shapely.bounds(geom)
        return cls(lon0=round((x0 + x1) / 2, 6), lat0=round((y0 + y1) / 2, 6))

    def to_local(self, lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Degrees → metres (x east, y north)."""
        x, y = self._fwd.transform(np.asarray(lon, float), np.asarray(lat, float))
        return np.asarray(x, float), np.asarray(y, float)

    def to_lonlat(self, x: ArrayLike, y: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Metres (x east, y north) → degrees (lon, lat)."""
        lon, lat = self._inv.transform(np.asarray(x, float), np.asarray(y, float))
        return np.asarray(lon, float), np.asarray(lat, float)

    def geom_to_local(self, geom: G) -> G:
        """A lon/lat shapely geometry in local metres (z, if any, is kept)."""
        return shapely.transform(geom, self._xy_fwd)

    def geom_to_lonlat(self, geom: G) -> G:
        """A local-metre shapely geometry in lon/lat degrees."""
        return shapely.transform(geom, self._xy_inv)

    def _xy_fwd(self, xy: FloatArray) -> FloatArray:
        x, y = self.to_local(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    def _xy_inv(self, xy: FloatArray) -> FloatArray:
        lon, lat = self.to_lonlat(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])


def rotation(theta_rad: float) -> FloatArray:
    """2×2 matrix rotating vectors by ``theta_rad`` counter-clockwise."""
    c, s = np.cos(theta_rad), np.sin(theta_rad)
    return np.array([[c, -s], [s, c]])


#: Vertices closer than this (metres) are one when taking a geometry's minimum rotated
#: rectangle: GEOS's overlay can leave a vertex 1e-231 m from another, and the rectangle's
#: search then divides by that edge's zero length.
REPEATED_POINT_M = 1e-6


def oriented_box(geom: shapely.Geometry) -> FloatArray:
    """The corners (4, 2) of ``geom``'s minimum rotated rectangle, in its own units, in order
    round it; fewer rows when the rectangle is degenerate (a point or a segment)."""
    rect = shapely.minimum_rotated_rectangle(shapely.remove_repeated_points(geom, REPEATED_POINT_M))
    coords = shapely.get_coordinates(rect)
    # a polygon's ring repeats its first corner at the end
    return coords[:4] if isinstance(rect, shapely.Polygon) else coords


def oriented_box_areas(geoms: NDArray[np.object_]) -> FloatArray:
    """The areas of the minimum rotated rectangles of an array of geometries."""
    clean = shapely.remove_repeated_points(geoms, REPEATED_POINT_M)
    return np.asarray(shapely.area(shapely.minimum_rotated_rectangle(clean)), float)


def polyline_length(xy: FloatArray) -> float:
    """Length in metres of a polyline given as an (n, 2) or (n, 3) array."""
    if len(xy) < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(xy, axis=0), axis=1).sum())


def cell_squares(xy: FloatArray, cell_m2: float) -> shapely.Geometry:
    """The union of the squares of ``cell_m2`` around the points ``xy`` (local metres) of a
    :func:`sample_points` grid: the area those samples stand for."""
    xy = np.asarray(xy, float).reshape(-1, 2)
    if not len(xy):
        return shapely.Polygon()
    side = np.sqrt(cell_m2)
    x, y = xy[np.lexsort((xy[:, 0], xy[:, 1]))].T
    # one box per run of neighbours along a row: far fewer pieces to union than squares
    start = np.r_[True, (np.diff(y) != 0) | (np.diff(x) > 1.5 * side)]
    first = np.flatnonzero(start)
    last = np.r_[first[1:], len(x)] - 1
    h = 0.5 * side
    boxes = shapely.box(x[first] - h, y[first] - h, x[last] + h, y[first] + h)
    return shapely.coverage_union_all(boxes)


def fence_margin(geom: shapely.Geometry, by_m: float) -> shapely.Geometry:
    """``geom`` grown by ``by_m`` metres (shrunk if negative) as the geofence margin grows a
    keep-out zone and shrinks the keep-in area: with square corners. The mission's flyable
    region, the safety kernel's fence, a re-plan's new zones and the orchestrator's all grow
    it so; a rounded corner anywhere would put a waypoint, or a drone, on the wrong side of
    another's fence."""
    return geom.buffer(by_m, join_style="mitre") if by_m else geom


def smooth_share(
    share: shapely.Geometry, pad_m: float, within: shapely.Geometry
) -> shapely.Geometry:
    """``share`` of ``within`` (a staircase of sample squares, say) with its steps smoothed
    and grown by ``pad_m`` metres, so that ground at a seam goes to both sides, never neither;
    cut to ``within``."""
    if share.is_empty:
        return share
    # (simplified first: buffering a staircase of thousands of steps is slow)
    rough = share.simplify(pad_m / 2)
    smooth = shapely.make_valid(rough.buffer(pad_m, join_style="mitre").simplify(pad_m / 2))
    return polygonal(shapely.intersection(smooth, within))


def polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """The polygons of ``geom`` as one (multi)polygon: the stray lines and points that making
    a geometry valid, or cutting it, can leave in a collection dropped (they cover no ground,
    and GEOS's clip by rectangle miscounts a collection's area)."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = shapely.get_parts(shapely.get_parts(geom))
    polys = parts[shapely.get_type_id(parts) == 3]
    if not len(polys):
        return shapely.Polygon()
    return polys[0] if len(polys) == 1 else shapely.multipolygons(polys)


def sample_points(region: shapely.Geometry, max_points: int = 400_000) -> tuple[FloatArray, float]:
    """A regular grid of points inside ``region`` (local metres), and the area each stands for.

    Used to measure coverage and distances over an area without exact polygon unions: each point
    is a cell centre, so ``count × cell_area`` estimates an area to within the boundary cells.
    The spacing is chosen so that at most about ``max_points`` points fall inside.
    """
    area = float(region.area)
    if area <= 0:
        return np.empty((0, 2)), 0.0
    spacing = max(1.0, float(np.sqrt(area / max_points)))
    x0, y0, x1, y1 = region.bounds
    xs = np.arange(x0 + spacing / 2, x1, spacing)
    ys = np.arange(y0 + spacing / 2, y1, spacing)
    mesh_x, mesh_y = np.meshgrid(xs, ys)
    gx, gy = mesh_x.ravel(), mesh_y.ravel()
    shapely.prepare(region)
    inside = shapely.contains_xy(region, gx, gy)
    return np.column_stack([gx[inside], gy[inside]]), spacing * spacing
