"""POST /licences: every accepted CRS, geometry checks, rules and the receipt.

Positions and areas are checked against independent calculations: pyproj
``Transformer`` (always_xy) to build projected submissions, a ``+towgs84``
definition of Kalianpur 1962 for the datum shift, and
``pyproj.Geod(ellps="WGS84").geometry_area_perimeter`` on the geometry the API
returns for areas. Every refusal is also checked to have written nothing.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Geod, Transformer
from sqlalchemy import Connection, text

GEOD = Geod(ellps="WGS84")
WGS84 = "EPSG:4326"
# Kalianpur 1962 with the EPSG:1247 3-parameter shift written out by hand, so that the
# expected WGS 84 positions do not come from the same pinned operation the API uses.
KALIANPUR_TOWGS84 = "+proj=longlat +a=6377301.243 +rf=300.8017255 +towgs84=283,682,231 +no_defs"

WRITTEN_TABLES = ("licences", "licence_versions", "licence_events", "parties")


# --------------------------------------------------------------------------- helpers


def ring(coords: list[tuple[float, float]]) -> list[list[float]]:
    """A closed ring from its corners (the first is repeated at the end)."""
    pts = [[float(x), float(y)] for x, y in coords]
    return [*pts, pts[0]]


def rect(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    """A counter-clockwise rectangle ring."""
    return ring([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])


def quad(lon: float, lat: float, size: float = 0.05) -> list[list[float]]:
    """An irregular counter-clockwise quadrilateral near (lon, lat), in degrees."""
    return ring(
        [
            (lon, lat),
            (lon + size, lat + 0.1 * size),
            (lon + 1.1 * size, lat + 0.9 * size),
            (lon - 0.1 * size, lat + size),
        ]
    )


def polygon(*rings: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


def feature(geometry: Any, **props: Any) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "licence_type": "exploration_licence",
        "minerals": ["Copper"],
        "holder": "Intake Test Mining (Pvt) Ltd",
    }
    properties.update(props)
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def counts(conn: Connection) -> dict[str, int]:
    return {
        t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in WRITTEN_TABLES
    }


def post(client: TestClient, body: Any, crs: str | None = None, **params: Any) -> Any:
    if crs is not None:
        params["crs"] = crs
    return client.post("/licences", json=body, params=params)


def created(client: TestClient, body: Any, crs: str | None = None, **params: Any) -> Any:
    r = post(client, body, crs, **params)
    assert r.status_code == 201, r.text
    return r.json()


def rejected(
    client: TestClient,
    conn: Connection,
    body: Any = None,
    *,
    crs: str | None = None,
    raw: str | None = None,
    status: int = 422,
    code: str | None = None,
    field: str | None = None,
    contains: tuple[str, ...] = (),
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """POST, expect a refusal of ``status`` with that code, field and text; nothing written."""
    before = counts(conn)
    query = dict(params or {})
    if crs is not None:
        query["crs"] = crs
    if raw is not None:
        r = client.post(
            "/licences",
            content=raw,
            params=query,
            headers={"content-type": "application/json"},
        )
    else:
        r = client.post("/licences", json=body, params=query)
    assert r.status_code == status, r.text
    err = r.json()
    assert isinstance(err.get("detail"), str) and err["detail"], err
    if code is not None:
        assert err["code"] == code, err
    if field is not None:
        assert err.get("field") == field, err
    for piece in contains:
        assert piece.lower() in err["detail"].lower(), (piece, err["detail"])
    assert counts(conn) == before, "a refused application must write nothing"
    return err


def shape_of(feat: dict[str, Any]) -> Any:
    return shapely.geometry.shape(feat["geometry"])


def geod_km2(geom: Any) -> float:
    """Geodesic area of a shape as given (RFC 7946 orientation gives a positive area)."""
    area_m2, _ = GEOD.geometry_area_perimeter(geom)
    return float(area_m2) / 1e6


def ring_km2(coords: list[list[float]]) -> float:
    """Geodesic area of one ring, whatever its orientation."""
    lons, lats = zip(*coords, strict=True)
    area_m2, _ = GEOD.polygon_area_perimeter(lons, lats)
    return abs(float(area_m2)) / 1e6


def assert_area(feat: dict[str, Any], expected_km2: float | None = None) -> None:
    """area_km2 equals the Geod area of the returned geometry within 0.01 %."""
    got = feat["properties"]["area_km2"]
    reference = geod_km2(shape_of(feat)) if expected_km2 is None else expected_km2
    assert reference > 0
    assert got == pytest.approx(reference, rel=1e-4), (got, reference)


def assert_vertices(feat: dict[str, Any], expected: list[list[float]], tol: float = 1e-6) -> None:
    """The stored single polygon has exactly the expected vertices (any start, any order)."""
    geom = feat["geometry"]
    assert geom["type"] == "MultiPolygon"
    assert len(geom["coordinates"]) == 1 and len(geom["coordinates"][0]) == 1
    got = np.array(geom["coordinates"][0][0][:-1], dtype=float)
    want = np.array(expected[:-1], dtype=float)
    assert got.shape == want.shape, (got, want)
    for point in want:
        nearest = np.abs(got - point).max(axis=1).min()
        assert nearest < tol, (point, got)


def project(
    coords: list[list[float]], source: str, target: str, digits: int = 3
) -> list[list[float]]:
    t = Transformer.from_crs(source, target, always_xy=True)
    out = [[round(v, digits) for v in t.transform(x, y)] for x, y in coords]
    out[-1] = list(out[0])
    return out


def to_wgs84_from_kalianpur(coords: list[list[float]]) -> list[list[float]]:
    t = Transformer.from_crs(KALIANPUR_TOWGS84, WGS84, always_xy=True)
    return [list(t.transform(x, y)) for x, y in coords]


def assert_submitted(
    feat: dict[str, Any], sent_geometry: Any, sent_crs: str | None, ident: str
) -> None:
    sub = feat["properties"]["submitted"]
    if isinstance(sent_geometry, str):
        assert sub["geometry"] == sent_geometry
    else:
        assert json.loads(sub["geometry"]) == sent_geometry
    # The CRS is kept as sent or as its normalised identifier (the same CRS).
    assert sub["crs"] in {ident, sent_crs}, sub["crs"]


# ------------------------------------------------------------------ accepted CRSs

BA_41 = (64.0, 28.0)  # Kharan, Balochistan: UTM zone 41N (60-66 E)
PB_42 = (71.0, 30.0)  # south Punjab: UTM zone 42N (66-72 E)
KP_43 = (72.3, 34.8)  # Swat, Khyber Pakhtunkhwa: UTM zone 43N (72-78 E)
BA_42 = (67.0, 29.0)  # Balochistan, zone 42N


WGS84_LONLAT_CASES = [
    (None, "OGC:CRS84"),
    ("OGC:CRS84", "OGC:CRS84"),
    ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", "OGC:CRS84"),
    ("EPSG:4326", "EPSG:4326"),
    ("urn:ogc:def:crs:EPSG::4326", "EPSG:4326"),
]


@pytest.mark.parametrize(("crs", "ident"), WGS84_LONLAT_CASES)
def test_lonlat_crs_accepted_unchanged(client: TestClient, crs: str | None, ident: str) -> None:
    coords = quad(*BA_42)
    geometry = polygon(coords)
    feat = created(client, feature(geometry), crs)
    props = feat["properties"]
    assert props["province_code"] == "PK-BA"
    assert props["status"] == "applied"
    assert props["approximate_transformation"] is False
    assert_vertices(feat, coords)
    assert_area(feat)
    assert_submitted(feat, geometry, crs, ident)


UTM_CASES = [
    ("EPSG:32641", "EPSG:32641", BA_41, "PK-BA"),
    ("EPSG:32642", "EPSG:32642", PB_42, "PK-PB"),
    ("EPSG:32643", "EPSG:32643", KP_43, "PK-KP"),
    ("urn:ogc:def:crs:EPSG::32642", "EPSG:32642", PB_42, "PK-PB"),
    ("http://www.opengis.net/def/crs/EPSG/0/32642", "EPSG:32642", PB_42, "PK-PB"),
]


@pytest.mark.parametrize(("crs", "ident", "where", "province"), UTM_CASES)
def test_utm_crs_reprojected_to_lonlat(
    client: TestClient, crs: str, ident: str, where: tuple[float, float], province: str
) -> None:
    lonlat = quad(*where)
    projected = project(lonlat, WGS84, ident)
    assert projected[0][0] > 1000  # metres, not degrees
    geometry = polygon(projected)
    feat = created(client, feature(geometry), crs)
    props = feat["properties"]
    assert props["province_code"] == province
    assert props["approximate_transformation"] is False
    # mm rounding of the eastings moves a vertex by ~1e-8 degrees.
    assert_vertices(feat, lonlat, tol=1e-6)
    assert_area(feat)
    assert_submitted(feat, geometry, crs, ident)
    assert "UTM zone" in props["submitted"]["transformation"]


KALIANPUR_CASES = [
    ("EPSG:4145", BA_42, "PK-BA"),
    ("EPSG:24312", PB_42, "PK-PB"),
    ("EPSG:24313", KP_43, "PK-KP"),
    ("urn:ogc:def:crs:EPSG::24312", PB_42, "PK-PB"),
]


@pytest.mark.parametrize(("crs", "where", "province"), KALIANPUR_CASES)
def test_kalianpur_crs_shifted_with_epsg_1247(
    client: TestClient, crs: str, where: tuple[float, float], province: str
) -> None:
    ident = "EPSG:" + crs.rsplit(":", 1)[-1]
    kalianpur_lonlat = quad(*where)
    sent = (
        kalianpur_lonlat if ident == "EPSG:4145" else project(kalianpur_lonlat, "EPSG:4145", ident)
    )
    geometry = polygon(sent)
    feat = created(client, feature(geometry), crs)
    props = feat["properties"]
    assert props["province_code"] == province
    assert props["approximate_transformation"] is True
    assert "EPSG:1247" in props["submitted"]["transformation"]
    expected = to_wgs84_from_kalianpur(kalianpur_lonlat)
    # EPSG:1247 moves these points by 6 to 85 m, far more than the 1e-6 degree (~0.1 m)
    # tolerance, so a skipped datum shift cannot pass.
    _, _, shift_m = GEOD.inv(*kalianpur_lonlat[0], *expected[0])
    assert shift_m > 1
    assert_vertices(feat, expected, tol=1e-6)
    assert_area(feat)
    assert_submitted(feat, geometry, crs, ident)


def test_utm_square_10km_area(client: TestClient) -> None:
    """A 10 km x 10 km square in UTM 42N: area_km2 is geodesic, not the planar 100 km².

    The square lies 100 km west of the central meridian (69 E), where the UTM scale factor
    is about 0.99972, so its true ground area is about 100 / 0.99972² = 100.06 km². The
    geodesic area therefore matches Geod on the reprojected corners within 0.01 % and
    matches 100 km² only within the scale-factor tolerance (0.5 %).
    """
    e0, n0 = 400_000.0, 3_320_000.0
    square = rect(e0, n0, e0 + 10_000, n0 + 10_000)
    feat = created(client, feature(polygon(square)), "EPSG:32642")
    lonlat = [list(p) for p in project(square, "EPSG:32642", WGS84, digits=12)]
    expected = ring_km2(lonlat)
    assert_area(feat, expected)
    assert_area(feat)
    assert feat["properties"]["area_km2"] == pytest.approx(100.0, rel=5e-3)
    assert feat["properties"]["area_km2"] != pytest.approx(100.0, rel=1e-5)


def test_location_header_and_read_back(client: TestClient) -> None:
    feat = created(client, feature(polygon(quad(*BA_42))))
    resp = client.get(f"/licences/{feat['id']}")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/geo+json")
    assert resp.json()["properties"]["licence_no"] == feat["properties"]["licence_no"]
    again = post(client, feature(polygon(quad(BA_42[0] + 0.2, BA_42[1]))))
    assert again.status_code == 201
    assert again.headers["location"].endswith(f"/licences/{again.json()['id']}")


# ----------------------------------------------------------------- shapes accepted


def test_wkt_polygon(client: TestClient) -> None:
    coords = quad(*BA_42)
    wkt = "POLYGON ((" + ", ".join(f"{x} {y}" for x, y in coords) + "))"
    feat = created(client, feature(wkt))
    assert_vertices(feat, coords)
    assert_area(feat)
    assert_submitted(feat, wkt, None, "OGC:CRS84")


def test_wkt_multipolygon_two_parts(client: TestClient) -> None:
    a, b = rect(67.0, 29.0, 67.05, 29.05), rect(67.1, 29.0, 67.15, 29.05)

    def part(c: list[list[float]]) -> str:
        return "((" + ", ".join(f"{x} {y}" for x, y in c) + "))"

    wkt = f"MULTIPOLYGON ({part(a)}, {part(b)})"
    feat = created(client, feature(wkt), "EPSG:4326")
    assert feat["geometry"]["type"] == "MultiPolygon"
    assert len(feat["geometry"]["coordinates"]) == 2
    assert_area(feat, ring_km2(a) + ring_km2(b))
    assert feat["properties"]["submitted"]["geometry"] == wkt


def test_geojson_multipolygon_two_parts(client: TestClient) -> None:
    a, b = rect(67.0, 29.0, 67.05, 29.05), rect(67.1, 29.0, 67.15, 29.05)
    geometry = {"type": "MultiPolygon", "coordinates": [[a], [b]]}
    feat = created(client, feature(geometry))
    got = shape_of(feat)
    assert got.geom_type == "MultiPolygon" and len(got.geoms) == 2
    assert got.equals(shapely.MultiPolygon([shapely.Polygon(a), shapely.Polygon(b)]))
    assert_area(feat, ring_km2(a) + ring_km2(b))
    assert json.loads(feat["properties"]["submitted"]["geometry"]) == geometry


def test_polygon_with_hole_area_is_outer_minus_hole(client: TestClient) -> None:
    outer = rect(67.0, 29.0, 67.1, 29.1)
    hole = rect(67.03, 29.03, 67.06, 29.06)[::-1]  # clockwise, as RFC 7946 asks
    feat = created(client, feature(polygon(outer, hole)))
    poly = shape_of(feat).geoms[0]
    assert len(poly.interiors) == 1
    assert poly.exterior.is_ccw and not poly.interiors[0].is_ccw
    assert_area(feat, ring_km2(outer) - ring_km2(hole))
    assert_area(feat)


def test_clockwise_exterior_comes_back_ccw(client: TestClient) -> None:
    cw = quad(*BA_42)[::-1]
    assert not shapely.LinearRing(cw).is_ccw
    geometry = polygon(cw)
    feat = created(client, feature(geometry))
    assert shapely.LinearRing(feat["geometry"]["coordinates"][0][0]).is_ccw
    assert_vertices(feat, cw)
    assert_area(feat)
    # The legal record keeps the ring as it was sent, clockwise.
    assert json.loads(feat["properties"]["submitted"]["geometry"]) == geometry


def test_province_given_by_iso_code_accepted(client: TestClient) -> None:
    feat = created(client, feature(polygon(quad(*PB_42)), province="PK-PB"))
    assert feat["properties"]["province"] == "Punjab"
    feat2 = created(client, feature(polygon(quad(PB_42[0] + 0.2, PB_42[1])), province="punjab"))
    assert feat2["properties"]["province_code"] == "PK-PB"


# --------------------------------------------------------------------- malformed


def test_ring_not_closed_names_ring(client: TestClient, conn: Connection) -> None:
    hole = rect(67.03, 29.03, 67.06, 29.06)[::-1]
    hole[-1] = [67.031, 29.03]
    err = rejected(
        client,
        conn,
        feature(polygon(rect(67.0, 29.0, 67.1, 29.1), hole)),
        code="invalid_geometry",
        field="geometry",
        contains=("ring 1 of polygon 0", "not closed"),
    )
    assert err["where"]["ring"] == 1 and err["where"]["polygon"] == 0


def test_exterior_ring_not_closed(client: TestClient, conn: Connection) -> None:
    coords = quad(*BA_42)[:-1]
    err = rejected(
        client, conn, feature(polygon(coords)), code="invalid_geometry", contains=("ring 0",)
    )
    assert "not closed" in err["detail"]


def test_too_few_positions(client: TestClient, conn: Connection) -> None:
    coords = [[67.0, 29.0], [67.1, 29.0], [67.0, 29.0]]
    err = rejected(
        client,
        conn,
        feature(polygon(coords)),
        code="invalid_geometry",
        contains=("3 position", "at least 4"),
    )
    assert err["where"]["positions"] == 3


def test_too_few_distinct_points(client: TestClient, conn: Connection) -> None:
    coords = [[67.0, 29.0], [67.1, 29.1], [67.1, 29.1], [67.0, 29.0]]
    rejected(
        client,
        conn,
        feature(polygon(coords)),
        code="invalid_geometry",
        contains=("too few points",),
    )


BOWTIE = ring([(67.0, 29.0), (67.1, 29.1), (67.1, 29.0), (67.0, 29.1)])


def test_self_intersection_names_crossing_point(client: TestClient, conn: Connection) -> None:
    err = rejected(
        client,
        conn,
        feature(polygon(BOWTIE)),
        code="invalid_geometry",
        field="geometry",
        contains=("self-intersection",),
    )
    m = re.search(r"at \(([-\d.e]+), ([-\d.e]+)\)", err["detail"])
    assert m, err["detail"]
    assert float(m.group(1)) == pytest.approx(67.05, abs=1e-9)
    assert float(m.group(2)) == pytest.approx(29.05, abs=1e-9)
    assert err["where"]["x"] == pytest.approx(67.05) and err["where"]["y"] == pytest.approx(29.05)


def test_self_intersection_in_utm_gives_lonlat_too(client: TestClient, conn: Connection) -> None:
    bowtie = ring([(400000, 3320000), (410000, 3330000), (410000, 3320000), (400000, 3330000)])
    err = rejected(
        client,
        conn,
        feature(polygon(bowtie)),
        crs="EPSG:32642",
        code="invalid_geometry",
        contains=("self-intersection", "405000", "3325000"),
    )
    lon, lat = Transformer.from_crs("EPSG:32642", WGS84, always_xy=True).transform(405000, 3325000)
    assert err["where"]["lon"] == pytest.approx(lon, abs=1e-6)
    assert err["where"]["lat"] == pytest.approx(lat, abs=1e-6)


def _raw_body(coords_text: str) -> str:
    return (
        '{"type":"Feature","geometry":{"type":"Polygon","coordinates":[' + coords_text + "]},"
        '"properties":{"licence_type":"exploration_licence","minerals":["Copper"],'
        '"holder":"Intake Test Mining (Pvt) Ltd"}}'
    )


def test_nan_coordinate(client: TestClient, conn: Connection) -> None:
    raw = _raw_body("[[67.0,29.0],[NaN,29.0],[67.1,29.1],[67.0,29.0]]")
    err = rejected(client, conn, raw=raw, code="invalid_geometry", contains=("NaN", "coordinate 1"))
    assert err["where"]["vertex"] == 1 and err["where"]["axis"] == "x"


def test_infinite_coordinate(client: TestClient, conn: Connection) -> None:
    raw = _raw_body("[[67.0,29.0],[67.1,29.0],[67.1,Infinity],[67.0,29.0]]")
    err = rejected(client, conn, raw=raw, code="invalid_geometry", contains=("infinite",))
    assert err["where"]["vertex"] == 2 and err["where"]["axis"] == "y"


def test_nan_via_json_dumps_allow_nan(client: TestClient, conn: Connection) -> None:
    coords = quad(*BA_42)
    coords[2][1] = float("nan")
    raw = json.dumps(feature(polygon(coords)), allow_nan=True)
    rejected(client, conn, raw=raw, code="invalid_geometry", contains=("NaN", "coordinate 2"))


def test_string_coordinate(client: TestClient, conn: Connection) -> None:
    coords: list[list[Any]] = quad(*BA_42)
    coords[1] = [coords[1][0], "29.005"]
    err = rejected(
        client,
        conn,
        feature(polygon(coords)),
        code="invalid_geometry",
        contains=("coordinate 1", "string", "not a number"),
    )
    assert err["where"]["axis"] == "y"


@pytest.mark.parametrize(
    ("geometry", "name"),
    [
        ({"type": "Point", "coordinates": [67.0, 29.0]}, "Point"),
        ({"type": "LineString", "coordinates": [[67.0, 29.0], [67.1, 29.1]]}, "LineString"),
        (
            {
                "type": "GeometryCollection",
                "geometries": [{"type": "Polygon", "coordinates": [rect(67, 29, 67.1, 29.1)]}],
            },
            "GeometryCollection",
        ),
        ("POINT (67 29)", "Point"),
        ("LINESTRING (67 29, 67.1 29.1)", "LineString"),
    ],
)
def test_not_a_polygon(client: TestClient, conn: Connection, geometry: Any, name: str) -> None:
    err = rejected(
        client,
        conn,
        feature(geometry),
        code="invalid_geometry",
        field="geometry",
        contains=("Polygon or MultiPolygon", f"got {name}"),
    )
    assert err["where"]["type"] == name


@pytest.mark.parametrize(
    ("crs", "piece"),
    [
        ("EPSG:3857", "Web Mercator"),
        ("EPSG:99999", "EPSG:99999"),
        ("not-a-crs", "not-a-crs"),
        ("urn:ogc:def:crs:EPSG::3857", "not accepted"),
    ],
)
def test_unknown_crs(client: TestClient, conn: Connection, crs: str, piece: str) -> None:
    err = rejected(
        client,
        conn,
        feature(polygon(quad(*BA_42))),
        crs=crs,
        code="unknown_crs",
        field="crs",
        contains=(piece, "EPSG:32642"),
    )
    assert "EPSG:32642" in err["where"]["accepted"]


# ---------------------------------------------------------------------- location


def test_outside_crs_area_of_use(client: TestClient, conn: Connection) -> None:
    """Eastings of a survey at 63.5 E (zone 41) declared as UTM 42N: outside 66-72 E."""
    lonlat = quad(63.5, 28.0)
    in_42 = project(lonlat, WGS84, "EPSG:32642")
    err = rejected(
        client,
        conn,
        feature(polygon(in_42)),
        crs="EPSG:32642",
        code="outside_area",
        field="geometry",
        contains=("area of use", "zone 41N", "EPSG:32641"),
    )
    assert err["where"]["check"] == "area_of_use"
    assert err["where"]["lon"] == pytest.approx(lonlat[0][0], abs=1e-6)


def test_outside_pakistan_in_afghanistan(client: TestClient, conn: Connection) -> None:
    """Inside Pakistan's bounding box but across the border (Kandahar province)."""
    rejected(
        client,
        conn,
        feature(polygon(rect(66.0, 31.5, 66.05, 31.55))),
        code="outside_area",
        field="geometry",
        contains=("outside Pakistan",),
    )


