"""Mission files: load, validate, and turn into a :class:`Mission` in local metres.

A mission file is YAML or JSON (field reference: ``docs/mission-format.md``). Loading is the only
I/O here; everything after :func:`parse` is pure. Every problem is raised as one
:class:`~skysweep.errors.MissionError` naming the file, the field path and what is wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import shapely
import yaml
from numpy.typing import NDArray
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from scipy.spatial import cKDTree

from skysweep.errors import MissionError
from skysweep.geo import FloatArray, LocalFrame, fence_margin

#: How far the default keep-in fence reaches beyond the area and launch sites, metres.
DEFAULT_KEEP_IN_MARGIN_M = 500.0

GeoJSON = dict[str, Any]


# --------------------------------------------------------------------------------------------
# The file's schema (lon/lat, exactly as written; geometry files resolved inline)
# --------------------------------------------------------------------------------------------


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


def _json_file(value: Any, info: ValidationInfo, what: str) -> tuple[Any, str] | None:
    """The JSON a ``{file: path}`` field refers to (relative to the mission file), and the
    path; None if ``value`` is not such a reference."""
    if not (isinstance(value, Mapping) and set(value) == {"file"}):
        return None
    base = Path((info.context or {}).get("base_dir", "."))
    path = base / str(value["file"])
    try:
        return json.loads(path.read_text(encoding="utf-8")), str(path)
    except FileNotFoundError:
        raise ValueError(f"{what} file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {what} file {path}: {exc}") from None


def _geometry(value: Any, info: ValidationInfo) -> GeoJSON:
    """Validate an area-like field: an inline GeoJSON (Multi)Polygon or ``{file: path}``."""
    loaded = _json_file(value, info, "geometry")
    if loaded is not None:
        value = _polygonal_from_geojson(*loaded)
    elif not isinstance(value, Mapping):
        raise ValueError("must be a GeoJSON Polygon or MultiPolygon, or {file: path}")
    return _check_polygonal(dict(value))


def _polygonal_from_geojson(raw: Any, where: str) -> GeoJSON:
    """The polygonal geometry in a GeoJSON Geometry, Feature or FeatureCollection."""
    if not isinstance(raw, Mapping) or "type" not in raw:
        raise ValueError(f"{where}: not a GeoJSON object")
    kind = raw["type"]
    if kind == "Feature":
        return _polygonal_from_geojson(raw.get("geometry"), where)
    if kind == "FeatureCollection":
        polys: list[Any] = []
        features = raw.get("features") or []
        if not isinstance(features, list):
            raise ValueError(f"{where}: FeatureCollection features must be a list")
        for i, feat in enumerate(features):
            geom = _check_polygonal(_polygonal_from_geojson(feat, f"{where}: features[{i}]"))
            polys.extend(
                [geom["coordinates"]] if geom["type"] == "Polygon" else geom["coordinates"]
            )
        if not polys:
            raise ValueError(f"{where}: FeatureCollection holds no Polygon or MultiPolygon")
        return (
            {"type": "MultiPolygon", "coordinates": polys}
            if len(polys) > 1
            else {
                "type": "Polygon",
                "coordinates": polys[0],
            }
        )
    return dict(raw)


def _check_polygonal(geom: GeoJSON) -> GeoJSON:
    kind = geom.get("type")
    if kind not in ("Polygon", "MultiPolygon"):
        raise ValueError(f"must be a Polygon or MultiPolygon, not {kind!r}")
    if extra := set(geom) - {"type", "coordinates", "bbox"}:
        raise ValueError(f"unknown GeoJSON member(s): {sorted(extra, key=str)}")
    coords = geom.get("coordinates")
    polygons = [coords] if kind == "Polygon" else coords
    if not isinstance(polygons, list) or not polygons:
        raise ValueError("coordinates must be a non-empty list")
    clean: list[list[list[tuple[float, float]]]] = []
    for p, rings in enumerate(polygons):
        pname = "" if kind == "Polygon" else f"polygon {p}, "
        if not isinstance(rings, list) or not rings:
            raise ValueError(f"{pname}coordinates must be a list of rings")
        clean.append([_check_ring(ring, f"{pname}ring {r}") for r, ring in enumerate(rings)])
    for p, rings in enumerate(clean):
        shell = shapely.Polygon(rings[0], rings[1:])
        if not shell.is_valid:
            pname = "" if kind == "Polygon" else f"polygon {p}: "
            reason = shapely.is_valid_reason(shell)
            if "Self-intersection" in reason or "Ring Self-intersection" in reason:
                raise ValueError(f"{pname}ring is self-intersecting ({_where(reason)})")
            raise ValueError(f"{pname}invalid polygon: {reason}")
    multi = shapely.MultiPolygon([shapely.Polygon(r[0], r[1:]) for r in clean])
    if len(clean) > 1 and not multi.is_valid:
        raise ValueError(f"polygons overlap ({shapely.is_valid_reason(multi)})")
    if kind == "Polygon":
        return {"type": "Polygon", "coordinates": [[list(c) for c in r] for r in clean[0]]}
    return {
        "type": "MultiPolygon",
        "coordinates": [[[list(c) for c in r] for r in poly] for poly in clean],
    }


def _where(reason: str) -> str:
    # shapely says e.g. "Self-intersection[8.04 46.51]"; users read "near lon 8.04, lat 46.51"
    if "[" in reason and reason.endswith("]"):
        lon, _, lat = reason[reason.index("[") + 1 : -1].partition(" ")
        return f"near lon {lon}, lat {lat}"
    return reason


def _check_ring(ring: Any, name: str) -> list[tuple[float, float]]:
    if not isinstance(ring, list):
        raise ValueError(f"{name} must be a list of [lon, lat] positions")
    pts: list[tuple[float, float]] = []
    for i, pos in enumerate(ring):
        if (
            not isinstance(pos, list | tuple)
            or len(pos) not in (2, 3)
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pos)
        ):
            raise ValueError(f"{name}, position {i}: must be [lon, lat] numbers")
        try:
            lon, lat = float(pos[0]), float(pos[1])
        except OverflowError:  # an int too large for a float
            lon = lat = math.inf
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise ValueError(f"{name}, position {i}: must be finite numbers")
        if not -180.0 <= lon <= 180.0:
            raise ValueError(f"{name}, position {i}: longitude {lon} out of range [-180, 180]")
        if not -90.0 <= lat <= 90.0:
            raise ValueError(f"{name}, position {i}: latitude {lat} out of range [-90, 90]")
        pts.append((lon, lat))
    if len(pts) < 4:
        raise ValueError(f"{name} needs at least 4 positions (a closed triangle), has {len(pts)}")
    if pts[0] != pts[-1]:
        raise ValueError(f"{name} is not closed: the first and last positions differ")
    return pts


class KeepOutSpec(_Spec):
    """A zone no drone may enter, at any altitude."""

    name: str = Field(min_length=1)
    geometry: GeoJSON

    _geom = field_validator("geometry", mode="before")(_geometry)


class LaunchSiteSpec(_Spec):
    """Where drones take off and land, and how fast it can launch them."""

    name: str = Field(min_length=1)
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    pads: int = Field(default=1, gt=0)
    launch_interval_s: float = Field(default=5.0, ge=0)


class FleetSpec(_Spec):
    """A group of identical drones based at one launch site."""

    model: str = Field(min_length=1)
    count: int = Field(gt=0)
    launch_site: str
    speed_mps: float = Field(gt=0, le=100)
    endurance_s: float = Field(gt=0)
    swath_m: float = Field(gt=0)
    swap_s: float = Field(default=120.0, ge=0)
    climb_mps: float = Field(default=4.0, gt=0, le=30)
    accel_mps2: float = Field(default=4.0, gt=0, le=50)


class DatumSpec(_Spec):
    """A reported position (last known position, datum) a search pattern is flown around."""

    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)


class ExpandingSquareSpec(_Spec):
    """IAMSAR expanding square: legs S, S, 2S, 2S, 3S, … spiralling out from the datum, turning
    right, until the square of half-side ``radius_m`` around the datum is searched."""

    type: Literal["expanding_square"]
    datum: DatumSpec
    radius_m: float = Field(gt=0)
    track_spacing_m: float | None = Field(default=None, gt=0)
    first_leg_deg: float = Field(default=0.0, ge=0, le=360)


class SectorSpec(_Spec):
    """IAMSAR sector search: legs of ``radius_m`` out from and back through the datum, joined
    by cross legs, searching the disc of radius ``radius_m`` around it."""

    type: Literal["sector"]
    datum: DatumSpec
    radius_m: float = Field(gt=0)
    track_spacing_m: float | None = Field(default=None, gt=0)
    first_leg_deg: float = Field(default=0.0, ge=0, le=360)


class ParallelTrackSpec(_Spec):
    """IAMSAR parallel track (creeping line along the major axis): a rectangle centred on the
    datum, ``length_m`` along ``major_axis_deg`` and ``width_m`` across, searched with legs
    parallel to the major axis."""

    type: Literal["parallel_track"]
    datum: DatumSpec
    length_m: float = Field(gt=0)
    width_m: float = Field(gt=0)
    major_axis_deg: float = Field(ge=0, le=360)
    track_spacing_m: float | None = Field(default=None, gt=0)


PatternSpec = Annotated[
    ExpandingSquareSpec | SectorSpec | ParallelTrackSpec, Field(discriminator="type")
]
#: The ``type`` tags of the patterns: pydantic puts them in error locations; users never write them.
_PATTERN_TAGS = ("expanding_square", "sector", "parallel_track")


class LastKnownPointSpec(_Spec):
    """The last known point (the initial planning point, IPP) and how far from such a point
    lost persons like the subject were found: the straight-line distances (km) within which
    25 %, 50 %, 75 % and 95 % of them were, from lost-person statistics for the subject's
    category (see docs/mission-format.md)."""

    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    rings_km: tuple[float, float, float, float]
    weight: float = Field(default=1.0, gt=0)

    @field_validator("rings_km")
    @classmethod
    def _increasing(cls, rings: tuple[float, float, float, float]) -> tuple[float, ...]:
        if not 0 < rings[0] < rings[1] < rings[2] < rings[3]:
            raise ValueError("must be four increasing distances above 0 (25, 50, 75, 95 %)")
        return rings


class DatumPriorSpec(_Spec):
    """A datum with its probable position error: the person is around the point with a
    circular normal distribution of standard deviation ``sigma_m`` (metres) in each axis (the
    IAMSAR datum; a position report with its error, or a drift computation)."""

    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    sigma_m: float = Field(gt=0, le=1_000_000)
    weight: float = Field(default=1.0, gt=0)


class PriorRegionSpec(_Spec):
    """A region the search planners drew, with the weight they gave it (consensus)."""

    name: str = Field(min_length=1)
    geometry: GeoJSON
    weight: float = Field(ge=0)

    _geom = field_validator("geometry", mode="before")(_geometry)


def _weighted_cells(value: Any, info: ValidationInfo) -> GeoJSON:
    """A GeoJSON FeatureCollection of polygon features (inline or ``{file: path}``)."""
    where = "cells"
    loaded = _json_file(value, info, "grid")
    if loaded is not None:
        value, where = loaded
    if not isinstance(value, Mapping) or value.get("type") != "FeatureCollection":
        raise ValueError(f"{where}: must be a GeoJSON FeatureCollection, or {{file: path}}")
    features = value.get("features")
    if not isinstance(features, list) or not features:
        raise ValueError(f"{where}: the FeatureCollection has no features")
    for i, feat in enumerate(features):
        _check_polygonal(_polygonal_from_geojson(feat, f"{where}: features[{i}]"))
    return dict(value)


class PriorGridSpec(_Spec):
    """A probability grid made elsewhere: polygon features, each with a number (its share of
    this component, relative to the others) in ``property``."""

    cells: GeoJSON
    property: str = Field(default="p", min_length=1)
    weight: float = Field(default=1.0, gt=0)

    _cells = field_validator("cells", mode="before")(_weighted_cells)

    @model_validator(mode="after")
    def _numbers(self) -> PriorGridSpec:
        for i, feat in enumerate(self.cells["features"]):
            props = feat.get("properties") or {}
            value = props.get(self.property)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"features[{i}].properties.{self.property} must be a number")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"features[{i}].properties.{self.property} must be >= 0")
        return self


class PriorRasterSpec(_Spec):
    """A probability raster made elsewhere: a single-band, north-up GeoTIFF whose pixel values
    (≥ 0; nodata: 0) are each pixel's share of this component, relative to the others.

    Only ``file`` (relative to the mission file) and ``weight`` are written; the rest is read
    from the file when the mission is loaded, so that the mission, saved in a run log, keeps
    its raster with it."""

    file: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)
    crs: str = ""
    x0: float = 0.0
    y0: float = 0.0
    dx: float = 0.0
    dy: float = 0.0
    values: list[list[float]] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _read(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, Mapping) or "values" in data or "file" not in data:
            return data
        from skysweep.search.geotiff import read_geotiff

        base = Path((info.context or {}).get("base_dir", "."))
        r = read_geotiff(base / str(data["file"]))
        vals = np.nan_to_num(r.values, nan=0.0)
        return {**data, "crs": r.crs, "x0": r.x0, "y0": r.y0, "dx": r.dx, "dy": r.dy,
                "values": vals.tolist()}  # fmt: skip

    @model_validator(mode="after")
    def _numbers(self) -> PriorRasterSpec:
        vals = np.asarray(self.values, float)
        if vals.ndim != 2 or not vals.size:
            raise ValueError(f"{self.file}: no pixels")
        if not np.all(np.isfinite(vals)) or np.any(vals < 0):
            raise ValueError(f"{self.file}: pixel values must be finite and >= 0")
        if vals.sum() <= 0:
            raise ValueError(f"{self.file}: every pixel is 0")
        return self


class PriorSpec(_Spec):
    """Where the person may be, before the search: a mixture of a last known point's distance
    rings, weighted regions and a grid, each component by its weight. Cells ``cell_m`` metres
    square over the area; keep-out zones are not searchable."""

    cell_m: float = Field(default=50.0, ge=5, le=5000)
    target_pos: float = Field(default=0.9, gt=0, lt=1)
    """With ``search.allocation: optimal``, the plan adds passes until the expected probability
    of success reaches this share of the map's total POA."""
    last_known_point: LastKnownPointSpec | None = None
    datum: DatumPriorSpec | None = None
    regions: list[PriorRegionSpec] = Field(default_factory=list)
    grid: PriorGridSpec | None = None
    raster: PriorRasterSpec | None = None

    @model_validator(mode="after")
    def _something(self) -> PriorSpec:
        points = self.last_known_point is None and self.datum is None
        made = self.grid is None and self.raster is None
        if points and not self.regions and made:
            raise ValueError("give a last_known_point, a datum, regions, a grid or a raster")
        only_regions = points and made
        if only_regions and sum(r.weight for r in self.regions) <= 0:
            raise ValueError("the regions' weights are all 0")
        return self


