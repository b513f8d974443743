"""The area-of-interest report, checked against shapely and pyproj's geodesic areas.

The area of interest (AOI) is a 0.4° x 0.3° box in Balochistan with a hole;
around it, licences chosen for the awkward cases: one wholly inside, one across
the AOI's edge, one across the hole's edge, one sharing only an edge with the
AOI, a sliver below the tolerance, a non-exclusive reconnaissance licence and
an expired title (listed, but neither takes ground). A reserved area cuts a
corner. Survey layers (points, lines and polygons) are written straight into
the catalogue tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Geod, Transformer
from shapely.geometry import shape
from sqlalchemy import Connection, text

from api.app import create_app
from cadastre.db.licences import Candidate, Holder, Shape, register_licences
from cadastre.db.reserved import load_reserved_areas
from cadastre.domain.geometry import intake
from cadastre.rules import RuleBook
from cadastre.settings import Settings
from tests.conftest import SavepointDatabase
from tests.live import ADMIN

GEOD = Geod(ellps="WGS84")


def km2(geom: Any) -> float:
    """Geodesic area (WGS 84) of a lon/lat shapely geometry, km²."""
    return abs(GEOD.geometry_area_perimeter(geom)[0]) / 1e6


def rect(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


OUTER = rect(65.0, 27.0, 65.4, 27.3)
HOLE = rect(65.25, 27.05, 65.35, 27.15)
AOI_POLY = shapely.Polygon(OUTER, [HOLE[::-1]])
AOI = {"type": "Polygon", "coordinates": [OUTER, HOLE[::-1]]}


@dataclass(frozen=True)
class Spec:
    key: str
    licence_type: str
    status: str
    holder: str
    minerals: tuple[str, ...]
    ring: list[list[float]]


SPECS = [
    Spec("INSIDE", "exploration_licence", "granted", "Inside Co", ("Copper",),
         rect(65.05, 27.05, 65.10, 27.10)),
    Spec("ACROSS", "mining_lease", "granted", "Across Co", ("Chromite",),
         rect(65.35, 27.20, 65.50, 27.25)),
    Spec("HOLE", "exploration_licence", "applied", "Hole Co", ("Gold",),
         rect(65.20, 27.08, 65.30, 27.12)),
    Spec("EDGE", "exploration_licence", "granted", "Edge Co", ("Iron ore",),
         rect(64.90, 27.10, 65.00, 27.15)),
    Spec("SLIVER", "exploration_licence", "granted", "Sliver Co", ("Lead",),
         rect(64.95, 27.20, 65.00001, 27.2001)),
    Spec("RECON", "reconnaissance_licence", "granted", "Recon Co", ("Copper",),
         rect(65.10, 27.15, 65.20, 27.25)),
    Spec("EXPIRED", "exploration_licence", "expired", "Old Co", ("Gold",),
         rect(65.12, 27.02, 65.18, 27.06)),
    Spec("AWAY", "exploration_licence", "granted", "Away Co", ("Gold",),
         rect(66.0, 28.0, 66.1, 28.1)),
]  # fmt: skip
BY_KEY = {s.key: s for s in SPECS}
RESERVED_RING = rect(64.9, 27.25, 65.05, 27.4)
TAKING = ("INSIDE", "ACROSS", "HOLE")  # live exclusive, overlapping by more than 100 m²

OCCURRENCES = [
    ((65.07, 27.07), "Copper; Gold"),
    ((65.2, 27.2), "Copper"),
    ((65.3, 27.1), "Gold"),  # in the hole: not in the AOI
    ((65.39, 27.29), "Chromite"),
    ((66.5, 28.5), "Copper"),  # far away
]
FAULT = [[64.8, 27.15], [65.6, 27.15]]  # crosses the AOI and its hole
UNITS = [
    (rect(64.9, 26.9, 65.2, 27.4), "Unit A"),
    (rect(65.2, 26.9, 65.5, 27.4), "Unit B"),
]


@pytest.fixture
def lic(conn: Connection, rules: RuleBook) -> dict[str, int]:
    cands = []
    for s in SPECS:
        granted = s.status in ("granted", "expired")
        cands.append(
            Candidate(
                licence_type=s.licence_type,
                minerals=list(s.minerals),
                holder=Holder(name=s.holder),
                shape=Shape.from_intake(intake({"type": "Polygon", "coordinates": [s.ring]}, None)),
                province="PK-BA",
                licence_no=f"AOI-{s.key}",
                status=s.status,
                granted_on=date(2020, 1, 1) if granted else None,
                expires_on=date(2023, 1, 1) if granted else None,
            )
        )
    result = register_licences(conn, cands, rules=rules, actor="test", action="import")
    assert not result.rejected
    load_reserved_areas(
        conn,
        [
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [RESERVED_RING]},
                "properties": {
                    "name": "AOI test park",
                    "kind": "protected",
                    "province": "Balochistan",
                    "source": "test",
                    "designated_on": "2001-01-01",
                },
            }
        ],
    )
    return {s.key: result.created[i] for i, s in enumerate(SPECS)}


def add_layer(
    conn: Connection,
    slug: str,
    kind: str,
    features: list[tuple[dict[str, Any], dict[str, Any]]],
    attributes: list[str],
    *,
    synthetic: bool = False,
) -> None:
    layer_id = conn.execute(
        text(
            "INSERT INTO survey_layers (slug, name, kind, storage, source, licence, synthetic,"
            " geometry_type, attributes, feature_count, loaded_by) VALUES (:slug, :name, :kind,"
            " 'vector', 'test', 'CC BY 4.0', :syn, 'mixed', CAST(:attrs AS jsonb), :n, 'test')"
            " RETURNING id"
        ),
        {
            "slug": slug,
            "name": f"Test {slug}",
            "kind": kind,
            "syn": synthetic,
            "attrs": json.dumps([{"name": a, "type": "string"} for a in attributes]),
            "n": len(features),
        },
    ).scalar_one()
    conn.execute(
        text(
            "INSERT INTO survey_features (layer_id, fid, properties, geom) VALUES "
            "(:layer, :fid, CAST(:props AS jsonb), ST_SetSRID(ST_GeomFromGeoJSON(:g), 4326))"
        ),
        [
            {"layer": layer_id, "fid": i + 1, "props": json.dumps(p), "g": json.dumps(g)}
            for i, (g, p) in enumerate(features)
        ],
    )


@pytest.fixture
def layers(conn: Connection) -> None:
    add_layer(
        conn,
        "test_occurrences",
        "occurrences",
        [
            ({"type": "Point", "coordinates": list(xy)}, {"name": f"occ{i}", "commodities": c})
            for i, (xy, c) in enumerate(OCCURRENCES)
        ],
        ["name", "commodities"],
    )
    add_layer(
        conn,
        "test_faults",
        "other",
        [({"type": "LineString", "coordinates": FAULT}, {"slip_type": "Reverse"})],
        ["slip_type"],
    )
    add_layer(
        conn,
        "test_geology",
        "geology",
        [({"type": "Polygon", "coordinates": [r]}, {"unit": u}) for r, u in UNITS],
        ["unit"],
        synthetic=True,
    )


def post(client: TestClient, body: Any, **params: str) -> Any:
    r = client.post("/aoi/report", json=body, params=params)
    assert r.status_code == 200, r.text
    return r


# ------------------------------------------------------------------ licences and ground


def test_area_is_geodesic(client: TestClient, lic: dict[str, int]) -> None:
    body = post(client, AOI).json()
    assert body["area_km2"] == pytest.approx(km2(AOI_POLY), rel=1e-6)


def test_every_licence_in_the_area_with_its_overlap(
    client: TestClient, lic: dict[str, int]
) -> None:
    body = post(client, AOI).json()
    got = {row["licence_no"]: row for row in body["licences"]}
    area = km2(AOI_POLY)
    want = {}
    for s in SPECS:
        piece = shapely.Polygon(s.ring).intersection(AOI_POLY)
        if km2(piece) * 1e6 > 100:  # the tolerance
            want[f"AOI-{s.key}"] = (km2(piece), km2(shapely.Polygon(s.ring)))
    assert set(got) == set(want)
    assert {"AOI-INSIDE", "AOI-ACROSS", "AOI-HOLE", "AOI-RECON", "AOI-EXPIRED"} == set(got)
    for no, (overlap, whole) in want.items():
        row = got[no]
        assert row["overlap_km2"] == pytest.approx(overlap, rel=1e-5, abs=1e-6), no
        assert row["share_of_aoi_pct"] == pytest.approx(100 * overlap / area, rel=1e-4), no
        assert row["share_of_licence_pct"] == pytest.approx(100 * overlap / whole, rel=1e-4), no
    # wholly inside: the whole licence; across the hole's edge: only the part outside it
    assert got["AOI-INSIDE"]["share_of_licence_pct"] == pytest.approx(100, abs=1e-4)
    assert got["AOI-HOLE"]["share_of_licence_pct"] == pytest.approx(50, abs=0.5)
    assert got["AOI-RECON"]["exclusive"] is False
    assert got["AOI-ACROSS"]["holder"] == "Across Co"
    assert got["AOI-ACROSS"]["minerals"] == ["Chromite"]
    assert body["licence_count_by_status"] == {"applied": 1, "expired": 1, "granted": 3}
    # an edge shared with the area, and a sliver under the tolerance, are only touching
    assert {t["licence_no"] for t in body["touching"]} == {"AOI-EDGE", "AOI-SLIVER"}
    assert [o for o in got if o.endswith("AWAY")] == []


def test_free_ground_is_the_area_minus_exclusive_rights_and_reserved_areas(
    client: TestClient, lic: dict[str, int]
) -> None:
    body = post(client, AOI).json()
    taken = shapely.union_all(
        [shapely.Polygon(BY_KEY[k].ring) for k in TAKING] + [shapely.Polygon(RESERVED_RING)]
    )
    free = AOI_POLY.difference(taken)
    got = body["free_ground"]
    assert got["area_km2"] == pytest.approx(km2(free), rel=1e-5)
    assert got["share_pct"] == pytest.approx(100 * km2(free) / km2(AOI_POLY), rel=1e-4)
    geom = shape(got["geometry"])
    assert geom.symmetric_difference(free).area < 1e-9
    # the reconnaissance licence and the expired title leave their ground free
    assert geom.contains(shapely.Polygon(BY_KEY["RECON"].ring).intersection(AOI_POLY).buffer(-1e-6))
    assert geom.contains(shapely.Polygon(BY_KEY["EXPIRED"].ring).buffer(-1e-6))
    (park,) = body["reserved_areas"]
    corner = shapely.Polygon(RESERVED_RING).intersection(AOI_POLY)
    assert park["name"] == "AOI test park"
    assert park["overlap_km2"] == pytest.approx(km2(corner), rel=1e-5)


def test_multipolygon_across_utm_zones(client: TestClient, lic: dict[str, int]) -> None:
    """Two parts, one each side of 66°E (UTM zones 41 and 42), and the same ground in UTM 42N."""
    west = rect(65.0, 27.0, 65.2, 27.3)
    east = rect(65.98, 28.0, 66.2, 28.2)  # holds AWAY, which straddles nothing
    multi = {"type": "MultiPolygon", "coordinates": [[west], [east]]}
    body = post(client, multi).json()
    want = shapely.MultiPolygon([shapely.Polygon(west), shapely.Polygon(east)])
    assert body["area_km2"] == pytest.approx(km2(want), rel=1e-6)
    got = {row["licence_no"]: row["overlap_km2"] for row in body["licences"]}
    assert got["AOI-AWAY"] == pytest.approx(km2(shapely.Polygon(BY_KEY["AWAY"].ring)), rel=1e-5)
    assert "AOI-INSIDE" in got and "AOI-ACROSS" not in got

    # a bbox given in UTM 42N: the answer is that box's ground, measured geodesically
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32642", always_xy=True)
    x0, y0 = to_utm.transform(65.95, 27.95)
    x1, y1 = to_utm.transform(66.15, 28.15)
    body = post(client, {"bbox": [x0, y0, x1, y1]}, crs="EPSG:32642").json()
    back = Transformer.from_crs("EPSG:32642", "EPSG:4326", always_xy=True)
    ring = [back.transform(x, y) for x, y in rect(x0, y0, x1, y1)]
    assert body["area_km2"] == pytest.approx(km2(shapely.Polygon(ring)), rel=1e-4)
    assert {row["licence_no"] for row in body["licences"]} == {"AOI-AWAY"}


def test_bbox_in_lon_lat(client: TestClient, lic: dict[str, int]) -> None:
    body = post(client, {"bbox": [65.0, 27.0, 65.4, 27.3]}).json()
    assert body["area_km2"] == pytest.approx(km2(shapely.Polygon(OUTER)), rel=1e-6)
    assert "AOI-HOLE" in {row["licence_no"] for row in body["licences"]}


# ------------------------------------------------------------------ survey layers


def test_vector_layers_are_summarised(
    client: TestClient, lic: dict[str, int], layers: None
) -> None:
    body = post(client, AOI).json()
    by_slug = {v["slug"]: v for v in body["survey"]["vector"]}
    assert {"test_occurrences", "test_faults", "test_geology"} <= set(by_slug)

    occ = by_slug["test_occurrences"]
    inside = [c for xy, c in OCCURRENCES if AOI_POLY.intersects(shapely.Point(xy))]
    assert occ["features"] == len(inside) == 3
    assert occ["grouped_by"] == "commodities"
    counts = {g["value"]: g["count"] for g in occ["groups"]}
    assert counts == {"Copper": 2, "Gold": 1, "Chromite": 1}

    fault = by_slug["test_faults"]
    piece = shapely.LineString(FAULT).intersection(AOI_POLY)
    assert fault["length_km"] == pytest.approx(GEOD.geometry_length(piece) / 1e3, rel=1e-4)
    assert fault["groups"][0]["value"] == "Reverse"

    geo = by_slug["test_geology"]
    assert geo["synthetic"] is True
    area = km2(AOI_POLY)
    shares = {g["value"]: g["share_pct"] for g in geo["groups"]}
    for r, unit in UNITS:
        want = km2(shapely.Polygon(r).intersection(AOI_POLY))
        assert shares[unit] == pytest.approx(100 * want / area, rel=1e-4), unit
    assert geo["share_pct"] == pytest.approx(100, abs=0.01)  # the units cover the area


def test_layer_outside_the_area_counts_nothing(
    client: TestClient, lic: dict[str, int], layers: None
) -> None:
    body = post(client, {"bbox": [70.0, 30.0, 70.1, 30.1]}).json()
    assert body["licences"] == []
    assert body["free_ground"]["share_pct"] == pytest.approx(100)
    for layer in body["survey"]["vector"]:
        if layer["slug"].startswith("test_"):
            assert layer["features"] == 0, layer


# ------------------------------------------------------------------ formats


def test_geojson_parts(client: TestClient, lic: dict[str, int]) -> None:
    r = client.post("/aoi/report", json=AOI, headers={"Accept": "application/geo+json"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    fc = r.json()
    parts = [f["properties"]["part"] for f in fc["features"]]
    assert parts.count("aoi") == 1 and parts.count("free_ground") == 1
    licences = [f for f in fc["features"] if f["properties"]["part"] == "licence"]
    assert len(licences) == 5
    for f in licences:
        s = BY_KEY[f["properties"]["licence_no"].removeprefix("AOI-")]
        piece = shape(f["geometry"])
        want = shapely.Polygon(s.ring).intersection(AOI_POLY)
        assert piece.symmetric_difference(want).area < 1e-9, s.key
        assert km2(piece) == pytest.approx(f["properties"]["overlap_km2"], rel=1e-5)
    assert shape(fc["features"][0]["geometry"]).equals(AOI_POLY)


def test_printable_html_page_with_a_map(
    client: TestClient, lic: dict[str, int], layers: None
) -> None:
    r = client.post("/aoi/report", json=AOI, headers={"Accept": "text/html"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "<svg" in page and "</svg>" in page
    assert page.count("<path") >= 5 + 2  # the licences, the free ground, the outline
    for no in ("AOI-INSIDE", "AOI-ACROSS", "Across Co"):
        assert no in page
    assert "Test test_geology <strong>(SYNTHETIC)</strong>" in page
    assert "@media print" in page
    assert client.post("/aoi/report?f=html", json=AOI).text.startswith("<!doctype html>")


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("body", "params", "status", "field"),
    [
        ({"bbox": [65.0, 27.0, 64.0, 28.0]}, {}, 422, "bbox"),
        ({"bbox": [65.0, 27.0, 66.0]}, {}, 422, "bbox"),
        ({"bbox": [65.0, 27.0, 66.0, "x"]}, {}, 422, "bbox"),
        ({"bbox": [65.0, 27.0, 66.0, 28.0], "crs": "EPSG:4326"}, {}, 422, "crs"),
        (AOI, {"f": "pdf"}, 400, "f"),
        (AOI, {"crs": "EPSG:9999999"}, 422, "crs"),
        ({"type": "Point", "coordinates": [65.0, 27.0]}, {}, 422, None),
        (
            {"type": "Polygon", "coordinates": [[[65, 27], [65.1, 27.1], [65.1, 27], [65, 27.1],
                                                 [65, 27]]]},
            {},
            422,
            None,
        ),
    ],
)  # fmt: skip
def test_bad_area_is_a_clear_error(
    client: TestClient, body: Any, params: dict[str, str], status: int, field: str | None
) -> None:
    r = client.post("/aoi/report", json=body, params=params)
    assert r.status_code == status, r.text
    err = r.json()
    assert err["detail"]
    if field is not None:
        assert err["field"] == field, err


def test_the_configured_overlap_tolerance_applies(
    settings: Settings, db: SavepointDatabase, lic: dict[str, int]
) -> None:
    """With a tolerance above every overlap (1,000 km²) every licence and the park only
    touch and take no ground, as in the overlap check: the whole area is free."""
    wide = settings.model_copy(update={"overlap_tolerance_m2": 1e9})
    with TestClient(create_app(wide, db=db), headers=ADMIN) as c:
        body = post(c, AOI).json()
    assert body["licences"] == []
    assert {t["licence_no"] for t in body["touching"]} >= {"AOI-INSIDE", "AOI-ACROSS"}
    assert body["reserved_areas"] == []
    assert body["free_ground"]["area_km2"] == pytest.approx(km2(AOI_POLY), rel=1e-6)
