"""The ``cadastre`` command line: imports, sample data, exports, ``db status``.

The CLI commits what it writes, so these tests never touch the main test
database: every test that writes gets a database of its own in the test
cluster (migrated, provinces loaded), and runs the CLI with
``CADASTRE_DATABASE_URL`` pointing at it. The event log refuses DELETE and
TRUNCATE, so a fresh database is the way to start empty.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from click.testing import Result
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.polygon import orient
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from cadastre.cli import app
from cadastre.db.cluster import LocalCluster
from cadastre.db.engine import make_engine
from cadastre.db.jurisdictions import load_jurisdictions
from cadastre.db.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
PROVINCES_FILE = SAMPLE / "pakistan_admin1_provinces.geojson"
SAMPLE_LICENCES = SAMPLE / "licences_synthetic.geojson"

GEOD = pyproj.Geod(ellps="WGS84")
UTM42 = "EPSG:32642"
TO_LONLAT = pyproj.Transformer.from_crs(UTM42, "EPSG:4326", always_xy=True)
TO_UTM = pyproj.Transformer.from_crs("EPSG:4326", UTM42, always_xy=True)

runner = CliRunner()


# ------------------------------------------------------------------- databases


@dataclass
class CliDb:
    """A database of the test cluster that the CLI may commit to."""

    url: str
    engine: Engine

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(sql), params)]

    def count(self, table: str) -> int:
        return int(self.scalar(f"SELECT count(*) FROM {table}"))

    def written(self) -> dict[str, int]:
        """Rows in every table an import writes to."""
        tables = ("licences", "licence_versions", "licence_events", "parties", "receipt_counters")
        return {t: self.count(t) for t in tables}


def _provinces() -> list[dict[str, Any]]:
    return json.loads(PROVINCES_FILE.read_text())["features"]


@pytest.fixture(scope="module")
def make_db(cluster: LocalCluster) -> Iterator[Callable[..., CliDb]]:
    """Factory: a new database in the test cluster, migrated, provinces loaded (by default)."""
    made: list[CliDb] = []

    def make(*, provinces: bool = True) -> CliDb:
        name = f"cli_{uuid.uuid4().hex[:12]}"
        cluster.create_database(name)
        url = cluster.url(name)
        upgrade(url)
        engine = make_engine(url, pool_size=1)
        if provinces:
            with engine.begin() as conn:
                load_jurisdictions(conn, _provinces(), source="test: geoBoundaries ADM1")
        db = CliDb(url, engine)
        made.append(db)
        return db

    yield make
    for db in made:
        db.engine.dispose()


@pytest.fixture
def fresh(make_db: Callable[..., CliDb]) -> CliDb:
    """An empty register (provinces loaded) for one test."""
    return make_db()


def raster_dir(url: str) -> Path:
    """Where the CLI keeps rasters for the database at ``url``: never the project's own folder."""
    return Path(tempfile.gettempdir()) / "cadastre-test-rasters" / url.rsplit("/", 1)[-1]


def cli(db: CliDb | str, *args: str | Path) -> Result:
    url = db if isinstance(db, str) else db.url
    env = {"CADASTRE_DATABASE_URL": url, "CADASTRE_RASTER_DIR": str(raster_dir(url))}
    return runner.invoke(app, [str(a) for a in args], env=env)


def _out(result: Result) -> str:
    """Everything the command printed (stdout and stderr)."""
    return result.output


# ----------------------------------------------------------------------- shapes


def rect(lon: float, lat: float, w: float = 0.02, h: float = 0.015) -> Polygon:
    return orient(shapely.box(lon, lat, lon + w, lat + h), 1.0)


def irregular(lon: float, lat: float, r: float = 0.012) -> Polygon:
    pts = [(0.0, -1.0), (0.9, -0.4), (0.7, 0.8), (-0.2, 1.0), (-0.9, 0.3), (-0.6, -0.7)]
    return orient(Polygon([(lon + r * x, lat + r * y) for x, y in pts]), 1.0)


def with_hole(lon: float, lat: float) -> Polygon:
    outer = shapely.box(lon, lat, lon + 0.03, lat + 0.03)
    hole = shapely.box(lon + 0.01, lat + 0.01, lon + 0.02, lat + 0.02)
    return orient(outer.difference(hole), 1.0)


