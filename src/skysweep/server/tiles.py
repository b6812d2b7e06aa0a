"""Offline map tiles from a local MBTiles or PMTiles file (field teams often have no internet).

Both hold raster (PNG, JPEG, WebP) or vector (Mapbox Vector Tile) tiles; the map page asks
``/api/tiles`` which, and builds its style to match. Tiles are served as stored: a gzipped
vector tile goes out with ``Content-Encoding: gzip``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from skysweep.errors import MissionError

_MEDIA = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "pbf": "application/x-protobuf",
    "mvt": "application/x-protobuf",
}


@dataclass(frozen=True)
class TileInfo:
    """What a tile file holds, as ``GET /api/tiles`` answers it."""

    kind: str
    """"raster", "vector", or "none" (no tile file: a plain background)."""
    format: str | None = None
    minzoom: int = 0
    maxzoom: int = 22
    bounds: list[float] | None = None
    """[west, south, east, north], degrees."""
    tile_size: int = 256
    vector_layers: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "format": self.format,
            "minzoom": self.minzoom,
            "maxzoom": self.maxzoom,
            "bounds": self.bounds,
            "tile_size": self.tile_size,
            "vector_layers": self.vector_layers,
            "url": "/tiles/{z}/{x}/{y}",
        }


@dataclass(frozen=True)
class Tile:
    data: bytes
    media_type: str
    gzipped: bool


class TileSource(Protocol):
    info: TileInfo

    def tile(self, z: int, x: int, y: int) -> Tile | None:
        """Tile z/x/y (XYZ scheme, y down from the north), or None where the file has none."""


def _gzipped(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b"


class MBTiles:
    """An MBTiles file (SQLite; rows are TMS, y up from the south)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            # read-only, and usable from whichever thread serves the request
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            meta = dict(self._db.execute("SELECT name, value FROM metadata").fetchall())
            self._db.execute("SELECT 1 FROM tiles LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            raise MissionError(str(path), "", f"not an MBTiles file ({exc})") from None
        fmt = str(meta.get("format", "png")).lower()
        if fmt not in _MEDIA:
            raise MissionError(str(path), "metadata.format", f"unknown tile format {fmt!r}")
        layers: list[dict[str, Any]] = []
        if "json" in meta:
            try:
                layers = list(json.loads(meta["json"]).get("vector_layers", []))
            except (ValueError, AttributeError):
                raise MissionError(str(path), "metadata.json", "not valid JSON") from None
        bounds = None
        if "bounds" in meta:
            try:
                bounds = [float(v) for v in str(meta["bounds"]).split(",")]
            except ValueError:
                raise MissionError(str(path), "metadata.bounds", "not w,s,e,n") from None
        self.info = TileInfo(
            kind="vector" if fmt in ("pbf", "mvt") else "raster",
            format=fmt,
            minzoom=int(meta.get("minzoom", 0)),
            maxzoom=int(meta.get("maxzoom", 22)),
            bounds=bounds,
            vector_layers=layers,
        )
        self._media = _MEDIA[fmt]

    def tile(self, z: int, x: int, y: int) -> Tile | None:
        row = self._db.execute(
            "SELECT tile_data FROM tiles WHERE zoom_level=? AND tile_column=? AND tile_row=?",
            (z, x, (1 << z) - 1 - y),
        ).fetchone()
        if row is None:
            return None
        data = bytes(row[0])
        return Tile(data, self._media, _gzipped(data))


class PMTiles:
    """A PMTiles v3 file, read with the ``pmtiles`` package (memory-mapped)."""

    def __init__(self, path: Path) -> None:
        from pmtiles.reader import MmapSource, Reader
        from pmtiles.tile import Compression, TileType

        self.path = path
        try:
            self._file = path.open("rb")
            self._reader = Reader(MmapSource(self._file))
            header = self._reader.header()
            meta = self._reader.metadata()
        except Exception as exc:  # the package raises its own and struct/value errors
            raise MissionError(str(path), "", f"not a PMTiles v3 file ({exc!r})") from None
        kind = header["tile_type"]
        formats = {
            TileType.MVT: "pbf",
            TileType.PNG: "png",
            TileType.JPEG: "jpg",
            TileType.WEBP: "webp",
        }
        if kind not in formats:
            raise MissionError(str(path), "header.tile_type", f"unsupported tiles {kind.name}")
        fmt = formats[kind]
        self._gzip = header["tile_compression"] == Compression.GZIP
        self.info = TileInfo(
            kind="vector" if fmt == "pbf" else "raster",
            format=fmt,
            minzoom=int(header["min_zoom"]),
            maxzoom=int(header["max_zoom"]),
            bounds=[
                header["min_lon_e7"] / 1e7,
                header["min_lat_e7"] / 1e7,
                header["max_lon_e7"] / 1e7,
                header["max_lat_e7"] / 1e7,
            ],
            vector_layers=list(meta.get("vector_layers", [])) if isinstance(meta, dict) else [],
        )
        self._media = _MEDIA[fmt]

    def tile(self, z: int, x: int, y: int) -> Tile | None:
        data = self._reader.get(z, x, y)
        if data is None:
            return None
        data = bytes(data)
        return Tile(data, self._media, self._gzip or _gzipped(data))


def open_tiles(path: Path) -> MBTiles | PMTiles:
    """The tile file at ``path``, by its first bytes (PMTiles magic, or SQLite)."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise MissionError(str(path), "", f"cannot read the tile file ({exc.strerror})") from None
    if head.startswith(b"PMTiles"):
        return PMTiles(path)
    if head.startswith(b"SQLite format 3"):
        return MBTiles(path)
    raise MissionError(str(path), "", "neither an MBTiles nor a PMTiles file")
