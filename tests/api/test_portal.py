"""The portal's routes: the page at / for browsers, its assets, reading an area file."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely
from fastapi.testclient import TestClient

from api.app import create_app
from cadastre.settings import Settings
from tests.conftest import SavepointDatabase

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
PAGE = (
    "<!doctype html><html><head><!--PORTAL-CONFIG-->"
    '<script type="module" src="/portal/assets/main-ABC123.js"></script></head></html>'
)


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """A portal folder as the build leaves it: index.html and hashed assets."""
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text(PAGE)
    (tmp_path / "assets" / "main-ABC123.js").write_text("console.log('portal')")
    (tmp_path / "assets" / "style-XYZ789.css").write_text("body{}")
    return tmp_path


def _client(settings: Settings, db: SavepointDatabase, **changes: object) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=changes), db=db))


@pytest.fixture
def portal(settings: Settings, db: SavepointDatabase, built: Path) -> Iterator[TestClient]:
    with _client(settings, db, portal_dir=built) as c:
        yield c


def test_a_browser_gets_the_portal_and_ogc_clients_the_landing_page(portal: TestClient) -> None:
    r = portal.get("/", headers={"Accept": BROWSER})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-cache"
    assert "/portal/assets/main-ABC123.js" in r.text
    assert '<script id="portal-config" type="application/json">' in r.text
    # The OGC landing page is still there, as JSON and as HTML.
    for headers, params in (
        ({"Accept": "application/json"}, {}),
        ({"Accept": BROWSER}, {"f": "json"}),
    ):
        landing = portal.get("/", headers=headers, params=params)
        assert landing.headers["content-type"].startswith("application/json")
        assert any(link["rel"] == "conformance" for link in landing.json()["links"])
    html = portal.get("/", params={"f": "html"}, headers={"Accept": BROWSER})
    assert html.headers["content-type"].startswith("text/html")
    assert "/conformance" in html.text and "portal-config" not in html.text


def test_the_basemap_is_configured_and_nothing_external_by_default(
    settings: Settings, db: SavepointDatabase, built: Path
) -> None:
    def config(client: TestClient) -> dict[str, object]:
        text = client.get("/", headers={"Accept": BROWSER}).text
        start = text.index('type="application/json">') + len('type="application/json">')
        return dict(json.loads(text[start : text.index("</script>", start)]))

    with _client(settings, db, portal_dir=built) as c:
        assert config(c) == {"basemap": None}
    url = "https://tiles.example.org/{z}/{x}/{y}.png?</script><b>"
    with _client(settings, db, portal_dir=built, basemap_url=url, basemap_attribution="© E") as c:
        page = c.get("/", headers={"Accept": BROWSER}).text
        assert "</script><b>" not in page  # escaped inside the JSON
        assert config(c) == {"basemap": {"url": url, "attribution": "© E"}}


def test_without_a_build_browsers_get_the_landing_page(
    settings: Settings, db: SavepointDatabase, tmp_path: Path
) -> None:
    with _client(settings, db, portal_dir=tmp_path / "missing") as c:
        r = c.get("/", headers={"Accept": BROWSER})
    assert r.status_code == 200
    assert "/conformance" in r.text


def test_assets_are_kept_for_a_year(portal: TestClient) -> None:
    r = portal.get("/portal/assets/main-ABC123.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert (
        portal.get("/portal/assets/style-XYZ789.css").headers["content-type"].startswith("text/css")
    )
    for name in ("nope.js", "..%2Findex.html", ".hidden"):
        assert portal.get(f"/portal/assets/{name}").status_code == 404, name


def _zipped_shapefile(folder: Path) -> Path:
    square = shapely.box(330000, 3340000, 340000, 3350000)  # 10 km of UTM 42N
    gpd.GeoDataFrame({"n": [1]}, geometry=[square], crs="EPSG:32642").to_file(folder / "a.shp")
    archive = folder / "a.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for part in folder.glob("a.*"):
            if part != archive:
                z.write(part, part.name)
    return archive


def test_reading_an_area_from_a_zipped_shapefile(client: TestClient, tmp_path: Path) -> None:
    archive = _zipped_shapefile(tmp_path)
    r = client.post("/shapes/read", files={"file": ("a.zip", archive.read_bytes())})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["properties"]["original_crs"] == "EPSG:32642"
    shape = shapely.geometry.shape(body["geometry"])
    assert shape.geom_type == "Polygon"
    to_lonlat = pyproj.Transformer.from_crs("EPSG:32642", "EPSG:4326", always_xy=True)
    expected = shapely.transform(
        shapely.box(330000, 3340000, 340000, 3350000),
        lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1])),
    )
    assert shape.symmetric_difference(expected).area < 1e-6 * expected.area  # lon/lat now


def test_reading_an_area_merges_the_polygons_of_a_geojson(client: TestClient) -> None:
    features = [
        {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(b)}
        for b in (shapely.box(67.0, 30.0, 67.1, 30.1), shapely.box(67.1, 30.0, 67.2, 30.1))
    ]
    data = json.dumps({"type": "FeatureCollection", "features": features})
    r = client.post("/shapes/read", files={"file": ("two.geojson", data)})
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["features"] == 2
    merged = shapely.geometry.shape(r.json()["geometry"])
    assert merged.equals(shapely.box(67.0, 30.0, 67.2, 30.1))


def test_reading_an_area_refuses_points_and_unknown_files(client: TestClient) -> None:
    points = json.dumps(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {},
                    "geometry": {"type": "Point", "coordinates": [67, 30]},
                }
            ],
        }
    )
    r = client.post("/shapes/read", files={"file": ("p.geojson", points)})
    assert r.status_code == 422
    assert "an area needs polygons" in r.json()["detail"]
    r = client.post("/shapes/read", files={"file": ("a.docx", b"PK")})
    assert r.status_code == 422
    assert r.json()["field"] == "file"


def test_colour_map_colours(client: TestClient) -> None:
    r = client.get("/rasters/colormaps/viridis")
    assert r.status_code == 200
    colours = r.json()["colors"]
    assert len(colours) == 256 and all(len(c) == 4 for c in colours)
    assert colours[0][:3] == [68, 1, 84]  # viridis starts dark purple
    assert client.get("/rasters/colormaps/nope").status_code == 404
