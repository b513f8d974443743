"""Intake of licence geometries: parse, check, convert to WGS 84 lon/lat.

A submitted boundary goes through one pipeline, whether it comes alone from
the API (:func:`intake`) or by the hundred thousand from a file import
(:func:`intake_array`):

1. parse the CRS (:func:`cadastre.domain.crs.parse_crs`);
2. parse the geometry, checking the raw coordinates before shapely sees them
   (:func:`parse_geometry`; file imports arrive already parsed by GDAL);
3. check validity in the submitted CRS (:func:`validate`), or repair;
4. convert every vertex to WGS 84 longitude/latitude and check it lies in the
   CRS's area of use and in Pakistan's bounding box;
5. orient rings as RFC 7946 asks (exterior counter-clockwise) and return a
   MultiPolygon in EPSG:4326, x = longitude.

Every refusal is an :class:`~cadastre.errors.InvalidGeometry` (or its subclass
:class:`~cadastre.errors.OutsideArea`) whose message names the problem and
where it is: polygon, ring and vertex indices (0-based, as in the GeoJSON
arrays; ring 0 is the exterior ring) and the coordinate as submitted.
"""

from __future__ import annotations

import copy
import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NoReturn, TypeGuard

import numpy as np
import pyproj
import shapely
from numpy.typing import NDArray

from cadastre.domain.crs import (
    KALIANPUR_1962,
    UTM_ZONES,
    CrsRef,
    Transformation,
    area_of_use,
    parse_crs,
    transformation_to_wgs84,
)
from cadastre.errors import InvalidGeometry, OutsideArea, UnknownCRS

__all__ = [
    "AREA_OF_USE_TOLERANCE_DEG",
    "DEFAULT_LIMITS",
    "MAX_ABS_COORDINATE",
    "PAKISTAN_BBOX",
    "BulkIntake",
    "Intake",
    "ShapeLimits",
    "geodesic_area_km2",
    "intake",
    "intake_array",
    "parse_geometry",
    "validate",
]

#: Degrees by which a vertex may lie outside its CRS's EPSG area of use.
#: Surveyors routinely carry a UTM zone a little past its edge rather than
#: split a sheet, and the projection is still accurate there.
AREA_OF_USE_TOLERANCE_DEG = 0.5

#: Pakistan's bounding box, (west, south, east, north) in degrees, WGS 84. The
#: exact national boundary is checked later in the database, not here.
PAKISTAN_BBOX: tuple[float, float, float, float] = (60.5, 23.3, 78.0, 37.3)

#: Largest absolute coordinate value accepted, in CRS units. Larger values
#: are typing errors (or units of millimetres) and would overflow PROJ.
MAX_ABS_COORDINATE = 1e9


@dataclass(frozen=True)
class ShapeLimits:
    """How large a submitted shape may be (settings ``CADASTRE_MAX_VERTICES`` and
    ``CADASTRE_MAX_PARTS``): a boundary is surveyed, not traced pixel by pixel."""

    max_vertices: int = 100_000
    max_parts: int = 1_000
    max_features: int = 2_000_000  # rows of one import (CADASTRE_MAX_IMPORT_FEATURES)


DEFAULT_LIMITS = ShapeLimits()

_POLYGON = 3
_MULTIPOLYGON = 6
_POLYGONAL = "a licence must be a Polygon or MultiPolygon"
_GEOD = pyproj.Geod(ellps="WGS84")


@dataclass(frozen=True)
class Intake:
    """One accepted licence geometry.

    Attributes
    ----------
    geometry : shapely.MultiPolygon
        The boundary in WGS 84 longitude/latitude (EPSG:4326, x = longitude),
        exterior rings counter-clockwise and holes clockwise (RFC 7946).
    submitted : dict or str
        The geometry exactly as given (a copy of the GeoJSON object, or the
        WKT text). With its CRS it remains the legal record.
    crs : CrsRef
        The CRS the coordinates were submitted in.
    transformation : Transformation
        The conversion used to reach WGS 84; ``approximate`` for Kalianpur 1962.
    repaired : dict or None
        None if the geometry was valid as submitted; otherwise what
        ``repair=True`` changed (see :func:`intake`).
    """

    geometry: Any
    submitted: dict[str, Any] | str
    crs: CrsRef
    transformation: Transformation
    repaired: dict[str, Any] | None = None


@dataclass(frozen=True)
class BulkIntake:
    """The outcome of :func:`intake_array` for a whole file.

    Attributes
    ----------
    geometries : numpy.ndarray of object
        One shapely MultiPolygon per input row, in WGS 84 longitude/latitude,
        RFC 7946 orientation; None where the row was rejected.
    errors : dict of int to InvalidGeometry
        The reason for each rejected row, keyed by row index.
    repaired : dict of int to dict
        What ``repair=True`` changed, keyed by row index.
    crs : CrsRef
        The CRS the rows were submitted in.
    transformation : Transformation
        The conversion used to reach WGS 84.
    """

    geometries: NDArray[np.object_]
    errors: dict[int, InvalidGeometry]
    repaired: dict[int, dict[str, Any]]
    crs: CrsRef
    transformation: Transformation

    @property
    def ok(self) -> bool:
        """True when no row was rejected."""
        return not self.errors


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def parse_geometry(obj: object) -> Any:
    """Parse a submitted polygon, checking its raw coordinates first.

    Parameters
    ----------
    obj : dict or str
        A GeoJSON Feature (its ``"geometry"`` is used), a GeoJSON geometry
        object, the same as JSON text, or WKT text (``POLYGON``,
        ``MULTIPOLYGON``, optionally with ``Z``). Coordinates are in whatever
        CRS the submission declares, x first (easting or longitude).

    Returns
    -------
    shapely.Polygon or shapely.MultiPolygon
        The geometry as submitted, Z dropped, not yet checked for validity.

    Raises
    ------
    InvalidGeometry
        If the object is not a Polygon or MultiPolygon, its structure is
        malformed (the message names the JSON path, e.g.
        ``geometry.coordinates[0][3]``), a coordinate is not a finite number
        of at most :data:`MAX_ABS_COORDINATE` in magnitude, a ring has fewer
        than 4 positions, or a ring is not closed. The message names the
        polygon, ring and coordinate indices (0-based).

    Notes
    -----
    The checks run on the raw coordinates because shapely silently closes
    open rings, which would hide a missing or mistyped last vertex. EWKT
    with an ``SRID=...;`` prefix is refused: the CRS is declared once, beside
    the geometry, so that two declarations can never disagree.

    Examples
    --------
    >>> parse_geometry("POLYGON ((68 29, 68.1 29, 68.1 29.1, 68 29))").geom_type
    'Polygon'
    """
    kind, polygons = _raw_polygons(obj)
    shapes = [
        shapely.Polygon(rings[0], rings[1:]) if rings else shapely.Polygon() for rings in polygons
    ]
    if kind == "Polygon":
        return shapes[0] if shapes else shapely.Polygon()
    return shapely.MultiPolygon(shapes)


