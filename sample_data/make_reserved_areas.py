#!/usr/bin/env python3
"""Generate SYNTHETIC reserved and closed areas for Pakistan.

The output is sample data for tests and demos of the encumbrance check (titles
against reserved areas). It is NOT a real designation: no open protected-area
layer for Pakistan could be shipped (the WDPA terms exclude redistribution), so
every area here is invented. Names say "Synthetic ..."; where an area is named
after a well-known place, only its rough position is borrowed from that place.

Kinds: ``protected``, ``forest``, ``strategic``, ``religious`` and
``auction_reserved`` (Khyber Pakhtunkhwa reserves "proved mineral" areas for
auction). Each area lies inside one province polygon of the geoBoundaries sample,
at least 300 m from that province's boundary, and several are placed over titles
of ``licences_synthetic.geojson`` so that the overlap check has something to find.

The generator is deterministic (a fixed list of places and ``numpy`` default_rng
with a fixed seed for the outline wobble): it always writes a byte-identical
GeoJSON file (RFC 7946, EPSG:4326 lon/lat, one feature per line, sorted keys,
6 decimals), and fails if any guarantee below does not hold.

Usage (from the repository root)::

    python sample_data/make_reserved_areas.py
    python sample_data/make_reserved_areas.py --out sample_data/reserved_areas_synthetic.geojson

Needs numpy, shapely (>= 2.0) and pyproj.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from pyproj import Geod, Transformer
from shapely.geometry import Polygon, mapping, shape
from shapely.geometry.polygon import orient

HERE = Path(__file__).resolve().parent
PROVINCES_FILE = HERE / "pakistan_admin1_provinces.geojson"
LICENCES_FILE = HERE / "licences_synthetic.geojson"
DEFAULT_OUT = HERE / "reserved_areas_synthetic.geojson"

SEED = 20261201  # only for the wobble of the irregular outlines
DECIMALS = 6
CLEARANCE_M = 300.0  # minimum distance of every area from its province boundary
MIN_KM2, MAX_KM2 = 5.0, 800.0
GRID_DEG = 1.0 / 120.0  # 30 arc-seconds, for the graticule-aligned blocks
KINDS = ("protected", "forest", "strategic", "religious", "auction_reserved")
SOURCE = "synthetic sample data (sample_data/make_reserved_areas.py), not a real designation"

# Requirements on the shipped file, checked after generation.
MIN_PER_KIND = 2
MIN_OVERLAPPING_AREAS = 5  # areas overlapping at least one licence
MIN_CONTAINING_AREAS = 1  # areas wholly containing at least one licence
OVERLAP_TOLERANCE_KM2 = 1e-6  # 1 m²; shapes that only touch do not overlap


@dataclass(frozen=True)
class Spec:
    """One invented area: where, how big, what shape, and its attributes."""

    name: str
    kind: str
    province: str
    lon: float  # centre
    lat: float
    km2: float  # target geodesic area
    shape: str  # "irregular" (wobbly ellipse) or "block" (30" graticule rectangle)
    aspect: float  # east-west extent / north-south extent
    rotation_deg: float  # of the irregular outline, anticlockwise
    designated_on: str
    remarks: str | None


# Centres are rough positions near the places named, not surveyed or real sites.
SPECS = (
    Spec(
        "Synthetic protected area in the Chagai hills",
        "protected",
        "Balochistan",
        63.20,
        29.05,
        620.0,
        "irregular",
        1.6,
        20.0,
        "1998-06-05",
        "Invented wildlife sanctuary; no real protected area is meant.",
    ),
    Spec(
        "Synthetic protected area near Hunza",
        "protected",
        "Gilgit-Baltistan",
        74.72,
        36.42,
        380.0,
        "irregular",
        0.8,
        -15.0,
        "2004-03-21",
        None,
    ),
    Spec(
        "Synthetic wetland sanctuary near Thar",
        "protected",
        "Sindh",
        70.42,
        24.78,
        210.0,
        "irregular",
        1.3,
        35.0,
        "2011-02-02",
        "Invented Ramsar-style wetland; overlaps synthetic Thar coal titles on purpose.",
    ),
    Spec(
        "Synthetic forest reserve near Murree",
        "forest",
        "Punjab",
        73.37,
        33.90,
        45.0,
        "irregular",
        0.7,
        10.0,
        "1927-09-01",
        None,
    ),
    Spec(
        "Synthetic forest reserve near Swat",
        "forest",
        "Khyber Pakhtunkhwa",
        72.40,
        34.90,
        160.0,
        "irregular",
        0.9,
        -30.0,
        "1936-04-15",
        "Invented reserved forest; overlaps synthetic emerald titles on purpose.",
    ),
    Spec(
        "Synthetic forest reserve near Neelum",
        "forest",
        "Azad Jammu and Kashmir",
        73.98,
        34.74,
        110.0,
        "irregular",
        1.4,
        40.0,
        "1952-11-30",
        None,
    ),
    Spec(
        "Synthetic strategic reserve near Reko Diq",
        "strategic",
        "Balochistan",
        62.43,
        28.97,
        320.0,
        "irregular",
        1.2,
        0.0,
        "2022-12-15",
        "Invented federal strategic reserve around the Reko Diq area; not a real decision.",
    ),
    Spec(
        "Synthetic strategic reserve near Saindak",
        "strategic",
        "Balochistan",
        61.48,
        29.25,
        140.0,
        "irregular",
        1.0,
        25.0,
        "2002-08-14",
        None,
    ),
    Spec(
        "Synthetic strategic zone near Khewra",
        "strategic",
        "Punjab",
        73.00,
        32.64,
        75.0,
        "irregular",
        1.8,
        -10.0,
        "2015-07-01",
        "Invented restricted zone; overlaps synthetic salt titles on purpose.",
    ),
    Spec(
        "Synthetic shrine precinct near Muslim Bagh",
        "religious",
        "Balochistan",
        67.73,
        30.83,
        8.0,
        "irregular",
        1.0,
        0.0,
        "1985-01-10",
        "Invented shrine and graveyard precinct.",
    ),
    Spec(
        "Synthetic shrine precinct near Islamabad",
        "religious",
        "Islamabad Capital Territory",
        73.06,
        33.74,
        6.0,
        "irregular",
        1.2,
        15.0,
        "1979-05-20",
        None,
    ),
    Spec(
        "Synthetic religious site near Chiniot",
        "religious",
        "Punjab",
        72.97,
        31.72,
        12.0,
        "irregular",
        0.9,
        -20.0,
        "1990-10-03",
        "Invented mosque and shrine grounds.",
    ),
    Spec(
        "Synthetic proved-mineral block near Buner",
        "auction_reserved",
        "Khyber Pakhtunkhwa",
        72.50,
        34.45,
        90.0,
        "block",
        1.0,
        0.0,
        "2024-02-01",
        "Invented proved-mineral area reserved for auction (marble, granite).",
    ),
    Spec(
        "Synthetic proved-mineral block near Karak",
        "auction_reserved",
        "Khyber Pakhtunkhwa",
        71.10,
        33.10,
        70.0,
        "block",
        1.5,
        0.0,
        "2025-05-12",
        "Invented proved-mineral area reserved for auction (rock salt, gypsum).",
    ),
    Spec(
        "Synthetic proved-mineral block near Mansehra",
        "auction_reserved",
        "Khyber Pakhtunkhwa",
        73.20,
        34.40,
        50.0,
        "block",
        0.8,
        0.0,
        "2025-09-30",
        None,
    ),
)


# ------------------------------------------------------------------------ geometry


GEOD = Geod(ellps="WGS84")


def geodesic_km2(geom) -> float:
    return abs(GEOD.geometry_area_perimeter(geom)[0]) / 1e6


def local_aeqd(lon: float, lat: float) -> str:
    return f"+proj=aeqd +lat_0={lat:.6f} +lon_0={lon:.6f} +datum=WGS84 +units=m +no_defs"


def transformers(lon: float, lat: float) -> tuple[Transformer, Transformer]:
    crs = local_aeqd(lon, lat)
    fwd = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    inv = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return fwd, inv


def project(geom, t: Transformer):
    return shapely.transform(geom, lambda xy: np.column_stack(t.transform(*xy.T)))


def rounded(poly: Polygon) -> Polygon:
    """``poly`` with coordinates rounded to DECIMALS and a counter-clockwise exterior."""
    ring = [(round(x, DECIMALS), round(y, DECIMALS)) for x, y in poly.exterior.coords]
    return orient(Polygon(ring), sign=1.0)


def irregular(spec: Spec, rng: np.random.Generator, scale: float) -> Polygon:
    """Wobbly ellipse of 24–36 vertices around the centre, ``scale`` metres across."""
    n = int(rng.integers(24, 37))
    theta = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    wobble = 1.0 + 0.10 * np.sin(3 * theta + rng.uniform(0, 2 * math.pi))
    wobble += 0.06 * np.sin(5 * theta + rng.uniform(0, 2 * math.pi))
    wobble *= rng.uniform(0.95, 1.05, n)
    rx, ry = 0.5 * scale * math.sqrt(spec.aspect), 0.5 * scale / math.sqrt(spec.aspect)
    x, y = rx * wobble * np.cos(theta), ry * wobble * np.sin(theta)
    a = math.radians(spec.rotation_deg)
    xy = np.column_stack((x * math.cos(a) - y * math.sin(a), x * math.sin(a) + y * math.cos(a)))
    _, inv = transformers(spec.lon, spec.lat)
    lon, lat = inv.transform(xy[:, 0], xy[:, 1])
    return rounded(Polygon(np.column_stack((lon, lat))))


def block(spec: Spec, km2: float) -> Polygon:
    """Rectangle with every corner on the 30 arc-second graticule, about ``km2``."""
    side_km = math.sqrt(km2)
    lat_km = 111.13  # km per degree of latitude, near enough for sizing
    lon_km = lat_km * math.cos(math.radians(spec.lat))
    half_w = 0.5 * side_km * math.sqrt(spec.aspect) / lon_km
    half_h = 0.5 * side_km / math.sqrt(spec.aspect) / lat_km

    def snap(v: float) -> float:
        return round(round(v / GRID_DEG) * GRID_DEG, DECIMALS)

    x0, x1 = snap(spec.lon - half_w), snap(spec.lon + half_w)
    y0, y1 = snap(spec.lat - half_h), snap(spec.lat + half_h)
    return rounded(Polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)]))


def make_area(spec: Spec, rng: np.random.Generator) -> Polygon:
    """Outline of ``spec`` whose geodesic area is within 1 % of ``spec.km2``."""
    if spec.shape == "block":
        return block(spec, spec.km2)
    state = rng.bit_generator.state
    scale = 2000.0 * math.sqrt(spec.km2 / math.pi)  # diameter of a circle of that area, m
    for _ in range(8):  # the same wobble each time, only the size changes
        rng.bit_generator.state = state
        geom = irregular(spec, rng, scale)
        ratio = spec.km2 / geodesic_km2(geom)
        if abs(ratio - 1.0) < 0.01:
            return geom
        scale *= math.sqrt(ratio)
    raise RuntimeError(f"could not size {spec.name!r}")


def clearance_m(geom: Polygon, province: Polygon) -> float:
    """Distance in metres from ``geom`` to the province boundary, in a local projection."""
    c = geom.centroid
    fwd, _ = transformers(c.x, c.y)
    boundary = project(shapely.segmentize(province.boundary, 0.002), fwd)
    return float(project(shapely.segmentize(geom, 0.002), fwd).distance(boundary))


# ------------------------------------------------------------------------ checks


def load_features(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["features"]


def check(spec: Spec, geom: Polygon, provinces: dict[str, Polygon]) -> None:
    problems = []
    if spec.kind not in KINDS:
        problems.append(f"unknown kind {spec.kind}")
    if not geom.is_valid or geom.is_empty or not geom.exterior.is_ccw:
        problems.append("invalid or clockwise")
    if not MIN_KM2 <= geodesic_km2(geom) <= MAX_KM2:
        problems.append(f"area {geodesic_km2(geom):.1f} km²")
    home = provinces[spec.province]
    if not home.contains(geom):
        problems.append(f"not inside {spec.province}")
    elif clearance_m(geom, home) < CLEARANCE_M:
        problems.append(f"only {clearance_m(geom, home):.0f} m from the province boundary")
    if problems:
        raise RuntimeError(f"{spec.name}: " + "; ".join(problems))


def licence_relations(geom: Polygon, licences: list) -> tuple[int, int]:
    """(licences overlapping ``geom`` by more than 1 m², licences wholly inside it)."""
    hits = shapely.STRtree(licences).query(geom, predicate="intersects")
    overlapping = inside = 0
    for i in hits:
        lic = licences[int(i)]
        if geodesic_km2(geom.intersection(lic)) > OVERLAP_TOLERANCE_KM2:
            overlapping += 1
            inside += bool(geom.contains(lic))
    return overlapping, inside


# ------------------------------------------------------------------------ output


def feature_json(spec: Spec, geom: Polygon) -> str:
    props = {
        "name": spec.name,
        "kind": spec.kind,
        "province": spec.province,
        "source": SOURCE,
        "designated_on": spec.designated_on,
        "remarks": spec.remarks,
    }
    feature = {"type": "Feature", "properties": props, "geometry": mapping(geom)}
    return json.dumps(feature, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def write_geojson(path: Path, areas: list[tuple[Spec, Polygon]]) -> None:
    lines = [feature_json(spec, geom) for spec, geom in areas]
    text = '{"features":[\n' + ",\n".join(lines) + '\n],"type":"FeatureCollection"}\n'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))


def generate() -> list[tuple[Spec, Polygon]]:
    rng = np.random.default_rng(SEED)
    provinces = {
        f["properties"]["province"]: shape(f["geometry"]) for f in load_features(PROVINCES_FILE)
    }
    areas = []
    for spec in SPECS:
        geom = make_area(spec, rng)
        check(spec, geom, provinces)
        areas.append((spec, geom))
    return areas


def summary(areas: list[tuple[Spec, Polygon]], path: Path) -> str:
    licences = [shape(f["geometry"]) for f in load_features(LICENCES_FILE)]
    kinds = Counter(spec.kind for spec, _ in areas)
    out = [f"{len(areas)} synthetic reserved areas written to {path}"]
    out += ["by kind:"] + [f"  {k:<18} {kinds[k]:>3}" for k in KINDS]
    out.append("area km², licences overlapping (> 1 m²), of which wholly inside:")
    n_overlapping = n_containing = 0
    for spec, geom in areas:
        overlapping, inside = licence_relations(geom, licences)
        n_overlapping += overlapping > 0
        n_containing += inside > 0
        out.append(f"  {spec.name:<50} {geodesic_km2(geom):7.1f} {overlapping:4d} {inside:4d}")
    out.append(f"areas overlapping at least one licence: {n_overlapping}")
    out.append(f"areas wholly containing at least one licence: {n_containing}")
    out.append(f"sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}")
    if min(kinds[k] for k in KINDS) < MIN_PER_KIND:
        raise RuntimeError(f"fewer than {MIN_PER_KIND} areas of some kind: {dict(kinds)}")
    if n_overlapping < MIN_OVERLAPPING_AREAS or n_containing < MIN_CONTAINING_AREAS:
        raise RuntimeError("too few areas overlap licences:\n" + "\n".join(out))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output GeoJSON file")
    args = parser.parse_args(argv)
    areas = generate()
    write_geojson(args.out, areas)
    print(summary(areas, args.out))


if __name__ == "__main__":
    main()