def test_outside_pakistan_in_the_sea(client: TestClient, conn: Connection) -> None:
    err = rejected(
        client,
        conn,
        feature(polygon(rect(65.0, 24.0, 65.05, 24.05))),
        code="outside_area",
        contains=("outside Pakistan",),
    )
    assert "100.0 %" in err["detail"]


def test_outside_pakistan_bbox(client: TestClient, conn: Connection) -> None:
    err = rejected(
        client,
        conn,
        feature(polygon(rect(58.0, 28.0, 58.05, 28.05))),
        code="outside_area",
        contains=("outside Pakistan",),
    )
    assert err["where"]["check"] == "pakistan"


@pytest.mark.parametrize("crs", [None, "EPSG:4326"])
def test_swapped_lat_lon_hint(client: TestClient, conn: Connection, crs: str | None) -> None:
    swapped = [[y, x] for x, y in quad(*BA_42)]
    err = rejected(
        client,
        conn,
        feature(polygon(swapped)),
        crs=crs,
        code="outside_area",
        contains=("swapped",),
    )
    assert any("swapped" in h for h in err["where"]["hints"])


@pytest.mark.parametrize(
    ("centre", "provinces"),
    [
        ((71.96, 33.58), {"PK-PB": "Punjab", "PK-KP": "Khyber Pakhtunkhwa"}),
        ((68.21, 28.13), {"PK-BA": "Balochistan", "PK-SD": "Sindh"}),
    ],
)
def test_crossing_provincial_boundary(
    client: TestClient,
    conn: Connection,
    centre: tuple[float, float],
    provinces: dict[str, str],
) -> None:
    # Rectangles chosen with shapely from sample_data/pakistan_admin1_provinces.geojson:
    # each lies about half in each of two provinces and wholly inside Pakistan.
    x, y = centre
    err = rejected(
        client,
        conn,
        feature(polygon(rect(x - 0.05, y - 0.05, x + 0.05, y + 0.05))),
        code="province_mismatch",
        field="geometry",
        contains=("provincial boundary", *provinces.values()),
    )
    assert set(err["where"]["provinces"]) == set(provinces)
    assert all(v > 10 for v in err["where"]["provinces"].values())