def validate(geom: Any, crs: CrsRef) -> None:
    """Check that a polygon is valid in the CRS it was submitted in.

    Parameters
    ----------
    geom : shapely.Polygon or shapely.MultiPolygon
        Coordinates in ``crs`` (x = easting or longitude).
    crs : CrsRef
        The submitted CRS; used to add longitude/latitude to messages.

    Raises
    ------
    InvalidGeometry
        If the geometry is missing, empty, not polygonal, has a non-finite
        coordinate, or is invalid by the OGC rules as GEOS checks them
        (self-intersection, ring self-intersection, hole outside shell,
        nested holes or shells, too few points, disconnected interior). The
        message names the problem and the coordinate where GEOS found it, in
        the submitted CRS, e.g. ``"self-intersection at (68.25, 29.4)..."``;
        ``where`` holds ``x``, ``y`` (and ``lon``, ``lat``, ``polygon`` when
        known) and the raw GEOS ``reason``.
    """
    checked = _check_shapes(_as_array([geom]), crs, transformation_to_wgs84(crs), repair=False)
    if 0 in checked.errors:
        raise checked.errors[0]


def intake(
    obj: object,
    crs_text: str | None,
    *,
    repair: bool = False,
    limits: ShapeLimits = DEFAULT_LIMITS,
) -> Intake:
    """Accept one submitted licence boundary, or say precisely why not.

    Parameters
    ----------
    obj : dict or str
        A GeoJSON Feature or geometry (or its JSON text), or WKT; see
        :func:`parse_geometry`.
    crs_text : str or None
        The declared CRS, in any form :func:`~cadastre.domain.crs.parse_crs`
        accepts; None means OGC:CRS84 (WGS 84 longitude/latitude).
    repair : bool, default False
        If True, an invalid geometry is repaired with
        ``shapely.make_valid(method="structure")``, only its polygonal parts
        are kept, and :attr:`Intake.repaired` reports ``reason`` (what was
        wrong), ``parts_before``, ``parts_after``, ``area_change_pct``
        (planar, in the submitted CRS; None when the submitted rings enclose
        no net area, as in a symmetric bow-tie) and ``area_km2`` (geodesic,
        after repair). Malformed input (unclosed rings, NaN...) is never
        repaired.

    Returns
    -------
    Intake
        The MultiPolygon in EPSG:4326 (x = longitude), RFC 7946 orientation,
        with the submission, its CRS and the transformation used.

    Raises
    ------
    UnknownCRS
        If the CRS is not accepted, or a GeoJSON ``crs`` member contradicts it.
    InvalidGeometry
        If the geometry is malformed or invalid (see :func:`parse_geometry`
        and :func:`validate`).
    OutsideArea
        If a vertex lies outside the CRS's area of use (with
        :data:`AREA_OF_USE_TOLERANCE_DEG` of tolerance) or outside Pakistan's
        bounding box :data:`PAKISTAN_BBOX`. The message names the first such
        vertex, its submitted coordinate and its longitude/latitude, and hints
        at swapped axes, degrees sent as metres (or the reverse) and wrong UTM
        zones where it can tell.

    Examples
    --------
    >>> square = "POLYGON ((68 29, 68 29.1, 68.1 29.1, 68.1 29, 68 29))"
    >>> result = intake(square, "EPSG:4326")
    >>> result.geometry.geom_type, result.geometry.geoms[0].exterior.is_ccw
    ('MultiPolygon', True)
    """
    crs = parse_crs(crs_text)
    _check_embedded_crs(_decoded(obj), crs)
    geom = parse_geometry(obj)
    result = _run(_as_array([geom]), crs, repair=repair, limits=limits)
    if 0 in result.errors:
        raise result.errors[0]
    # parse_geometry accepts only strings and mappings.
    submitted = obj if isinstance(obj, str) else copy.deepcopy(dict(obj))  # type: ignore[call-overload]
    return Intake(
        geometry=result.geometries[0],
        submitted=submitted,
        crs=crs,
        transformation=result.transformation,
        repaired=result.repaired.get(0),
    )


def intake_array(
    geoms: Any,
    crs_text: str | None,
    *,
    repair: bool = False,
    limits: ShapeLimits = DEFAULT_LIMITS,
) -> BulkIntake:
    """Accept a whole file of licence boundaries at once.

    Parameters
    ----------
    geoms : array_like of shapely geometries
        One geometry per row (None allowed), already parsed by GDAL, in the
        declared CRS (x = easting or longitude). A numpy object array, a list
        or a GeoSeries.
    crs_text : str or None
        The CRS of every row; None means OGC:CRS84.
    repair : bool, default False
        As for :func:`intake`.

    Returns
    -------
    BulkIntake
        MultiPolygons in EPSG:4326 (x = longitude), RFC 7946 orientation, with
        None and an entry in ``errors`` for every rejected row. Row indices are
        those of the input.

    Raises
    ------
    UnknownCRS
        If the CRS is not accepted (the whole file is refused).

    Notes
    -----
    The checks are those of :func:`intake` except the raw-coordinate ones of
    :func:`parse_geometry`, which GDAL has already made; a missing geometry is
    rejected. Every step runs on whole arrays with shapely 2 and numpy; Python
    loops only over rejected rows to word their messages. 100,000 small
    polygons take about a second.
    """
    crs = parse_crs(crs_text)
    arr = _as_array(geoms)
    if len(arr) > limits.max_features:
        raise InvalidGeometry(
            f"the file holds {len(arr):,} features; at most {limits.max_features:,} are "
            "accepted in one import (CADASTRE_MAX_IMPORT_FEATURES)",
            field="file",
        )
    return _run(arr, crs, repair=repair, limits=limits)


