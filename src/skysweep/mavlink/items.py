"""Mission and fence items: a skysweep route or geofence as MAVLink ``MISSION_ITEM_INT`` rows,
and back. Pure functions; the protocol that moves them is :mod:`skysweep.mavlink.transfer`.

A route (k × 3: x east, y north, altitude above the launch site, metres, in the mission's local
frame) becomes, as ArduPilot and PX4 both fly it::

    seq 0        home (ArduPilot overwrites it with the real home; PX4 ignores it)
    seq 1        NAV_TAKEOFF to the first airborne point's altitude (done at once if flying)
    seq 2...     NAV_WAYPOINT at each route point in the air, altitude relative to home
    last         NAV_LAND where the route ends (its pad)

Route points on the ground (a sortie starts and ends on its pad at 0 m) are the take-off and
the landing, never waypoints. :func:`route_index` maps each item back to its route point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from skysweep.errors import LinkError
from skysweep.geo import FloatArray, LocalFrame
from skysweep.mavlink.dialect import mavlink as m

#: Mission item of the first waypoint (after home and the take-off).
ROUTE_FIRST_SEQ = 2
#: A route point below this altitude (m) is on the ground: a take-off or a landing.
GROUND_M = 0.5
MISSION = m.MAV_MISSION_TYPE_MISSION
FENCE = m.MAV_MISSION_TYPE_FENCE
_REL = m.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT
#: Altitudes and parameters read back may differ by float32 rounding.
_TOL = 0.01


@dataclass(frozen=True)
class Item:
    """One MISSION_ITEM_INT: lat/lon in 1e-7 degrees, altitude in metres."""

    seq: int
    command: int
    frame: int = _REL
    param1: float = 0.0
    param2: float = 0.0
    param3: float = 0.0
    param4: float = 0.0
    lat_e7: int = 0
    lon_e7: int = 0
    alt_m: float = 0.0
    mission_type: int = MISSION
    autocontinue: int = 1

    def message(self, mav: Any, system: int, component: int) -> Any:
        return mav.mission_item_int_encode(
            system,
            component,
            self.seq,
            self.frame,
            self.command,
            0,
            self.autocontinue,
            self.param1,
            self.param2,
            self.param3,
            self.param4,
            self.lat_e7,
            self.lon_e7,
            self.alt_m,
            self.mission_type,
        )

    @classmethod
    def of(cls, msg: Any) -> Item:
        """The item a MISSION_ITEM_INT carries."""
        return cls(
            seq=int(msg.seq),
            command=int(msg.command),
            frame=int(msg.frame),
            param1=float(msg.param1),
            param2=float(msg.param2),
            param3=float(msg.param3),
            param4=float(msg.param4),
            lat_e7=int(msg.x),
            lon_e7=int(msg.y),
            alt_m=float(msg.z),
            mission_type=int(getattr(msg, "mission_type", MISSION)),
            autocontinue=int(msg.autocontinue),
        )

    def same_as(self, other: Item, check_home: bool = True) -> bool:
        """Whether ``other`` (read back from a vehicle) is this item, up to float32 rounding.
        Home (item 0 of a mission) is set by the vehicle itself, so only its command is
        compared unless ``check_home``."""
        if (self.seq, self.command, self.mission_type) != (
            other.seq,
            other.command,
            other.mission_type,
        ):
            return False
        if self.seq == 0 and self.mission_type == MISSION and not check_home:
            return True
        params = np.array([self.param1, self.param2, self.param3, self.param4, self.alt_m])
        theirs = np.array([other.param1, other.param2, other.param3, other.param4, other.alt_m])
        return (
            self.frame == other.frame
            and self.lat_e7 == other.lat_e7
            and self.lon_e7 == other.lon_e7
            and bool(np.allclose(params, theirs, atol=_TOL, rtol=1e-6))
        )


def _e7(deg: FloatArray) -> list[int]:
    return [int(v) for v in np.rint(np.asarray(deg, float) * 1e7)]


def _span(route: FloatArray) -> tuple[int, int]:
    """First and last route points in the air (altitude ≥ GROUND_M)."""
    up = np.flatnonzero(route[:, 2] >= GROUND_M)
    if not len(up):
        raise LinkError("a route that never leaves the ground cannot be flown as a mission")
    return int(up[0]), int(up[-1])


def route_items(route_m: FloatArray, home_m: Sequence[float], frame: LocalFrame) -> list[Item]:
    """The mission items of ``route_m`` (k, 3) flown from ``home_m`` (x, y), local metres.

    Route points on the ground before the first one in the air (a sortie starts on its pad)
    are the take-off; those after the last one in the air are the landing. A waypoint at 0 m
    in an AUTO mission would fly a copter into the ground, so none is uploaded."""
    route = np.asarray(route_m, float).reshape(-1, 3)
    if len(route) == 0:
        raise LinkError("cannot upload an empty route")
    first, last = _span(route)
    xs = np.concatenate([[home_m[0]], route[:, 0]])
    ys = np.concatenate([[home_m[1]], route[:, 1]])
    lon, lat = frame.to_lonlat(xs, ys)
    la, lo = _e7(lat), _e7(lon)
    items = [Item(0, m.MAV_CMD_NAV_WAYPOINT, m.MAV_FRAME_GLOBAL, lat_e7=la[0], lon_e7=lo[0])]
    items.append(
        Item(
            1,
            m.MAV_CMD_NAV_TAKEOFF,
            lat_e7=la[first + 1],
            lon_e7=lo[first + 1],
            alt_m=float(route[first, 2]),
        )
    )
    for j in range(first, last + 1):
        items.append(
            Item(
                len(items),
                m.MAV_CMD_NAV_WAYPOINT,
                lat_e7=la[j + 1],
                lon_e7=lo[j + 1],
                alt_m=float(route[j, 2]),
            )
        )
    items.append(Item(len(items), m.MAV_CMD_NAV_LAND, lat_e7=la[-1], lon_e7=lo[-1]))
    return items


def route_index(route_m: FloatArray) -> NDArray[np.intp]:
    """For each mission item of :func:`route_items`, the index of the route point it flies to
    (what :attr:`FleetState.mission_seq` reports): the take-off and the first waypoint fly to
    the first point in the air, the landing to the last point (one past it if the route ends in
    the air, as the simulator counts a finished mission)."""
    route = np.asarray(route_m, float).reshape(-1, 3)
    first, last = _span(route)
    land = len(route) - 1 if last < len(route) - 1 else len(route)
    return np.array([first, first, *range(first, last + 1), land], np.intp)


def items_route(items: Sequence[Item], frame: LocalFrame) -> tuple[FloatArray, FloatArray]:
    """The route (k, 3) and home (x, y) of mission items, local metres: NAV_WAYPOINT items
    after home, with TAKEOFF as a climb over its own position (or over home when it has none)
    and LAND as a descent where the previous point was. Other commands are skipped."""
    if not items:
        return np.zeros((0, 3)), np.zeros(2)
    lat = np.array([it.lat_e7 for it in items], float) / 1e7
    lon = np.array([it.lon_e7 for it in items], float) / 1e7
    x, y = frame.to_local(lon, lat)
    home = np.array([x[0], y[0]])
    pts: list[tuple[float, float, float]] = []
    for k, it in enumerate(items[1:], start=1):
        here = (float(x[k]), float(y[k])) if it.lat_e7 or it.lon_e7 else None
        if it.command == m.MAV_CMD_NAV_TAKEOFF:
            px, py = here if here is not None else (float(home[0]), float(home[1]))
            pts.append((px, py, it.alt_m))
        elif it.command == m.MAV_CMD_NAV_WAYPOINT and here is not None:
            pts.append((here[0], here[1], it.alt_m))
    return np.array(pts, float).reshape(-1, 3), home


def fence_items(
    keep_in_lonlat: shapely.Geometry, keep_out_lonlat: Sequence[shapely.Geometry]
) -> list[Item]:
    """Fence items: every keep-in polygon as an inclusion polygon, and every keep-out zone (and
    every hole of the keep-in) as an exclusion polygon, in degrees. ``param1`` of each vertex is
    its polygon's vertex count, as the fence protocol has it."""
    polys: list[tuple[int, FloatArray]] = []
    for poly in shapely.get_parts(keep_in_lonlat):
        polys.append((m.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION, _ring(poly.exterior)))
        for hole in poly.interiors:
            polys.append((m.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_EXCLUSION, _ring(hole)))
    for zone in keep_out_lonlat:
        for poly in shapely.get_parts(zone):
            polys.append((m.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_EXCLUSION, _ring(poly.exterior)))
    items: list[Item] = []
    for command, ring in polys:
        la, lo = _e7(ring[:, 1]), _e7(ring[:, 0])
        for a, o in zip(la, lo, strict=True):
            items.append(
                Item(
                    len(items),
                    command,
                    m.MAV_FRAME_GLOBAL,
                    param1=float(len(ring)),
                    lat_e7=a,
                    lon_e7=o,
                    mission_type=FENCE,
                )
            )
    return items


def _ring(ring: shapely.LinearRing) -> FloatArray:
    """A ring's vertices without the closing repeat (the fence protocol closes it)."""
    return np.asarray(ring.coords, float)[:-1, :2]


def fence_polygons(items: Sequence[Item]) -> tuple[list[FloatArray], list[FloatArray]]:
    """Inclusion and exclusion polygons (lon, lat vertex arrays) of fence items; raises
    :class:`LinkError` on a polygon whose vertex count does not add up."""
    inclusion: list[FloatArray] = []
    exclusion: list[FloatArray] = []
    k = 0
    while k < len(items):
        it = items[k]
        count = int(it.param1)
        if it.command not in (
            m.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION,
            m.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_EXCLUSION,
        ):
            k += 1  # circles and return points: not polygons
            continue
        group = items[k : k + count]
        if count < 3 or len(group) < count or any(g.command != it.command for g in group):
            raise LinkError(f"fence item {k}: a polygon of {count} vertices is incomplete")
        ring = np.array([[g.lon_e7 / 1e7, g.lat_e7 / 1e7] for g in group])
        (
            inclusion if it.command == m.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION else exclusion
        ).append(ring)
        k += count
    return inclusion, exclusion
