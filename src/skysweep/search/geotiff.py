"""Read a single-band, north-up GeoTIFF: its values and where its pixels lie.

Pillow reads the image (8/16/32-bit integers or 32-bit floats, uncompressed or compressed as
libtiff allows); the georeferencing comes from the GeoTIFF tags themselves: ModelPixelScale
(33550) and ModelTiepoint (33922) place the grid, the GeoKeyDirectory (34735) names its CRS by
EPSG code (GeographicTypeGeoKey 2048 or ProjectedCSTypeGeoKey 3072) and whether a pixel is an
area or a point (RasterTypeGeoKey 1025), and GDAL's nodata tag (42113) marks cells with no
value. A rotated or sheared raster (ModelTransformation, 34264) is refused: warp it north-up
first (``gdalwarp``).

This is the only module of the search layer that reads a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

#: Most pixels a raster prior may have (resample a finer one, e.g. with ``gdalwarp -tr``).
MAX_PIXELS = 1_000_000

_PIXEL_SCALE, _TIEPOINT, _TRANSFORMATION, _GEOKEYS, _NODATA = 33550, 33922, 34264, 34735, 42113
_MODEL_TYPE, _RASTER_TYPE, _GEOGRAPHIC, _PROJECTED = 1024, 1025, 2048, 3072
_USER_DEFINED = 32767


@dataclass(frozen=True)
class Raster:
    """Pixel values (rows from the top, NaN: no data) on a north-up grid in ``crs``: pixel
    ``(r, c)`` covers ``[x0 + c·dx, x0 + (c+1)·dx] × [y0 − (r+1)·dy, y0 − r·dy]`` (CRS units)."""

    values: NDArray[np.float64]
    x0: float
    y0: float
    dx: float
    dy: float
    crs: str
    """``EPSG:<code>``."""


def read_geotiff(path: str | Path) -> Raster:
    """The raster in ``path``; ValueError naming the problem if it is not one this reads."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            tags = dict(img.tag_v2) if hasattr(img, "tag_v2") else {}
            if img.format != "TIFF":
                raise ValueError(f"{path}: not a TIFF file ({img.format})")
            bands = len(img.getbands())
            if bands != 1:
                raise ValueError(f"{path}: has {bands} bands; give a single-band raster")
            if img.width * img.height > MAX_PIXELS:
                raise ValueError(
                    f"{path}: {img.width} x {img.height} pixels, more than {MAX_PIXELS:,}: "
                    "resample it coarser"
                )
            values = np.asarray(img, dtype=np.float64)
    except FileNotFoundError:
        raise ValueError(f"raster file not found: {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot read raster {path}: {exc}") from None
    if _TRANSFORMATION in tags:
        raise ValueError(f"{path}: a rotated or sheared raster; warp it north-up first")
    scale, tie = tags.get(_PIXEL_SCALE), tags.get(_TIEPOINT)
    if not scale or not tie or len(tie) < 6:
        raise ValueError(f"{path}: no georeferencing (ModelPixelScale and ModelTiepoint tags)")
    dx, dy = float(scale[0]), float(scale[1])
    if not (dx > 0 and dy > 0):
        raise ValueError(f"{path}: pixel size must be positive, not {dx} x {dy}")
    keys = _geokeys(tags.get(_GEOKEYS), path)
    code = keys.get(_PROJECTED) if keys.get(_MODEL_TYPE) == 1 else keys.get(_GEOGRAPHIC)
    if code is None or code == _USER_DEFINED:
        raise ValueError(f"{path}: its CRS has no EPSG code; reproject it (e.g. to EPSG:4326)")
    # the tiepoint ties raster point (i, j) to model point (x, y)
    i, j, _, x, y, _ = (float(v) for v in tie[:6])
    x0, y0 = x - i * dx, y + j * dy
    if keys.get(_RASTER_TYPE) == 2:  # PixelIsPoint: the tie is a pixel's centre
        x0, y0 = x0 - dx / 2, y0 + dy / 2
    nodata = tags.get(_NODATA)
    if nodata is not None:
        try:
            missing = float(str(nodata).strip("\x00 "))
        except ValueError:
            raise ValueError(f"{path}: its nodata tag {nodata!r} is not a number") from None
        values = np.where(values == missing, np.nan, values)
    return Raster(values, x0, y0, dx, dy, f"EPSG:{int(code)}")


def _geokeys(directory: object, path: str | Path) -> dict[int, int]:
    """The short-valued keys of a GeoKeyDirectory (header, then (key, location, count, value)
    entries; a value held elsewhere has a location other than 0 and is skipped)."""
    if not isinstance(directory, tuple) or len(directory) < 4:
        raise ValueError(f"{path}: no GeoKeyDirectory: is it a GeoTIFF?")
    count = int(directory[3])
    out = {}
    for k in range(count):
        key, location, _, value = directory[4 + 4 * k : 8 + 4 * k]
        if location == 0:
            out[int(key)] = int(value)
    return out
