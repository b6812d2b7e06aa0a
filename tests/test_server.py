"""The operator server end to end: a simulated mission flown live behind the real FastAPI app.

Every route is walked with no token, forged and expired tokens, and every role; the stream's
binary frames are decoded; commands and zones reach the flight and are audited in the log.
"""

from __future__ import annotations

import io
import json
import re
import sqlite3
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from server_fixtures import LIVE, SECRET, bearer, served, token
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect
from typer.testing import CliRunner

from skysweep import mission
from skysweep.cli import app as cli
from skysweep.errors import AuthError
from skysweep.plan import Plan, plan_mission
from skysweep.server.app import Role
from skysweep.server.auth import ROLES, create_token, load_secret, verify_token
from skysweep.server.frames import BYTES_PER_DRONE, HEADER_BYTES, decode_frame


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    path = tmp_path_factory.mktemp("live") / "live.yaml"
    path.write_text(LIVE)
    return plan_mission(mission.load(path))


def _events(db: Path, kind: str) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT data FROM events WHERE kind = ? ORDER BY id", (kind,)).fetchall()
    return [json.loads(r[0]) for r in rows]


# -- tokens ------------------------------------------------------------------------------------


def test_tokens_are_signed_carry_roles_and_expire() -> None:
    t = create_token(SECRET, "ic", ("operator", "safety"), now_s=1000.0, ttl_s=60.0)
    who = verify_token(SECRET, t, now_s=1059.0)
    assert who.sub == "ic" and who.roles == {"operator", "safety"}
    with pytest.raises(AuthError, match="expired"):
        verify_token(SECRET, t, now_s=1060.0)
    with pytest.raises(AuthError, match="signature"):
        verify_token(b"another secret, as long as it is", t, now_s=1000.0)
    head, payload, sig = t.split(".")
    # a viewer token promoted by hand: the signature no longer matches
    forged = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    with pytest.raises(AuthError):
        verify_token(SECRET, f"{head}.{forged}.{sig}", now_s=1000.0)
    with pytest.raises(AuthError, match="roles"):
        create_token(SECRET, "x", ("admin",), 0.0, 60.0)


def test_token_cli_prints_a_token_the_server_accepts(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    r = CliRunner().invoke(
        cli, ["token", "create", "--role", "viewer", "--name", "press", "--secret", str(secret)]
    )
    assert r.exit_code == 0, r.output
    who = verify_token(load_secret(secret), r.output.strip(), time.time())
    assert who.sub == "press" and who.roles == {"viewer"}
    assert secret.stat().st_mode & 0o777 == 0o600
    bad = CliRunner().invoke(cli, ["token", "create", "--role", "pilot", "--secret", str(secret)])
    assert bad.exit_code == 2 and "roles must be some of viewer, operator, safety" in bad.output


# -- every route declares its roles and enforces them -----------------------------------------


def _roles_of(route: Any) -> frozenset[str] | None:
    for dep in route.dependant.dependencies:
        if isinstance(dep.call, Role):
            return dep.call.roles
    return None


def undeclared(app: FastAPI) -> list[str]:
    """Routes with no :class:`Role` dependency: each is a hole in the server's auth."""
    return [
        getattr(r, "path", repr(r))
        for r in app.routes
        if not isinstance(r, APIRoute | APIWebSocketRoute) or _roles_of(r) is None
    ]


_SAMPLE = {
    "path": "app.js",
    "drone_id": "quad-000",
    "number": "1",
    "verdict": "confirm",
    "layer": "poc",
    "name": "no-such-zone",
    "z": "0",
    "x": "0",
    "y": "0",
}


def test_a_route_without_declared_roles_is_caught(plan: Plan, tmp_path: Path) -> None:
    with served(plan, tmp_path / "run.db") as s:
        app = s.client.app
        assert isinstance(app, FastAPI)
        assert undeclared(app) == []

        @app.get("/api/forgotten")
        async def forgotten() -> dict[str, str]:
            return {}

        assert undeclared(app) == ["/api/forgotten"]


def test_every_route_refuses_missing_forged_expired_tokens_and_wrong_roles(
    plan: Plan, tmp_path: Path
) -> None:
    with served(plan, tmp_path / "run.db", speed=2.0) as s:
        app = s.client.app
        assert isinstance(app, FastAPI)
        assert undeclared(app) == []
        good = token("viewer")
        head, payload, sig = good.split(".")
        other = create_token(b"some other server's secret 12345", "x", ROLES, time.time(), 60)
        bad_tokens = {
            "none": None,
            "garbage": "not-a-token",
            "forged": f"{head}.{payload}.{sig[::-1]}",
            "other server": other,
            "expired": token(*ROLES, now_s=time.time() - 7200, ttl_s=3600),
        }
        walked = 0
        for route in app.routes:
            allowed = _roles_of(route)
            assert allowed is not None
            path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: _SAMPLE[m.group(1)], route.path)
            if isinstance(route, APIWebSocketRoute):
                for why, t in bad_tokens.items():
                    q = f"?token={t}" if t else ""
                    with (
                        pytest.raises(WebSocketDenialResponse) as denied,
                        s.client.websocket_connect(path + q),
                    ):
                        pass
                    assert denied.value.status_code == 401, (path, why)
                for role in ROLES:
                    with s.client.websocket_connect(f"{path}?token={token(role)}") as ws:
                        assert ws.receive_json()["type"] == "hello"
                walked += 1
                continue
            assert isinstance(route, APIRoute)
            for method in route.methods:
                body = {"command": "pause"} if path == "/api/commands" else None
                if path == "/api/zones":
                    body = {"name": "z", "geometry": {"type": "Point", "coordinates": [8, 46]}}
                for why, t in bad_tokens.items():
                    h = {"Authorization": f"Bearer {t}"} if t else {}
                    r = s.client.request(method, path, headers=h, json=body)
                    assert r.status_code == 401, (method, path, why, r.text)
                    assert r.headers.get("www-authenticate") == "Bearer"
                for role in ROLES:
                    r = s.client.request(method, path, headers=bearer(role), json=body)
                    if role in allowed:
                        assert r.status_code not in (401, 403), (method, path, role, r.text)
                    else:
                        assert r.status_code == 403, (method, path, role, r.text)
                        assert "needed" in r.json()["detail"]
                walked += 1
        assert walked >= 20
        # the refusals of routes that change something are in the log, with who
        refused = _events(tmp_path / "run.db", "command_refused")
        statuses = {(e["path"], e["status"], e["by"]) for e in refused}
        assert ("/api/commands", 401, "anonymous") in statuses
        assert ("/api/commands", 403, "tester") in statuses
        assert ("/api/zones", 403, "tester") in statuses