class SearchSpec(_Spec):
    altitude_m: float = Field(default=60.0, gt=0, le=500)
    pattern: PatternSpec | None = None
    """An IAMSAR search pattern around a datum; ``None``: search the whole area."""
    prior: PriorSpec | None = None
    """Where the person may be (the probability map); ``None``: anywhere in the area alike."""
    allocation: Literal["optimal", "uniform"] = "optimal"
    """With a ``prior``: ``optimal`` spends the effort where it raises the probability of
    success most, in passes over ever larger regions; ``uniform`` covers the area once,
    evenly, as without a prior."""
    reallocate_every_s: float | None = Field(default=None, gt=0)
    """With a ``prior``: re-allocate the effort still to spend from the map's posterior this
    often in flight (seconds of mission time); ``None``: only on the operator's request."""
    sidelap_m: float = Field(default=1.0, ge=0, le=100)
    """Overlap, metres, between the footprints of neighbouring lanes: lanes are planned at the
    swath less this. A drone never flies exactly on its lane (it swings out of each turn and
    is pushed by gusts); with lanes exactly one swath apart every metre off leaves a stripe
    unseen. At most half the smallest swath of the fleet."""
    confirm_detections: bool | None = None
    """Send the nearest drone over every new detection in a tight pattern; a confirmed one
    ends the search. ``None``: on with a ``prior`` (the search for one missing person)."""

    @property
    def confirms(self) -> bool:
        """Whether detections start a confirmation (see ``confirm_detections``)."""
        if self.confirm_detections is None:
            return self.prior is not None
        return self.confirm_detections