def two_parts(lon: float, lat: float) -> MultiPolygon:
    return MultiPolygon([rect(lon, lat), rect(lon + 0.05, lat + 0.01, 0.01, 0.01)])


def geodesic_km2(geom: Any) -> float:
    return abs(GEOD.geometry_area_perimeter(orient_any(geom))[0]) / 1e6


def orient_any(geom: Any) -> Any:
    if isinstance(geom, MultiPolygon):
        return MultiPolygon([orient(p, 1.0) for p in geom.geoms])
    return orient(geom, 1.0)


# Places well inside one province each (checked by test_fixture_shapes_are_inside).
# lon 66-72 so that they also lie in UTM zone 42N.
MUSLIM_BAGH = (67.75, 30.83, "Balochistan")
KHUZDAR = (66.60, 27.80, "Balochistan")
THAR = (70.20, 24.75, "Sindh")
LAKHRA = (68.05, 25.65, "Sindh")
KARAK = (71.10, 33.10, "Khyber Pakhtunkhwa")
SALT_RANGE = (72.60, 32.68, "Punjab")  # zone 43N, lon/lat files only
HUNZA = (74.66, 36.32, "Gilgit-Baltistan")


def good_rows() -> list[dict[str, Any]]:
    """Eight valid licences in lon/lat with varied shapes and attributes."""
    rows = [
        dict(
            geometry=rect(*MUSLIM_BAGH[:2]),
            licence_type="exploration_licence",
            minerals="Chromite; Magnesite",
            holder="Zhob Valley Chromite (Pvt) Ltd",
            province="Balochistan",
            licence_no="BA-EL-2024-900001",
            status="granted",
            applied_on="2024-01-10",
            granted_on="2024-03-01",
            expires_on="2027-03-01",
        ),
        dict(
            geometry=irregular(*THAR[:2]),
            licence_type="mining_lease",
            minerals="Coal",
            holder="Thar Desert Energy Minerals (Pvt) Ltd",
            province="PK-SD",
            licence_no="SD-ML-2023-900002",
            status="applied",
            applied_on="2023-06-30",
            granted_on=None,
            expires_on=None,
        ),
        dict(
            geometry=with_hole(*SALT_RANGE[:2]),
            licence_type="small_scale_mining_lease",
            minerals="Rock salt, Gypsum",
            holder="Potohar Salt & Gypsum Co. (Pvt) Ltd",
            province=None,
            licence_no="PB-SSML-2022-900003",
            status="granted",
            applied_on="2022-02-02",
            granted_on="2022-05-05",
            expires_on="2032-05-05",
        ),
        dict(
            geometry=two_parts(*KARAK[:2]),
            licence_type="prospecting_licence",
            minerals="Gypsum",
            holder="Kohat Gypsum Works",
            province="Khyber Pakhtunkhwa",
            licence_no="KP-PL-2021-900004",
            status="refused",
            applied_on="2021-09-09",
            granted_on=None,
            expires_on=None,
        ),
        dict(
            geometry=rect(*HUNZA[:2], w=0.01, h=0.01),
            licence_type="small_scale_mining_lease",
            minerals="Ruby; Spinel",
            holder="Hunza Valley Gems (Pvt) Ltd",
            province="Gilgit-Baltistan",
            licence_no="GB-SSML-2020-900005",
            status="expired",
            applied_on="2010-01-05",
            granted_on="2010-06-01",
            expires_on="2020-06-01",
        ),
        dict(
            geometry=irregular(*KHUZDAR[:2], r=0.03),
            licence_type="reconnaissance_licence",
            minerals="Lead; Zinc; Barite",
            holder="zhob valley chromite (pvt) ltd",  # same party, other case
            province="PK-BA",
            licence_no=None,  # numbered by the register
            status="applied",
            applied_on="2025-11-01",
            granted_on=None,
            expires_on=None,
        ),
        dict(
            geometry=rect(*LAKHRA[:2], w=0.04, h=0.03),
            licence_type="mining_lease",
            minerals="Coal",
            holder="Mehran Clay Works (Pvt) Ltd",
            province="Sindh",
            licence_no="SD-ML-2015-900007",
            status="surrendered",
            applied_on="2014-12-01",
            granted_on="2015-02-01",
            expires_on="2045-02-01",
        ),
        dict(
            geometry=rect(SALT_RANGE[0] + 0.1, SALT_RANGE[1], 0.01, 0.01),
            licence_type="surface_mineral_lease",
            minerals="Silica sand",
            holder="Jhelum Silica (Pvt) Ltd",
            province="Punjab",
            licence_no="PB-SML-2026-900008",
            status="applied",
            applied_on="2026-01-15",
            granted_on=None,
            expires_on=None,
        ),
    ]
    for i, row in enumerate(rows, start=1):
        row["remarks"] = f"test row {i}"
    return rows


