"""The vehicle side of the MAVLink mission protocol, for the simulated vehicles of
:mod:`skysweep.mavlink.vehicles`: what ArduPilot Copter does with MISSION_COUNT, MISSION_ITEM_INT,
MISSION_REQUEST_LIST, MISSION_REQUEST(_INT), MISSION_CLEAR_ALL, for missions, fences and rally
points.

Upload: on MISSION_COUNT the vehicle asks for items 0..n-1 one by one with MISSION_REQUEST_INT,
asks again after :data:`REQUEST_RESEND_S` wall seconds without an answer, gives up after
:data:`MAX_REQUESTS` unanswered requests (MISSION_ACK OPERATION_CANCELLED), ignores an item that
is not the one it asked for (and asks again), and answers a full set with MISSION_ACK ACCEPTED.
Download is stateless: the count, then any item asked for. Item 0 of a mission is the vehicle's
home (its pad), whatever was uploaded there, as on ArduPilot.

A mission becomes a :class:`MissionPlan`: the route the simulator flies (local metres) and, for
every route point, the mission item it came from, so that the vehicle can report the item it
is flying to and jump to an item on request.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from skysweep.errors import LinkError
from skysweep.geo import FloatArray, LocalFrame
from skysweep.mavlink.dialect import HOME_ITEM, new_mav
from skysweep.mavlink.dialect import mavlink as m
from skysweep.mavlink.items import FENCE, MISSION, Item, fence_polygons, items_route

RALLY = m.MAV_MISSION_TYPE_RALLY
MISSION_TYPES = (MISSION, FENCE, RALLY)
#: Wall seconds before a vehicle asks again for an item it did not get (ArduPilot: about 1 s).
REQUEST_RESEND_S = 1.0
#: Unanswered requests for one item before the vehicle cancels the upload.
MAX_REQUESTS = 5
#: Most items of one mission type a vehicle stores (ArduPilot with an SD card stores thousands).
MAX_ITEMS = 5000
#: Largest altitude, metres, an item may carry; anything beyond is a corrupt item.
MAX_ALT_M = 100_000.0

_FRAMES = frozenset(
    {
        m.MAV_FRAME_GLOBAL,
        m.MAV_FRAME_GLOBAL_RELATIVE_ALT,
        m.MAV_FRAME_GLOBAL_INT,
        m.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT,
        m.MAV_FRAME_GLOBAL_TERRAIN_ALT,
        m.MAV_FRAME_GLOBAL_TERRAIN_ALT_INT,
        m.MAV_FRAME_MISSION,
    }
)
#: Builds message objects (never packs: the vehicles' port codecs do that).
_BUILDER = new_mav(0, 0)


class EndAction(Enum):
    """What the vehicle does once it has flown the last route point of a mission."""

    LAND = "land"  # a NAV_LAND item follows: land there (and disarm)
    RTL = "rtl"  # a NAV_RETURN_TO_LAUNCH item follows
    HOLD = "hold"  # nothing follows: ArduPilot Copter loiters at the last waypoint, in AUTO


@dataclass(frozen=True)
class MissionPlan:
    """A mission as the simulator flies it.

    ``route`` (k, 3): x east, y north, altitude above home, metres, in the mission's local
    frame. ``item_of[j]`` is the mission item (seq) route point ``j`` came from, and
    ``takeoff[j]`` whether that item is a NAV_TAKEOFF (climbed over wherever the vehicle is).
    """

    items: tuple[Item, ...]
    route: FloatArray
    item_of: NDArray[np.intp]
    takeoff: NDArray[np.bool_]
    end: EndAction
    end_item: int
    """The item reported as current once the route is flown (the LAND or RTL item)."""

    @property
    def count(self) -> int:
        return len(self.items)

    def first_point(self, seq: int) -> int:
        """The first route point at or after mission item ``seq`` (``len(route)``: none)."""
        return int(np.searchsorted(self.item_of, seq, side="left"))

    def current_item(self, point: int) -> int:
        """The mission item of route point ``point`` (the end item past the last)."""
        return int(self.item_of[point]) if point < len(self.item_of) else self.end_item


def mission_plan(items: list[Item], frame: LocalFrame) -> MissionPlan:
    """The :class:`MissionPlan` of mission items (seq 0..n-1, item 0 home)."""
    route, _home = items_route(items, frame)  # home is the vehicle's own pad, not item 0
    # the items items_route turns into route points, in its order
    item_of = [
        k
        for k, it in enumerate(items)
        if k != HOME_ITEM
        and (
            it.command == m.MAV_CMD_NAV_TAKEOFF
            or (it.command == m.MAV_CMD_NAV_WAYPOINT and (it.lat_e7 or it.lon_e7))
        )
    ]
    if len(item_of) != len(route):
        raise LinkError(f"{len(route)} route points from {len(item_of)} position items")
    last = item_of[-1] if item_of else HOME_ITEM
    end, end_item = EndAction.HOLD, last
    for it in items[last + 1 :]:
        if it.command == m.MAV_CMD_NAV_LAND:
            end, end_item = EndAction.LAND, it.seq
            break
        if it.command == m.MAV_CMD_NAV_RETURN_TO_LAUNCH:
            end, end_item = EndAction.RTL, it.seq
            break
        if it.command <= m.MAV_CMD_NAV_LAST:
            break  # another navigation command (a loiter …): not flown, the vehicle holds
    return MissionPlan(
        items=tuple(items),
        route=route,
        item_of=np.array(item_of, np.intp),
        takeoff=np.array([items[k].command == m.MAV_CMD_NAV_TAKEOFF for k in item_of], bool),
        end=end,
        end_item=end_item,
    )


def item_error(item: Item) -> int | None:
    """The MAV_MISSION_RESULT refusing ``item``, or None if the vehicle can store it."""
    if item.frame not in _FRAMES:
        return int(m.MAV_MISSION_UNSUPPORTED_FRAME)
    if not -900_000_000 <= item.lat_e7 <= 900_000_000:
        return int(m.MAV_MISSION_INVALID_PARAM5_X)
    if not -1_800_000_000 <= item.lon_e7 <= 1_800_000_000:
        return int(m.MAV_MISSION_INVALID_PARAM6_Y)
    if not (math.isfinite(item.alt_m) and abs(item.alt_m) <= MAX_ALT_M):
        return int(m.MAV_MISSION_INVALID_PARAM7)
    return None


def item_of_message(msg: Any) -> Item:
    """The item a MISSION_ITEM_INT or a legacy MISSION_ITEM (degrees as floats) carries;
    ValueError if its position is not a number."""
    if msg.get_type() == "MISSION_ITEM_INT":
        return Item.of(msg)
    lat, lon = float(msg.x), float(msg.y)
    if not (math.isfinite(lat) and math.isfinite(lon)) or max(abs(lat), abs(lon)) > 1e3:
        raise ValueError("position is not a number of degrees")
    # the same fields but the position, in degrees rather than 1e-7 degrees
    return replace(Item.of(msg), lat_e7=round(lat * 1e7), lon_e7=round(lon * 1e7))


@dataclass
class Upload:
    """An upload under way to one vehicle: items so far, who sends them, when to ask again."""

    mission_type: int
    count: int
    gcs: tuple[int, int]
    """(system, component) of the ground station uploading."""
    items: list[Item] = field(default_factory=list)
    due_wall: float = 0.0
    requests: int = 0
    """Requests sent for the item now wanted, without an answer."""


Send = Callable[[int, Any], None]
#: Called with (vehicle, old plan, new plan) when a vehicle's mission is replaced or cleared.
OnMission = Callable[[int, MissionPlan | None, MissionPlan | None], None]


class MissionServer:
    """Missions, fences and rally points of ``n`` vehicles, and the protocol that moves them.

    ``send(vehicle, msg)`` queues a message from a vehicle; ``on_mission`` hears of every new
    or cleared mission; ``busy(vehicle)`` says whether the vehicle is flying its mission (it
    cannot be cleared then). ``home_e7`` is every vehicle's home as (lat, lon) in 1e-7 degrees.
    """

    def __init__(
        self,
        n: int,
        frame: LocalFrame,
        home_e7: tuple[NDArray[np.int64], NDArray[np.int64]],
        send: Send,
        on_mission: OnMission,
        busy: Callable[[int], bool],
    ) -> None:
        self.frame = frame
        self.home_lat_e7 = [int(v) for v in home_e7[0]]
        self.home_lon_e7 = [int(v) for v in home_e7[1]]
        self.send = send
        self.on_mission = on_mission
        self.busy = busy
        self.plans: list[MissionPlan | None] = [None] * n
        self.stored: dict[int, list[list[Item]]] = {
            t: [[] for _ in range(n)] for t in (FENCE, RALLY)
        }
        self.uploads: dict[tuple[int, int], Upload] = {}
        self.absurd = 0
        """Requests refused for values no ground station should send (counts, positions)."""

    # -- what the vehicle holds ---------------------------------------------------------------

    def count(self, i: int, mission_type: int) -> int:
        """Items a download of ``mission_type`` returns; a mission always has its home."""
        if mission_type == MISSION:
            plan = self.plans[i]
            return max(plan.count if plan is not None else 0, 1)
        return len(self.stored[mission_type][i])

    def item(self, i: int, mission_type: int, seq: int) -> Item | None:
        if not 0 <= seq < self.count(i, mission_type):
            return None
        if mission_type != MISSION:
            return self.stored[mission_type][i][seq]
        if seq == HOME_ITEM:
            return Item(
                0,
                m.MAV_CMD_NAV_WAYPOINT,
                m.MAV_FRAME_GLOBAL,
                lat_e7=self.home_lat_e7[i],
                lon_e7=self.home_lon_e7[i],
            )
        plan = self.plans[i]
        assert plan is not None
        return plan.items[seq]

    # -- protocol -----------------------------------------------------------------------------

    def _ack(self, i: int, gcs: tuple[int, int], result: int, mission_type: int) -> None:
        self.send(i, m.MAVLink_mission_ack_message(gcs[0], gcs[1], result, mission_type))

    def _request(self, i: int, up: Upload, wall: float) -> None:
        seq = len(up.items)
        self.send(
            i, m.MAVLink_mission_request_int_message(up.gcs[0], up.gcs[1], seq, up.mission_type)
        )
        up.requests += 1
        up.due_wall = wall + REQUEST_RESEND_S

    def on_count(
        self, i: int, gcs: tuple[int, int], count: int, mission_type: int, wall: float
    ) -> None:
        """MISSION_COUNT: start an upload (a new one replaces any under way), or clear."""
        if mission_type not in MISSION_TYPES:
            self._ack(i, gcs, m.MAV_MISSION_UNSUPPORTED, mission_type)
            return
        self.uploads.pop((i, mission_type), None)
        if count == 0:
            self._ack(i, gcs, self.clear(i, mission_type), mission_type)
            return
        if count > MAX_ITEMS:
            self.absurd += 1
            self._ack(i, gcs, m.MAV_MISSION_NO_SPACE, mission_type)
            return
        up = Upload(mission_type, count, gcs)
        self.uploads[(i, mission_type)] = up
        self._request(i, up, wall)

    def on_item(self, i: int, item: Item, wall: float) -> bool:
        """MISSION_ITEM_INT (or MISSION_ITEM) of an upload; False if no upload wanted it."""
        up = self.uploads.get((i, item.mission_type))
        if up is None:
            return False
        if item.seq != len(up.items):
            # a late duplicate or an item out of order: ask again for the one wanted
            self._request(i, up, wall)
            return True
        error = item_error(item)
        if error is not None:
            self.absurd += 1
            del self.uploads[(i, item.mission_type)]
            self._ack(i, up.gcs, error, up.mission_type)
            return True
        up.items.append(item)
        up.requests = 0
        if len(up.items) < up.count:
            self._request(i, up, wall)
            return True
        del self.uploads[(i, item.mission_type)]
        self._ack(i, up.gcs, self._commit(i, up), up.mission_type)
        return True

    def _commit(self, i: int, up: Upload) -> int:
        """Replace the vehicle's items of the upload's type; the MISSION_ACK result."""
        if up.mission_type == MISSION:
            try:
                plan = mission_plan(up.items, self.frame)
            except (LinkError, ValueError):
                return int(m.MAV_MISSION_ERROR)
            old = self.plans[i]
            self.plans[i] = plan
            self.on_mission(i, old, plan)
            return int(m.MAV_MISSION_ACCEPTED)
        if up.mission_type == FENCE:
            try:
                fence_polygons(up.items)
            except LinkError:
                return int(m.MAV_MISSION_ERROR)  # ArduPilot checks every polygon adds up
        self.stored[up.mission_type][i] = list(up.items)
        return int(m.MAV_MISSION_ACCEPTED)

    def clear(self, i: int, mission_type: int) -> int:
        """MISSION_CLEAR_ALL (or a count of 0); the MISSION_ACK result. A mission being flown
        cannot be cleared (ArduPilot refuses)."""
        if mission_type == MISSION:
            if self.busy(i):
                return int(m.MAV_MISSION_DENIED)
            old = self.plans[i]
            self.plans[i] = None
            self.on_mission(i, old, None)
        elif mission_type in self.stored:
            self.stored[mission_type][i] = []
        else:
            return int(m.MAV_MISSION_UNSUPPORTED)
        return int(m.MAV_MISSION_ACCEPTED)

    def on_clear(self, i: int, gcs: tuple[int, int], mission_type: int) -> None:
        self.uploads.pop((i, mission_type), None)
        self._ack(i, gcs, self.clear(i, mission_type), mission_type)

    def on_request_list(self, i: int, gcs: tuple[int, int], mission_type: int) -> None:
        if mission_type not in MISSION_TYPES:
            self._ack(i, gcs, m.MAV_MISSION_UNSUPPORTED, mission_type)
            return
        count = self.count(i, mission_type)
        self.send(i, m.MAVLink_mission_count_message(gcs[0], gcs[1], count, mission_type))

    def on_request(self, i: int, gcs: tuple[int, int], seq: int, mission_type: int) -> None:
        """MISSION_REQUEST_INT or the legacy MISSION_REQUEST: answered with MISSION_ITEM_INT."""
        if mission_type not in MISSION_TYPES:
            self._ack(i, gcs, m.MAV_MISSION_UNSUPPORTED, mission_type)
            return
        item = self.item(i, mission_type, seq)
        if item is None:
            self._ack(i, gcs, m.MAV_MISSION_INVALID_SEQUENCE, mission_type)
            return
        self.send(i, item.message(_BUILDER, gcs[0], gcs[1]))

    def on_time(self, wall: float) -> None:
        """Ask again for items not received in time; cancel uploads that stay unanswered."""
        for (i, mission_type), up in list(self.uploads.items()):
            if wall < up.due_wall:
                continue
            if up.requests >= MAX_REQUESTS:
                del self.uploads[(i, mission_type)]
                self._ack(i, up.gcs, m.MAV_MISSION_OPERATION_CANCELLED, mission_type)
            else:
                self._request(i, up, wall)
