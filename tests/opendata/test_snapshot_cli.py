"""`cadastre opendata snapshot`: a dated snapshot with checksums a mirror can verify."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pyogrio

from tests.cli.test_import import CliDb, cli, fresh, good_rows, make_db, write_geojson

__all__ = ["fresh", "make_db"]  # fixtures used by the tests below


def test_snapshot_command(fresh: CliDb, tmp_path: Path) -> None:
    rows = good_rows()
    imported = cli(
        fresh, "import", "licences", write_geojson(rows, tmp_path / "in.geojson", "EPSG:4326")
    )
    assert imported.exit_code == 0, imported.output

    result = cli(fresh, "opendata", "snapshot", tmp_path / "mirror", "--as-of", "2030-06-30")

    assert result.exit_code == 0, result.output
    day = tmp_path / "mirror" / "2030-06-30"
    check = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=day, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    published = fresh.scalar("SELECT count(*) FROM licences WHERE published")
    assert len(pyogrio.read_dataframe(day / "licences.gpkg")) == published == len(rows)
    assert f"{published} licences written" in result.stdout
    # A damaged copy fails the check.
    with (day / "licences.csv").open("a") as fh:
        fh.write("tampered\n")
    check = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=day, capture_output=True, text=True, check=False
    )
    assert check.returncode != 0


def test_snapshot_command_refuses_a_bad_date(fresh: CliDb, tmp_path: Path) -> None:
    result = cli(fresh, "opendata", "snapshot", tmp_path, "--as-of", "someday")
    assert result.exit_code == 1
    assert "--as-of" in result.output
