"""The operator map page in a real browser: Debian's Chromium driven by Playwright.

Each test flies the LIVE mission behind a real uvicorn server on 127.0.0.1 and opens the page
in headless Chromium (WebGL through SwiftShader): the page must load only with a token, draw
the drones where they are, show a drone's details on a click, send commands, and draw a
keep-out zone that re-plans the flight, list alerts; and it must never reach past 127.0.0.1
nor log an error. Without Chromium (``make browser`` installs it) the tests skip, saying why.
"""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import uvicorn
from pydantic import TypeAdapter
from server_fixtures import LIVE, SECRET, bearer, token

from skysweep import mission
from skysweep.bench.serve import CHROMIUM_ARGS
from skysweep.plan import Plan, plan_mission
from skysweep.server import LiveMission, create_app, sim_flight
from skysweep.sim.faults import Fault

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
# the browser first: without one, skip before flying any mission
pytestmark = pytest.mark.usefixtures("browser")

VIEWPORT = {"width": 1280, "height": 800}
#: Mission seconds per wall second: drones are up within a second or two, the mission lasts ~30 s.
SPEED = 10.0
WORKING = ["TRANSIT", "SWEEP"]
HOMEWARD = ["RETURN", "LANDING", "LANDED"]
WAIT_MS = 20_000

#: How many drones are in any of ``modes`` (names), per the page's own state.
COUNT_JS = """(modes) => {
  const s = window.skysweep.state, want = new Set(modes);
  let k = 0;
  for (const m of s.mode) if (want.has(s.modes[m])) k++;
  return k;
}"""

#: The page is up: session, map (with its layers) and the stream's first frames.
READY_JS = """() => {
  const s = window.skysweep;
  return !!(s && s.state.connected && s.state.ids.length && s.state.frame > 1
            && s.map && s.map.getSource('draw'));
}"""

#: Every drone on screen in the page's coordinates, with the drone layer's pixel under it.
#: Redrawn first, in the same task, so the pixels are those of these very positions.
DRONES_ON_SCREEN_JS = """() => {
  const s = window.skysweep, st = s.state, map = s.map;
  s.redraw();
  const layer = document.getElementById('drone-layer');
  const g = layer.getContext('2d');
  const dpr = window.devicePixelRatio || 1;
  const box = map.getContainer().getBoundingClientRect();
  const img = g.getImageData(0, 0, layer.width, layer.height).data;
  let painted = 0;
  for (let k = 3; k < img.length; k += 4) if (img[k] > 0) painted++;
  const drones = [];
  for (let i = 0; i < st.mode.length; i++) {
    const p = map.project([st.lon[i], st.lat[i]]);
    const px = Math.floor(p.x * dpr), py = Math.floor(p.y * dpr);
    const at = 4 * (py * layer.width + px);
    const inside = px >= 0 && py >= 0 && px < layer.width && py < layer.height;
    drones.push({
      id: st.ids[i], mode: st.modes[st.mode[i]], alt: st.alt[i],
      x: box.left + p.x, y: box.top + p.y, inside,
      rgba: inside ? Array.from(img.slice(at, at + 4)) : null,
    });
  }
  return {drones, painted, total: layer.width * layer.height, dpr,
          box: [box.left, box.top, box.right, box.bottom]};
}"""


#: The point of the map farthest from every drone and detection, in the page's coordinates.
EMPTY_SPOT_JS = """() => {
  const s = window.skysweep, st = s.state, map = s.map;
  const box = map.getContainer().getBoundingClientRect();
  const marks = [];
  for (let i = 0; i < st.mode.length; i++) marks.push(map.project([st.lon[i], st.lat[i]]));
  for (const d of st.detections) marks.push(map.project([d.lon, d.lat]));
  let best = null, room = -1;
  for (let x = 80; x < box.width - 40; x += 20) {
    for (let y = 80; y < box.height - 60; y += 20) {
      const r = Math.min(...marks.map((p) => Math.hypot(p.x - x, p.y - y)));
      if (r > room) { room = r; best = [box.left + x, box.top + y]; }
    }
  }
  return best;
}"""


# -- the browser ---------------------------------------------------------------------------------