def geodesic_area_km2(geom: Any) -> float:
    """Return the area of a polygon on the WGS 84 ellipsoid.

    Parameters
    ----------
    geom : shapely.Polygon or shapely.MultiPolygon
        In WGS 84 longitude/latitude (EPSG:4326, x = longitude), e.g.
        :attr:`Intake.geometry`.

    Returns
    -------
    float
        Area in square kilometres (holes excluded), computed geodesically
        with ``pyproj.Geod(ellps="WGS84")``; never planar degrees.

    Examples
    --------
    >>> round(geodesic_area_km2(shapely.box(68.0, 29.0, 68.1, 29.1)), 1)
    107.9
    """
    # pyproj sums signed ring areas, so parts or holes wound the "wrong" way
    # would cancel out; orient them consistently first.
    oriented = shapely.orient_polygons(geom, exterior_cw=False)
    area_m2, _perimeter = _GEOD.geometry_area_perimeter(oriented)
    return abs(float(area_m2)) / 1e6


# ---------------------------------------------------------------------------
# Shared pipeline (single and bulk)
# ---------------------------------------------------------------------------


@dataclass
class _Checked:
    geometries: NDArray[np.object_]
    errors: dict[int, InvalidGeometry] = field(default_factory=dict)
    repaired: dict[int, dict[str, Any]] = field(default_factory=dict)

    def reject(self, row: int, error: InvalidGeometry) -> None:
        self.errors[row] = error
        self.geometries[row] = None


def _as_array(geoms: Any) -> NDArray[np.object_]:
    items = list(geoms)
    # Filling an empty array keeps numpy from descending into sequences.
    arr: NDArray[np.object_] = np.empty(len(items), dtype=object)
    arr[:] = items
    return arr


def _run(
    geoms: NDArray[np.object_], crs: CrsRef, *, repair: bool, limits: ShapeLimits
) -> BulkIntake:
    transformation = transformation_to_wgs84(crs)
    checked = _check_shapes(geoms, crs, transformation, repair=repair, limits=limits)
    _to_wgs84(checked, crs, transformation)
    _finish(checked)
    for row, report in checked.repaired.items():
        if checked.geometries[row] is not None:
            report["area_km2"] = round(geodesic_area_km2(checked.geometries[row]), 6)
    return BulkIntake(
        geometries=checked.geometries,
        errors=checked.errors,
        repaired={row: r for row, r in checked.repaired.items() if row not in checked.errors},
        crs=crs,
        transformation=transformation,
    )


def _check_shapes(
    geoms: NDArray[np.object_],
    crs: CrsRef,
    transformation: Transformation,
    *,
    repair: bool,
    limits: ShapeLimits = DEFAULT_LIMITS,
) -> _Checked:
    """Type, emptiness, finiteness and validity, in the submitted CRS."""
    checked = _Checked(shapely.force_2d(geoms).astype(object))
    arr = checked.geometries

    for row in np.flatnonzero(shapely.is_missing(arr)).tolist():
        checked.reject(row, InvalidGeometry(f"no geometry: {_POLYGONAL}", field="geometry"))

    type_ids = shapely.get_type_id(arr)
    present = type_ids >= 0
    not_polygonal = present & (type_ids != _POLYGON) & (type_ids != _MULTIPOLYGON)
    for row in np.flatnonzero(not_polygonal).tolist():
        checked.reject(row, _wrong_type(arr[row].geom_type))

    for row in np.flatnonzero(_live(arr) & shapely.is_empty(arr)).tolist():
        checked.reject(
            row, InvalidGeometry(f"the geometry is empty: {_POLYGONAL}", field="geometry")
        )

    # Size before anything costly (validity is quadratic in the worst case).
    rows = np.flatnonzero(_live(arr))
    for counts, most, noun, setting in (
        (shapely.get_num_coordinates(arr[rows]), limits.max_vertices, "vertices", "VERTICES"),
        (shapely.get_num_geometries(arr[rows]), limits.max_parts, "parts", "PARTS"),
    ):
        for local in np.flatnonzero(counts > most).tolist():
            checked.reject(
                int(rows[local]),
                InvalidGeometry(
                    f"the shape has {int(counts[local]):,} {noun}; at most {most:,} are "
                    f"accepted (CADASTRE_MAX_{setting})",
                    field="geometry",
                ),
            )

    rows = np.flatnonzero(_live(arr))
    coords, index = shapely.get_coordinates(arr[rows], return_index=True)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(coords).all(axis=1) | (np.abs(coords) > MAX_ABS_COORDINATE).any(axis=1)
    if bad.any():
        starts = _row_starts(arr[rows])
        for local in np.unique(index[bad]).tolist():
            k = int(np.flatnonzero(bad & (index == local))[0])
            row = int(rows[local])
            checked.reject(row, _bad_number_error(arr[row], k - int(starts[local]), coords[k]))

    rows = np.flatnonzero(_live(arr))
    for local in np.flatnonzero(~shapely.is_valid(arr[rows])).tolist():
        row = int(rows[local])
        error = _invalid_error(arr[row], crs, transformation)
        if not repair:
            checked.reject(row, error)
            continue
        fixed, report = _repair(arr[row], error)
        if fixed is None:
            checked.reject(row, error)
        else:
            arr[row] = fixed
            checked.repaired[row] = report
    return checked


