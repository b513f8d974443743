"""The overlap audit: GET /overlaps (GeoJSON and CSV), GET /reserved-areas, and the CLI.

A fixed arrangement of titles (imported, so legacy overlaps exist) and reserved
areas is entered on the test's connection and rolled back afterwards. The CLI
commits nothing but reads committed data, so its test builds the same register
in a database of its own in the test cluster.

Areas are checked against shapely intersections in lon/lat measured with
pyproj's ``Geod.geometry_area_perimeter`` on WGS 84.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyproj
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import box, mapping, shape
from shapely.geometry.polygon import orient
from sqlalchemy import Connection
from typer.testing import CliRunner

from api.app import create_app
from cadastre.cli import app as cli_app
from cadastre.db.cluster import LocalCluster
from cadastre.db.engine import Database, make_engine
from cadastre.db.jurisdictions import load_jurisdictions
from cadastre.db.licences import Candidate, Holder, Shape, register_licences
from cadastre.db.migrate import upgrade
from cadastre.db.overlaps import audit
from cadastre.db.reserved import load_reserved_areas
from cadastre.domain.geometry import intake
from cadastre.rules import RuleBook
from cadastre.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PROVINCES_FILE = ROOT / "sample_data" / "pakistan_admin1_provinces.geojson"
GEOD = pyproj.Geod(ellps="WGS84")
REL = 1e-3  # 0.1 %
FIELDS = ["kind", "a_id", "a_ref", "b_id", "b_ref", "province_code", "overlap_km2"]


def km2(geom: Any) -> float:
    """Geodesic area (WGS 84) of a shapely (Multi)Polygon, summed over parts."""
    parts = geom.geoms if hasattr(geom, "geoms") else [geom]
    total = 0.0
    for p in parts:
        if p.geom_type == "Polygon" and not p.is_empty:
            area, _ = GEOD.geometry_area_perimeter(orient(p, sign=1.0))
            total += abs(area)
    return total / 1e6


# ------------------------------------------------------------------ the register

# key: (geometry, licence_type, status)
LICENCES: dict[str, tuple[Any, str, str]] = {
    # Balochistan
    "A": (box(66.30, 29.30, 66.40, 29.40), "exploration_licence", "granted"),
    "B": (box(66.35, 29.35, 66.45, 29.45), "mining_lease", "granted"),  # overlaps A
    "C": (box(66.32, 29.32, 66.34, 29.34), "prospecting_licence", "granted"),  # inside A
    "F": (box(66.60, 29.30, 66.70, 29.40), "exploration_licence", "granted"),
    "G": (box(66.70, 29.30, 66.80, 29.40), "exploration_licence", "granted"),  # touches F
    "H": (box(66.80, 29.40, 66.90, 29.50), "exploration_licence", "granted"),  # corner of G
    "R": (box(66.31, 29.31, 66.36, 29.36), "reconnaissance_licence", "granted"),  # over A
    "P": (box(66.33, 29.33, 66.38, 29.38), "exploration_licence", "applied"),  # over A
    "X": (box(66.34, 29.31, 66.39, 29.36), "exploration_licence", "refused"),  # over A
    "E": (box(66.31, 29.35, 66.36, 29.39), "exploration_licence", "expired"),  # over A
    "S": (box(66.36, 29.30, 66.39, 29.33), "exploration_licence", "surrendered"),  # over A
    "Q": (box(66.43, 29.43, 66.48, 29.48), "exploration_licence", "applied"),  # over Z
    # Punjab
    "P1": (box(72.50, 31.00, 72.60, 31.10), "exploration_licence", "granted"),
    "P2": (box(72.55, 31.05, 72.65, 31.15), "mining_lease", "granted"),  # overlaps P1
}

RESERVED: dict[str, tuple[Any, str]] = {
    "Z": (box(66.42, 29.42, 66.50, 29.50), "Ziarat Juniper Forest"),  # overlaps B
    "Y": (box(66.80, 29.30, 66.90, 29.40), "Koh-e-Sulaiman Reserve"),  # touches G
}

# The overlaps the audit must list, by key.
TITLE_PAIRS = [("A", "B"), ("A", "C"), ("P1", "P2")]
TITLE_RESERVED = [("B", "Z")]


def _dates(status: str) -> dict[str, date | None]:
    if status == "expired":
        return {"granted_on": date(2019, 1, 1), "expires_on": date(2022, 1, 1)}
    if status in ("granted", "surrendered"):
        return {"granted_on": date(2024, 1, 1), "expires_on": date(2034, 1, 1)}
    return {"granted_on": None, "expires_on": None}


def build(conn: Connection, rules: RuleBook) -> dict[str, int]:
    """Enter LICENCES and RESERVED; ids by key."""
    keys = list(LICENCES)
    cands = [
        Candidate(
            licence_type=LICENCES[k][1],
            minerals=["Copper"],
            holder=Holder(name=f"Holder {k}"),
            shape=Shape.from_intake(intake(mapping(LICENCES[k][0]), None)),
            licence_no=f"TEST-{k}",
            status=LICENCES[k][2],
            **_dates(LICENCES[k][2]),
        )
        for k in keys
    ]
    result = register_licences(conn, cands, rules=rules, actor="test", action="import")
    assert not result.rejected
    ids = {keys[i]: lid for i, lid in result.created.items()}
    load_reserved_areas(
        conn,
        [
            {
                "type": "Feature",
                "geometry": mapping(geom),
                "properties": {
                    "name": name,
                    "kind": "forest" if key == "Z" else "protected",
                    "province": "Balochistan",
                    "source": "test survey",
                    "designated_on": "1990-06-01",
                    "remarks": f"reserved {key}",
                },
            }
            for key, (geom, name) in RESERVED.items()
        ],
    )
    for key, (_, name) in RESERVED.items():
        ids[key] = conn.exec_driver_sql(
            "SELECT id FROM reserved_areas WHERE name = %(n)s", {"n": name}
        ).scalar_one()
    return ids


@pytest.fixture
def ids(conn: Connection, rules: RuleBook) -> dict[str, int]:
    return build(conn, rules)


def expected_rows(ids: dict[str, int], province: str | None = None) -> dict[tuple[Any, ...], float]:
    """(kind, a_id, a_ref, b_id, b_ref, province_code) -> overlap km² by Geod."""
    out: dict[tuple[Any, ...], float] = {}
    for a, b in TITLE_PAIRS:
        ga, gb = LICENCES[a][0], LICENCES[b][0]
        lo, hi = sorted((a, b), key=lambda k: ids[k])
        code = "PK-PB" if a.startswith("P") else "PK-BA"
        out[("title_title", ids[lo], f"TEST-{lo}", ids[hi], f"TEST-{hi}", code)] = km2(
            ga.intersection(gb)
        )
    for a, z in TITLE_RESERVED:
        geom, name = RESERVED[z]
        out[("title_reserved", ids[a], f"TEST-{a}", ids[z], name, "PK-BA")] = km2(
            LICENCES[a][0].intersection(geom)
        )
    if province:
        out = {k: v for k, v in out.items() if k[5] == province}
    return out


def key_of(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["kind"],
        int(row["a_id"]),
        row["a_ref"],
        int(row["b_id"]),
        row["b_ref"],
        row["province_code"],
    )


def geojson_rows(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    r = client.get("/overlaps", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    body = r.json()
    assert body["type"] == "FeatureCollection"
    return [f["properties"] | {"_geometry": f["geometry"]} for f in body["features"]]


def parse_csv(content: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(content))
    assert reader.fieldnames == FIELDS
    return [dict(r) for r in reader]


def csv_rows(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    r = client.get("/overlaps", params={"format": "csv", **params})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    return parse_csv(r.text)


def assert_rows(rows: list[dict[str, Any]], expected: dict[tuple[Any, ...], float]) -> None:
    keys = [key_of(r) for r in rows]
    assert len(keys) == len(set(keys)), "a pair was listed twice"
    assert set(keys) == set(expected), (keys, list(expected))
    for r in rows:
        assert float(r["overlap_km2"]) == pytest.approx(expected[key_of(r)], rel=REL)


# ------------------------------------------------------------------ GET /overlaps


def test_geojson_lists_every_overlap_once(client: TestClient, ids: dict[str, int]) -> None:
    rows = geojson_rows(client)
    assert_rows(rows, expected_rows(ids))


def test_title_pairs_are_ordered_a_id_below_b_id(client: TestClient, ids: dict[str, int]) -> None:
    rows = [r for r in geojson_rows(client) if r["kind"] == "title_title"]
    assert len(rows) == len(TITLE_PAIRS)
    assert all(r["a_id"] < r["b_id"] for r in rows)
    pairs = {frozenset((r["a_id"], r["b_id"])) for r in rows}
    assert len(pairs) == len(rows)  # never (a, b) and (b, a)


def test_geojson_geometry_is_the_overlap(client: TestClient, ids: dict[str, int]) -> None:
    expected = expected_rows(ids)
    for r in geojson_rows(client):
        assert km2(shape(r["_geometry"])) == pytest.approx(expected[key_of(r)], rel=REL)


def test_csv_lists_the_same_rows(client: TestClient, ids: dict[str, int]) -> None:
    rows = csv_rows(client)
    assert_rows(rows, expected_rows(ids))
    as_json = {key_of(r): r["overlap_km2"] for r in geojson_rows(client)}
    assert {key_of(r): float(r["overlap_km2"]) for r in rows} == pytest.approx(as_json)


def test_title_over_reserved_area_is_listed(client: TestClient, ids: dict[str, int]) -> None:
    rows = [r for r in geojson_rows(client) if r["kind"] == "title_reserved"]
    assert [(r["a_id"], r["b_id"], r["b_ref"]) for r in rows] == [
        (ids["B"], ids["Z"], "Ziarat Juniper Forest")
    ]


@pytest.mark.parametrize("key", ["R", "P", "X", "E", "S", "Q", "F", "G", "H"])
def test_not_listed(client: TestClient, ids: dict[str, int], key: str) -> None:
    """Touching titles, non-exclusive titles and licences not granted never appear."""
    listed = {r["a_id"] for r in geojson_rows(client)} | {
        r["b_id"] for r in geojson_rows(client) if r["kind"] == "title_title"
    }
    assert ids[key] not in listed


def test_touching_reserved_area_is_not_listed(client: TestClient, ids: dict[str, int]) -> None:
    rows = [r for r in geojson_rows(client) if r["kind"] == "title_reserved"]
    assert ids["Y"] not in {r["b_id"] for r in rows}


@pytest.mark.parametrize("province", ["PK-PB", "Punjab", "PK-BA", "Balochistan"])
def test_province_filter(client: TestClient, ids: dict[str, int], province: str) -> None:
    code = {"Punjab": "PK-PB", "Balochistan": "PK-BA"}.get(province, province)
    assert_rows(geojson_rows(client, province=province), expected_rows(ids, code))
    assert_rows(csv_rows(client, province=province), expected_rows(ids, code))


def test_province_without_overlaps_lists_nothing(client: TestClient, ids: dict[str, int]) -> None:
    assert geojson_rows(client, province="Sindh") == []
    assert csv_rows(client, province="PK-SD") == []


def test_empty_register_lists_nothing(client: TestClient) -> None:
    assert geojson_rows(client) == []
    assert csv_rows(client) == []


def test_unknown_province_is_rejected(client: TestClient) -> None:
    r = client.get("/overlaps", params={"province": "Atlantis"})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_input"


def test_unknown_format_is_rejected(client: TestClient) -> None:
    r = client.get("/overlaps", params={"format": "xml"})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_input"


def test_audit_leaves_the_connection_options_unchanged(
    conn: Connection, rules: RuleBook, ids: dict[str, int]
) -> None:
    """Streaming is an option of the audit query, not of the caller's connection."""
    rows = list(audit(conn, rules=rules))
    assert len(rows) == len(TITLE_PAIRS) + len(TITLE_RESERVED)
    assert not conn.get_execution_options().get("stream_results")
    with conn.begin_nested():  # the caller can carry on in the same transaction
        assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1


