"""The shipped synthetic sample: reproducible byte for byte, and every title well-formed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import shapely
from shapely.geometry import shape

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
SAMPLE_LICENCES = SAMPLE / "licences_synthetic.geojson"


def _features(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8"))["features"]


@pytest.fixture(scope="module")
def licences() -> list[tuple[dict[str, Any], Any]]:
    return [(f["properties"], shape(f["geometry"])) for f in _features(SAMPLE_LICENCES)]


@pytest.mark.slow
def test_generator_reproduces_the_sample_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "licences.geojson"
    proc = subprocess.run(
        [sys.executable, str(SAMPLE / "make_licences.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == SAMPLE_LICENCES.read_bytes()


def test_sample_has_the_default_count(licences: list[tuple[dict[str, Any], Any]]) -> None:
    assert len(licences) == 3000
    numbers = [p["licence_no"] for p, _ in licences]
    assert len(set(numbers)) == len(numbers)


def test_every_sample_shape_is_valid_and_ccw(licences: list[tuple[dict[str, Any], Any]]) -> None:
    bad = []
    for props, geom in licences:
        reason = shapely.is_valid_reason(geom)
        if geom.geom_type not in ("Polygon", "MultiPolygon") or reason != "Valid Geometry":
            bad.append((props["licence_no"], geom.geom_type, reason))
            continue
        parts = geom.geoms if geom.geom_type == "MultiPolygon" else [geom]
        for part in parts:
            if not part.exterior.is_ccw or any(hole.is_ccw for hole in part.interiors):
                bad.append((props["licence_no"], "orientation", "exterior CW or hole CCW"))
    assert bad == []


def test_every_sample_shape_is_inside_pakistan_and_its_province(
    licences: list[tuple[dict[str, Any], Any]],
) -> None:
    country = shape(_features(SAMPLE / "pakistan_admin0.geojson")[0]["geometry"])
    provinces = {
        f["properties"]["province"]: shape(f["geometry"])
        for f in _features(SAMPLE / "pakistan_admin1_provinces.geojson")
    }
    shapely.prepare(country)
    for poly in provinces.values():
        shapely.prepare(poly)
    outside = [p["licence_no"] for p, g in licences if not country.contains(g)]
    assert outside == []
    misplaced = [p["licence_no"] for p, g in licences if not provinces[p["province"]].contains(g)]
    assert misplaced == []