class SafetySpec(_Spec):
    min_separation_m: float = Field(default=15.0, ge=0)
    geofence_margin_m: float = Field(default=10.0, ge=0)
    battery_reserve: float = Field(default=0.2, ge=0, lt=1)
    lost_link_timeout_s: float = Field(default=10.0, gt=0)
    max_altitude_m: float = Field(default=120.0, gt=0, le=500)
    """Ceiling of the altitude band, metres above the launch site: the safety kernel refuses
    any commanded waypoint above it (120 m is the usual legal ceiling for small drones)."""


class WeatherSpec(_Spec):
    wind_mps: float = Field(default=0.0, ge=0, le=60)
    wind_from_deg: float = Field(default=0.0, ge=0, le=360)


class TargetSpec(_Spec):
    """A search object the simulator hides: at a point, or ``count`` of them at random."""

    kind: Literal["person", "vehicle", "life_raft"] = "person"
    lon: float | None = Field(default=None, ge=-180, le=180)
    lat: float | None = Field(default=None, ge=-90, le=90)
    count: int = Field(default=1, ge=1, le=10_000)

    @model_validator(mode="after")
    def _point_or_count(self) -> TargetSpec:
        if (self.lon is None) != (self.lat is None):
            raise ValueError("give both lon and lat, or neither (placed at random)")
        if self.lon is not None and self.count != 1:
            raise ValueError("a target at a given lon/lat has count 1")
        return self


