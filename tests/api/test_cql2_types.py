"""A CQL2 filter comparing a property with a value of another type is a 400 naming both.

Before this check, such a filter reached PostgreSQL and came back as a 500 (``status = 1``,
``area_km2 LIKE '1%'``) or an anonymous 422; on tiles, as a plain-text 500.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

BAD = [
    ("status = 1", "property 'status' (string)"),
    ("area_km2 LIKE '1%'", "property 'area_km2' (number) is not text"),
    ("area_km2 = 'abc'", "property 'area_km2' (number)"),
    ("area_km2 BETWEEN 'a' AND 'b'", "property 'area_km2' (number)"),
    ("status IN ('granted', 2)", "property 'status' (string)"),
    ("area_km2 = status", "property 'status' (string)"),
    ("granted_on > 'soon'", "property 'granted_on' (date)"),
]


@pytest.mark.parametrize(("cql", "named"), BAD)
def test_items_refuse_a_type_mismatch(client: TestClient, cql: str, named: str) -> None:
    r = client.get(f"/collections/licences/items?filter={quote(cql)}")
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "bad_filter"
    assert body["field"] == "filter"
    assert named in body["detail"], body["detail"]


@pytest.mark.parametrize(("cql", "named"), BAD)
def test_tiles_refuse_a_type_mismatch(client: TestClient, cql: str, named: str) -> None:
    r = client.get(f"/tiles/licences/5/22/13.mvt?filter={quote(cql)}")
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert named in r.json()["detail"]


@pytest.mark.parametrize(
    "cql",
    [
        "status = 'granted'",
        "area_km2 > 1",
        "area_km2 BETWEEN 1 AND 2.5",
        "granted_on > '2020-01-01'",
        "granted_on > DATE('2020-01-01')",
        "licence_no LIKE 'BA-%'",
        "CASEI(holder) = CASEI('x')",
        "status IN ('granted', 'applied')",
    ],
)
def test_well_typed_filters_pass(client: TestClient, cql: str) -> None:
    r = client.get(f"/collections/licences/items?filter={quote(cql)}")
    assert r.status_code == 200, r.text
    t = client.get(f"/tiles/licences/12/2803/1720.mvt?filter={quote(cql)}")
    assert t.status_code in (200, 204), t.text


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("filter-crs=EPSG:9999", "filter-crs"),
        ("filter-lang=cql2-json", "filter-lang"),
        (
            f"filter={quote(chr(39) + 'x' + chr(39) + ' = status')}&filter-crs=EPSG:4326",
            "filter-crs",
        ),
    ],
)
def test_filter_companions_are_checked_alike(client: TestClient, query: str, field: str) -> None:
    for url in ("/collections/licences/items", "/tiles/licences/5/22/13.mvt"):
        r = client.get(f"{url}?{query}")
        assert r.status_code == 400, (url, r.text)
        assert r.json()["field"] == field


def test_filter_crs_by_short_name_is_accepted_by_items_and_tiles(client: TestClient) -> None:
    q = f"filter={quote(chr(39) + 'granted' + chr(39) + ' = status')}&filter-crs=OGC:CRS84"
    assert client.get(f"/collections/licences/items?{q}").status_code == 200
    assert client.get(f"/tiles/licences/5/22/13.mvt?{q}").status_code in (200, 204)
