"""Open data exports: each format opened with pyogrio and compared with the database."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text

from cadastre.db import opendata
from tests.api.test_lifecycle import KP, PB, act, apply

GRANT = {"granted_on": "2025-01-15", "expires_on": "2028-01-14"}
OWNERS = [
    {"name": "Ayesha Khan", "nationality": "Pakistan", "share_pct": 60},
    {"name": "Li Wei", "nationality": "China", "share_pct": 40},
]


@pytest.fixture
def register(client: TestClient) -> dict[str, int]:
    """A granted title with beneficial owners, a published and a held-back application."""
    holder = {
        "name": "Open Data Minerals (Pvt) Ltd",
        "country": "Pakistan",
        "registration_no": "0123456",
        "contact": {"phone": "+92 300 0000000"},
        "beneficial_owners": OWNERS,
    }
    title = apply(client, holder=holder, remarks="internal note")["id"]
    r = act(client, title, "grant", **GRANT)
    assert r.status_code == 200, r.text
    public = apply(client, at=KP, holder="Open Data Applicant")["id"]
    hidden = apply(client, at=PB, holder="Held Back Applicant", published=False)["id"]
    return {"title": title, "public": public, "hidden": hidden}


def _expected(conn: Connection) -> dict[int, dict[str, Any]]:
    """The public register straight from the database, independently of the export code."""
    rows = conn.execute(
        text(
            """
            SELECT v.licence_id, v.licence_no, v.status, v.licence_type, v.province_code,
                   v.minerals, p.name AS holder, v.applied_on, v.granted_on, v.expires_on,
                   v.area_km2, ST_AsBinary(v.geom) AS wkb,
                   (SELECT coalesce(json_agg(b.name ORDER BY b.id), '[]')
                    FROM beneficial_owners b WHERE b.party_id = p.id) AS owners
            FROM licence_versions v JOIN parties p ON p.id = v.holder_id
            WHERE v.valid_to IS NULL AND v.published
            """
        )
    ).mappings()
    return {r["licence_id"]: dict(r) for r in rows}


def _check(got: dict[int, dict[str, Any]], expected: dict[int, dict[str, Any]]) -> None:
    assert set(got) == set(expected)
    for lid, e in expected.items():
        g = got[lid]
        assert g["licence_no"] == e["licence_no"]
        assert g["status"] == e["status"]
        assert g["licence_type"] == e["licence_type"]
        assert g["province_code"] == e["province_code"]
        assert g["holder"] == e["holder"]
        assert g["commodities"] == "; ".join(e["minerals"])
        assert g["area_km2"] == pytest.approx(e["area_km2"], abs=1e-6)
        for d in ("applied_on", "granted_on", "expires_on"):
            assert g[d] == e[d], d
        assert [o["name"] for o in g["beneficial_owners"]] == e["owners"]
        # 7 decimals: within a centimetre of the stored shape.
        assert shapely.equals_exact(
            g["geometry"], shapely.from_wkb(bytes(e["wkb"])), tolerance=1e-7
        )


def _date(value: Any) -> date | None:
    if value is None or value == "" or (isinstance(value, float)) or str(value) == "NaT":
        return None
    if isinstance(value, date | datetime) and hasattr(value, "date"):
        return value.date() if isinstance(value, datetime) else value
    return date.fromisoformat(str(value)[:10])


def _from_frame(path: Path) -> dict[int, dict[str, Any]]:
    frame = pyogrio.read_dataframe(path)
    out = {}
    for rec in frame.to_dict("records"):
        owners = rec["beneficial_owners"]  # GeoJSON: an array; GeoPackage: JSON text
        rec["beneficial_owners"] = json.loads(owners) if isinstance(owners, str) else owners
        for d in ("applied_on", "granted_on", "expires_on"):
            rec[d] = _date(rec[d])
        out[int(rec["licence_id"])] = rec
    return out


def test_geojson_matches_the_database(
    client: TestClient, conn: Connection, register: dict[str, int], tmp_path: Path
) -> None:
    r = client.get("/opendata/licences.geojson")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    doc = r.json()
    assert doc["licence"] == opendata.LICENCE
    (tmp_path / "l.geojson").write_bytes(r.content)
    got = _from_frame(tmp_path / "l.geojson")
    _check(got, _expected(conn))
    title = next(f for f in doc["features"] if f["id"] == register["title"])
    assert title["properties"]["beneficial_owners"][1]["nationality"] == "China"
    assert title["properties"]["term_years"] == pytest.approx(3.0, abs=0.01)


def test_gpkg_matches_the_database(
    client: TestClient, conn: Connection, register: dict[str, int], tmp_path: Path
) -> None:
    r = client.get("/opendata/licences.gpkg")
    assert r.status_code == 200, r.text
    path = tmp_path / "l.gpkg"
    path.write_bytes(r.content)
    info = pyogrio.read_info(path)
    assert info["crs"] == "EPSG:4326"
    assert info["geometry_type"] == "MultiPolygon"
    types = dict(zip(info["fields"], info["ogr_types"], strict=True))
    assert types["granted_on"] == "OFTDate" and types["received_at"] == "OFTDateTime"
    _check(_from_frame(path), _expected(conn))


def test_csv_matches_the_database(
    client: TestClient, conn: Connection, register: dict[str, int], tmp_path: Path
) -> None:
    r = client.get("/opendata/licences.csv")
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert list(rows[0]) == [*opendata.NAMES, "geometry_wkt"]
    got = {}
    for row in rows:
        rec: dict[str, Any] = dict(row)
        rec["beneficial_owners"] = json.loads(row["beneficial_owners"])
        rec["geometry"] = shapely.from_wkt(row["geometry_wkt"])
        rec["area_km2"] = float(row["area_km2"])
        for d in ("applied_on", "granted_on", "expires_on"):
            rec[d] = _date(row[d])
        got[int(row["licence_id"])] = rec
    _check(got, _expected(conn))
    # pyogrio (GDAL's CSV driver) reads it too, geometry from the WKT column.
    (tmp_path / "l.csv").write_bytes(r.content)
    assert len(pyogrio.read_dataframe(tmp_path / "l.csv")) == len(rows)


@pytest.mark.parametrize("fmt", ["csv", "geojson"])
def test_no_private_fields_and_no_held_back_applications(
    client: TestClient, register: dict[str, int], fmt: str
) -> None:
    body = client.get(f"/opendata/licences.{fmt}").text
    assert "+92 300" not in body  # the holder's contact
    assert "internal note" not in body  # remarks
    assert "Held Back Applicant" not in body
    assert "Open Data Applicant" in body


def test_readme_names_every_field_and_the_licence(anon: TestClient) -> None:
    r = anon.get("/opendata/README")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/markdown")
    for name in (*opendata.NAMES, "geometry"):
        assert f"`{name}`" in r.text
    assert opendata.LICENCE in r.text


def test_anonymous_reader_gets_the_same_file(
    client: TestClient, anon: TestClient, register: dict[str, int]
) -> None:
    assert anon.get("/opendata/licences.csv").text == client.get("/opendata/licences.csv").text


def test_bad_as_of_and_format(client: TestClient) -> None:
    r = client.get("/opendata/licences.csv", params={"as_of": "last week"})
    assert r.status_code == 422 and r.json()["field"] == "as_of"
    r = client.get("/opendata/licences.shp")
    assert r.status_code in (404, 422), r.text
    r = client.get("/opendata/licences.csv", params={"asof": "2024-01-01"})
    assert r.status_code == 400 and r.json()["field"] == "asof"


def test_as_of_shows_the_register_of_a_past_day(
    client: TestClient, conn: Connection, register: dict[str, int], tmp_path: Path
) -> None:
    # All writes of a test share one transaction (one now()); move the title's
    # versions back as if applied 10 days ago and granted 5 days ago.
    tz = ZoneInfo("Asia/Karachi")
    today = datetime.now(tz).date()
    applied_at = datetime.combine(today - timedelta(days=10), time(12), tz)
    granted_at = datetime.combine(today - timedelta(days=5), time(12), tz)
    lid = register["title"]
    conn.execute(
        text(
            "UPDATE licence_versions SET valid_from = CASE version WHEN 1 THEN :a ELSE :g END, "
            "valid_to = CASE version WHEN 1 THEN :g END WHERE licence_id = :id"
        ),
        {"a": applied_at, "g": granted_at, "id": lid},
    )

    def on(day: date, fmt: str) -> dict[int, dict[str, Any]]:
        r = client.get(f"/opendata/licences.{fmt}", params={"as_of": day.isoformat()})
        assert r.status_code == 200, r.text
        path = tmp_path / f"{day}.{fmt}"
        path.write_bytes(r.content)
        return (
            _from_frame(path)
            if fmt != "csv"
            else {int(row["licence_id"]): row for row in csv.DictReader(io.StringIO(r.text))}
        )

    for fmt in ("geojson", "gpkg", "csv"):
        assert lid not in on(today - timedelta(days=11), fmt)
        assert on(today - timedelta(days=7), fmt)[lid]["status"] == "applied"
        assert on(today - timedelta(days=1), fmt)[lid]["status"] == "granted"
    # Held-back applications stay out of the past register too.
    assert register["hidden"] not in on(today, "geojson")


def test_snapshot_command_writes_files_and_checksums(
    conn: Connection, register: dict[str, int], tmp_path: Path
) -> None:
    snap = opendata.write_snapshot(conn, tmp_path, date(2026, 1, 31))
    assert snap.directory == tmp_path / "2026-01-31"
    sums = (snap.directory / "SHA256SUMS").read_text().splitlines()
    names = sorted(line.split("  ")[1] for line in sums)
    assert names == ["README.md", "licences.csv", "licences.geojson", "licences.gpkg"]
    for line in sums:
        digest, name = line.split("  ")
        assert opendata.sha256_file(snap.directory / name) == digest
    assert len(_from_frame(snap.directory / "licences.gpkg")) == snap.count
    assert len(_from_frame(snap.directory / "licences.geojson")) == snap.count
    assert snap.count == len(_expected(conn))
    assert not list(snap.directory.glob(".partial.*"))
