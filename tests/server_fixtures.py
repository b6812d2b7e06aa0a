"""A mission flown live behind the operator server, for the server's tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient

from skysweep.plan import Plan
from skysweep.server import LiveMission, create_app, sim_flight
from skysweep.server.auth import create_token
from skysweep.server.tiles import TileSource

SECRET = b"0123456789abcdef0123456789abcdef"

#: A small search with a camera that raises false alarms often, so detections come quickly, and
#: a probability map.
LIVE = """
name: live search
area: {type: Polygon, coordinates: [[[8.000, 46.500], [8.012, 46.500], [8.012, 46.509],
       [8.000, 46.509], [8.000, 46.500]]]}
keep_out:
  - name: cliff
    geometry: {type: Polygon, coordinates: [[[8.005, 46.503], [8.007, 46.503], [8.007, 46.506],
               [8.005, 46.506], [8.005, 46.503]]]}
launch_sites:
  - {name: base, lon: 8.002, lat: 46.501, pads: 4, launch_interval_s: 2}
fleet:
  - {model: quad, count: 6, launch_site: base, speed_mps: 10, endurance_s: 900, swath_m: 50}
weather: {wind_mps: 3, wind_from_deg: 200}
simulation: {false_alarms_per_hour: 60}
# a probability map for the search layers; the lawnmower and no confirmation flights, so the
# flight is the same as without one
search:
  allocation: uniform
  confirm_detections: false
  prior: {cell_m: 50, datum: {lon: 8.006, lat: 46.5045, sigma_m: 250}}
"""


def token(
    *roles: str, sub: str = "tester", ttl_s: float = 600.0, now_s: float | None = None
) -> str:
    return create_token(SECRET, sub, roles, time.time() if now_s is None else now_s, ttl_s)


def bearer(*roles: str, sub: str = "tester") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(*roles, sub=sub)}"}


@dataclass
class Served:
    client: TestClient
    live: LiveMission

    def wait(self, condition: str, check: object, timeout_s: float = 20.0) -> None:
        """Wait (wall time) until ``check()`` is true; fail naming ``condition``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {condition}")


@contextmanager
def served(
    plan: Plan, db: Path, speed: float = 10.0, tiles: TileSource | None = None, seed: int = 1
) -> Iterator[Served]:
    """``plan`` flown ``speed`` times faster than real time, served by a TestClient."""
    live = LiveMission(plan, sim_flight(plan, seed=seed, speed=speed), db)
    live.start()
    try:
        with TestClient(create_app(live, SECRET, tiles)) as client:
            yield Served(client, live)
    finally:
        live.stop()
