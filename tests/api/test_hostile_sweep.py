"""A sweep of hostile values across the main read and write routes: every answer is a 4xx
(never a 5xx) and the register is unchanged."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection

from tests.api.test_hostile import application, counts, create, rect

RING = "[[66.0,28.0],[66.05,28.0],[66.05,28.05],[66.0,28.05],[66.0,28.0]]"
NESTED = {"type": "GeometryCollection", "geometries": [rect(66.0, 28.0, 66.05, 28.05)]}
for _ in range(30):
    NESTED = {"type": "GeometryCollection", "geometries": [NESTED]}
SQL = "'; DROP TABLE licences; --"

#: Geometries as raw JSON text (NaN and Infinity are not JSON; a client can still send them).
GEOMETRIES: dict[str, str] = {
    "nan": '{"type":"Polygon","coordinates":[[[NaN,28.0],[66.05,28.0],[66.05,28.05],[66.0,28.0]]]}',
    "infinity": '{"type":"Polygon","coordinates":[[[Infinity,28],[66,28],[66,29],[Infinity,28]]]}',
    "huge": '{"type":"Polygon","coordinates":[[[1e308,28],[66.05,28],[66,28.05],[1e308,28]]]}',
    "overflow": '{"type":"Polygon","coordinates":[[[1e400,28],[66.05,28],[66,28.05],[1e400,28]]]}',
    "big_int": '{"type":"Polygon","coordinates":[[[' + "9" * 400 + ",28],[66,28],[66,29],[1,28]]]}",
    "nested_collection": json.dumps(NESTED),
    "coordinates_string": '{"type":"Polygon","coordinates":"abc"}',
    "coordinates_object": '{"type":"Polygon","coordinates":{"a":1}}',
    "type_number": '{"type":7,"coordinates":[' + RING + "]}",
    "point": '{"type":"Point","coordinates":[66,28]}',
    "deep_nesting": "[" * 500 + "]" * 500,
    "wkt_malformed": json.dumps("POLYGON ((66 28, 66.05 28, 66.05"),
    "wkt_sql": json.dumps(f"POLYGON ((66 28, 66.05 28)) {SQL}"),
    "wkt_ewkt": json.dumps("SRID=4326;POLYGON ((66 28, 66.05 28, 66.05 28.05, 66 28))"),
    "wkt_nan": json.dumps("POLYGON ((nan 28, 66.05 28, 66.05 28.05, nan 28))"),
    "null": "null",
    "number": "12",
}

CRS_VALUES = ["EPSG:999999", "EPSG:-1", "EPSG:4326' OR 1=1 --", SQL, "urn:ogc:def:crs:EPSG::"]


def _feature(geometry: str) -> str:
    props = {"licence_type": "exploration_licence", "minerals": ["Copper"], "holder": "Sweep Co"}
    return f'{{"type":"Feature","geometry":{geometry},"properties":{json.dumps(props)}}}'


def _check_body(geometry: str) -> str:
    props = {"licence_type": "exploration_licence", "minerals": ["Copper"]}
    return f'{{"type":"Feature","geometry":{geometry},"properties":{json.dumps(props)}}}'


JSON = {"content-type": "application/json"}


def _calm(r: Any) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_hostile_geometry_everywhere(client: TestClient, conn: Connection, name: str) -> None:
    geometry = GEOMETRIES[name]
    lid = create(client)["id"]
    before = counts(conn)
    _calm(client.post("/licences", content=_feature(geometry), headers=JSON))
    _calm(client.post("/overlaps/check", content=_check_body(geometry), headers=JSON))
    _calm(client.post("/aoi/report", content=geometry, headers=JSON))
    relinquish = f'{{"action":"relinquish","geometry":{geometry}}}'
    _calm(client.post(f"/licences/{lid}/transitions", content=relinquish, headers=JSON))
    _calm(client.post("/rasters/nothing/statistics", content=geometry, headers=JSON))
    assert counts(conn) == before


@pytest.mark.parametrize("crs", CRS_VALUES)
def test_unknown_crs_everywhere(client: TestClient, conn: Connection, crs: str) -> None:
    before = counts(conn)
    body = application()
    _calm(client.post("/licences", params={"crs": crs}, json=body))
    del body["properties"]["holder"]
    _calm(client.post("/overlaps/check", params={"crs": crs}, json=body))
    _calm(client.post("/aoi/report", params={"crs": crs}, json={"bbox": [66, 28, 66.1, 28.1]}))
    _calm(client.get("/collections/licences/items", params={"crs": crs}))
    _calm(
        client.get("/collections/licences/items", params={"bbox": "66,28,67,29", "bbox-crs": crs})
    )
    assert counts(conn) == before


@pytest.mark.parametrize(
    "value",
    [
        SQL,
        "1; SELECT pg_sleep(10)",
        "' OR '1'='1",
        "\\x00",
        "%00",
        "a\x00b",
        "a" * 20_000,
        "NaN",
        "-1e999",
        "1e400",
        "[]",
        "{}",
    ],
)
def test_hostile_strings_in_every_read_parameter(
    client: TestClient, conn: Connection, value: str
) -> None:
    before = counts(conn)
    for param in (
        "province",
        "status",
        "licence_type",
        "mineral",
        "holder",
        "bbox",
        "as_of",
        "limit",
        "after",
    ):
        _calm_or_ok(client.get("/licences", params={param: value}))
    for param in (
        "bbox",
        "datetime",
        "limit",
        "offset",
        "filter",
        "sortby",
        "properties",
        "status",
        "type",
        "province",
        "mineral",
    ):
        _calm_or_ok(client.get("/collections/licences/items", params={param: value}))
        _calm_or_ok(client.get("/tiles/licences/8/173/107.geojson", params={param: value}))
    segment = quote(value[:200], safe="")
    _calm_or_ok(client.get(f"/collections/{segment}/items"))
    for path in ("/survey/layers/", "/rasters/", "/collections/", "/tiles/", "/licences/"):
        _calm_or_ok(client.get(f"{path}{segment}"))
    assert counts(conn) == before


def _calm_or_ok(r: Any) -> None:
    # Some hostile strings are merely values that match nothing (a holder named "' OR...").
    assert r.status_code < 500, (r.status_code, r.request.url, r.text[:300])


@pytest.mark.parametrize(
    "flt",
    [
        "(" * 200 + "status='granted'" + ")" * 200,
        "S_INTERSECTS(geom, POLYGON((66 28, 67 28)))",
        "area_km2 > 1e400",
    ],
)
def test_odd_but_parsable_cql2_is_never_a_5xx(
    client: TestClient, conn: Connection, flt: str
) -> None:
    # Redundant parentheses, a degenerate polygon, a literal that overflows to infinity:
    # answered (matching nothing) or refused, but never a server error.
    before = counts(conn)
    _calm_or_ok(client.get("/collections/licences/items", params={"filter": flt}))
    _calm_or_ok(client.get("/tiles/licences/8/173/107.mvt", params={"filter": flt}))
    assert counts(conn) == before


@pytest.mark.parametrize(
    "flt",
    [
        "status = 'granted' AND",
        "status = 'granted'; DROP TABLE licences",
        "area_km2 > NaN",
        "status = " + "'x' OR status = " * 700 + "'y'",
        "status = 'a\x00b'",
        "unknown_property = 1",
    ],
)
def test_malformed_cql2_is_a_4xx(client: TestClient, conn: Connection, flt: str) -> None:
    before = counts(conn)
    _calm(client.get("/collections/licences/items", params={"filter": flt}))
    _calm(client.get("/tiles/licences/8/173/107.mvt", params={"filter": flt}))
    assert counts(conn) == before


@pytest.mark.parametrize(
    "body",
    [
        {"minerals": "Copper"},
        {"minerals": [1, 2]},
        {"minerals": [SQL]},
        {"remarks": 12},
        {"applied_on": "2024-13-45"},
        {"applied_on": 10**30},
        {"note": ["a"]},
        {"unknown": 1},
    ],
)
def test_wrong_types_in_patch_and_transitions(
    client: TestClient, conn: Connection, body: dict[str, Any]
) -> None:
    lid = create(client)["id"]
    before = counts(conn)
    r = client.patch(f"/licences/{lid}", json=body)
    if body == {"minerals": [SQL]}:
        # A mineral name is free text; it is stored as text, never run.
        assert r.status_code == 200, r.text
        assert client.get(f"/licences/{lid}").json()["properties"]["minerals"] == [SQL]
        return
    _calm(r)
    _calm(client.post(f"/licences/{lid}/transitions", json={"action": SQL}))
    grant = '{"action": "grant", "granted_on": 1e400}'
    _calm(client.post(f"/licences/{lid}/transitions", content=grant, headers=JSON))
    assert counts(conn) == before


@pytest.mark.parametrize(
    "path",
    [
        "/survey/layers/%00",
        "/collections/%00",
        "/collections/%00/items",
        "/collections/%00/queryables",
        "/tiles/%00/tilejson.json",
        "/rasters/%00",
        "/rasters/%00/point?lon=62&lat=29",
    ],
)
def test_nul_in_a_path_is_400_not_500(client: TestClient, path: str) -> None:
    # Regression: a NUL in a slug or collection name reached PostgreSQL (psycopg2 ValueError).
    r = client.get(path)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "path"
    r = client.delete("/survey/layers/a%00b", headers={"X-Actor": "t"})
    assert r.status_code == 400, r.text


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/collections/licences/items", "province"),
        ("/collections/licences/items", "filter"),
        ("/collections/licences/items", "datetime"),
        ("/tiles/licences/8/173/107.mvt", "mineral"),
        ("/licences", "holder"),
    ],
)
def test_nul_in_a_query_parameter_is_400_naming_it(
    client: TestClient, path: str, param: str
) -> None:
    # Regression: a NUL in an OGC filter value reached PostgreSQL (psycopg2 ValueError, 500).
    r = client.get(path, params={param: "a\x00b"})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == param
