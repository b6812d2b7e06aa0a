"""``skysweep bench serve``: the operator server under a full fleet and many viewers.

Starts ``skysweep serve MISSION --sim`` in a process of its own (real time, 2 ticks a
second), connects ``viewers`` WebSocket clients from this process, and measures:

- whether the server holds the tick rate: mission time against wall time, and the frames
  each viewer received per second;
- the stream frames' size;
- operator commands' round trip: from sending ``pause`` (all drones) or ``home`` (a
  selection) to the first frame in which every drone it concerns shows the new mode;
- with Chromium, one redraw of every drone on the map page (``window.skysweep.measureRedraw``,
  the browser's Performance API);
- the server process's CPU share.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from skysweep.errors import InfeasibleError
from skysweep.server.auth import create_token, load_secret
from skysweep.server.frames import decode_frame

AT_WORK = ("TRANSIT", "SWEEP")
#: How long a command's effect is watched for in the stream, wall seconds.
COMMAND_WINDOW_S = 15.0


@dataclass
class Viewer:
    frames: int = 0
    sizes: list[int] = field(default_factory=list)
    t_s: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    skipped: int = 0
    last: int = 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(
    mission: Path,
    viewers: int = 20,
    duration_s: float = 60.0,
    commands: int = 5,
    browser: bool = True,
    warm_s: float = 40.0,
) -> dict[str, Any]:
    """Measure the server on ``mission`` (figures as a dict; see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="skysweep-bench-serve-") as tmp:
        secret_path = Path(tmp) / "secret"
        secret = load_secret(secret_path)
        port = _free_port()
        cmd = [
            sys.executable, "-m", "skysweep.cli", "serve", str(mission), "--sim",
            "--port", str(port), "--secret", str(secret_path), "--log", f"{tmp}/serve.db",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        try:
            url = _wait_for_url(proc, timeout_s=600.0)
            base = url.split("/?", 1)[0]
            _wait_until_serving(base, secret, timeout_s=60.0)
            started = time.monotonic()
            cpu0 = _cpu_s(proc.pid)
            figures = asyncio.run(_measure(base, secret, viewers, duration_s, commands, warm_s))
            wall = time.monotonic() - started
            figures["server_cpu_share"] = round((_cpu_s(proc.pid) - cpu0) / wall, 3)
            if browser:
                figures["browser"] = _browser(base, secret)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return figures


def _wait_until_serving(base: str, secret: bytes, timeout_s: float) -> None:
    tok = create_token(secret, "bench", ("viewer",), time.time(), 600)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{base}/api/fleet", headers={"Authorization": f"Bearer {tok}"})
            if r.status_code == 200 and r.json()["drones"]:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise InfeasibleError(f"skysweep serve did not answer on {base} within {timeout_s:.0f} s")


def _wait_for_url(proc: subprocess.Popen[str], timeout_s: float) -> str:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout_s
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"on (http://\S+)", line)
        if m:
            return m.group(1)
    raise InfeasibleError("skysweep serve did not start: " + "".join(lines[-5:]))


