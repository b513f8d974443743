"""Raster import: a valid COG and a full catalogue entry, or a refusal that leaves nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import pytest
import rasterio
from rasterio.transform import Affine
from rio_cogeo.cogeo import cog_validate
from shapely.geometry import Point, shape
from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import IntegrityError

from cadastre.db.tables import survey_layers
from cadastre.errors import Conflict, InvalidInput, RasterRefused
from cadastre.survey.raster import import_raster
from tests.conftest import SavepointDatabase
from tests.raster.conftest import (
    CRS,
    HEIGHT,
    NODATA,
    PIXEL,
    WIDTH,
    X0,
    Y1,
    make_values,
    meta,
    write_raster,
)


def _rows(conn: Connection) -> int:
    return int(conn.scalar(select(func.count()).select_from(survey_layers)) or 0)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_import_writes_a_valid_cog_with_tiles_and_overviews(
    db: SavepointDatabase, raster_dir: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    big = rng.normal(0, 1, (1100, 1500)).astype(np.float32)
    src = write_raster(tmp_path / "big.tif", big)
    entry = import_raster(db, raster_dir, src, meta("bigone"), actor="t")
    path = raster_dir / entry["raster"]["path"]
    valid, errors, _warnings = cog_validate(str(path), quiet=True)
    assert valid, errors
    with rasterio.open(path) as ds:
        assert ds.profile["tiled"]
        assert ds.block_shapes[0] == (512, 512)
        assert ds.overviews(1) == [2, 4]
        assert ds.compression is not None and ds.compression.value == "DEFLATE"
        np.testing.assert_array_equal(ds.read(1), big)  # lossless


def test_catalogue_entry_describes_the_raster(
    imported: dict[str, Any], conn: Connection, raster_dir: Path
) -> None:
    info = imported["raster"]
    assert info["path"] == _files(raster_dir)[0]
    assert not Path(info["path"]).is_absolute()
    assert info["crs"] == CRS
    assert info["resolution"] == [PIXEL, PIXEL]
    assert (info["width"], info["height"], info["bands"]) == (WIDTH, HEIGHT, 1)
    assert info["dtype"] == "float32"
    assert info["nodata"] == NODATA
    assert info["units"] == "nT"
    assert info["statistics_approximate"] is False
    valid = make_values()
    valid = valid[valid != NODATA]
    stats = info["statistics"][0]
    assert stats["count"] == valid.size
    assert stats["min"] == pytest.approx(float(valid.min()))
    assert stats["max"] == pytest.approx(float(valid.max()))
    assert stats["mean"] == pytest.approx(float(valid.astype(np.float64).mean()))
    assert stats["std"] == pytest.approx(float(valid.astype(np.float64).std()))
    assert stats["percentiles"]["2"] == pytest.approx(float(np.percentile(valid, 2)))
    assert stats["percentiles"]["98"] == pytest.approx(float(np.percentile(valid, 98)))
    row = conn.execute(
        text(
            "SELECT storage, synthetic, loaded_by, ST_SRID(extent) AS srid, "
            "ST_AsText(ST_Centroid(extent)) AS c FROM survey_layers WHERE slug = 'magtest'"
        )
    ).one()
    assert (row.storage, row.synthetic, row.loaded_by, row.srid) == (
        "raster",
        False,
        "tester",
        4326,
    )
    lon, lat = pyproj.Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(
        X0 + WIDTH * PIXEL / 2, Y1 - HEIGHT * PIXEL / 2
    )
    extent = shape(imported["extent"])
    assert extent.contains(Point(lon, lat))
    assert extent.exterior.is_ccw


def _refused(
    db: SavepointDatabase, conn: Connection, raster_dir: Path, path: Path, words: str
) -> None:
    before = _rows(conn)
    with pytest.raises(RasterRefused) as info:
        import_raster(db, raster_dir, path, meta("refused"), actor="t")
    assert words in info.value.message
    assert path.name in info.value.message
    assert _rows(conn) == before
    assert _files(raster_dir) == []


def test_empty_file_is_refused(
    db: SavepointDatabase, conn: Connection, raster_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "empty.tif"
    path.write_bytes(b"")
    _refused(db, conn, raster_dir, path, "empty")


def test_unreadable_file_is_refused(
    db: SavepointDatabase, conn: Connection, raster_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "notes.tif"
    path.write_text("this is not a raster\n")
    _refused(db, conn, raster_dir, path, "not a raster GDAL can read")


def test_raster_without_crs_is_refused(
    db: SavepointDatabase, conn: Connection, raster_dir: Path, tmp_path: Path
) -> None:
    path = write_raster(tmp_path / "nocrs.tif", crs=None)
    _refused(db, conn, raster_dir, path, "no coordinate reference system")


def test_raster_without_georeferencing_is_refused(
    db: SavepointDatabase, conn: Connection, raster_dir: Path, tmp_path: Path
) -> None:
    path = write_raster(tmp_path / "nogeo.tif", transform=Affine.identity())
    _refused(db, conn, raster_dir, path, "not georeferenced")


def test_raster_outside_pakistan_is_refused(
    db: SavepointDatabase, conn: Connection, raster_dir: Path, tmp_path: Path
) -> None:
    # The same numbers in UTM zone 33N put the grid in Libya: a wrong-zone mistake.
    path = write_raster(tmp_path / "libya.tif", crs="EPSG:32633")
    _refused(db, conn, raster_dir, path, "outside Pakistan")


def test_missing_file_is_refused(
    db: SavepointDatabase, conn: Connection, raster_dir: Path, tmp_path: Path
) -> None:
    _refused(db, conn, raster_dir, tmp_path / "nowhere.tif", "no such file")


@pytest.mark.parametrize(
    ("field", "value"),
    [("slug", "Bad-Slug"), ("slug", "1abc"), ("kind", "astrology"), ("name", " ")],
)
def test_bad_metadata_is_refused_naming_the_field(
    db: SavepointDatabase, raster_dir: Path, source: Path, field: str, value: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        import_raster(db, raster_dir, source, meta(**{field: value}), actor="t")
    assert info.value.field == field
    assert _files(raster_dir) == []


def test_a_failed_catalogue_write_leaves_no_file(
    db: SavepointDatabase, conn: Connection, raster_dir: Path, source: Path
) -> None:
    # A constraint (rolled back with the test) makes the row insert fail after the COG
    # was written: the temporary file must go with the transaction.
    conn.execute(text("SET LOCAL ROLE NONE"))  # the owner alters tables, not the service
    conn.execute(
        text("ALTER TABLE survey_layers ADD CONSTRAINT test_refuse CHECK (name <> 'refuse me')")
    )
    with pytest.raises(IntegrityError):
        import_raster(db, raster_dir, source, meta(name="refuse me"), actor="t")
    assert _files(raster_dir) == []
    assert _rows(conn) == 0


def test_nul_in_a_text_field_is_refused(
    db: SavepointDatabase, raster_dir: Path, source: Path
) -> None:
    with pytest.raises(InvalidInput) as info:
        import_raster(db, raster_dir, source, meta(units="n\x00T"), actor="t")
    assert info.value.field == "units"


def test_existing_slug_is_a_conflict_naming_it(
    db: SavepointDatabase, raster_dir: Path, source: Path, imported: dict[str, Any]
) -> None:
    with pytest.raises(Conflict) as info:
        import_raster(db, raster_dir, source, meta(), actor="t")
    assert "'magtest'" in info.value.message
    assert _files(raster_dir) == [imported["raster"]["path"]]


def test_replace_swaps_file_and_row(
    db: SavepointDatabase,
    conn: Connection,
    raster_dir: Path,
    tmp_path: Path,
    imported: dict[str, Any],
) -> None:
    values = make_values(seed=99)
    values[values != NODATA] += 1000
    other = write_raster(tmp_path / "other.tif", values)
    again = import_raster(db, raster_dir, other, meta(name="v2"), actor="t2", replace=True)
    assert again["raster"]["path"] != imported["raster"]["path"]
    assert _files(raster_dir) == [again["raster"]["path"]]
    assert again["name"] == "v2"
    assert again["raster"]["statistics"][0]["min"] > 900
    assert _rows(conn) == 1


def test_vector_layer_slug_is_not_replaced(
    db: SavepointDatabase, conn: Connection, raster_dir: Path, source: Path
) -> None:
    conn.execute(
        survey_layers.insert().values(
            slug="faults",
            name="Faults",
            kind="geology",
            storage="vector",
            source="s",
            licence="l",
            loaded_by="t",
        )
    )
    with pytest.raises(Conflict) as info:
        import_raster(db, raster_dir, source, meta("faults"), actor="t", replace=True)
    assert "vector" in info.value.message
    assert _files(raster_dir) == []