def utm_rows() -> list[dict[str, Any]]:
    """Five valid licences surveyed in UTM 42N (integer metres)."""
    rows = []
    places = [MUSLIM_BAGH, KHUZDAR, THAR, LAKHRA, KARAK]
    for i, (lon, lat, province) in enumerate(places, start=1):
        x, y = TO_UTM.transform(lon, lat)
        x0, y0 = round(x), round(y)
        if i % 2:
            geom = orient(shapely.box(x0, y0, x0 + 2500, y0 + 1800), 1.0)
        else:
            geom = orient(
                Polygon([(x0, y0), (x0 + 3000, y0 + 200), (x0 + 2600, y0 + 2900), (x0 - 400, y0)]),
                1.0,
            )
        rows.append(
            dict(
                geometry=geom,
                licence_type="exploration_licence",
                minerals="Copper; Gold",
                holder=f"UTM Surveyed Co {i}",
                province=province,
                licence_no=f"UT-EL-2025-{i:06d}",
                status="applied",
                applied_on="2025-05-0" + str(i),
                granted_on=None,
                expires_on=None,
                remarks=f"utm row {i}",
            )
        )
    return rows


def frame(rows: list[dict[str, Any]], crs: str = "EPSG:4326") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry="geometry", crs=crs)


def lonlat(geom: Any, crs: str) -> Any:
    if crs == UTM42:
        return shapely.transform(geom, _utm_to_lonlat)
    return geom


def _utm_to_lonlat(xy: Any) -> Any:
    lon, lat = TO_LONLAT.transform(xy[:, 0], xy[:, 1])
    return np.column_stack([lon, lat])


# ------------------------------------------------------------------ file writers


def write_geojson(rows: list[dict[str, Any]], path: Path, crs: str = "EPSG:4326") -> Path:
    frame(rows, crs).to_file(path, driver="GeoJSON", engine="pyogrio")
    return path


def write_gpkg(rows: list[dict[str, Any]], path: Path, crs: str = "EPSG:4326") -> Path:
    frame(rows, crs).to_file(path, driver="GPKG", engine="pyogrio", layer="licences")
    return path


def write_zipped_shapefile(rows: list[dict[str, Any]], path: Path, crs: str = "EPSG:4326") -> Path:
    folder = path.parent / (path.stem + "_shp")
    folder.mkdir()
    shp = folder / "licences.shp"
    # GDAL truncates field names to 10 characters (licence_type -> licence_ty), as any
    # shapefile a user exports from a GIS does.
    frame(rows, crs).to_file(shp, driver="ESRI Shapefile", engine="pyogrio")
    with zipfile.ZipFile(path, "w") as zf:
        for part in sorted(folder.iterdir()):
            zf.write(part, part.name)
    return path


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    table = pd.DataFrame(rows)
    table["wkt"] = shapely.to_wkt(table.pop("geometry").to_numpy(), rounding_precision=-1)
    table.to_csv(path, index=False)
    return path


# ----------------------------------------------------------------------- checks