async def _measure(
    base: str, secret: bytes, n_viewers: int, duration_s: float, n_commands: int, warm_s: float
) -> dict[str, Any]:
    import websockets

    tok = create_token(secret, "bench", ("viewer", "operator"), time.time(), 3600)
    ws_url = base.replace("http://", "ws://") + f"/api/stream?token={tok}"
    stats = [Viewer() for _ in range(n_viewers)]
    latest: dict[str, Any] = {}
    modes: list[str] = []
    stop = asyncio.Event()

    async def view(k: int) -> None:
        v = stats[k]
        async with websockets.connect(ws_url, max_size=None) as ws:
            hello = json.loads(await ws.recv())
            if k == 0:
                modes.extend(hello["modes"])
            while not stop.is_set():
                try:
                    msg = await asyncio.wait_for(ws.recv(), 2.0)
                except TimeoutError:
                    continue
                if isinstance(msg, bytes):
                    frame = decode_frame(msg)
                    now = time.monotonic()
                    if v.last and frame["frame"] > v.last + 1:
                        v.skipped += frame["frame"] - v.last - 1
                    v.last = frame["frame"]
                    v.frames += 1
                    v.sizes.append(len(msg))
                    v.t_s.append(frame["t_s"])
                    v.wall_s.append(now)
                    if k == 0:
                        latest["frame"] = frame
                        latest["wall"] = now
                        latest["event"].set()

    latest["event"] = asyncio.Event()
    tasks = [asyncio.create_task(view(k)) for k in range(n_viewers)]
    headers = {"Authorization": f"Bearer {tok}"}
    trips: list[RoundTrip] = []
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30.0) as client:
        # let the fleet launch: commands are timed on drones at work
        t_end_warm = time.monotonic() + warm_s
        while time.monotonic() < t_end_warm:
            await asyncio.sleep(0.5)
        ids_all = [d["id"] for d in (await client.get("/api/fleet")).json()["drones"]]
        measure_from = time.monotonic()
        for k in range(n_commands):
            for kind, select in (("pause", None), ("resume", None), ("home", 20 + k)):
                rt = await _round_trip(client, latest, modes, ids_all, kind, select)
                if rt is not None:
                    trips.append(rt)
                await asyncio.sleep(1.0)
        rest = duration_s - (time.monotonic() - measure_from)
        if rest > 0:
            await asyncio.sleep(rest)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)

    def spread(xs: list[float]) -> list[float] | None:
        if not xs:
            return None
        q = np.percentile(xs, [50, 95, 100])
        return [round(float(x), 3) for x in q]

    commands: dict[str, Any] = {}
    for kind in ("pause", "resume", "home"):
        got = [t for t in trips if t.kind == kind]
        if not got:
            continue
        firsts = [t.first_s for t in got if t.first_s is not None]
        every = [x for t in got for x in t.shown_s]
        commands[kind] = {
            "sent": len(got),
            "drones": sum(t.concerned for t in got),
            "first_drone_s": [round(min(firsts), 3), round(max(firsts), 3)] if firsts else None,
            "per_drone_s_p50_p95_max": spread(every),
            "within_1s": round(
                sum(x <= 1.0 for x in every) / max(sum(t.concerned for t in got), 1), 4
            ),
            "not_within_window": sum(t.concerned - len(t.shown_s) for t in got),
            "of_which_held_for_separation": sum(t.held for t in got),
        }
    rates = []
    mission_rate = []
    for v in stats:
        w = np.array(v.wall_s)
        t = np.array(v.t_s)
        sel = w >= measure_from
        if sel.sum() > 2:
            span = w[sel][-1] - w[sel][0]
            rates.append((sel.sum() - 1) / span)
            mission_rate.append((t[sel][-1] - t[sel][0]) / span)
    n = len(latest["frame"]["lon"]) if "frame" in latest else 0
    sizes = [s for v in stats for s in v.sizes]
    return {
        "drones": n,
        "viewers": n_viewers,
        "measured_s": round(time.monotonic() - measure_from, 1),
        "frames_per_s_per_viewer": [round(min(rates), 2), round(max(rates), 2)] if rates else None,
        "mission_s_per_wall_s": round(min(mission_rate), 3) if mission_rate else None,
        "frames_skipped": sum(v.skipped for v in stats),
        "frame_bytes_max": max(sizes) if sizes else None,
        "commands": commands,
    }


@dataclass
class RoundTrip:
    """One command's effect as the stream showed it (wall seconds from sending)."""

    kind: str
    concerned: int
    shown_s: list[float]
    """Per drone that showed the mode the command calls for within the window."""
    held: int
    """Drones that did not, which the safety kernel refused for separation meanwhile (they
    wait for a neighbour to clear, by design)."""

    @property
    def first_s(self) -> float | None:
        return min(self.shown_s) if self.shown_s else None


