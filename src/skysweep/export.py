"""Plans in the formats other tools read: GeoJSON, QGroundControl ``.plan`` files and KML.

Everything here is pure (a plan in, a ``dict`` or ``str`` out) except :func:`write_qgc`, which
writes the QGroundControl files into a directory. Coordinates leave the local metric frame
through ``plan.mission.frame``; altitudes are metres above the drone's launch site, the reference
the planner uses (see :class:`skysweep.plan.Sortie`).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from skysweep.geo import FloatArray
from skysweep.mission import Mission
from skysweep.plan.model import Plan, Sortie

#: Decimal places of exported longitudes and latitudes (about 1 cm).
LONLAT_DECIMALS = 7

KML_NS = "http://www.opengis.net/kml/2.2"

# MAVLink values used in QGroundControl plans
_MAV_AUTOPILOT_PX4 = 12
_MAV_TYPE_QUADROTOR = 2
_MAV_CMD_NAV_WAYPOINT = 16
_MAV_CMD_NAV_RETURN_TO_LAUNCH = 20
_MAV_CMD_NAV_TAKEOFF = 22
_MAV_FRAME_MISSION = 2
_MAV_FRAME_GLOBAL_RELATIVE_ALT = 3
#: QGroundControl's altitude mode "relative to launch".
_QGC_ALTITUDE_RELATIVE = 1
#: Waypoints closer than this to the previous one (metres, same altitude) are left out.
_SAME_POINT_M = 1e-3


# --------------------------------------------------------------------------------------------
# GeoJSON
# --------------------------------------------------------------------------------------------


def plan_to_geojson(plan: Plan) -> dict[str, Any]:
    """The plan as a GeoJSON FeatureCollection: one LineString Feature per sortie.

    Coordinates are ``[lon, lat, alt_m]`` with ``alt_m`` above the launch site (not above the
    ellipsoid, as RFC 7946 would have it). Each feature's properties are ``drone``, ``sortie``
    (from 1), ``launch_s``, ``speed_mps`` and ``swath_m``. The mission name and the plan's figures
    of merit are in the foreign member ``"skysweep"``, since a FeatureCollection has no
    properties of its own.
    """
    mission = plan.mission
    fleet = mission.fleet
    features = []
    for s in plan.sorties:
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": _lonlatalt(mission, s.path)},
                "properties": {
                    "drone": fleet.ids[s.drone],
                    "sortie": int(s.number),
                    "launch_s": round(float(s.launch_s), 1),
                    "speed_mps": float(fleet.speed_mps[s.drone]),
                    "swath_m": float(fleet.swath_m[s.drone]),
                },
            }
        )
    m = plan.metrics
    return {
        "type": "FeatureCollection",
        "features": features,
        "skysweep": {
            "name": mission.name,
            "drones": int(m.drones),
            "sorties": int(m.sorties),
            "coverage_fraction": round(float(m.coverage_fraction), 6),
            "makespan_s": round(float(m.makespan_s), 1),
            "lower_bound_s": round(float(m.lower_bound_s), 1),
            "efficiency": round(float(m.efficiency), 6),
        },
    }


def _lonlatalt(mission: Mission, path: FloatArray) -> list[list[float]]:
    lon, lat = mission.frame.to_lonlat(path[:, 0], path[:, 1])
    alt = path[:, 2] if path.shape[1] > 2 else np.zeros(len(path))
    return [
        [round(float(x), LONLAT_DECIMALS), round(float(y), LONLAT_DECIMALS), round(float(z), 1)]
        for x, y, z in zip(lon, lat, alt, strict=True)
    ]


# --------------------------------------------------------------------------------------------
# QGroundControl
# --------------------------------------------------------------------------------------------


def plan_to_qgc(plan: Plan) -> dict[str, dict[str, Any]]:
    """QGroundControl ``.plan`` files (PX4, multirotor), keyed by file name.

    A drone with one sortie gets ``<drone id>.plan``. A drone with several sorties lands and
    swaps its battery between them, which one mission cannot express, so it gets one file per
    sortie instead: ``<drone id>-s<N>.plan``, N from 1. A drone without sorties gets no file.

    Each mission is a take-off above the drone's own spot at its launch site
    (``mission.pad_xy_m``, also the planned home position), a waypoint for every point of the
    sortie's path in the air (transit, sweep and the planned way home around keep-out zones, all
    at altitude relative to launch), and a return-to-launch, which the drone starts over its
    spot and so only lands. Every file carries the geofence: the keep-in region as inclusion
    polygons and every keep-out zone as exclusion polygons.
    """
    mission = plan.mission
    fleet = mission.fleet
    fence = _qgc_geofence(mission)
    out: dict[str, dict[str, Any]] = {}
    for drone in range(len(fleet)):
        sorties = plan.of_drone(drone)
        for s in sorties:
            name = fleet.ids[drone] if len(sorties) == 1 else f"{fleet.ids[drone]}-s{s.number}"
            out[f"{name}.plan"] = {
                "fileType": "Plan",
                "version": 1,
                "groundStation": "skysweep",
                "geoFence": fence,
                "rallyPoints": {"points": [], "version": 2},
                "mission": _qgc_mission(mission, s),
            }
    return out


def write_qgc(plan: Plan, directory: Path) -> list[Path]:
    """Write :func:`plan_to_qgc`'s files into ``directory`` (created if need be); their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in plan_to_qgc(plan).items():
        path = directory / name
        path.write_text(json.dumps(content, indent=4) + "\n", encoding="utf-8")
        written.append(path)
    return written