def test_declared_province_mismatch(client: TestClient, conn: Connection) -> None:
    err = rejected(
        client,
        conn,
        feature(polygon(quad(*BA_42)), province="Punjab"),
        code="province_mismatch",
        field="properties.province",
        contains=("Balochistan", "Punjab"),
    )
    assert err["where"] == {"declared": "PK-PB", "located": "PK-BA"}


def test_unknown_province(client: TestClient, conn: Connection) -> None:
    rejected(
        client,
        conn,
        feature(polygon(quad(*BA_42)), province="Atlantis"),
        code="invalid_input",
        field="properties.province",
        contains=("Atlantis",),
    )


# ------------------------------------------------------------------------- rules

PUNJAB_320_KM2 = rect(72.0, 30.3, 72.2, 30.45)  # about 320 km², wholly in Punjab


def test_punjab_mining_lease_over_250_km2(client: TestClient, conn: Connection) -> None:
    expected = ring_km2(PUNJAB_320_KM2)
    assert expected > 250
    err = rejected(
        client,
        conn,
        feature(polygon(PUNJAB_320_KM2), licence_type="mining_lease"),
        code="area_limit_exceeded",
        field="geometry",
        contains=("250", "Punjab", "mining_lease", "source"),
    )
    assert err["where"]["max_area_km2"] == 250
    assert err["where"]["area_km2"] == pytest.approx(expected, rel=1e-4)