def test_the_page_sets_a_cookie_that_authorises_its_scripts(plan: Plan, tmp_path: Path) -> None:
    with served(plan, tmp_path / "run.db") as s:
        assert s.client.get("/").status_code == 401
        assert s.client.get("/static/app.js").status_code == 401
        r = s.client.get(f"/?token={token('viewer')}")
        assert r.status_code == 200 and "<html" in r.text.lower()
        assert "httponly" in r.headers["set-cookie"].lower()
        js = s.client.get("/static/vendor/maplibre-gl.js")  # the cookie is sent
        assert js.status_code == 200 and "javascript" in js.headers["content-type"]
        assert s.client.get("/static/../app.py").status_code == 404
        # nothing on the page points off this server
        assert not re.search(r"(src|href)=\"https?://", r.text)


# -- the stream --------------------------------------------------------------------------------


def test_stream_sends_compact_frames_of_the_whole_fleet_that_move(
    plan: Plan, tmp_path: Path
) -> None:
    n = len(plan.mission.fleet)
    with served(plan, tmp_path / "run.db", speed=10.0) as s:
        with s.client.websocket_connect(f"/api/stream?token={token('viewer')}") as ws:
            hello = ws.receive_json()
            assert hello["ids"] == list(plan.mission.fleet.ids)
            assert hello["modes"][3] == "SWEEP" and hello["alerts"][0] == "LOST"
            frames: list[dict[str, Any]] = []
            summary: dict[str, Any] = {}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                raw = ws.receive_bytes()
                assert len(raw) == HEADER_BYTES + BYTES_PER_DRONE * n
                frames.append(decode_frame(raw))
                summary = ws.receive_json()
                assert summary["type"] == "summary" and summary["frame"] == frames[-1]["frame"]
                if summary["counts"]["SWEEP"] > 0 and len(frames) > 5:
                    break
        first, last = frames[0], frames[-1]
        assert last["frame"] > first["frame"] and last["t_s"] > first["t_s"]
        moved = np.hypot(last["lon"] - first["lon"], last["lat"] - first["lat"])
        assert (moved > 1e-5).sum() >= 1  # drones fly
        bounds = s.client.get("/api/mission", headers=bearer("viewer")).json()["bounds"]
        w, south, e, north = bounds
        assert np.all((last["lon"] > w - 0.01) & (last["lon"] < e + 0.01))
        assert np.all((last["lat"] > south - 0.01) & (last["lat"] < north + 0.01))
        assert sum(summary["counts"].values()) == n
        assert 0.0 <= summary["progress"] <= 1.0


# -- commands ----------------------------------------------------------------------------------