def _qgc_mission(mission: Mission, s: Sortie) -> dict[str, Any]:
    fleet = mission.fleet
    pad = np.asarray(mission.pad_xy_m[s.drone], float)
    speed = float(fleet.speed_mps[s.drone])
    lon, lat = mission.frame.to_lonlat(s.path[:, 0], s.path[:, 1])
    pad_lon, pad_lat = mission.frame.to_lonlat(pad[0], pad[1])
    items: list[dict[str, Any]] = []

    def item(command: int, frame: int, params: list[Any], altitude: float | None) -> None:
        entry: dict[str, Any] = {}
        if altitude is not None:
            entry |= {
                "AMSLAltAboveTerrain": None,
                "Altitude": altitude,
                "AltitudeMode": _QGC_ALTITUDE_RELATIVE,
            }
        entry |= {
            "autoContinue": True,
            "command": command,
            "doJumpId": len(items) + 1,
            "frame": frame,
            "params": params,
            "type": "SimpleItem",
        }
        items.append(entry)

    alt = round(float(mission.altitude_m), 1)
    home_lat, home_lon = _r(pad_lat), _r(pad_lon)
    item(
        _MAV_CMD_NAV_TAKEOFF,
        _MAV_FRAME_GLOBAL_RELATIVE_ALT,
        [0, 0, 0, None, home_lat, home_lon, alt],
        alt,
    )
    last = np.array([*pad, alt])
    for k in np.flatnonzero(s.path[:, 2] > 0):
        p = s.path[k]
        if np.linalg.norm(p - last) < _SAME_POINT_M:
            continue  # the climb ends where the take-off item already put the drone
        last = p
        z = round(float(p[2]), 1)
        item(
            _MAV_CMD_NAV_WAYPOINT,
            _MAV_FRAME_GLOBAL_RELATIVE_ALT,
            [0, 0, 0, None, _r(lat[k]), _r(lon[k]), z],
            z,
        )
    item(_MAV_CMD_NAV_RETURN_TO_LAUNCH, _MAV_FRAME_MISSION, [0, 0, 0, 0, 0, 0, 0], None)
    return {
        "version": 2,
        "firmwareType": _MAV_AUTOPILOT_PX4,
        "vehicleType": _MAV_TYPE_QUADROTOR,
        "globalPlanAltitudeMode": _QGC_ALTITUDE_RELATIVE,
        "cruiseSpeed": speed,
        "hoverSpeed": speed,
        "plannedHomePosition": [home_lat, home_lon, 0],
        "items": items,
    }


def _qgc_geofence(mission: Mission) -> dict[str, Any]:
    polygons: list[dict[str, Any]] = []
    for poly in shapely.get_parts(mission.frame.geom_to_lonlat(mission.keep_in)):
        polygons.append(_qgc_polygon(poly.exterior, inclusion=True))
        # a hole in the keep-in region is somewhere not to fly, like a keep-out zone
        polygons.extend(_qgc_polygon(ring, inclusion=False) for ring in poly.interiors)
    for zone in mission.keep_out:
        for poly in shapely.get_parts(mission.frame.geom_to_lonlat(zone.geometry)):
            polygons.append(_qgc_polygon(poly.exterior, inclusion=False))
    return {"circles": [], "polygons": polygons, "version": 2}