def test_same_shape_as_exploration_licence_accepted(client: TestClient) -> None:
    """No area limit is configured for exploration licences in Punjab: not enforced."""
    feat = created(client, feature(polygon(PUNJAB_320_KM2), licence_type="exploration_licence"))
    assert feat["properties"]["province_code"] == "PK-PB"
    assert feat["properties"]["area_km2"] > 250
    assert_area(feat, ring_km2(PUNJAB_320_KM2))


def test_punjab_mining_lease_under_250_km2_accepted(client: TestClient) -> None:
    shape = rect(72.0, 30.3, 72.15, 30.45)
    assert ring_km2(shape) < 250
    feat = created(client, feature(polygon(shape), licence_type="mining_lease"))
    assert feat["properties"]["licence_type"] == "mining_lease"


def test_large_mining_lease_outside_punjab_accepted(client: TestClient) -> None:
    shape = rect(67.0, 29.0, 67.2, 29.15)
    assert ring_km2(shape) > 250
    feat = created(client, feature(polygon(shape), licence_type="mining_lease"))
    assert feat["properties"]["province_code"] == "PK-BA"


def test_unknown_licence_type(client: TestClient, conn: Connection) -> None:
    rejected(
        client,
        conn,
        feature(polygon(quad(*BA_42)), licence_type="gold_rush_permit"),
        code="invalid_input",
        field="properties.licence_type",
        contains=("gold_rush_permit", "exploration_licence"),
    )


