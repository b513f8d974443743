"""Vector tiles (MVT and GeoJSON), TileJSON and the OGC API - Tiles route.

A fixed set of licences (sizes from ~0.5 km² to ~400 km², chosen statuses) is
entered with ``register_licences`` and one reserved area with
``load_reserved_areas`` on the test's rolled-back connection, all inside one
zoom-8 tile of Balochistan. MVT tiles are decoded with the real decoder
(``mapbox_vector_tile``) and tile coordinates are mapped back to lon/lat with
morecantile's WebMercatorQuad.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import mapbox_vector_tile
import morecantile
import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Geod, Transformer
from shapely.geometry import box as shapely_box
from shapely.geometry import shape
from sqlalchemy import Connection, text

from cadastre.db.licences import Candidate, Holder, Shape, register_licences
from cadastre.db.reserved import load_reserved_areas
from cadastre.db.tiles import BUFFER, DENSITY_LAYER, EXTENT
from cadastre.domain.geometry import intake
from cadastre.rules import RuleBook

TMS = morecantile.tms.get("WebMercatorQuad")
MVT = "application/vnd.mapbox-vector-tile"
GEOJSON = "application/geo+json"
DENSITY = DENSITY_LAYER

ALL_ATTRS = {
    "licence_no",
    "licence_type",
    "minerals",
    "holder",
    "province_code",
    "status",
    "area_km2",
    "granted_on",
    "expires_on",
}
LOW_ATTRS = {"status", "licence_type"}

# The zoom-8 tile every fixture lies in: lon 63.28..64.69, lat 28.30..29.54.
Z8 = TMS.tile(64.0, 28.9, 8)
# The zoom-5 tile that holds them all.
Z5 = TMS.tile(64.0, 28.9, 5)
# The zoom-14 tile that holds the small licence.
Z14 = TMS.tile(64.3, 28.9, 14)
_z14 = TMS.bounds(Z14)
_cx, _cy = (_z14.left + _z14.right) / 2, (_z14.bottom + _z14.top) / 2


def rect(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


# The small licence (~0.5 km²) has a 5.5 m bulge in its south edge: kept at full
# resolution (zoom >= 12), well over a grid unit at zoom 14 (~0.6 m).
SMALL_RING = [
    [_cx - 0.0035, _cy - 0.00325],
    [_cx, _cy - 0.00330],
    [_cx + 0.0035, _cy - 0.00325],
    [_cx + 0.0035, _cy + 0.00325],
    [_cx - 0.0035, _cy + 0.00325],
    [_cx - 0.0035, _cy - 0.00325],
]


@dataclass(frozen=True)
class Spec:
    key: str
    licence_no: str
    licence_type: str
    minerals: tuple[str, ...]
    holder: str
    status: str
    granted_on: date | None
    expires_on: date | None
    ring: list[list[float]]


SPECS = [
    # ~390 km2
    Spec("BIG", "TILE-BA-001", "exploration_licence", ("Copper", "Gold"), "Chagai Tiles Ltd",
         "granted", date(2022, 1, 1), date(2025, 12, 31), rect(63.50, 28.60, 63.70, 28.78)),
    # ~156 km2
    Spec("L150", "TILE-BA-002", "mining_lease", ("Chromite",), "Kharan Chrome Ltd",
         "granted", date(2019, 5, 1), date(2049, 4, 30), rect(63.80, 28.60, 63.92, 28.72)),
    # ~60 km2
    Spec("L60", "TILE-BA-003", "mining_lease", ("Iron ore",), "Kharan Chrome Ltd",
         "granted", date(2018, 2, 1), date(2048, 1, 31), rect(64.00, 28.60, 64.08, 28.67)),
    # ~27 km2
    Spec("MID", "TILE-BA-004", "exploration_licence", ("Copper",), "Chagai Tiles Ltd",
         "expired", date(2010, 1, 1), date(2013, 1, 1), rect(64.20, 28.60, 64.25, 28.65)),
    # ~27 km2, granted through the API by the cache test
    Spec("APPLIED", "TILE-BA-005", "exploration_licence", ("Gold",), "Applicant Minerals",
         "applied", None, None, rect(64.40, 28.60, 64.45, 28.65)),
    # ~0.5 km2
    Spec("SMALL", "TILE-BA-006", "prospecting_licence", ("Marble",), "Small Quarry Co",
         "granted", date(2024, 3, 1), date(2027, 2, 28), SMALL_RING),
]  # fmt: skip
BY_KEY = {s.key: s for s in SPECS}

RESERVED = [
    {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [rect(64.50, 28.90, 64.60, 29.00)]},
        "properties": {
            "name": "Tile test sanctuary",
            "kind": "protected",
            "province": "Balochistan",
            "source": "test",
            "designated_on": "2001-01-01",
        },
    }
]


@pytest.fixture
def lic(conn: Connection, rules: RuleBook) -> dict[str, int]:
    """Register SPECS on the rolled-back connection; licence id by key."""
    cands = [
        Candidate(
            licence_type=s.licence_type,
            minerals=list(s.minerals),
            holder=Holder(name=s.holder),
            shape=Shape.from_intake(intake({"type": "Polygon", "coordinates": [s.ring]}, None)),
            province="PK-BA",
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


@pytest.fixture
def areas(conn: Connection, lic: dict[str, int]) -> dict[str, float]:
    """Geodesic area (km², as stored) of each licence, by key."""
    by_id = {v: k for k, v in lic.items()}
    rows = conn.execute(
        text(
            "SELECT licence_id, area_km2 FROM licence_versions "
            "WHERE valid_to IS NULL AND licence_id = ANY(:ids)"
        ),
        {"ids": list(lic.values())},
    ).all()
    return {by_id[int(i)]: float(a) for i, a in rows}


@pytest.fixture
def reserved(conn: Connection) -> dict[str, int]:
    load_reserved_areas(conn, RESERVED)
    rows = conn.execute(
        text("SELECT name, id FROM reserved_areas WHERE name LIKE 'Tile test %'")
    ).all()
    return {name: int(i) for name, i in rows}


# ------------------------------------------------------------------ helpers


def mvt_url(collection: str, t: morecantile.Tile) -> str:
    return f"/tiles/{collection}/{t.z}/{t.x}/{t.y}.mvt"


def geojson_url(collection: str, t: morecantile.Tile) -> str:
    return f"/tiles/{collection}/{t.z}/{t.x}/{t.y}.geojson"


def media_type(r: Any) -> str:
    return str(r.headers.get("content-type", "")).split(";")[0].strip()


def get_mvt(client: TestClient, collection: str, t: morecantile.Tile) -> dict[str, Any]:
    r = client.get(mvt_url(collection, t))
    assert r.status_code == 200, r.text
    assert media_type(r) == MVT
    return mapbox_vector_tile.decode(r.content, default_options={"y_coord_down": True})


def get_geojson(client: TestClient, collection: str, t: morecantile.Tile) -> dict[str, Any]:
    r = client.get(geojson_url(collection, t))
    assert r.status_code == 200, r.text
    assert media_type(r) == GEOJSON
    body: dict[str, Any] = json.loads(r.content)
    assert body["type"] == "FeatureCollection"
    return body


def mvt_ids(decoded: dict[str, Any], layer: str = "licences") -> set[int]:
    return {f["id"] for f in decoded[layer]["features"]}


def polygons(geometry: dict[str, Any]) -> list[list[list[list[float]]]]:
    if geometry["type"] == "Polygon":
        return [geometry["coordinates"]]
    assert geometry["type"] == "MultiPolygon", geometry["type"]
    return list(geometry["coordinates"])


def all_points(geometry: dict[str, Any]) -> list[tuple[float, float]]:
    return [(p[0], p[1]) for poly in polygons(geometry) for ring in poly for p in ring]


def tile_to_lonlat(t: morecantile.Tile, px: float, py: float) -> tuple[float, float]:
    """Tile coordinates (extent 4096, y down from the top) -> lon/lat."""
    xb = TMS.xy_bounds(t)
    mx = xb.left + px / EXTENT * (xb.right - xb.left)
    my = xb.top - py / EXTENT * (xb.top - xb.bottom)
    ll = TMS.lnglat(mx, my)
    return ll.x, ll.y


def unit_deg(t: morecantile.Tile) -> tuple[float, float]:
    """One tile grid unit (1/4096 of the tile) in degrees of lon and lat, near the tile."""
    b = TMS.bounds(t)
    return (b.right - b.left) / EXTENT, (b.top - b.bottom) / EXTENT


def buffered_bounds(t: morecantile.Tile) -> tuple[float, float, float, float]:
    """The tile plus BUFFER/EXTENT of its size on every side, in lon/lat."""
    xb = TMS.xy_bounds(t)
    m = (xb.right - xb.left) * BUFFER / EXTENT
    lo = TMS.lnglat(xb.left - m, xb.bottom - m)
    hi = TMS.lnglat(xb.right + m, xb.top + m)
    return lo.x, lo.y, hi.x, hi.y


# ------------------------------------------------------------------ the independent model
#
# What each zoom should hold, computed here from the fixture rings with pyproj,
# without the project's SQL: the zoom from which a licence is drawn (its Web
# Mercator bounding box spans 4 pixels of a 256-pixel tile), and the density
# cell (64 x 64 per tile) holding the centre of that box.

WORLD = 2 * math.pi * 6378137.0  # Web Mercator metres across the zoom-0 tile
CELLS = 64
TO_MERCATOR = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
GEOD = Geod(ellps="WGS84")


def mercator_box(ring: list[list[float]]) -> tuple[float, float, float, float]:
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    x0, y0 = TO_MERCATOR.transform(min(lons), min(lats))
    x1, y1 = TO_MERCATOR.transform(max(lons), max(lats))
    return x0, y0, x1, y1


def drawn_from(ring: list[list[float]]) -> int:
    """The first zoom at which the ring's box spans at least 4 of 256 pixels."""
    x0, y0, x1, y1 = mercator_box(ring)
    span = max(x1 - x0, y1 - y0)
    z = 0
    while span < 4 * WORLD / (256 * 2**z):
        z += 1
    return z


