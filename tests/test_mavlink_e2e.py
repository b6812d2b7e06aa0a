"""End to end over real UDP: `skysweep vehicles` serves 300 simulated ArduPilot copters on two
ports, and `skysweep run` binds them, uploads and reads back their fences, and flies the plan
to full coverage through the whole stack, both as a user runs them (two processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from udp_ports import free_base_port

from skysweep.store import RunLog

MISSION = """
name: three hundred over MAVLink
area: {type: Polygon, coordinates: [[[8.000, 46.500], [8.030, 46.500], [8.030, 46.515],
       [8.000, 46.515], [8.000, 46.500]]]}
keep_out:
  - name: tower
    geometry: {type: Polygon, coordinates: [[[8.012, 46.505], [8.015, 46.505], [8.015, 46.508],
               [8.012, 46.508], [8.012, 46.505]]]}
launch_sites:
  - {name: west, lon: 8.004, lat: 46.5015, pads: 10, launch_interval_s: 2}
  - {name: east, lon: 8.026, lat: 46.5015, pads: 10, launch_interval_s: 2}
fleet:
  - {model: quad, count: 150, launch_site: west, speed_mps: 12, endurance_s: 1200, swath_m: 40,
     swap_s: 60}
  - {model: quad, count: 150, launch_site: east, speed_mps: 12, endurance_s: 1200, swath_m: 40,
     swap_s: 60}
search: {altitude_m: 50}
# the "radio" is loopback on a machine that also runs the vehicles' simulator at 10x: a
# scheduler stall of a wall second is ten mission seconds, so the lost-link timeout is longer
safety: {min_separation_m: 8, geofence_margin_m: 10, battery_reserve: 0.2,
         lost_link_timeout_s: 30}
"""

SCALE = "10"


def skysweep(*args: str) -> list[str]:
    return [sys.executable, "-m", "skysweep.cli", *args]


def test_run_flies_300_facade_vehicles_on_two_ports_to_full_coverage(tmp_path: Path) -> None:
    mission = tmp_path / "m.yaml"
    mission.write_text(MISSION)
    base = free_base_port(2)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    vehicles = subprocess.Popen(
        skysweep("vehicles", str(mission), "--base-port", str(base), "--time-scale", SCALE),
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        db = tmp_path / "run.db"
        done = subprocess.run(
            skysweep(
                "run",
                str(mission),
                "--link",
                f"udp:127.0.0.1:{base}",
                "--link",
                f"udp:127.0.0.1:{base + 1}",
                "--time-scale",
                SCALE,
                "--stream-hz",
                "1",
                "--log",
                str(db),
                "--json",
            ),
            capture_output=True,
            text=True,
            timeout=400,
            env=env,
        )
    finally:
        vehicles.terminate()
        try:
            _, facade_err = vehicles.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            vehicles.kill()
            facade_err = ""
    assert done.returncode == 0, (
        f"run failed:\n{done.stderr[-3000:]}\nvehicles:\n{facade_err[-2000:]}"
    )
    summary = json.loads(done.stdout)
    assert summary["state"] == "COMPLETE"
    assert summary["covered_fraction"] >= 0.99
    assert summary["keep_out_breaches"] == 0 and summary["keep_in_breaches"] == 0
    assert summary["drones_lost"] == 0
    assert summary["link_bad_input"] == 0
    with RunLog(db) as log:
        failed = list(log.events("link_command_failed"))
        launched = {e.drone for e in log.events("mode") if e.data["to"] == "TAKEOFF"}
        landed = {e.drone for e in log.events("landed")}
    assert not failed, failed[:3]
    # the plan flies about a hundred of the 300 (more would only queue at the pads); every one
    # that took off came down again
    assert len(launched) > 50
    assert landed == launched