def _chromium_path() -> str:
    path = os.environ.get("SKYSWEEP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.skip(f"no Chromium at {path} (run `make browser`, or set SKYSWEEP_CHROMIUM)")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = _chromium_path()
    pw = sync_api.sync_playwright().start()
    try:
        try:
            chromium = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        except Exception as exc:  # any launch failure means no browser tests here, not a bug
            pytest.skip(f"Chromium at {path} did not start: {str(exc)[:600]}")
        yield chromium
        chromium.close()
    finally:
        pw.stop()


# -- the server ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    path = tmp_path_factory.mktemp("live") / "live.yaml"
    path.write_text(LIVE)
    return plan_mission(mission.load(path))


@dataclass
class Live:
    base: str
    live: LiveMission

    def post(self, path: str, body: dict[str, Any], *roles: str) -> httpx.Response:
        return httpx.post(self.base + path, json=body, headers=bearer(*roles), timeout=10)

    def get(self, path: str) -> Any:
        r = httpx.get(self.base + path, headers=bearer("viewer"), timeout=10)
        r.raise_for_status()
        return r.json()


@pytest.fixture
def server(plan: Plan, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Live]:
    """The LIVE mission flown ``SPEED`` times faster than real time behind a real server, with
    the faults given as the fixture's (indirect) parameter."""
    faults = TypeAdapter(list[Fault]).validate_python(getattr(request, "param", []))
    flight = sim_flight(plan, seed=1, faults=faults, speed=SPEED)
    live = LiveMission(plan, flight, tmp_path / "run.db")
    live.start()  # before the app, which opens the run log the flight creates
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))  # a free port, held until the server takes the socket
            port = sock.getsockname()[1]
            config = uvicorn.Config(
                create_app(live, SECRET),
                host="127.0.0.1",
                port=port,
                log_level="warning",
                timeout_graceful_shutdown=2,
            )
            uv = uvicorn.Server(config)
            thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
            thread.start()
            try:
                deadline = time.monotonic() + 15
                while not uv.started:
                    if not thread.is_alive() or time.monotonic() > deadline:
                        raise RuntimeError("the server did not start")
                    time.sleep(0.02)
                yield Live(f"http://127.0.0.1:{port}", live)
            finally:
                uv.should_exit = True
                thread.join(10)
    finally:
        live.stop()


# -- a page ---------------------------------------------------------------------------------------


@dataclass
class Browsed:
    """An open page and what it did: its requests, console errors and dialogs."""

    page: Any
    urls: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    prompt_answer: str = ""

    def count(self, *modes: str) -> int:
        return int(self.page.evaluate(COUNT_JS, list(modes)))

    def wait(self, js: str, arg: Any = None, timeout_ms: int = WAIT_MS) -> Any:
        return self.page.wait_for_function(js, arg=arg, polling=100, timeout=timeout_ms)

    def check_clean(self, allow: tuple[str, ...] = ()) -> None:
        """Nothing went off this machine, and nothing failed in the page's scripts."""
        foreign = [u for u in self.urls if not _local(u)]
        assert not foreign, f"the page reached past 127.0.0.1: {foreign}"
        errors = [e for e in self.errors if not any(a in e for a in allow)]
        assert not errors, f"errors in the page: {errors}"


def _local(url: str) -> bool:
    if url.startswith("data:"):
        return True
    if url.startswith("blob:"):  # MapLibre's workers: blob:http://127.0.0.1:PORT/uuid
        url = url[5:]
    return urlsplit(url).hostname == "127.0.0.1"


@pytest.fixture
def open_page(browser: Any, server: Live) -> Iterator[Any]:
    """Opens the page with a token of ``roles`` and waits until it shows the fleet."""
    contexts: list[Any] = []

    def opener(*roles: str) -> Browsed:
        context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        contexts.append(context)
        page = context.new_page()
        b = Browsed(page)
        context.on("request", lambda r: b.urls.append(r.url))
        page.on("websocket", lambda ws: b.urls.append(ws.url))
        page.on("console", lambda m: m.type == "error" and b.errors.append(m.text))
        page.on("pageerror", lambda e: b.errors.append(f"uncaught: {e}"))

        def on_dialog(d: Any) -> None:
            b.dialogs.append(f"{d.type}: {d.message}")
            d.accept(b.prompt_answer) if d.type == "prompt" else d.accept()

        page.on("dialog", on_dialog)
        response = page.goto(f"{server.base}/?token={token(*roles)}")
        assert response is not None and response.status == 200
        b.wait(READY_JS)
        return b

    yield opener
    for context in contexts:
        context.close()


