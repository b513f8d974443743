"""Raster XYZ tiles: decoded with GDAL (rasterio) and checked pixel by pixel against the source.

Each tile pixel centre is taken back to the raster (WebMercator -> UTM 41N with
pyproj) to find the source pixel it shows; pixels whose centre falls within
a tenth of a source pixel of a source pixel edge are skipped, since nearest-
neighbour sampling may take either side there.
"""

from __future__ import annotations

import warnings
from typing import Any

import morecantile
import numpy as np
import pyproj
import pytest
from fastapi.testclient import TestClient
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rio_tiler.colormap import cmap

from tests.raster.conftest import CRS, HEIGHT, HOLE, NODATA, PIXEL, WIDTH, X0, Y1, make_values

TMS = morecantile.tms.get("WebMercatorQuad")
MERC_TO_UTM = pyproj.Transformer.from_crs("EPSG:3857", CRS, always_xy=True)
TO_LL = pyproj.Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)

HOLE_CENTRE = TO_LL.transform(
    X0 + (HOLE[1].start + HOLE[1].stop) / 2 * PIXEL, Y1 - (HOLE[0].start + HOLE[0].stop) / 2 * PIXEL
)
# A zoom-13 tile (about 4.9 km across) over the nodata block: part hole, part data.
T13 = TMS.tile(HOLE_CENTRE[0], HOLE_CENTRE[1], 13)


def decode(body: bytes) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile(body) as mem, mem.open() as img:
            return np.asarray(img.read())


def source_pixels(tile: morecantile.Tile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each tile pixel: source row, col, and whether it is clear of source pixel edges."""
    b = TMS.xy_bounds(tile)
    size = (b.right - b.left) / 256
    cx = b.left + (np.arange(256) + 0.5) * size
    cy = b.top - (np.arange(256) + 0.5) * size
    mx, my = np.meshgrid(cx, cy)
    ux, uy = MERC_TO_UTM.transform(mx, my)
    fc, fr = (ux - X0) / PIXEL, (Y1 - uy) / PIXEL
    clear = (np.abs(fc - np.round(fc)) > 0.1) & (np.abs(fr - np.round(fr)) > 0.1)
    return np.floor(fr).astype(int), np.floor(fc).astype(int), clear


def expected_grey(tile: morecantile.Tile, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Expected grey level and alpha for every clear tile pixel (-1 where not clear)."""
    values = make_values()
    rows, cols, clear = source_pixels(tile)
    inside = (rows >= 0) & (rows < HEIGHT) & (cols >= 0) & (cols < WIDTH)
    v = np.full(rows.shape, np.nan)
    v[inside] = values[rows[inside], cols[inside]]
    valid = inside & (v != NODATA)
    grey = np.where(valid, (np.clip(v, lo, hi) - lo) / (hi - lo) * 255, -1)
    alpha = np.where(valid, 255, 0)
    grey[~clear] = -1
    alpha[~clear] = -1
    return grey, alpha


def get(client: TestClient, tile: morecantile.Tile, ext: str = "png", **params: Any) -> Any:
    return client.get(f"/rasters/magtest/tiles/{tile.z}/{tile.x}/{tile.y}.{ext}", params=params)


def test_png_tile_shows_the_rescaled_values_and_nodata_transparent(
    rclient: TestClient, imported: Any
) -> None:
    r = get(rclient, T13, rescale="0,100")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    img = decode(r.content)
    assert img.shape == (2, 256, 256)  # grey + alpha
    grey, alpha = expected_grey(T13, 0.0, 100.0)
    known = alpha >= 0
    assert known.sum() > 30_000
    np.testing.assert_array_equal(img[1][known], alpha[known])
    assert (img[1][known] == 0).sum() > 5_000  # the hole is there, transparent
    shown = grey >= 0
    assert np.abs(img[0][shown].astype(float) - grey[shown]).max() <= 1.0


def test_default_rescale_is_the_stored_2_98_percentiles(rclient: TestClient, imported: Any) -> None:
    p = imported["raster"]["statistics"][0]["percentiles"]
    img = decode(get(rclient, T13).content)
    grey, _ = expected_grey(T13, p["2"], p["98"])
    shown = grey >= 0
    assert np.abs(img[0][shown].astype(float) - grey[shown]).max() <= 1.0


def test_colormap_maps_grey_levels_to_its_colours(rclient: TestClient, imported: Any) -> None:
    plain = decode(get(rclient, T13, rescale="0,100").content)
    for name in ("viridis", "magma", "terrain", "RdBu"):
        img = decode(get(rclient, T13, rescale="0,100", colormap=name).content)
        assert img.shape == (4, 256, 256)
        table = np.array([cmap.get(name.lower())[i][:3] for i in range(256)])
        opaque = plain[1] == 255
        np.testing.assert_array_equal(img[:3, opaque].T, table[plain[0][opaque]])
        np.testing.assert_array_equal(img[3], plain[1])
    viridis = get(rclient, T13, rescale="0,100", colormap="viridis").content
    magma = get(rclient, T13, rescale="0,100", colormap="magma").content
    assert decode(viridis)[:3].tolist() != decode(magma)[:3].tolist()


def test_webp_tile_decodes_with_alpha(rclient: TestClient, imported: Any) -> None:
    r = get(rclient, T13, ext="webp", rescale="0,100", colormap="viridis")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/webp"
    img = decode(r.content)
    assert img.shape == (4, 256, 256)
    png = decode(get(rclient, T13, rescale="0,100", colormap="viridis").content)
    np.testing.assert_array_equal(img[3], png[3])
    opaque = png[3] == 255
    np.testing.assert_array_equal(img[:3, opaque], png[:3, opaque])  # lossless


def test_tile_outside_the_raster_is_204(rclient: TestClient, imported: Any) -> None:
    far = TMS.tile(70.0, 34.0, 13)
    r = get(rclient, far)
    assert r.status_code == 204
    assert r.content == b""
    assert r.headers["etag"]


def test_tile_wholly_in_nodata_is_204(rclient: TestClient, imported: Any) -> None:
    r = get(rclient, TMS.tile(HOLE_CENTRE[0], HOLE_CENTRE[1], 16))
    assert r.status_code == 204


def test_low_zoom_tile_reads_the_raster(rclient: TestClient, imported: Any) -> None:
    r = get(rclient, TMS.tile(HOLE_CENTRE[0], HOLE_CENTRE[1], 6))
    assert r.status_code == 200
    img = decode(r.content)
    assert 0 < (img[1] == 255).sum() < 256 * 256


def test_etag_and_304(rclient: TestClient, imported: Any) -> None:
    first = get(rclient, T13, colormap="viridis")
    assert first.headers["cache-control"] == "private, no-cache"  # signed in: no shared cache
    etag = first.headers["etag"]
    again = rclient.get(
        f"/rasters/magtest/tiles/{T13.z}/{T13.x}/{T13.y}.png",
        params={"colormap": "viridis"},
        headers={"If-None-Match": etag},
    )
    assert again.status_code == 304
    other = get(rclient, T13, colormap="magma")
    assert other.headers["etag"] != etag


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"colormap": "rainbowz"}, "colormap"),
        ({"rescale": "0"}, "rescale"),
        ({"rescale": "a,b"}, "rescale"),
        ({"rescale": "5,5"}, "rescale"),
        ({"rescale": "10,1"}, "rescale"),
        ({"rescale": "0,nan"}, "rescale"),
        ({"rescale": "1,2,3"}, "rescale"),
        ({"band": 2}, "band"),
        ({"band": "x"}, "band"),
    ],
)
def test_bad_tile_parameters_are_400_naming_them(
    rclient: TestClient, imported: Any, params: dict[str, Any], field: str
) -> None:
    r = get(rclient, T13, **params)
    assert r.status_code in (400, 422), r.text
    assert r.json()["field"] == field


