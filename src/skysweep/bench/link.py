"""``skysweep bench link``: MAVLink telemetry ingest, from UDP datagrams to FleetState.

A sender process plays ``vehicles`` autopilots, 250 system ids per UDP port, each sending
GLOBAL_POSITION_INT, SYS_STATUS, EXTENDED_SYS_STATE and MISSION_CURRENT at ``rate_hz`` and a
HEARTBEAT at 1 Hz, one message per datagram (the worst case: autopilots often pack several).
The ground station is a :class:`~skysweep.mavlink.link.MavlinkLink` listening on those ports,
pumped in one thread on the other core, and polled for a FleetState at 2 Hz as the
orchestrator does.

Figures: messages ingested per second of the link's CPU time (``per_cpu_s``: its capacity on
one core), per wall second, and the share of the offered messages that arrived (UDP drops when
the receiver falls behind). ``pymavlink_parse_per_s`` is pymavlink's own parser on the same
bytes, with nothing done with the messages, for comparison (the link decodes plain telemetry
on its own fast path, :mod:`skysweep.mavlink.fastpath`, and can beat it).
"""

from __future__ import annotations

import multiprocessing as mp
import select
import socket
import time
from typing import Any

import numpy as np

from skysweep import mission as mission_mod
from skysweep.mavlink.dialect import mavlink as m
from skysweep.mavlink.dialect import new_mav
from skysweep.mavlink.link import MavlinkLink
from skysweep.mavlink.modes import CopterMode

PER_PORT = 250


def _mission(vehicles: int) -> mission_mod.Mission:
    data = {
        "name": "link bench",
        "area": {
            "type": "Polygon",
            "coordinates": [[[8.0, 46.5], [8.3, 46.5], [8.3, 46.7], [8.0, 46.7], [8.0, 46.5]]],
        },
        "launch_sites": [{"name": "base", "lon": 8.15, "lat": 46.6, "pads": 10}],
        "fleet": [
            {
                "model": "quad",
                "count": vehicles,
                "launch_site": "base",
                "speed_mps": 12,
                "endurance_s": 2400,
                "swath_m": 60,
            }
        ],
    }
    return mission_mod.parse(data, "<bench link>")


def _frames(
    vehicles: int, rate_hz: float
) -> tuple[list[list[tuple[int, bytes]]], list[tuple[int, bytes]]]:
    """Pre-encoded datagrams: one telemetry cycle (1 / rate_hz s) and one heartbeat round,
    each a list of (port index, bytes)."""
    rng = np.random.default_rng(0)
    cycle: list[tuple[int, bytes]] = []
    beats: list[tuple[int, bytes]] = []
    for i in range(vehicles):
        port, system = divmod(i, PER_PORT)
        mav = new_mav(system + 1, 1)
        lat = int(46.6e7 + rng.integers(-500_000, 500_000))
        lon = int(8.15e7 + rng.integers(-500_000, 500_000))
        msgs = [
            m.MAVLink_global_position_int_message(
                1000, lat, lon, 60_000, 60_000, 1200, -300, 0, 9000
            ),
            m.MAVLink_sys_status_message(0, 0, 0, 0, 15_600, 900, 71, 0, 0, 0, 0, 0, 0, 0, 0, 0),
            m.MAVLink_extended_sys_state_message(0, m.MAV_LANDED_STATE_IN_AIR),
            m.MAVLink_mission_current_message(12, 0, 0, 0),
        ]
        cycle += [(port, bytes(x.pack(mav))) for x in msgs]
        hb = m.MAVLink_heartbeat_message(
            m.MAV_TYPE_QUADROTOR,
            m.MAV_AUTOPILOT_ARDUPILOTMEGA,
            m.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | m.MAV_MODE_FLAG_SAFETY_ARMED,
            CopterMode.AUTO,
            m.MAV_STATE_ACTIVE,
            3,
        )
        beats.append((port, bytes(hb.pack(mav))))
    return [cycle], beats