def _screenshot(page: Any) -> np.ndarray:
    from PIL import Image

    png = page.screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def _pause(server: Live, b: Browsed) -> None:
    """Hold the fleet where it is, once spread out, and wait until the page sees it hover."""
    b.wait(f"() => ({COUNT_JS})(['SWEEP']) >= 2")
    r = server.post("/api/commands", {"command": "pause"}, "operator")
    assert r.status_code == 200 and r.json()["result"].startswith("ok"), r.text
    b.wait(f"() => ({COUNT_JS})(['HOLD']) >= 2 && ({COUNT_JS})({WORKING!r}) === 0")
    # braking to a hover takes a few seconds; then a drone wanders a metre or so at most
    b.wait(
        """() => {
          const st = window.skysweep.state, w = window.__still || (window.__still = {});
          const now = performance.now();
          if (w.lon && now - w.at < 1000) return false;
          const still = w.lon && st.lon.every((v, i) => Math.abs(v - w.lon[i]) < 3e-5
                                              && Math.abs(st.lat[i] - w.lat[i]) < 3e-5);
          Object.assign(w, {lon: st.lon.slice(), lat: st.lat.slice(), at: now});
          return !!still;
        }"""
    )


# -- the tests ------------------------------------------------------------------------------------


def test_the_page_loads_with_a_token_and_refuses_without(
    browser: Any, server: Live, open_page: Any
) -> None:
    b = open_page("viewer")
    page = b.page
    b.wait(
        "() => document.querySelector('#drone-total').textContent === '6'"
        " && document.querySelector('#mission-state').textContent === 'RUNNING'"
    )
    assert page.locator("#mission-name").inner_text() == "live search"
    assert "viewer" in page.locator("#session-user").inner_text()
    assert any(u.endswith("/static/vendor/maplibre-gl.js") for u in b.urls)
    assert any(u.startswith(server.base.replace("http", "ws") + "/api/stream") for u in b.urls)
    b.check_clean()

    # another browser, without the page's cookie: no token, or a forged one, gets nothing
    stranger = browser.new_context()
    try:
        page = stranger.new_page()
        head, payload, sig = token("viewer", "operator", "safety").split(".")
        for url in (f"{server.base}/", f"{server.base}/?token={head}.{payload}.{sig[::-1]}"):
            r = page.goto(url)
            assert r is not None and r.status == 401, url
            assert "maplibre" not in page.content()
        r = page.goto(f"{server.base}/static/app.js")
        assert r is not None and r.status == 401
    finally:
        stranger.close()


def test_drones_appear_move_and_are_drawn_where_they_are(
    plan: Plan, server: Live, open_page: Any
) -> None:
    b = open_page("viewer")
    assert b.page.evaluate("() => window.skysweep.state.ids") == list(plan.mission.fleet.ids)
    b.page.evaluate(
        "() => { const s = window.skysweep.state;"
        " window.__first = {lon: s.lon.slice(), lat: s.lat.slice(), frame: s.frame}; }"
    )
    b.wait(
        """() => {
          const s = window.skysweep.state, f = window.__first;
          return s.frame >= f.frame + 3 && s.lon.some((v, i) =>
            Math.hypot(v - f.lon[i], s.lat[i] - f.lat[i]) > 1e-5);
        }"""
    )
    _pause(server, b)
    seen = b.page.evaluate(DRONES_ON_SCREEN_JS)
    drones = seen["drones"]
    assert all(d["inside"] for d in drones), drones
    # every drone has its marker painted on the drone layer, and the layer is mostly clear
    for d in drones:
        assert d["rgba"][3] >= 200, f"nothing drawn where {d['id']} is: {d}"
    assert 0 < seen["painted"] < 0.05 * seen["total"], seen["painted"]
    # and the layer is what one sees: hiding it takes the markers off the screenshot
    shown = _screenshot(b.page)
    b.page.evaluate("() => { document.getElementById('drone-layer').style.visibility = 'hidden'; }")
    hidden = _screenshot(b.page)
    b.page.evaluate("() => { document.getElementById('drone-layer').style.visibility = ''; }")
    diff = np.abs(shown - hidden).max(axis=2)
    for d in drones:
        x, y = math.floor(d["x"]), math.floor(d["y"])
        assert diff[y - 4 : y + 5, x - 4 : x + 5].max() > 60, f"{d['id']} is not on screen"
    assert (diff > 30).mean() < 0.05
    ms = b.page.evaluate("() => window.skysweep.measureRedraw()")
    assert 0 <= ms < 100, ms  # six drones: a redraw is nearly free
    b.check_clean()