@pytest.mark.parametrize(
    ("z", "x", "y", "field"), [(25, 0, 0, "z"), (3, 8, 0, "x"), (3, 0, 9, "x")]
)
def test_tile_address_out_of_range_is_400(
    rclient: TestClient, imported: Any, z: int, x: int, y: int, field: str
) -> None:
    r = rclient.get(f"/rasters/magtest/tiles/{z}/{x}/{y}.png")
    assert r.status_code == 400
    assert r.json()["field"] == field


def test_tile_of_unknown_raster_is_404(rclient: TestClient) -> None:
    r = rclient.get("/rasters/nosuch/tiles/5/22/13.png")
    assert r.status_code == 404


def test_rgb_raster_is_drawn_in_colour(
    rclient: TestClient, db: Any, raster_dir: Any, tmp_path: Any
) -> None:
    from cadastre.survey.raster import import_raster
    from tests.raster.conftest import meta, write_raster

    rgb = np.stack([np.full((HEIGHT, WIDTH), v, dtype=np.uint8) for v in (10, 120, 250)])
    src = write_raster(tmp_path / "rgb.tif", rgb, nodata=0)
    import_raster(db, raster_dir, src, meta("rgb", kind="other"), actor="t")
    tile = TMS.tile(*TO_LL.transform(X0 + 15_000, Y1 - 10_000), 14)
    r = rclient.get(
        f"/rasters/rgb/tiles/{tile.z}/{tile.x}/{tile.y}.png", params={"rescale": "0,255"}
    )
    assert r.status_code == 200, r.text
    img = decode(r.content)
    assert img.shape == (4, 256, 256)
    assert [int(img[b, 128, 128]) for b in range(4)] == [10, 120, 250, 255]
    r = rclient.get(
        f"/rasters/rgb/tiles/{tile.z}/{tile.x}/{tile.y}.png", params={"colormap": "viridis"}
    )
    assert r.status_code == 400
    assert r.json()["field"] == "colormap"