def check_register(db: CliDb, rows: list[dict[str, Any]], crs: str) -> None:
    """The register holds exactly ``rows``: attributes, province, geometry, geodesic area."""
    got = {
        r["remarks"]: r
        for r in db.rows(
            """
            SELECT l.licence_no, l.licence_type, l.minerals, p.name AS holder,
                   j.name AS province, l.status, l.applied_on, l.granted_on, l.expires_on,
                   l.remarks, l.area_km2, l.submitted_crs, ST_AsBinary(l.geom) AS wkb
            FROM licences l JOIN parties p ON p.id = l.holder_id
            JOIN jurisdictions j ON j.code = l.province_code
            """
        )
    }
    assert len(got) == len(rows) == db.count("licences")
    assert db.count("licence_versions") == len(rows)
    assert db.count("licence_events") == len(rows)
    assert db.scalar("SELECT count(*) FROM licence_events WHERE action <> 'import'") == 0
    province_by_place = {row["remarks"]: _province_of(lonlat(row["geometry"], crs)) for row in rows}
    for row in rows:
        r = got[row["remarks"]]
        if row["licence_no"]:
            assert r["licence_no"] == row["licence_no"]
        else:
            assert r["licence_no"].startswith("BA-RL-"), r["licence_no"]
        assert r["licence_type"] == row["licence_type"]
        expected_minerals = [m.strip() for m in row["minerals"].replace(",", ";").split(";")]
        assert list(r["minerals"]) == expected_minerals
        assert r["holder"].lower() == row["holder"].lower()
        assert r["province"] == province_by_place[row["remarks"]]
        assert r["status"] == row["status"]
        for col in ("applied_on", "granted_on", "expires_on"):
            value = r[col].isoformat() if r[col] is not None else None
            assert value == row[col], (row["remarks"], col)
        expected = orient_any(lonlat(row["geometry"], crs))
        stored = shapely.from_wkb(bytes(r["wkb"]))
        assert stored.geom_type == "MultiPolygon"
        assert shapely.hausdorff_distance(stored, expected) < 1e-6, row["remarks"]
        # RFC 7946 orientation in the register: exteriors counter-clockwise
        for part in stored.geoms:
            assert part.exterior.is_ccw
            assert all(not hole.is_ccw for hole in part.interiors)
        area = geodesic_km2(expected)
        assert r["area_km2"] == pytest.approx(area, rel=1e-4), row["remarks"]
    # holders are parties, found by name ignoring case
    holders = db.scalar("SELECT count(DISTINCT holder_id) FROM licences")
    assert holders == len({row["holder"].lower() for row in rows})


_PROVINCE_SHAPES: list[tuple[str, Any]] | None = None


def _province_of(geom: Any) -> str:
    global _PROVINCE_SHAPES
    if _PROVINCE_SHAPES is None:
        _PROVINCE_SHAPES = [
            (f["properties"]["province"], shape(f["geometry"])) for f in _provinces()
        ]
    hits = [name for name, poly in _PROVINCE_SHAPES if poly.contains(geom)]
    assert len(hits) == 1, hits
    return hits[0]


def test_fixture_shapes_are_inside_one_province() -> None:
    for row in good_rows():
        name = _province_of(row["geometry"])
        if row["province"] and not row["province"].startswith("PK-"):
            assert name == row["province"]
        assert row["geometry"].is_valid
    for row in utm_rows():
        assert _province_of(lonlat(row["geometry"], UTM42)) == row["province"]


# ---------------------------------------------------------------------- imports


@pytest.mark.parametrize(
    ("kind", "crs"),
    [
        ("geojson", "EPSG:4326"),
        ("gpkg", "EPSG:4326"),
        ("gpkg", UTM42),
        ("shp.zip", "EPSG:4326"),
        ("shp.zip", UTM42),
    ],
)
def test_import_spatial_file(fresh: CliDb, tmp_path: Path, kind: str, crs: str) -> None:
    rows = good_rows() if crs == "EPSG:4326" else utm_rows()
    path = tmp_path / f"licences.{'zip' if kind == 'shp.zip' else kind}"
    writer = {"geojson": write_geojson, "gpkg": write_gpkg, "shp.zip": write_zipped_shapefile}
    writer[kind](rows, path, crs)

    result = cli(fresh, "import", "licences", path)

    assert result.exit_code == 0, _out(result)
    assert f"imported {len(rows)} of {len(rows)} licences, skipped 0" in result.stdout
    check_register(fresh, rows, crs)
    submitted = {r["submitted_crs"] for r in fresh.rows("SELECT submitted_crs FROM licences")}
    assert submitted == ({"OGC:CRS84"} if crs == "EPSG:4326" else {UTM42})


