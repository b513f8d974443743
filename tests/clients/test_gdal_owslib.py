"""Real OGC API - Features clients against the real service: GDAL's OAPIF driver and OWSLib.

The module makes its own database in the test cluster (migrated, provinces,
the synthetic sample licences and reserved areas), commits for real, runs the
service under uvicorn on a free local port in a background thread, and drops
the database at the end. ``ogrinfo``/``ogr2ogr`` come from Debian's gdal-bin.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from owslib.ogcapi.features import Features  # type: ignore[import-untyped]
from sqlalchemy import Engine, text

from api.app import create_app
from cadastre.db.cluster import LocalCluster
from cadastre.db.engine import make_engine
from cadastre.db.reserved import load_reserved_areas
from cadastre.ingest import import_licences, read_licence_file
from cadastre.rules import RuleBook
from cadastre.settings import Settings
from cadastre.survey.vector import LayerMeta, load_vector, read_vector
from tests.live import SAMPLE, live_server, scratch_database

TIMEOUT = 300  # seconds, for every subprocess
# Central Punjab / Salt Range: holds a good share of the sample licences.
BBOX = (71.5, 31.5, 73.5, 33.5)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not on PATH: these tests need GDAL's command-line tools "
            "(Debian package gdal-bin; scripts/setup.sh installs it)"
        )
    return path


@dataclass(frozen=True)
class Service:
    url: str
    engine: Engine

    def ids(self, sql: str, **params: Any) -> set[int]:
        with self.engine.connect() as conn:
            return {int(r[0]) for r in conn.execute(text(sql), params)}

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar_one()


@pytest.fixture(scope="module")
def service(cluster: LocalCluster) -> Iterator[Service]:
    """A committed database with the sample data, and the real service over it."""
    with scratch_database(cluster, "ogc_clients") as url:
        engine = make_engine(url, pool_size=4)
        try:
            reserved = json.loads((SAMPLE / "reserved_areas_synthetic.geojson").read_text())
            frame, crs = read_licence_file(SAMPLE / "licences_synthetic.geojson")
            occurrences = read_vector(SAMPLE / "pakistan_mineral_occurrences_usgs.geojson")
            with engine.begin() as conn:
                load_reserved_areas(conn, reserved["features"])
                report = import_licences(conn, frame, crs, rules=RuleBook.load(), actor="test")
                load_vector(conn, occurrences, OCCURRENCES, actor="test")
            assert report.imported == len(frame) and not report.rejected
            app = create_app(Settings(environment="test", database_url=url))
            with live_server(app, "uvicorn-ogc-clients") as base:
                yield Service(base, engine)
        finally:
            engine.dispose()


OCCURRENCES = LayerMeta(
    slug="occurrences",
    name="Mineral occurrences (USGS)",
    kind="occurrences",
    source="USGS via sample_data",
    licence="public domain",
    public=True,  # open data: GDAL and OWSLib read it without signing in
)


def run(*args: str) -> str:
    """Run a GDAL tool; its stdout, or a failure showing stderr."""
    cmd = [_tool(args[0]), *args[1:]]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={"PATH": "/usr/bin:/bin", "CPL_DEBUG": "OFF", "GDAL_HTTP_TIMEOUT": "120"},
    )
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stderr}\n{proc.stdout[-2000:]}"
    return proc.stdout


def _licence_count(service: Service) -> int:
    return int(service.scalar("SELECT count(*) FROM licences"))


# --------------------------------------------------------------------------------- GDAL


def test_ogrinfo_lists_collections(service: Service) -> None:
    out = run("ogrinfo", "-ro", "-so", f"OAPIF:{service.url}")
    layers = set(re.findall(r"^\d+: (\w+)", out, flags=re.M))
    assert layers == {"licences", "jurisdictions", "reserved_areas", "occurrences"}, out


def test_ogrinfo_licences_summary(service: Service) -> None:
    out = run("ogrinfo", "-ro", "-so", f"OAPIF:{service.url}", "licences")
    count = re.search(r"^Feature Count: (\d+)", out, flags=re.M)
    assert count is not None, out
    assert int(count.group(1)) == _licence_count(service) == 3000
    assert re.search(r"^Geometry: Multi Polygon", out, flags=re.M), out
    for name in ("licence_no", "status", "area_km2", "granted_on"):
        assert re.search(rf"^{name}: ", out, flags=re.M), (name, out)


def test_ogrinfo_reads_every_reserved_area(service: Service) -> None:
    out = run(
        "ogrinfo", "-ro", "-oo", "PAGE_SIZE=500", "-al", "-q", f"OAPIF:{service.url}",
        "reserved_areas",
    )  # fmt: skip
    fids = re.findall(r"^OGRFeature\(reserved_areas\):\d+", out, flags=re.M)
    names = set(re.findall(r"^\s+name \(String\) = (.+)$", out, flags=re.M))
    expect = service.ids("SELECT id FROM reserved_areas")
    assert len(fids) == len(expect) == 15
    with service.engine.connect() as conn:
        assert names == {r[0] for r in conn.execute(text("SELECT name FROM reserved_areas"))}
    assert out.count("MULTIPOLYGON") == len(expect)


def test_gdal_default_paging_reads_a_survey_layer_whole(service: Service, tmp_path: Path) -> None:
    """No PAGE_SIZE: Debian's GDAL asks 10 features a page and follows every next link
    exactly as given (13 pages for the 122 USGS occurrences)."""
    feats = _ogr2ogr(service, tmp_path, f"OAPIF:{service.url}", "occurrences")
    expect = service.ids(
        "SELECT f.fid FROM survey_features f JOIN survey_layers l ON l.id = f.layer_id "
        "WHERE l.slug = 'occurrences'"
    )
    assert len(feats) == len(expect) == 122
    assert {f.get("id") for f in feats} == expect
    names = {f["properties"]["name"] for f in feats}
    assert "Saindak" in names or any("Saindak" in n for n in names if n)


def _ogr2ogr(service: Service, tmp_path: Path, *args: str) -> list[dict[str, Any]]:
    out = tmp_path / f"out_{uuid.uuid4().hex[:8]}.geojson"
    # -preserve_fid: GDAL's OAPIF driver takes an integer feature "id" as the FID.
    run("ogr2ogr", "-f", "GeoJSON", "-preserve_fid", str(out), *args)
    return list(json.loads(out.read_text())["features"])


def test_paged_read_of_every_licence(service: Service, tmp_path: Path) -> None:
    feats = _ogr2ogr(service, tmp_path, "-oo", "PAGE_SIZE=1000", f"OAPIF:{service.url}", "licences")
    expect = service.ids("SELECT id FROM licences")
    got = [f.get("id") for f in feats]
    assert len(got) == len(expect) == 3000
    assert set(got) == expect
    nos = {f["properties"]["licence_no"] for f in feats}
    with service.engine.connect() as conn:
        assert nos == {r[0] for r in conn.execute(text("SELECT licence_no FROM licences"))}


def test_spatial_filter_matches_api_bbox(service: Service, tmp_path: Path) -> None:
    bbox = ",".join(map(str, BBOX))
    r = httpx.get(
        f"{service.url}/collections/licences/items",
        params={"bbox": bbox, "limit": 10_000},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    api_ids = {f["id"] for f in r.json()["features"]}
    assert r.json()["numberMatched"] == len(api_ids) > 20
    sql = service.ids(
        "SELECT id FROM licences WHERE geom && ST_MakeEnvelope(:a, :b, :c, :d, 4326) "
        "AND ST_Intersects(geom, ST_MakeEnvelope(:a, :b, :c, :d, 4326))",
        a=BBOX[0], b=BBOX[1], c=BBOX[2], d=BBOX[3],
    )  # fmt: skip
    assert api_ids == sql
    feats = _ogr2ogr(
        service, tmp_path, "-oo", "PAGE_SIZE=100", "-spat", *map(str, BBOX),
        f"OAPIF:{service.url}", "licences",
    )  # fmt: skip
    got = [f.get("id") for f in feats]
    assert len(got) == len(api_ids)
    assert set(got) == api_ids
    out = run("ogrinfo", "-ro", "-so", "-spat", *map(str, BBOX), f"OAPIF:{service.url}", "licences")
    count = re.search(r"^Feature Count: (\d+)", out, flags=re.M)
    assert count is not None and int(count.group(1)) == len(api_ids), out


# ------------------------------------------------------------------------------- OWSLib


def test_owslib_collections(service: Service) -> None:
    api = Features(service.url, timeout=60)
    ids = {c["id"] for c in api.collections()["collections"]}
    assert ids == {"licences", "jurisdictions", "reserved_areas", "occurrences"}
    assert api.conformance()["conformsTo"]
    assert api.collection("licences")["id"] == "licences"
    props = api.collection_queryables("licences")["properties"]
    assert "status" in props


def test_owslib_items_bbox(service: Service) -> None:
    api = Features(service.url, timeout=60)
    sql = service.ids(
        "SELECT id FROM licences WHERE ST_Intersects(geom, ST_MakeEnvelope(:a, :b, :c, :d, 4326))",
        a=BBOX[0], b=BBOX[1], c=BBOX[2], d=BBOX[3],
    )  # fmt: skip
    body = api.collection_items("licences", bbox=list(BBOX), limit=10_000)
    assert {f["id"] for f in body["features"]} == sql
    assert body["numberMatched"] == len(sql)
    small = api.collection_items("licences", bbox=list(BBOX), limit=7)
    assert small["numberReturned"] == 7 and small["numberMatched"] == len(sql)
    assert any(x["rel"] == "next" for x in small["links"])


def test_owslib_reads_a_survey_layer_with_bbox_and_filter(service: Service) -> None:
    api = Features(service.url)
    assert "occurrences" in {c["id"] for c in api.collections()["collections"]}
    box = (60.5, 27.0, 66.0, 30.5)  # western Balochistan, Chagai
    page = api.collection_items(
        "occurrences", bbox=list(box), filter="commodities LIKE '%Copper%'", limit=500
    )
    got = {f["id"] for f in page["features"]}
    expect = service.ids(
        "SELECT f.fid FROM survey_features f JOIN survey_layers l ON l.id = f.layer_id "
        "WHERE l.slug = 'occurrences' AND f.properties->>'commodities' LIKE '%Copper%' "
        "AND f.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)",
        x0=box[0],
        y0=box[1],
        x1=box[2],
        y1=box[3],
    )
    assert got == expect and got


def test_owslib_items_filter(service: Service) -> None:
    api = Features(service.url, timeout=60)
    expect = service.ids(
        "SELECT id FROM licences WHERE status = 'granted' AND province_code = 'PK-KP'"
    )
    assert expect
    body = api.collection_items(
        "licences",
        filter="status = 'granted' AND province_code = 'PK-KP'",
        limit=10_000,
        **{"filter-lang": "cql2-text"},
    )
    assert {f["id"] for f in body["features"]} == expect
    cql = {
        "op": "and",
        "args": [
            {"op": "=", "args": [{"property": "status"}, "granted"]},
            {"op": "=", "args": [{"property": "province_code"}, "PK-KP"]},
        ],
    }
    body = api.collection_items(
        "licences", filter=json.dumps(cql), limit=10_000, **{"filter-lang": "cql2-json"}
    )
    assert {f["id"] for f in body["features"]} == expect
    # Filter and bbox together.
    both = service.ids(
        "SELECT id FROM licences WHERE status = 'granted' "
        "AND ST_Intersects(geom, ST_MakeEnvelope(:a, :b, :c, :d, 4326))",
        a=BBOX[0], b=BBOX[1], c=BBOX[2], d=BBOX[3],
    )  # fmt: skip
    body = api.collection_items(
        "licences", bbox=list(BBOX), filter="status = 'granted'", limit=10_000
    )
    assert {f["id"] for f in body["features"]} == both
    one = api.collection_item("licences", str(min(expect)))
    assert one["id"] == min(expect)