class SimulationSpec(_Spec):
    """Only the simulator reads this: what is out there to find, and how noisy the world is."""

    targets: list[TargetSpec] = Field(default_factory=lambda: [TargetSpec()])
    false_alarms_per_hour: float = Field(default=0.5, ge=0)
    gps_noise_m: float = Field(default=1.0, ge=0, le=100)
    gps_glitches_per_hour: float = Field(default=0.0, ge=0)
    gust_mps: float | None = Field(default=None, ge=0, le=30)
    separation: bool = True


class MissionSpec(_Spec):
    """A mission file as written, geometry files inlined. Coordinates are lon/lat degrees."""

    name: str = Field(min_length=1)
    area: GeoJSON
    keep_out: list[KeepOutSpec] = Field(default_factory=list)
    keep_in: GeoJSON | None = None
    launch_sites: Annotated[list[LaunchSiteSpec], Field(min_length=1)]
    fleet: Annotated[list[FleetSpec], Field(min_length=1)]
    search: SearchSpec = Field(default_factory=SearchSpec)
    safety: SafetySpec = Field(default_factory=SafetySpec)
    weather: WeatherSpec = Field(default_factory=WeatherSpec)
    simulation: SimulationSpec = Field(default_factory=SimulationSpec)

    _area = field_validator("area", mode="before")(_geometry)

    @field_validator("keep_in", mode="before")
    @classmethod
    def _keep_in(cls, value: Any, info: ValidationInfo) -> GeoJSON | None:
        return None if value is None else _geometry(value, info)


