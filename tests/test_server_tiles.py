"""Offline map tiles: MBTiles and PMTiles files served as the map page asks for them."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

import pytest
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer
from server_fixtures import LIVE, bearer, served

from skysweep import mission
from skysweep.errors import MissionError
from skysweep.plan import Plan, plan_mission
from skysweep.server.tiles import MBTiles, PMTiles, open_tiles

PNG = b"\x89PNG\r\n\x1a\n" + b"tile-z1-x1-y0"
OTHER = b"\x89PNG\r\n\x1a\n" + b"tile-z1-x0-y1"


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    path = tmp_path_factory.mktemp("tiles") / "live.yaml"
    path.write_text(LIVE)
    return plan_mission(mission.load(path))


def _mbtiles(path: Path, fmt: str, tiles: dict[tuple[int, int, int], bytes]) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
        db.execute(
            "CREATE TABLE tiles (zoom_level INT, tile_column INT, tile_row INT, tile_data BLOB)"
        )
        meta = {
            "name": "test",
            "format": fmt,
            "minzoom": "0",
            "maxzoom": "1",
            "bounds": "7,46,9,47",
        }
        if fmt == "pbf":
            meta["json"] = json.dumps({"vector_layers": [{"id": "water", "fields": {}}]})
        db.executemany("INSERT INTO metadata VALUES (?, ?)", meta.items())
        for (z, x, y), data in tiles.items():
            # MBTiles rows count from the south (TMS)
            db.execute("INSERT INTO tiles VALUES (?, ?, ?, ?)", (z, x, (1 << z) - 1 - y, data))
    return path


def _pmtiles(path: Path, tiles: dict[tuple[int, int, int], bytes]) -> Path:
    with path.open("wb") as f:
        w = Writer(f)
        for (z, x, y), data in sorted(tiles.items(), key=lambda t: zxy_to_tileid(*t[0])):
            w.write_tile(zxy_to_tileid(z, x, y), data)
        header = {
            "tile_type": TileType.PNG,
            "tile_compression": Compression.NONE,
            "min_zoom": 0,
            "max_zoom": 1,
            "min_lon_e7": 70_000_000,
            "min_lat_e7": 460_000_000,
            "max_lon_e7": 90_000_000,
            "max_lat_e7": 470_000_000,
            "center_zoom": 0,
            "center_lon_e7": 80_000_000,
            "center_lat_e7": 465_000_000,
        }
        w.finalize(header, {"name": "test"})
    return path


def test_mbtiles_rows_are_flipped_to_xyz(tmp_path: Path) -> None:
    src = MBTiles(_mbtiles(tmp_path / "t.mbtiles", "png", {(1, 1, 0): PNG, (1, 0, 1): OTHER}))
    assert src.info.kind == "raster" and src.info.bounds == [7.0, 46.0, 9.0, 47.0]
    t = src.tile(1, 1, 0)
    assert t is not None and t.data == PNG and t.media_type == "image/png"
    assert src.tile(1, 0, 1).data == OTHER  # type: ignore[union-attr]
    assert src.tile(1, 0, 0) is None


def test_pmtiles_are_read_by_tile_id(tmp_path: Path) -> None:
    src = PMTiles(_pmtiles(tmp_path / "t.pmtiles", {(1, 1, 0): PNG, (1, 0, 1): OTHER}))
    assert src.info.kind == "raster" and src.info.maxzoom == 1
    assert src.info.bounds == [7.0, 46.0, 9.0, 47.0]
    assert src.tile(1, 1, 0).data == PNG  # type: ignore[union-attr]
    assert src.tile(1, 0, 1).data == OTHER  # type: ignore[union-attr]
    assert src.tile(1, 0, 0) is None


def test_a_file_that_is_not_tiles_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "notes.mbtiles"
    bad.write_text("not tiles")
    with pytest.raises(MissionError, match=r"notes\.mbtiles: neither an MBTiles nor a PMTiles"):
        open_tiles(bad)
    with pytest.raises(MissionError, match="no-such"):
        open_tiles(tmp_path / "no-such.pmtiles")


def test_the_server_serves_vector_tiles_gzipped_as_stored(plan: Plan, tmp_path: Path) -> None:
    pbf = gzip.compress(b"\x1a\x05water")
    src = open_tiles(_mbtiles(tmp_path / "v.mbtiles", "pbf", {(0, 0, 0): pbf}))
    with served(plan, tmp_path / "run.db", tiles=src) as s:
        info = s.client.get("/api/tiles", headers=bearer("viewer")).json()
        assert info["kind"] == "vector" and info["vector_layers"][0]["id"] == "water"
        r = s.client.get("/tiles/0/0/0", headers=bearer("viewer"))
        assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
        assert r.content == b"\x1a\x05water"  # the client undid the gzip, as a browser does
        assert s.client.get("/tiles/1/1/1", headers=bearer("viewer")).status_code == 404
        assert s.client.get("/tiles/1/5/0", headers=bearer("viewer")).status_code == 404
        assert s.client.get("/tiles/0/0/0").status_code == 401


def test_without_a_tile_file_the_page_gets_a_plain_background(plan: Plan, tmp_path: Path) -> None:
    with served(plan, tmp_path / "run.db") as s:
        assert s.client.get("/api/tiles", headers=bearer("viewer")).json()["kind"] == "none"
        assert s.client.get("/tiles/0/0/0", headers=bearer("viewer")).status_code == 404
