"""OGC API - Features (Parts 1, 2 and 3) over the test's rolled-back connection.

A fixed set of licences (chosen statuses, dates and sizes) is entered with
``register_licences`` and two reserved areas with ``load_reserved_areas`` on
the test's connection, so every expected set below is exact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pyproj import Transformer
from sqlalchemy import Connection, text

import cadastre.db.features as features_mod
from api.app import create_app
from cadastre.db.licences import Candidate, Holder, Shape, register_licences
from cadastre.db.reserved import load_reserved_areas
from cadastre.domain.geometry import intake
from cadastre.rules import RuleBook
from cadastre.settings import Settings
from tests.live import ADMIN

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
ITEMS = "/collections/licences/items"


def rect(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


@dataclass(frozen=True)
class Spec:
    key: str
    licence_no: str
    province: str
    licence_type: str
    minerals: tuple[str, ...]
    holder: str
    status: str
    granted_on: date | None
    expires_on: date | None
    box: tuple[float, float, float, float]


SPECS = [
    # 0.05 degree squares are 25-30 km2; E is ~110 km2; F and G are ~4 km2.
    Spec("A", "OGC-BA-001", "PK-BA", "exploration_licence", ("Copper", "Gold"),
         "Reko Minerals Ltd", "applied", None, None, (64.0, 28.0, 64.05, 28.05)),
    Spec("B", "OGC-BA-002", "PK-BA", "mining_lease", ("Chromite",),
         "Muslim Bagh Chrome (Pvt) Ltd", "granted", date(2015, 3, 1), date(2025, 2, 28),
         (67.7, 30.8, 67.75, 30.85)),
    Spec("C", "OGC-PB-001", "PK-PB", "mining_lease", ("Rock salt",),
         "Khewra Salt Co", "granted", date(2020, 6, 15), date(2030, 6, 14),
         (71.0, 30.0, 71.05, 30.05)),
    Spec("D", "OGC-KP-001", "PK-KP", "exploration_licence", ("Marble",),
         "Swat Marble Works", "granted", date(2023, 1, 10), date(2026, 1, 9),
         (72.3, 34.8, 72.35, 34.85)),
    Spec("E", "OGC-SD-001", "PK-SD", "exploration_licence", ("Coal",),
         "Thar Coal Co", "expired", date(2010, 5, 1), date(2013, 4, 30),
         (68.3, 26.0, 68.4, 26.1)),
    Spec("F", "OGC-BA-003", "PK-BA", "prospecting_licence", ("Copper",),
         "Chagai Copper Ltd", "refused", None, None, (64.1, 28.0, 64.12, 28.02)),
    Spec("G", "OGC-PB-002", "PK-PB", "small_scale_mining_lease", ("Gypsum",),
         "reko minerals ltd", "granted", date(2024, 7, 1), date(2044, 6, 30),
         (71.2, 30.0, 71.22, 30.02)),
    Spec("H", "OGC-KP-002", "PK-KP", "mining_lease", ("Marble", "Granite"),
         "Swat Marble Works", "cancelled", date(2018, 3, 1), date(2028, 2, 28),
         (72.5, 34.8, 72.55, 34.85)),
]  # fmt: skip
ALL = frozenset(s.key for s in SPECS)
BY_KEY = {s.key: s for s in SPECS}


@pytest.fixture
def lic(conn: Connection, rules: RuleBook) -> dict[str, int]:
    """Register SPECS on the rolled-back connection; licence id by key."""
    cands = [
        Candidate(
            licence_type=s.licence_type,
            minerals=list(s.minerals),
            holder=Holder(name=s.holder),
            shape=Shape.from_intake(
                intake({"type": "Polygon", "coordinates": [rect(*s.box)]}, None)
            ),
            province=s.province,
            licence_no=s.licence_no,
            status=s.status,
            granted_on=s.granted_on,
            expires_on=s.expires_on,
        )
        for s in SPECS
    ]
    result = register_licences(conn, cands, rules=rules, actor="test", action="import")
    assert not result.rejected
    return {s.key: result.created[i] for i, s in enumerate(SPECS)}


RESERVED = [
    {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [rect(66.0, 29.0, 66.1, 29.1)]},
        "properties": {
            "name": "OGC test sanctuary",
            "kind": "protected",
            "province": "Balochistan",
            "source": "test",
            "designated_on": "1999-01-01",
        },
    },
    {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [rect(73.0, 33.0, 73.05, 33.05)]},
        "properties": {
            "name": "OGC test forest",
            "kind": "forest",
            "province": "Punjab",
            "source": "test",
            "designated_on": "2005-05-05",
        },
    },
]


@pytest.fixture
def reserved(conn: Connection) -> dict[str, int]:
    load_reserved_areas(conn, RESERVED)
    rows = conn.execute(
        text("SELECT name, id FROM reserved_areas WHERE name LIKE 'OGC test %'")
    ).all()
    return {name: int(i) for name, i in rows}


def keys(body: dict[str, Any], lic: dict[str, int]) -> set[str]:
    by_id = {v: k for k, v in lic.items()}
    return {by_id[f["id"]] for f in body["features"]}


def fetch(client: TestClient, lic: dict[str, int], **params: Any) -> set[str]:
    r = client.get(ITEMS, params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["numberReturned"] == len(body["features"])
    if "numberMatched" in body:
        assert body["numberMatched"] == len(body["features"])
    return keys(body, lic)


def where(pred: Any) -> set[str]:
    return {s.key for s in SPECS if pred(s)}


def assert_bad(r: Any, code: str = "bad_query", status: int = 400) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    assert body["detail"]
    return body


def link(body: dict[str, Any], rel: str) -> dict[str, Any] | None:
    found = [x for x in body["links"] if x["rel"] == rel]
    assert len(found) <= 1, body["links"]
    return found[0] if found else None


# ------------------------------------------------------------------ landing, conformance


def test_landing_page_links(client: TestClient) -> None:
    r = client.get("/", headers={"Accept": "application/json"})
    assert r.status_code == 200
    rels = {x["rel"]: x for x in r.json()["links"]}
    for rel in ("self", "conformance", "data", "service-desc", "service-doc"):
        assert rel in rels, rel
    assert rels["conformance"]["href"].endswith("/conformance")
    assert rels["data"]["href"].endswith("/collections")
    assert "openapi" in rels["service-desc"]["type"]
    desc = client.get(rels["service-desc"]["href"])
    assert desc.status_code == 200
    assert desc.json()["openapi"].startswith("3.")
    assert "/collections/{collectionId}/items" in desc.json()["paths"]


@pytest.mark.parametrize("path", ["/", "/conformance", "/collections", "/collections/licences"])
def test_json_for_any_accept_html_for_browsers(client: TestClient, path: str) -> None:
    r = client.get(path, headers={"Accept": "*/*"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    r.json()
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    for resp in (
        client.get(path, headers={"Accept": browser}),
        client.get(path, params={"f": "html"}, headers={"Accept": "application/json"}),
    ):
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"].startswith("text/html"), path
        assert "<html" in resp.text.lower()
    r = client.get(path, params={"f": "json"}, headers={"Accept": browser})
    assert r.headers["content-type"].startswith("application/json")


def test_items_html_and_json(client: TestClient, lic: dict[str, int]) -> None:
    r = client.get(ITEMS, headers={"Accept": "*/*"})
    assert r.headers["content-type"].startswith("application/geo+json")
    assert r.json()["type"] == "FeatureCollection"
    r = client.get(ITEMS, params={"f": "html"})
    assert r.headers["content-type"].startswith("text/html")
    assert "OGC-BA-001" in r.text


def test_conformance(client: TestClient) -> None:
    r = client.get("/conformance")
    assert r.status_code == 200
    conf = set(r.json()["conformsTo"])
    for uri in (
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
        "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
        "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
        "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
        "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    ):
        assert uri in conf, uri


# --------------------------------------------------------------------------- collections


def test_collections_with_extents(
    client: TestClient, lic: dict[str, int], reserved: dict[str, int]
) -> None:
    r = client.get("/collections")
    assert r.status_code == 200
    cols = {c["id"]: c for c in r.json()["collections"]}
    assert set(cols) == {"licences", "jurisdictions", "reserved_areas"}
    for c in cols.values():
        assert c["itemType"] == "feature"
        assert CRS84 in c["crs"] and f"{EPSG}4326" in c["crs"] and f"{EPSG}32642" in c["crs"]
        assert any(x["rel"] == "items" for x in c["links"])
        assert c["extent"]["spatial"]["bbox"]
    lic_box = cols["licences"]["extent"]["spatial"]["bbox"][0]
    expect = (
        min(s.box[0] for s in SPECS),
        min(s.box[1] for s in SPECS),
        max(s.box[2] for s in SPECS),
        max(s.box[3] for s in SPECS),
    )
    assert lic_box == pytest.approx(expect, abs=1e-6)
    res_box = cols["reserved_areas"]["extent"]["spatial"]["bbox"][0]
    assert res_box == pytest.approx((66.0, 29.0, 73.05, 33.05), abs=1e-6)
    jx0, jy0, jx1, jy1 = cols["jurisdictions"]["extent"]["spatial"]["bbox"][0]
    assert 60 < jx0 < 62 and 23 < jy0 < 24.5 and 77 < jx1 < 78 and 36.5 < jy1 < 37.5


def test_collection_and_unknown(client: TestClient, lic: dict[str, int]) -> None:
    r = client.get("/collections/licences")
    assert r.status_code == 200
    assert r.json()["id"] == "licences"
    assert "extent" in r.json()
    for path in (
        "/collections/nosuch",
        "/collections/nosuch/items",
        "/collections/nosuch/queryables",
        "/collections/nosuch/items/1",
    ):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.json()["code"] == "not_found"


def test_queryables(client: TestClient) -> None:
    r = client.get("/collections/licences/queryables")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/schema+json")
    schema = r.json()
    assert schema["type"] == "object"
    assert "$schema" in schema and schema["$id"].endswith("/collections/licences/queryables")
    props = schema["properties"]
    assert props["status"]["type"] == "string"
    assert props["area_km2"]["type"] == "number"
    assert props["granted_on"] == {"title": "granted_on", "type": "string", "format": "date"}
    assert "geometry" in props
    for name in ("licence_no", "licence_type", "holder", "province_code", "expires_on"):
        assert name in props
    r = client.get("/collections/reserved_areas/queryables")
    assert set(r.json()["properties"]) >= {"name", "kind", "designated_on", "geometry"}


# ------------------------------------------------------------------------ items: paging


def test_default_limit_is_page_default(settings: Settings, db: Any, lic: dict[str, int]) -> None:
    small = settings.model_copy(update={"page_default": 3})
    with TestClient(create_app(small, db=db), headers=ADMIN) as c:
        body = c.get(ITEMS).json()
        assert body["numberReturned"] == 3
        assert body["numberMatched"] == len(SPECS)
        assert link(body, "next") is not None
    body = TestClient(create_app(settings, db=db), headers=ADMIN).get(ITEMS).json()
    assert settings.page_default >= len(SPECS)
    assert body["numberReturned"] == len(SPECS)
    assert link(body, "next") is None


def test_limit_bounds(client: TestClient, settings: Settings, lic: dict[str, int]) -> None:
    assert client.get(ITEMS, params={"limit": settings.page_max}).status_code == 200
    for bad in (settings.page_max + 1, 0, -1, "ten"):
        body = assert_bad(client.get(ITEMS, params={"limit": bad}))
        assert body["field"] == "limit"
    assert_bad(client.get(ITEMS, params={"offset": -1}))


def walk(client: TestClient, url: str) -> list[dict[str, Any]]:
    pages = []
    while url:
        r = client.get(url)
        assert r.status_code == 200, r.text
        pages.append(r.json())
        nxt = link(r.json(), "next")
        url = nxt["href"] if nxt else ""
        assert len(pages) < 50
    return pages


def test_next_and_prev_walk_every_feature_once(client: TestClient, lic: dict[str, int]) -> None:
    pages = walk(client, f"{ITEMS}?limit=3")
    assert [p["numberReturned"] for p in pages] == [3, 3, 2]
    seen = [f["id"] for p in pages for f in p["features"]]
    assert sorted(seen) == sorted(lic.values())
    for p in pages:
        assert p["numberMatched"] == len(SPECS)
        assert p["numberReturned"] == len(p["features"])
    assert link(pages[0], "prev") is None
    # Back from the last page, following prev exactly as given.
    back: list[Any] = []
    url = link(pages[-1], "prev")["href"]  # type: ignore[index]
    while url:
        body = client.get(url).json()
        back = [f["id"] for f in body["features"]] + back
        prev = link(body, "prev")
        url = prev["href"] if prev else ""
    assert back + [f["id"] for f in pages[-1]["features"]] == seen
    # Paging keeps the filter.
    filtered = walk(client, f"{ITEMS}?limit=1&filter=status%3D%27granted%27")
    assert len(filtered) == 4
    got = {k for p in filtered for k in keys(p, lic)}
    assert got == where(lambda s: s.status == "granted")


def test_number_matched_capped(
    client: TestClient, lic: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(features_mod, "COUNT_CAP", 5)
    pages = walk(client, f"{ITEMS}?limit=3")
    assert [p["numberReturned"] for p in pages] == [3, 3, 2]
    assert "numberMatched" not in pages[0]
    assert "numberMatched" not in pages[1]
    # The last page knows the exact count, however many there are.
    assert pages[-1]["numberMatched"] == len(SPECS)
    # Below the cap the count is given on every page.
    pages = walk(client, f"{ITEMS}?limit=1&filter=status%3D%27granted%27")
    assert [p["numberMatched"] for p in pages] == [4, 4, 4, 4]


def test_number_matched_past_the_end_is_the_real_count(
    client: TestClient, lic: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    r = client.get(f"{ITEMS}?offset=500")
    assert r.status_code == 200
    assert r.json()["numberReturned"] == 0
    assert r.json()["numberMatched"] == len(SPECS)
    monkeypatch.setattr(features_mod, "COUNT_CAP", 3)  # too many to count: left out
    assert "numberMatched" not in client.get(f"{ITEMS}?offset=500").json()


# -------------------------------------------------------------------- items: bbox & crs


def test_bbox(client: TestClient, lic: dict[str, int]) -> None:
    assert fetch(client, lic, bbox="63.9,27.9,64.2,28.1") == {"A", "F"}
    assert fetch(client, lic, bbox="63.9,27.9,0,64.2,28.1,100") == {"A", "F"}
    # Touching A's east edge (x = 64.05) counts; F starts at 64.1.
    assert fetch(client, lic, bbox="64.05,28.0,64.08,28.05") == {"A"}
    assert fetch(client, lic, bbox="64.06,28.0,64.08,28.05") == set()
    assert fetch(client, lic, bbox="60,23,78,37") == ALL
    for bad in ("1,2,3", "a,b,c,d", "64.2,28,64.0,28.1"):
        assert_bad(client.get(ITEMS, params={"bbox": bad}))


def test_bbox_crs(client: TestClient, lic: dict[str, int]) -> None:
    crs84 = fetch(client, lic, bbox="63.9,27.9,64.2,28.1")
    # EPSG:4326 is lat/lon.
    assert fetch(client, lic, bbox="27.9,63.9,28.1,64.2", **{"bbox-crs": "EPSG:4326"}) == crs84
    assert fetch(client, lic, bbox="27.9,63.9,28.1,64.2", **{"bbox-crs": f"{EPSG}4326"}) == crs84
    assert fetch(client, lic, bbox="63.9,27.9,64.2,28.1", **{"bbox-crs": CRS84}) == crs84
    # The same ground in UTM 42N.
    to_utm = Transformer.from_crs("OGC:CRS84", "EPSG:32642", always_xy=True)
    for lon0, lat0, lon1, lat1, expect in (
        (63.9, 27.9, 64.2, 28.1, {"A", "F"}),
        (67.6, 30.7, 67.8, 30.9, {"B"}),
    ):
        xs, ys = to_utm.transform([lon0, lon1, lon0, lon1], [lat0, lat0, lat1, lat1])
        utm = f"{min(xs)},{min(ys)},{max(xs)},{max(ys)}"
        assert fetch(client, lic, bbox=f"{lon0},{lat0},{lon1},{lat1}") == expect
        assert fetch(client, lic, bbox=utm, **{"bbox-crs": "EPSG:32642"}) == expect
        assert fetch(client, lic, bbox=utm, **{"bbox-crs": "[EPSG:32642]"}) == expect
    assert_bad(client.get(ITEMS, params={"bbox": "1,2,3,4", "bbox-crs": "EPSG:9999"}))


def coords(feature: dict[str, Any]) -> list[list[float]]:
    geom = feature["geometry"]
    assert geom["type"] == "MultiPolygon"
    return [pt for poly in geom["coordinates"] for ring in poly for pt in ring]


def test_crs_4326_is_lat_lon(client: TestClient, lic: dict[str, int]) -> None:
    default = client.get(ITEMS)
    assert default.headers["content-crs"] == f"<{CRS84}>"
    lonlat = {f["id"]: coords(f) for f in default.json()["features"]}
    for crs in ("EPSG:4326", f"{EPSG}4326", "[EPSG:4326]"):
        r = client.get(ITEMS, params={"crs": crs})
        assert r.status_code == 200
        assert r.headers["content-crs"] == f"<{EPSG}4326>"
        latlon = {f["id"]: coords(f) for f in r.json()["features"]}
        assert latlon == {i: [[y, x] for x, y in pts] for i, pts in lonlat.items()}
    r = client.get(ITEMS, params={"crs": CRS84})
    assert r.headers["content-crs"] == f"<{CRS84}>"


def test_crs_utm(client: TestClient, lic: dict[str, int]) -> None:
    r = client.get(ITEMS, params={"crs": "EPSG:32642"})
    assert r.status_code == 200
    assert r.headers["content-crs"] == f"<{EPSG}32642>"
    to_utm = Transformer.from_crs("OGC:CRS84", "EPSG:32642", always_xy=True)
    got = {f["id"]: coords(f) for f in r.json()["features"]}
    for s in SPECS:
        corners = rect(*s.box)[:-1]
        expect = sorted(to_utm.transform(x, y) for x, y in corners)
        pts = sorted({(x, y) for x, y in got[lic[s.key]]})
        assert len(pts) == 4, s.key
        for (ex, ey), (x, y) in zip(expect, pts, strict=True):
            assert x == pytest.approx(ex, abs=1.5e-3), s.key
            assert y == pytest.approx(ey, abs=1.5e-3), s.key
            assert round(x, 3) == x and round(y, 3) == y  # 3 decimals: millimetres
    one = client.get(f"{ITEMS}/{lic['B']}", params={"crs": "EPSG:32642"})
    assert one.headers["content-crs"] == f"<{EPSG}32642>"
    assert sorted({tuple(p) for p in coords(one.json())}) == sorted(
        {(x, y) for x, y in got[lic["B"]]}
    )


def test_unknown_crs(client: TestClient, lic: dict[str, int]) -> None:
    for crs in ("EPSG:9999", "EPSG:2000", "nonsense"):
        body = assert_bad(client.get(ITEMS, params={"crs": crs}))
        assert body["field"] == "crs"
        assert_bad(client.get(f"{ITEMS}/{lic['A']}", params={"crs": crs}))


# ---------------------------------------------------------------------- items: datetime


def valid_on(lo: date | None, hi: date | None) -> set[str]:
    return where(
        lambda s: (
            s.granted_on is not None
            and (hi is None or s.granted_on <= hi)
            and (lo is None or s.expires_on is None or s.expires_on >= lo)
        )
    )


@pytest.mark.parametrize(
    ("value", "lo", "hi"),
    [
        ("2021-01-01", date(2021, 1, 1), date(2021, 1, 1)),
        ("2024-07-01", date(2024, 7, 1), date(2024, 7, 1)),
        ("2021-01-01T12:00:00Z", date(2021, 1, 1), date(2021, 1, 1)),
        ("2011-01-01/2014-01-01", date(2011, 1, 1), date(2014, 1, 1)),
        ("../2012-01-01", None, date(2012, 1, 1)),
        ("2026-01-01/..", date(2026, 1, 1), None),
        ("2026-01-01/", date(2026, 1, 1), None),
    ],
)
def test_datetime(
    client: TestClient, lic: dict[str, int], value: str, lo: date | None, hi: date | None
) -> None:
    expect = valid_on(lo, hi)
    assert expect  # every case selects something
    assert fetch(client, lic, datetime=value) == expect


def test_datetime_cases_by_hand(client: TestClient, lic: dict[str, int]) -> None:
    assert fetch(client, lic, datetime="2021-01-01") == {"B", "C", "H"}
    assert fetch(client, lic, datetime="2024-07-01") == {"B", "C", "D", "G", "H"}
    assert fetch(client, lic, datetime="2011-01-01/2014-01-01") == {"E"}
    assert fetch(client, lic, datetime="../2012-01-01") == {"E"}
    assert fetch(client, lic, datetime="2026-01-01/..") == {"C", "D", "G", "H"}
    assert_bad(client.get(ITEMS, params={"datetime": "yesterday"}))


def test_datetime_instant_is_a_day_in_pakistan(client: TestClient, lic: dict[str, int]) -> None:
    """G was granted on 1 July 2024; 30 June 20:00 UTC is already 1 July in Karachi."""
    on_first = fetch(client, lic, datetime="2024-07-01")
    assert on_first != fetch(client, lic, datetime="2024-06-30")
    assert fetch(client, lic, datetime="2024-06-30T20:00:00Z") == on_first
    assert fetch(client, lic, datetime="2024-07-01T01:00:00+05:00") == on_first
    assert fetch(client, lic, datetime="2024-06-30T18:00:00Z") != on_first


def test_datetime_interval_that_ends_before_it_starts_is_400(client: TestClient) -> None:
    r = client.get(ITEMS, params={"datetime": "2030-01-01/2000-01-01"})
    assert r.status_code == 400
    assert r.json()["field"] == "datetime"
    assert "ends before it starts" in r.json()["detail"]


# ------------------------------------------------------------------------ items: CQL2


CQL2_TEXT: list[tuple[str, Any]] = [
    ("status = 'granted'", lambda s: s.status == "granted"),
    ("status <> 'granted'", lambda s: s.status != "granted"),
    ("area_km2 < 10", lambda s: s.key in "FG"),
    ("area_km2 > 50", lambda s: s.key == "E"),
    ("area_km2 BETWEEN 10 AND 50", lambda s: s.key in "ABCDH"),
    ("province_code IN ('PK-BA', 'PK-SD')", lambda s: s.province in ("PK-BA", "PK-SD")),
    ("province_code NOT IN ('PK-BA', 'PK-SD')", lambda s: s.province not in ("PK-BA", "PK-SD")),
    ("licence_no LIKE 'OGC-BA-%'", lambda s: s.licence_no.startswith("OGC-BA-")),
    ("licence_no LIKE 'OGC-%-001'", lambda s: s.licence_no.endswith("-001")),
    ("licence_no LIKE 'OGC-_A-00_'", lambda s: s.province == "PK-BA"),
    ("licence_no LIKE 'OGC-P_-%'", lambda s: s.province == "PK-PB"),
    ("holder LIKE 'Swat%'", lambda s: s.holder.startswith("Swat")),
    ("minerals LIKE '%Gold%'", lambda s: "Gold" in s.minerals),
    ("granted_on IS NULL", lambda s: s.granted_on is None),
    ("granted_on IS NOT NULL", lambda s: s.granted_on is not None),
    ("status = 'granted' AND province_code = 'PK-PB'", lambda s: s.key in "CG"),
    ("status = 'applied' OR status = 'refused'", lambda s: s.key in "AF"),
    ("NOT (status = 'granted')", lambda s: s.status != "granted"),
    (
        "(status = 'granted' OR status = 'cancelled') AND NOT province_code = 'PK-KP'",
        lambda s: s.key in "BCG",
    ),
    ("granted_on > DATE('2020-01-01')", lambda s: s.key in "CDG"),
    (
        "S_INTERSECTS(geometry, POLYGON((63.9 27.9, 64.2 27.9, 64.2 28.1, 63.9 28.1, 63.9 27.9)))",
        lambda s: s.key in "AF",
    ),
    (
        # Half over A, wholly around F.
        "S_INTERSECTS(geometry, POLYGON((64.02 27.9, 64.2 27.9, 64.2 28.1, 64.02 28.1, "
        "64.02 27.9)))",
        lambda s: s.key in "AF",
    ),
    ("S_INTERSECTS(geometry, POINT(67.725 30.825))", lambda s: s.key == "B"),
    (
        "S_WITHIN(geometry, POLYGON((64.02 27.9, 64.2 27.9, 64.2 28.1, 64.02 28.1, 64.02 27.9)))",
        lambda s: s.key == "F",
    ),
    (
        "S_WITHIN(geometry, POLYGON((63.9 27.9, 64.2 27.9, 64.2 28.1, 63.9 28.1, 63.9 27.9)))",
        lambda s: s.key in "AF",
    ),
    # Standard CQL2 text temporal functions (OGC 21-065r2, section 7.11).
    ("T_AFTER(granted_on, DATE('2020-01-01'))", lambda s: s.key in "CDG"),
    ("T_BEFORE(granted_on, DATE('2016-01-01'))", lambda s: s.key in "BE"),
    ("T_DURING(granted_on, INTERVAL('2018-01-01', '2021-01-01'))", lambda s: s.key in "CH"),
    ("T_DURING(granted_on, INTERVAL('2022-01-01', '..'))", lambda s: s.key in "DG"),
]


@pytest.mark.parametrize(("cql", "pred"), CQL2_TEXT, ids=[c for c, _ in CQL2_TEXT])
def test_cql2_text(client: TestClient, lic: dict[str, int], cql: str, pred: Any) -> None:
    expect = where(pred)
    assert fetch(client, lic, filter=cql) == expect
    assert fetch(client, lic, filter=cql, **{"filter-lang": "cql2-text"}) == expect


AF_POLYGON = {"type": "Polygon", "coordinates": [rect(63.9, 27.9, 64.2, 28.1)]}
CQL2_JSON: list[tuple[dict[str, Any], set[str]]] = [
    ({"op": "=", "args": [{"property": "status"}, "granted"]}, {"B", "C", "D", "G"}),
    ({"op": "s_intersects", "args": [{"property": "geometry"}, AF_POLYGON]}, {"A", "F"}),
    (
        {"op": "in", "args": [{"property": "province_code"}, ["PK-BA", "PK-SD"]]},
        {"A", "B", "E", "F"},
    ),
    (
        {
            "op": "and",
            "args": [
                {"op": "=", "args": [{"property": "status"}, "granted"]},
                {"op": "<", "args": [{"property": "area_km2"}, 10]},
            ],
        },
        {"G"},
    ),
    ({"op": "like", "args": [{"property": "licence_no"}, "OGC-KP-%"]}, {"D", "H"}),
    ({"op": "isNull", "args": [{"property": "granted_on"}]}, {"A", "F"}),
    (
        {"op": "t_after", "args": [{"property": "granted_on"}, {"date": "2020-01-01"}]},
        {"C", "D", "G"},
    ),
    (
        {
            "op": "t_during",
            "args": [{"property": "granted_on"}, {"interval": ["2018-01-01", "2021-01-01"]}],
        },
        {"C", "H"},
    ),
]


@pytest.mark.parametrize(("cql", "expect"), CQL2_JSON, ids=[c["op"] for c, _ in CQL2_JSON])
def test_cql2_json(
    client: TestClient, lic: dict[str, int], cql: dict[str, Any], expect: set[str]
) -> None:
    assert fetch(client, lic, filter=json.dumps(cql), **{"filter-lang": "cql2-json"}) == expect


def test_cql2_with_other_parameters(client: TestClient, lic: dict[str, int]) -> None:
    got = fetch(client, lic, filter="status = 'granted'", bbox="70,29,73,35")
    assert got == {"C", "D", "G"}
    got = fetch(client, lic, filter="status = 'granted'", datetime="2025-06-01")
    assert got == {"C", "D", "G"}


@pytest.mark.parametrize(
    "bad",
    [
        "status = ",
        "status == 'granted'",
        "status = 'granted' AND",
        "status = 'granted",
        "S_INTERSECTS(geometry, POLYGON((1 2, 3 4)",
        "(status = 'granted'",
    ],
)
def test_bad_cql2_text_says_where(client: TestClient, lic: dict[str, int], bad: str) -> None:
    body = assert_bad(client.get(ITEMS, params={"filter": bad}), code="bad_filter")
    assert body["field"] == "filter"
    assert "line" in body["detail"] and "column" in body["detail"], body["detail"]


def test_bad_cql2_json_says_where(client: TestClient, lic: dict[str, int]) -> None:
    r = client.get(ITEMS, params={"filter": '{"op":"=","args":[', "filter-lang": "cql2-json"})
    body = assert_bad(r, code="bad_filter")
    assert "line" in body["detail"] and "column" in body["detail"], body["detail"]
    r = client.get(
        ITEMS, params={"filter": '{"op":"nope","args":[1,2]}', "filter-lang": "cql2-json"}
    )
    assert_bad(r, code="bad_filter")
    r = client.get(ITEMS, params={"filter": "status = 'x'", "filter-lang": "cql3"})
    assert_bad(r, code="bad_filter")


@pytest.mark.parametrize(
    ("bad", "lang"),
    [
        ("nosuch = 'x'", "cql2-text"),
        ("geom_area > 3 AND status = 'granted'", "cql2-text"),
        ('{"op":"=","args":[{"property":"nosuch"},"x"]}', "cql2-json"),
    ],
)
def test_unknown_property_in_filter(
    client: TestClient, lic: dict[str, int], bad: str, lang: str
) -> None:
    r = client.get(ITEMS, params={"filter": bad, "filter-lang": lang})
    body = assert_bad(r, code="bad_filter")
    name = "geom_area" if "geom_area" in bad else "nosuch"
    assert name in body["detail"]


@pytest.mark.parametrize(
    "literal",
    [
        "x; DROP TABLE licences; --",
        "1 OR 1=1",
        "%; SELECT pg_sleep(5); --",
        "OGC-BA-001) OR (1=1",
    ],
)
def test_sql_in_a_literal_is_just_a_literal(
    client: TestClient, conn: Connection, lic: dict[str, int], literal: str
) -> None:
    assert fetch(client, lic, filter=f"licence_no = '{literal}'") == set()
    assert fetch(client, lic, filter=f"holder LIKE '{literal}'") == set()
    assert fetch(client, lic, filter=f"licence_no IN ('{literal}', 'OGC-SD-001')") == {"E"}
    assert conn.execute(text("SELECT count(*) FROM licences")).scalar_one() == len(SPECS)
    assert fetch(client, lic) == ALL


@pytest.mark.parametrize(
    "literal",
    ["x'; DROP TABLE licences; --", "' OR '1'='1", "OGC-BA-001' OR 1=1 --", "%'; SELECT 1; --"],
)
def test_sql_with_quotes_in_a_json_literal(
    client: TestClient, conn: Connection, lic: dict[str, int], literal: str
) -> None:
    for op in ("=", "like"):
        cql = {"op": op, "args": [{"property": "licence_no"}, literal]}
        got = fetch(client, lic, filter=json.dumps(cql), **{"filter-lang": "cql2-json"})
        assert got == set()
    assert conn.execute(text("SELECT count(*) FROM licences")).scalar_one() == len(SPECS)


@pytest.mark.parametrize(
    "literal", ["x'; DROP TABLE licences; --", "' OR '1'='1", "OGC-BA-001' OR 1=1 --"]
)
def test_escaped_quote_in_a_cql2_text_literal(
    client: TestClient, conn: Connection, lic: dict[str, int], literal: str
) -> None:
    """CQL2 text escapes a quote in a string by doubling it (OGC 21-065r2, characterLiteral)."""
    quoted = literal.replace("'", "''")
    assert fetch(client, lic, filter=f"licence_no = '{quoted}'") == set()
    assert fetch(client, lic, filter=f"licence_no <> '{quoted}'") == ALL
    assert conn.execute(text("SELECT count(*) FROM licences")).scalar_one() == len(SPECS)


# ------------------------------------------------------------ parameters, properties, sortby


def test_unknown_parameter(client: TestClient, lic: dict[str, int]) -> None:
    body = assert_bad(client.get(ITEMS, params={"colour": "red"}))
    assert "colour" in body["detail"]
    assert body["field"] == "colour"
    body = assert_bad(client.get(f"{ITEMS}/{lic['A']}", params={"bbox": "1,2,3,4"}))
    assert "bbox" in body["detail"]
    assert_bad(client.get("/collections", params={"limit": "3"}))


def test_f_xml_is_refused(client: TestClient, lic: dict[str, int]) -> None:
    for path in (ITEMS, f"{ITEMS}/{lic['A']}", "/collections", "/conformance"):
        body = assert_bad(client.get(path, params={"f": "xml"}))
        assert body["field"] == "f"


def test_properties_subset(client: TestClient, lic: dict[str, int]) -> None:
    r = client.get(ITEMS, params={"properties": "licence_no,status"})
    assert r.status_code == 200
    feats = r.json()["features"]
    assert len(feats) == len(SPECS)
    by_id = {v: k for k, v in lic.items()}
    for f in feats:
        assert set(f["properties"]) == {"licence_no", "status"}
        s = BY_KEY[by_id[f["id"]]]
        assert f["properties"] == {"licence_no": s.licence_no, "status": s.status}
        assert f["geometry"]["type"] == "MultiPolygon"
    full = client.get(ITEMS).json()["features"][0]["properties"]
    assert {"licence_no", "licence_type", "holder", "status", "area_km2", "granted_on"} <= set(full)
    body = assert_bad(client.get(ITEMS, params={"properties": "licence_no,nosuch"}))
    assert "nosuch" in body["detail"]


def test_sortby(client: TestClient, lic: dict[str, int]) -> None:
    body = client.get(ITEMS, params={"sortby": "-area_km2"}).json()
    areas = [f["properties"]["area_km2"] for f in body["features"]]
    assert len(areas) == len(SPECS)
    assert areas == sorted(areas, reverse=True)
    assert keys({"features": body["features"][:1]}, lic) == {"E"}
    body = client.get(ITEMS, params={"sortby": "+area_km2"}).json()
    assert [f["properties"]["area_km2"] for f in body["features"]] == sorted(areas)
    body = client.get(ITEMS, params={"sortby": "licence_no"}).json()
    nos = [f["properties"]["licence_no"] for f in body["features"]]
    assert nos == sorted(s.licence_no for s in SPECS)
    # Sorting survives paging.
    pages = walk(client, f"{ITEMS}?sortby=-area_km2&limit=3")
    assert [f["properties"]["area_km2"] for p in pages for f in p["features"]] == sorted(
        areas, reverse=True
    )
    body = assert_bad(client.get(ITEMS, params={"sortby": "nosuch"}))
    assert "nosuch" in body["detail"]
    # A property that exists but is not sortable.
    body = assert_bad(client.get("/collections/reserved_areas/items", params={"sortby": "source"}))
    assert body["field"] == "sortby"


# ---------------------------------------------------------------------------- single item


def test_single_items(client: TestClient, lic: dict[str, int], reserved: dict[str, int]) -> None:
    r = client.get(f"{ITEMS}/{lic['C']}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    assert r.headers["content-crs"] == f"<{CRS84}>"
    f = r.json()
    assert f["type"] == "Feature" and f["id"] == lic["C"]
    assert f["properties"]["licence_no"] == "OGC-PB-001"
    assert f["properties"]["granted_on"] == "2020-06-15"
    assert f["properties"]["province_code"] == "PK-PB"
    rels = {x["rel"] for x in f["links"]}
    assert {"self", "collection"} <= rels
    r = client.get(f"{ITEMS}/{lic['C']}", params={"properties": "status,area_km2"})
    assert set(r.json()["properties"]) == {"status", "area_km2"}
    assert_bad(client.get(f"{ITEMS}/{lic['C']}", params={"properties": "nosuch"}))
    r = client.get(f"{ITEMS}/{lic['C']}", params={"crs": "EPSG:4326"})
    assert r.headers["content-crs"] == f"<{EPSG}4326>"
    assert coords(r.json()) == [[y, x] for x, y in coords(f)]

    j = client.get("/collections/jurisdictions/items/PK-BA")
    assert j.status_code == 200
    assert j.json()["id"] == "PK-BA"
    assert j.json()["properties"]["name"] == "Balochistan"
    sid = reserved["OGC test forest"]
    r = client.get(f"/collections/reserved_areas/items/{sid}")
    assert r.status_code == 200
    assert r.json()["properties"]["kind"] == "forest"
    assert r.json()["properties"]["designated_on"] == "2005-05-05"

    for path in (
        f"{ITEMS}/999999999",
        f"{ITEMS}/not-a-number",
        "/collections/jurisdictions/items/PK-XX",
        "/collections/reserved_areas/items/999999999",
    ):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.json()["code"] == "not_found"


def test_other_collections_items(
    client: TestClient, lic: dict[str, int], reserved: dict[str, int]
) -> None:
    body = client.get("/collections/jurisdictions/items").json()
    assert body["numberMatched"] == 7
    assert "PK-BA" in {f["id"] for f in body["features"]}
    body = client.get(
        "/collections/reserved_areas/items", params={"filter": "kind = 'forest'"}
    ).json()
    assert [f["properties"]["name"] for f in body["features"]] == ["OGC test forest"]
    body = client.get("/collections/reserved_areas/items", params={"bbox": "65,28,67,30"}).json()
    assert [f["properties"]["name"] for f in body["features"]] == ["OGC test sanctuary"]
    body = client.get(
        "/collections/jurisdictions/items", params={"sortby": "-area_km2", "limit": 1}
    ).json()
    assert body["features"][0]["id"] == "PK-BA"  # Balochistan is the largest
    # datetime on a collection without a temporal property.
    assert_bad(client.get("/collections/jurisdictions/items", params={"datetime": "2020-01-01"}))


def test_openapi_documents_what_items_and_tiles_take(client: TestClient) -> None:
    """The oas30 class: the OpenAPI document lists the query parameters the routes accept
    (they read them themselves, so they are declared by hand) and their 400/404 answers."""
    doc = client.get("/openapi.json").json()
    items = doc["paths"]["/collections/{collectionId}/items"]["get"]
    names = {p["name"] for p in items["parameters"] if p["in"] == "query"}
    assert names == ITEMS_PARAMS_EXPECTED
    assert {"400", "404"} <= set(items["responses"])
    tile = doc["paths"]["/tiles/{collection}/{z}/{x}/{y}.mvt"]["get"]
    assert {p["name"] for p in tile["parameters"] if p["in"] == "query"} == {
        "status", "type", "province", "mineral", "filter", "filter-lang", "filter-crs"
    }  # fmt: skip
    # every documented items parameter is accepted (no 400 for the name itself)
    for name in sorted(names - {"filter", "filter-lang", "filter-crs", "bbox-crs", "crs"}):
        value = {"bbox": "60,23,78,37", "datetime": "2024-01-01", "limit": "5",
                 "offset": "0", "properties": "status", "sortby": "status", "f": "json",
                 "status": "granted", "type": "mining_lease", "province": "BA",
                 "mineral": "gold"}[name]  # fmt: skip
        r = client.get(f"/collections/licences/items?{name}={value}")
        assert r.status_code == 200, (name, r.text)


ITEMS_PARAMS_EXPECTED = {
    "bbox", "bbox-crs", "datetime", "limit", "offset", "crs", "filter", "filter-lang",
    "filter-crs", "properties", "sortby", "f", "status", "type", "province", "mineral",
}  # fmt: skip