def _to_wgs84(checked: _Checked, crs: CrsRef, transformation: Transformation) -> None:
    """Convert vertices to lon/lat, rejecting rows outside the area of use or Pakistan."""
    arr = checked.geometries
    rows = np.flatnonzero(_live(arr))
    if len(rows) == 0:
        return
    subset = arr[rows]
    xy, index = shapely.get_coordinates(subset, return_index=True)
    lonlat = transformation.transform(xy)

    # Vertices are converted one by one and edges are not densified: licence
    # edges are short, so the gap between a straight edge in the survey CRS
    # and in lon/lat is well under a metre, and the submitted coordinates
    # remain the legal record beside the stored geometry.
    finite = np.asarray(np.isfinite(lonlat).all(axis=1), dtype=np.bool_)
    in_use = finite & _inside(lonlat, _widened(area_of_use(crs)))
    in_pakistan = finite & _inside(lonlat, PAKISTAN_BBOX)
    bad = ~(in_use & in_pakistan)

    rejected = np.unique(index[bad])
    if len(rejected):
        starts = _row_starts(subset)
        for local in rejected.tolist():
            row_bad = np.flatnonzero(bad & (index == local))
            k = int(row_bad[0])
            check = (
                "conversion" if not finite[k] else "area_of_use" if not in_use[k] else "pakistan"
            )
            error = _outside_error(
                subset[local],
                k - int(starts[local]),
                xy[k],
                lonlat[k],
                check=check,
                count=len(row_bad),
                crs=crs,
                transformation=transformation,
            )
            checked.reject(int(rows[local]), error)

    keep_rows = np.isin(np.arange(len(rows)), rejected, invert=True)
    if not keep_rows.any():
        return
    # shapely.transform would do the same get/set round trip; the converted
    # coordinates are needed above for the checks, so they are set directly.
    converted = subset[keep_rows].copy()
    shapely.set_coordinates(converted, lonlat[keep_rows[index]])
    arr[rows[keep_rows]] = converted


def _finish(checked: _Checked) -> None:
    """Re-check validity in lon/lat, orient as RFC 7946 and promote to MultiPolygon."""
    arr = checked.geometries
    rows = np.flatnonzero(_live(arr))
    if len(rows) == 0:
        return
    subset = arr[rows]
    for local in np.flatnonzero(~shapely.is_valid(subset)):
        reason = shapely.is_valid_reason(subset[local])
        checked.reject(
            int(rows[local]),
            InvalidGeometry(
                "the shape is valid as submitted but not after conversion to WGS 84 "
                f"longitude/latitude ({reason}): two of its edges are closer than the "
                "conversion can keep apart; move them apart or simplify the boundary",
                field="geometry",
                where={"reason": reason},
            ),
        )
    rows = np.flatnonzero(_live(arr))
    subset = shapely.orient_polygons(arr[rows], exterior_cw=False)
    single = shapely.get_type_id(subset) == _POLYGON
    if single.any():
        subset[single] = shapely.multipolygons(subset[single].reshape(-1, 1))
    arr[rows] = subset


def _live(arr: NDArray[np.object_]) -> NDArray[np.bool_]:
    return np.asarray(~shapely.is_missing(arr), dtype=np.bool_)


def _row_starts(geoms: NDArray[np.object_]) -> NDArray[np.int64]:
    counts = shapely.get_num_coordinates(geoms)
    return np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)