async def _refused(client: httpx.AsyncClient, cursor: int) -> dict[str, str]:
    """Drones refused by the kernel since event ``cursor`` (drone → reason)."""
    out: dict[str, str] = {}
    while True:
        r = await client.get(
            "/api/events", params={"kind": "refused", "after": cursor, "limit": 10_000}
        )
        r.raise_for_status()
        rows = r.json()
        for row in rows:
            out[row["drone"]] = row["data"].get("reason", "")
        if len(rows) < 10_000:
            return out
        cursor = rows[-1]["id"]


async def _round_trip(
    client: httpx.AsyncClient,
    latest: dict[str, Any],
    modes: list[str],
    ids_all: list[str],
    kind: str,
    select: int | None,
) -> RoundTrip | None:
    """Send ``kind`` and time, drone by drone, until each drone it concerns shows the mode it
    calls for in the stream (within COMMAND_WINDOW_S); None if no drone was in a state to
    show it."""
    frame = latest["frame"]
    mode = np.array([modes[m] for m in frame["mode"]])
    if kind == "pause":
        concerned = np.flatnonzero(np.isin(mode, AT_WORK))
        want: tuple[str, ...] = ("HOLD",)
    elif kind == "resume":
        concerned = np.flatnonzero(mode == "HOLD")
        # a drone paused on its way up goes on up (TAKEOFF)
        want = ("TAKEOFF", *AT_WORK, "RETURN", "LANDING")
    else:
        concerned = np.flatnonzero(np.isin(mode, AT_WORK))[: select or 20]
        want = ("RETURN", "LANDING")
    if not len(concerned):
        return None
    ids = [ids_all[i] for i in concerned] if select is not None else None
    sent = time.monotonic()
    r = await client.post("/api/commands", json={"command": kind, "drones": ids})
    r.raise_for_status()
    cursor = int(r.json().get("event") or 0)  # the command's own event: what follows is its
    shown_at = np.full(len(concerned), np.nan)
    deadline = sent + COMMAND_WINDOW_S
    while time.monotonic() < deadline:
        ev: asyncio.Event = latest["event"]
        ev.clear()
        fr = latest["frame"]
        if latest["wall"] > sent:
            now_modes = np.array([modes[m] for m in fr["mode"][concerned]])
            new = np.isin(now_modes, want) & np.isnan(shown_at)
            shown_at[new] = latest["wall"] - sent
            if not np.isnan(shown_at).any():
                break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ev.wait(), 2.0)
    refused = await _refused(client, cursor)
    waiting = [ids_all[i] for i in concerned[np.isnan(shown_at)]]
    held = sum(refused.get(d, "").startswith("separation") for d in waiting)
    return RoundTrip(kind, len(concerned), [float(x) for x in shown_at[~np.isnan(shown_at)]], held)


def _browser(base: str, secret: bytes) -> dict[str, Any]:
    """One redraw of every drone on the map page, in headless Chromium (ms)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"skipped": "playwright is not installed"}
    chromium = os.environ.get("SKYSWEEP_CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        return {"skipped": f"no Chromium at {chromium}"}
    tok = create_token(secret, "bench-browser", ("viewer",), time.time(), 600)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = b.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"{base}/?token={tok}")
        page.wait_for_function(
            "window.skysweep && window.skysweep.state && window.skysweep.state.frame > 2",
            timeout=60_000,
        )
        times = [float(page.evaluate("window.skysweep.measureRedraw()")) for _ in range(30)]
        drones = int(page.evaluate("window.skysweep.state.ids.length"))
        b.close()
    return {
        "drones": drones,
        "redraw_ms": [
            round(min(times), 2),
            round(statistics.median(times), 2),
            round(max(times), 2),
        ],
        "chromium": chromium,
    }


#: Headless Chromium on a machine with no GPU and no internet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