def test_a_click_on_a_drone_shows_its_details(server: Live, open_page: Any) -> None:
    b = open_page("viewer")
    _pause(server, b)
    seen = b.page.evaluate(DRONES_ON_SCREEN_JS)
    drones, (left, top, right, bottom) = seen["drones"], seen["box"]

    def room(d: dict[str, Any]) -> float:
        # a click takes the nearest marker within 12 px; keep off the map's controls too
        if not (left + 60 < d["x"] < right - 20 and top + 60 < d["y"] < bottom - 40):
            return 0.0
        return min(math.hypot(d["x"] - o["x"], d["y"] - o["y"]) for o in drones if o is not d)

    target = max((d for d in drones if d["mode"] == "HOLD"), key=room)
    assert room(target) > 10, f"no held drone stands clear of the others: {drones}"
    assert b.page.locator("#drone-details").is_hidden()
    b.page.mouse.click(target["x"], target["y"])
    details = b.page.locator("#drone-details")
    sync_api.expect(details).to_be_visible(timeout=5000)
    sync_api.expect(details.locator(".drone-id")).to_have_text(target["id"], timeout=10_000)
    sync_api.expect(details).to_contain_text("HOLD")
    assert b.page.evaluate("() => Array.from(window.skysweep.state.selected)") == [target["id"]]
    # a click on empty map (clear of drones and detections) clears it again
    x, y = b.page.evaluate(EMPTY_SPOT_JS)
    b.page.mouse.click(x, y)
    sync_api.expect(details).to_be_hidden(timeout=5000)
    b.check_clean()


def test_all_home_changes_the_drones_modes_in_the_stream(server: Live, open_page: Any) -> None:
    b = open_page("operator")
    b.wait(f"() => ({COUNT_JS})({WORKING!r}) >= 2")
    b.page.click("#cmd-home")
    sync_api.expect(b.page.locator("#status")).to_contain_text("home (all drones): ok")
    b.wait(f"() => ({COUNT_JS})({WORKING!r}) === 0 && ({COUNT_JS})({HOMEWARD!r}) > 0")
    ops = server.get("/api/events?kind=operator")
    assert [e["data"]["command"] for e in ops] == ["home"]
    assert ops[0]["data"]["by"] == "tester" and ops[0]["data"]["roles"] == ["operator"]
    b.check_clean()


def test_a_keep_out_zone_drawn_on_the_map_replans(server: Live, open_page: Any) -> None:
    b = open_page("operator", "safety")
    b.prompt_answer = "smoke"
    before = b.wait(
        "() => { const s = window.skysweep.state;"
        " return s.planVersion != null && s.planVersion === s.framePlanVersion"
        " && {v: s.planVersion}; }"
    ).json_value()["v"]
    assert server.get("/api/plan")["version"] == before
    ring = [[8.001, 46.5065], [8.011, 46.5065], [8.011, 46.508], [8.001, 46.508]]
    box = b.page.evaluate(
        "(ring) => { const m = window.skysweep.map, r = m.getContainer().getBoundingClientRect();"
        " return ring.map((ll) => { const p = m.project(ll);"
        " return [r.left + p.x, r.top + p.y]; }); }",
        ring,
    )
    b.page.click("#draw-zone")
    sync_api.expect(b.page.locator("#draw-zone")).to_have_class("active")
    for x, y in box[:-1]:
        b.page.mouse.click(x, y)
    b.page.mouse.dblclick(*box[-1])  # the last corner, and done
    sync_api.expect(b.page.locator("#status")).to_contain_text('add zone "smoke": ok')
    assert b.dialogs and b.dialogs[0].startswith("prompt")
    b.wait("(v) => window.skysweep.state.planVersion > v", before)
    assert server.get("/api/plan")["version"] > before
    zones = {
        f["properties"]["name"]: f["geometry"]["coordinates"][0]
        for f in server.get("/api/mission")["features"]["features"]
        if f["properties"]["kind"] == "keep_out"
    }
    assert set(zones) == {"cliff", "smoke"}
    # the corners clicked are the corners sent (to a pixel or so)
    drawn = np.array(zones["smoke"])
    assert len(drawn) == 5 and np.allclose(drawn[0], drawn[-1]), drawn.tolist()
    gaps = np.abs(drawn[:-1, None, :] - np.array(ring)[None, :, :]).max(axis=2)
    assert gaps.min(axis=0).max() < 5e-5, drawn.tolist()  # the server may turn the ring round
    sync_api.expect(b.page.locator('#zones .zone[data-name="smoke"]')).to_be_visible()
    b.check_clean()