def _widened(bounds: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    west, south, east, north = bounds
    tol = AREA_OF_USE_TOLERANCE_DEG
    return (west - tol, south - tol, east + tol, north + tol)


def _inside(lonlat: NDArray[np.float64], bounds: Sequence[float]) -> NDArray[np.bool_]:
    west, south, east, north = bounds
    lon, lat = lonlat[:, 0], lonlat[:, 1]
    with np.errstate(invalid="ignore"):
        return (lon >= west) & (lon <= east) & (lat >= south) & (lat <= north)


# ---------------------------------------------------------------------------
# Repair
# ---------------------------------------------------------------------------


def _repair(geom: Any, error: InvalidGeometry) -> tuple[Any, dict[str, Any]]:
    # "structure" keeps the area the rings enclose (union of shells minus
    # holes), which is what a surveyor drawing a boundary means; "linework"
    # would apply even-odd and could drop overlapping lobes.
    fixed = shapely.make_valid(geom, method="structure", keep_collapsed=False)
    parts = shapely.get_parts(shapely.get_parts(fixed))
    polygons = parts[(shapely.get_type_id(parts) == _POLYGON) & ~shapely.is_empty(parts)]
    if len(polygons) == 0:
        return None, {}
    result = shapely.multipolygons(polygons)
    if not shapely.is_valid(result):
        result = shapely.union_all(polygons)
    before = float(shapely.area(geom))
    after = float(shapely.area(result))
    report: dict[str, Any] = {
        "reason": error.message,
        "where": error.where,
        "parts_before": int(shapely.get_num_geometries(geom)),
        "parts_after": int(shapely.get_num_geometries(result)),
        "area_change_pct": round((after - before) / before * 100.0, 6) if before > 0 else None,
    }
    return result, report


# ---------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------


def _fmt(value: float) -> str:
    """A coordinate as the client would recognise it: 500000, not 500000.0."""
    value = float(value)
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _point_text(x: float, y: float, crs: CrsRef, transformation: Transformation) -> str:
    text = f"({_fmt(x)}, {_fmt(y)})"
    if crs.is_wgs84_lonlat:
        return text
    lon, lat = transformation.transform([[x, y]])[0]
    if math.isfinite(lon) and math.isfinite(lat):
        return f"{text} in {crs.identifier} (lon {lon:.6f}, lat {lat:.6f})"
    return f"{text} in {crs.identifier}"


def _lonlat_where(
    x: float, y: float, crs: CrsRef, transformation: Transformation
) -> dict[str, float]:
    if crs.is_wgs84_lonlat:
        return {}
    lon, lat = transformation.transform([[x, y]])[0]
    if math.isfinite(lon) and math.isfinite(lat):
        return {"lon": round(float(lon), 9), "lat": round(float(lat), 9)}
    return {}


def _ring_text(polygon: int, ring: int) -> str:
    return f"ring {ring} of polygon {polygon}"


def _locate(geom: Any, k: int) -> tuple[int, int, int]:
    """(polygon, ring, vertex) of the k-th coordinate of a (Multi)Polygon."""
    polygons = shapely.get_parts(geom)
    for p, polygon in enumerate(polygons):
        rings = [polygon.exterior, *polygon.interiors]
        for r, ring in enumerate(rings):
            n = int(shapely.get_num_coordinates(ring))
            if k < n:
                return p, r, k
            k -= n
    raise IndexError(k)


def _wrong_type(geom_type: str) -> InvalidGeometry:
    hint = ""
    if geom_type == "GeometryCollection":
        hint = "; send several polygons as one MultiPolygon"
    elif geom_type == "FeatureCollection":
        hint = "; send one Feature or geometry per licence"
    return InvalidGeometry(
        f"{_POLYGONAL}, got {geom_type}{hint}",
        field="geometry",
        where={"type": geom_type},
    )


def _bad_number_error(geom: Any, k: int, xy: NDArray[np.float64]) -> InvalidGeometry:
    p, r, v = _locate(geom, k)
    axis, value, problem = next(
        (axis, value, problem)
        for axis, value in zip("xy", xy.tolist(), strict=True)
        if (problem := _number_problem(value)) is not None
    )
    return InvalidGeometry(
        f"coordinate {v} of {_ring_text(p, r)} {problem} ({axis}); "
        "coordinates must be finite numbers",
        field="geometry",
        where={"polygon": p, "ring": r, "vertex": v, "axis": axis, "value": repr(value)},
    )


def _number_problem(value: float) -> str | None:
    if math.isnan(value):
        return "is NaN"
    if math.isinf(value):
        return "is infinite"
    if abs(value) > MAX_ABS_COORDINATE:
        return _too_large(value)
    return None


def _too_large(value: float | int) -> str:
    try:
        shown = f"{float(value):g}"
    except OverflowError:
        shown = f"an integer of {len(str(abs(int(value))))} digits"
    return f"is {shown}, larger in magnitude than {MAX_ABS_COORDINATE:g}"


_GEOS_REASON = re.compile(r"(?P<text>[^\[]*?)\s*\[(?P<x>\S+) (?P<y>\S+)(?: \S+)?\]\s*$")

# GEOS reason prefix -> (short name, explanation); the point is added after.
_REASONS: dict[str, tuple[str, str]] = {
    "Self-intersection": (
        "self-intersection",
        "two edges of the boundary cross there",
    ),
    "Ring Self-intersection": (
        "ring self-intersection",
        "a ring touches or crosses itself there; split the shape into separate "
        "polygons or remove the loop",
    ),
    "Hole lies outside shell": (
        "hole lies outside shell",
        "an interior ring (hole) is not inside its polygon's exterior ring",
    ),
    "Holes are nested": (
        "nested holes",
        "a hole lies inside another hole of the same polygon",
    ),
    "Nested shells": (
        "nested shells",
        "one polygon of the MultiPolygon lies inside another; use a hole instead",
    ),
    "Too few points": (
        "too few points",
        "a ring has fewer than 3 distinct corners",
    ),
    "Interior is disconnected": (
        "interior is disconnected",
        "holes cut the polygon into separate pieces; submit the pieces as separate "
        "polygons of a MultiPolygon",
    ),
    "Duplicate Rings": (
        "duplicate rings",
        "two rings are identical",
    ),
    "Invalid Coordinate": (
        "invalid coordinate",
        "a coordinate is not a finite number",
    ),
    "Ring is not closed": (
        "ring not closed",
        "the first and last vertex of a ring differ",
    ),
}


def _invalid_error(geom: Any, crs: CrsRef, transformation: Transformation) -> InvalidGeometry:
    reason = str(shapely.is_valid_reason(geom))
    match = _GEOS_REASON.match(reason)
    key = match.group("text") if match else reason
    prefix = max((p for p in _REASONS if key.startswith(p)), key=len, default=None)
    name, explanation = _REASONS[prefix] if prefix else ("invalid geometry", reason)
    where: dict[str, Any] = {"reason": reason}
    if match is None:
        return InvalidGeometry(f"{name}: {explanation}", field="geometry", where=where)

    x, y = float(match.group("x")), float(match.group("y"))
    part = ""
    if math.isfinite(x) and math.isfinite(y):
        where |= {"x": x, "y": y} | _lonlat_where(x, y, crs, transformation)
        polygon = _polygon_at(geom, x, y)
        if polygon is not None:
            where["polygon"] = polygon
            part = f" (polygon {polygon})"
    return InvalidGeometry(
        f"{name} at {_point_text(x, y, crs, transformation)}{part}: {explanation}",
        field="geometry",
        where=where,
    )


def _polygon_at(geom: Any, x: float, y: float) -> int | None:
    """Index of the MultiPolygon part whose boundary passes through (x, y)."""
    if shapely.get_type_id(geom) != _MULTIPOLYGON:
        return None
    parts = shapely.get_parts(geom)
    distances = shapely.distance(shapely.boundary(parts), shapely.Point(x, y))
    best = int(np.argmin(distances))
    scale = max(1.0, abs(x), abs(y))
    # GEOS prints the point with 15 significant digits, hence the tolerance.
    return best if distances[best] <= 1e-9 * scale else None


def _outside_error(
    geom: Any,
    k: int,
    xy: NDArray[np.float64],
    lonlat: NDArray[np.float64],
    *,
    check: str,
    count: int,
    crs: CrsRef,
    transformation: Transformation,
) -> OutsideArea:
    p, r, v = _locate(geom, k)
    x, y = float(xy[0]), float(xy[1])
    lon, lat = float(lonlat[0]), float(lonlat[1])
    converted = math.isfinite(lon) and math.isfinite(lat)
    where: dict[str, Any] = {
        "polygon": p,
        "ring": r,
        "vertex": v,
        "x": x,
        "y": y,
        "crs": crs.identifier,
        "check": check,
        "vertices_outside": count,
    }
    place = f"({_fmt(x)}, {_fmt(y)})"
    if not crs.is_wgs84_lonlat:
        place += f" in {crs.identifier}"
        if converted:
            place += f" (lon {lon:.6f}, lat {lat:.6f})"
    if converted:
        where |= {"lon": round(lon, 9), "lat": round(lat, 9)}

    subject = f"vertex {v} of {_ring_text(p, r)} at {place}"
    if check == "conversion":
        problem = f"cannot be converted from {crs} to WGS 84 longitude/latitude"
    elif check == "area_of_use":
        bounds = area_of_use(crs)
        where["area_of_use"] = list(bounds)
        problem = (
            f"is outside the area of use of {crs}, {_bounds_text(bounds)} "
            f"(with {AREA_OF_USE_TOLERANCE_DEG}° tolerance)"
        )
    else:
        where["bbox"] = list(PAKISTAN_BBOX)
        problem = f"is outside Pakistan, {_bounds_text(PAKISTAN_BBOX)}"
    message = f"{subject} {problem}"
    if count > 1:
        message += f"; {count - 1} other vertex(es) of this shape are outside too"

    hints = _outside_hints(x, y, lon if converted else None, crs, transformation)
    if hints:
        where["hints"] = hints
        message += ". Hint: " + "; ".join(hints)
    return OutsideArea(message, field="geometry", where=where)


def _bounds_text(bounds: Sequence[float]) -> str:
    west, south, east, north = bounds
    return (
        f"{_deg(west, 'E', 'W')} to {_deg(east, 'E', 'W')}, "
        f"{_deg(south, 'N', 'S')} to {_deg(north, 'N', 'S')}"
    )


def _deg(value: float, positive: str, negative: str) -> str:
    return f"{_fmt(abs(value))}° {positive if value >= 0 else negative}"


def _fits(lonlat: NDArray[np.float64], crs: CrsRef) -> bool:
    ok = (
        np.isfinite(lonlat).all(axis=1)
        & _inside(lonlat, _widened(area_of_use(crs)))
        & _inside(lonlat, PAKISTAN_BBOX)
    )
    return bool(ok.all())


def _outside_hints(
    x: float, y: float, lon: float | None, crs: CrsRef, transformation: Transformation
) -> list[str]:
    """Name the classic mistakes that would explain a vertex outside the area."""
    geographic = crs.is_geographic
    if _fits(transformation.transform([[y, x]]), crs):
        if geographic:
            return [
                "latitude and longitude look swapped: x must be the longitude and y the "
                "latitude (GeoJSON order), also for EPSG:4326"
            ]
        return ["easting and northing look swapped: x must be the easting and y the northing"]

    hints: list[str] = []
    if geographic and (abs(x) > 180 or abs(y) > 90):
        hints.append(
            "the values look like metres, not degrees: declare the projected CRS the survey "
            "used, e.g. EPSG:32642 (WGS 84 / UTM zone 42N)"
        )
    elif not geographic and abs(x) <= 180 and abs(y) <= 90:
        hints.append(
            "the values look like longitude/latitude in degrees, not metres: declare EPSG:4326"
        )
    elif crs.epsg in UTM_ZONES and lon is not None and -180 <= lon <= 180:
        declared = UTM_ZONES[crs.epsg]
        fitting = int((lon + 180) // 6) + 1
        if fitting != declared and fitting in UTM_ZONES.values():
            suggested = next(
                code
                for code, zone in UTM_ZONES.items()
                if zone == fitting and _is_kalianpur(code) == _is_kalianpur(crs.epsg)
            )
            west = (declared - 31) * 6
            hints.append(
                f"read in UTM zone {declared}N this point is at longitude {lon:.4f}° E, which "
                f"belongs to UTM zone {fitting}N, not zone {declared}N ({west}° E to "
                f"{west + 6}° E): submit points there in EPSG:{suggested} "
                "(or check that the eastings are from the declared zone)"
            )
    return hints


def _is_kalianpur(epsg: int | None) -> bool:
    return epsg == KALIANPUR_1962 or (epsg is not None and 24300 <= epsg < 24400)


# ---------------------------------------------------------------------------
# Raw parsing: GeoJSON and WKT to checked coordinate arrays
# ---------------------------------------------------------------------------

_RawPolygons = list[list[NDArray[np.float64]]]


def _decoded(obj: object) -> object:
    """GeoJSON sent as JSON text is decoded; WKT and objects pass through."""
    if not isinstance(obj, str) or not obj.lstrip().startswith("{"):
        return obj
    try:
        return json.loads(obj)
    except json.JSONDecodeError as exc:
        raise InvalidGeometry(
            f"the geometry is not valid JSON: {exc.msg} at character {exc.pos}",
            field="geometry",
            where={"offset": exc.pos},
        ) from None


def _raw_polygons(obj: object) -> tuple[str, _RawPolygons]:
    obj = _decoded(obj)
    if isinstance(obj, str):
        kind, coordinates = _WktParser(obj).parse()
        return kind, _checked_polygons(kind, coordinates, None)
    if not isinstance(obj, Mapping):
        raise InvalidGeometry(
            f"expected a GeoJSON object or WKT text, got {_describe(obj)}",
            field="geometry",
        )
    prefix = ""
    geom: Mapping[str, Any] = obj
    if obj.get("type") == "Feature":
        if "geometry" not in obj:
            raise _structure("geometry", "is missing: a Feature needs a 'geometry' member")
        member = obj["geometry"]
        if member is None:
            raise InvalidGeometry(
                f"the Feature's geometry is null: {_POLYGONAL}",
                field="geometry",
                where={"path": "geometry"},
            )
        if not isinstance(member, Mapping):
            raise _structure(
                "geometry", f"should be a GeoJSON geometry object, not {_describe(member)}"
            )
        geom, prefix = member, "geometry."
    geom_type = geom.get("type")
    if not isinstance(geom_type, str):
        raise _structure(f"{prefix}type", f"is missing or not a string: {_POLYGONAL}")
    if geom_type not in ("Polygon", "MultiPolygon"):
        raise _wrong_type(geom_type)
    if "coordinates" not in geom:
        raise _structure(f"{prefix}coordinates", f"is missing: a {geom_type} needs 'coordinates'")
    return geom_type, _checked_polygons(geom_type, geom["coordinates"], f"{prefix}coordinates")


def _checked_polygons(kind: str, coordinates: object, path: str | None) -> _RawPolygons:
    if kind == "Polygon":
        if _is_array(coordinates) and len(coordinates) == 0:
            return []
        return [_checked_polygon(coordinates, 0, path)]
    if not _is_array(coordinates):
        raise _structure(
            path,
            f"should be an array of polygons, not {_describe(coordinates)} "
            "(a MultiPolygon's coordinates are [[[[x, y], ...], ...], ...])",
        )
    return [_checked_polygon(polygon, p, _sub(path, p)) for p, polygon in enumerate(coordinates)]


def _checked_polygon(rings: object, p: int, path: str | None) -> list[NDArray[np.float64]]:
    if not _is_array(rings):
        raise _structure(
            path,
            f"should be an array of rings, not {_describe(rings)} "
            "(a polygon is [[[x, y], ...], ...]: rings of positions)",
        )
    if len(rings) == 0:
        raise InvalidGeometry(
            f"polygon {p} has no rings: it needs at least an exterior ring" + _at(path),
            field="geometry",
            where=_with_path({"polygon": p}, path),
        )
    out = []
    for r, ring in enumerate(rings):
        ring_path = _sub(path, r)
        if not _is_array(ring):
            raise _structure(
                ring_path,
                f"should be a ring, an array of positions [x, y], not {_describe(ring)}",
            )
        positions = [
            _checked_position(position, p, r, v, _sub(ring_path, v))
            for v, position in enumerate(ring)
        ]
        where = _with_path({"polygon": p, "ring": r}, ring_path)
        if len(positions) < 4:
            raise InvalidGeometry(
                f"{_ring_text(p, r)} has {len(positions)} position(s); a ring needs at least 4 "
                "(three corners and the first repeated at the end to close it)" + _at(ring_path),
                field="geometry",
                where=where | {"positions": len(positions)},
            )
        first, last = positions[0], positions[-1]
        if first != last:
            raise InvalidGeometry(
                f"{_ring_text(p, r)} is not closed: first vertex ({_fmt(first[0])}, "
                f"{_fmt(first[1])}) differs from last vertex {len(positions) - 1} "
                f"({_fmt(last[0])}, {_fmt(last[1])}); repeat the first vertex at the end"
                + _at(ring_path),
                field="geometry",
                where=where
                | {"vertex": len(positions) - 1, "first": list(first), "last": list(last)},
            )
        out.append(np.array(positions, dtype=np.float64))
    return out


def _checked_position(
    position: object, p: int, r: int, v: int, path: str | None
) -> tuple[float, float]:
    label = f"coordinate {v} of {_ring_text(p, r)}"
    where = _with_path({"polygon": p, "ring": r, "vertex": v}, path)
    if not _is_array(position):
        raise InvalidGeometry(
            f"{label} should be a position [x, y], not {_describe(position)}" + _at(path),
            field="geometry",
            where=where,
        )
    if len(position) not in (2, 3):
        raise InvalidGeometry(
            f"{label} has {len(position)} value(s); a position is 2 or 3 numbers (x, y[, z])"
            + _at(path),
            field="geometry",
            where=where | {"values": len(position)},
        )
    values = []
    for axis, value in zip("xyz", position, strict=False):
        if isinstance(value, bool) or not isinstance(value, numbers.Real | Decimal):
            raise InvalidGeometry(
                f"{label} has {axis} = {_describe(value)}, not a number" + _at(path),
                field="geometry",
                where=where | {"axis": axis},
            )
        # A huge JSON integer would overflow float(), so it is judged as it is.
        if isinstance(value, numbers.Integral) and abs(int(value)) > MAX_ABS_COORDINATE:
            problem: str | None = _too_large(int(value))
        else:
            problem = _number_problem(float(value))
        if problem is not None:
            raise InvalidGeometry(
                f"{label} {problem} ({axis}); coordinates must be finite numbers" + _at(path),
                field="geometry",
                where=where | {"axis": axis, "value": str(value)[:40]},
            )
        values.append(float(value))
    return values[0], values[1]


def _is_array(value: object) -> TypeGuard[list[Any] | tuple[Any, ...]]:
    return isinstance(value, list | tuple)


def _sub(path: str | None, index: int) -> str | None:
    return None if path is None else f"{path}[{index}]"


def _at(path: str | None) -> str:
    return "" if path is None else f" (at {path})"


def _with_path(where: dict[str, Any], path: str | None) -> dict[str, Any]:
    return where if path is None else where | {"path": path}


def _structure(path: str | None, problem: str) -> InvalidGeometry:
    return InvalidGeometry(
        f"{path or 'coordinates'} {problem}",
        field="geometry",
        where={"path": path or "coordinates"},
    )


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, numbers.Real | Decimal):
        return f"the number {value}"
    if isinstance(value, Mapping):
        return "an object"
    if _is_array(value):
        return f"an array of {len(value)}"
    return type(value).__name__


def _check_embedded_crs(obj: object, crs: CrsRef) -> None:
    """Refuse a GeoJSON 2008 ``crs`` member that contradicts the declared CRS.

    QGIS and older tools still write one; reading such a file as WGS 84
    would silently move a Kalianpur survey by hundreds of metres.
    """
    if not isinstance(obj, Mapping):
        return
    member = obj.get("crs")
    if member is None and isinstance(obj.get("geometry"), Mapping):
        member = obj["geometry"].get("crs")
    if not isinstance(member, Mapping):
        return
    properties = member.get("properties")
    name = properties.get("name") if isinstance(properties, Mapping) else None
    if not isinstance(name, str):
        return
    embedded = parse_crs(name)
    if embedded.is_wgs84_lonlat and crs.is_wgs84_lonlat:
        return
    if embedded != crs:
        raise UnknownCRS(
            f"the GeoJSON says its crs is {embedded.identifier} but the submission declares "
            f"{crs.identifier}; declare the CRS the coordinates are really in",
            field="crs",
            where={"embedded": embedded.identifier, "declared": crs.identifier},
        )


# WKT ---------------------------------------------------------------------

_WKT_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf(?:inity)?)(?![\w.]))
      | (?P<word>[A-Za-z_]\w*)
      | (?P<punct>[(),;=])
    )""",
    re.VERBOSE | re.IGNORECASE,
)

_WKT_TYPES = {
    "POINT": "Point",
    "LINESTRING": "LineString",
    "POLYGON": "Polygon",
    "MULTIPOINT": "MultiPoint",
    "MULTILINESTRING": "MultiLineString",
    "MULTIPOLYGON": "MultiPolygon",
    "GEOMETRYCOLLECTION": "GeometryCollection",
    "CIRCULARSTRING": "CircularString",
    "COMPOUNDCURVE": "CompoundCurve",
    "CURVEPOLYGON": "CurvePolygon",
    "MULTISURFACE": "MultiSurface",
    "POLYHEDRALSURFACE": "PolyhedralSurface",
    "TIN": "TIN",
    "TRIANGLE": "Triangle",
}


class _WktParser:
    """Just enough WKT to see rings as written: shapely would close them silently."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            match = _WKT_TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                if text[pos:].strip() == "":
                    break
                offset = len(text) - len(text[pos:].lstrip())
                self._fail_at(offset, f"unexpected character {text[offset]!r}")
            assert match is not None
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind), match.start(kind)))
            pos = match.end()
        self.i = 0

    def parse(self) -> tuple[str, list[Any]]:
        if not self.tokens:
            raise InvalidGeometry(f"the geometry is an empty string: {_POLYGONAL}")
        kind, word, _ = self._peek()
        if kind == "word" and word.upper() == "SRID":
            raise InvalidGeometry(
                "EWKT with an 'SRID=...;' prefix is not accepted: send plain WKT and declare "
                "the CRS in the crs field",
                field="geometry",
                where={"offset": 0},
            )
        name = self._word("a WKT geometry type such as POLYGON").upper()
        dims = ""
        for suffix in ("ZM", "Z", "M"):
            if name.endswith(suffix) and name[: -len(suffix)] in _WKT_TYPES:
                name, dims = name[: -len(suffix)], suffix
                break
        if name not in _WKT_TYPES:
            self._fail("a WKT geometry type such as POLYGON", back=1)
        if name not in ("POLYGON", "MULTIPOLYGON"):
            raise _wrong_type(_WKT_TYPES[name])
        if not dims and self._peek_word() in ("Z", "M", "ZM"):
            dims = self._word("Z")
        if "M" in dims.upper():
            raise InvalidGeometry(
                "measured (M) coordinates are not accepted: send x y or x y z",
                field="geometry",
            )
        if self._peek_word() == "EMPTY":
            self.i += 1
            coordinates: list[Any] = []
        elif name == "POLYGON":
            coordinates = self._polygon()
        else:
            coordinates = self._list(self._polygon_or_empty)
        if self.i < len(self.tokens):
            self._fail("the end of the WKT")
        return _WKT_TYPES[name], coordinates

    def _polygon_or_empty(self) -> list[Any]:
        if self._peek_word() == "EMPTY":
            self.i += 1
            return []
        return self._polygon()

    def _polygon(self) -> list[Any]:
        return self._list(self._ring)

    def _ring(self) -> list[Any]:
        if self._peek_word() == "EMPTY":
            self.i += 1
            return []
        return self._list(self._position)

    def _position(self) -> list[float]:
        numbers_: list[float] = []
        while self._peek()[0] == "number":
            numbers_.append(float(self.tokens[self.i][1]))
            self.i += 1
        if not numbers_:
            self._fail("a number")
        return numbers_

    def _list(self, item: Any) -> list[Any]:
        self._punct("(")
        items = [item()]
        while self._peek()[1] == ",":
            self.i += 1
            items.append(item())
        self._punct(")", "',' or ')'")
        return items

    def _peek(self) -> tuple[str, str, int]:
        if self.i < len(self.tokens):
            return self.tokens[self.i]
        return ("end", "", len(self.text))

    def _peek_word(self) -> str:
        kind, text, _ = self._peek()
        return text.upper() if kind == "word" else ""

    def _word(self, expected: str) -> str:
        kind, text, _ = self._peek()
        if kind != "word":
            self._fail(expected)
        self.i += 1
        return text

    def _punct(self, char: str, expected: str | None = None) -> None:
        if self._peek()[1] != char or self._peek()[0] != "punct":
            self._fail(expected or repr(char))
        self.i += 1

    def _fail(self, expected: str, *, back: int = 0) -> NoReturn:
        self.i -= back
        kind, text, offset = self._peek()
        found = "the end of the text" if kind == "end" else repr(text)
        self._fail_at(offset, f"expected {expected}, found {found}")

    def _fail_at(self, offset: int, detail: str) -> NoReturn:
        raise InvalidGeometry(
            f"WKT syntax error at character {offset}: {detail}",
            field="geometry",
            where={"offset": offset},
        )