def cell_of(ring: list[list[float]], z: int) -> tuple[int, int]:
    """The density cell (global column, row) at zoom z holding the ring's box centre."""
    x0, y0, x1, y1 = mercator_box(ring)
    size = WORLD / (CELLS * 2**z)
    return (
        math.floor(((x0 + x1) / 2 + WORLD / 2) / size),
        math.floor((WORLD / 2 - (y0 + y1) / 2) / size),
    )


def geodesic_km2(ring: list[list[float]]) -> float:
    area, _ = GEOD.geometry_area_perimeter(shapely.Polygon(ring))
    return abs(area) / 1e6


def expected_cells(t: morecantile.Tile, specs: list[Spec]) -> dict[tuple[int, int], dict[str, Any]]:
    """Density cells of tile t (cell column and row within the tile) from ``specs``."""
    cells: dict[tuple[int, int], dict[str, Any]] = {}
    for s in specs:
        if drawn_from(s.ring) <= t.z:
            continue
        cx, cy = cell_of(s.ring, t.z)
        if not (t.x * CELLS <= cx < (t.x + 1) * CELLS and t.y * CELLS <= cy < (t.y + 1) * CELLS):
            continue
        c = cells.setdefault(
            (cx - t.x * CELLS, cy - t.y * CELLS),
            {"n": 0, "applied": 0, "granted": 0, "area_km2": 0.0},
        )
        c["n"] += 1
        c["applied"] += s.status == "applied"
        c["granted"] += s.status == "granted"
        c["area_km2"] += geodesic_km2(s.ring)
    return cells