def test_a_viewer_is_refused_commands_and_the_drones_fly_on(server: Live, open_page: Any) -> None:
    b = open_page("viewer")
    b.wait(f"() => ({COUNT_JS})({WORKING!r}) >= 2")
    b.page.click("#cmd-home")
    status = b.page.locator("#status")
    sync_api.expect(status).to_contain_text("403")
    sync_api.expect(status).to_have_class("error")
    frame = b.page.evaluate("() => window.skysweep.state.frame")
    b.wait("(f) => window.skysweep.state.frame >= f + 4", frame)
    assert b.count(*WORKING) >= 2
    assert server.get("/api/events?kind=operator") == []
    refused = server.get("/api/events?kind=command_refused")
    assert [(e["data"]["path"], e["data"]["status"]) for e in refused] == [("/api/commands", 403)]
    # the browser's own note of the refused request is the only error
    b.check_clean(allow=("status of 403",))


#: quad-002 goes silent at 25 s for 20 s: LINK, then LOST, then back.
LINK_LOST = [{"kind": "link_lost", "at_s": 25, "drone": "quad-002", "duration_s": 20}]


@pytest.mark.parametrize("server", [LINK_LOST], ids=["link-lost"], indirect=True)
def test_alerts_are_listed_and_lead_to_their_drone(server: Live, open_page: Any) -> None:
    b = open_page("viewer")
    # before the fault: the last summary, shown, has no alerts; the panel should say so
    quiet = b.wait(
        """() => {
          const s = window.skysweep.state.summary;
          const shown = document.querySelector('#frame-no').textContent;
          if (!s || shown !== String(s.frame) || s.alerts.length) return false;
          return {t: s.t_s, rows: document.querySelectorAll('#alerts .alert').length,
                  empty: !!document.querySelector('#alerts .empty')};
        }"""
    ).json_value()
    assert quiet["rows"] == 0, quiet
    row = b.page.locator('#alerts .alert[data-drone="quad-002"]').filter(
        has=b.page.locator(".kind", has_text=re.compile("^(LINK|LOST)$"))
    )
    sync_api.expect(row).to_be_visible(timeout=WAIT_MS)
    b.wait(
        """() => {
          const s = window.skysweep.state.summary;
          const rows = document.querySelectorAll('#alerts .alert').length;
          return rows === Math.min(50, s.alerts.length);
        }"""
    )
    row.click()
    sync_api.expect(b.page.locator("#drone-details .drone-id")).to_have_text("quad-002")
    sync_api.expect(b.page.locator("#drone-details")).to_contain_text(re.compile("LINK|LOST"))
    assert b.page.evaluate("() => Array.from(window.skysweep.state.selected)") == ["quad-002"]
    # the link comes back: the alert goes, and the panel says there are none
    b.wait(
        "() => window.skysweep.state.summary.alerts.length === 0"
        " && !document.querySelector('#alerts .alert')"
        " && !!document.querySelector('#alerts .empty')"
    )
    b.check_clean()
    assert quiet["empty"], "'no alerts' must show before any alert has come and gone"


def test_the_probability_map_is_a_heat_layer_beside_the_search_pos(
    server: Live, open_page: Any
) -> None:
    b = open_page("viewer")
    layer = "() => { const m = window.skysweep.map; return m.getLayer('search-heat') ? "
    layer += "m.getLayoutProperty('search-heat', 'visibility') || 'visible' : null; }"
    b.wait(f"() => !document.getElementById('search-panel').hidden && ({layer})() === 'visible'")
    # the search's POS so far, and its course over time, once the cameras have swept a little
    b.wait("() => /^\\d+\\.\\d %$/.test(document.getElementById('search-pos').textContent)")
    b.wait("() => document.getElementById('search-line').getAttribute('points').includes(' ')")
    src = "() => window.skysweep.map.getSource('search-heat').url"
    assert "/api/search/poc.png" in b.page.evaluate(src)
    b.page.select_option("#search-layer", "off")
    b.wait(f"() => ({layer})() === 'none'")
    b.page.select_option("#search-layer", "pod")
    b.wait(f"() => ({layer})() === 'visible'")
    b.wait(f"() => ({src})().includes('/api/search/pod.png')")
    b.check_clean()
