"""The operator server: REST routes, the WebSocket stream of the fleet, and the map page.

Every route declares the roles that may use it with a :class:`Role` dependency; a route
without one is a bug (a test walks them all). Commands reach the flight only through the run
log's command queue, and every command, accepted or refused, lands in the log's events with
who gave it. The routes and the stream are in docs/server.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import mimetypes
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated, Any, Literal

import numpy as np
import shapely
from fastapi import (
    Depends,
    FastAPI,
    HTTPException,
    Query,
    Request,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection

from skysweep.errors import AuthError, MissionError
from skysweep.export import plan_to_geojson
from skysweep.mission import zone_from_geojson
from skysweep.runtime.modes import FlightMode
from skysweep.safety.failsafe import Action, Cause
from skysweep.search.effort import pod
from skysweep.server.auth import Principal, verify_token
from skysweep.server.frames import Alert
from skysweep.server.live import LiveMission
from skysweep.server.tiles import TileInfo, TileSource

COOKIE = "skysweep_token"
#: How long a command's answer waits for the flight to carry it out, wall seconds.
COMMAND_WAIT_S = 5.0
#: Routes that change something: their refusals are audited too.
_MUTATING = ("POST", "PUT", "PATCH", "DELETE")
_STATIC = resources.files("skysweep.server") / "static"

VIEW = ("viewer", "operator", "safety")
_MODE_NAMES = [m.name for m in FlightMode]
_ALERT_NAMES = np.array([a.name for a in Alert])
_ALERT_BITS = np.array([int(a) for a in Alert])
COMMAND = ("operator",)
ZONES = ("safety",)
#: The probability map's layers the map page can show (see Server.search_png).
SEARCH_LAYERS = ("poc", "poa", "pod")


class Role:
    """Dependency: the caller's principal, who must hold one of ``roles``.

    No token, or a forged or expired one: 401. A valid one without the role: 403. A refused
    request to a route that changes something is written to the event log."""

    def __init__(self, *roles: str) -> None:
        self.roles = frozenset(roles)

    async def __call__(self, conn: HTTPConnection) -> Principal:
        server: Server = conn.app.state.server
        token = _token_of(conn)
        try:
            if token is None:
                raise AuthError("no token (give one as 'Authorization: Bearer TOKEN')")
            who = verify_token(server.secret, token, time.time())
        except AuthError as exc:
            server.refused(conn, "anonymous", [], 401, str(exc))
            raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
        if not who.roles & self.roles:
            need, has = "/".join(sorted(self.roles)), ", ".join(sorted(who.roles))
            why = f"role {need} needed; the token has {has}"
            server.refused(conn, who.sub, sorted(who.roles), 403, why)
            raise HTTPException(403, why)
        return who


def _token_of(conn: HTTPConnection) -> str | None:
    auth = conn.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return conn.query_params.get("token") or conn.cookies.get(COOKIE)


Viewer = Annotated[Principal, Depends(Role(*VIEW))]
Operator = Annotated[Principal, Depends(Role(*COMMAND))]
Safety = Annotated[Principal, Depends(Role(*ZONES))]


class CommandBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: Literal["pause", "resume", "home", "land", "abort"]
    drones: list[str] | None = Field(
        default=None, description="Fleet ids (resume, home, land); null: all drones."
    )


class ZoneBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    geometry: dict[str, Any] = Field(description="GeoJSON Polygon or MultiPolygon, lon/lat.")


class Hub:
    """Wakes every stream when the flight publishes a tick (called in the event loop)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout_s: float) -> None:
        event = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)


