"""What the operator's screen is sent: the fleet as one compact binary frame per tick, and the
alerts, exceptions first. Pure functions of plain arrays (layout in docs/server.md).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntFlag
from typing import Any

import numpy as np
from numpy.typing import NDArray

from skysweep.geo import FloatArray

MAGIC = b"SKY1"
_HEADER = struct.Struct("<4sIdII")  # magic, frame number, t_s, n, plan version
HEADER_BYTES = _HEADER.size  # 24
BYTES_PER_DRONE = 15


class Alert(IntFlag):
    """Why a drone needs the operator's eye; bit k of a frame's alert byte."""

    LOST = 1
    LOW_BATTERY = 2
    GEOFENCE = 4
    SEPARATION = 8
    LINK = 16
    FAILSAFE = 32


ALERT_NAMES = [a.name for a in Alert]
#: How much each alert matters, for ordering (most severe first).
SEVERITY = {
    Alert.LOST: 4,
    Alert.GEOFENCE: 3,
    Alert.SEPARATION: 3,
    Alert.LOW_BATTERY: 2,
    Alert.LINK: 2,
    Alert.FAILSAFE: 1,
}


@dataclass(frozen=True)
class FleetView:
    """The fleet as the operator sees it at one tick; one row per drone, fleet order."""

    t_s: float
    lon: FloatArray
    lat: FloatArray
    alt_m: FloatArray
    """Above the launch site."""
    heading_deg: FloatArray
    """Of the ground track, clockwise from north, [0, 360)."""
    speed_mps: FloatArray
    battery: FloatArray
    """Fraction of a full pack."""
    mode: NDArray[np.int8]
    """:class:`skysweep.runtime.modes.FlightMode`."""
    alerts: NDArray[np.uint8]
    """:class:`Alert` bits."""
    link_age_s: FloatArray


def encode_frame(number: int, plan_version: int, view: FleetView) -> bytes:
    """The binary frame of ``view`` (little-endian; layout in docs/server.md)."""
    n = len(view.lon)
    head = _HEADER.pack(MAGIC, number & 0xFFFFFFFF, view.t_s, n, plan_version & 0xFFFFFFFF)
    lon = np.round(np.nan_to_num(view.lon) * 1e7).astype("<i4")
    lat = np.round(np.nan_to_num(view.lat) * 1e7).astype("<i4")
    heading = np.round(np.mod(np.nan_to_num(view.heading_deg), 360.0) * 100.0) % 36000
    alt = np.clip(np.round(np.nan_to_num(view.alt_m) * 10.0), -32768, 32767)
    battery = np.clip(np.round(np.nan_to_num(view.battery) * 100.0), 0, 255)
    return b"".join(
        [
            head,
            lon.tobytes(),
            lat.tobytes(),
            heading.astype("<u2").tobytes(),
            alt.astype("<i2").tobytes(),
            view.mode.astype(np.uint8).tobytes(),
            battery.astype(np.uint8).tobytes(),
            view.alerts.astype(np.uint8).tobytes(),
        ]
    )


def decode_frame(buf: bytes) -> dict[str, Any]:
    """A frame back as arrays (for viewers written in Python, the benchmark and the tests)."""
    if len(buf) < HEADER_BYTES:
        raise ValueError(f"frame of {len(buf)} bytes is shorter than its header")
    magic, number, t_s, n, version = _HEADER.unpack_from(buf)
    if magic != MAGIC:
        raise ValueError(f"not a skysweep frame (magic {magic!r})")
    if len(buf) != HEADER_BYTES + BYTES_PER_DRONE * n:
        raise ValueError(f"frame of {len(buf)} bytes for {n} drones")
    at = HEADER_BYTES

    def take(dtype: str, size: int) -> NDArray[Any]:
        nonlocal at
        out = np.frombuffer(buf, dtype, n, at)
        at += size * n
        return out

    return {
        "frame": number,
        "t_s": t_s,
        "plan_version": version,
        "lon": take("<i4", 4) / 1e7,
        "lat": take("<i4", 4) / 1e7,
        "heading_deg": take("<u2", 2) / 100.0,
        "alt_m": take("<i2", 2) / 10.0,
        "mode": take("u1", 1).copy(),
        "battery": take("u1", 1) / 100.0,
        "alerts": take("u1", 1).copy(),
    }


def heading_deg(
    vel_mps: FloatArray, previous_deg: FloatArray, min_speed_mps: float = 0.5
) -> FloatArray:
    """Track heading from ground velocity (east, north); where a drone is slower than
    ``min_speed_mps`` (hovering, on the ground) it keeps ``previous_deg``."""
    vx, vy = vel_mps[:, 0], vel_mps[:, 1]
    moving = np.hypot(vx, vy) >= min_speed_mps
    now = np.mod(np.degrees(np.arctan2(vx, vy)), 360.0)
    return np.where(moving, now, previous_deg)


def alert_list(
    ids: tuple[str, ...] | list[str], view: FleetView, limit: int = 50
) -> list[dict[str, Any]]:
    """The alerts in force, most severe first (then by kind and drone), at most ``limit``:
    only the rows shown are built, however many drones are flagged."""
    out: list[dict[str, Any]] = []
    for a in sorted(Alert, key=lambda a: -SEVERITY[a]):
        for i in np.flatnonzero(view.alerts & a)[: limit - len(out)]:
            out.append(
                {
                    "drone": ids[i],
                    "kind": a.name,
                    "severity": SEVERITY[a],
                    "message": _message(a, view, int(i)),
                }
            )
        if len(out) >= limit:
            break
    return out


def _message(a: Alert, view: FleetView, i: int) -> str:
    if a is Alert.LOST:
        return f"lost: silent for {view.link_age_s[i]:.0f} s"
    if a is Alert.LOW_BATTERY:
        return f"battery low: {view.battery[i]:.0%}"
    if a is Alert.GEOFENCE:
        return "outside the keep-in area or inside a keep-out zone"
    if a is Alert.SEPARATION:
        return "closer than the minimum separation to another drone"
    if a is Alert.LINK:
        return f"link: silent for {view.link_age_s[i]:.1f} s"
    return "failsafe in force"