def _qgc_polygon(ring: shapely.LinearRing, inclusion: bool) -> dict[str, Any]:
    xy = np.asarray(ring.coords)[:-1, :2]  # QGroundControl polygons are not closed
    return {
        "inclusion": inclusion,
        "polygon": [[_r(lat), _r(lon)] for lon, lat in xy],
        "version": 1,
    }


def _r(deg: float | np.floating[Any] | FloatArray) -> float:
    return round(float(deg), LONLAT_DECIMALS)


# --------------------------------------------------------------------------------------------
# KML
# --------------------------------------------------------------------------------------------


def plan_to_kml(plan: Plan) -> str:
    """The plan as a KML 2.2 document: a LineString Placemark per sortie, named
    ``<drone> sortie <n>``, and a Polygon Placemark per keep-out zone.

    Sortie altitudes are written ``relativeToGround``: the planner's altitudes are above the
    launch site, which a viewer's terrain approximates.
    """
    mission = plan.mission
    fleet = mission.fleet
    ET.register_namespace("", KML_NS)
    kml = ET.Element(_k("kml"))
    doc = ET.SubElement(kml, _k("Document"))
    ET.SubElement(doc, _k("name")).text = mission.name

    style = ET.SubElement(doc, _k("Style"), id="keep-out")
    line_style = ET.SubElement(style, _k("LineStyle"))
    ET.SubElement(line_style, _k("color")).text = "ff0000ff"
    ET.SubElement(line_style, _k("width")).text = "2"
    poly_style = ET.SubElement(style, _k("PolyStyle"))
    ET.SubElement(poly_style, _k("color")).text = "400000ff"

    routes = ET.SubElement(doc, _k("Folder"))
    ET.SubElement(routes, _k("name")).text = "Sorties"
    for s in plan.sorties:
        mark = ET.SubElement(routes, _k("Placemark"))
        ET.SubElement(mark, _k("name")).text = f"{fleet.ids[s.drone]} sortie {s.number}"
        ET.SubElement(
            mark, _k("description")
        ).text = (
            f"launch at {s.launch_s:.1f} s, {s.duration_s:.0f} s aloft, {s.energy:.0%} of a battery"
        )
        line = ET.SubElement(mark, _k("LineString"))
        ET.SubElement(line, _k("tessellate")).text = "1"
        ET.SubElement(line, _k("altitudeMode")).text = "relativeToGround"
        ET.SubElement(line, _k("coordinates")).text = " ".join(
            f"{x},{y},{z}" for x, y, z in _lonlatalt(mission, s.path)
        )

    zones = ET.SubElement(doc, _k("Folder"))
    ET.SubElement(zones, _k("name")).text = "Keep-out zones"
    for zone in mission.keep_out:
        mark = ET.SubElement(zones, _k("Placemark"))
        ET.SubElement(mark, _k("name")).text = zone.name
        ET.SubElement(mark, _k("styleUrl")).text = "#keep-out"
        parts = list(shapely.get_parts(mission.frame.geom_to_lonlat(zone.geometry)))
        parent = ET.SubElement(mark, _k("MultiGeometry")) if len(parts) > 1 else mark
        for poly in parts:
            _kml_polygon(parent, poly)
    ET.indent(kml)
    return ET.tostring(kml, encoding="unicode", xml_declaration=True) + "\n"


def _kml_polygon(parent: ET.Element, poly: shapely.Polygon) -> None:
    node = ET.SubElement(parent, _k("Polygon"))
    ET.SubElement(node, _k("altitudeMode")).text = "clampToGround"
    for tag, ring in [("outerBoundaryIs", poly.exterior)] + [
        ("innerBoundaryIs", r) for r in poly.interiors
    ]:
        boundary = ET.SubElement(node, _k(tag))
        linear = ET.SubElement(boundary, _k("LinearRing"))
        ET.SubElement(linear, _k("coordinates")).text = " ".join(
            f"{_r(x)},{_r(y)}" for x, y in np.asarray(ring.coords)[:, :2]
        )


def _k(tag: str) -> str:
    return f"{{{KML_NS}}}{tag}"