class Server:
    """What the routes share: the flight, the secret, the tiles and a connection to the log."""

    def __init__(self, live: LiveMission, secret: bytes, tiles: TileSource | None) -> None:
        self.live = live
        self.secret = secret
        self.tiles = tiles
        self.hub = Hub()
        # the server's own connection to the run log (the flight has another): reads events,
        # queues commands, writes refusals; used from the event loop's thread only
        self.db = sqlite3.connect(live.log_path, timeout=10.0, check_same_thread=False)
        self._plan_cache: tuple[int, bytes] | None = None
        self._png_cache: tuple[int, float, bytes] | None = None
        self._search_cache: dict[str, tuple[int, float, bytes]] = {}

    # -- the log -------------------------------------------------------------------------------

    def now_s(self) -> float:
        snap = self.live.latest()
        return snap.view.t_s if snap is not None else 0.0

    def refused(
        self, conn: HTTPConnection, who: str, roles: list[str], status: int, why: str
    ) -> None:
        """Audit a request the server refused, if it would have changed something."""
        method = conn.scope.get("method", "GET")
        if method not in _MUTATING:
            return
        data = {"by": who, "roles": roles, "method": method, "path": conn.url.path}
        self.audit("command_refused", {**data, "status": status, "result": f"refused: {why}"})

    def audit(self, kind: str, data: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO events(t_s, kind, drone, data) VALUES (?, ?, NULL, ?)",
            (self.now_s(), kind, json.dumps(data)),
        )
        self.db.commit()

    async def command(
        self, who: Principal, request: Request, kind: str, args: dict[str, Any]
    ) -> dict[str, Any]:
        """Queue an operator command in the log and wait (a while) for the flight's answer."""
        orch = self.live.orch
        rid = uuid.uuid4().hex[:12]
        by = {"by": who.sub, "roles": sorted(who.roles), "request": rid}
        if orch is None or self.live.finished.is_set():
            state = orch.lifecycle.state.name if orch is not None else "not started"
            why = f"the mission is {state}: it takes no more commands"
            if self.live.error is not None:
                why = f"the flight stopped on an error ({self.live.error!r}): no more commands"
            self.audit(
                "command_refused",
                {
                    **by,
                    "method": request.method,
                    "path": request.url.path,
                    "command": kind,
                    "status": 409,
                    "result": f"refused: {why}",
                },
            )
            raise HTTPException(409, why)
        self.db.execute(
            "INSERT INTO commands(kind, args) VALUES (?, ?)",
            (kind, json.dumps({**args, **by})),
        )
        self.db.commit()
        self.live.wake()
        deadline = time.monotonic() + COMMAND_WAIT_S
        while time.monotonic() < deadline:
            row = self.db.execute(
                "SELECT id, data FROM events WHERE kind = 'operator' "
                "AND json_extract(data, '$.request') = ? LIMIT 1",
                (rid,),
            ).fetchone()
            if row is not None:
                return {"request": rid, "result": json.loads(row[1]).get("result"), "event": row[0]}
            if self.live.finished.is_set():
                break
            await asyncio.sleep(0.02)
        return {"request": rid, "result": None}

    def events(self, after: int, limit: int, kind: str | None, drone: str | None) -> list[Any]:
        sql = "SELECT id, t_s, kind, drone, data FROM events WHERE id > ?"
        args: list[Any] = [after]
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        if drone is not None:
            sql += " AND drone = ?"
            args.append(drone)
        rows = self.db.execute(sql + " ORDER BY id LIMIT ?", [*args, limit]).fetchall()
        return [
            {"id": i, "t_s": t, "kind": k, "drone": d, "data": json.loads(data)}
            for i, t, k, d, data in rows
        ]

    # -- views ---------------------------------------------------------------------------------

    def plan_geojson(self) -> bytes:
        orch = self.live.orch
        plan = orch.plan if orch is not None else self.live.plan
        version = orch.plan_version if orch is not None else 0
        if self._plan_cache is None or self._plan_cache[0] != version:
            data = plan_to_geojson(plan)
            data["version"] = version
            self._plan_cache = (version, json.dumps(data, separators=(",", ":")).encode())
        return self._plan_cache[1]

    def coverage_png(self) -> bytes:
        """The covered cells as a PNG, north up; remade at most once a wall second."""
        from matplotlib.image import imsave

        orch = self.live.orch
        snap = self.live.latest()
        number = snap.number if snap is not None else 0
        cached = self._png_cache
        if cached is not None and (cached[0] == number or time.monotonic() - cached[1] < 1.0):
            return cached[2]
        rgba = np.zeros((*orch.coverage.shape, 4), np.uint8) if orch else np.zeros((1, 1, 4))
        if orch is not None:
            grid = orch.coverage
            on = (grid.covered & grid.inside)[::-1]  # row 0 is the south edge
            rgba[on] = (32, 160, 96, 255)
        buf = io.BytesIO()
        imsave(buf, rgba.astype(np.uint8), format="png")
        self._png_cache = (number, time.monotonic(), buf.getvalue())
        return self._png_cache[2]

    def search_png(self, layer: str) -> bytes:
        """One layer of the probability map as a heat image, north up: ``poc`` (where the
        person may be now, per km²), ``poa`` (before the search) or ``pod`` (what the search
        has put into each cell); cells with no searchable area are transparent. Remade at most
        once a wall second."""
        from matplotlib import colormaps
        from matplotlib.image import imsave

        orch = self.live.orch
        assert orch is not None and orch.prior is not None and orch.search_effort is not None
        snap = self.live.latest()
        number = snap.number if snap is not None else 0
        cached = self._search_cache.get(layer)
        if cached is not None and (cached[0] == number or time.monotonic() - cached[1] < 1.0):
            return cached[2]
        g = orch.prior
        inside = g.area_m2 > 0
        area = np.where(inside, g.area_m2, 1.0)
        if layer == "pod":
            values, cmap = pod(orch.search_effort.copy(), g.area_m2), "viridis"
            scaled = values
        else:
            prob = g.poa if layer == "poa" else orch.poc
            assert prob is not None
            values, cmap = prob / area, "magma"
            top = float(values[inside].max()) if inside.any() else 0.0
            scaled = values / top if top > 0 else values
        rgba = (colormaps[cmap](np.clip(scaled, 0.0, 1.0)) * 255).astype(np.uint8)
        rgba[..., 3] = np.where(inside, 255, 0)
        buf = io.BytesIO()
        imsave(buf, rgba[::-1], format="png")  # row 0 is the south edge
        self._search_cache[layer] = (number, time.monotonic(), buf.getvalue())
        return buf.getvalue()

    def search_corners(self) -> list[list[float]]:
        """The probability map's corners (lon/lat): top left, top right, bottom right,
        bottom left, as MapLibre's image sources take them."""
        orch = self.live.orch
        assert orch is not None and orch.prior is not None
        g = orch.prior
        ny, nx = g.shape
        x0, y0 = g.x0_m, g.y0_m
        x1, y1 = x0 + nx * g.cell_m, y0 + ny * g.cell_m
        lon, lat = self.live.mission.frame.to_lonlat([x0, x1, x1, x0], [y1, y1, y0, y0])
        return [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lon, lat, strict=True)]

    def coverage_corners(self) -> list[list[float]]:
        orch = self.live.orch
        assert orch is not None
        grid = orch.coverage
        x0, y0 = grid.origin
        x1 = x0 + grid.shape[1] * grid.spacing_m
        y1 = y0 + grid.shape[0] * grid.spacing_m
        lon, lat = self.live.mission.frame.to_lonlat([x0, x1, x1, x0], [y1, y1, y0, y0])
        return [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lon, lat, strict=True)]

    def rows(self, which: NDArray[np.intp] | None = None) -> list[dict[str, Any]]:
        """The drones ``which`` (all if None) as the fleet routes show them, columns converted
        at once rather than drone by drone."""
        snap = self.live.latest()
        orch = self.live.orch
        if snap is None or orch is None:
            raise HTTPException(503, "the flight has not published its first tick yet")
        v = snap.view
        k = np.arange(len(v.lon)) if which is None else np.asarray(which, np.intp)
        flags = (v.alerts[k, None] & _ALERT_BITS[None, :]) != 0
        age = np.round(v.link_age_s[k], 1)
        sortie = np.where(orch.book.flying[k] >= 0, orch.book.last_number[k], -1)
        cols = zip(
            [self.live.ids[i] for i in k],
            np.round(v.lon[k], 7).tolist(),
            np.round(v.lat[k], 7).tolist(),
            np.round(v.alt_m[k], 1).tolist(),
            np.round(v.heading_deg[k], 1).tolist(),
            np.round(v.speed_mps[k], 2).tolist(),
            np.round(v.battery[k], 3).tolist(),
            v.mode[k].tolist(),
            flags,
            np.where(np.isfinite(age), age, -1.0).tolist(),
            sortie.tolist(),
            strict=True,
        )
        return [
            {
                "id": d,
                "lon": lon,
                "lat": lat,
                "alt_m": alt,
                "heading_deg": hdg,
                "speed_mps": spd,
                "battery": bat,
                "mode": _MODE_NAMES[mode],
                "alerts": _ALERT_NAMES[f].tolist() if f.any() else [],
                "link_age_s": a if a >= 0 else None,
                "sortie": n if n >= 0 else None,
            }
            for d, lon, lat, alt, hdg, spd, bat, mode, f, a, n in cols
        ]


