"""GET /licences and the reference endpoints: filters, paging, RFC 7946 output.

A fixed set of licences is entered with ``register_licences`` on the test's
connection (rolled back afterwards), so every count below is exact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import Connection

from cadastre.db.licences import Candidate, Holder, Shape, register_licences
from cadastre.domain.geometry import intake
from cadastre.rules import RuleBook
from cadastre.settings import Settings

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


def rect(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def polygon(*rings: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


@dataclass(frozen=True)
class Spec:
    key: str
    province: str
    licence_type: str
    minerals: tuple[str, ...]
    holder: str
    status: str
    geometry: dict[str, Any]


SPECS = [
    Spec(
        "A",
        "PK-BA",
        "exploration_licence",
        ("Copper", "Gold"),
        "Reko Minerals Ltd",
        "applied",
        polygon(rect(64.0, 28.0, 64.05, 28.05)),
    ),
    Spec(
        "B",
        "PK-BA",
        "mining_lease",
        ("Chromite",),
        "Muslim Bagh Chrome (Pvt) Ltd",
        "granted",
        polygon(rect(67.7, 30.8, 67.75, 30.85)),
    ),
    Spec(
        "C",
        "PK-PB",
        "mining_lease",
        ("Rock salt",),
        "Khewra Salt Co",
        "granted",
        polygon(rect(71.0, 30.0, 71.05, 30.05)),
    ),
    Spec(
        "D",
        "PK-KP",
        "exploration_licence",
        ("Marble",),
        "Swat Marble Works",
        "applied",
        # Clockwise as submitted: the register must return it counter-clockwise.
        polygon(rect(72.3, 34.8, 72.35, 34.85)[::-1]),
    ),
    Spec(
        "E",
        "PK-SD",
        "exploration_licence",
        ("Coal",),
        "Thar Coal Co",
        "applied",
        # With a hole, given counter-clockwise: it must come back clockwise.
        polygon(rect(68.3, 26.0, 68.4, 26.1), rect(68.33, 26.03, 68.36, 26.06)),
    ),
    Spec(
        "F",
        "PK-BA",
        "prospecting_licence",
        ("COPPER",),
        "Chagai Copper Ltd",
        "applied",
        polygon(rect(64.1, 28.0, 64.15, 28.05)),
    ),
    Spec(
        "G",
        "PK-PB",
        "exploration_licence",
        ("Gypsum",),
        "reko minerals ltd",  # the same party as A, by name ignoring case
        "applied",
        polygon(rect(71.2, 30.0, 71.25, 30.05)),
    ),
]
ALL = {s.key for s in SPECS}


@pytest.fixture
def licences(conn: Connection, rules: RuleBook) -> dict[str, int]:
    """Register SPECS; returns licence id by key."""
    cands = [
        Candidate(
            licence_type=s.licence_type,
            minerals=list(s.minerals),
            holder=Holder(name=s.holder),
            shape=Shape.from_intake(intake(s.geometry, None)),
            province=s.province,
            status=s.status,
            granted_on=date(2025, 1, 1) if s.status == "granted" else None,
            expires_on=date(2035, 1, 1) if s.status == "granted" else None,
        )
        for s in SPECS
    ]
    result = register_licences(conn, cands, rules=rules, actor="test", action="import")
    assert not result.rejected
    return {SPECS[i].key: lid for i, lid in result.created.items()}


def listing(client: TestClient, **params: Any) -> dict[str, Any]:
    r = client.get("/licences", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    return r.json()


def keys(body: dict[str, Any], ids: dict[str, int]) -> set[str]:
    by_id = {v: k for k, v in ids.items()}
    got = [by_id[f["id"]] for f in body["features"]]
    assert len(got) == len(set(got)), "a feature was listed twice"
    return set(got)


def matched(client: TestClient, ids: dict[str, int], **params: Any) -> set[str]:
    body = listing(client, **params)
    found = keys(body, ids)
    assert body["numberMatched"] == len(found) == body["numberReturned"]
    return found


def bad(client: TestClient, field: str, **params: Any) -> dict[str, Any]:
    r = client.get("/licences", params=params)
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["code"] == "invalid_input", err
    assert field in (err.get("field") or ""), err
    assert err["detail"]
    return err


# ------------------------------------------------------------------- collection


def test_lists_everything_as_feature_collection(
    client: TestClient, licences: dict[str, int]
) -> None:
    body = listing(client)
    assert body["type"] == "FeatureCollection"
    assert body["numberMatched"] == 7 and body["numberReturned"] == 7
    assert keys(body, licences) == ALL
    assert datetime.fromisoformat(body["timeStamp"]).tzinfo is not None
    rels = {link["rel"]: link for link in body["links"]}
    assert rels["self"]["type"] == "application/geo+json"
    assert "next" not in rels  # fewer than a page
    ids = [f["id"] for f in body["features"]]
    assert ids == sorted(ids)


def test_empty_register_lists_nothing(client: TestClient) -> None:
    body = listing(client)
    assert body["numberMatched"] == 0 and body["numberReturned"] == 0
    assert body["features"] == []


def test_properties_of_a_listed_feature(client: TestClient, licences: dict[str, int]) -> None:
    body = listing(client, holder="Khewra")
    (feat,) = body["features"]
    props = feat["properties"]
    assert feat["id"] == licences["C"]
    assert props["province"] == "Punjab" and props["province_code"] == "PK-PB"
    assert props["licence_type"] == "mining_lease" and props["status"] == "granted"
    assert props["minerals"] == ["Rock salt"]
    assert props["granted_on"] == "2025-01-01" and props["expires_on"] == "2035-01-01"
    assert props["licence_no"].startswith("PB-ML-")
    assert props["area_km2"] > 0


# ---------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Balochistan", {"A", "B", "F"}),
        ("PK-BA", {"A", "B", "F"}),
        ("pk-ba", {"A", "B", "F"}),
        ("Punjab", {"C", "G"}),
        ("Khyber Pakhtunkhwa", {"D"}),
        ("PK-SD", {"E"}),
        ("Gilgit-Baltistan", set()),
    ],
)
def test_filter_province(
    client: TestClient, licences: dict[str, int], value: str, expected: set[str]
) -> None:
    assert matched(client, licences, province=value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("granted", {"B", "C"}), ("applied", {"A", "D", "E", "F", "G"}), ("refused", set())],
)
def test_filter_status(
    client: TestClient, licences: dict[str, int], value: str, expected: set[str]
) -> None:
    assert matched(client, licences, status=value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("mining_lease", {"B", "C"}),
        ("exploration_licence", {"A", "D", "E", "G"}),
        ("prospecting_licence", {"F"}),
        ("surface_mineral_lease", set()),
    ],
)
def test_filter_licence_type(
    client: TestClient, licences: dict[str, int], value: str, expected: set[str]
) -> None:
    assert matched(client, licences, licence_type=value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Copper", {"A", "F"}),
        ("copper", {"A", "F"}),
        ("COPPER", {"A", "F"}),
        ("gold", {"A"}),
        ("rock salt", {"C"}),
        ("Uranium", set()),
    ],
)
def test_filter_mineral_case_insensitive(
    client: TestClient, licences: dict[str, int], value: str, expected: set[str]
) -> None:
    assert matched(client, licences, mineral=value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("reko", {"A", "G"}),
        ("REKO MINERALS", {"A", "G"}),
        ("Salt", {"C"}),
        ("(Pvt)", {"B"}),
        ("Ltd", {"A", "B", "F", "G"}),
        ("%", set()),  # a LIKE wildcard is taken literally
        ("_", set()),
        ("Nobody", set()),
    ],
)
def test_filter_holder_substring(
    client: TestClient, licences: dict[str, int], value: str, expected: set[str]
) -> None:
    assert matched(client, licences, holder=value) == expected


@pytest.mark.parametrize(
    ("bbox", "expected"),
    [
        ("63.9,27.9,64.2,28.1", {"A", "F"}),
        ("64.01,28.01,64.02,28.02", {"A"}),  # wholly inside A
        ("60.5,23.3,78,37.3", ALL),
        ("65.0,24.0,65.5,24.5", set()),
        # Shares only A's eastern edge (x = 64.05) and stops short of F (x >= 64.1):
        # the bbox filter selects what intersects the box, and touching intersects.
        ("64.05,27.0,64.08,29.0", {"A"}),
        # Touches only E's south-west corner.
        ("68.0,25.5,68.3,26.0", {"E"}),
    ],
)
def test_filter_bbox(
    client: TestClient, licences: dict[str, int], bbox: str, expected: set[str]
) -> None:
    assert matched(client, licences, bbox=bbox) == expected


def test_bbox_inside_hole_matches_nothing(client: TestClient, licences: dict[str, int]) -> None:
    """The box lies in E's hole: it meets E's bounding box but not its ground."""
    assert matched(client, licences, bbox="68.34,26.04,68.35,26.05") == set()


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"province": "PK-BA", "status": "granted"}, {"B"}),
        ({"province": "Balochistan", "mineral": "copper"}, {"A", "F"}),
        (
            {"province": "Balochistan", "mineral": "copper", "licence_type": "prospecting_licence"},
            {"F"},
        ),
        ({"holder": "reko", "province": "Punjab"}, {"G"}),
        ({"holder": "reko", "bbox": "63.9,27.9,64.2,28.1"}, {"A"}),
        ({"licence_type": "mining_lease", "status": "applied"}, set()),
        ({"status": "applied", "bbox": "60.5,23.3,78,37.3", "mineral": "marble"}, {"D"}),
    ],
)
def test_filter_combinations(
    client: TestClient, licences: dict[str, int], params: dict[str, str], expected: set[str]
) -> None:
    assert matched(client, licences, **params) == expected


def test_as_of(client: TestClient, licences: dict[str, int]) -> None:
    # Before the licences were entered: nothing.
    assert matched(client, licences, as_of="2000-01-01") == set()
    past = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    assert matched(client, licences, as_of=past) == set()
    # A later instant with an offset (the "+" must survive the query string).
    later = (datetime.now(UTC) + timedelta(hours=1)).astimezone().isoformat()
    assert matched(client, licences, as_of=later) == ALL
    assert (
        matched(
            client,
            licences,
            as_of=(datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        == ALL
    )
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert matched(client, licences, as_of=tomorrow, status="granted") == {"B", "C"}


# ------------------------------------------------------------------------ paging


def test_number_matched_is_exact_with_limit(client: TestClient, licences: dict[str, int]) -> None:
    body = listing(client, limit=2)
    assert body["numberMatched"] == 7
    assert body["numberReturned"] == 2 == len(body["features"])
    nxt = [link for link in body["links"] if link["rel"] == "next"]
    assert len(nxt) == 1 and f"after={body['features'][-1]['id']}" in nxt[0]["href"]
    body = listing(client, limit=1, province="PK-BA")
    assert body["numberMatched"] == 3 and body["numberReturned"] == 1


def walk(client: TestClient, **params: Any) -> tuple[list[int], int]:
    """Follow ``next`` links from the first page; returns every id seen and the page count."""
    r = client.get("/licences", params=params)
    seen: list[int] = []
    pages = 0
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        assert pages < 50, "next links do not end"
        assert body["numberReturned"] == len(body["features"])
        seen += [f["id"] for f in body["features"]]
        nxt = [link["href"] for link in body["links"] if link["rel"] == "next"]
        if not nxt:
            return seen, pages
        r = client.get(nxt[0])


@pytest.mark.parametrize("limit", [1, 2, 3, 6, 7, 100])
def test_walking_next_links_collects_every_feature_once(
    client: TestClient, licences: dict[str, int], limit: int
) -> None:
    seen, pages = walk(client, limit=limit)
    assert sorted(seen) == sorted(licences.values())
    assert len(seen) == len(set(seen))
    assert pages >= -(-7 // limit)


def test_next_links_keep_the_filters(client: TestClient, licences: dict[str, int]) -> None:
    seen, pages = walk(client, limit=1, province="Balochistan", mineral="copper")
    assert sorted(seen) == sorted([licences["A"], licences["F"]])
    assert pages >= 2


def test_limit_above_max(client: TestClient, settings: Settings) -> None:
    err = bad(client, "limit", limit=settings.page_max + 1)
    assert str(settings.page_max) in err["detail"]


def test_limit_at_max_accepted(client: TestClient, settings: Settings) -> None:
    assert listing(client, limit=settings.page_max)["numberReturned"] == 0


@pytest.mark.parametrize("limit", ["0", "-1", "ten"])
def test_limit_invalid(client: TestClient, limit: str) -> None:
    bad(client, "limit", limit=limit)


def test_after_invalid(client: TestClient) -> None:
    bad(client, "after", after="-5")


# ------------------------------------------------------------------ bad filters


@pytest.mark.parametrize(
    "bbox",
    [
        "1,2,3",
        "1,2,3,4,5",
        "a,b,c,d",
        "64,28,63,29",  # west > east
        "64,29,65,28",  # south > north
        "200,0,201,1",
        "60,95,61,96",
        "nan,28,64,29",
    ],
)
def test_bad_bbox(client: TestClient, bbox: str) -> None:
    err = bad(client, "bbox", bbox=bbox)
    assert err["field"] == "bbox"
    assert "bbox" in err["detail"]


@pytest.mark.parametrize("param", ["bbox", "province", "status", "licence_type", "mineral"])
def test_empty_filter_value_is_refused(client: TestClient, param: str) -> None:
    # An empty value is a mistake to name, not a filter to drop silently.
    err = bad(client, param, **{param: ""})
    assert err["field"] == param


@pytest.mark.parametrize("as_of", ["yesterday", "2026-13-01", "2026-01-01T10:00:00", "31/12/2025"])
def test_bad_as_of(client: TestClient, as_of: str) -> None:
    err = bad(client, "as_of", as_of=as_of)
    assert err["field"] == "as_of"


@pytest.mark.parametrize(
    ("param", "value"),
    [("status", "pending"), ("licence_type", "gold_mine"), ("province", "Atlantis")],
)
def test_bad_enumerated_filter(client: TestClient, param: str, value: str) -> None:
    err = bad(client, param, **{param: value})
    assert err["field"] == param
    assert value in err["detail"]


# ------------------------------------------------------------------ RFC 7946


def test_output_is_rfc7946(client: TestClient, licences: dict[str, int]) -> None:
    body = listing(client)
    by_id = {f["id"]: f for f in body["features"]}
    for spec in SPECS:
        feat = by_id[licences[spec.key]]
        assert feat["type"] == "Feature"
        geom = feat["geometry"]
        assert geom["type"] == "MultiPolygon"
        shape = shapely.geometry.shape(geom)
        assert shape.is_valid
        for part in shape.geoms:
            assert shapely.LinearRing(part.exterior.coords).is_ccw, spec.key
            for hole in part.interiors:
                assert not shapely.LinearRing(hole.coords).is_ccw, spec.key
        # lon/lat order, and the same ground that was submitted.
        minx, miny, maxx, maxy = shape.bounds
        assert 60.5 <= minx <= maxx <= 78.0 and 23.3 <= miny <= maxy <= 37.3
        sent = shapely.geometry.shape(spec.geometry)
        assert shape.symmetric_difference(sent).area < 1e-12, spec.key
        # At most 7 decimals.
        for x, y in shapely.get_coordinates(shape):
            assert round(x, 7) == x and round(y, 7) == y


def test_hole_kept_and_clockwise(client: TestClient, licences: dict[str, int]) -> None:
    body = listing(client, province="Sindh")
    (feat,) = body["features"]
    (poly,) = feat["geometry"]["coordinates"]
    assert len(poly) == 2
    assert shapely.LinearRing(poly[0]).is_ccw
    assert not shapely.LinearRing(poly[1]).is_ccw


def test_clockwise_submission_listed_ccw(client: TestClient, licences: dict[str, int]) -> None:
    body = listing(client, province="PK-KP")
    (feat,) = body["features"]
    assert shapely.LinearRing(feat["geometry"]["coordinates"][0][0]).is_ccw


def test_licence_created_through_api_is_listed(
    client: TestClient, licences: dict[str, int]
) -> None:
    body = {
        "type": "Feature",
        "geometry": polygon(rect(67.0, 29.0, 67.05, 29.05)),
        "properties": {
            "licence_type": "exploration_licence",
            "minerals": ["Lead", "Zinc"],
            "holder": "Duddar Lead Zinc",
        },
    }
    r = client.post("/licences", json=body)
    assert r.status_code == 201, r.text
    new_id = r.json()["id"]
    assert listing(client)["numberMatched"] == 8
    found = listing(client, mineral="zinc")
    assert [f["id"] for f in found["features"]] == [new_id]


# ------------------------------------------------------------------ one licence


def test_read_one(client: TestClient, licences: dict[str, int]) -> None:
    r = client.get(f"/licences/{licences['A']}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    feat = r.json()
    assert feat["id"] == licences["A"]
    assert feat["properties"]["minerals"] == ["Copper", "Gold"]
    assert feat["properties"]["submitted"]["crs"] == "OGC:CRS84"


def test_read_unknown_licence(client: TestClient, licences: dict[str, int]) -> None:
    missing = max(licences.values()) + 1000
    r = client.get(f"/licences/{missing}")
    assert r.status_code == 404
    err = r.json()
    assert err["code"] == "not_found"
    assert str(missing) in err["detail"]


def test_read_licence_id_not_a_number(client: TestClient) -> None:
    r = client.get("/licences/abc")
    assert r.status_code == 422
    assert r.json()["code"] == "invalid_input"


# ------------------------------------------------------------------ reference data


def test_jurisdictions(client: TestClient) -> None:
    """Seven jurisdictions, areas within 1 % of the sample file's.

    The file's ``area_km2`` values were computed in an equal-area projection
    (EPSG:6933) and rounded to whole km², while the register's are geodesic on the
    WGS 84 ellipsoid; the two methods differ slightly, hence 1 % rather than 0.01 %.
    """
    r = client.get("/jurisdictions")
    assert r.status_code == 200
    got = {j["code"]: j for j in r.json()}
    sample = json.loads((SAMPLE / "pakistan_admin1_provinces.geojson").read_text())
    expected = {f["properties"]["province_iso"]: f["properties"] for f in sample["features"]}
    assert len(got) == 7 and set(got) == set(expected)
    for code, props in expected.items():
        assert got[code]["name"] == props["province"]
        assert got[code]["area_km2"] == pytest.approx(props["area_km2"], rel=0.01), code
    kinds = {c: j["kind"] for c, j in got.items()}
    assert kinds["PK-PB"] == "province" and kinds["PK-IS"] == "territory"


def test_licence_types_punjab_mining_lease_limit(client: TestClient) -> None:
    r = client.get("/licence-types")
    assert r.status_code == 200
    types = {t["key"]: t for t in r.json()}
    assert "mining_lease" in types and "exploration_licence" in types
    ml = types["mining_lease"]
    limit = ml["provinces"]["PK-PB"]["max_area_km2"]
    assert limit["value"] == 250
    assert "250" in limit["source"] and "PB" in limit["source"]
    # Elsewhere no limit is configured, and a null limit carries no source.
    assert ml["provinces"]["PK-BA"]["max_area_km2"] == {"value": None, "source": None}
    assert ml["rules"]["max_area_km2"]["value"] is None


def test_licence_types_for_one_province(client: TestClient) -> None:
    r = client.get("/licence-types", params={"province": "Punjab"})
    assert r.status_code == 200
    ml = next(t for t in r.json() if t["key"] == "mining_lease")
    assert list(ml["provinces"]) == ["PK-PB"]
    assert ml["provinces"]["PK-PB"]["max_area_km2"]["value"] == 250


def test_licence_types_unknown_province(client: TestClient) -> None:
    r = client.get("/licence-types", params={"province": "Atlantis"})
    assert r.status_code == 422
    assert r.json()["field"] == "province"


def test_as_of_date_is_end_of_day_in_karachi(client: TestClient, licences: dict[str, int]) -> None:
    """A date means the register at the end of that day in Asia/Karachi."""
    today = datetime.now(ZoneInfo("Asia/Karachi")).date()
    assert matched(client, licences, as_of=today.isoformat()) == ALL
    yesterday = today - timedelta(days=1)
    assert matched(client, licences, as_of=yesterday.isoformat()) == set()