def test_empty_minerals(client: TestClient, conn: Connection) -> None:
    err = rejected(
        client,
        conn,
        feature(polygon(quad(*BA_42)), minerals=[]),
        code="invalid_input",
        field="properties.minerals",
    )
    assert err["errors"][0]["field"] == "properties.minerals"


def test_missing_holder(client: TestClient, conn: Connection) -> None:
    body = feature(polygon(quad(*BA_42)))
    del body["properties"]["holder"]
    rejected(client, conn, body, code="invalid_input", field="properties.holder")


def test_unknown_property_key(client: TestClient, conn: Connection) -> None:
    rejected(
        client,
        conn,
        feature(polygon(quad(*BA_42)), colour="blue"),
        code="invalid_input",
        field="properties.colour",
    )


def test_licence_no_cannot_be_chosen_by_an_applicant(client: TestClient, conn: Connection) -> None:
    # The register numbers applications itself: a chosen number could squat the
    # next generated one and block a province's numbering.
    rejected(
        client,
        conn,
        feature(polygon(quad(*BA_42)), licence_no="BA-EL-2026-000001"),
        status=422,
        code="invalid_input",
        field="properties.licence_no",
        contains=("licence_no",),
    )


# ------------------------------------------------------------------------ repair


def test_repair_bowtie(client: TestClient) -> None:
    feat = created(client, feature(polygon(BOWTIE)), repair="true")
    report = feat["properties"]["repaired"]
    assert "self-intersection" in report["reason"]
    assert report["parts_before"] == 1 and report["parts_after"] == 2
    # The symmetric bow-tie encloses no net area as submitted.
    assert report["area_change_pct"] is None
    got = shape_of(feat)
    assert got.is_valid and len(got.geoms) == 2
    assert all(p.exterior.is_ccw for p in got.geoms)
    assert_area(feat)
    assert report["area_km2"] == pytest.approx(feat["properties"]["area_km2"], rel=1e-4)
    assert json.loads(feat["properties"]["submitted"]["geometry"]) == polygon(BOWTIE)