def test_import_geojson_with_declared_utm_crs(fresh: CliDb, tmp_path: Path) -> None:
    """A GeoJSON file in UTM 42N that declares its CRS (the old ``crs`` member) is reprojected."""
    rows = utm_rows()
    path = write_geojson(rows, tmp_path / "utm.geojson", UTM42)
    assert "32642" in json.loads(path.read_text())["crs"]["properties"]["name"]

    result = cli(fresh, "import", "licences", path)

    assert result.exit_code == 0, _out(result)
    check_register(fresh, rows, UTM42)


def test_import_csv_with_wkt_lonlat(fresh: CliDb, tmp_path: Path) -> None:
    rows = good_rows()
    path = write_csv(rows, tmp_path / "licences.csv")

    result = cli(fresh, "import", "licences", path)

    assert result.exit_code == 0, _out(result)
    check_register(fresh, rows, "EPSG:4326")


def test_import_csv_with_wkt_and_crs_option(fresh: CliDb, tmp_path: Path) -> None:
    rows = utm_rows()
    path = write_csv(rows, tmp_path / "utm.csv")

    result = cli(fresh, "import", "licences", path, "--crs", UTM42)

    assert result.exit_code == 0, _out(result)
    check_register(fresh, rows, UTM42)
    assert fresh.scalar("SELECT count(DISTINCT submitted_crs) FROM licences") == 1
    assert fresh.scalar("SELECT min(submitted_crs) FROM licences") == UTM42


def test_csv_in_utm_without_crs_is_refused(fresh: CliDb, tmp_path: Path) -> None:
    """Easting/northing read as lon/lat: every row refused, nothing written."""
    rows = utm_rows()
    path = write_csv(rows, tmp_path / "utm.csv")

    result = cli(fresh, "import", "licences", path)

    assert result.exit_code == 1
    for i in range(1, len(rows) + 1):
        assert f"row {i} " in _out(result)
    assert f"{len(rows)} of {len(rows)} rows rejected" in _out(result)
    assert all(n == 0 for n in fresh.written().values())


# --------------------------------------------------------------------- bad rows


def bad_rows() -> tuple[list[dict[str, Any]], dict[int, tuple[str, str]]]:
    """Good rows with four bad ones; returns rows and {row number: (field, reason words)}."""
    rows = good_rows()
    lon, lat = 66.9, 29.2  # Balochistan
    bowtie = Polygon([(lon, lat), (lon + 0.02, lat + 0.02), (lon + 0.02, lat), (lon, lat + 0.02)])
    bad = {
        2: dict(rows[1], geometry=bowtie, remarks="bad: bowtie", licence_no=None),
        4: dict(rows[3], geometry=rect(65.70, 31.60), remarks="bad: Kandahar", licence_no=None),
        5: dict(rows[4], licence_type="gold_rush_permit", remarks="bad: type", licence_no=None),
        7: dict(rows[6], granted_on="01.02.2015", remarks="bad: date", licence_no=None),
    }
    reasons = {
        2: ("geometry", "self-intersection"),
        4: ("geometry", "outside Pakistan"),
        5: ("licence_type", "unknown licence type"),
        7: ("granted_on", "ISO date"),
    }
    out = []
    for i, row in enumerate(rows, start=1):
        out.append(bad.get(i, row))
    return out, reasons


def _good_only(rows: list[dict[str, Any]], reasons: dict[int, Any]) -> list[dict[str, Any]]:
    return [r for i, r in enumerate(rows, start=1) if i not in reasons]


def test_bad_rows_refuse_the_whole_file(fresh: CliDb, tmp_path: Path) -> None:
    rows, reasons = bad_rows()
    path = write_geojson(rows, tmp_path / "mixed.geojson")

    result = cli(fresh, "import", "licences", path)

    assert result.exit_code == 1, _out(result)
    out = _out(result)
    for row, (field, words) in reasons.items():
        line = next((ln for ln in out.splitlines() if ln.startswith(f"row {row} ")), None)
        assert line is not None, f"row {row} not reported:\n{out}"
        assert f"[{field}]" in line, line
        assert words.lower() in line.lower(), line
    good = set(range(1, len(rows) + 1)) - set(reasons)
    assert not any(ln.startswith(f"row {i} ") for i in good for ln in out.splitlines())
    assert f"{len(reasons)} of {len(rows)} rows rejected; nothing was imported" in out
    assert all(n == 0 for n in fresh.written().values()), fresh.written()