# --------------------------------------------------------------------------------------------
# The mission in local metres: what planner, safety and simulator work on
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Zone:
    """A named keep-out zone in local metres."""

    name: str
    geometry: shapely.Polygon | shapely.MultiPolygon


@dataclass(frozen=True)
class LaunchSite:
    """A launch site; ``xy_m`` in the mission's local frame."""

    name: str
    lon: float
    lat: float
    xy_m: tuple[float, float]
    pads: int
    launch_interval_s: float


@dataclass(frozen=True)
class Fleet:
    """Every drone of the mission as a table: one read-only array per field, one row per drone."""

    ids: tuple[str, ...]
    models: tuple[str, ...]
    site: NDArray[np.intp]
    speed_mps: FloatArray
    endurance_s: FloatArray
    swath_m: FloatArray
    swap_s: FloatArray
    climb_mps: FloatArray
    accel_mps2: FloatArray
    track_spacing_m: FloatArray
    """Spacing, metres, of the lanes the planner gives each drone: its swath less the
    mission's ``search.sidelap_m`` (the swath stays what its camera sees)."""

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def sweep_rate_m2ps(self) -> FloatArray:
        """Area each drone sweeps per second of search flight, m²/s."""
        return self.speed_mps * self.swath_m


@dataclass(frozen=True)
class Mission:
    """A validated mission in the local frame (x east, y north, metres)."""

    name: str
    source: str
    spec: MissionSpec
    frame: LocalFrame
    area: shapely.Polygon | shapely.MultiPolygon
    keep_out: tuple[Zone, ...]
    keep_in: shapely.Polygon | shapely.MultiPolygon
    searchable: shapely.Geometry
    """The area minus the keep-out zones: what must be searched."""
    flyable: shapely.Geometry
    """Keep-in shrunk, and keep-out zones grown, by the geofence margin: where routes may go."""
    sites: tuple[LaunchSite, ...]
    fleet: Fleet

    @property
    def altitude_m(self) -> float:
        return self.spec.search.altitude_m

    @property
    def safety(self) -> SafetySpec:
        return self.spec.safety

    @property
    def wind_vector_mps(self) -> FloatArray:
        """Mean wind as a (east, north) velocity in m/s: where the air moves *to*."""
        w = self.spec.weather
        to_rad = math.radians(w.wind_from_deg + 180.0)
        return np.array([w.wind_mps * math.sin(to_rad), w.wind_mps * math.cos(to_rad)])

    @property
    def site_xy_m(self) -> FloatArray:
        return np.array([s.xy_m for s in self.sites], float).reshape(-1, 2)

    @property
    def pad_xy_m(self) -> FloatArray:
        """(n, 2) the pad each drone takes off from and lands on, local metres.

        Every drone has a spot of its own in a square grid around its site, ``pad_spacing_m``
        apart, so that no two ever land on one spot; ``pads`` limits how many take off at once.
        """
        return _pads(self.sites, self.fleet, self.pad_spacing_m)

    @property
    def pad_spacing_m(self) -> float:
        return max(2.0 * self.spec.safety.min_separation_m, 10.0)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load(path: str | Path) -> Mission:
    """Read, validate and build a mission from a YAML or JSON file."""
    path = Path(path)
    return parse(read_yaml(path), source=str(path), base_dir=path.parent)