# ------------------------------------------------------------ GET /reserved-areas


def test_reserved_areas_returns_what_was_loaded(client: TestClient, ids: dict[str, int]) -> None:
    r = client.get("/reserved-areas")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    body = r.json()
    assert body["type"] == "FeatureCollection"
    got = {f["id"]: f for f in body["features"]}
    assert set(got) == {ids["Z"], ids["Y"]}
    for key, (geom, name) in RESERVED.items():
        f = got[ids[key]]
        p = f["properties"]
        assert p["name"] == name
        assert p["kind"] == ("forest" if key == "Z" else "protected")
        assert p["province_code"] == "PK-BA"
        assert p["source"] == "test survey"
        assert p["designated_on"] == "1990-06-01"
        assert p["remarks"] == f"reserved {key}"
        assert p["area_km2"] == pytest.approx(km2(geom), rel=REL)
        assert km2(shape(f["geometry"])) == pytest.approx(km2(geom), rel=REL)


def test_reserved_areas_empty(client: TestClient) -> None:
    r = client.get("/reserved-areas")
    assert r.status_code == 200
    assert r.json()["features"] == []


# --------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def committed(cluster: LocalCluster, rules: RuleBook) -> Iterator[tuple[str, dict[str, int]]]:
    """A database of its own, migrated, with the register above committed."""
    name = f"audit_{uuid.uuid4().hex[:12]}"
    cluster.create_database(name)
    url = cluster.url(name)
    upgrade(url)
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            provinces = json.loads(PROVINCES_FILE.read_text())["features"]
            load_jurisdictions(conn, provinces, source="test: geoBoundaries ADM1")
        with engine.begin() as conn:
            ids = build(conn, rules)
        yield url, ids
    finally:
        engine.dispose()