def create_app(live: LiveMission, secret: bytes, tiles: TileSource | None = None) -> FastAPI:
    """The operator server of ``live`` (started), checking tokens with ``secret``."""
    server = Server(live, secret, tiles)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()

        def wake() -> None:
            loop.call_soon_threadsafe(server.hub.wake)

        live.on_tick = wake
        yield
        live.on_tick = None

    app = FastAPI(
        lifespan=lifespan,
        title="skysweep",
        summary="Operator API of a skysweep mission: fleet, plan, events, commands, stream.",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.server = server
    app.add_middleware(GZipMiddleware, minimum_size=2048)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        if request.method in _MUTATING:
            server.audit(
                "command_refused",
                {
                    "by": _who(request, secret),
                    "method": request.method,
                    "path": request.url.path,
                    "status": 422,
                    "result": f"refused: {_first_error(exc)}",
                },
            )
        return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)

    # -- the page ------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, tags=["page"])
    async def page(request: Request, who: Viewer) -> Response:
        html = (_STATIC / "index.html").read_text()
        response = HTMLResponse(html, headers={"Cache-Control": "no-store"})
        token = request.query_params.get("token")
        if token:
            response.set_cookie(
                COOKIE,
                token,
                httponly=True,
                samesite="strict",
                max_age=int(who.exp_s - time.time()),
            )
        return response

    @app.get("/static/{path:path}", tags=["page"])
    async def static(path: str, who: Viewer) -> Response:
        parts = [p for p in path.split("/") if p]
        if not parts or any(p in (".", "..") or p.startswith(".") for p in parts):
            raise HTTPException(404, f"no file {path!r}")
        f = _STATIC.joinpath(*parts)
        if not f.is_file():
            raise HTTPException(404, f"no file {path!r}")
        media = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
        return Response(
            f.read_bytes(), media_type=media, headers={"Cache-Control": "private, max-age=300"}
        )

    @app.get("/api/openapi.json", tags=["api"])
    async def openapi(who: Viewer) -> dict[str, Any]:
        return get_openapi(title=app.title, version="1", summary=app.summary, routes=app.routes)

    # -- reading -------------------------------------------------------------------------------

    @app.get("/api/session", tags=["api"])
    async def session(who: Viewer) -> dict[str, Any]:
        return {
            "user": who.sub,
            "roles": sorted(who.roles),
            "expires": who.exp_s,
            "mission": live.mission.name,
            "stream": "/api/stream",
        }

    @app.get("/api/mission", tags=["api"])
    async def mission(who: Viewer) -> dict[str, Any]:
        m = live.mission
        orch = live.orch
        frame = m.frame
        zones = orch.zones if orch is not None else {z.name: z.geometry for z in m.keep_out}
        feats: list[dict[str, Any]] = [
            _feature(frame.geom_to_lonlat(m.keep_in), {"kind": "keep_in", "name": m.name})
        ]
        for name, geom in zones.items():
            feats.append(_feature(frame.geom_to_lonlat(geom), {"kind": "keep_out", "name": name}))
        for s in m.sites:
            lon, lat = frame.to_lonlat([s.xy_m[0]], [s.xy_m[1]])
            feats.append(_feature(shapely.Point(lon[0], lat[0]), {"kind": "site", "name": s.name}))
        life = orch.lifecycle if orch is not None else None
        return {
            "name": m.name,
            "state": life.state.name if life else "PLANNED",
            "health": life.health.name if life else "NOMINAL",
            "reasons": list(life.reasons) if life else [],
            "t_s": server.now_s(),
            "bounds": [round(float(v), 7) for v in frame.geom_to_lonlat(m.keep_in).bounds],
            "altitude_m": m.altitude_m,
            "min_separation_m": m.safety.min_separation_m,
            "zones_version": live.zones_version,
            "features": {"type": "FeatureCollection", "features": feats},
        }

    @app.get("/api/plan", tags=["api"])
    async def plan(who: Viewer) -> Response:
        return Response(server.plan_geojson(), media_type="application/json")

    @app.get("/api/fleet", tags=["api"])
    async def fleet(who: Viewer) -> dict[str, Any]:
        snap = live.latest()
        if snap is None or live.orch is None:
            return {"t_s": 0.0, "drones": []}
        return {"t_s": snap.view.t_s, "drones": server.rows()}

    @app.get("/api/fleet/{drone_id}", tags=["api"])
    async def one_drone(drone_id: str, who: Viewer) -> dict[str, Any]:
        i = _drone_index(live, drone_id)
        data = server.rows(np.array([i]))[0]
        orch = live.orch
        if orch is not None:
            fsf = orch.failsafe
            causes = Cause(int(fsf.cause[i]))
            data["failsafe"] = {
                "action": Action(int(fsf.action[i])).name,
                "causes": [c.name for c in Cause if c and c in causes],
            }
        recent = server.db.execute(
            "SELECT id, t_s, kind, data FROM events WHERE drone = ? ORDER BY id DESC LIMIT 20",
            (drone_id,),
        ).fetchall()
        data["events"] = [
            {"id": e, "t_s": t, "kind": k, "data": json.loads(d)} for e, t, k, d in recent[::-1]
        ]
        return data

    @app.get("/api/events", tags=["api"])
    async def events(
        who: Viewer,
        after: int = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
        kind: str | None = None,
        drone: str | None = None,
    ) -> list[Any]:
        return server.events(after, limit, kind, drone)

    @app.get("/api/alerts", tags=["api"])
    async def alerts(who: Viewer) -> list[Any]:
        snap = live.latest()
        return list(snap.summary["alerts"]) if snap is not None else []

    @app.get("/api/detections", tags=["api"])
    async def detections(who: Viewer) -> list[Any]:
        orch = live.orch
        status = dict(orch.detection_status) if orch is not None else {}
        rows = server.db.execute(
            "SELECT t_s, drone, data FROM events WHERE kind = 'detection' ORDER BY id"
        ).fetchall()
        out = []
        for t, d, raw in rows:
            data = json.loads(raw)
            number = int(data.get("detection", 0))
            out.append(
                {
                    "id": number,
                    "drone": d,
                    "t_s": t,
                    "lon": data.get("lon"),
                    "lat": data.get("lat"),
                    "confidence": data.get("confidence"),
                    "status": status.get(number, "new"),
                }
            )
        return out

    @app.get("/api/coverage", tags=["api"])
    async def coverage(who: Viewer) -> dict[str, Any]:
        orch = live.orch
        snap = live.latest()
        if orch is None:
            raise HTTPException(503, "the flight has not started")
        number = snap.number if snap is not None else 0
        return {
            "fraction": round(orch.coverage.fraction, 5),
            "version": number,
            "corners": server.coverage_corners(),
            "image": f"/api/coverage.png?v={number}",
        }

    @app.get("/api/coverage.png", tags=["api"])
    async def coverage_png(who: Viewer) -> Response:
        png = await asyncio.to_thread(server.coverage_png)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    def search_orch() -> Any:
        orch = live.orch
        if orch is None:
            raise HTTPException(503, "the flight has not started")
        if orch.prior is None:
            raise HTTPException(404, "the mission has no probability map (search.prior)")
        return orch

    @app.get("/api/search", tags=["api"])
    async def search(who: Viewer) -> dict[str, Any]:
        """The search: its POS so far and over time, the map's layers as heat images."""
        orch = search_orch()
        snap = live.latest()
        number = snap.number if snap is not None else 0
        pos = orch.pos
        return {
            "pos": round(pos, 5) if pos is not None else None,
            "poa_total": round(orch.prior.total, 5),
            "cell_m": orch.prior.cell_m,
            "found": orch.found,
            "pos_history": [list(p) for p in list(live.pos_history)],
            "version": number,
            "corners": server.search_corners(),
            "images": {k: f"/api/search/{k}.png?v={number}" for k in SEARCH_LAYERS},
        }

    @app.get("/api/search/{layer}.png", tags=["api"])
    async def search_png(layer: str, who: Viewer) -> Response:
        search_orch()
        if layer not in SEARCH_LAYERS:
            known = ", ".join(SEARCH_LAYERS)
            raise HTTPException(404, f"no search layer {layer!r} (one of {known})")
        png = await asyncio.to_thread(server.search_png, layer)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/api/tiles", tags=["api"])
    async def tile_info(who: Viewer) -> dict[str, Any]:
        info = tiles.info if tiles is not None else TileInfo(kind="none")
        return info.as_dict()

    @app.get("/tiles/{z}/{x}/{y}", tags=["page"])
    async def tile(z: int, x: int, y: int, who: Viewer) -> Response:
        if tiles is None:
            raise HTTPException(404, "no tile file (start with --tiles)")
        if not (0 <= z <= 30 and 0 <= x < (1 << z) and 0 <= y < (1 << z)):
            raise HTTPException(404, f"no tile {z}/{x}/{y}")
        t = await asyncio.to_thread(tiles.tile, z, x, y)
        if t is None:
            raise HTTPException(404, f"no tile {z}/{x}/{y}")
        headers = {"Cache-Control": "private, max-age=86400"}
        if t.gzipped:
            headers["Content-Encoding"] = "gzip"
        return Response(t.data, media_type=t.media_type, headers=headers)

    # -- commands ------------------------------------------------------------------------------

    @app.post("/api/commands", tags=["commands"])
    async def command(body: CommandBody, request: Request, who: Operator) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if body.command in ("resume", "home", "land"):
            args["drones"] = body.drones
        elif body.drones is not None:
            _reject(server, request, who, f"{body.command} is for the whole mission: no 'drones'")
        if body.drones is not None:
            known = set(live.ids)
            for k, d in enumerate(body.drones):
                if d not in known:
                    _reject(server, request, who, f"drones[{k}]: no drone {d!r} in the fleet")
        return await server.command(who, request, body.command, args)

    @app.post("/api/detections/{number}/{verdict}", tags=["commands"])
    async def judge(
        number: int, verdict: Literal["confirm", "dismiss"], request: Request, who: Operator
    ) -> dict[str, Any]:
        orch = live.orch
        if orch is None or not 1 <= number <= orch.detections:
            _reject(server, request, who, f"no detection {number}", status=404)
        return await server.command(who, request, f"{verdict}_detection", {"detection": number})

    @app.post("/api/zones", tags=["zones"])
    async def add_zone(body: ZoneBody, request: Request, who: Safety) -> dict[str, Any]:
        try:
            zone_from_geojson(live.mission, body.geometry, "geometry")
        except MissionError as exc:
            _reject(server, request, who, str(exc))
        return await server.command(
            who, request, "add_keep_out", {"name": body.name, "geometry": body.geometry}
        )

    @app.delete("/api/zones/{name}", tags=["zones"])
    async def remove_zone(name: str, request: Request, who: Safety) -> dict[str, Any]:
        orch = live.orch
        if orch is not None and name not in orch.zones:
            _reject(server, request, who, f"no keep-out zone {name!r}", status=404)
        return await server.command(who, request, "remove_keep_out", {"name": name})

    # -- the stream ----------------------------------------------------------------------------

    @app.websocket("/api/stream")
    async def stream(ws: WebSocket, who: Viewer) -> None:
        await ws.accept()
        sent = 0
        try:
            await ws.send_text(json.dumps(live.hello()))
            while True:
                snap = live.latest()
                if snap is not None and snap.number != sent:
                    await ws.send_bytes(snap.frame)
                    await ws.send_text(snap.summary_text)
                    sent = snap.number
                    continue
                await server.hub.wait(1.0)
        except WebSocketDisconnect:
            pass

    return app


def _reject(server: Server, request: Request, who: Principal, why: str, status: int = 422) -> None:
    server.audit(
        "command_refused",
        {
            "by": who.sub,
            "roles": sorted(who.roles),
            "method": request.method,
            "path": request.url.path,
            "status": status,
            "result": f"refused: {why}",
        },
    )
    raise HTTPException(status, why)


def _who(request: Request, secret: bytes) -> str:
    token = _token_of(request)
    if token is None:
        return "anonymous"
    try:
        return verify_token(secret, token, time.time()).sub
    except AuthError:
        return "anonymous"


def _first_error(exc: RequestValidationError) -> str:
    errs = exc.errors()
    if not errs:
        return "bad request"
    e = errs[0]
    where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
    return f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid"))


def _drone_index(live: LiveMission, drone_id: str) -> int:
    try:
        return live.ids.index(drone_id)
    except ValueError:
        raise HTTPException(404, f"no drone {drone_id!r} in the fleet") from None


def _feature(geom: shapely.Geometry, props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": shapely.geometry.mapping(shapely.set_precision(geom, 1e-7)),
        "properties": props,
    }