def decoded_cells(decoded: dict[str, Any]) -> dict[tuple[int, int], dict[str, Any]]:
    """Density cells of a decoded MVT, by column and row in the tile (a cell is 64 units)."""
    out: dict[tuple[int, int], dict[str, Any]] = {}
    for f in decoded.get(DENSITY, {"features": []})["features"]:
        pts = all_points(f["geometry"])
        x0, y0 = min(p[0] for p in pts), min(p[1] for p in pts)
        x1, y1 = max(p[0] for p in pts), max(p[1] for p in pts)
        assert (x1 - x0, y1 - y0) == (EXTENT / CELLS, EXTENT / CELLS), f["geometry"]
        out[(int(x0) // (EXTENT // CELLS), int(y0) // (EXTENT // CELLS))] = f["properties"]
    return out


def assert_cells_equal(
    got: dict[tuple[int, int], dict[str, Any]], want: dict[tuple[int, int], dict[str, Any]]
) -> None:
    assert set(got) == set(want)
    for key, w in want.items():
        g = got[key]
        assert (g["n"], g["applied"], g["granted"]) == (w["n"], w["applied"], w["granted"]), key
        assert g["area_km2"] == pytest.approx(w["area_km2"], abs=0.01), key


def drawn_keys(t: morecantile.Tile, specs: list[Spec] | None = None) -> set[str]:
    """Licences the ``licences`` layer of tile t holds: they meet the buffered tile and,
    at zoom 8 and below, are drawn from that zoom."""
    zone = shapely_box(*buffered_bounds(t))
    return {
        s.key
        for s in (SPECS if specs is None else specs)
        if shapely.Polygon(s.ring).intersects(zone) and (t.z > 8 or drawn_from(s.ring) <= t.z)
    }


def far_tile(z: int) -> morecantile.Tile:
    """A tile far from Pakistan (Kansas)."""
    return TMS.tile(-100.0, 40.0, z)


# ------------------------------------------------------------------ MVT content


def test_fixture_spans_the_low_zoom_bands() -> None:
    got = {s.key: drawn_from(s.ring) for s in SPECS}
    # BIG is drawn from zoom 5, SMALL only from zoom 10: the bands are all exercised.
    assert got["BIG"] == 5
    assert got["L150"] == 6
    assert {got["L60"], got["MID"], got["APPLIED"]} == {7}
    assert got["SMALL"] == 10


def test_stored_minzoom_matches_the_independent_calculation(
    conn: Connection, lic: dict[str, int]
) -> None:
    result = conn.execute(
        text("SELECT id, minzoom FROM licences WHERE id = ANY(:ids)"),
        {"ids": list(lic.values())},
    )
    rows = {int(i): int(z) for i, z in result}
    assert {k: rows[v] for k, v in lic.items()} == {s.key: drawn_from(s.ring) for s in SPECS}


def test_mvt_tile_decodes_with_ids_and_full_attributes_from_zoom9(
    client: TestClient, lic: dict[str, int], areas: dict[str, float]
) -> None:
    t = TMS.tile(64.0, 28.9, 9)
    decoded = get_mvt(client, "licences", t)
    assert set(decoded) == {"licences"}  # no density layer above zoom 8
    layer = decoded["licences"]
    assert layer["extent"] == EXTENT
    want = drawn_keys(t)
    assert {"L60", "SMALL"} <= want
    assert mvt_ids(decoded) == {lic[k] for k in want}
    by_id = {v: k for k, v in lic.items()}
    for f in layer["features"]:
        s = BY_KEY[by_id[f["id"]]]
        props = f["properties"]
        # MVT carries no nulls: an applied licence has no grant dates.
        want_attrs = ALL_ATTRS if s.granted_on else ALL_ATTRS - {"granted_on", "expires_on"}
        assert set(props) == want_attrs, s.key
        assert props["licence_no"] == s.licence_no
        assert props["status"] == s.status
        assert props["licence_type"] == s.licence_type
        assert props["holder"] == s.holder
        assert props["province_code"] == "PK-BA"
        assert props["minerals"] == "; ".join(s.minerals)
        assert props["area_km2"] == pytest.approx(areas[s.key], abs=0.001)
        assert props["area_km2"] == pytest.approx(geodesic_km2(s.ring), abs=0.01)
        if s.granted_on:
            assert props["granted_on"] == s.granted_on.isoformat()
            assert props["expires_on"] == s.expires_on.isoformat()  # type: ignore[union-attr]


@pytest.mark.parametrize("z", range(0, 9))
def test_low_zoom_tile_draws_big_licences_and_counts_the_rest(
    client: TestClient, lic: dict[str, int], z: int
) -> None:
    t = TMS.tile(64.0, 28.9, z)
    decoded = get_mvt(client, "licences", t)
    drawn = drawn_keys(t)
    got = mvt_ids(decoded) if "licences" in decoded else set()
    assert got == {lic[k] for k in drawn}
    for f in decoded.get("licences", {"features": []})["features"]:
        assert set(f["properties"]) == LOW_ATTRS
    cells = decoded_cells(decoded)
    assert_cells_equal(cells, expected_cells(t, SPECS))
    # every licence is in exactly one of the two layers
    assert len(drawn) + sum(c["n"] for c in cells.values()) == len(SPECS), z


def ring_area_y_down(ring: list[list[float]]) -> float:
    """Shoelace area of a ring in tile coordinates (y down)."""
    closed = [*ring, ring[0]]
    return sum(a[0] * b[1] - b[0] * a[1] for a, b in itertools.pairwise(closed)) / 2


@pytest.mark.parametrize("z", [5, 8, 12])
def test_mvt_rings_wind_as_the_spec_says(client: TestClient, lic: dict[str, int], z: int) -> None:
    """MVT 2.1 §4.3.4.4: an exterior ring has positive area with y down, a hole negative;
    for drawn licences and for the density cells alike."""
    decoded = get_mvt(client, "licences", TMS.tile(63.6, 28.69, z))
    seen = 0
    for name, layer in decoded.items():
        for f in layer["features"]:
            for exterior, *holes in polygons(f["geometry"]):
                assert ring_area_y_down(exterior) > 0, (name, f.get("id"))
                for hole in holes:
                    assert ring_area_y_down(hole) < 0, (name, f.get("id"))
                seen += 1
    assert seen >= (2 if z <= 8 else 1)  # below zoom 9 a licence and a density cell


def test_zoom5_draws_only_big_and_counts_five(client: TestClient, lic: dict[str, int]) -> None:
    decoded = get_mvt(client, "licences", Z5)
    assert mvt_ids(decoded) == {lic["BIG"]}
    big = decoded["licences"]["features"][0]
    assert big["properties"] == {"status": "granted", "licence_type": "exploration_licence"}
    cells = decoded_cells(decoded)
    assert sum(c["n"] for c in cells.values()) == 5
    assert sum(c["applied"] for c in cells.values()) == 1
    assert sum(c["granted"] for c in cells.values()) == 3  # L150, L60, SMALL; MID expired


def test_density_table_equals_a_recount_from_the_licences(
    conn: Connection, lic: dict[str, int]
) -> None:
    """The stored cells (kept by triggers) equal cells recounted from scratch in Python,
    after inserts, a status change, a geometry change and a deletion."""

    def stored() -> dict[tuple[int, int, int], tuple[int, int, int, float]]:
        rows = conn.execute(
            text("SELECT level, cx, cy, n, applied, granted, area_km2 FROM licence_cells")
        ).all()
        return {(r[0], r[1], r[2]): (r[3], r[4], r[5], round(r[6], 2)) for r in rows}

    def recount(specs: list[Spec]) -> dict[tuple[int, int, int], tuple[int, int, int, float]]:
        out: dict[tuple[int, int, int], list[Any]] = {}
        for s in specs:
            for z in range(0, min(drawn_from(s.ring), 9)):
                c = out.setdefault((z, *cell_of(s.ring, z)), [0, 0, 0, 0.0])
                c[0] += 1
                c[1] += s.status == "applied"
                c[2] += s.status == "granted"
                c[3] += geodesic_km2(s.ring)
        return {k: (v[0], v[1], v[2], round(v[3], 2)) for k, v in out.items()}

    def close(a: dict[Any, Any], b: dict[Any, Any]) -> None:
        assert set(a) == set(b)
        for k in a:
            assert a[k][:3] == b[k][:3], k
            assert a[k][3] == pytest.approx(b[k][3], abs=0.02), k

    close(stored(), recount(SPECS))
    # no other licences are in this rolled-back register, and the per-attribute
    # table sums to the same cells
    per_attr = conn.execute(
        text("SELECT level, cx, cy, sum(n)::int FROM licence_density GROUP BY level, cx, cy")
    ).all()
    assert {(r[0], r[1], r[2]): r[3] for r in per_attr} == {k: v[0] for k, v in stored().items()}

    conn.execute(
        text("UPDATE licences SET status = 'granted' WHERE id = :i"), {"i": lic["APPLIED"]}
    )
    moved = rect(66.00, 30.00, 66.04, 30.05)
    conn.execute(
        text("UPDATE licences SET geom = ST_Multi(ST_GeomFromGeoJSON(:g)) WHERE id = :i"),
        {"g": json.dumps({"type": "Polygon", "coordinates": [moved]}), "i": lic["MID"]},
    )
    # a licence inserted and deleted by plain SQL (the register itself never deletes)
    copy = rect(70.00, 31.00, 70.01, 31.01)
    cols = ", ".join(
        name
        for (name,) in conn.execute(
            text(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'licences'"
                " AND is_generated = 'NEVER' AND column_name NOT IN "
                "('id', 'licence_no', 'receipt_seq', 'geom')"
            )
        )
    )
    copy_id = conn.execute(
        text(
            f"INSERT INTO licences ({cols}, licence_no, receipt_seq, geom) "
            f"SELECT {cols}, 'TILE-COPY', receipt_seq + 100000, "
            "ST_Multi(ST_GeomFromGeoJSON(:g)) FROM licences WHERE id = :i RETURNING id"
        ),
        {"g": json.dumps({"type": "Polygon", "coordinates": [copy]}), "i": lic["SMALL"]},
    ).scalar_one()
    after = [
        replace(s, status="granted")
        if s.key == "APPLIED"
        else replace(s, ring=moved)
        if s.key == "MID"
        else s
        for s in SPECS
    ]
    close(stored(), recount([*after, replace(BY_KEY["SMALL"], ring=copy)]))
    conn.execute(text("DELETE FROM licences WHERE id = :i"), {"i": copy_id})
    close(stored(), recount(after))


def test_mvt_geometry_maps_back_to_the_licence(client: TestClient, lic: dict[str, int]) -> None:
    by_id = {v: k for k, v in lic.items()}
    for t in (Z8, TMS.tile(64.2, 28.6, 9)):  # the zoom-8 and the zoom-11 generalisation
        decoded = get_mvt(client, "licences", t)
        ux, uy = unit_deg(t)
        inside = shapely_box(*TMS.bounds(t))
        seen = 0
        for f in decoded["licences"]["features"]:
            s = BY_KEY[by_id[f["id"]]]
            if s.key == "SMALL" or not inside.contains(shapely.Polygon(s.ring)):
                continue  # SMALL's bulge is simplified away below zoom 12 (checked at 14)
            seen += 1
            pts = [tile_to_lonlat(t, px, py) for px, py in all_points(f["geometry"])]
            xs, ys = [p[0] for p in s.ring], [p[1] for p in s.ring]
            # every decoded vertex is a corner of the licence, within one grid unit
            for lon, lat in pts:
                assert min(abs(lon - x) for x in xs) <= ux, (s.key, lon)
                assert min(abs(lat - y) for y in ys) <= uy, (s.key, lat)
            # and every corner of the licence is there
            for x, y in s.ring:
                assert any(abs(lon - x) <= ux and abs(lat - y) <= uy for lon, lat in pts), (
                    s.key,
                    x,
                    y,
                )
        assert seen >= 3, t


def test_mvt_zoom14_small_licence_at_full_detail(client: TestClient, lic: dict[str, int]) -> None:
    decoded = get_mvt(client, "licences", Z14)
    feats = decoded["licences"]["features"]
    assert [f["id"] for f in feats] == [lic["SMALL"]]
    f = feats[0]
    assert f["properties"]["licence_no"] == "TILE-BA-006"
    assert f["properties"]["status"] == "granted"
    (poly,) = polygons(f["geometry"])
    (ring,) = poly  # no holes
    pts = [tile_to_lonlat(Z14, px, py) for px, py in ring]
    ux, uy = unit_deg(Z14)
    distinct = {(round(x, 9), round(y, 9)) for x, y in pts}
    assert len(distinct) == len(SMALL_RING) - 1  # all five vertices, the bulge too
    for x, y in SMALL_RING:
        assert any(abs(lon - x) <= ux and abs(lat - y) <= uy for lon, lat in pts), (x, y)


def test_mvt_tile_is_a_fresh_query_after_a_transition(
    client: TestClient, lic: dict[str, int]
) -> None:
    def applied_feature() -> dict[str, Any]:
        decoded = get_mvt(client, "licences", Z8)
        return next(f for f in decoded["licences"]["features"] if f["id"] == lic["APPLIED"])

    def z5_counts() -> tuple[int, int]:
        cells = decoded_cells(get_mvt(client, "licences", Z5))
        return sum(c["applied"] for c in cells.values()), sum(c["granted"] for c in cells.values())

    assert applied_feature()["properties"]["status"] == "applied"
    assert z5_counts() == (1, 3)
    before_geojson = get_geojson(client, "licences", TMS.tile(64.4, 28.6, 10))
    assert {f["id"]: f["properties"]["status"] for f in before_geojson["features"]}[
        lic["APPLIED"]
    ] == "applied"

    r = client.post(
        f"/licences/{lic['APPLIED']}/transitions",
        json={"action": "grant", "granted_on": "2024-01-10", "expires_on": "2027-01-09"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["status"] == "granted"

    assert applied_feature()["properties"]["status"] == "granted"
    assert z5_counts() == (0, 4)  # the density cell moved it from applied to granted
    after_geojson = get_geojson(client, "licences", TMS.tile(64.4, 28.6, 10))
    props = {f["id"]: f["properties"] for f in after_geojson["features"]}[lic["APPLIED"]]
    assert props["status"] == "granted"
    assert props["granted_on"] == "2024-01-10"
    assert props["expires_on"] == "2027-01-09"


# ------------------------------------------------------------------ empty tiles


@pytest.mark.parametrize("z", range(1, 23))
def test_empty_tile_is_204_without_body_at_every_zoom(
    client: TestClient, lic: dict[str, int], z: int
) -> None:
    t = far_tile(z)
    for url in (mvt_url("licences", t), geojson_url("licences", t)):
        r = client.get(url)
        assert r.status_code == 204, (url, r.text)
        assert r.content == b""
    r = client.get(f"/collections/licences/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}")
    assert r.status_code == 204
    assert r.content == b""


def test_world_tile_counts_every_licence_in_one_cell(
    client: TestClient, lic: dict[str, int]
) -> None:
    decoded = get_mvt(client, "licences", morecantile.Tile(0, 0, 0))
    assert "licences" not in decoded  # nothing spans 4 pixels of the world
    cells = decoded_cells(decoded)
    assert sum(c["n"] for c in cells.values()) == len(SPECS)
    assert_cells_equal(cells, expected_cells(morecantile.Tile(0, 0, 0), SPECS))


def test_empty_register_tile_is_204(client: TestClient) -> None:
    for url in (mvt_url("licences", Z8), geojson_url("licences", Z8)):
        r = client.get(url)
        assert r.status_code == 204, url
        assert r.content == b""


# ------------------------------------------------------------------ bad addresses


@pytest.mark.parametrize(
    ("z", "x", "y", "named"),
    [
        (5, 32, 0, "5/32/0"),
        (5, 0, 32, "5/0/32"),
        (0, 1, 0, "0/1/0"),
        (5, -1, 3, "5/-1/3"),
        (5, 3, -1, "5/3/-1"),
        (23, 0, 0, "23"),
        (30, 0, 0, "30"),
        (-1, 0, 0, "-1"),
    ],
)
@pytest.mark.parametrize("ext", ["mvt", "geojson"])
def test_tile_outside_the_matrix_is_400_naming_it(
    client: TestClient, z: int, x: int, y: int, named: str, ext: str
) -> None:
    r = client.get(f"/tiles/licences/{z}/{x}/{y}.{ext}")
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "bad_query"
    assert named in body["detail"]
    assert body.get("field")
    if z > 22 or z < 0:
        assert body["field"] == "z"


@pytest.mark.parametrize(
    "path",
    [
        "/tiles/licences/a/0/0.mvt",
        "/tiles/licences/5/1.5/3.mvt",
        "/tiles/licences/5/1/three.mvt",
        "/tiles/licences/5/1/3.5.geojson",
        "/collections/licences/tiles/WebMercatorQuad/5/x/3",
        "/collections/licences/tiles/WebMercatorQuad/five/1/3",
    ],
)
def test_non_integer_tile_address_is_422(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_input"


@pytest.mark.parametrize(
    "path",
    [
        "/tiles/mines/5/21/13.mvt",
        "/tiles/mines/5/21/13.geojson",
        "/tiles/mines/tilejson.json",
        "/collections/mines/tiles",
        "/collections/mines/tiles/WebMercatorQuad",
        "/collections/mines/tiles/WebMercatorQuad/5/13/21",
    ],
)
def test_unknown_collection_is_404(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404, r.text
    body = r.json()
    assert body["code"] == "not_found"
    assert "mines" in body["detail"]


# ------------------------------------------------------------------ GeoJSON tiles


@pytest.mark.parametrize("z", [5, 8, 10, 12, 14])
def test_geojson_tile_clipped_to_tile_plus_buffer(
    client: TestClient, lic: dict[str, int], z: int
) -> None:
    t = TMS.tile(63.6, 28.69, z)  # over BIG's middle
    body = get_geojson(client, "licences", t)
    licences = [f for f in body["features"] if f["properties"].get("layer") != DENSITY]
    want = drawn_keys(t)
    assert "BIG" in want
    assert {f["id"] for f in licences} == {lic[k] for k in want}
    x0, y0, x1, y1 = buffered_bounds(t)
    eps = 2e-7  # 7 decimals
    for f in licences:
        for lon, lat in all_points(f["geometry"]):
            # RFC 7946: lon/lat, and nothing beyond the buffered tile
            assert x0 - eps <= lon <= x1 + eps, (z, f["id"], lon)
            assert y0 - eps <= lat <= y1 + eps, (z, f["id"], lat)
    if z >= 12:  # the tile lies inside BIG: its piece is the buffered tile itself
        big = next(f for f in licences if f["id"] == lic["BIG"])
        assert shape(big["geometry"]).bounds == pytest.approx((x0, y0, x1, y1), abs=1e-6)


def test_geojson_density_cells_equal_the_mvt_cells(client: TestClient, lic: dict[str, int]) -> None:
    for t in (Z5, Z8):
        body = get_geojson(client, "licences", t)
        cells = [f for f in body["features"] if f["properties"].get("layer") == DENSITY]
        want = expected_cells(t, SPECS)
        assert len(cells) == len(want)
        tb = TMS.bounds(t)
        for f in cells:
            _, z, cx, cy = f["id"].split("/")
            key = (int(cx) - t.x * CELLS, int(cy) - t.y * CELLS)
            assert int(z) == t.z
            w = want[key]
            p = f["properties"]
            assert (p["n"], p["applied"], p["granted"]) == (w["n"], w["applied"], w["granted"])
            assert p["area_km2"] == pytest.approx(w["area_km2"], abs=0.01)
            # the cell's square, in lon/lat, at its place in the tile
            x0, y0, x1, y1 = shape(f["geometry"]).bounds
            dx = (tb.right - tb.left) / CELLS
            assert x0 == pytest.approx(tb.left + key[0] * dx, abs=1e-6)
            assert x1 == pytest.approx(tb.left + (key[0] + 1) * dx, abs=1e-6)
            assert tb.bottom - 1e-6 <= y0 < y1 <= tb.top + 1e-6


def test_geojson_tile_attributes_per_zoom_band(client: TestClient, lic: dict[str, int]) -> None:
    low = get_geojson(client, "licences", Z5)
    drawn = [f for f in low["features"] if f["properties"].get("layer") != DENSITY]
    assert {f["id"] for f in drawn} == {lic["BIG"]}
    for f in drawn:
        assert f["type"] == "Feature"
        assert set(f["properties"]) == LOW_ATTRS

    t = TMS.tile(64.0, 28.9, 9)
    high = get_geojson(client, "licences", t)
    assert {f["id"] for f in high["features"]} == {lic[k] for k in drawn_keys(t)}
    by_id = {v: k for k, v in lic.items()}
    for f in high["features"]:
        s = BY_KEY[by_id[f["id"]]]
        props = f["properties"]
        assert set(props) == ALL_ATTRS
        assert props["licence_no"] == s.licence_no
        assert props["status"] == s.status
        assert props["licence_type"] == s.licence_type
        assert props["holder"] == s.holder
        assert props["granted_on"] == (s.granted_on.isoformat() if s.granted_on else None)
        # lon/lat order: the piece sits on the licence
        got = shape(f["geometry"])
        assert got.bounds[0] >= 60 and got.bounds[2] <= 78 and 23 <= got.bounds[1] <= 37
        assert got.intersection(shapely.Polygon(s.ring)).area > 0.9 * got.area


def test_geojson_tile_rings_follow_rfc7946_orientation(
    client: TestClient, lic: dict[str, int]
) -> None:
    for t in (Z8, TMS.tile(63.6, 28.69, 10), TMS.tile(63.6, 28.69, 12)):
        body = get_geojson(client, "licences", t)
        for f in body["features"]:
            for poly in polygons(f["geometry"]):
                exterior, *holes = poly
                assert shapely.LinearRing(exterior).is_ccw, (t, f["id"], "exterior not CCW")
                for hole in holes:
                    assert not shapely.LinearRing(hole).is_ccw, (t, f["id"], "hole not CW")


# ------------------------------------------------------------------ filters


def only(*keys: str) -> list[Spec]:
    return [BY_KEY[k] for k in keys]


FILTERED = [
    # (query, the licences it keeps)
    ("status=granted", only("BIG", "L150", "L60", "SMALL")),
    ("status=applied,expired", only("MID", "APPLIED")),
    ("type=mining_lease", only("L150", "L60")),
    ("province=BA", SPECS),
    ("province=Punjab", []),
    ("mineral=copper", only("BIG", "MID")),
    ("mineral=Gold,marble", only("BIG", "APPLIED", "SMALL")),
    ("status=granted&mineral=copper", only("BIG")),
    ("filter=status%3D%27granted%27", only("BIG", "L150", "L60", "SMALL")),
    ("filter=area_km2%20%3C%2070", only("L60", "MID", "APPLIED", "SMALL")),
    ("filter=licence_no%20LIKE%20%27TILE-BA-00%25%27&type=exploration_licence",
     only("BIG", "MID", "APPLIED")),
]  # fmt: skip


@pytest.mark.parametrize(("query", "kept"), FILTERED)
@pytest.mark.parametrize("z", [0, 5, 7, 8, 10])
def test_filtered_tile_holds_what_the_filter_keeps(
    client: TestClient, lic: dict[str, int], query: str, kept: list[Spec], z: int
) -> None:
    t = TMS.tile(64.0, 28.9, z)
    r = client.get(f"{mvt_url('licences', t)}?{query}")
    want_drawn = drawn_keys(t, kept)
    want_cells = expected_cells(t, kept) if z <= 8 else {}
    if not want_drawn and not want_cells:
        assert r.status_code == 204, r.text
        return
    assert r.status_code == 200, r.text
    decoded = mapbox_vector_tile.decode(r.content, default_options={"y_coord_down": True})
    got = mvt_ids(decoded) if "licences" in decoded else set()
    assert got == {lic[k] for k in want_drawn}
    assert_cells_equal(decoded_cells(decoded), want_cells)


def test_tile_and_items_agree_under_the_same_filter(
    client: TestClient, lic: dict[str, int]
) -> None:
    t = TMS.tile(64.0, 28.9, 10)
    b = buffered_bounds(t)
    bbox = ",".join(str(v) for v in b)
    for query, _ in FILTERED:
        items = client.get(f"/collections/licences/items?bbox={bbox}&limit=100&{query}")
        assert items.status_code == 200, (query, items.text)
        ids = {f["id"] for f in items.json()["features"]}
        r = client.get(f"{mvt_url('licences', t)}?{query}")
        tile_ids = set() if r.status_code == 204 else mvt_ids(mapbox_vector_tile.decode(r.content))
        assert tile_ids == ids & set(lic.values()), query


def test_stored_and_recounted_density_agree(client: TestClient, lic: dict[str, int]) -> None:
    """``status`` reads the stored per-attribute counts; the same condition in CQL2 counts
    the cells from the licences at request time. Both give the same cells."""
    for t in (Z5, Z8, morecantile.Tile(0, 0, 0)):
        stored = client.get(f"{mvt_url('licences', t)}?status=granted")
        live = client.get(f"{mvt_url('licences', t)}?filter=status%3D%27granted%27")
        assert stored.status_code == live.status_code == 200
        a = mapbox_vector_tile.decode(stored.content, default_options={"y_coord_down": True})
        b = mapbox_vector_tile.decode(live.content, default_options={"y_coord_down": True})
        assert decoded_cells(a) == decoded_cells(b)
        assert decoded_cells(a)  # something to compare


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=pending", "status"),
        ("type=gold_licence", "type"),
        ("province=XX", "province"),
        ("mineral=", "mineral"),
        ("colour=red", "colour"),
        ("filter=status%20%3D%3D", "filter"),
        ("filter=nosuch%3D1", "filter"),
    ],
)
def test_bad_tile_filter_is_400_naming_it(
    client: TestClient, lic: dict[str, int], query: str, field: str
) -> None:
    r = client.get(f"{mvt_url('licences', Z8)}?{query}")
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["field"] == field, body
    assert body["detail"]


def test_licence_filters_on_another_collection_are_400(client: TestClient) -> None:
    r = client.get(f"{mvt_url('jurisdictions', Z5)}?status=granted")
    assert r.status_code == 400
    assert "licences only" in r.json()["detail"]


def test_filtered_tiles_are_cached_apart(client: TestClient, lic: dict[str, int]) -> None:
    plain = client.get(mvt_url("licences", Z8))
    granted = client.get(f"{mvt_url('licences', Z8)}?status=granted")
    again = client.get(mvt_url("licences", Z8))
    assert plain.content == again.content != granted.content
    assert mvt_ids(mapbox_vector_tile.decode(granted.content)) < mvt_ids(
        mapbox_vector_tile.decode(plain.content)
    )


# ------------------------------------------------------------------ other layers


def test_jurisdictions_tile_has_province_codes(client: TestClient, conn: Connection) -> None:
    codes = {c for (c,) in conn.execute(text("SELECT code FROM jurisdictions")).all()}
    assert len(codes) == 7
    t = TMS.tile(70.0, 30.0, 3)  # all of Pakistan
    decoded = get_mvt(client, "jurisdictions", t)
    feats = decoded["jurisdictions"]["features"]
    assert {f["properties"]["code"] for f in feats} == codes
    for f in feats:
        assert set(f["properties"]) == {"code", "name", "kind"}
        assert f["properties"]["name"]
    # at zoom 8 the same attributes; the tile over Balochistan names it
    decoded = get_mvt(client, "jurisdictions", Z8)
    props = [f["properties"] for f in decoded["jurisdictions"]["features"]]
    assert "PK-BA" in {p["code"] for p in props}
    assert all(set(p) == {"code", "name", "kind"} for p in props)

    gj = get_geojson(client, "jurisdictions", t)
    assert {f["properties"]["code"] for f in gj["features"]} == codes


def test_reserved_areas_tile_carries_name_and_kind(
    client: TestClient, reserved: dict[str, int]
) -> None:
    rid = reserved["Tile test sanctuary"]
    z9 = TMS.tile(64.55, 28.95, 9)
    for t, attrs in ((z9, {"name", "kind", "province_code"}), (Z8, {"name", "kind"})):
        decoded = get_mvt(client, "reserved_areas", t)
        feats = decoded["reserved_areas"]["features"]
        assert [f["id"] for f in feats] == [rid]
        assert set(feats[0]["properties"]) == attrs
        assert feats[0]["properties"]["name"] == "Tile test sanctuary"
        assert feats[0]["properties"]["kind"] == "protected"
    gj = get_geojson(client, "reserved_areas", z9)
    assert [f["id"] for f in gj["features"]] == [rid]
    assert gj["features"][0]["properties"] == {
        "name": "Tile test sanctuary",
        "kind": "protected",
        "province_code": "PK-BA",
    }


# ------------------------------------------------------------------ TileJSON and OGC routes


def test_tilejson_template_answers_the_xyz_route(client: TestClient, lic: dict[str, int]) -> None:
    r = client.get("/tiles/licences/tilejson.json")
    assert r.status_code == 200, r.text
    tj = r.json()
    assert tj["tilejson"] == "3.0.0"
    assert tj.get("scheme", "xyz") == "xyz"
    (template,) = tj["tiles"]
    assert "{z}" in template and "{x}" in template and "{y}" in template
    for t in (Z8, Z5, Z14):
        url = template.replace("{z}", str(t.z)).replace("{x}", str(t.x)).replace("{y}", str(t.y))
        via_template = client.get(url)
        direct = client.get(mvt_url("licences", t))
        assert via_template.status_code == direct.status_code == 200
        assert via_template.content == direct.content
        assert media_type(via_template) == MVT

    vl, density = tj["vector_layers"]
    assert vl["id"] == "licences"
    assert density["id"] == DENSITY
    assert density["maxzoom"] == 8
    assert set(density["fields"]) == {"n", "applied", "granted", "area_km2"}
    assert {"licence_no", "status", "licence_type", "holder"} <= set(vl["fields"])
    assert set(vl["fields"]) == ALL_ATTRS
    assert all(isinstance(v, str) for v in vl["fields"].values())
    assert 0 <= tj["minzoom"] <= tj["maxzoom"] <= 22

    w, s, e, n = tj["bounds"]
    xs = [p[0] for sp in SPECS for p in sp.ring]
    ys = [p[1] for sp in SPECS for p in sp.ring]
    assert w <= min(xs) and s <= min(ys) and e >= max(xs) and n >= max(ys)
    assert -180 <= w < e <= 180 and -90 <= s < n <= 90


def test_ogc_tile_route_equals_xyz_route(client: TestClient, lic: dict[str, int]) -> None:
    for t in (Z8, Z5, Z14):
        ogc = client.get(f"/collections/licences/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}")
        xyz = client.get(mvt_url("licences", t))
        assert ogc.status_code == xyz.status_code == 200
        assert media_type(ogc) == MVT
        assert ogc.content == xyz.content


def test_collection_tilesets_list_webmercatorquad(client: TestClient, lic: dict[str, int]) -> None:
    for cid in ("licences", "jurisdictions", "reserved_areas"):
        r = client.get(f"/collections/{cid}/tiles")
        assert r.status_code == 200, r.text
        sets = r.json()["tilesets"]
        wmq = [s for s in sets if s["tileMatrixSetURI"].endswith("/WebMercatorQuad")]
        assert len(wmq) == 1
        assert wmq[0]["dataType"] == "vector"
        item = next(link for link in wmq[0]["links"] if link["rel"] == "item")
        assert item["type"] == MVT
        if cid == "licences":
            url = (
                item["href"]
                .replace("{tileMatrix}", str(Z8.z))
                .replace("{tileRow}", str(Z8.y))
                .replace("{tileCol}", str(Z8.x))
            )
            via = client.get(url)
            assert via.status_code == 200
            assert via.content == client.get(mvt_url("licences", Z8)).content


def test_tile_matrix_set_matches_morecantiles_webmercatorquad(client: TestClient) -> None:
    listed = client.get("/tileMatrixSets").json()["tileMatrixSets"]
    assert [t["id"] for t in listed] == ["WebMercatorQuad"]
    r = client.get(listed[0]["links"][0]["href"])
    assert r.status_code == 200
    tms = r.json()
    assert tms["uri"] == "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
    assert len(tms["tileMatrices"]) == 23
    for m in tms["tileMatrices"]:
        ref = TMS.matrix(int(m["id"]))
        assert m["cellSize"] == pytest.approx(ref.cellSize, rel=1e-9)
        assert m["scaleDenominator"] == pytest.approx(ref.scaleDenominator, rel=1e-6)
        assert (m["matrixWidth"], m["matrixHeight"]) == (ref.matrixWidth, ref.matrixHeight)
        assert m["pointOfOrigin"] == pytest.approx(list(ref.pointOfOrigin), rel=1e-9)
    assert client.get("/tileMatrixSets/WorldCRS84Quad").status_code == 404


def test_tiles_are_discoverable_from_the_landing_page(client: TestClient) -> None:
    """Landing page -> tiling schemes; conformance lists Tiles; a collection links its
    tilesets, the tileset its tiling scheme and its limits."""
    conf = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core" in conf
    assert "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt" in conf
    rels = {link["rel"]: link["href"] for link in client.get("/").json()["links"]}
    assert (
        client.get(rels["http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes"]).status_code == 200
    )
    doc = client.get("/collections/licences").json()
    tilesets = next(
        link["href"]
        for link in doc["links"]
        if link["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
    )
    (ts,) = client.get(tilesets).json()["tilesets"]
    meta = client.get(ts["links"][0]["href"]).json()
    scheme = next(
        link["href"]
        for link in meta["links"]
        if link["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
    )
    assert client.get(scheme).json()["id"] == "WebMercatorQuad"
    limits = {lim["tileMatrix"]: lim for lim in meta["tileMatrixSetLimits"]}
    assert limits["5"]["maxTileRow"] == limits["5"]["maxTileCol"] == 31
