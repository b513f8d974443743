"""Geometry intake: parsing, validity, CRS conversion and the messages for each refusal."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np
import pyproj
import pytest
import shapely

from cadastre.domain.crs import parse_crs
from cadastre.domain.geometry import (
    AREA_OF_USE_TOLERANCE_DEG,
    PAKISTAN_BBOX,
    geodesic_area_km2,
    intake,
    intake_array,
    parse_geometry,
    validate,
)
from cadastre.errors import InvalidGeometry, OutsideArea, UnknownCRS

EPSG_1247 = pyproj.crs.CoordinateOperation.from_epsg(1247)  # type: ignore[attr-defined]

# A small pentagon (lon, lat) in each UTM zone of Pakistan, counter-clockwise.
NEAR_QUETTA = [(66.95, 30.15), (67.05, 30.15), (67.08, 30.22), (67.0, 30.27), (66.93, 30.21)]
NEAR_CHAGAI = [(62.40, 28.95), (62.47, 28.95), (62.48, 29.01), (62.43, 29.04), (62.39, 29.0)]
NEAR_ISLAMABAD = [(73.0, 33.65), (73.1, 33.65), (73.12, 33.72), (73.05, 33.76), (72.98, 33.71)]


def closed(points: list[tuple[float, float]]) -> list[list[float]]:
    return [list(p) for p in [*points, points[0]]]


def polygon(*rings: list[list[Any]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


def raises(exc: type[InvalidGeometry], obj: object, crs: str | None = None) -> InvalidGeometry:
    with pytest.raises(exc) as info:
        intake(obj, crs)
    # Every error body must be plain JSON (no NaN), since it goes to the client.
    json.dumps(info.value.to_dict(), allow_nan=False)
    return info.value


# ---------------------------------------------------------------------------
# Round trips through every CRS
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "lonlat"),
    [
        (4326, NEAR_QUETTA),
        (32641, NEAR_CHAGAI),
        (32642, NEAR_QUETTA),
        (32643, NEAR_ISLAMABAD),
    ],
)
def test_wgs84_round_trip_is_exact(code: int, lonlat: list[tuple[float, float]]) -> None:
    forward = pyproj.Transformer.from_crs(4326, code, always_xy=True)
    submitted = [list(forward.transform(lon, lat)) for lon, lat in closed(lonlat)]
    result = intake(polygon(submitted), f"EPSG:{code}")

    assert result.crs.epsg == code
    assert not result.transformation.approximate
    got = shapely.get_coordinates(result.geometry)
    assert np.allclose(got, closed(lonlat), atol=1e-6, rtol=0)
    assert result.submitted == polygon(submitted)


@pytest.mark.parametrize(
    ("code", "lonlat"),
    [(4145, NEAR_QUETTA), (24312, NEAR_QUETTA), (24313, NEAR_ISLAMABAD), (24311, NEAR_CHAGAI)],
)
def test_kalianpur_matches_epsg_1247_and_is_flagged(
    code: int, lonlat: list[tuple[float, float]]
) -> None:
    # Treat the pentagon as Kalianpur 1962 coordinates, project them into the
    # CRS under test, and expect exactly what EPSG:1247 makes of them.
    to_crs = pyproj.Transformer.from_crs(4145, code, always_xy=True)
    shift = pyproj.Transformer.from_pipeline(EPSG_1247.to_json())
    submitted = [list(to_crs.transform(lon, lat)) for lon, lat in closed(lonlat)]
    expected = [shift.transform(lat, lon)[::-1] for lon, lat in closed(lonlat)]

    result = intake(polygon(submitted), f"EPSG:{code}")

    assert result.transformation.approximate
    assert result.transformation.epsg_operation == 1247
    assert "EPSG:1247" in result.transformation.description
    assert np.allclose(shapely.get_coordinates(result.geometry), expected, atol=1e-8, rtol=0)
    # The datum shift (about 10 m here) was applied, not skipped.
    assert not np.allclose(
        shapely.get_coordinates(result.geometry), closed(lonlat), atol=1e-5, rtol=0
    )


def test_epsg_4326_is_read_longitude_first() -> None:
    result = intake(polygon(closed(NEAR_QUETTA)), "urn:ogc:def:crs:EPSG::4326")
    assert shapely.get_coordinates(result.geometry)[0].tolist() == [66.95, 30.15]


def test_geodesic_area_of_a_10_km_utm_square() -> None:
    square = [[500000, 3300000], [510000, 3300000], [510000, 3310000], [500000, 3310000]]
    square.append(square[0])
    result = intake(polygon(square), "EPSG:32642")

    inverse = pyproj.Transformer.from_crs(32642, 4326, always_xy=True)
    lons, lats = inverse.transform([p[0] for p in square], [p[1] for p in square])
    expected_m2, _ = pyproj.Geod(ellps="WGS84").polygon_area_perimeter(lons, lats)

    area = geodesic_area_km2(result.geometry)
    assert area == pytest.approx(abs(expected_m2) / 1e6, rel=1e-4)
    # UTM shrinks distances by 0.9996 on the central meridian: 100 km² in the
    # grid is about 100.08 km² on the ground.
    assert area == pytest.approx(100.08, abs=0.01)


def test_geodesic_area_does_not_cancel_opposite_windings() -> None:
    ccw = shapely.box(68.0, 29.0, 68.1, 29.1, ccw=True)
    cw = shapely.box(69.0, 29.0, 69.1, 29.1, ccw=False)
    one = geodesic_area_km2(ccw)
    assert geodesic_area_km2(shapely.MultiPolygon([ccw, cw])) == pytest.approx(2 * one, rel=1e-3)
    holed = shapely.Polygon(ccw.exterior.coords, [shapely.box(68.02, 29.02, 68.04, 29.04).exterior])
    assert geodesic_area_km2(holed) < one


# ---------------------------------------------------------------------------
# Raw coordinate checks
# ---------------------------------------------------------------------------


def test_unclosed_ring_in_geojson_names_polygon_ring_and_vertices() -> None:
    good = closed(NEAR_QUETTA)
    bad = [[68.1, 29.2], [68.3, 29.2], [68.3, 29.4], [68.2, 29.4], [68.3, 29.2]]
    error = raises(InvalidGeometry, {"type": "MultiPolygon", "coordinates": [[good], [bad]]})
    assert error.message.startswith(
        "ring 0 of polygon 1 is not closed: first vertex (68.1, 29.2) differs from last "
        "vertex 4 (68.3, 29.2)"
    )
    assert "coordinates[1][0]" in error.message
    assert error.where == {
        "polygon": 1,
        "ring": 0,
        "vertex": 4,
        "path": "coordinates[1][0]",
        "first": [68.1, 29.2],
        "last": [68.3, 29.2],
    }


def test_unclosed_hole_in_wkt_names_the_ring() -> None:
    wkt = (
        "POLYGON ((68 29, 68.2 29, 68.2 29.2, 68 29.2, 68 29), "
        "(68.05 29.05, 68.1 29.05, 68.1 29.1, 68.05 29.1))"
    )
    error = raises(InvalidGeometry, wkt)
    assert error.message.startswith(
        "ring 1 of polygon 0 is not closed: first vertex (68.05, 29.05) differs from last "
        "vertex 3 (68.05, 29.1)"
    )
    assert error.where is not None and (error.where["polygon"], error.where["ring"]) == (0, 1)


def test_unclosed_ring_in_wkt_multipolygon() -> None:
    wkt = (
        "MULTIPOLYGON (((68 29, 68.1 29, 68.1 29.1, 68 29)), "
        "((69 29, 69.1 29, 69.1 29.1, 69 29.1)))"
    )
    error = raises(InvalidGeometry, wkt)
    assert "ring 0 of polygon 1 is not closed" in error.message
    assert "(69, 29)" in error.message and "(69, 29.1)" in error.message


@pytest.mark.parametrize(
    "obj",
    [
        polygon([[68, 29], [68.1, 29], [68, 29]]),
        "POLYGON ((68 29, 68.1 29, 68 29))",
    ],
)
def test_too_few_positions(obj: object) -> None:
    error = raises(InvalidGeometry, obj)
    assert error.message.startswith(
        "ring 0 of polygon 0 has 3 position(s); a ring needs at least 4"
    )
    assert error.where is not None and error.where["positions"] == 3


def test_degenerate_ring_is_too_few_points() -> None:
    error = raises(InvalidGeometry, "POLYGON ((68 29, 68.1 29, 68 29, 68 29))")
    assert error.message.startswith("too few points at (68, 29)")
    assert "fewer than 3 distinct corners" in error.message


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (float("nan"), "is NaN"),
        (float("inf"), "is infinite"),
        (-float("inf"), "is infinite"),
        (1e12, "is 1e+12, larger in magnitude than 1e+09"),
        (10**400, "is an integer of 401 digits, larger in magnitude than 1e+09"),
    ],
)
def test_bad_numbers_in_geojson(value: float, problem: str) -> None:
    ring = closed(NEAR_QUETTA)
    ring[3] = [ring[3][0], value]
    error = raises(InvalidGeometry, polygon(ring))
    assert error.message.startswith(f"coordinate 3 of ring 0 of polygon 0 {problem}")
    assert "(y)" in error.message and "(at coordinates[0][3])" in error.message
    assert error.where is not None
    assert (error.where["ring"], error.where["vertex"], error.where["axis"]) == (0, 3, "y")


@pytest.mark.parametrize(
    ("wkt_value", "problem"), [("NaN", "is NaN"), ("inf", "is infinite"), ("1e999", "is infinite")]
)
def test_bad_numbers_in_wkt(wkt_value: str, problem: str) -> None:
    wkt = f"POLYGON ((68 29, 68.1 29, 68.1 {wkt_value}, 68 29.1, 68 29))"
    error = raises(InvalidGeometry, wkt)
    assert error.message.startswith(f"coordinate 2 of ring 0 of polygon 0 {problem} (y)")


@pytest.mark.parametrize(
    ("value", "described"),
    [("29.1", "the string '29.1'"), (True, "true"), (None, "null"), ({}, "an object")],
)
def test_non_numbers_are_refused(value: object, described: str) -> None:
    ring: list[list[Any]] = closed(NEAR_QUETTA)
    ring[1] = [ring[1][0], value]
    error = raises(InvalidGeometry, polygon(ring))
    assert error.message == (
        f"coordinate 1 of ring 0 of polygon 0 has y = {described}, not a number "
        "(at coordinates[0][1])"
    )


@pytest.mark.parametrize("position", [[68.0], [68.0, 29.0, 100.0, 1.0]])
def test_position_needs_two_or_three_numbers(position: list[float]) -> None:
    ring = closed(NEAR_QUETTA)
    ring[2] = position
    error = raises(InvalidGeometry, polygon(ring))
    assert error.message.startswith(f"coordinate 2 of ring 0 of polygon 0 has {len(position)}")
    assert "2 or 3 numbers" in error.message


def test_wrong_nesting_names_the_path() -> None:
    flat = {"type": "Polygon", "coordinates": closed(NEAR_QUETTA)}
    error = raises(InvalidGeometry, {"type": "Feature", "geometry": flat, "properties": {}})
    assert error.message.startswith(
        "coordinate 0 of ring 0 of polygon 0 should be a position [x, y], not the number 66.95"
    )
    assert error.where is not None and error.where["path"] == "geometry.coordinates[0][0]"


def test_multipolygon_given_polygon_nesting() -> None:
    error = raises(InvalidGeometry, {"type": "MultiPolygon", "coordinates": [closed(NEAR_QUETTA)]})
    # One level short: the first number is where a position was expected.
    assert error.where is not None and error.where["path"] == "coordinates[0][0][0]"
    assert "should be a position [x, y], not the number 66.95" in error.message


@pytest.mark.parametrize(
    ("obj", "path", "text"),
    [
        ({"type": "Polygon"}, "coordinates", "coordinates is missing"),
        ({"type": "Feature", "properties": {}}, "geometry", "geometry is missing"),
        (
            {"type": "Feature", "geometry": {"type": "Polygon"}},
            "geometry.coordinates",
            "geometry.coordinates is missing",
        ),
        ({"coordinates": []}, "type", "type is missing"),
        ({"type": "Polygon", "coordinates": 5}, "coordinates", "coordinates should be an array"),
        ({"type": "Polygon", "coordinates": [[]]}, "coordinates[0]", "has 0 position(s)"),
    ],
)
def test_malformed_structure(obj: dict[str, Any], path: str, text: str) -> None:
    error = raises(InvalidGeometry, obj)
    assert text in error.message
    assert error.where is not None and error.where["path"] == path


def test_null_feature_geometry() -> None:
    error = raises(InvalidGeometry, {"type": "Feature", "geometry": None, "properties": {}})
    assert error.message == (
        "the Feature's geometry is null: a licence must be a Polygon or MultiPolygon"
    )


@pytest.mark.parametrize(
    ("obj", "name"),
    [
        ({"type": "Point", "coordinates": [68.0, 29.0]}, "Point"),
        ({"type": "LineString", "coordinates": [[68.0, 29.0], [68.1, 29.1]]}, "LineString"),
        ({"type": "GeometryCollection", "geometries": []}, "GeometryCollection"),
        ({"type": "FeatureCollection", "features": []}, "FeatureCollection"),
        ("POINT (68 29)", "Point"),
        ("LINESTRING (68 29, 68.1 29.1)", "LineString"),
        ("GEOMETRYCOLLECTION (POLYGON ((68 29, 68.1 29, 68.1 29.1, 68 29)))", "GeometryCollection"),
    ],
)
def test_only_polygons_are_licences(obj: object, name: str) -> None:
    error = raises(InvalidGeometry, obj)
    assert error.message.startswith(f"a licence must be a Polygon or MultiPolygon, got {name}")
    assert error.where == {"type": name}


@pytest.mark.parametrize(
    "obj",
    [
        "POLYGON EMPTY",
        "MULTIPOLYGON EMPTY",
        {"type": "Polygon", "coordinates": []},
        {"type": "MultiPolygon", "coordinates": []},
    ],
)
def test_empty_geometry_is_refused(obj: object) -> None:
    error = raises(InvalidGeometry, obj)
    assert error.message == "the geometry is empty: a licence must be a Polygon or MultiPolygon"


def test_validate_refuses_empty_and_missing() -> None:
    crs = parse_crs(None)
    with pytest.raises(InvalidGeometry, match="the geometry is empty"):
        validate(shapely.Polygon(), crs)
    with pytest.raises(InvalidGeometry, match="no geometry"):
        validate(None, crs)


@pytest.mark.parametrize(
    ("wkt", "message"),
    [
        ("SRID=4326;POLYGON ((68 29, 68.1 29, 68.1 29.1, 68 29))", "'SRID=...;' prefix"),
        ("POLYGON ((68 29, 68.1 29, 68.1 29.1, 68 29)", "character 43: expected ',' or ')'"),
        ("POLYGON ((68 29, 68.1 29 #))", "character 25: unexpected character '#'"),
        ("POLYGON ((68 29, 68.1 29 x))", "character 25: expected ',' or ')', found 'x'"),
        ("POLYGON ((68 29, 68.1 29, 68.1 29.1, 68 29)) extra", "expected the end of the WKT"),
        ("POLYGONS ((68 29))", "character 0: expected a WKT geometry type"),
        ("POLYGON M ((68 29 1, 68.1 29 1, 68.1 29.1 1, 68 29 1))", "measured (M)"),
        ("   ", "empty string"),
    ],
)
def test_wkt_errors_say_where(wkt: str, message: str) -> None:
    error = raises(InvalidGeometry, wkt)
    assert message in error.message


def test_z_is_dropped() -> None:
    wkt = "POLYGON Z ((68 29 1000, 68.1 29 1010, 68.1 29.1 990, 68 29 1000))"
    assert not intake(wkt, None).geometry.has_z
    ring = [[*p, 1500.0] for p in closed(NEAR_QUETTA)]
    assert not intake(polygon(ring), None).geometry.has_z


def test_parse_geometry_keeps_the_submitted_type() -> None:
    assert parse_geometry(polygon(closed(NEAR_QUETTA))).geom_type == "Polygon"
    multi = {"type": "MultiPolygon", "coordinates": [[closed(NEAR_QUETTA)]]}
    assert parse_geometry(multi).geom_type == "MultiPolygon"
    assert parse_geometry(json.dumps(multi)).geom_type == "MultiPolygon"


# ---------------------------------------------------------------------------
# Validity in the submitted CRS
# ---------------------------------------------------------------------------

BOW_TIE = "POLYGON ((68 29, 68.5 29.8, 68.5 29, 68 29.8, 68 29))"


def test_bow_tie_names_the_crossing() -> None:
    error = raises(InvalidGeometry, BOW_TIE)
    assert error.message.startswith("self-intersection at (68.25, 29.4)")
    assert error.where == {"reason": "Self-intersection[68.25 29.4]", "x": 68.25, "y": 29.4}


def test_bow_tie_in_utm_gives_grid_and_lon_lat() -> None:
    ring = [[500000, 3300000], [510000, 3310000], [510000, 3300000], [500000, 3310000]]
    error = raises(InvalidGeometry, polygon([*ring, ring[0]]), "EPSG:32642")
    assert error.message.startswith(
        "self-intersection at (505000, 3305000) in EPSG:32642 (lon 69.051777, lat 29.875581)"
    )
    assert error.where is not None
    assert error.where["lon"] == pytest.approx(69.051777, abs=1e-6)


def test_hole_outside_shell() -> None:
    wkt = (
        "POLYGON ((68 29, 68.1 29, 68.1 29.1, 68 29.1, 68 29), "
        "(68.5 29.5, 68.6 29.5, 68.6 29.6, 68.5 29.5))"
    )
    error = raises(InvalidGeometry, wkt)
    assert error.message.startswith("hole lies outside shell at (68.5, 29.5)")


def test_nested_shells_name_the_inner_polygon() -> None:
    wkt = (
        "MULTIPOLYGON (((68 29, 69 29, 69 30, 68 30, 68 29)), "
        "((68.2 29.2, 68.4 29.2, 68.4 29.4, 68.2 29.2)))"
    )
    error = raises(InvalidGeometry, wkt)
    assert error.message.startswith("nested shells at (68.2, 29.2) (polygon 1)")
    assert "use a hole instead" in error.message
    assert error.where is not None and error.where["polygon"] == 1


def test_ring_self_intersection() -> None:
    wkt = "POLYGON ((68 29, 68.2 29, 68.1 29.1, 68.2 29.2, 68 29.2, 68.1 29.1, 68 29))"
    error = raises(InvalidGeometry, wkt)
    assert error.message.startswith("ring self-intersection at (68.1, 29.1)")


def test_disconnected_interior() -> None:
    wkt = (
        "POLYGON ((68 29, 68.4 29, 68.4 29.4, 68 29.4, 68 29), "
        "(68 29.2, 68.2 29, 68.4 29.2, 68.2 29.4, 68 29.2))"
    )
    error = raises(InvalidGeometry, wkt)
    assert error.message.startswith("interior is disconnected at (68.2, 29)")


def test_repair_splits_a_bow_tie() -> None:
    result = intake(BOW_TIE, "EPSG:4326", repair=True)
    assert result.geometry.geom_type == "MultiPolygon"
    assert shapely.is_valid(result.geometry)
    assert len(result.geometry.geoms) == 2
    assert result.repaired is not None
    assert result.repaired["reason"].startswith("self-intersection at (68.25, 29.4)")
    assert result.repaired["parts_before"] == 1
    assert result.repaired["parts_after"] == 2
    # The two lobes of this symmetric bow-tie cancel: no area to compare with.
    assert result.repaired["area_change_pct"] is None
    assert result.repaired["area_km2"] == pytest.approx(geodesic_area_km2(result.geometry))
    assert all(part.exterior.is_ccw for part in result.geometry.geoms)


def test_repair_reports_area_change() -> None:
    # A spike out of the square and back: make_valid drops the zero-width spike.
    wkt = "POLYGON ((68 29, 68.1 29, 68.1 29.1, 68.1 29.2, 68.1 29.1, 68 29.1, 68 29))"
    result = intake(wkt, None, repair=True)
    assert result.repaired is not None
    assert result.repaired["area_change_pct"] == pytest.approx(0.0, abs=1e-9)
    assert result.repaired["parts_after"] == 1


def test_valid_geometry_is_not_reported_as_repaired() -> None:
    assert intake(polygon(closed(NEAR_QUETTA)), None, repair=True).repaired is None


def test_repair_does_not_close_rings() -> None:
    with pytest.raises(InvalidGeometry, match="is not closed"):
        intake("POLYGON ((68 29, 68.1 29, 68.1 29.1, 68 29.1))", None, repair=True)


# ---------------------------------------------------------------------------
# Area of use and Pakistan
# ---------------------------------------------------------------------------


def test_lat_lon_swapped_is_detected() -> None:
    swapped = [[lat, lon] for lon, lat in closed(NEAR_QUETTA)]
    error = raises(OutsideArea, polygon(swapped), "EPSG:4326")
    assert error.message.startswith(
        "vertex 0 of ring 0 of polygon 0 at (30.15, 66.95) is outside Pakistan"
    )
    assert "Hint: latitude and longitude look swapped" in error.message
    assert error.where is not None
    assert error.where["check"] == "pakistan"
    assert error.where["vertices_outside"] == 6


def test_easting_northing_swapped_is_detected() -> None:
    forward = pyproj.Transformer.from_crs(4326, 32642, always_xy=True)
    swapped = [list(forward.transform(lon, lat))[::-1] for lon, lat in closed(NEAR_QUETTA)]
    error = raises(OutsideArea, polygon(swapped), "EPSG:32642")
    assert "Hint: easting and northing look swapped" in error.message


def test_wrong_utm_zone_is_named() -> None:
    # Islamabad in zone 42 grid coordinates: about 2 degrees past the zone edge.
    forward = pyproj.Transformer.from_crs(4326, 32642, always_xy=True)
    submitted = [list(forward.transform(lon, lat)) for lon, lat in closed(NEAR_ISLAMABAD)]
    error = raises(OutsideArea, polygon(submitted), "EPSG:32642")
    x, y = submitted[0]
    assert error.message.startswith(
        f"vertex 0 of ring 0 of polygon 0 at ({x!r}, {y!r}) in EPSG:32642"
    )
    assert "(lon 73.000000, lat 33.650000)" in error.message
    assert "outside the area of use of EPSG:32642 (WGS 84 / UTM zone 42N)" in error.message
    assert "belongs to UTM zone 43N, not zone 42N" in error.message
    assert "EPSG:32643" in error.message
    assert error.where is not None and error.where["check"] == "area_of_use"


def test_wrong_utm_zone_suggests_the_same_datum() -> None:
    forward = pyproj.Transformer.from_crs(4145, 24312, always_xy=True)
    submitted = [list(forward.transform(lon, lat)) for lon, lat in closed(NEAR_ISLAMABAD)]
    error = raises(OutsideArea, polygon(submitted), "EPSG:24312")
    assert "EPSG:24313" in error.message


def test_just_past_the_zone_edge_is_tolerated() -> None:
    # Surveyors carry a zone a little beyond its edge; 72.3° E in zone 42 is fine.
    assert AREA_OF_USE_TOLERANCE_DEG == 0.5
    forward = pyproj.Transformer.from_crs(4326, 32642, always_xy=True)
    ring = [(72.2, 33.0), (72.3, 33.0), (72.3, 33.1), (72.2, 33.0)]
    submitted = [list(forward.transform(lon, lat)) for lon, lat in ring]
    assert intake(polygon(submitted), "EPSG:32642").geometry.bounds[2] == pytest.approx(72.3)


def test_degrees_declared_as_utm() -> None:
    error = raises(OutsideArea, polygon(closed(NEAR_QUETTA)), "EPSG:32642")
    assert "look like longitude/latitude in degrees, not metres: declare EPSG:4326" in error.message


def test_metres_declared_as_degrees() -> None:
    square = [[500000, 3300000], [510000, 3300000], [510000, 3310000], [500000, 3300000]]
    error = raises(OutsideArea, polygon(square), None)
    assert "outside the area of use of OGC:CRS84" in error.message
    assert "look like metres, not degrees" in error.message


def test_outside_pakistan_names_the_first_vertex_outside() -> None:
    # Vertex 3 strays into Iran (59.9° E); the others are in Balochistan.
    ring = [[61.0, 28.0], [61.2, 28.0], [61.2, 28.2], [59.9, 28.2], [61.0, 28.0]]
    error = raises(OutsideArea, polygon(ring))
    assert error.message.startswith(
        "vertex 3 of ring 0 of polygon 0 at (59.9, 28.2) is outside Pakistan, "
        "60.5° E to 78° E, 23.3° N to 37.3° N"
    )
    assert "other vertex" not in error.message
    assert error.where is not None
    assert (error.where["vertex"], error.where["lon"], error.where["lat"]) == (3, 59.9, 28.2)
    assert error.where["bbox"] == list(PAKISTAN_BBOX)


def test_outside_pakistan_in_the_second_polygon() -> None:
    # Polygon 1 dips south of 23.3° N at its first and last (closing) vertex
    # and at vertex 1.
    wkt = (
        "MULTIPOLYGON (((66 25, 66.1 25, 66.1 25.1, 66 25)), "
        "((70 23.2, 70.1 23.2, 70.1 23.4, 70 23.2)))"
    )
    error = raises(OutsideArea, wkt)
    assert error.message.startswith("vertex 0 of ring 0 of polygon 1 at (70, 23.2)")
    assert "2 other vertex(es)" in error.message
    assert error.where is not None and error.where["polygon"] == 1


def test_embedded_geojson_crs_must_agree() -> None:
    obj = polygon(closed(NEAR_QUETTA))
    obj["crs"] = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4145"}}
    with pytest.raises(UnknownCRS) as info:
        intake(obj, None)
    assert "EPSG:4145" in info.value.message and "OGC:CRS84" in info.value.message
    assert intake(obj, "EPSG:4145").transformation.epsg_operation == 1247


# ---------------------------------------------------------------------------
# Output shape and orientation
# ---------------------------------------------------------------------------


def test_clockwise_exterior_comes_back_counter_clockwise() -> None:
    clockwise = closed(NEAR_QUETTA)[::-1]
    assert not shapely.LinearRing(clockwise).is_ccw
    result = intake({"type": "Feature", "geometry": polygon(clockwise), "properties": {}}, None)
    assert result.geometry.geom_type == "MultiPolygon"
    assert result.geometry.geoms[0].exterior.is_ccw


def test_multipolygon_with_hole_is_kept_with_rfc7946_orientation() -> None:
    shell = [[68, 29], [68, 29.4], [68.4, 29.4], [68.4, 29], [68, 29]]  # clockwise
    hole = [[68.1, 29.1], [68.3, 29.1], [68.3, 29.3], [68.1, 29.3], [68.1, 29.1]]  # ccw
    other = [[69, 29], [69.1, 29], [69.1, 29.1], [69, 29.1], [69, 29]]
    obj = {"type": "MultiPolygon", "coordinates": [[shell, hole], [other]]}
    result = intake(obj, None)

    first, second = result.geometry.geoms
    assert len(first.interiors) == 1
    assert first.exterior.is_ccw and not first.interiors[0].is_ccw and second.exterior.is_ccw
    outer = geodesic_area_km2(shapely.Polygon(shell))
    inner = geodesic_area_km2(shapely.Polygon(hole))
    assert geodesic_area_km2(first) == pytest.approx(outer - inner, rel=1e-9)


def test_submitted_is_kept_as_given() -> None:
    obj = polygon(closed(NEAR_QUETTA))
    result = intake(obj, "EPSG:4326")
    assert result.submitted == obj and result.submitted is not obj
    wkt = "POLYGON ((68 29, 68.1 29, 68.1 29.1, 68 29))"
    assert intake(wkt, None).submitted is wkt
    text = json.dumps(obj)
    assert intake(text, None).submitted is text


# ---------------------------------------------------------------------------
# Bulk intake
# ---------------------------------------------------------------------------


def _bulk_rows() -> list[Any]:
    forward = pyproj.Transformer.from_crs(4326, 32642, always_xy=True)

    def utm(ring: list[list[float]]) -> Any:
        return shapely.Polygon([forward.transform(lon, lat) for lon, lat in ring])

    swapped = [[lat, lon] for lon, lat in closed(NEAR_QUETTA)]
    with np.errstate(invalid="ignore"):  # GDAL can hand over NaN; shapely warns
        nan_row = shapely.Polygon([(500000, 3300000), (510000, np.nan), (510000, 3310000)])
    return [
        utm(closed(NEAR_QUETTA)),  # 0 ok
        None,  # 1 missing
        shapely.Point(500000, 3300000),  # 2 not a polygon
        shapely.from_wkt(
            "POLYGON ((500000 3300000, 510000 3310000, 510000 3300000, 500000 3310000, "
            "500000 3300000))"
        ),  # 3 bow-tie
        shapely.MultiPolygon([utm(closed(NEAR_QUETTA))]),  # 4 ok
        shapely.Polygon(swapped),  # 5 degrees declared as UTM
        utm(closed(NEAR_ISLAMABAD)),  # 6 outside zone 42
        nan_row,  # 7 NaN
        shapely.Polygon(),  # 8 empty
        utm(closed(NEAR_QUETTA)[::-1]),  # 9 ok, clockwise
    ]


def test_intake_array_flags_only_bad_rows() -> None:
    rows = _bulk_rows()
    result = intake_array(np.array(rows, dtype=object), "EPSG:32642")

    assert sorted(result.errors) == [1, 2, 3, 5, 6, 7, 8]
    assert [g is None for g in result.geometries] == [i in result.errors for i in range(len(rows))]
    assert result.errors[1].message.startswith("no geometry")
    assert result.errors[2].message.startswith(
        "a licence must be a Polygon or MultiPolygon, got Point"
    )
    assert result.errors[3].message.startswith("self-intersection at (505000, 3305000)")
    assert isinstance(result.errors[5], OutsideArea)
    assert isinstance(result.errors[6], OutsideArea)
    assert "UTM zone 43N" in result.errors[6].message
    assert result.errors[7].message.startswith("coordinate 1 of ring 0 of polygon 0 is NaN (y)")
    assert result.errors[8].message.startswith("the geometry is empty")
    for i in (0, 4, 9):
        geom = result.geometries[i]
        assert geom.geom_type == "MultiPolygon"
        assert geom.geoms[0].exterior.is_ccw
    assert result.repaired == {}


def test_intake_array_agrees_with_intake() -> None:
    rows = _bulk_rows()
    bulk = intake_array(rows, "EPSG:32642")
    for i, geom in enumerate(rows):
        obj = shapely.geometry.mapping(geom) if geom is not None else None
        if i in bulk.errors:
            if i in (3, 5, 6, 8):  # parse_geometry itself accepts these
                with pytest.raises(InvalidGeometry) as info:
                    intake(obj, "EPSG:32642")
                assert info.value.message == bulk.errors[i].message
            continue
        single = intake(json.loads(json.dumps(obj)), "EPSG:32642")
        assert shapely.equals_exact(single.geometry, bulk.geometries[i], tolerance=0)


def test_intake_array_repairs_and_reports_by_row() -> None:
    rows = _bulk_rows()
    result = intake_array(rows, "EPSG:32642", repair=True)
    assert 3 not in result.errors
    assert list(result.repaired) == [3]
    assert result.repaired[3]["parts_after"] == 2
    assert shapely.is_valid(result.geometries[3])


def test_intake_array_refuses_an_unknown_crs_for_the_whole_file() -> None:
    with pytest.raises(UnknownCRS):
        intake_array(_bulk_rows(), "EPSG:3857")


def test_intake_array_handles_all_rejected_and_empty_input() -> None:
    assert len(intake_array([], None).geometries) == 0
    result = intake_array([None, None], None)
    assert sorted(result.errors) == [0, 1] and list(result.geometries) == [None, None]


def test_intake_array_100k_rows_is_fast() -> None:
    rng = np.random.default_rng(42)
    n = 100_000
    x = rng.uniform(300_000, 700_000, n)
    y = rng.uniform(2_800_000, 3_900_000, n)
    boxes = shapely.box(x, y, x + 500, y + 500, ccw=False)
    boxes[[10, 20_000, 99_999]] = shapely.from_wkt(
        "POLYGON ((0 0, 10 10, 10 0, 0 10, 0 0))"
    )  # bow-ties

    start = time.perf_counter()
    result = intake_array(boxes, "EPSG:32642")
    elapsed = time.perf_counter() - start

    assert sorted(result.errors) == [10, 20_000, 99_999]
    assert elapsed < 10, f"{elapsed:.1f} s for {n} rows"
    assert math.isclose(geodesic_area_km2(result.geometries[0]), 0.25, rel_tol=2e-3)
