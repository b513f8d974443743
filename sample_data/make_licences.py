#!/usr/bin/env python3
"""Generate SYNTHETIC mineral titles (licences and leases) for Pakistan.

The output is sample data for tests, demos and benchmarks. It is NOT real
licence data: every title, number, date and holder is made up, and the holder
names are invented companies (any likeness to a real company is unintended).
Only the geography is real: titles cluster around the USGS mineral occurrences
shipped next to this script and around a few well-known mining districts, and
every title lies inside one province polygon of the geoBoundaries sample.

The generator is deterministic: the same ``--seed`` and ``--count`` give a
byte-identical GeoJSON file (RFC 7946, EPSG:4326 lon/lat, one feature per
line, sorted keys, 6 decimals). Dates are computed against the fixed reference
date 2026-11-01, never the wall clock.

Usage (from the repository root)::

    python sample_data/make_licences.py
    python sample_data/make_licences.py --count 3000 --seed 20261123 \\
        --out sample_data/licences_synthetic.geojson

Needs numpy, shapely (>= 2.0) and pyproj.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from pyproj import Geod, Transformer
from shapely.geometry import MultiPolygon, Point, Polygon, mapping, shape
from shapely.geometry.polygon import orient

HERE = Path(__file__).resolve().parent
PROVINCES_FILE = HERE / "pakistan_admin1_provinces.geojson"
COUNTRY_FILE = HERE / "pakistan_admin0.geojson"
OCCURRENCES_FILE = HERE / "pakistan_mineral_occurrences_usgs.geojson"
DEFAULT_OUT = HERE / "licences_synthetic.geojson"

DEFAULT_COUNT = 3000
DEFAULT_SEED = 20261123

REFERENCE_DATE = dt.date(2026, 11, 1)  # statuses are consistent with this date
FIRST_APPLICATION = dt.date(2010, 1, 1)
LAST_APPLICATION = dt.date(2026, 10, 31)
MIN_DECISION_DAYS, MAX_DECISION_DAYS = 20, 720  # from application to grant

CLEARANCE_M = 300.0  # minimum distance of every title from its province boundary
SAFETY_M = 40.0  # extra margin for arc approximation in the negative buffer
GRID_DEG = 1.0 / 120.0  # 30 arc-seconds
WGS84_A_KM = 6378.137
WGS84_E2 = 0.00669437999014
DECIMALS = 6

SHARE_BACKGROUND = 0.10  # diffuse titles anywhere in Pakistan
SHARE_OCCURRENCE = 0.50  # titles around the USGS occurrences (rest: known districts)
SHARE_RECTANGLE = 0.55  # graticule-aligned rectangles; the rest are irregular polygons
SHARE_MULTIPART = 0.03
SHARE_HOLE = 0.02
SHARE_DELIBERATE_OVERLAP = 0.10
SHARE_WHOLLY_INSIDE = 0.4  # of the deliberate overlaps
ALLOW_NATURAL_OVERLAP = 0.06  # chance that a new title may overlap others by accident
SHAPE_ATTEMPTS = 30


@dataclass(frozen=True)
class LicenceType:
    key: str
    abbr: str
    min_km2: float
    max_km2: float
    terms_years: tuple[int, ...]


# Sizes and terms are plausible sample values, not legal limits (see DOMAIN.md).
LICENCE_TYPES = {
    t.key: t
    for t in (
        LicenceType("reconnaissance_licence", "RL", 50.0, 500.0, (1,)),
        LicenceType("exploration_licence", "EL", 10.0, 500.0, (3,)),
        LicenceType("mineral_deposit_retention_licence", "MDRL", 5.0, 200.0, (5,)),
        LicenceType("mining_lease", "ML", 1.0, 100.0, (10, 15, 20, 25, 30)),
        LicenceType("prospecting_licence", "PL", 2.0, 100.0, (3,)),
        LicenceType("small_scale_mining_lease", "SSML", 0.5, 5.0, (10, 15, 20, 25, 30)),
        LicenceType("surface_mineral_lease", "SML", 0.5, 5.0, (5,)),
    )
}
SURFACE_MINERALS = ("Silica sand", "Fireclay", "Bentonite")
SURFACE_MINERAL_PROVINCE = "Punjab"

# Type mix by "profile" of the place (surface_mineral_lease is added for Punjab only).
TYPE_PROFILES = {
    "large": {
        "reconnaissance_licence": 0.10,
        "exploration_licence": 0.36,
        "mineral_deposit_retention_licence": 0.08,
        "mining_lease": 0.16,
        "prospecting_licence": 0.12,
        "small_scale_mining_lease": 0.18,
    },
    "medium": {
        "reconnaissance_licence": 0.04,
        "exploration_licence": 0.20,
        "mineral_deposit_retention_licence": 0.05,
        "mining_lease": 0.24,
        "prospecting_licence": 0.19,
        "small_scale_mining_lease": 0.28,
    },
    "small": {
        "reconnaissance_licence": 0.01,
        "exploration_licence": 0.07,
        "mineral_deposit_retention_licence": 0.02,
        "mining_lease": 0.22,
        "prospecting_licence": 0.24,
        "small_scale_mining_lease": 0.44,
    },
}
SURFACE_LEASE_WEIGHT = {"large": 0.03, "medium": 0.10, "small": 0.30}

STATUS_WEIGHTS = {
    "applied": 0.20,
    "granted": 0.60,
    "refused": 0.06,
    "surrendered": 0.05,
    "cancelled": 0.04,
    "expired": 0.05,
}

# USGS commodity names (as in the occurrences file) -> names used on titles.
# None drops the commodity (brine constituents are not licensed separately here).
COMMODITY_NAMES = {
    "Chromium": "Chromite",
    "Halite": "Rock salt",
    "Iron": "Iron ore",
    "Magnesium": "Magnesite",
    "Manganese": "Manganese ore",
    "Platinum": None,
    "Brine": None,
    "Calcium": None,
    "Bromine": None,
}
# Order of importance when a title lists only some of a site's commodities.
COMMODITY_RANK = (
    "Copper",
    "Lead",
    "Zinc",
    "Chromite",
    "Iron ore",
    "Manganese ore",
    "Nickel",
    "Phosphate",
    "Rock salt",
    "Potash",
    "Emerald",
    "Ruby",
    "Gold",
    "Platinum-group elements",
    "Barite",
    "Silver",
    "Molybdenum",
    "Magnesite",
    "Sapphire",
    "Spinel",
    "Cobalt",
)
METALLIC = {
    "Copper",
    "Lead",
    "Zinc",
    "Chromite",
    "Iron ore",
    "Nickel",
    "Gold",
    "Silver",
    "Molybdenum",
    "Platinum-group elements",
}


@dataclass(frozen=True)
class Hotspot:
    """A well-known mining district (approximate centre; not surveyed)."""

    name: str
    lon: float
    lat: float
    sigma_x_km: float
    sigma_y_km: float
    weight: float
    profile: str
    minerals: tuple[str, ...]


HOTSPOTS = (
    Hotspot("Thar coalfield", 70.20, 24.75, 25, 30, 0.14, "large", ("Coal",)),
    Hotspot("Lakhra coalfield", 68.05, 25.65, 10, 12, 0.04, "medium", ("Coal",)),
    Hotspot("Nagarparkar", 70.72, 24.38, 6, 5, 0.03, "small", ("Granite", "China clay")),
    Hotspot("Muslim Bagh", 67.75, 30.83, 18, 12, 0.10, "medium", ("Chromite", "Magnesite")),
    Hotspot("Sor Range-Degari", 67.15, 30.15, 10, 8, 0.03, "small", ("Coal",)),
    Hotspot("Duki", 68.57, 30.15, 12, 8, 0.03, "small", ("Coal",)),
    Hotspot("Buner", 72.48, 34.50, 12, 10, 0.07, "small", ("Marble", "Granite")),
    Hotspot("Mohmand", 71.45, 34.38, 8, 8, 0.05, "small", ("Marble", "Dolomite")),
    Hotspot("Mansehra", 73.20, 34.33, 10, 10, 0.04, "small", ("Granite", "Marble")),
    Hotspot("Swat", 72.36, 34.78, 8, 8, 0.03, "small", ("Emerald", "Marble")),
    Hotspot("Hunza", 74.66, 36.32, 15, 12, 0.05, "small", ("Ruby", "Spinel", "Marble")),
    Hotspot(
        "Shigar-Skardu", 75.70, 35.45, 20, 15, 0.05, "small", ("Aquamarine", "Topaz", "Tourmaline")
    ),
    Hotspot(
        "Salt Range",
        72.60,
        32.68,
        50,
        9,
        0.14,
        "small",
        ("Rock salt", "Gypsum", "Coal", "Limestone", "Dolomite"),
    ),
    Hotspot("Chiniot-Rajoa", 72.95, 31.75, 8, 8, 0.03, "medium", ("Iron ore",)),
    Hotspot("Karak-Kohat", 71.25, 33.25, 18, 12, 0.04, "small", ("Rock salt", "Gypsum")),
    Hotspot("Islamabad", 72.95, 33.70, 4, 3, 0.01, "small", ("Limestone",)),
    Hotspot("Neelum", 73.80, 34.70, 12, 12, 0.03, "small", ("Ruby", "Marble")),
)

# Minerals for titles placed at random (background) by province.
BACKGROUND_MINERALS = {
    "Balochistan": ("Chromite", "Marble", "Coal", "Barite", "Iron ore", "Copper", "Limestone"),
    "Punjab": ("Limestone", "Gypsum", "Rock salt", "Coal", "Dolomite", "Clay"),
    "Sindh": ("Coal", "Limestone", "China clay", "Gypsum", "Clay"),
    "Khyber Pakhtunkhwa": ("Marble", "Granite", "Limestone", "Coal", "Gypsum", "Soapstone"),
    "Gilgit-Baltistan": ("Marble", "Granite", "Gold", "Copper", "Quartz"),
    "Azad Jammu and Kashmir": ("Marble", "Coal", "Ruby", "Limestone"),
    "Islamabad Capital Territory": ("Limestone",),
}

# Invented holders. Ordered by rank: the first is the largest holder (Zipf-like).
HOLDERS = (
    "Indus Basin Minerals (Pvt) Ltd",
    "Sino-Pak Huayuan Mining Co., Ltd",
    "Chiltan Resources (Pvt) Ltd",
    "Kirthar Exploration (Pvt) Ltd",
    "Xinhe Tianshan Mining Investment Co., Ltd",
    "Margalla Stone Industries (Pvt) Ltd",
    "Bolan Mineral Works (Pvt) Ltd",
    "Ravi Industrial Minerals (Pvt) Ltd",
    "Jinxiu Silk Road Resources (Pakistan) Ltd",
    "Sulaiman Range Mining (Pvt) Ltd",
    "Makran Coast Minerals (Pvt) Ltd",
    "Hengyuan Kunlun Mining (Pvt) Ltd",
    "Potohar Salt & Gypsum Co. (Pvt) Ltd",
    "Nanga Parbat Gems (Pvt) Ltd",
    "Zhongtai Lianhe Mineral Development Co., Ltd",
    "Khojak Metals (Pvt) Ltd",
    "Thar Desert Energy Minerals (Pvt) Ltd",
    "Rakaposhi Gemstones (Pvt) Ltd",
    "Longsheng Pak-Kashgar Mining Co., Ltd",
    "Siran Valley Marble (Pvt) Ltd",
    "Chenab Aggregates (Pvt) Ltd",
    "Kharan Copper Exploration (Pvt) Ltd",
    "Huaxing Gwadar Minerals (SMC-Pvt) Ltd",
    "Zarghun Ridge Mining (Pvt) Ltd",
    "Babusar Minerals (Pvt) Ltd",
    "Qilian Baoshan Mining Investment Co., Ltd",
    "Mehran Clay Works (Pvt) Ltd",
    "Ras Koh Resources (Pvt) Ltd",
    "Tirich Mir Mining (Pvt) Ltd",
    "Fengrui Pak Minerals (Pvt) Ltd",
    "Hingol Exploration (Pvt) Ltd",
    "Shandur Granite (Pvt) Ltd",
    "Nushki Chromite Traders",
    "Yongfeng Indus Resources Co., Ltd",
    "Safed Koh Minerals (Pvt) Ltd",
    "Jhelum Silica (Pvt) Ltd",
    "Dasht Valley Mining (Pvt) Ltd",
    "Xinyu Karakoram Gem Trading Co., Ltd",
    "Kalat Minerals Syndicate",
    "Kaghan Marble & Granite (Pvt) Ltd",
    "Panjgur Metals (Pvt) Ltd",
    "Ruihe Lasbela Mining Co., Ltd",
    "Toba Kakar Mining (Pvt) Ltd",
    "Swat Green Stones (Pvt) Ltd",
    "Jiayuan Sindh Energy Minerals Co., Ltd",
    "Pishin Valley Minerals (Pvt) Ltd",
    "Gomal Exploration (Pvt) Ltd",
    "Khunjerab Resources (Pvt) Ltd",
    "Taiyue Overseas Mining (Pakistan) Ltd",
    "Kohat Gypsum Works",
    "Hazara Phosphate Developers (Pvt) Ltd",
    "Mashabrum Minerals (Pvt) Ltd",
    "Baishan Pak Chromite Co., Ltd",
    "Khanozai Chrome Co.",
    "Cholistan Industrial Sands (Pvt) Ltd",
    "Hunza Valley Gems (Pvt) Ltd",
    "Tianrun Gilgit Mining Development Co., Ltd",
    "Mula Pass Minerals (Pvt) Ltd",
    "Shigar Crystal (Pvt) Ltd",
    "Sheikh Badin Mining (Pvt) Ltd",
    "Jinlong Thar Coal Services (Pvt) Ltd",
    "Kurram Agency Minerals (Pvt) Ltd",
    "Lalazar Stone Crafts (Pvt) Ltd",
    "Anhua Chagai Exploration Co., Ltd",
    "Qila Saifullah Chrome Miners",
    "Shangla Granite Works",
    "Nagar Gems & Minerals (Pvt) Ltd",
    "Sanxin Balochistan Metals Co., Ltd",
    "Dera Bugti Barite (Pvt) Ltd",
    "Tarbela Sand & Gravel (Pvt) Ltd",
    "Mastuj Mining (Pvt) Ltd",
    "Boyuan Pak Marble Co., Ltd",
    "Pasni Minerals (Pvt) Ltd",
    "Khuzdar Lead-Zinc Explorers (Pvt) Ltd",
    "Hongtai Salt Range Minerals Co., Ltd",
    "Dir Kohistan Minerals (Pvt) Ltd",
    "Neelum Valley Gems (Pvt) Ltd",
    "Sakesar Limestone (Pvt) Ltd",
    "Wanxiang Pak Industrial Minerals Co., Ltd",
    "Mianwali Salt Works",
    "Loralai Minerals (Pvt) Ltd",
    "Huarui Kohistan Resources Co., Ltd",
    "Barkhan Coal Co.",
    "Chitral Antimony (Pvt) Ltd",
    "Shenghua Pak Copper Exploration Co., Ltd",
    "Kachhi Plains Minerals (Pvt) Ltd",
    "Astore Valley Mining (Pvt) Ltd",
    "Gaoxiang Pakistan Coal Co., Ltd",
    "Awaran Minerals (Pvt) Ltd",
    "Manshera Stone (Pvt) Ltd",
    "Dalbandin Metals (Pvt) Ltd",
    "Ruifeng Indus Marble Co., Ltd",
    "Kotli Coal Miners",
    "Mardan Marble House",
    "Zhob Valley Chromite (Pvt) Ltd",
    "Jinqiao Pak Gem & Jewellery Co., Ltd",
    "Hub Industrial Minerals (Pvt) Ltd",
    "Gulmit Gems (Pvt) Ltd",
    "Chakwal Coal & Clay (Pvt) Ltd",
    "Xingda Balochistan Iron Co., Ltd",
    "Sibi Minerals (Pvt) Ltd",
    "Bajaur Marble Industries",
    "Karak Salt Syndicate",
    "Daxin Pak Silica Co., Ltd",
    "Kech Valley Resources (Pvt) Ltd",
    "Ghizer Minerals (Pvt) Ltd",
    "Attock Fireclay Works",
    "Hualong Khyber Minerals Co., Ltd",
    "Washuk Exploration (Pvt) Ltd",
    "Nokkundi Metals (Pvt) Ltd",
    "Skardu Crystal Traders",
    "Yuantong Pak Gypsum Co., Ltd",
    "Muzaffarabad Stones (Pvt) Ltd",
    "Harnai Coal Co.",
    "Malakand Minerals (Pvt) Ltd",
    "Jiangyuan Pak Mining Services Co., Ltd",
    "Bhimber Minerals (Pvt) Ltd",
    "Thatta Industrial Sands (Pvt) Ltd",
    "Kotli Marble (Pvt) Ltd",
    "Lianfa Pakistan Lithium Exploration Co., Ltd",
)
ZIPF_EXPONENT = 0.9


@dataclass
class Province:
    name: str
    iso: str  # PK-BA, ...
    geom: Polygon
    inner: object  # province shrunk by the clearance (Polygon or MultiPolygon)


@dataclass
class Source:
    """Where a title is placed: a centre, a spread, a province and minerals."""

    lon: float
    lat: float
    sigma_x_km: float
    sigma_y_km: float
    profile: str
    minerals: tuple[str, ...]
    ranked: bool = False  # take the first minerals in order (occurrences)


@dataclass
class Licence:
    geom: object
    province: str
    licence_type: str
    minerals: str
    deliberate_overlap: bool = False
    wholly_inside: bool = False
    props: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- data


def load_features(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return json.load(f)["features"]


def local_aeqd(lon: float, lat: float) -> str:
    return f"+proj=aeqd +lat_0={lat:.6f} +lon_0={lon:.6f} +datum=WGS84 +units=m +no_defs"


def shrink(poly: Polygon, metres: float):
    """Polygon shrunk by ``metres``, computed in an azimuthal equidistant projection
    centred on the polygon (distortion < 0.3 % across Pakistan's largest province)."""
    c = poly.centroid
    crs = local_aeqd(c.x, c.y)
    fwd = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    inv = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    dense = shapely.segmentize(poly, 0.002)  # ~200 m: degree-straight edges stay straight
    projected = shapely.transform(dense, lambda xy: np.column_stack(fwd.transform(*xy.T)))
    inner = projected.buffer(-metres, quad_segs=16)
    inner = shapely.segmentize(inner, 200.0)
    inner = shapely.transform(inner, lambda xy: np.column_stack(inv.transform(*xy.T)))
    shapely.prepare(inner)
    return inner


def load_provinces() -> list[Province]:
    provinces = []
    for feat in load_features(PROVINCES_FILE):
        geom = shape(feat["geometry"])
        inner = shrink(geom, CLEARANCE_M + SAFETY_M)
        shapely.prepare(geom)
        p = feat["properties"]
        provinces.append(Province(p["province"], p["province_iso"], geom, inner))
    return sorted(provinces, key=lambda p: p.name)


def licence_minerals(commodities: str | None, site_minerals: str | None) -> tuple[str, ...]:
    names = []
    for raw in (commodities or "").split("; "):
        raw = raw.strip()
        if not raw:
            continue
        name = COMMODITY_NAMES.get(raw, raw)
        if name and name not in names:
            names.append(name)
    if not names and site_minerals and "Chalcopyrite" in site_minerals:
        names = ["Copper"]
    rank = {n: i for i, n in enumerate(COMMODITY_RANK)}
    return tuple(sorted(names, key=lambda n: (rank.get(n, len(rank)), n)))


def load_occurrence_sources() -> tuple[list[Source], np.ndarray]:
    sources, weights = [], []
    for feat in load_features(OCCURRENCES_FILE):
        p = feat["properties"]
        if not p["in_pakistan"]:
            continue
        minerals = licence_minerals(p["commodities"], p["minerals"])
        if not minerals:
            continue
        metallic = any(m in METALLIC for m in minerals)
        if p["source_dataset"] in ("usgs_major_deposits", "usgs_porcu"):
            weight, sigma, profile = 2.0, 25.0, "large" if metallic else "medium"
        elif metallic:
            weight, sigma, profile = 1.2, 18.0, "large"
        elif minerals == ("Phosphate",):  # many nearby records: keep them from dominating
            weight, sigma, profile = 0.35, 12.0, "medium"
        else:
            weight, sigma, profile = 1.0, 15.0, "medium"
        lon, lat = feat["geometry"]["coordinates"]
        sources.append(Source(lon, lat, sigma, sigma, profile, minerals, ranked=True))
        weights.append(weight)
    w = np.asarray(weights, dtype=float)
    return sources, w / w.sum()


# ----------------------------------------------------------------------- geometry


def km_per_deg(lat: float) -> tuple[float, float]:
    """Kilometres per degree of longitude and of latitude at ``lat`` on WGS 84."""
    phi = math.radians(lat)
    w = 1.0 - WGS84_E2 * math.sin(phi) ** 2
    meridian = WGS84_A_KM * (1.0 - WGS84_E2) / w**1.5
    prime_vertical = WGS84_A_KM / math.sqrt(w)
    return math.radians(prime_vertical * math.cos(phi)), math.radians(meridian)


def km_to_deg(lat: float) -> tuple[float, float]:
    """Degrees per km in longitude and latitude at ``lat``."""
    lon_km, lat_km = km_per_deg(lat)
    return 1.0 / lon_km, 1.0 / lat_km


def rounded(geom):
    """Rebuild ``geom`` with coordinates rounded to DECIMALS and RFC 7946 winding."""

    def ring(coords) -> list[tuple[float, float]]:
        return [(round(x, DECIMALS), round(y, DECIMALS)) for x, y in coords]

    def poly(p: Polygon) -> Polygon:
        out = Polygon(ring(p.exterior.coords), [ring(i.coords) for i in p.interiors])
        return orient(out, sign=1.0)  # exterior counter-clockwise, holes clockwise

    if isinstance(geom, MultiPolygon):
        return MultiPolygon([poly(p) for p in geom.geoms])
    return poly(geom)


def star_shape(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random simple polygon (star-shaped around 0,0) with unit area, as (n, 2) km."""
    step = 2.0 * math.pi / n
    ang = rng.uniform(0, 2 * math.pi) + step * (np.arange(n) + rng.uniform(-0.35, 0.35, n))
    r = np.ones(n)
    for k in (1, 2, 3):
        r += rng.uniform(0.0, 0.15) * np.cos(k * ang + rng.uniform(0, 2 * math.pi))
    r = np.clip(r + rng.uniform(-0.12, 0.12, n), 0.5, 1.8)
    xy = np.column_stack([r * np.cos(ang), r * np.sin(ang)])
    stretch = rng.uniform(0.45, 1.0)
    theta = rng.uniform(0, math.pi)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    xy = (xy * [1.0, stretch]) @ rot.T
    area = 0.5 * abs(
        np.dot(xy[:, 0], np.roll(xy[:, 1], -1)) - np.dot(xy[:, 1], np.roll(xy[:, 0], -1))
    )
    return xy / math.sqrt(area)


def km_ring_to_lonlat(xy_km: np.ndarray, lon: float, lat: float) -> list[tuple[float, float]]:
    dlon, dlat = km_to_deg(lat)
    return [(lon + x * dlon, lat + y * dlat) for x, y in xy_km]


def irregular(rng: np.random.Generator, lon: float, lat: float, area: float, hole: bool):
    xy = star_shape(rng, int(rng.integers(6, 31))) * math.sqrt(area)
    holes = []
    if hole:
        inradius = Polygon(xy).exterior.distance(Point(0.0, 0.0))
        h = star_shape(rng, int(rng.integers(5, 11)))
        h *= rng.uniform(0.3, 0.6) * inradius / np.hypot(h[:, 0], h[:, 1]).max()
        holes.append(km_ring_to_lonlat(h, lon, lat))
    return Polygon(km_ring_to_lonlat(xy, lon, lat), holes)


def grid_box(i0: int, j0: int, nx: int, ny: int) -> list[tuple[float, float]]:
    x0, x1 = i0 / 120.0, (i0 + nx) / 120.0
    y0, y1 = j0 / 120.0, (j0 + ny) / 120.0
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]


def grid_cells(
    rng: np.random.Generator, lat: float, area: float, limits: tuple[float, float]
) -> tuple[int, int]:
    """Columns and rows of 30" cells for about ``area`` km², kept within ``limits``."""
    lon_km, lat_km = km_per_deg(lat)
    cell_w, cell_h = GRID_DEG * lon_km, GRID_DEG * lat_km
    aspect = math.exp(rng.uniform(math.log(1 / 3), math.log(3)))
    width = math.sqrt(area * aspect)
    nx, ny = max(1, round(width / cell_w)), max(1, round(area / width / cell_h))
    while nx * ny * cell_w * cell_h > limits[1] and nx * ny > 1:
        if nx >= ny:
            nx -= 1
        else:
            ny -= 1
    while nx * ny * cell_w * cell_h < limits[0]:
        if nx <= ny:
            nx += 1
        else:
            ny += 1
    return nx, ny


def rectangle(rng, lon: float, lat: float, area: float, hole: bool, limits: tuple[float, float]):
    nx, ny = grid_cells(rng, lat, area, limits)
    if hole and (nx < 3 or ny < 3):
        nx, ny = max(nx, 3), max(ny, 3)
    i0 = math.floor(lon / GRID_DEG - nx / 2)
    j0 = math.floor(lat / GRID_DEG - ny / 2)
    holes = []
    if hole:  # an excluded block of whole cells, at least one cell from the edge
        hx = min(int(rng.integers(1, nx - 1)), nx - 2)
        hy = min(int(rng.integers(1, ny - 1)), ny - 2)
        hi = i0 + int(rng.integers(1, nx - hx))
        hj = j0 + int(rng.integers(1, ny - hy))
        holes.append(grid_box(hi, hj, hx, hy)[::-1])
    return Polygon(grid_box(i0, j0, nx, ny), holes)


def multipart(rng, lon: float, lat: float, area: float, rect: bool, limits: tuple[float, float]):
    share = rng.uniform(0.3, 0.7)
    if rect:
        lim1 = (limits[0] * share, limits[1] * share)
        lim2 = (limits[0] * (1 - share), limits[1] * (1 - share))
        nx1, ny1 = grid_cells(rng, lat, area * share, lim1)
        nx2, ny2 = grid_cells(rng, lat, area * (1 - share), lim2)
        i0 = math.floor(lon / GRID_DEG - nx1)
        j0 = math.floor(lat / GRID_DEG - ny1 / 2)
        gap = int(rng.integers(1, 6))
        if rng.random() < 0.5:  # second block east of the first
            i2, j2 = i0 + nx1 + gap, j0 + int(rng.integers(-ny2 + 1, ny1))
        else:  # second block north of the first
            i2, j2 = i0 + int(rng.integers(-nx2 + 1, nx1)), j0 + ny1 + gap
        parts = [Polygon(grid_box(i0, j0, nx1, ny1)), Polygon(grid_box(i2, j2, nx2, ny2))]
    else:
        a = irregular(rng, lon, lat, area * share, False)
        r1 = math.sqrt(area * share / math.pi)
        r2 = math.sqrt(area * (1 - share) / math.pi)
        dist = (r1 + r2) * rng.uniform(1.8, 3.0)
        bearing = rng.uniform(0, 2 * math.pi)
        dlon, dlat = km_to_deg(lat)
        lon2 = lon + dist * math.cos(bearing) * dlon
        lat2 = lat + dist * math.sin(bearing) * dlat
        parts = [a, irregular(rng, lon2, lat2, area * (1 - share), False)]
    if parts[0].distance(parts[1]) <= 1e-4:  # must stay clearly apart
        return None
    return MultiPolygon(parts)


def make_shape(rng: np.random.Generator, lon: float, lat: float, area: float, licence_type: str):
    t = LICENCE_TYPES[licence_type]
    limits = (t.min_km2, t.max_km2)
    rect = rng.random() < SHARE_RECTANGLE
    u = rng.random()
    if u < SHARE_MULTIPART:
        return multipart(rng, lon, lat, area, rect, limits)
    hole = u < SHARE_MULTIPART + SHARE_HOLE
    if rect and not (hole and t.max_km2 < 12.0):  # a holed block needs at least 3 x 3 cells
        return rectangle(rng, lon, lat, area, hole, limits)
    return irregular(rng, lon, lat, area, hole)


# ------------------------------------------------------------------------ spatial


class GridIndex:
    """A tiny bucket index of accepted titles for overlap tests."""

    def __init__(self, cell: float = 0.5) -> None:
        self.cell = cell
        self.buckets: dict[tuple[int, int], list[int]] = {}

    def _keys(self, bounds):
        x0, y0, x1, y1 = (math.floor(b / self.cell) for b in bounds)
        return [(i, j) for i in range(x0, x1 + 1) for j in range(y0, y1 + 1)]

    def add(self, idx: int, geom) -> None:
        for k in self._keys(geom.bounds):
            self.buckets.setdefault(k, []).append(idx)

    def candidates(self, geom) -> list[int]:
        found: set[int] = set()
        for k in self._keys(geom.bounds):
            found.update(self.buckets.get(k, ()))
        return sorted(found)


def overlaps_any(geom, licences: list[Licence], index: GridIndex) -> list[int]:
    hits = []
    for i in index.candidates(geom):
        other = licences[i].geom
        if geom.intersects(other) and geom.intersection(other).area > 1e-10:
            hits.append(i)
    return hits


def province_of(geom, provinces: list[Province]) -> Province | None:
    for p in provinces:
        if p.inner.contains(geom):
            return p
    return None


def point_province(lon: float, lat: float, provinces: list[Province]) -> Province | None:
    pt = Point(lon, lat)
    for p in provinces:
        if p.geom.contains(pt):
            return p
    return None


# ------------------------------------------------------------------------- choices


def weighted_choice(rng: np.random.Generator, weights: dict[str, float]) -> str:
    keys = sorted(weights)
    w = np.array([weights[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=w / w.sum()))]


def choose_type(rng: np.random.Generator, profile: str, province: str) -> str:
    weights = dict(TYPE_PROFILES[profile])
    if province == SURFACE_MINERAL_PROVINCE:
        weights["surface_mineral_lease"] = SURFACE_LEASE_WEIGHT[profile]
    return weighted_choice(rng, weights)


def choose_area(rng: np.random.Generator, licence_type: str) -> float:
    t = LICENCE_TYPES[licence_type]
    return math.exp(rng.uniform(math.log(t.min_km2), math.log(t.max_km2)))


def choose_minerals(rng: np.random.Generator, licence_type: str, source: Source) -> str:
    if licence_type == "surface_mineral_lease":
        pool = SURFACE_MINERALS
        k = 1 if rng.random() < 0.8 else 2
        picked = sorted(rng.choice(len(pool), size=k, replace=False).tolist())
        return "; ".join(pool[i] for i in picked)
    pool = source.minerals
    k = min(len(pool), int(rng.choice([1, 2, 3], p=[0.55, 0.33, 0.12])))
    if source.ranked:
        return "; ".join(pool[:k])
    picked = sorted(rng.choice(len(pool), size=k, replace=False).tolist())
    return "; ".join(pool[i] for i in picked)


def background_source(rng, provinces: list[Province]) -> Source | None:
    lon, lat = rng.uniform(60.8, 77.9), rng.uniform(23.6, 37.1)
    p = point_province(lon, lat, provinces)
    if p is None:
        return None
    return Source(lon, lat, 0.0, 0.0, "medium", BACKGROUND_MINERALS[p.name])


def draw_source(rng, provinces, occ_sources, occ_weights) -> Source | None:
    u = rng.random()
    if u < SHARE_BACKGROUND:
        return background_source(rng, provinces)
    if u < SHARE_BACKGROUND + SHARE_OCCURRENCE:
        return occ_sources[int(rng.choice(len(occ_sources), p=occ_weights))]
    w = np.array([h.weight for h in HOTSPOTS])
    h = HOTSPOTS[int(rng.choice(len(HOTSPOTS), p=w / w.sum()))]
    return Source(h.lon, h.lat, h.sigma_x_km, h.sigma_y_km, h.profile, h.minerals)


def jitter(rng, source: Source) -> tuple[float, float]:
    dlon, dlat = km_to_deg(source.lat)
    return (
        source.lon + rng.normal(0.0, source.sigma_x_km) * dlon if source.sigma_x_km else source.lon,
        source.lat + rng.normal(0.0, source.sigma_y_km) * dlat if source.sigma_y_km else source.lat,
    )


def acceptable(geom, country, licence_type: str) -> bool:
    """Valid, RFC 7946 winding, inside Pakistan and within the type's size range."""
    if geom is None or not geom.is_valid or geom.is_empty:
        return False
    t = LICENCE_TYPES[licence_type]
    if not t.min_km2 <= geodesic_km2(geom) <= t.max_km2:
        return False
    polys = geom.geoms if isinstance(geom, MultiPolygon) else [geom]
    if not all(p.exterior.is_ccw for p in polys):
        return False
    return country.contains(geom)


# ----------------------------------------------------------------------- licences


def new_licence(rng, provinces, country, occ_sources, occ_weights, licences, index):
    source = draw_source(rng, provinces, occ_sources, occ_weights)
    if source is None:
        return None
    home = point_province(*jitter(rng, source), provinces)
    if home is None:
        return None
    licence_type = choose_type(rng, source.profile, home.name)
    minerals = choose_minerals(rng, licence_type, source)
    area = choose_area(rng, licence_type)
    allow_overlap = rng.random() < ALLOW_NATURAL_OVERLAP
    for _ in range(SHAPE_ATTEMPTS):
        lon, lat = jitter(rng, source)
        geom = make_shape(rng, lon, lat, area, licence_type)
        if geom is None:
            continue
        geom = rounded(geom)
        if not acceptable(geom, country, licence_type) or province_of(geom, provinces) is not home:
            continue
        if not allow_overlap and overlaps_any(geom, licences, index):
            continue
        return Licence(geom, home.name, licence_type, minerals)
    return None


def random_point_in(rng, geom) -> tuple[float, float] | None:
    x0, y0, x1, y1 = geom.bounds
    for _ in range(100):
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        if geom.contains(Point(x, y)):
            return x, y
    return None


def overlapping_licence(rng, provinces, country, licences):
    base = licences[int(rng.integers(len(licences)))]
    home = next(p for p in provinces if p.name == base.province)
    base_area = geodesic_km2(base.geom)
    inside = rng.random() < SHARE_WHOLLY_INSIDE
    types = dict(TYPE_PROFILES["medium"])
    if home.name == SURFACE_MINERAL_PROVINCE:
        types["surface_mineral_lease"] = SURFACE_LEASE_WEIGHT["medium"]
    if inside:  # only types that fit in half of the base title
        types = {k: v for k, v in types.items() if LICENCE_TYPES[k].min_km2 <= 0.5 * base_area}
        if not types:
            return None
    licence_type = weighted_choice(rng, types)
    t = LICENCE_TYPES[licence_type]
    max_km2 = min(t.max_km2, 0.5 * base_area) if inside else t.max_km2
    area = math.exp(rng.uniform(math.log(t.min_km2), math.log(max_km2)))
    if licence_type == "surface_mineral_lease":
        minerals = choose_minerals(rng, licence_type, Source(0, 0, 0, 0, "small", ()))
    elif rng.random() < 0.7 and not any(m in SURFACE_MINERALS for m in base.minerals.split("; ")):
        minerals = base.minerals  # the same deposit, a competing or nested application
    else:
        minerals = choose_minerals(
            rng, licence_type, Source(0, 0, 0, 0, "medium", BACKGROUND_MINERALS[home.name])
        )
    ring = (
        base.geom.geoms[0].exterior if isinstance(base.geom, MultiPolygon) else base.geom.exterior
    )
    for _ in range(SHAPE_ATTEMPTS):
        if inside:
            pt = random_point_in(rng, base.geom)
            if pt is None:
                return None
        else:
            p = ring.interpolate(rng.uniform(0, 1), normalized=True)
            pt = p.x, p.y
        geom = make_shape(rng, pt[0], pt[1], area, licence_type)
        if geom is None:
            continue
        geom = rounded(geom)
        if not acceptable(geom, country, licence_type) or province_of(geom, provinces) is not home:
            continue
        if inside and not base.geom.contains(geom):
            continue
        shared = geom.intersection(base.geom).area
        if shared <= 0.01 * min(geom.area, base.geom.area):
            continue
        return Licence(
            geom, home.name, licence_type, minerals, deliberate_overlap=True, wholly_inside=inside
        )
    return None


# -------------------------------------------------------------------- attributes


def add_years(d: dt.date, years: int) -> dt.date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def random_date(rng, lo: dt.date, hi: dt.date) -> dt.date:
    return lo + dt.timedelta(days=int(rng.integers(0, (hi - lo).days + 1)))


def dates_for(rng, status: str, licence_type: str):
    """(applied_on, granted_on, expires_on) consistent with status at REFERENCE_DATE."""
    terms = LICENCE_TYPES[licence_type].terms_years
    if status == "applied":  # pending: mostly recent applications
        back = min(int(rng.exponential(300.0)), (LAST_APPLICATION - FIRST_APPLICATION).days)
        return LAST_APPLICATION - dt.timedelta(days=back), None, None
    if status == "refused":
        return random_date(rng, FIRST_APPLICATION, LAST_APPLICATION), None, None
    day = dt.timedelta(days=1)
    term = int(rng.choice(terms))
    # Surrendered or cancelled titles ended early; any grant date (not in the last 90 days).
    first_grant, last_grant = FIRST_APPLICATION, LAST_APPLICATION - 90 * day
    if status == "granted":  # still in force on the reference date
        first_grant = add_years(REFERENCE_DATE, -term)
        last_grant = LAST_APPLICATION
    elif status == "expired":  # the term ran out before the reference date
        shortest = FIRST_APPLICATION + MIN_DECISION_DAYS * day
        feasible = [t for t in terms if add_years(REFERENCE_DATE, -t) - day >= shortest]
        term = int(rng.choice(feasible))
        last_grant = add_years(REFERENCE_DATE, -term) - day
    longest = min(MAX_DECISION_DAYS, (last_grant - FIRST_APPLICATION).days)
    delay = int(rng.integers(MIN_DECISION_DAYS, longest + 1))
    granted = random_date(rng, max(first_grant, FIRST_APPLICATION + delay * day), last_grant)
    return granted - delay * day, granted, add_years(granted, term)


def holder_weights() -> np.ndarray:
    w = 1.0 / np.arange(1, len(HOLDERS) + 1) ** ZIPF_EXPONENT
    return w / w.sum()


def assign_attributes(rng, licences: list[Licence], provinces: list[Province]) -> None:
    hw = holder_weights()
    for lic in licences:
        status = weighted_choice(rng, STATUS_WEIGHTS)
        applied, granted, expires = dates_for(rng, status, lic.licence_type)
        lic.props = {
            "licence_type": lic.licence_type,
            "minerals": lic.minerals,
            "holder": HOLDERS[int(rng.choice(len(HOLDERS), p=hw))],
            "province": lic.province,
            "status": status,
            "applied_on": applied.isoformat(),
            "granted_on": granted.isoformat() if granted else None,
            "expires_on": expires.isoformat() if expires else None,
        }
    # Register numbers run per province in order of application.
    iso = {p.name: p.iso.split("-")[1] for p in provinces}
    order = sorted(
        range(len(licences)),
        key=lambda i: (licences[i].props["applied_on"], licences[i].province, i),
    )
    running: Counter[str] = Counter()
    for i in order:
        lic = licences[i]
        running[lic.province] += 1
        abbr = LICENCE_TYPES[lic.licence_type].abbr
        year = lic.props["applied_on"][:4]
        number = running[lic.province]
        lic.props["licence_no"] = f"{iso[lic.province]}-{abbr}-{year}-{number:06d}"
    licences[:] = [licences[i] for i in order]  # the file lists titles in register order


# ------------------------------------------------------------------------ output


GEOD = Geod(ellps="WGS84")


def geodesic_km2(geom) -> float:
    return abs(GEOD.geometry_area_perimeter(geom)[0]) / 1e6


def feature_json(lic: Licence) -> str:
    feature = {"type": "Feature", "properties": lic.props, "geometry": mapping(lic.geom)}
    return json.dumps(feature, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def write_geojson(path: Path, licences: list[Licence]) -> None:
    lines = [feature_json(lic) for lic in licences]
    text = '{"features":[\n' + ",\n".join(lines) + '\n],"type":"FeatureCollection"}\n'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))


def count_overlapping(licences: list[Licence]) -> int:
    index = GridIndex()
    for i, lic in enumerate(licences):
        index.add(i, lic.geom)
    n = 0
    for i, lic in enumerate(licences):
        for j in index.candidates(lic.geom):
            if j == i or not lic.geom.intersects(licences[j].geom):
                continue
            if geodesic_km2(lic.geom.intersection(licences[j].geom)) > 1e-6:  # > 1 m²
                n += 1
                break
    return n


def on_grid(geom) -> bool:
    """True if every vertex lies on the 30 arc-second graticule."""
    xy = shapely.get_coordinates(geom) * 120.0
    return bool(np.all(np.abs(xy - np.round(xy)) < 1e-3))


def summary(licences: list[Licence], path: Path) -> str:
    def table(title: str, counts: Counter[str]) -> list[str]:
        rows = [f"{title}:"]
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        rows += [f"  {k:<36} {v:>5}" for k, v in ordered]
        return rows

    out = [f"{len(licences)} synthetic licences written to {path}"]
    out += table("by type", Counter(lic.licence_type for lic in licences))
    out += table("by province", Counter(lic.province for lic in licences))
    out += table("by status", Counter(lic.props["status"] for lic in licences))
    shapes: Counter[str] = Counter()
    for lic in licences:
        polys = lic.geom.geoms if isinstance(lic.geom, MultiPolygon) else [lic.geom]
        shapes['graticule-aligned (30" grid)' if on_grid(lic.geom) else "irregular"] += 1
        shapes["  of which two-part MultiPolygon"] += len(polys) > 1
        shapes["  of which with a hole"] += any(p.interiors for p in polys)
    out += table("by shape", shapes)
    areas: dict[str, list[float]] = {}
    for lic in licences:
        areas.setdefault(lic.licence_type, []).append(geodesic_km2(lic.geom))
    out.append("geodesic area, km² (min / median / max):")
    for k in sorted(areas):
        a = np.array(areas[k])
        out.append(f"  {k:<36} {a.min():8.2f} {np.median(a):8.2f} {a.max():8.2f}")
    out.append(f"overlapping at least one other licence: {count_overlapping(licences)}")
    out.append(
        "deliberate overlaps of an earlier licence: "
        f"{sum(lic.deliberate_overlap for lic in licences)} "
        f"(of which wholly inside it: {sum(lic.wholly_inside for lic in licences)})"
    )
    out.append(f"sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}")
    return "\n".join(out)


def generate(count: int, seed: int) -> tuple[list[Licence], list[Province]]:
    rng = np.random.default_rng(seed)
    provinces = load_provinces()
    country = shape(load_features(COUNTRY_FILE)[0]["geometry"])
    shapely.prepare(country)
    occ_sources, occ_weights = load_occurrence_sources()
    licences: list[Licence] = []
    index = GridIndex()
    tries = deliberate = 0
    while len(licences) < count:
        tries += 1
        if tries > 200 * count:
            raise RuntimeError(f"gave up after {tries} tries with {len(licences)} licences")
        if len(licences) >= 20 and deliberate < SHARE_DELIBERATE_OVERLAP * len(licences):
            lic = overlapping_licence(rng, provinces, country, licences)
            deliberate += lic is not None
        else:
            lic = new_licence(rng, provinces, country, occ_sources, occ_weights, licences, index)
        if lic is not None:
            index.add(len(licences), lic.geom)
            licences.append(lic)
    assign_attributes(rng, licences, provinces)
    return licences, provinces


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="number of licences")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output GeoJSON file")
    args = parser.parse_args(argv)
    licences, _ = generate(args.count, args.seed)
    write_geojson(args.out, licences)
    print(summary(licences, args.out))


if __name__ == "__main__":
    main()
