"""Limits on hostile input: each refusal is a 413/4xx that names the limit and its setting,
and writes nothing."""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection

from api.app import create_app
from cadastre.errors import InvalidInput, UploadTooLarge
from cadastre.settings import Settings
from cadastre.survey.vector import ReadOptions, read_vector
from tests.api.test_hostile import application, counts
from tests.conftest import SavepointDatabase
from tests.live import ADMIN


@pytest.fixture
def small(settings: Settings, db: SavepointDatabase) -> Iterator[TestClient]:
    """A client of a service with a 1 MB body limit."""
    limited = settings.model_copy(update={"max_body_mb": 1})
    with TestClient(create_app(limited, db=db), headers=ADMIN) as c:
        yield c


def big_application() -> dict[str, Any]:
    body = application()
    body["properties"]["remarks"] = "x" * 1000
    body["properties"]["minerals"] = ["Copper"] * 50
    body["padding"] = "y" * (1024 * 1024 + 10)
    return body


def test_a_body_past_the_limit_is_413_naming_it(small: TestClient, conn: Connection) -> None:
    before = counts(conn)
    r = small.post("/licences", json=big_application())
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "body_too_large"
    assert "1 MB" in r.json()["detail"] and "CADASTRE_MAX_BODY_MB" in r.json()["detail"]
    assert counts(conn) == before