def test_repair_does_not_fix_unclosed_ring(client: TestClient, conn: Connection) -> None:
    rejected(
        client,
        conn,
        feature(polygon(quad(*BA_42)[:-1])),
        params={"repair": "true"},
        code="invalid_geometry",
        contains=("not closed",),
    )


# ----------------------------------------------------------------------- receipt


def _counter(conn: Connection, code: str) -> int:
    value = conn.execute(
        text("SELECT last_seq FROM receipt_counters WHERE province_code = :c"), {"c": code}
    ).scalar_one_or_none()
    return int(value or 0)


def test_receipt_sequence_per_province(client: TestClient, conn: Connection) -> None:
    ba0, pb0 = _counter(conn, "PK-BA"), _counter(conn, "PK-PB")
    a = created(client, feature(polygon(quad(67.0, 29.0))))["properties"]
    b = created(client, feature(polygon(quad(67.2, 29.0))))["properties"]
    p = created(client, feature(polygon(quad(*PB_42))))["properties"]
    c = created(client, feature(polygon(quad(67.4, 29.0))))["properties"]
    assert [a["receipt_seq"], b["receipt_seq"], c["receipt_seq"]] == [ba0 + 1, ba0 + 2, ba0 + 3]
    assert p["receipt_seq"] == pb0 + 1
    times = [datetime.fromisoformat(x["received_at"]) for x in (a, b, p, c)]
    assert all(t.tzinfo is not None for t in times)
    assert times == sorted(times) and len(set(times)) == 4
    now = datetime.now(UTC)
    assert all(now - timedelta(minutes=5) < t <= now + timedelta(seconds=5) for t in times)
    # Microsecond precision: not all four can fall on whole milliseconds by chance.
    assert any(t.microsecond % 1000 for t in times)