def _cli(url: str, *args: str) -> Any:
    result = CliRunner().invoke(cli_app, list(args), env={"CADASTRE_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    return result


def _api_csv(url: str, **params: Any) -> list[dict[str, Any]]:
    engine = make_engine(url, pool_size=1)
    try:
        settings = Settings(environment="test", database_url=url)
        with TestClient(create_app(settings, db=Database(engine))) as c:
            return csv_rows(c, **params)
    finally:
        engine.dispose()


@pytest.mark.parametrize("province", [None, "Punjab"])
def test_cli_csv_matches_the_api(
    committed: tuple[str, dict[str, int]], tmp_path: Path, province: str | None
) -> None:
    url, ids = committed
    out = tmp_path / "overlaps.csv"
    args = ["audit", "overlaps", str(out)] + (["--province", province] if province else [])
    _cli(url, *args)
    from_cli = parse_csv(out.read_text())
    code = "PK-PB" if province else None
    assert_rows(from_cli, expected_rows(ids, code))
    from_api = _api_csv(url, **({"province": province} if province else {}))
    assert [key_of(r) for r in from_cli] == [key_of(r) for r in from_api]
    for a, b in zip(from_cli, from_api, strict=True):
        assert float(a["overlap_km2"]) == pytest.approx(float(b["overlap_km2"]), rel=1e-9)


def test_cli_geojson_matches_the_api(committed: tuple[str, dict[str, int]], tmp_path: Path) -> None:
    url, ids = committed
    out = tmp_path / "overlaps.geojson"
    _cli(url, "audit", "overlaps", str(out))
    body = json.loads(out.read_text())
    assert body["type"] == "FeatureCollection"
    rows = [f["properties"] for f in body["features"]]
    assert_rows(rows, expected_rows(ids))
    expected = expected_rows(ids)
    for f in body["features"]:
        assert km2(shape(f["geometry"])) == pytest.approx(
            expected[key_of(f["properties"])], rel=REL
        )
    assert sorted(map(key_of, rows)) == sorted(map(key_of, _api_csv(url)))


def test_cli_rejects_an_unknown_format(
    committed: tuple[str, dict[str, int]], tmp_path: Path
) -> None:
    url, _ = committed
    result = CliRunner().invoke(
        cli_app,
        ["audit", "overlaps", str(tmp_path / "overlaps.xml")],
        env={"CADASTRE_DATABASE_URL": url},
    )
    assert result.exit_code != 0
    assert not (tmp_path / "overlaps.xml").exists()
