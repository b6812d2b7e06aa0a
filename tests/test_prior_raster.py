"""A probability raster (GeoTIFF) as a component of search.prior: read with its georeferencing,
spread over the map's cells where its pixels lie, in any EPSG CRS; bad files named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin
from pyproj import Transformer

from skysweep import mission
from skysweep.errors import MissionError
from skysweep.search import build_prior

LON, LAT = 9.00, 46.00  # inside UTM zone 32
AREA = {
    "type": "Polygon",
    "coordinates": [
        [[LON, LAT], [LON + 0.03, LAT], [LON + 0.03, LAT + 0.02], [LON, LAT + 0.02], [LON, LAT]]
    ],
}


def write_geotiff(
    path: Path,
    values: np.ndarray,
    x0: float,
    y0: float,
    dx: float,
    dy: float,
    epsg: int,
    *,
    geographic: bool,
    nodata: float | None = None,
) -> Path:
    """A single-band float GeoTIFF, north up, its top-left corner at (x0, y0) in ``epsg``."""
    img = Image.fromarray(values.astype(np.float32), mode="F")
    ifd = TiffImagePlugin.ImageFileDirectory_v2()
    ifd[33550] = (float(dx), float(dy), 0.0)
    ifd.tagtype[33550] = 12  # DOUBLE
    ifd[33922] = (0.0, 0.0, 0.0, float(x0), float(y0), 0.0)
    ifd.tagtype[33922] = 12
    crs_key = 2048 if geographic else 3072
    keys = (1, 1, 0, 3, 1024, 0, 1, 2 if geographic else 1, 1025, 0, 1, 1, crs_key, 0, 1, epsg)
    ifd[34735] = keys
    ifd.tagtype[34735] = 3  # SHORT
    if nodata is not None:
        ifd[42113] = str(nodata)
        ifd.tagtype[42113] = 2  # ASCII
    img.save(path, tiffinfo=ifd)
    return path


def _mission(tmp_path: Path, raster: dict[str, Any]) -> mission.Mission:
    data = {
        "name": "raster prior",
        "area": AREA,
        "launch_sites": [{"name": "base", "lon": LON + 0.015, "lat": LAT + 0.01}],
        "fleet": [
            {"model": "quad", "count": 2, "launch_site": "base", "speed_mps": 10,
             "endurance_s": 1200, "swath_m": 50}
        ],
        "search": {"prior": {"cell_m": 50, "raster": raster}},
    }  # fmt: skip
    return mission.parse(data, source="<test>", base_dir=tmp_path)


def _cell_of(m: mission.Mission, lon: float, lat: float) -> tuple[int, int]:
    grid = build_prior(m)
    assert grid is not None
    x, y = m.frame.to_local(lon, lat)
    return int((float(y) - grid.y0_m) // grid.cell_m), int((float(x) - grid.x0_m) // grid.cell_m)


def test_a_geographic_raster_puts_each_pixels_share_where_the_pixel_lies(tmp_path: Path) -> None:
    # 6 x 4 pixels of 0.005° over the area; one pixel ten times the others; a nodata pixel
    values = np.ones((4, 6))
    values[1, 4] = 10.0
    values[3, 0] = -9999.0
    path = write_geotiff(
        tmp_path / "p.tif", values, LON, LAT + 0.02, 0.005, 0.005, 4326,
        geographic=True, nodata=-9999,
    )  # fmt: skip
    m = _mission(tmp_path, {"file": path.name})
    grid = build_prior(m)
    assert grid is not None
    # the raster covers the area exactly: all its mass is in the map (but for the cells on the
    # area's edge, whose searchable part is taken to hold its share of the cell's mass)
    assert grid.total == pytest.approx(1.0, abs=0.01)
    # the hot pixel (row 1 from the top, column 4) holds 10 / (22 + 10) of it
    lon0, lat1 = LON + 4 * 0.005, LAT + 0.02 - 1 * 0.005
    fx, fy = m.frame.to_local([lon0, lon0 + 0.005], [lat1 - 0.005, lat1])
    gx, gy = grid.centres_m()
    inside = (gx > fx[0]) & (gx < fx[1]) & (gy > fy[0]) & (gy < fy[1])
    assert grid.poa[inside].sum() == pytest.approx(10 / 32, rel=0.08)
    # the nodata pixel (bottom left) holds nothing
    j, i = _cell_of(m, LON + 0.0025, LAT + 0.0025)
    assert grid.poa[j, i] == 0.0


def test_a_projected_raster_lands_where_its_crs_says(tmp_path: Path) -> None:
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32632", always_xy=True)
    x, y = to_utm.transform(LON + 0.01, LAT + 0.015)  # a 100 m pixel's top-left corner
    values = np.zeros((3, 3))
    values[1, 1] = 5.0  # only the middle pixel: 100 m east and south of the corner
    path = write_geotiff(tmp_path / "u.tif", values, x, y, 100.0, 100.0, 32632, geographic=False)
    m = _mission(tmp_path, {"file": str(path)})
    grid = build_prior(m)
    assert grid is not None
    lon, lat = Transformer.from_crs("EPSG:32632", "EPSG:4326", always_xy=True).transform(
        x + 150.0, y - 150.0
    )
    j, i = _cell_of(m, lon, lat)
    hot = np.unravel_index(np.argmax(grid.poa), grid.poa.shape)
    assert abs(hot[0] - j) <= 1 and abs(hot[1] - i) <= 1
    assert grid.total == pytest.approx(1.0, abs=1e-3)  # the pixel lies well inside the area


def test_the_mission_keeps_its_raster_without_the_file(tmp_path: Path) -> None:
    path = write_geotiff(
        tmp_path / "p.tif", np.arange(12.0).reshape(3, 4), LON, LAT + 0.02, 0.0075, 0.0067,
        4326, geographic=True,
    )  # fmt: skip
    m = _mission(tmp_path, {"file": path.name, "weight": 2})
    saved = mission.to_json(m.spec)
    path.unlink()
    again = mission.from_json(saved)
    a, b = build_prior(m), build_prior(again)
    assert a is not None and b is not None
    np.testing.assert_allclose(a.poa, b.poa)
    assert json.loads(saved)["search"]["prior"]["raster"]["crs"] == "EPSG:4326"


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p.write_text("not an image"), "cannot read raster"),
        (
            lambda p: Image.fromarray(np.ones((3, 3), np.float32), mode="F").save(p),
            "georeferencing",
        ),
        (lambda p: None, "not found"),
    ],
    ids=["not-a-tiff", "plain-tiff", "missing"],
)
def test_a_bad_raster_is_refused_naming_the_field(tmp_path: Path, make: Any, words: str) -> None:
    path = tmp_path / "bad.tif"
    make(path)
    with pytest.raises(MissionError) as err:
        _mission(tmp_path, {"file": path.name})
    assert err.value.field == "search.prior.raster"
    assert words in str(err.value)
