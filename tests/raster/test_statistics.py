"""Statistics over a polygon, point values and clips, against an independent computation.

The reference reads the *source* file (not the stored COG) with ``rasterio.mask.mask``
(pixel centres inside, all_touched=False, nodata masked) and computes with numpy;
polygons in another CRS are moved to the raster's CRS with pyproj after being
densified, so straight edges agree between the two.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import pytest
import rasterio
import rasterio.mask
import shapely
from fastapi.testclient import TestClient
from rasterio.io import MemoryFile
from shapely.geometry import MultiPolygon, Polygon, box, mapping

from tests.raster.conftest import CRS, HOLE, NODATA, PIXEL, X0, Y1, make_values

TO_LL = pyproj.Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
TO_UTM = pyproj.Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
X1 = X0 + 300 * PIXEL
Y0 = Y1 - 200 * PIXEL


def utm_poly(*xy: tuple[float, float]) -> Polygon:
    return Polygon(xy)


def reference(source: Path, geom_utm: Any) -> np.ndarray:
    with rasterio.open(source) as ds:
        out, _ = rasterio.mask.mask(
            ds, [mapping(geom_utm)], crop=True, filled=False, all_touched=False
        )
    values = out[0].compressed()
    return values[values != NODATA]


def check(answer: dict[str, Any], values: np.ndarray, bins: int = 10) -> None:
    band = answer["bands"][0]
    assert band["count"] == values.size
    assert values.size > 0
    assert band["min"] == pytest.approx(float(values.min()))
    assert band["max"] == pytest.approx(float(values.max()))
    assert band["mean"] == pytest.approx(float(values.astype(np.float64).mean()), rel=1e-9)
    assert band["std"] == pytest.approx(float(values.astype(np.float64).std()), rel=1e-9)
    for p in (2, 25, 50, 75, 98):
        assert band["percentiles"][str(p)] == pytest.approx(float(np.percentile(values, p)))
    counts, edges = np.histogram(values, bins=bins, range=(values.min(), values.max()))
    assert band["histogram"]["counts"] == counts.tolist()
    assert band["histogram"]["edges"] == pytest.approx(edges.tolist(), abs=1e-4)


def stats(client: TestClient, geom: Any, crs: str | None = CRS, **params: Any) -> Any:
    if crs is not None:
        params["crs"] = crs
    return client.post("/rasters/magtest/statistics", json=mapping(geom), params=params)


INSIDE = utm_poly(
    (403_210.0, 3_222_530.0),
    (418_770.0, 3_223_120.0),
    (421_340.0, 3_229_880.0),
    (409_050.0, 3_238_310.0),
    (402_620.0, 3_231_470.0),
)


def test_polygon_inside(rclient: TestClient, imported: Any, source: Path) -> None:
    r = stats(rclient, INSIDE)
    assert r.status_code == 200, r.text
    check(r.json(), reference(source, INSIDE))
    # Pixel centres inside, counted directly, nodata included: the polygon's pixel count.
    assert r.json()["pixels_covered"] >= r.json()["bands"][0]["count"]


def test_polygon_over_the_nodata_hole(rclient: TestClient, imported: Any, source: Path) -> None:
    # Half over the hole (cols 100-159, rows 50-89 = x 410..416 km, y 3231..3235 km).
    geom = box(407_130.0, 3_230_170.0, 413_060.0, 3_236_220.0)
    r = stats(rclient, geom)
    assert r.status_code == 200, r.text
    values = reference(source, geom)
    check(r.json(), values)
    assert r.json()["pixels_covered"] > values.size  # nodata pixels were covered, not counted


def test_polygon_wholly_in_nodata_counts_nothing(rclient: TestClient, imported: Any) -> None:
    geom = box(410_520.0, 3_231_530.0, 415_480.0, 3_234_470.0)
    r = stats(rclient, geom)
    assert r.status_code == 200, r.text
    band = r.json()["bands"][0]
    assert band["count"] == 0
    assert band["mean"] is None and band["percentiles"]["50"] is None
    assert r.json()["pixels_covered"] > 0


def test_multipolygon(rclient: TestClient, imported: Any, source: Path) -> None:
    geom = MultiPolygon(
        [
            utm_poly((401_050.0, 3_221_130.0), (405_990.0, 3_221_470.0), (403_330.0, 3_226_610.0)),
            box(420_310.0, 3_230_050.0, 426_870.0, 3_238_930.0),
        ]
    )
    r = stats(rclient, geom)
    assert r.status_code == 200, r.text
    check(r.json(), reference(source, geom))


def test_polygon_with_a_hole(rclient: TestClient, imported: Any, source: Path) -> None:
    outer = [(401_000.0, 3_221_000.0), (428_000.0, 3_221_000.0), (428_000.0, 3_238_000.0)]
    outer += [(401_000.0, 3_238_000.0)]
    inner = [(405_050.0, 3_224_050.0), (405_050.0, 3_229_950.0), (409_950.0, 3_229_950.0)]
    inner += [(409_950.0, 3_224_050.0)]
    geom = Polygon(outer, [inner])
    r = stats(rclient, geom)
    assert r.status_code == 200, r.text
    values = reference(source, geom)
    check(r.json(), values)
    assert values.size < reference(source, Polygon(outer)).size


def test_polygon_in_wgs84_is_reprojected(rclient: TestClient, imported: Any, source: Path) -> None:
    lon0, lat0 = TO_LL.transform(402_000.0, 3_222_000.0)
    lon1, lat1 = TO_LL.transform(421_000.0, 3_237_000.0)
    ll = shapely.segmentize(box(lon0, lat0, lon1, lat1), 0.0005)
    in_utm = shapely.transform(ll, lambda xy: np.column_stack(TO_UTM.transform(*xy.T)))
    for crs in (None, "EPSG:4326", "http://www.opengis.net/def/crs/OGC/1.3/CRS84"):
        r = stats(rclient, ll, crs=crs)
        assert r.status_code == 200, r.text
        check(r.json(), reference(source, in_utm))


def test_polygon_partly_outside_counts_the_inside(
    rclient: TestClient, imported: Any, source: Path
) -> None:
    geom = box(X1 - 4_130.0, Y0 - 5_000.0, X1 + 6_000.0, Y0 + 7_270.0)
    r = stats(rclient, geom)
    assert r.status_code == 200, r.text
    check(r.json(), reference(source, geom))


def test_polygon_outside_is_a_400_naming_the_raster(rclient: TestClient, imported: Any) -> None:
    geom = box(X1 + 1_000.0, Y0, X1 + 9_000.0, Y1)
    r = stats(rclient, geom)
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "outside_raster"
    assert "'magtest'" in body["detail"]
    assert body["field"] == "geometry"


def test_polygon_between_pixel_centres_counts_zero(rclient: TestClient, imported: Any) -> None:
    # A sliver inside one pixel, clear of its centre.
    geom = box(X0 + 10.0, Y1 - 30.0, X0 + 30.0, Y1 - 10.0)
    r = stats(rclient, geom)
    assert r.status_code == 200, r.text
    assert r.json()["bands"][0]["count"] == 0
    assert r.json()["pixels_covered"] == 0


def test_requested_percentiles_and_bins(rclient: TestClient, imported: Any, source: Path) -> None:
    r = stats(rclient, INSIDE, percentiles="10,90,99.5", bins=37)
    assert r.status_code == 200, r.text
    values = reference(source, INSIDE)
    check(r.json(), values, bins=37)
    band = r.json()["bands"][0]
    for p in (10, 90, 99.5):
        assert band["percentiles"][str(p)] == pytest.approx(float(np.percentile(values, p)))


@pytest.mark.parametrize(
    ("body", "params", "field"),
    [
        ({"type": "Point", "coordinates": [62.0, 29.1]}, {}, "geometry"),
        ({"type": "Polygon", "coordinates": [[[62.0, 29.1], [62.1, 29.1]]]}, {}, "geometry"),
        ({"type": "Polygon", "coordinates": "nonsense"}, {}, "geometry"),
        ({"type": "Feature", "geometry": "x"}, {}, "geometry"),
        ({"type": "Feature", "geometry": [1]}, {}, "geometry"),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]},
            {},
            "geometry",
        ),
        (mapping(INSIDE), {"crs": "EPSG:32641", "bins": 0}, "bins"),
        (mapping(INSIDE), {"crs": "EPSG:32641", "bins": 5000}, "bins"),
        (mapping(INSIDE), {"crs": "EPSG:32641", "percentiles": "abc"}, "percentiles"),
        (mapping(INSIDE), {"crs": "EPSG:32641", "percentiles": "101"}, "percentiles"),
        (mapping(INSIDE), {"crs": "EPSG:999999"}, "crs"),
    ],
)
def test_bad_statistics_input_is_a_4xx_naming_the_field(
    rclient: TestClient, imported: Any, body: Any, params: dict[str, Any], field: str
) -> None:
    for route in ("statistics", "clip"):
        if route == "clip" and field in ("bins", "percentiles"):
            continue
        r = rclient.post(f"/rasters/magtest/{route}", json=body, params=params)
        assert 400 <= r.status_code < 500, (route, r.text)
        assert r.json()["field"] == field


def test_statistics_body_that_is_not_an_object_is_422(rclient: TestClient, imported: Any) -> None:
    r = rclient.post("/rasters/magtest/statistics", json=[1, 2, 3])
    assert r.status_code == 422


def test_unknown_raster_is_404(rclient: TestClient) -> None:
    r = rclient.post("/rasters/nosuch/statistics", json=mapping(INSIDE))
    assert r.status_code == 404
    assert "'nosuch'" in r.json()["detail"]


# ---------------------------------------------------------------------- points


@pytest.mark.parametrize(
    ("x", "y"),
    [(400_050.0, 3_239_950.0), (412_345.6, 3_229_876.5), (429_850.0, 3_220_050.0)],
)
def test_point_value_is_the_pixel_holding_the_point(
    rclient: TestClient, imported: Any, x: float, y: float
) -> None:
    values = make_values()
    lon, lat = TO_LL.transform(x, y)
    for params in ({"lon": lon, "lat": lat}, {"lon": x, "lat": y, "crs": "EPSG:32641"}):
        r = rclient.get("/rasters/magtest/point", params=params)
        assert r.status_code == 200, r.text
        row, col = math.floor((Y1 - y) / PIXEL), math.floor((x - X0) / PIXEL)
        assert (r.json()["row"], r.json()["col"]) == (row, col)
        expected = values[row, col]
        got = r.json()["values"][0]
        if expected == NODATA:
            assert got is None
        else:
            assert got == pytest.approx(float(expected))


def test_point_in_nodata_is_null(rclient: TestClient, imported: Any) -> None:
    r = rclient.get(
        "/rasters/magtest/point", params={"lon": 413_050.0, "lat": 3_233_050.0, "crs": CRS}
    )
    assert r.status_code == 200
    assert r.json()["values"] == [None]
    assert (r.json()["row"], r.json()["col"]) == (69, 130)
    assert HOLE[0].start <= 69 < HOLE[0].stop


@pytest.mark.parametrize(
    "params",
    [
        {"lon": 70.0, "lat": 30.0},
        {"lon": 500.0, "lat": 30.0},
        {"lon": X1 + 1.0, "lat": Y1 - 1.0, "crs": CRS},
    ],
)
def test_point_outside_is_a_400_naming_the_raster(
    rclient: TestClient, imported: Any, params: dict[str, Any]
) -> None:
    r = rclient.get("/rasters/magtest/point", params=params)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "outside_raster"
    assert "'magtest'" in r.json()["detail"]


def test_point_bad_query_is_422(rclient: TestClient, imported: Any) -> None:
    r = rclient.get("/rasters/magtest/point", params={"lon": "east", "lat": 29})
    assert r.status_code == 422
    assert r.json()["field"] == "lon"
    r = rclient.get("/rasters/magtest/point", params={"lon": 62, "lat": 29, "crs": "EPSG:3857"})
    assert r.status_code == 422
    assert r.json()["field"] == "crs"


# ----------------------------------------------------------------------- clips


def test_clip_equals_the_masked_array(rclient: TestClient, imported: Any, source: Path) -> None:
    geom = INSIDE.difference(box(410_000.0, 3_228_000.0, 414_000.0, 3_232_000.0))
    r = rclient.post("/rasters/magtest/clip", json=mapping(geom), params={"crs": CRS})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/tiff"
    with rasterio.open(source) as ds:
        expected, expected_transform = rasterio.mask.mask(
            ds, [mapping(geom)], crop=True, filled=False
        )
    with MemoryFile(r.content) as mem, mem.open() as got:
        assert got.crs.to_epsg() == 32641
        assert got.transform == expected_transform
        assert got.nodata == NODATA
        data = got.read(masked=True)
    assert data.shape == expected.shape
    np.testing.assert_array_equal(data.mask, expected.mask)
    np.testing.assert_array_equal(data.compressed(), expected.compressed())


def test_clip_outside_is_a_400(rclient: TestClient, imported: Any) -> None:
    geom = box(X1 + 1_000.0, Y0, X1 + 9_000.0, Y1)
    r = rclient.post("/rasters/magtest/clip", json=mapping(geom), params={"crs": CRS})
    assert r.status_code == 400
    assert r.json()["code"] == "outside_raster"


def test_clip_without_nodata_uses_a_mask(
    rclient: TestClient, db: Any, raster_dir: Path, tmp_path: Path
) -> None:
    from cadastre.survey.raster import import_raster
    from tests.raster.conftest import meta, write_raster

    values = np.arange(300 * 200, dtype=np.int16).reshape(200, 300)
    src = write_raster(tmp_path / "int.tif", values, nodata=None)
    import_raster(db, raster_dir, src, meta("ints"), actor="t")
    geom = Polygon([(401_000.0, 3_221_000.0), (411_000.0, 3_221_000.0), (401_000.0, 3_231_000.0)])
    r = rclient.post("/rasters/ints/clip", json=mapping(geom), params={"crs": CRS})
    assert r.status_code == 200, r.text
    with rasterio.open(src) as ds:
        expected, _ = rasterio.mask.mask(ds, [mapping(geom)], crop=True, filled=False)
    with MemoryFile(r.content) as mem, mem.open() as got:
        assert got.nodata is None
        data = got.read(masked=True)
    np.testing.assert_array_equal(data.mask, expected.mask)
    np.testing.assert_array_equal(data.compressed(), expected.compressed())


def test_coordinates_in_the_wrong_crs_are_refused(rclient: TestClient, imported: Any) -> None:
    # UTM metres sent as lon/lat (no crs): a clear 422, not a 500.
    r = stats(rclient, INSIDE, crs=None)
    assert r.status_code == 422
    assert r.json()["field"] == "geometry"
    assert "OGC:CRS84" in r.json()["detail"]


def test_window_larger_than_the_cap_is_refused(
    rclient: TestClient, imported: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cadastre.survey import raster

    monkeypatch.setattr(raster, "MAX_CLIP_PIXELS", 1000)
    monkeypatch.setattr(raster, "MAX_STATISTICS_PIXELS", 1000)
    for route in ("statistics", "clip"):
        r = rclient.post(f"/rasters/magtest/{route}", json=mapping(INSIDE), params={"crs": CRS})
        assert r.status_code == 400
        assert r.json()["field"] == "geometry"
        assert "at most 1,000 pixels" in r.json()["detail"]