def read_yaml(path: Path) -> Any:
    """The data of a YAML (or JSON) file; a :class:`MissionError` naming the file if it cannot
    be read or parsed."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MissionError(source, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MissionError(source, "", f"cannot read: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise MissionError(source, "", f"{at}not valid YAML/JSON: {problem}") from None


def validation_error(source: str, exc: ValidationError, skip: Sequence[str] = ()) -> MissionError:
    """The first problem of a pydantic validation, as a :class:`MissionError` naming the field
    (``skip``: location parts to leave out, such as the tags of a discriminated union)."""
    err = exc.errors(include_url=False)[0]
    loc = [part for part in err["loc"] if part not in skip]
    return MissionError(source, _field_path(loc), _problem(err))


def parse(data: Any, source: str = "<mission>", base_dir: str | Path = ".") -> Mission:
    """Validate mission data (as loaded from YAML/JSON) and build the :class:`Mission`."""
    if not isinstance(data, dict):
        raise MissionError(source, "", "must be a mapping of fields (name, area, fleet, ...)")
    try:
        spec = MissionSpec.model_validate(data, context={"base_dir": str(base_dir)})
    except ValidationError as exc:
        raise validation_error(source, exc, skip=_PATTERN_TAGS) from None
    return build(spec, source)


def _field_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _problem(err: Mapping[str, Any]) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    simple = {
        "missing": "is required",
        "extra_forbidden": "unknown field",
        "finite_number": "must be a finite number",
        "float_type": "must be a number",
        "float_parsing": "must be a number",
        "int_type": "must be a whole number",
        "int_parsing": "must be a whole number",
        "int_from_float": "must be a whole number",
        "int_parsing_size": "is too large",
        "string_type": "must be a string",
        "list_type": "must be a list",
        "dict_type": "must be a mapping",
        "model_type": "must be a mapping",
        "model_attributes_type": "must be a mapping",
    }
    if kind in simple:
        return simple[kind]
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<"}.get(kind, "<=")
        bound = next(iter(ctx.values()))
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # "must be > 0", not "must be > 0.0"
        return f"must be {op} {bound}"
    if kind == "union_tag_invalid":
        return f"must be one of {ctx.get('expected_tags', '')}"
    if kind == "union_tag_not_found":
        return f"needs a '{ctx.get('discriminator', 'kind').strip(chr(39))}' field"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length', 1)} item(s)"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def build(spec: MissionSpec, source: str = "<mission>") -> Mission:
    """Turn a validated :class:`MissionSpec` into a :class:`Mission`, checking that it hangs
    together: launch sites, fleet references, fences and the searchable area."""

    def fail(field: str, problem: str) -> MissionError:
        return MissionError(source, field, problem)

    if spec.search.altitude_m > spec.safety.max_altitude_m:
        # a check across two sections: named here, where the field can be given
        raise fail(
            "search.altitude_m",
            f"{spec.search.altitude_m:g} m is above safety.max_altitude_m "
            f"({spec.safety.max_altitude_m:g} m)",
        )

    area_ll = shapely.geometry.shape(spec.area)
    frame = LocalFrame.around(area_ll)
    area = frame.geom_to_local(area_ll)
    zones = tuple(
        Zone(z.name, frame.geom_to_local(shapely.geometry.shape(z.geometry))) for z in spec.keep_out
    )
    names = [z.name for z in zones]
    for i, name in enumerate(names):
        if names.index(name) != i:
            raise fail(f"keep_out[{i}].name", f"duplicate keep-out name {name!r}")

    site_names = [s.name for s in spec.launch_sites]
    for i, name in enumerate(site_names):
        if site_names.index(name) != i:
            raise fail(f"launch_sites[{i}].name", f"duplicate launch site name {name!r}")
    site_x, site_y = frame.to_local(
        [s.lon for s in spec.launch_sites], [s.lat for s in spec.launch_sites]
    )
    sites = tuple(
        LaunchSite(s.name, s.lon, s.lat, (float(x), float(y)), s.pads, s.launch_interval_s)
        for s, x, y in zip(spec.launch_sites, site_x, site_y, strict=True)
    )
    site_points = shapely.points(np.column_stack([site_x, site_y]))

    if spec.keep_in is None:
        hull = shapely.union_all([area, *site_points]).convex_hull
        keep_in = hull.buffer(DEFAULT_KEEP_IN_MARGIN_M)
    else:
        keep_in = frame.geom_to_local(shapely.geometry.shape(spec.keep_in))
        outside = area.difference(keep_in).area
        if outside > 1.0:
            raise fail(
                "keep_in", f"does not contain the area ({outside:,.0f} m² of it lie outside)"
            )

    for i, (site, pt) in enumerate(zip(sites, site_points, strict=True)):
        if not keep_in.contains(pt):
            raise fail(f"launch_sites[{i}]", f"launch site {site.name!r} is outside keep_in")
        for zone in zones:
            if zone.geometry.intersects(pt):
                raise fail(
                    f"launch_sites[{i}]",
                    f"launch site {site.name!r} is inside keep-out zone {zone.name!r}",
                )

    keep_out_union = shapely.union_all([z.geometry for z in zones]) if zones else None
    searchable = area if keep_out_union is None else area.difference(keep_out_union)
    if searchable.area < 1.0:
        raise fail("keep_out", "the keep-out zones cover the whole area: nothing left to search")

    margin = spec.safety.geofence_margin_m
    flyable = fence_margin(keep_in, -margin)
    if keep_out_union is not None and not flyable.is_empty:
        flyable = flyable.difference(fence_margin(keep_out_union, margin))
    if flyable.is_empty:
        raise fail("keep_in", "nothing is left to fly in once the geofence margin is applied")

    if spec.search.pattern is not None:
        _check_pattern(spec.search.pattern, frame, area, fail)

    rows: list[tuple[str, str, int, FleetSpec]] = []
    per_model: dict[str, int] = {}
    for i, entry in enumerate(spec.fleet):
        if entry.launch_site not in site_names:
            raise fail(
                f"fleet[{i}].launch_site",
                f"unknown launch site {entry.launch_site!r} (known: {', '.join(site_names)})",
            )
        if spec.search.sidelap_m > entry.swath_m / 2:
            raise fail(
                "search.sidelap_m",
                f"{spec.search.sidelap_m:g} m is more than half the swath of fleet[{i}] "
                f"({entry.model!r}, {entry.swath_m:g} m): lanes would overlap more than they "
                "are apart",
            )
        for _ in range(entry.count):
            per_model[entry.model] = per_model.get(entry.model, 0) + 1
            rows.append(
                (
                    f"{entry.model}-{per_model[entry.model]:03d}",
                    entry.model,
                    site_names.index(entry.launch_site),
                    entry,
                )
            )
    fleet = Fleet(
        ids=tuple(r[0] for r in rows),
        models=tuple(r[1] for r in rows),
        site=_frozen(np.array([r[2] for r in rows], np.intp)),
        speed_mps=_frozen(np.array([r[3].speed_mps for r in rows])),
        endurance_s=_frozen(np.array([r[3].endurance_s for r in rows])),
        swath_m=_frozen(np.array([r[3].swath_m for r in rows])),
        swap_s=_frozen(np.array([r[3].swap_s for r in rows])),
        climb_mps=_frozen(np.array([r[3].climb_mps for r in rows])),
        accel_mps2=_frozen(np.array([r[3].accel_mps2 for r in rows])),
        track_spacing_m=_frozen(np.array([r[3].swath_m for r in rows]) - spec.search.sidelap_m),
    )
    spacing = max(2.0 * spec.safety.min_separation_m, 10.0)
    for i, site in enumerate(sites):
        spots = max(1, int(np.sum(fleet.site == i)))
        pads = shapely.points(np.asarray(site.xy_m) + _pad_offsets(spots, spacing))
        bad = ~shapely.contains(keep_in, pads)
        if keep_out_union is not None:
            bad |= shapely.intersects(keep_out_union, pads)
        if bad.any():
            raise fail(
                f"launch_sites[{i}].pads",
                f"the {spots} landing spots of {site.name!r}, {spacing:g} m apart, do not all "
                "fit inside keep_in and clear of keep-out zones",
            )
    # landing spots of different sites must not overlap: two drones taking off side by side
    # from neighbouring sites would start inside each other's separation
    spots_xy = _pads(sites, fleet, spacing)
    if len(sites) > 1 and len(spots_xy) > 1:
        tree = cKDTree(spots_xy)
        for a, b in sorted(tree.query_pairs(spec.safety.min_separation_m)):
            sa, sb = int(fleet.site[a]), int(fleet.site[b])
            if sa != sb:
                raise fail(
                    f"launch_sites[{max(sa, sb)}]",
                    f"the landing spots of {sites[max(sa, sb)].name!r} come within "
                    f"{spec.safety.min_separation_m:g} m (safety.min_separation_m) of those "
                    f"of {sites[min(sa, sb)].name!r}: "
                    "move the sites apart",
                )
    return Mission(
        name=spec.name,
        source=source,
        spec=spec,
        frame=frame,
        area=area,
        keep_out=zones,
        keep_in=keep_in,
        searchable=searchable,
        flyable=flyable,
        sites=sites,
        fleet=fleet,
    )


def _check_pattern(
    pattern: ExpandingSquareSpec | SectorSpec | ParallelTrackSpec,
    frame: LocalFrame,
    area: shapely.Geometry,
    fail: Callable[[str, str], MissionError],
) -> None:
    """A search pattern's datum lies in the area, and its track spacing fits the pattern."""
    d = pattern.datum
    x, y = frame.to_local(d.lon, d.lat)
    if not area.covers(shapely.Point(float(x), float(y))):
        raise fail("search.pattern.datum", f"lon {d.lon:g}, lat {d.lat:g} is outside the area")
    spacing = pattern.track_spacing_m
    size, name = (
        (pattern.width_m, "width_m")
        if isinstance(pattern, ParallelTrackSpec)
        else (pattern.radius_m, "radius_m")
    )
    if spacing is not None and spacing > size:
        raise fail(
            "search.pattern.track_spacing_m",
            f"must be at most {name} ({size:g} m): the tracks would not fit in the pattern",
        )


