"""``cadastre raster import | list | delete`` and the shipped synthetic grid.

The CLI commits, so it runs against a database of its own in the test cluster,
with its raster folder in tmp_path.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import Result
from sqlalchemy import text
from typer.testing import CliRunner

from cadastre.cli import app
from cadastre.db.cluster import LocalCluster
from cadastre.db.engine import make_engine
from cadastre.db.migrate import upgrade
from tests.raster.conftest import write_raster

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_RASTER = ROOT / "sample_data" / "aeromag_chagai_synthetic.tif"
runner = CliRunner()


@pytest.fixture(scope="module")
def cli_url(cluster: LocalCluster) -> str:
    name = f"raster_cli_{uuid.uuid4().hex[:10]}"
    cluster.create_database(name)
    url = cluster.url(name)
    upgrade(url)
    return url


@pytest.fixture
def run(cli_url: str, tmp_path: Path) -> Iterator[tuple[Path, Callable[..., Result]]]:
    folder = tmp_path / "rasters"

    def invoke(*args: str | Path) -> Result:
        env = {"CADASTRE_DATABASE_URL": cli_url, "CADASTRE_RASTER_DIR": str(folder)}
        return runner.invoke(app, [str(a) for a in args], env=env)

    yield folder, invoke
    invoke("raster", "delete", "cli_grid")


def _count(url: str) -> int:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM survey_layers")).scalar_one())
    finally:
        engine.dispose()


def test_raster_import_list_delete(
    run: tuple[Path, Callable[..., Result]], cli_url: str, tmp_path: Path
) -> None:
    folder, invoke = run
    src = write_raster(tmp_path / "grid.tif")
    args = ["raster", "import", src, "--slug", "cli_grid", "--name", "CLI grid"]
    args += ["--kind", "geophysics", "--source", "tests", "--licence", "CC0-1.0", "--units", "nT"]
    result = invoke(*args, "--synthetic")
    assert result.exit_code == 0, result.output
    assert "writing Cloud-Optimised GeoTIFF" in result.output
    assert "imported cli_grid: 300 x 200 px, 1 band(s) float32, EPSG:32641" in result.output
    listed = invoke("raster", "list")
    line = "cli_grid\tgeophysics\t300x200\tEPSG:32641\tnT\trestricted\tCLI grid SYNTHETIC"
    assert line in listed.output

    again = invoke(*args)
    assert again.exit_code == 1
    assert "'cli_grid' already exists" in again.output
    replaced = invoke(*args, "--replace", "--public")
    assert replaced.exit_code == 0, replaced.output
    assert len(list(folder.iterdir())) == 1
    assert "\tnT\tpublic\tCLI grid" in invoke("raster", "list").output

    assert invoke("raster", "delete", "cli_grid").exit_code == 0
    assert list(folder.iterdir()) == []
    assert _count(cli_url) == 0


def test_raster_import_refusal_exits_1_naming_the_problem(
    run: tuple[Path, Callable[..., Result]], cli_url: str, tmp_path: Path
) -> None:
    folder, invoke = run
    src = write_raster(tmp_path / "nocrs.tif", crs=None)
    args = ["raster", "import", src, "--slug", "cli_grid", "--name", "x", "--kind", "other"]
    result = invoke(*args, "--source", "s", "--licence", "l")
    assert result.exit_code == 1
    assert "no coordinate reference system" in result.output
    assert not folder.exists() or list(folder.iterdir()) == []
    assert _count(cli_url) == 0


@pytest.mark.slow
def test_generator_reproduces_the_sample_raster(tmp_path: Path) -> None:
    out = tmp_path / "aeromag.tif"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "sample_data" / "make_aeromag_synthetic.py"), "--out", out],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    with rasterio.open(out) as made, rasterio.open(SAMPLE_RASTER) as shipped:
        assert made.profile == shipped.profile
        np.testing.assert_array_equal(made.read(), shipped.read())


def test_sample_raster_is_small_synthetic_and_over_chagai() -> None:
    assert SAMPLE_RASTER.stat().st_size < 2 * 1024 * 1024
    with rasterio.open(SAMPLE_RASTER) as ds:
        assert ds.crs.to_epsg() == 32641
        assert ds.tags()["SYNTHETIC"].startswith("yes")
        assert ds.nodata == -99999.0
        data = ds.read(1, masked=True)
        assert 0 < data.mask.sum() < data.size // 4  # a nodata border and a gap, mostly data
        # The strongest anomaly is the dipole under Reko Diq (62.08 E, 29.12 N).
        row, col = np.unravel_index(np.argmax(data), data.shape)
        x, y = ds.xy(row, col)
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(32641, 4326, always_xy=True).transform(x, y)
    assert abs(lon - 62.08) < 0.15 and abs(lat - 29.12) < 0.15