def test_a_chunked_body_past_the_limit_is_413(small: TestClient, conn: Connection) -> None:
    # No Content-Length: the limit is counted as the body arrives.
    data = json.dumps(big_application()).encode()
    before = counts(conn)

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(data), 64 * 1024):
            yield data[i : i + 64 * 1024]

    r = small.post(
        "/overlaps/check", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413, r.text
    assert "CADASTRE_MAX_BODY_MB" in r.json()["detail"]
    assert counts(conn) == before


def test_a_body_under_the_limit_is_read(small: TestClient) -> None:
    r = small.post("/licences", json=application())
    assert r.status_code == 201, r.text


def test_bbox_larger_than_the_limit_is_refused_naming_it(client: TestClient) -> None:
    r = client.get("/licences", params={"bbox": "40,0,80,40"})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "bbox" and "CADASTRE_MAX_BBOX_DEG2" in r.json()["detail"]
    r = client.get("/collections/licences/items", params={"bbox": "40,0,80,40"})
    assert r.status_code == 400, r.text
    assert "400" in r.json()["detail"]


def test_a_projected_bbox_is_measured_in_degrees(client: TestClient) -> None:
    # UTM 42N, 3,000 km on a side: far past 400 square degrees.
    r = client.get(
        "/collections/licences/items",
        params={"bbox": "-1000000,2000000,2000000,5000000", "bbox-crs": "EPSG:32642"},
    )
    assert r.status_code == 400, r.text
    assert "CADASTRE_MAX_BBOX_DEG2" in r.json()["detail"]


def test_a_bbox_of_all_pakistan_is_allowed(client: TestClient) -> None:
    assert client.get("/licences", params={"bbox": "60.5,23.3,78,37.3"}).status_code == 200
    r = client.get("/collections/licences/items", params={"bbox": "60.5,23.3,78,37.3"})
    assert r.status_code == 200, r.text


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return path


SHAPEFILE = {"a.shp": b"", "a.shx": b"", "a.dbf": b"", "a.prj": b""}


def test_zip_with_too_many_entries_is_refused(tmp_path: Path) -> None:
    entries = {**SHAPEFILE, **{f"extra/{i}.txt": b"" for i in range(10)}}
    with pytest.raises(InvalidInput, match="CADASTRE_MAX_ZIP_ENTRIES") as err:
        read_vector(_zip(tmp_path / "many.zip", entries), ReadOptions(max_zip_entries=5))
    assert "14 entries" in err.value.message


def test_zip_bomb_is_refused_before_reading(tmp_path: Path) -> None:
    # 3 MiB of zeros compress to a few KB; the limit is 1 MiB uncompressed.
    bomb = _zip(tmp_path / "bomb.zip", {**SHAPEFILE, "a.dbf": b"\0" * (3 * 1024 * 1024)})
    assert bomb.stat().st_size < 64 * 1024
    with pytest.raises(UploadTooLarge, match="CADASTRE_MAX_ZIP_UNCOMPRESSED_MB"):
        read_vector(bomb, ReadOptions(max_zip_bytes=1024 * 1024))


@pytest.mark.parametrize(
    "name", ["../a.shp", "/etc/a.shp", "dir/../../a.shp", "C:/a.shp", "\\\\server\\a.shp"]
)
def test_zip_entry_names_that_escape_are_refused(tmp_path: Path, name: str) -> None:
    entries = {**{k: v for k, v in SHAPEFILE.items() if k != "a.shp"}, name: b""}
    with pytest.raises(InvalidInput, match="unsafe name"):
        read_vector(_zip(tmp_path / "escape.zip", entries))


def test_zip_entry_name_with_nul_is_refused(tmp_path: Path) -> None:
    path = _zip(tmp_path / "nul.zip", {**SHAPEFILE, "b.txt": b""})
    raw = path.read_bytes().replace(b"b.txt", b"b\0txt")
    path.write_bytes(raw)
    with pytest.raises(InvalidInput, match="unsafe name"):
        read_vector(path)


def test_zip_bomb_upload_is_413(
    settings: Settings, db: SavepointDatabase, conn: Connection, tmp_path: Path
) -> None:
    limited = settings.model_copy(update={"max_zip_uncompressed_mb": 1})
    bomb = _zip(tmp_path / "bomb.zip", {**SHAPEFILE, "a.dbf": b"\0" * (3 * 1024 * 1024)})
    form = {"slug": "bomb", "name": "b", "kind": "other", "source": "s", "licence": "l"}
    with TestClient(create_app(limited, db=db), headers=ADMIN) as c:
        r = c.post(
            "/survey/layers",
            data=form,
            files={"file": ("bomb.zip", bomb.read_bytes(), "application/zip")},
        )
    assert r.status_code == 413, r.text
    assert "CADASTRE_MAX_ZIP_UNCOMPRESSED_MB" in r.json()["detail"]


# ------------------------------------------------------------------ shape size


def circle(n: int, lon: float = 66.02, lat: float = 28.02, r: float = 0.01) -> list[list[float]]:
    """A ring of n vertices (closed), a valid polygon."""
    ring = [
        [lon + r * math.cos(2 * math.pi * i / n), lat + r * math.sin(2 * math.pi * i / n)]
        for i in range(n)
    ]
    return [*ring, ring[0]]


def squares(k: int) -> dict[str, Any]:
    """A MultiPolygon of k small disjoint squares."""
    polys = []
    for i in range(k):
        x = 66.0 + 0.02 * i
        polys.append([[[x, 28.0], [x + 0.01, 28.0], [x + 0.01, 28.01], [x, 28.01], [x, 28.0]]])
    return {"type": "MultiPolygon", "coordinates": polys}


CHECK_PROPS = {"licence_type": "exploration_licence", "minerals": ["Copper"]}


@pytest.fixture
def tight(settings: Settings, db: SavepointDatabase) -> Iterator[TestClient]:
    """A service accepting at most 100 vertices and 3 parts a shape."""
    limited = settings.model_copy(update={"max_vertices": 100, "max_parts": 3})
    with TestClient(create_app(limited, db=db), headers=ADMIN) as c:
        yield c


@pytest.mark.parametrize(
    ("geometry", "named"),
    [
        ({"type": "Polygon", "coordinates": [circle(150)]}, "151 vertices; at most 100"),
        (squares(4), "4 parts; at most 3"),
    ],
)
def test_a_shape_past_the_size_limits_is_refused_everywhere(
    tight: TestClient, conn: Connection, geometry: dict[str, Any], named: str
) -> None:
    before = counts(conn)
    for method, url, body in (
        ("POST", "/licences", application(geometry)),
        ("POST", "/overlaps/check", {**application(geometry), "properties": CHECK_PROPS}),
        ("POST", "/aoi/report", geometry),
    ):
        r = tight.request(method, url, json=body)
        assert r.status_code == 422, (url, r.text)
        assert named in r.json()["detail"], (url, r.json())
        assert "CADASTRE_MAX_" in r.json()["detail"]
        assert r.json()["field"] in ("geometry", "body.geometry"), r.json()
    assert counts(conn) == before
    # within the limits the same service takes them
    ok = tight.post("/licences", json=application({"type": "Polygon", "coordinates": [circle(99)]}))
    assert ok.status_code == 201, ok.text
    assert tight.post("/aoi/report", json=squares(3)).status_code == 200


def test_an_import_row_past_the_vertex_limit_is_rejected_naming_it(
    conn: Connection, rules: Any
) -> None:
    import geopandas as gpd
    import shapely

    from cadastre.domain.geometry import ShapeLimits
    from cadastre.errors import ImportRejected
    from cadastre.ingest import import_licences

    frame = gpd.GeoDataFrame(
        {
            "licence_type": ["exploration_licence"] * 2,
            "minerals": ["Copper"] * 2,
            "holder": ["A Co", "B Co"],
        },
        geometry=[shapely.Polygon(circle(20)), shapely.Polygon(circle(300, lon=66.5))],
        crs="EPSG:4326",
    )
    before = counts(conn)
    with pytest.raises(ImportRejected) as caught, conn.begin_nested():  # the caller's rollback
        import_licences(
            conn, frame, "EPSG:4326", rules=rules, actor="t", limits=ShapeLimits(max_vertices=100)
        )
    (row,) = caught.value.rejections
    assert row["row"] == 2
    assert "301 vertices; at most 100" in json.dumps(row)
    assert counts(conn) == before