def _pad_offsets(pads: int, spacing_m: float) -> FloatArray:
    cols = int(np.ceil(np.sqrt(pads)))
    rows = int(np.ceil(pads / cols))
    k = np.arange(pads)
    return np.column_stack([k % cols - (cols - 1) / 2, k // cols - (rows - 1) / 2]) * spacing_m


def _pads(sites: Sequence[LaunchSite], fleet: Fleet, spacing_m: float) -> FloatArray:
    out = np.zeros((len(fleet), 2))
    rate = fleet.sweep_rate_m2ps
    for s, site in enumerate(sites):
        members = np.flatnonzero(fleet.site == s)
        order = members[np.argsort(-rate[members], kind="stable")]
        offsets = _pad_offsets(max(len(order), 1), spacing_m)
        out[order] = np.asarray(site.xy_m) + offsets[: len(order)]
    return out


def _frozen(a: NDArray[Any]) -> NDArray[Any]:
    a.flags.writeable = False
    return a


def to_json(spec: MissionSpec) -> str:
    """The mission as self-contained JSON (geometry files inlined), for run logs."""
    return spec.model_dump_json()


def from_json(text: str, source: str = "<run log>") -> Mission:
    """Rebuild a mission saved with :func:`to_json`."""
    return parse(json.loads(text), source=source)


def zone_from_geojson(mission: Mission, raw: Any, source: str = "<zone>") -> shapely.Geometry:
    """A keep-out zone given as GeoJSON (lon/lat: a Polygon or MultiPolygon, a Feature or a
    FeatureCollection of them) in ``mission``'s local metres; a :class:`MissionError` naming
    ``source`` if it is not one."""
    try:
        geom = _check_polygonal(_polygonal_from_geojson(raw, source))
        local = mission.frame.geom_to_local(shapely.geometry.shape(geom))
    except (ValueError, TypeError) as exc:
        raise MissionError(source, "", str(exc)) from None
    if not local.is_valid or local.is_empty:
        raise MissionError(source, "", f"not a valid polygon: {shapely.is_valid_reason(local)}")
    return local