def test_generated_licence_no_format(client: TestClient) -> None:
    props = created(client, feature(polygon(quad(*BA_42))))["properties"]
    year = datetime.now(ZoneInfo("Asia/Karachi")).year
    assert re.fullmatch(r"BA-EL-\d{4}-\d{6}", props["licence_no"]), props["licence_no"]
    assert props["licence_no"] == f"BA-EL-{year}-{props['receipt_seq']:06d}"
    ml = created(client, feature(polygon(quad(*PB_42)), licence_type="mining_lease"))
    assert re.fullmatch(rf"PB-ML-{year}-\d{{6}}", ml["properties"]["licence_no"])


def test_acknowledgement_fields(client: TestClient) -> None:
    body = feature(
        polygon(quad(*BA_42)),
        holder={"name": "Ack Minerals", "kind": "company", "country": "Pakistan"},
        applied_on="2026-01-15",
        remarks="walk-in application",
    )
    props = created(client, body)["properties"]
    assert props["status"] == "applied" and props["version"] == 1
    assert props["holder"] == "Ack Minerals" and isinstance(props["holder_id"], int)
    assert props["applied_on"] == "2026-01-15"
    assert props["granted_on"] is None and props["expires_on"] is None
    assert props["remarks"] == "walk-in application"
    assert props["holder_details"]["country"] == "Pakistan"


