"""Vector survey layers through the API: every format in, every bad file refused whole.

Files are made in tmp_path with geopandas/pyogrio (no binary fixtures).
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import pytest
import shapely
import shapely.affinity
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text

from api.app import create_app
from api.routers import survey as survey_router
from cadastre.settings import Settings
from tests.conftest import SavepointDatabase
from tests.live import ADMIN

# Geochemical samples near Reko Diq (Chagai), in lon/lat.
LONS = [62.40, 62.45, 62.50, 62.55]
LATS = [28.95, 28.97, 29.00, 29.02]
MiB = 1024 * 1024
ODD = "Au (ppm) %"  # a name that needs quoting everywhere it reaches SQL


def samples() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "sample_id": ["RD-001", "RD-002", "RD-003", "RD-004"],
            "cu_ppm": [1250.5, 80.0, np.nan, 4300.25],
            "depth_m": [2, 5, 10, 20],
            "collected_on": pd.to_datetime(["2024-01-05", "2024-01-06", "2024-02-01", None]),
            ODD: [0.12, 0.5, 1.75, 0.0],
        },
        geometry=gpd.points_from_xy(LONS, LATS),
        crs="EPSG:4326",
    )


def write_gpkg(frame: gpd.GeoDataFrame, folder: Path) -> Path:
    path = folder / "samples.gpkg"
    frame.to_file(path, driver="GPKG", engine="pyogrio")
    return path


def write_shapezip(frame: gpd.GeoDataFrame, folder: Path, drop: str | None = None) -> Path:
    shp_dir = folder / "shp"
    shp_dir.mkdir(exist_ok=True)
    frame.to_file(shp_dir / "samples.shp", engine="pyogrio")
    path = folder / "samples.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for part in sorted(shp_dir.iterdir()):
            if drop is None or not part.name.endswith(drop):
                archive.write(part, part.name)
    return path


def write_geojson(frame: gpd.GeoDataFrame, folder: Path) -> Path:
    path = folder / "samples.geojson"
    frame.to_file(path, driver="GeoJSON", engine="pyogrio")
    return path


def write_kml(frame: gpd.GeoDataFrame, folder: Path) -> Path:
    path = folder / "samples.kml"
    frame.to_file(path, driver="KML", engine="pyogrio")
    return path


def write_csv_lonlat(frame: gpd.GeoDataFrame, folder: Path) -> Path:
    path = folder / "samples.csv"
    table = pd.DataFrame(frame.drop(columns="geometry"))
    table["Longitude"] = frame.geometry.x
    table["Latitude"] = frame.geometry.y
    table.to_csv(path, index=False)
    return path


def write_csv_wkt(frame: gpd.GeoDataFrame, folder: Path) -> Path:
    path = folder / "samples_wkt.csv"
    table = pd.DataFrame(frame.drop(columns="geometry"))
    table["WKT"] = frame.geometry.to_wkt()
    table.to_csv(path, index=False)
    return path


WRITERS: dict[str, Callable[[gpd.GeoDataFrame, Path], Path]] = {
    "gpkg": write_gpkg,
    "shapezip": write_shapezip,
    "geojson": write_geojson,
    "kml": write_kml,
    "csv-lonlat": write_csv_lonlat,
    "csv-wkt": write_csv_wkt,
}

FIELDS = {
    "slug": "rd_samples",
    "name": "Reko Diq soil samples",
    "kind": "geochemistry",
    "source": "test survey",
    "licence": "CC BY 4.0",
}


def upload(client: TestClient, path: Path, **fields: Any) -> httpx.Response:
    data = {
        **FIELDS,
        **{k: str(v).lower() if isinstance(v, bool) else v for k, v in fields.items()},
    }
    with path.open("rb") as fh:
        return client.post(
            "/survey/layers",
            data=data,
            files={"file": (path.name, fh)},
        )


def written(conn: Connection) -> tuple[int, int]:
    layers = conn.execute(text("SELECT count(*) FROM survey_layers")).scalar_one()
    feats = conn.execute(text("SELECT count(*) FROM survey_features")).scalar_one()
    return int(layers), int(feats)


def stored(conn: Connection, slug: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        text(
            "SELECT f.fid, f.properties, ST_X(ST_PointOnSurface(f.geom)) AS x, "
            "ST_Y(ST_PointOnSurface(f.geom)) AS y, "
            "ST_AsText(f.geom) AS wkt FROM survey_features f "
            "JOIN survey_layers l ON l.id = f.layer_id WHERE l.slug = :slug ORDER BY f.fid"
        ),
        {"slug": slug},
    )
    return [dict(r._mapping) for r in rows]


# ------------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_every_format_loads_points_and_attributes(
    fmt: str, client: TestClient, conn: Connection, tmp_path: Path
) -> None:
    path = WRITERS[fmt](samples(), tmp_path)
    r = upload(client, path)
    assert r.status_code == 201, r.text
    entry = r.json()
    assert r.headers["location"] == "/survey/layers/rd_samples"
    assert entry["feature_count"] == 4
    assert entry["geometry_type"] == "Point"
    assert entry["storage"] == "vector"
    assert entry["loaded_by"] == "test-admin"  # the signed-in account
    assert entry["extent"] == pytest.approx([62.40, 28.95, 62.55, 29.02])
    rows = stored(conn, "rd_samples")
    assert [r["fid"] for r in rows] == [1, 2, 3, 4]
    assert [r["x"] for r in rows] == pytest.approx(LONS, abs=1e-9)
    assert [r["y"] for r in rows] == pytest.approx(LATS, abs=1e-9)
    props = rows[0]["properties"]
    assert props["sample_id"] == "RD-001"
    assert float(props["cu_ppm"]) == pytest.approx(1250.5)
    # NaN became null (KML keeps no types: an empty text, which is null too)
    assert rows[2]["properties"]["cu_ppm"] in (None, "")
    if fmt in ("gpkg", "geojson"):
        types = {a["name"]: a["type"] for a in entry["attributes"]}
        assert types["cu_ppm"] == "number"
        assert types["depth_m"] == "integer"
        assert types["collected_on"] == "date"
        assert props["collected_on"] == "2024-01-05"
        assert rows[3]["properties"]["collected_on"] is None


def test_a_utm_layer_is_stored_where_pyproj_puts_it(
    client: TestClient, conn: Connection, tmp_path: Path
) -> None:
    to_utm = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32642", always_xy=True)
    corners = [(66.0, 27.5), (66.2, 27.5), (66.2, 27.7), (66.0, 27.7)]
    utm = [to_utm.transform(x, y) for x, y in corners]
    frame = gpd.GeoDataFrame(
        {"unit": ["Khuzdar block"]}, geometry=[shapely.Polygon(utm)], crs="EPSG:32642"
    )
    path = write_gpkg(frame, tmp_path)
    r = upload(client, path, slug="khuzdar_utm", kind="geology")
    assert r.status_code == 201, r.text
    assert r.json()["original_crs"] == "EPSG:32642"
    (row,) = stored(conn, "khuzdar_utm")
    got = shapely.get_coordinates(shapely.from_wkt(row["wkt"]))
    back = pyproj.Transformer.from_crs("EPSG:32642", "EPSG:4326", always_xy=True)
    expected = np.array([back.transform(x, y) for x, y in [*utm, utm[0]]])
    assert np.abs(got - expected).max() < 1e-9
    assert np.abs(got - np.array([*corners, corners[0]])).max() < 1e-6


def test_a_file_without_crs_in_lonlat_is_taken_as_wgs84_and_says_so(
    client: TestClient, tmp_path: Path
) -> None:
    path = tmp_path / "nocrs.csv"
    path.write_text("name,lon,lat\nA,62.4,28.9\nB,62.5,29.0\n")
    r = upload(client, path, slug="nocrs")
    assert r.status_code == 201, r.text
    assert r.json()["original_crs"] == "EPSG:4326"
    assert any("EPSG:4326 assumed" in n for n in r.json()["notes"])


def test_a_projected_csv_loads_with_its_crs(
    client: TestClient, conn: Connection, tmp_path: Path
) -> None:
    x, y = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32642", always_xy=True).transform(
        66.5, 27.9
    )
    path = tmp_path / "collars.csv"
    path.write_text(f"hole,E,N,depth\nDH-1,{x},{y},120.5\n")
    r = upload(
        client, path, slug="collars", kind="drill_holes", lon_col="E", lat_col="N", crs="EPSG:32642"
    )
    assert r.status_code == 201, r.text
    (row,) = stored(conn, "collars")
    assert (row["x"], row["y"]) == pytest.approx((66.5, 27.9), abs=1e-9)


def geology() -> gpd.GeoDataFrame:
    square = shapely.Polygon([(62.0, 28.0), (62.3, 28.0), (62.3, 28.2), (62.0, 28.2)])
    return gpd.GeoDataFrame(
        {"unit": ["Sinjrani volcanics", "Saindak formation"], "age_ma": [95.5, 40.0]},
        geometry=[square, shapely.affinity.translate(square, 0.5, 0.0)],
        crs="EPSG:4326",
    )


def write_multilayer_gpkg(folder: Path) -> Path:
    """A GeoPackage holding two layers: 4 sample points and 2 geology polygons."""
    path = folder / "survey.gpkg"
    samples().to_file(path, driver="GPKG", layer="soil_samples", engine="pyogrio")
    geology().to_file(path, driver="GPKG", layer="geology_units", engine="pyogrio")
    return path


def test_a_multi_layer_geopackage_needs_a_layer_named(
    client: TestClient, conn: Connection, tmp_path: Path
) -> None:
    path = write_multilayer_gpkg(tmp_path)
    before = written(conn)
    r = upload(client, path)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "layer"
    assert "holds 2 layers (soil_samples, geology_units); name one with layer" in r.json()["detail"]
    r = upload(client, path, layer="faults")
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "layer"
    assert "has no layer 'faults'; its layers: soil_samples, geology_units" in r.json()["detail"]
    assert written(conn) == before


def test_the_named_layer_of_a_geopackage_is_loaded(
    client: TestClient, conn: Connection, tmp_path: Path
) -> None:
    path = write_multilayer_gpkg(tmp_path)
    r = upload(client, path, slug="chagai_geology", kind="geology", layer="geology_units")
    assert r.status_code == 201, r.text
    entry = r.json()
    assert entry["feature_count"] == 2
    assert entry["geometry_type"] == "Polygon"
    assert entry["attributes"] == [
        {"name": "unit", "type": "string"},
        {"name": "age_ma", "type": "number"},
    ]
    rows = stored(conn, "chagai_geology")
    assert [row["properties"] for row in rows] == [
        {"unit": "Sinjrani volcanics", "age_ma": 95.5},
        {"unit": "Saindak formation", "age_ma": 40.0},
    ]
    r = upload(client, path, layer="soil_samples")
    assert r.status_code == 201, r.text
    assert r.json()["feature_count"] == 4
    assert r.json()["geometry_type"] == "Point"
    assert [row["properties"]["sample_id"] for row in stored(conn, "rd_samples")] == [
        "RD-001",
        "RD-002",
        "RD-003",
        "RD-004",
    ]


def add_attribute_table(path: Path, name: str = "layer_styles") -> None:
    """A table without geometry, as QGIS adds to keep styles (``layer_styles``)."""
    table = pd.DataFrame({"f_table_name": ["soil_samples"], "stylename": ["default"]})
    pyogrio.write_dataframe(table, path, layer=name, driver="GPKG")
    assert [str(n) for n, g in pyogrio.list_layers(path) if g is None] == [name]


def test_a_table_without_geometry_is_not_a_layer_to_choose(
    client: TestClient, conn: Connection, tmp_path: Path
) -> None:
    path = write_gpkg(samples(), tmp_path)
    add_attribute_table(path)
    r = upload(client, path)
    assert r.status_code == 201, r.text
    assert r.json()["feature_count"] == 4
    assert len(stored(conn, "rd_samples")) == 4

    several = write_multilayer_gpkg(tmp_path)
    add_attribute_table(several)
    r = upload(client, several, slug="other")
    assert r.status_code == 422, r.text
    assert "holds 2 layers (soil_samples, geology_units); name one" in r.json()["detail"]
    before = written(conn)
    r = upload(client, several, slug="other", layer="layer_styles")
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "layer"
    assert (
        "layer 'layer_styles' of survey.gpkg is a table without geometry; its layers: "
        "soil_samples, geology_units" in r.json()["detail"]
    )
    assert written(conn) == before


# ------------------------------------------------------------------ refusals


def _geojson(path: Path, features: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def _feature(geometry: dict[str, Any] | None, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": props}


POINT = {"type": "Point", "coordinates": [62.4, 28.9]}
SQUARE = {"type": "Polygon", "coordinates": [[[62, 28], [63, 28], [63, 29], [62, 29], [62, 28]]]}
BOWTIE = {"type": "Polygon", "coordinates": [[[62, 28], [63, 29], [63, 28], [62, 29], [62, 28]]]}


def bad_gpkg(folder: Path) -> Path:
    path = folder / "broken.gpkg"
    path.write_bytes(b"this is not a GeoPackage at all")
    return path


def no_crs_utm(folder: Path) -> Path:
    path = folder / "utm.csv"
    path.write_text("name,x,y\nA,330000,3260000\n")
    return path


def mixed(folder: Path) -> Path:
    return _geojson(folder / "mixed.geojson", [_feature(POINT, n=1), _feature(SQUARE, n=2)])


def invalid(folder: Path) -> Path:
    return _geojson(folder / "bowtie.geojson", [_feature(SQUARE, n=1), _feature(BOWTIE, n=2)])


def empty(folder: Path) -> Path:
    return _geojson(folder / "empty.geojson", [_feature(POINT, n=1), _feature(None, n=2)])


def not_a_zip(folder: Path) -> Path:
    path = folder / "layer.zip"
    path.write_text("plain text with a zip name")
    return path


def zip_without_shapefile(folder: Path) -> Path:
    path = folder / "nothing.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "no layer here")
    return path


def zip_with_two_shapefiles(folder: Path) -> Path:
    one = write_shapezip(samples(), folder)
    path = folder / "two.zip"
    with zipfile.ZipFile(one) as src, zipfile.ZipFile(path, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
            dst.writestr(name.replace("samples", "more"), src.read(name))
    return path


def zip_without_prj(folder: Path) -> Path:
    return write_shapezip(samples(), folder, drop=".prj")


def zip_without_dbf(folder: Path) -> Path:
    return write_shapezip(samples(), folder, drop=".dbf")


def csv_without_coordinates(folder: Path) -> Path:
    path = folder / "table.csv"
    path.write_text("sample,cu_ppm\nA,12\n")
    return path


def csv_bad_number(folder: Path) -> Path:
    path = folder / "badnum.csv"
    path.write_text("lon,lat\n62.4,28.9\n62.5,north\n")
    return path


REFUSALS: dict[str, tuple[Callable[[Path], Path], int, str]] = {
    "unreadable": (bad_gpkg, 422, "cannot read broken.gpkg"),
    "no crs, not lon/lat": (no_crs_utm, 422, "declares no CRS"),
    "mixed types": (mixed, 422, "mixed geometry types: 1 Point, 1 Polygon"),
    "invalid geometry": (invalid, 422, "feature 2 has an invalid geometry: Self-intersection"),
    "empty geometry": (empty, 422, "feature 2 has an empty geometry"),
    "not a zip": (not_a_zip, 422, "layer.zip is not a zip archive"),
    "zip without shapefile": (zip_without_shapefile, 422, "holds no Shapefile"),
    "zip with two layers": (zip_with_two_shapefiles, 422, "holds 2 Shapefiles"),
    "shapefile without prj": (zip_without_prj, 422, "missing its .prj"),
    "shapefile without dbf": (zip_without_dbf, 422, "missing its .dbf"),
    "csv without coordinates": (csv_without_coordinates, 422, "no longitude/latitude or WKT"),
    "csv with a bad number": (csv_bad_number, 422, "feature 2: column 'lat' holds 'north'"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_bad_file_is_refused_naming_the_problem_and_nothing_is_written(
    case: str, client: TestClient, conn: Connection, tmp_path: Path
) -> None:
    make, status, message = REFUSALS[case]
    before = written(conn)
    r = upload(client, make(tmp_path))
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]
    assert written(conn) == before


def utm_points(folder: Path, xy: list[tuple[float, float]], name: str) -> Path:
    """A GeoPackage declaring WGS 84 / UTM 42N whose points are the numbers given."""
    frame = gpd.GeoDataFrame(
        {"n": list(range(1, len(xy) + 1))},
        geometry=[shapely.Point(x, y) for x, y in xy],
        crs="EPSG:32642",
    )
    path = folder / f"{name}.gpkg"
    frame.to_file(path, driver="GPKG", engine="pyogrio")
    return path


@pytest.mark.parametrize(
    ("xy", "where"),
    [
        # lon/lat numbers written into a UTM file: a few metres from (0 m, 0 m), west of the zone
        pytest.param([(66.5, 27.9), (67.1, 28.4)], "lon 64.512 to 64.512, lat 0.000", id="lonlat"),
        # eastings 2000 km east of the zone's meridian: lon 89, far past the zone's 72 E
        pytest.param(
            [(2_500_000.0, 3_200_000.0), (2_510_000.0, 3_210_000.0)], "lon 89.0", id="far-east"
        ),
        # a southern-hemisphere northing in a northern zone
        pytest.param([(400_000.0, -3_000_000.0)], "lat -27.119", id="south"),
    ],
)
def test_coordinates_outside_the_crs_area_of_use_are_refused(
    xy: list[tuple[float, float]], where: str, client: TestClient, conn: Connection, tmp_path: Path
) -> None:
    path = utm_points(tmp_path, xy, "wrong_zone")
    before = written(conn)
    r = upload(client, path)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "invalid_geometry"
    assert body["field"] == "crs"
    assert "wrong_zone.gpkg: the features (" in body["detail"]
    assert where in body["detail"]
    assert "lie outside the area of use of EPSG:32642 (Between 66°E and 72°E" in body["detail"]
    assert "is the CRS right?" in body["detail"]
    assert written(conn) == before
    assert client.get("/survey/layers").json()["layers"] == []


def test_lonlat_numbers_read_with_a_utm_crs_are_refused(
    client: TestClient, conn: Connection, tmp_path: Path
) -> None:
    # The caller's crs overrides the file's (none here): lon/lat read as UTM metres.
    path = tmp_path / "lonlat.csv"
    path.write_text("name,lon,lat\nA,66.5,27.9\nB,67.1,28.4\n")
    before = written(conn)
    r = upload(client, path, crs="EPSG:32642")
    assert r.status_code == 422, r.text
    assert "lie outside the area of use of EPSG:32642" in r.json()["detail"]
    assert r.json()["field"] == "crs"
    assert written(conn) == before
    ok = upload(client, path)  # the same file as lon/lat loads
    assert ok.status_code == 201, ok.text


def test_a_layer_reaching_past_its_zone_edge_loads(
    client: TestClient, conn: Connection, tmp_path: Path
) -> None:
    # The rule is about the whole layer: one reaching 0.5 degrees past the zone's west edge
    # (65.5 E in zone 42N, 66-72 E) loads; only a layer wholly outside is refused.
    to_utm = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32642", always_xy=True)
    path = utm_points(tmp_path, [to_utm.transform(65.5, 28.0)], "edge")
    r = upload(client, path)
    assert r.status_code == 201, r.text
    ((x, y),) = [(row["x"], row["y"]) for row in stored(conn, "rd_samples")]
    assert (x, y) == pytest.approx((65.5, 28.0), abs=1e-9)


def test_the_invalid_feature_is_located(client: TestClient, tmp_path: Path) -> None:
    r = upload(client, invalid(tmp_path))
    assert r.json()["where"]["feature"] == 2


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"slug": "licences"}, 422, "'licences' is a built-in collection"),
        ({"slug": "Bad-Slug"}, 422, "slug 'Bad-Slug' must start with a lower-case letter"),
        ({"kind": "gossip"}, 422, "kind 'gossip' is not a survey layer kind"),
        ({"licence": " "}, 422, "licence is required"),
    ],
)
def test_bad_fields_are_refused(
    fields: dict[str, str],
    status: int,
    message: str,
    client: TestClient,
    conn: Connection,
    tmp_path: Path,
) -> None:
    before = written(conn)
    r = upload(client, write_geojson(samples(), tmp_path), **fields)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]
    assert written(conn) == before


def test_an_unknown_file_type_is_refused(client: TestClient, tmp_path: Path) -> None:
    path = tmp_path / "layer.dwg"
    path.write_bytes(b"\x00\x01")
    r = upload(client, path)
    assert r.status_code == 422
    assert "unsupported type '.dwg'" in r.json()["detail"]


# ------------------------------------------------------------ re-import, limits


def test_an_existing_slug_is_409_without_replace(
    client: TestClient, conn: Connection, tmp_path: Path
) -> None:
    assert upload(client, write_geojson(samples(), tmp_path)).status_code == 201
    before = stored(conn, "rd_samples")
    other = _geojson(tmp_path / "other.geojson", [_feature(POINT, n=1)])
    r = upload(client, other)
    assert r.status_code == 409
    assert "'rd_samples' already exists" in r.json()["detail"]
    assert stored(conn, "rd_samples") == before


def test_replace_swaps_the_layer_and_a_failed_replace_keeps_the_old_one(
    client: TestClient, conn: Connection, tmp_path: Path
) -> None:
    assert upload(client, write_geojson(samples(), tmp_path)).status_code == 201
    r = upload(client, invalid(tmp_path), replace=True)
    assert r.status_code == 422
    items = client.get("/collections/rd_samples/items").json()
    assert items["numberReturned"] == 4
    assert {f["properties"]["sample_id"] for f in items["features"]} == {
        "RD-001",
        "RD-002",
        "RD-003",
        "RD-004",
    }
    new = _geojson(tmp_path / "new.geojson", [_feature(POINT, sample_id="NEW-1")])
    r = upload(client, new, replace=True)
    assert r.status_code == 201, r.text
    assert r.json()["feature_count"] == 1
    items = client.get("/collections/rd_samples/items").json()
    assert [f["properties"]["sample_id"] for f in items["features"]] == ["NEW-1"]
    count = conn.execute(text("SELECT count(*) FROM survey_layers WHERE slug = 'rd_samples'"))
    assert count.scalar_one() == 1


def test_an_upload_over_the_limit_is_413_naming_it(
    settings: Settings, db: SavepointDatabase, conn: Connection, tmp_path: Path
) -> None:
    path = tmp_path / "big.csv"
    rows = "\n".join(f"S{i},62.{i % 1000:03d},28.5,{'x' * 200}" for i in range(6000))
    path.write_text("name,lon,lat,note\n" + rows + "\n")
    assert path.stat().st_size > 1024 * 1024
    small = settings.model_copy(update={"max_upload_mb": 1})
    before = written(conn)
    with TestClient(create_app(small, db=db), headers=ADMIN) as c:
        r = upload(c, path)
        assert r.status_code == 413
        assert "limit of 1 MB" in r.json()["detail"]
        assert "CADASTRE_MAX_UPLOAD_MB" in r.json()["detail"]
        assert written(conn) == before
        ok = upload(c, write_geojson(samples(), tmp_path))
        assert ok.status_code == 201, ok.text


def multipart_stream(
    fields: dict[str, str], filename: str, parts: Iterator[bytes], boundary: str = "gapsBOUNDARY"
) -> tuple[Iterator[bytes], str]:
    """A multipart body made by hand, as a generator: httpx sends it chunked, without length."""

    def body() -> Iterator[bytes]:
        for key, value in fields.items():
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
            ).encode()
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        yield from parts
        yield f"\r\n--{boundary}--\r\n".encode()

    return body(), f"multipart/form-data; boundary={boundary}"


def post_streamed(
    client: TestClient, path: str, body: Iterator[bytes], content_type: str, actor: str
) -> httpx.Response:
    """POST a generator body; checks that no Content-Length goes with it."""
    request = client.build_request(
        "POST", path, content=body, headers={"Content-Type": content_type, "X-Actor": actor}
    )
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    return client.send(request)


def csv_rows(total_bytes: int) -> Iterator[bytes]:
    """A lon/lat CSV of about ``total_bytes``, in 64 KiB pieces."""
    yield b"name,lon,lat,note\n"
    sent = 0
    i = 0
    while sent < total_bytes:
        piece = "".join(f"S{i + k},62.4,28.9,{'x' * 200}\n" for k in range(300)).encode()
        i += 300
        sent += len(piece)
        yield piece


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(MiB + 20 * 1024, id="file-just-over-the-limit"),  # the copy to disk stops it
        pytest.param(3 * MiB, id="body-far-over-the-limit"),  # the request's byte count stops it
    ],
)
def test_a_streamed_upload_without_length_over_the_limit_is_413_and_writes_nothing(
    size: int, settings: Settings, db: SavepointDatabase, conn: Connection
) -> None:
    small = settings.model_copy(update={"max_upload_mb": 1})
    before = written(conn)
    with TestClient(create_app(small, db=db), headers=ADMIN) as c:
        body, ctype = multipart_stream(FIELDS, "big.csv", csv_rows(size))
        r = post_streamed(c, "/survey/layers", body, ctype, "geologist.quetta")
        assert r.status_code == 413, r.text
        assert r.json()["code"] == "upload_too_large"
        assert "limit of 1 MB" in r.json()["detail"]
        assert "CADASTRE_MAX_UPLOAD_MB" in r.json()["detail"]
        assert written(conn) == before
        assert c.get("/survey/layers").json()["layers"] == []
        # The same route takes a streamed file under the limit.
        body, ctype = multipart_stream(FIELDS, "small.csv", csv_rows(200 * 1024))
        ok = post_streamed(c, "/survey/layers", body, ctype, "geologist.quetta")
        assert ok.status_code == 201, ok.text
        assert ok.json()["feature_count"] > 900


def _over_the_limit_declared(c: TestClient, folder: Path) -> httpx.Response:
    path = folder / "big.csv"
    path.write_bytes(b"".join(csv_rows(MiB + 100 * 1024)))
    return upload(c, path)


def _over_the_limit_streamed(size: int) -> Callable[[TestClient, Path], httpx.Response]:
    def send(c: TestClient, folder: Path) -> httpx.Response:
        body, ctype = multipart_stream(FIELDS, "big.csv", csv_rows(size))
        return post_streamed(c, "/survey/layers", body, ctype, "geologist.quetta")

    return send


def _existing_slug(c: TestClient, folder: Path) -> httpx.Response:
    assert upload(c, write_geojson(samples(), folder)).status_code == 201
    return upload(c, write_gpkg(samples(), folder))


REFUSED_UPLOADS: dict[str, tuple[Callable[[TestClient, Path], httpx.Response], int, bool]] = {
    # case: (send it, status, whether the file reaches the temporary folder)
    "413 by Content-Length": (_over_the_limit_declared, 413, False),
    "413 streamed, file past the limit": (_over_the_limit_streamed(MiB + 20 * 1024), 413, True),
    "413 streamed, body past the limit": (_over_the_limit_streamed(3 * MiB), 413, False),
    "422 unsupported type": (lambda c, f: upload(c, f / "x.dwg"), 422, True),
    "422 invalid geometry": (lambda c, f: upload(c, invalid(f)), 422, True),
    "422 not a GeoPackage": (lambda c, f: upload(c, bad_gpkg(f)), 422, True),
    "422 outside the CRS": (lambda c, f: upload(c, utm_points(f, [(66.5, 27.9)], "p")), 422, True),
    "409 existing slug": (_existing_slug, 409, True),
}


@pytest.mark.parametrize("case", list(REFUSED_UPLOADS))
def test_a_refused_upload_leaves_no_temporary_file(
    case: str,
    settings: Settings,
    db: SavepointDatabase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    send, status, reaches_disk = REFUSED_UPLOADS[case]
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    folders: list[Path] = []
    save = survey_router.save_upload

    def watched_save(upload: Any, folder: Path, limit_mb: int) -> Path:
        folders.append(folder)
        assert folder.is_dir()
        return save(upload, folder, limit_mb)

    monkeypatch.setattr(survey_router, "save_upload", watched_save)
    files = tmp_path / "files"
    files.mkdir()
    (files / "x.dwg").write_bytes(b"\x00\x01")
    small = settings.model_copy(update={"max_upload_mb": 1})
    with TestClient(create_app(small, db=db), headers=ADMIN) as c:
        r = send(c, files)
    assert r.status_code == status, r.text
    if reaches_disk:  # the upload was copied to a folder of the temporary directory watched
        assert folders
        assert all(folder.parent == temp for folder in folders)
    assert sorted(p.name for p in temp.iterdir()) == []


# ----------------------------------------------------------------- catalogue


def test_catalogue_lists_describes_and_deletes(
    client: TestClient, conn: Connection, tmp_path: Path
) -> None:
    upload(client, write_geojson(samples(), tmp_path), synthetic=True, description="made up")
    listing = client.get("/survey/layers").json()["layers"]
    assert [x["slug"] for x in listing] == ["rd_samples"]
    entry = client.get("/survey/layers/rd_samples").json()
    assert entry["synthetic"] is True
    assert entry["description"] == "made up"
    assert entry["kind"] == "geochemistry"
    assert entry["licence"] == "CC BY 4.0"
    assert {"name": "sample_id", "type": "string"} in entry["attributes"]
    assert date.fromisoformat(entry["loaded_at"][:10])
    r = client.delete("/survey/layers/rd_samples")
    assert r.status_code == 204
    assert written(conn) == (0, 0)
    assert client.get("/survey/layers/rd_samples").status_code == 404
    assert client.get("/collections/rd_samples").status_code == 404
    assert client.delete("/survey/layers/rd_samples").status_code == 404


def test_an_integer_beyond_bigint_is_kept_as_a_number_and_served(
    client: TestClient, conn: Connection, tmp_path: Path
) -> None:
    """pandas reads 18446744073709551615 as uint64; stored as an integer attribute, every
    query casting it to bigint would fail. It is typed a number instead."""
    path = tmp_path / "bigint.csv"
    path.write_text("name,lon,lat,serial\nA,62.4,28.9,18446744073709551615\nB,62.5,29.0,7\n")
    r = upload(client, path, slug="bigint")
    assert r.status_code == 201, r.text
    types = {a["name"]: a["type"] for a in r.json()["attributes"]}
    assert types["serial"] == "number"
    items = client.get("/collections/bigint/items")
    assert items.status_code == 200, items.text
    assert len(items.json()["features"]) == 2
    assert (
        client.get("/collections/bigint/items?filter=serial%20%3E%2010").json()["numberReturned"]
        == 1
    )
    tile = client.get("/tiles/bigint/5/21/13.mvt")
    assert tile.status_code == 200, tile.text


def test_a_hostile_layer_name_is_escaped_in_html_pages(client: TestClient, tmp_path: Path) -> None:
    path = tmp_path / "xss.csv"
    path.write_text('name,lon,lat\n"<img src=x onerror=alert(2)>",62.4,28.9\n')
    r = upload(client, path, slug="xss", name="<script>alert(1)</script>")
    assert r.status_code == 201, r.text
    for url in ("/collections/xss?f=html", "/collections/xss/items?f=html", "/collections?f=html"):
        page = client.get(url).text
        assert "<script>alert(1)</script>" not in page, url
        assert "<img src=x" not in page, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, url


def test_a_layer_with_more_features_than_allowed_is_refused(
    settings: Settings, db: SavepointDatabase, conn: Connection, tmp_path: Path
) -> None:
    limited = settings.model_copy(update={"max_import_features": 3})
    with TestClient(create_app(limited, db=db), headers=ADMIN) as c:
        before = written(conn)
        r = upload(c, write_gpkg(samples(), tmp_path))  # four samples
        assert r.status_code == 422, r.text
        assert "holds 4 features; at most 3" in r.json()["detail"]
        assert written(conn) == before
