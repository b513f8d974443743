"""``cadastre survey import | list | delete`` and the sample survey layers.

The CLI commits, so each test gets a database of its own in the test cluster
(the factory of tests/cli/test_import.py).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.test_import import CliDb, cli, make_db  # noqa: F401 (fixture)
from tests.survey.test_vector_upload import samples, write_gpkg, write_multilayer_gpkg

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"


@pytest.fixture
def cli_db(make_db: Callable[..., CliDb]) -> CliDb:  # noqa: F811 (the imported fixture)
    """An empty database for one test (load-sample loads the provinces itself)."""
    return make_db(provinces=False)


ARGS = (
    "--slug",
    "rd_samples",
    "--name",
    "Reko Diq soil samples",
    "--kind",
    "geochemistry",
    "--source",
    "test survey",
    "--licence",
    "CC BY 4.0",
)


def test_survey_import_shows_progress_and_commits(cli_db: CliDb, tmp_path: Path) -> None:
    path = write_gpkg(samples(), tmp_path)
    result = cli(cli_db, "survey", "import", path, *ARGS)
    assert result.exit_code == 0, result.output
    assert "loading rd_samples" in result.output  # the tqdm bar (stderr)
    assert "4/4" in result.output
    assert "loaded survey layer rd_samples: 4 Point features from EPSG:4326" in result.output
    assert cli_db.scalar("SELECT feature_count FROM survey_layers WHERE slug = 'rd_samples'") == 4
    assert cli_db.count("survey_features") == 4

    again = cli(cli_db, "survey", "import", path, *ARGS)
    assert again.exit_code == 1
    assert "'rd_samples' already exists" in again.output
    replaced = cli(cli_db, "survey", "import", path, *ARGS, "--replace")
    assert replaced.exit_code == 0, replaced.output
    assert cli_db.count("survey_features") == 4
    assert cli_db.scalar("SELECT public FROM survey_layers WHERE slug = 'rd_samples'") is False

    listing = cli(cli_db, "survey", "list")
    assert "rd_samples\tgeochemistry\tvector\trestricted\t4\tReko Diq soil samples" in (
        listing.output
    )
    public = cli(cli_db, "survey", "visibility", "rd_samples", "--public")
    assert public.exit_code == 0, public.output
    assert cli_db.scalar("SELECT public FROM survey_layers WHERE slug = 'rd_samples'") is True
    assert "\tvector\tpublic\t4\t" in cli(cli_db, "survey", "list").output
    cli(cli_db, "survey", "visibility", "rd_samples", "--restricted")
    assert cli_db.scalar("SELECT public FROM survey_layers WHERE slug = 'rd_samples'") is False
    assert cli(cli_db, "survey", "visibility", "nothing_here", "--public").exit_code == 1
    deleted = cli(cli_db, "survey", "delete", "rd_samples")
    assert deleted.exit_code == 0, deleted.output
    assert cli_db.count("survey_layers") == 0
    assert cli(cli_db, "survey", "delete", "rd_samples").exit_code == 1


def test_survey_import_refuses_a_bad_file_and_writes_nothing(cli_db: CliDb, tmp_path: Path) -> None:
    path = tmp_path / "utm.csv"
    path.write_text("name,x,y\nA,330000,3260000\n")
    result = cli(cli_db, "survey", "import", path, *ARGS)
    assert result.exit_code == 1
    assert "declares no CRS" in result.output
    assert cli_db.count("survey_layers") == 0
    ok = cli(cli_db, "survey", "import", path, *ARGS, "--crs", "EPSG:32642")
    assert ok.exit_code == 0, ok.output


def test_survey_import_of_a_multi_layer_geopackage_takes_the_layer_named(
    cli_db: CliDb, tmp_path: Path
) -> None:
    path = write_multilayer_gpkg(tmp_path)
    args = ("--slug", "chagai_geology", "--name", "Chagai geology", "--kind", "geology")
    rest = ("--source", "test survey", "--licence", "CC BY 4.0")
    unnamed = cli(cli_db, "survey", "import", path, *args, *rest)
    assert unnamed.exit_code == 1
    assert "holds 2 layers (soil_samples, geology_units); name one with layer" in unnamed.output
    assert cli_db.count("survey_layers") == 0
    wrong = cli(cli_db, "survey", "import", path, *args, *rest, "--layer", "faults")
    assert wrong.exit_code == 1
    assert "has no layer 'faults'; its layers: soil_samples, geology_units" in wrong.output
    assert cli_db.count("survey_layers") == 0
    named = cli(cli_db, "survey", "import", path, *args, *rest, "--layer", "geology_units")
    assert named.exit_code == 0, named.output
    assert "loaded survey layer chagai_geology: 2 Polygon features" in named.output
    rows = cli_db.rows(
        "SELECT f.properties FROM survey_features f JOIN survey_layers l ON l.id = f.layer_id "
        "WHERE l.slug = 'chagai_geology' ORDER BY f.fid"
    )
    assert [r["properties"] for r in rows] == [
        {"unit": "Sinjrani volcanics", "age_ma": 95.5},
        {"unit": "Saindak formation", "age_ma": 40.0},
    ]


def test_load_sample_catalogues_the_survey_layers(cli_db: CliDb) -> None:
    result = cli(cli_db, "load-sample")
    assert result.exit_code == 0, result.output
    rows = {
        r["slug"]: r
        for r in cli_db.rows(
            "SELECT slug, kind, synthetic, public, name, feature_count, geometry_type "
            "FROM survey_layers"
        )
    }
    # Open data (USGS, GEM, geoBoundaries) and invented demo data: all public, so the public
    # map shows them.
    assert {slug: r["public"] for slug, r in rows.items()} == {
        "districts_geoboundaries": True,
        "mineral_occurrences_usgs": True,
        "active_faults_gem2017": True,
        "geology_synthetic": True,
        "aeromag_chagai_synthetic": True,
    }
    assert rows["mineral_occurrences_usgs"]["kind"] == "occurrences"
    assert rows["mineral_occurrences_usgs"]["feature_count"] == 122
    assert rows["active_faults_gem2017"]["name"] == "Active faults (GEM 2017)"
    assert rows["active_faults_gem2017"]["feature_count"] == 212
    geology = rows["geology_synthetic"]
    assert geology["synthetic"] is True
    assert "SYNTHETIC" in geology["name"]
    assert geology["geometry_type"] == "Polygon"
    assert geology["feature_count"] == 30
    districts = rows["districts_geoboundaries"]
    assert districts["feature_count"] == 126 and districts["synthetic"] is False
    assert districts["geometry_type"] == "MultiPolygon"


def test_geology_generator_reproduces_the_sample(tmp_path: Path) -> None:
    out = tmp_path / "geology.geojson"
    proc = subprocess.run(
        [sys.executable, str(SAMPLE / "make_geology_synthetic.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == (SAMPLE / "geology_synthetic.geojson").read_bytes()
