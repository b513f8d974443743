"""CRS identifiers the register accepts, and the pinned conversions to WGS 84."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest

from cadastre.domain.crs import (
    ACCEPTED_EPSG,
    CRS84,
    CrsRef,
    area_of_use,
    parse_crs,
    transformation_to_wgs84,
)
from cadastre.errors import UnknownCRS

EPSG_1247 = pyproj.crs.CoordinateOperation.from_epsg(1247)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "text",
    [
        "EPSG:32642",
        "epsg:32642",
        "  EPSG:32642 ",
        "urn:ogc:def:crs:EPSG::32642",
        "URN:OGC:DEF:CRS:EPSG::32642",
        "urn:ogc:def:crs:EPSG:9.8.15:32642",
        "http://www.opengis.net/def/crs/EPSG/0/32642",
        "https://www.opengis.net/def/crs/EPSG/0/32642",
    ],
)
def test_epsg_forms_normalise(text: str) -> None:
    crs = parse_crs(text)
    assert crs == CrsRef(
        epsg=32642,
        identifier="EPSG:32642",
        uri="http://www.opengis.net/def/crs/EPSG/0/32642",
        name="WGS 84 / UTM zone 42N",
    )


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "OGC:CRS84",
        "CRS84",
        "crs84",
        "urn:ogc:def:crs:OGC:1.3:CRS84",
        "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        "https://www.opengis.net/def/crs/OGC/1.3/CRS84",
    ],
)
def test_crs84_forms_and_default(text: str | None) -> None:
    crs = parse_crs(text)
    assert crs is CRS84
    assert crs.epsg is None
    assert crs.identifier == "OGC:CRS84"
    assert crs.uri == "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    assert crs.is_wgs84_lonlat and crs.is_geographic


@pytest.mark.parametrize("code", ACCEPTED_EPSG)
def test_every_accepted_code_parses_with_its_epsg_name(code: int) -> None:
    crs = parse_crs(f"urn:ogc:def:crs:EPSG::{code}")
    assert crs.epsg == code
    assert crs.identifier == f"EPSG:{code}"
    assert crs.uri == f"http://www.opengis.net/def/crs/EPSG/0/{code}"
    assert crs.name == pyproj.CRS.from_epsg(code).name


def test_accepted_list_is_the_registers() -> None:
    assert set(ACCEPTED_EPSG) == {
        4326,
        32641,
        32642,
        32643,
        4145,
        24311,
        24312,
        24313,
        24376,
        24377,
    }


def test_web_mercator_is_refused_with_its_name() -> None:
    with pytest.raises(UnknownCRS) as info:
        parse_crs("EPSG:3857")
    error = info.value
    assert error.field == "crs"
    assert "'EPSG:3857'" in error.message
    assert "WGS 84 / Pseudo-Mercator" in error.message
    assert "map tiles" in error.message
    assert "EPSG:32642" in error.message and "OGC:CRS84" in error.message
    assert error.where is not None and error.where["epsg"] == 3857


def test_code_missing_from_epsg_is_refused() -> None:
    with pytest.raises(UnknownCRS) as info:
        parse_crs("urn:ogc:def:crs:EPSG::99999")
    assert "'urn:ogc:def:crs:EPSG::99999'" in info.value.message
    assert "not in the EPSG database" in info.value.message
    assert info.value.field == "crs"


@pytest.mark.parametrize(
    "text", ["garbage", "32642", "EPSG:", "EPSG:32642:1", "WGS84", "OGC:CRS83"]
)
def test_unrecognised_text_is_refused_naming_it(text: str) -> None:
    with pytest.raises(UnknownCRS) as info:
        parse_crs(text)
    assert repr(text) in info.value.message
    assert "accepted: EPSG:4326, EPSG:32641" in info.value.message
    assert info.value.where is not None and info.value.where["given"] == text


def test_area_of_use_in_degrees() -> None:
    assert area_of_use(parse_crs("EPSG:32642")) == (66.0, 0.0, 72.0, 84.0)
    assert area_of_use(parse_crs("EPSG:4145")) == (60.86, 21.05, 77.83, 37.07)
    assert area_of_use(CRS84) == (-180.0, -90.0, 180.0, 90.0)


def test_wgs84_needs_no_transformation() -> None:
    t = transformation_to_wgs84(parse_crs("EPSG:4326"))
    assert not t.approximate and t.epsg_operation is None
    xy = np.array([[69.0, 30.0]])
    assert np.array_equal(t.transform(xy), xy)


def test_wgs84_utm_is_the_exact_inverse_projection() -> None:
    t = transformation_to_wgs84(parse_crs("EPSG:32642"))
    assert t.description == "Inverse of UTM zone 42N (exact)"
    assert not t.approximate and t.epsg_operation is None
    forward = pyproj.Transformer.from_crs(4326, 32642, always_xy=True)
    lonlat = np.array([[69.0, 30.0], [71.9, 24.0], [66.1, 36.5]])
    xy = np.column_stack(forward.transform(lonlat[:, 0], lonlat[:, 1]))
    assert np.allclose(t.transform(xy), lonlat, atol=1e-9, rtol=0)


def test_kalianpur_goes_through_epsg_1247_in_lat_lon_order() -> None:
    t = transformation_to_wgs84(parse_crs("EPSG:4145"))
    assert t.approximate and t.epsg_operation == 1247
    assert t.description == (
        "EPSG:1247 Kalianpur 1962 to WGS 84 (1): 3-parameter shift, accuracy not stated"
    )
    lon, lat = t.transform([[69.0, 30.0]])[0]
    # A 3-parameter shift of (283, 682, 231) m moves this point about 20 m west.
    assert lon == pytest.approx(68.9998, abs=5e-5)
    assert lat == pytest.approx(29.9999, abs=5e-5)


def test_projected_kalianpur_is_inverse_projection_then_1247() -> None:
    t = transformation_to_wgs84(parse_crs("EPSG:24312"))
    assert t.approximate and t.epsg_operation == 1247
    assert t.description.startswith("Inverse of UTM zone 42N (exact), then EPSG:1247")
    to_grid = pyproj.Transformer.from_crs(4145, 24312, always_xy=True)
    shift = pyproj.Transformer.from_pipeline(EPSG_1247.to_json())
    kalianpur = [(69.0, 30.0), (70.5, 33.2)]
    for lon, lat in kalianpur:
        x, y = to_grid.transform(lon, lat)
        expected_lat, expected_lon = shift.transform(lat, lon)
        got = t.transform([[x, y]])[0]
        assert got == pytest.approx([expected_lon, expected_lat], abs=1e-9)


def test_transformers_are_built_once_per_crs() -> None:
    crs = parse_crs("EPSG:24313")
    assert transformation_to_wgs84(crs) is transformation_to_wgs84(parse_crs("EPSG:24313"))


@pytest.mark.parametrize("code", [24376, 24377])
def test_india_zone_grids_are_converted_through_1247(code: int) -> None:
    t = transformation_to_wgs84(parse_crs(f"EPSG:{code}"))
    assert t.epsg_operation == 1247 and t.approximate
    assert "India zone" in t.description


def test_transform_of_no_points() -> None:
    t = transformation_to_wgs84(parse_crs("EPSG:24312"))
    assert t.transform(np.empty((0, 2))).shape == (0, 2)