# ------------------------------------------------------------ further refusals


def test_hole_outside_shell(client: TestClient, conn: Connection) -> None:
    rejected(
        client,
        conn,
        feature(polygon(rect(67.0, 29.0, 67.05, 29.05), rect(67.2, 29.2, 67.25, 29.25)[::-1])),
        code="invalid_geometry",
        contains=("hole lies outside shell",),
    )


def test_multipolygon_nested_shells(client: TestClient, conn: Connection) -> None:
    geometry = {
        "type": "MultiPolygon",
        "coordinates": [[rect(67.0, 29.0, 67.1, 29.1)], [rect(67.02, 29.02, 67.05, 29.05)]],
    }
    rejected(client, conn, feature(geometry), code="invalid_geometry", contains=("nested shells",))


def test_multipolygon_parts_in_two_provinces(client: TestClient, conn: Connection) -> None:
    geometry = {"type": "MultiPolygon", "coordinates": [[quad(*PB_42)], [quad(*KP_43)]]}
    err = rejected(client, conn, feature(geometry), code="province_mismatch")
    assert set(err["where"]["provinces"]) == {"PK-PB", "PK-KP"}


def test_huge_coordinate(client: TestClient, conn: Connection) -> None:
    coords = quad(*BA_42)
    coords[1] = [1e12, coords[1][1]]
    rejected(client, conn, feature(polygon(coords)), code="invalid_geometry", contains=("larger",))


def test_degrees_declared_as_utm_hint(client: TestClient, conn: Connection) -> None:
    err = rejected(
        client,
        conn,
        feature(polygon(quad(*PB_42))),
        crs="EPSG:32642",
        code="outside_area",
        contains=("EPSG:4326",),
    )
    assert any("degrees" in h for h in err["where"]["hints"])


def test_metres_declared_as_lonlat_hint(client: TestClient, conn: Connection) -> None:
    square = rect(400_000.0, 3_320_000.0, 410_000.0, 3_330_000.0)
    rejected(
        client,
        conn,
        feature(polygon(square)),
        code="outside_area",
        contains=("metres", "EPSG:32642"),
    )


def test_embedded_crs_member_contradicting_declared(client: TestClient, conn: Connection) -> None:
    geometry = polygon(quad(*BA_42))
    geometry["crs"] = {"type": "name", "properties": {"name": "EPSG:32642"}}
    rejected(
        client,
        conn,
        feature(geometry),
        code="unknown_crs",
        field="crs",
        contains=("EPSG:32642", "OGC:CRS84"),
    )


def test_ewkt_srid_prefix_refused(client: TestClient, conn: Connection) -> None:
    wkt = "SRID=4326;POLYGON ((" + ", ".join(f"{x} {y}" for x, y in quad(*BA_42)) + "))"
    rejected(client, conn, feature(wkt), code="invalid_geometry", contains=("SRID",))


def test_wkt_syntax_error_names_offset(client: TestClient, conn: Connection) -> None:
    text_ = "POLYGON ((67 29, 67.1 29, 67.1 29.1, 67 29)"
    err = rejected(
        client,
        conn,
        feature(text_),
        code="invalid_geometry",
        contains=("WKT syntax error", "end of the text"),
    )
    assert err["where"]["offset"] == len(text_)


def test_wkt_missing_comma_names_position(client: TestClient, conn: Connection) -> None:
    rejected(
        client,
        conn,
        feature("POLYGON ((67 29, 67.1 29, 67.1 29.1 67 29))"),
        code="invalid_geometry",
        contains=("coordinate 2 of ring 0 of polygon 0", "4 value(s)"),
    )


def test_wkt_ring_not_closed(client: TestClient, conn: Connection) -> None:
    rejected(
        client,
        conn,
        feature("POLYGON ((67 29, 67.1 29, 67.1 29.1, 67 29.1))"),
        code="invalid_geometry",
        contains=("ring 0 of polygon 0", "not closed"),
    )