def test_all_home_reaches_the_drones_and_is_audited(plan: Plan, tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    with served(plan, db, speed=10.0) as s:
        s.wait("drones at work", lambda: _counts(s)["SWEEP"] + _counts(s)["TRANSIT"] >= 2)
        r = s.client.post("/api/commands", json={"command": "home"}, headers=bearer("operator"))
        assert r.status_code == 200 and r.json()["result"].startswith("ok")
        s.wait(
            "the fleet homeward",
            lambda: (
                _counts(s)["SWEEP"] + _counts(s)["TRANSIT"] == 0
                and _counts(s)["RETURN"] + _counts(s)["LANDING"] + _counts(s)["LANDED"] > 0
            ),
        )
        # a selection: one drone landed where it is
        r = s.client.post(
            "/api/commands",
            json={"command": "land", "drones": ["nobody"]},
            headers=bearer("operator", sub="ops-2"),
        )
        assert r.status_code == 422 and "drones[0]" in r.json()["detail"]
        bad = s.client.post("/api/commands", json={"command": "fire"}, headers=bearer("operator"))
        assert bad.status_code == 422
    ops = _events(db, "operator")
    assert ops[0]["command"] == "home" and ops[0]["by"] == "tester"
    assert ops[0]["roles"] == ["operator"] and ops[0]["result"].startswith("ok")
    refused = _events(db, "command_refused")
    assert any(e["by"] == "ops-2" and e["status"] == 422 for e in refused)
    assert any("command" in e["result"] for e in refused if e["status"] == 422)


def _counts(s: Any) -> dict[str, int]:
    snap = s.live.latest()
    return (
        snap.summary["counts"]
        if snap is not None
        else dict.fromkeys(["SWEEP", "TRANSIT", "RETURN", "LANDING", "LANDED"], 0)
    )


def test_a_zone_drawn_by_safety_replans_and_can_be_lifted(plan: Plan, tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    ring = [[8.001, 46.5065], [8.011, 46.5065], [8.011, 46.508], [8.001, 46.508], [8.001, 46.5065]]
    zone = {"name": "smoke", "geometry": {"type": "Polygon", "coordinates": [ring]}}
    with served(plan, db, speed=5.0) as s:
        before = s.client.get("/api/plan", headers=bearer("viewer")).json()["version"]
        r = s.client.post("/api/zones", json=zone, headers=bearer("operator"))
        assert r.status_code == 403  # operators fly drones; safety draws zones
        r = s.client.post("/api/zones", json=zone, headers=bearer("safety"))
        assert r.status_code == 200 and r.json()["result"].startswith("ok"), r.text
        mission_now = s.client.get("/api/mission", headers=bearer("viewer")).json()
        names = [f["properties"].get("name") for f in mission_now["features"]["features"]]
        assert "smoke" in names and "cliff" in names
        # the zone is in force at once; the routes round it follow within the tick
        deadline = time.monotonic() + 5.0
        while True:
            after = s.client.get("/api/plan", headers=bearer("viewer")).json()
            if after["version"] > before or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert after["version"] > before
        # no sortie of the new plan crosses the zone
        import shapely

        poly = shapely.Polygon(ring)
        for f in after["features"]:
            line = shapely.LineString([c[:2] for c in f["geometry"]["coordinates"]])
            assert not line.intersects(poly.buffer(-1e-5)), f["properties"]
        bad = s.client.post(
            "/api/zones",
            json={"name": "x", "geometry": {"type": "Polygon", "coordinates": [[[8, 46]]]}},
            headers=bearer("safety"),
        )
        assert bad.status_code == 422 and "geometry" in bad.json()["detail"]
        gone = s.client.delete("/api/zones/smoke", headers=bearer("safety"))
        assert gone.status_code == 200 and gone.json()["result"] == "ok"
        assert s.client.delete("/api/zones/smoke", headers=bearer("safety")).status_code == 404
    ops = [e["command"] for e in _events(db, "operator")]
    assert ops == ["add_keep_out", "remove_keep_out"]


def test_detections_are_listed_and_judged_by_an_operator(plan: Plan, tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    with served(plan, db, speed=20.0) as s:
        s.wait(
            "two detections",
            lambda: len(s.client.get("/api/detections", headers=bearer("viewer")).json()) >= 2,
            timeout_s=60,
        )
        found = s.client.get("/api/detections", headers=bearer("viewer")).json()
        assert {d["status"] for d in found} == {"new"}
        assert all(d["lon"] is not None and d["drone"] for d in found)
        one, two = found[0]["id"], found[1]["id"]
        h = bearer("operator")
        # the mission has a probability map (one missing person): a confirmation ends the search
        said = s.client.post(f"/api/detections/{one}/confirm", headers=h).json()["result"]
        assert said.startswith("ok: found") and "called home" in said
        assert s.client.post(f"/api/detections/{two}/dismiss", headers=h).json()["result"] == "ok"
        assert s.client.post("/api/detections/9999/dismiss", headers=h).status_code == 404
        status = {
            d["id"]: d["status"]
            for d in s.client.get("/api/detections", headers=bearer("viewer")).json()
        }
        assert status[one] == "confirmed" and status[two] == "dismissed"


def test_fleet_drone_coverage_and_events_routes(plan: Plan, tmp_path: Path) -> None:
    with served(plan, tmp_path / "run.db", speed=10.0) as s:
        h = bearer("viewer")
        s.wait("coverage", lambda: s.live.latest() and s.live.latest().summary["progress"] > 0)
        fleet = s.client.get("/api/fleet", headers=h).json()
        assert [d["id"] for d in fleet["drones"]] == list(plan.mission.fleet.ids)
        d0 = s.client.get(f"/api/fleet/{fleet['drones'][0]['id']}", headers=h).json()
        assert d0["failsafe"]["action"] == "NONE" and d0["events"][0]["kind"] == "launch"
        assert s.client.get("/api/fleet/nobody", headers=h).status_code == 404
        cov = s.client.get("/api/coverage", headers=h).json()
        assert len(cov["corners"]) == 4 and cov["fraction"] > 0
        png = s.client.get(cov["image"], headers=h)
        assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
        ev = s.client.get("/api/events?limit=2", headers=h).json()
        assert [e["kind"] for e in ev] == ["authorised", "mission_start"]
        more = s.client.get(f"/api/events?after={ev[-1]['id']}&kind=launch", headers=h).json()
        assert more and all(e["kind"] == "launch" for e in more)
        assert s.client.get("/api/events?limit=0", headers=h).status_code == 422
        schema = s.client.get("/api/openapi.json", headers=h).json()
        assert "/api/commands" in schema["paths"]


def test_the_search_route_gives_pos_over_time_and_the_maps_heat_images(
    plan: Plan, tmp_path: Path
) -> None:
    from PIL import Image

    with served(plan, tmp_path / "run.db", speed=20.0) as s:
        h = bearer("viewer")

        def pos() -> float:
            snap = s.live.latest()
            return (snap.summary.get("pos") or 0.0) if snap is not None else 0.0

        s.wait("search effort", lambda: pos() > 0.01)
        s.wait("two POS points", lambda: len(s.live.pos_history) >= 2)
        r = s.client.get("/api/search", headers=h).json()
        assert 0 < r["pos"] < r["poa_total"] <= 1 and r["found"] is None
        hist = r["pos_history"]
        assert len(hist) >= 2 and all(b[0] > a[0] and b[1] >= a[1] for a, b in pairwise(hist))
        assert len(r["corners"]) == 4 and set(r["images"]) == {"poc", "poa", "pod"}
        g = s.live.orch.prior
        for layer, url in r["images"].items():
            png = s.client.get(url, headers=h)
            assert png.status_code == 200, layer
            img = np.asarray(Image.open(io.BytesIO(png.content)))
            assert img.shape[:2] == g.shape, layer
            # transparent where nothing can be searched (the cliff), opaque elsewhere
            alpha = img[::-1, :, 3]  # the image is north up; the grid's row 0 is south
            assert np.array_equal(alpha > 0, g.area_m2 > 0), layer
        assert s.client.get("/api/search/nope.png", headers=h).status_code == 404


def test_the_search_route_is_404_without_a_probability_map(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(LIVE.split("# a probability map")[0])
    p = plan_mission(mission.load(path))
    with served(p, tmp_path / "run.db", speed=10.0) as s:
        s.wait("first tick", lambda: s.live.latest() is not None)
        r = s.client.get("/api/search", headers=bearer("viewer"))
        assert r.status_code == 404 and "search.prior" in r.json()["detail"]
        assert s.live.latest().summary["pos"] is None


def test_commands_to_a_finished_mission_are_refused_with_409(plan: Plan, tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    with served(plan, db, speed=10.0) as s:
        s.live.stop()
        r = s.client.post("/api/commands", json={"command": "pause"}, headers=bearer("operator"))
        assert r.status_code == 409
    assert _events(db, "command_refused")[-1]["status"] == 409


def test_stream_survives_a_viewer_that_leaves(plan: Plan, tmp_path: Path) -> None:
    with served(plan, tmp_path / "run.db") as s:
        for _ in range(3):
            with s.client.websocket_connect(f"/api/stream?token={token('viewer')}") as ws:
                ws.receive_json()
                ws.receive_bytes()
        with s.client.websocket_connect(f"/api/stream?token={token('viewer')}") as ws:
            assert ws.receive_json()["type"] == "hello"
        with (
            pytest.raises((WebSocketDenialResponse, WebSocketDisconnect)),
            s.client.websocket_connect("/api/stream"),
        ):
            pass