def _sender(ports: list[int], vehicles: int, rate_hz: float, seconds: float, q: Any) -> None:
    """Send the fleet's telemetry to ``ports`` on 127.0.0.1, paced at ``rate_hz`` cycles."""
    (cycle,), beats = _frames(vehicles, rate_hz)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
    addrs = [("127.0.0.1", p) for p in ports]
    send = sock.sendto
    for port, data in beats:
        send(data, addrs[port])
    q.put("beats")
    q.get()  # the receiver has bound every vehicle
    sent = 0
    t0 = time.perf_counter()
    k = 0
    while True:
        due = t0 + k / rate_hz
        now = time.perf_counter()
        if now - t0 >= seconds:
            break
        if now < due:
            time.sleep(due - now)
        if k % max(1, round(rate_hz)) == 0:
            for port, data in beats:
                send(data, addrs[port])
            sent += len(beats)
        for port, data in cycle:
            try:
                send(data, addrs[port])
            except BlockingIOError:
                continue
            sent += 1
        k += 1
    q.put(sent)
    sock.close()


def _free_ports(count: int) -> list[int]:
    """``count`` consecutive free UDP ports on 127.0.0.1."""
    for base in range(24_000, 60_000, count + 7):
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return list(range(base, base + count))
    raise RuntimeError("no free UDP ports")


def parse_ceiling(vehicles: int) -> float:
    """pymavlink's own parse rate on one telemetry cycle's bytes, messages per second."""
    (cycle,), _ = _frames(vehicles, 5.0)
    data = b"".join(d for _, d in cycle)
    mav = new_mav(255, 190)
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        n = len(mav.parse_buffer(data) or [])
        best = max(best, n / (time.perf_counter() - t0))
    return best


def run(vehicles: int = 2500, rate_hz: float = 5.0, seconds: float = 10.0) -> dict[str, Any]:
    """Offer the telemetry of ``vehicles`` at ``rate_hz`` for ``seconds`` and measure."""
    mission = _mission(vehicles)
    n_ports = -(-vehicles // PER_PORT)
    ports = _free_ports(n_ports)
    link = MavlinkLink(mission, [f"udpin:127.0.0.1:{p}" for p in ports])
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_sender, args=(ports, vehicles, rate_hz, seconds, q), daemon=True)
    proc.start()
    try:
        assert q.get(timeout=60) == "beats"
        deadline = time.monotonic() + 30
        while len(link.heard) < vehicles and time.monotonic() < deadline:
            link.pump()
            time.sleep(0.001)
        link.bind_discovered()
        start_messages = link.messages
        q.put("go")
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        next_poll = wall0
        sent: int | None = None
        fds = [ch.fileno() for ch in link.channels]
        while True:
            # block until datagrams arrive, as the link's own thread does: CPU time is then
            # the cost of ingesting, not of spinning
            select.select(fds, [], [], 0.002)
            link.pump()
            now = time.perf_counter()
            if now >= next_poll:
                fs = link.poll(now - wall0)
                next_poll += 0.5
            if sent is None and not q.empty():
                sent = q.get()
                drain_until = now + 0.5
            if sent is not None and now >= drain_until:
                break
        cpu = time.thread_time() - cpu0
        wall = time.perf_counter() - wall0
    finally:
        proc.join(timeout=10)
        link.close()
    ingested = link.messages - start_messages
    return {
        "vehicles": vehicles,
        "rate_hz": rate_hz,
        "ports": n_ports,
        "seconds": round(wall, 2),
        "offered": sent,
        "ingested": ingested,
        "delivered_share": round(ingested / sent, 4) if sent else None,
        "per_cpu_s": round(ingested / cpu),
        "per_wall_s": round(ingested / wall),
        "cpu_share": round(cpu / wall, 3),
        "positions_valid": int(fs.pos_m[:, 0].size - np.isnan(fs.pos_m[:, 0]).sum()),
        "pymavlink_parse_per_s": round(parse_ceiling(vehicles)),
    }