def test_skip_invalid_writes_the_good_rows(fresh: CliDb, tmp_path: Path) -> None:
    rows, reasons = bad_rows()
    path = write_geojson(rows, tmp_path / "mixed.geojson")
    report = tmp_path / "rejected.jsonl"

    result = cli(fresh, "import", "licences", path, "--skip-invalid", "--report", report)

    assert result.exit_code == 0, _out(result)
    good = _good_only(rows, reasons)
    assert f"imported {len(good)} of {len(rows)} licences, skipped {len(reasons)}" in _out(result)
    for row in reasons:
        assert f"row {row} " in _out(result)
    check_register(fresh, good, "EPSG:4326")
    lines = [json.loads(ln) for ln in report.read_text().splitlines()]
    assert [r["row"] for r in lines] == sorted(reasons)
    for r in lines:
        field, words = reasons[r["row"]]
        assert r["field"] == field
        assert words.lower() in r["detail"].lower()
        assert r["code"]


def test_skip_invalid_leaves_no_party_of_a_rejected_row(fresh: CliDb, tmp_path: Path) -> None:
    """A holder named only by a rejected row is not entered as a party."""
    rows, _ = bad_rows()
    path = write_geojson(rows, tmp_path / "mixed.geojson")

    result = cli(fresh, "import", "licences", path, "--skip-invalid")

    assert result.exit_code == 0, _out(result)
    orphans = fresh.rows(
        "SELECT name FROM parties p WHERE NOT EXISTS "
        "(SELECT 1 FROM licences l WHERE l.holder_id = p.id)"
    )
    assert orphans == []


def test_report_file_lists_every_rejection(fresh: CliDb, tmp_path: Path) -> None:
    """More rejections than the screen shows: the report still has every one."""
    rows = []
    for i in range(40):
        row = dict(good_rows()[0], licence_no=None, remarks=f"r{i}")
        row["licence_type"] = "no_such_type" if i % 3 else "exploration_licence"
        row["geometry"] = rect(67.5 + 0.03 * (i % 10), 30.6 + 0.03 * (i // 10), 0.01, 0.01)
        rows.append(row)
    path = write_gpkg(rows, tmp_path / "many.gpkg")
    report = tmp_path / "report.jsonl"

    result = cli(fresh, "import", "licences", path, "--report", report)

    assert result.exit_code == 1
    expected = [i + 1 for i in range(40) if i % 3]
    assert len(expected) > 20  # more than the CLI prints
    assert "more (all in" in _out(result)
    lines = [json.loads(ln) for ln in report.read_text().splitlines()]
    assert [r["row"] for r in lines] == expected
    assert all(r["field"] == "licence_type" for r in lines)
    assert fresh.count("licences") == 0


def test_duplicate_licence_no_in_file_and_register(fresh: CliDb, tmp_path: Path) -> None:
    rows = good_rows()
    first = write_geojson(rows[:2], tmp_path / "first.geojson")
    assert cli(fresh, "import", "licences", first).exit_code == 0
    again = write_geojson(rows[1:4], tmp_path / "again.geojson")

    result = cli(fresh, "import", "licences", again)

    assert result.exit_code == 1
    assert "row 1 [properties.licence_no]" in _out(result)
    assert "already in the register" in _out(result)
    assert fresh.count("licences") == 2


def test_impossible_date_is_a_row_rejection(fresh: CliDb, tmp_path: Path) -> None:
    """A date-shaped but impossible date (31 February) is that row's fault, not the file's."""
    rows = good_rows()
    rows[6] = dict(rows[6], granted_on="2015-02-31")
    path = write_geojson(rows, tmp_path / "feb31.geojson")

    result = cli(fresh, "import", "licences", path, "--skip-invalid")

    out = _out(result)
    assert "cannot read" not in out
    line = next((ln for ln in out.splitlines() if ln.startswith("row 7 ")), None)
    assert line is not None, out
    assert "[granted_on]" in line
    assert result.exit_code == 0, out
    assert fresh.count("licences") == len(rows) - 1


# --------------------------------------------------------------- bad files


def test_missing_file(fresh: CliDb, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.geojson"
    result = cli(fresh, "import", "licences", missing)
    assert result.exit_code == 1
    assert f"error: no such file: {missing}" in _out(result)
    assert "Traceback" not in _out(result)
    assert fresh.count("licences") == 0


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("broken.geojson", b'{"type": "FeatureCollection", "features": [ {"type": '),
        ("broken.gpkg", b"this is not a GeoPackage at all\n" * 10),
        ("broken.zip", b"PK\x03\x04 not really a zip"),
    ],
)
def test_unreadable_file(fresh: CliDb, tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = cli(fresh, "import", "licences", path)
    assert result.exit_code == 1, _out(result)
    assert f"error: cannot read {name}" in _out(result)
    assert "Traceback" not in _out(result)
    assert fresh.count("licences") == 0


def test_csv_without_wkt_column(fresh: CliDb, tmp_path: Path) -> None:
    path = tmp_path / "nogeom.csv"
    path.write_text("licence_type,minerals,holder\nmining_lease,Coal,X Ltd\n")
    result = cli(fresh, "import", "licences", path)
    assert result.exit_code == 1
    assert "needs a WKT column" in _out(result)


# ---------------------------------------------------------- sample, export, status


@pytest.fixture(scope="module")
def sample_db(make_db: Callable[..., CliDb]) -> CliDb:
    """A database with only the schema: ``load-sample`` loads provinces and licences."""
    db = make_db(provinces=False)
    result = cli(db, "load-sample")
    assert result.exit_code == 0, _out(result)
    db.load_output = _out(result)  # type: ignore[attr-defined]
    return db


def test_load_sample(sample_db: CliDb) -> None:
    n = len(json.loads(SAMPLE_LICENCES.read_text())["features"])
    assert "loaded 7 provinces and territories" in sample_db.load_output  # type: ignore[attr-defined]
    assert f"imported {n} of {n} licences, skipped 0" in sample_db.load_output  # type: ignore[attr-defined]
    assert sample_db.count("jurisdictions") == 7
    assert sample_db.count("licences") == n
    assert sample_db.count("licence_events") == n
    assert sample_db.scalar("SELECT count(DISTINCT licence_no) FROM licences") == n


def test_load_sample_loads_the_synthetic_raster(sample_db: CliDb) -> None:
    assert "loaded raster aeromag_chagai_synthetic (synthetic)" in sample_db.load_output  # type: ignore[attr-defined]
    [row] = sample_db.rows(
        "SELECT slug, name, synthetic, storage, raster->>'path' AS path, raster->>'units' AS units "
        "FROM survey_layers WHERE storage = 'raster'"
    )
    assert row["synthetic"] is True and row["slug"] == "aeromag_chagai_synthetic"
    assert "SYNTHETIC" in row["name"] and row["units"] == "nT"
    assert (raster_dir(sample_db.url) / row["path"]).is_file()


def test_load_sample_if_empty_does_nothing_the_second_time(sample_db: CliDb) -> None:
    before = sample_db.written()
    result = cli(sample_db, "load-sample", "--if-empty")
    assert result.exit_code == 0, _out(result)
    assert "sample data already loaded" in _out(result)
    assert sample_db.written() == before
    assert sample_db.count("survey_layers") == 5  # four vector layers and the grid


def test_load_sample_if_empty_brings_in_a_missing_survey_layer(sample_db: CliDb) -> None:
    assert cli(sample_db, "survey", "delete", "districts_geoboundaries").exit_code == 0
    licences = sample_db.count("licences")
    result = cli(sample_db, "load-sample", "--if-empty")
    assert result.exit_code == 0, _out(result)
    assert "loaded survey layer districts_geoboundaries: 126" in _out(result)
    assert "provinces" not in _out(result)  # the register itself is left alone
    assert sample_db.count("licences") == licences
    assert sample_db.count("survey_layers") == 5


def test_load_sample_matches_the_file(sample_db: CliDb) -> None:
    features = json.loads(SAMPLE_LICENCES.read_text())["features"]
    stored = {
        r["licence_no"]: r
        for r in sample_db.rows(
            "SELECT l.licence_no, l.licence_type, l.status, j.name AS province, l.area_km2 "
            "FROM licences l JOIN jurisdictions j ON j.code = l.province_code"
        )
    }
    for f in features:
        p = f["properties"]
        r = stored[p["licence_no"]]
        assert (r["licence_type"], r["status"], r["province"]) == (
            p["licence_type"],
            p["status"],
            p["province"],
        )
        assert r["area_km2"] == pytest.approx(geodesic_km2(shape(f["geometry"])), rel=1e-4)


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".csv"])
def test_export_round_trips_the_count(sample_db: CliDb, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"register{suffix}"
    result = cli(sample_db, "export", out)
    n = sample_db.count("licences")
    assert result.exit_code == 0, _out(result)
    assert f"exported {n} licences to {out}" in result.stdout
    if suffix == ".csv":
        table = pd.read_csv(out)
        assert len(table) == n
        assert shapely.from_wkt(table["wkt"].iloc[0]).geom_type == "MultiPolygon"
    else:
        back = gpd.read_file(out, engine="pyogrio")
        assert len(back) == n
        assert set(back["licence_no"]) == {
            r["licence_no"] for r in sample_db.rows("SELECT licence_no FROM licences")
        }


def test_export_reimports(make_db: Callable[..., CliDb], tmp_path: Path) -> None:
    """What ``export`` writes, ``import licences`` reads back into an empty register."""
    source = make_db()
    rows = good_rows()
    assert (
        cli(source, "import", "licences", write_geojson(rows, tmp_path / "in.geojson")).exit_code
        == 0
    )
    out = tmp_path / "out.gpkg"
    assert cli(source, "export", out).exit_code == 0
    target = make_db()
    result = cli(target, "import", "licences", out)
    assert result.exit_code == 0, _out(result)
    assert target.count("licences") == len(rows)
    pairs = "SELECT licence_no, status, area_km2 FROM licences ORDER BY licence_no"
    assert target.rows(pairs) == source.rows(pairs)


def test_export_leaves_out_applications_held_back(
    make_db: Callable[..., CliDb], tmp_path: Path
) -> None:
    db = make_db()
    rows = good_rows()
    assert (
        cli(db, "import", "licences", write_geojson(rows, tmp_path / "in.geojson")).exit_code == 0
    )
    held = db.scalar("SELECT min(id) FROM licences WHERE status = 'applied'")
    assert held is not None
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE licences SET published = false WHERE id = :id"), {"id": held})
    out = tmp_path / "out.geojson"
    assert cli(db, "export", out).exit_code == 0
    back = gpd.read_file(out, engine="pyogrio")
    assert len(back) == len(rows) - 1
    assert held not in set(back["id"])


def test_export_unknown_format(sample_db: CliDb, tmp_path: Path) -> None:
    result = cli(sample_db, "export", tmp_path / "register.kml")
    assert result.exit_code == 1
    assert "unknown export format" in _out(result)


def test_db_status_with_database_url(sample_db: CliDb) -> None:
    result = cli(sample_db, "db", "status")
    assert result.exit_code == 0, _out(result)
    assert json.loads(result.stdout) == {"database_url": sample_db.url, "managed": False}
    assert sample_db.url in result.stdout


def test_installed_entry_point_db_status(sample_db: CliDb) -> None:
    """The installed ``cadastre`` script, as a user runs it."""
    exe = Path(sys.executable).parent / "cadastre"
    env = {**os.environ, "CADASTRE_DATABASE_URL": sample_db.url}
    proc = subprocess.run(
        [str(exe), "db", "status"], capture_output=True, text=True, env=env, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["database_url"] == sample_db.url


def test_a_file_with_more_features_than_allowed_is_refused_whole(
    fresh: CliDb, tmp_path: Path
) -> None:
    path = write_geojson(good_rows(), tmp_path / "eight.geojson")
    url = fresh.url
    env = {
        "CADASTRE_DATABASE_URL": url,
        "CADASTRE_RASTER_DIR": str(raster_dir(url)),
        "CADASTRE_MAX_IMPORT_FEATURES": "5",
    }
    result = runner.invoke(app, ["import", "licences", str(path)], env=env)
    assert result.exit_code == 1, _out(result)
    assert "the file holds 8 features; at most 5" in _out(result)
    assert "CADASTRE_MAX_IMPORT_FEATURES" in _out(result)
    assert all(n == 0 for n in fresh.written().values()), fresh.written()
    env["CADASTRE_MAX_IMPORT_FEATURES"] = "8"
    assert runner.invoke(app, ["import", "licences", str(path)], env=env).exit_code == 0
