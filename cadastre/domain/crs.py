"""Coordinate reference systems the register accepts, and their conversion to WGS 84.

Licences are stored in WGS 84 longitude/latitude (EPSG:4326, x = longitude).
Surveys arrive in WGS 84, in WGS 84 / UTM, or in the legacy Kalianpur 1962
datum of Survey of Pakistan maps. This module names those systems
(:func:`parse_crs`) and builds the one conversion to WGS 84 used for each
(:func:`transformation_to_wgs84`). The conversions are pinned rather than left
to PROJ's choice so that the same survey always lands on the same coordinates.

Axis order: every coordinate the register receives is read x = easting or
longitude, y = northing or latitude (GeoJSON order), whatever the axis order
the EPSG definition declares. This includes EPSG:4326, whose official order is
latitude first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pyproj
from numpy.typing import ArrayLike, NDArray
from pyproj.crs import CoordinateOperation  # type: ignore[attr-defined]  # missing from __all__

from cadastre.errors import UnknownCRS

__all__ = [
    "ACCEPTED_EPSG",
    "CRS84",
    "KALIANPUR_TO_WGS84_OPERATION",
    "CrsRef",
    "Transformation",
    "accepted_identifiers",
    "area_of_use",
    "parse_crs",
    "transformation_to_wgs84",
]

#: EPSG codes accepted for licence intake. OGC:CRS84 is accepted too and is
#: handled like EPSG:4326 (both are read longitude first). EPSG:3857 is not
#: accepted: Web Mercator is for map tiles, not for surveyed boundaries.
ACCEPTED_EPSG: tuple[int, ...] = (
    4326,  # WGS 84
    32641,  # WGS 84 / UTM zone 41N
    32642,  # WGS 84 / UTM zone 42N
    32643,  # WGS 84 / UTM zone 43N
    4145,  # Kalianpur 1962
    24311,  # Kalianpur 1962 / UTM zone 41N
    24312,  # Kalianpur 1962 / UTM zone 42N
    24313,  # Kalianpur 1962 / UTM zone 43N
    24376,  # Kalianpur 1962 / India zone I
    24377,  # Kalianpur 1962 / India zone IIa
)

#: EPSG code of the geographic Kalianpur 1962 CRS.
KALIANPUR_1962 = 4145

#: EPSG:1247 "Kalianpur 1962 to WGS 84 (1)", valid for all of onshore Pakistan.
KALIANPUR_TO_WGS84_OPERATION = 1247

#: UTM zone number of each accepted UTM CRS (used for wrong-zone hints).
UTM_ZONES: dict[int, int] = {
    32641: 41,
    32642: 42,
    32643: 43,
    24311: 41,
    24312: 42,
    24313: 43,
}

_CRS84_ID = "OGC:CRS84"
_CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
_EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{code}"

_EPSG_PATTERNS = (
    re.compile(r"EPSG:(\d+)", re.IGNORECASE),
    # The version between the colons may be empty or any EPSG database version.
    re.compile(r"urn:ogc:def:crs:EPSG:[0-9.]*:(\d+)", re.IGNORECASE),
    re.compile(r"https?://www\.opengis\.net/def/crs/EPSG/[0-9.]+/(\d+)", re.IGNORECASE),
)
_CRS84_PATTERN = re.compile(
    r"(?:OGC:)?CRS84"
    r"|urn:ogc:def:crs:OGC:[0-9.]*:CRS84"
    r"|https?://www\.opengis\.net/def/crs/OGC/[0-9.]+/CRS84",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CrsRef:
    """A coordinate reference system accepted by the register.

    Attributes
    ----------
    epsg : int or None
        EPSG code; None for OGC:CRS84, which has no EPSG code and whose
        coordinates are WGS 84 longitude/latitude like EPSG:4326.
    identifier : str
        Normalised short form, e.g. ``"EPSG:32642"`` or ``"OGC:CRS84"``.
    uri : str
        OGC URI, e.g. ``"http://www.opengis.net/def/crs/EPSG/0/32642"``.
    name : str
        Name from the EPSG database, e.g. ``"WGS 84 / UTM zone 42N"``.
    """

    epsg: int | None
    identifier: str
    uri: str
    name: str

    @property
    def is_geographic(self) -> bool:
        """True when coordinates are degrees of longitude and latitude."""
        return _pyproj_crs(self.identifier).is_geographic

    @property
    def is_wgs84_lonlat(self) -> bool:
        """True for EPSG:4326 and OGC:CRS84, which need no conversion."""
        return self.epsg in (None, 4326)

    def __str__(self) -> str:
        return f"{self.identifier} ({self.name})"


#: The CRS assumed when a submission declares none (RFC 7946 GeoJSON).
CRS84 = CrsRef(epsg=None, identifier=_CRS84_ID, uri=_CRS84_URI, name="WGS 84 (CRS84)")


def accepted_identifiers() -> list[str]:
    """Return the accepted CRS identifiers, e.g. ``["EPSG:4326", ..., "OGC:CRS84"]``."""
    return [f"EPSG:{code}" for code in ACCEPTED_EPSG] + [_CRS84_ID]


def parse_crs(text: str | None) -> CrsRef:
    """Recognise a CRS identifier and return the register's reference to it.

    Parameters
    ----------
    text : str or None
        The CRS as the client sent it. Accepted forms, case-insensitive:
        ``"EPSG:32642"``, ``"urn:ogc:def:crs:EPSG::32642"``,
        ``"urn:ogc:def:crs:EPSG:9.8.15:32642"``,
        ``"http://www.opengis.net/def/crs/EPSG/0/32642"`` (or https), and for
        WGS 84 longitude/latitude ``"OGC:CRS84"``, ``"CRS84"``,
        ``"urn:ogc:def:crs:OGC:1.3:CRS84"`` and
        ``"http://www.opengis.net/def/crs/OGC/1.3/CRS84"``. None or an empty
        string means OGC:CRS84, the GeoJSON default.

    Returns
    -------
    CrsRef
        The normalised reference. Only codes in :data:`ACCEPTED_EPSG` and
        OGC:CRS84 are returned.

    Raises
    ------
    UnknownCRS
        If the text is not a recognised identifier or names a CRS the register
        does not accept (e.g. EPSG:3857). The message repeats what was given
        and lists the accepted identifiers; ``field`` is ``"crs"``.

    Notes
    -----
    Axis order is always x = easting or longitude, y = northing or latitude
    (GeoJSON order), for every CRS including EPSG:4326, whose EPSG definition
    puts latitude first. A register that followed the EPSG order for 4326 and
    not for the others would invite exactly the swapped-axis mistakes it is
    meant to catch.

    Examples
    --------
    >>> parse_crs("urn:ogc:def:crs:EPSG::32642").identifier
    'EPSG:32642'
    >>> parse_crs(None).uri
    'http://www.opengis.net/def/crs/OGC/1.3/CRS84'
    """
    given = "" if text is None else text.strip()
    if not given or _CRS84_PATTERN.fullmatch(given):
        return CRS84
    for pattern in _EPSG_PATTERNS:
        match = pattern.fullmatch(given)
        if match:
            return _epsg_ref(int(match.group(1)), given)
    raise UnknownCRS(
        f"{given!r} is not a CRS identifier the register recognises; "
        f"accepted: {', '.join(accepted_identifiers())} "
        "(also as urn:ogc:def:crs:EPSG::<code> or http://www.opengis.net/def/crs/EPSG/0/<code>)",
        field="crs",
        where={"given": given, "accepted": accepted_identifiers()},
    )


def _epsg_ref(code: int, given: str) -> CrsRef:
    if code not in ACCEPTED_EPSG:
        try:
            known = pyproj.CRS.from_epsg(code).name
        except pyproj.exceptions.CRSError:
            known = "not in the EPSG database"
        hint = " Web Mercator is for map tiles, not survey coordinates." if code == 3857 else ""
        raise UnknownCRS(
            f"{given!r} ({known}) is not accepted for licence boundaries; "
            f"accepted: {', '.join(accepted_identifiers())}.{hint}",
            field="crs",
            where={"given": given, "epsg": code, "accepted": accepted_identifiers()},
        )
    identifier = f"EPSG:{code}"
    return CrsRef(
        epsg=code,
        identifier=identifier,
        uri=_EPSG_URI.format(code=code),
        name=_pyproj_crs(identifier).name,
    )


@cache
def _pyproj_crs(identifier: str) -> pyproj.CRS:
    return pyproj.CRS.from_user_input(identifier)


def area_of_use(crs: CrsRef) -> tuple[float, float, float, float]:
    """Return the area of use of a CRS from the EPSG database.

    Parameters
    ----------
    crs : CrsRef
        An accepted CRS.

    Returns
    -------
    tuple of float
        ``(west, south, east, north)`` in degrees of longitude and latitude.
        OGC:CRS84 and EPSG:4326 cover the world, ``(-180, -90, 180, 90)``.

    Examples
    --------
    >>> area_of_use(parse_crs("EPSG:32642"))
    (66.0, 0.0, 72.0, 84.0)
    """
    area = _pyproj_crs(crs.identifier).area_of_use
    if area is None:  # not for the accepted CRSs; kept so a new one cannot fail silently
        return (-180.0, -90.0, 180.0, 90.0)
    west, south, east, north = area.bounds
    return (float(west), float(south), float(east), float(north))


@dataclass(frozen=True)
class _Step:
    transformer: pyproj.Transformer
    # The EPSG:1247 pipeline is defined on latitude, longitude axes.
    swap_axes: bool = False


@dataclass(frozen=True)
class Transformation:
    """The conversion from a submitted CRS to WGS 84 longitude/latitude.

    Attributes
    ----------
    description : str
        Human-readable account of the steps, stored beside each converted
        geometry, e.g. ``"Inverse of UTM zone 42N (exact)"``.
    approximate : bool
        True when a datum shift of limited or unstated accuracy is involved
        (Kalianpur 1962); such shapes are flagged in the register.
    epsg_operation : int or None
        EPSG code of the datum transformation used (1247 for Kalianpur 1962),
        None when there is no datum change (WGS 84 and WGS 84 / UTM).
    """

    description: str
    approximate: bool
    epsg_operation: int | None
    _steps: tuple[_Step, ...] = field(default=(), repr=False, compare=False)

    def transform(self, xy: ArrayLike) -> NDArray[np.float64]:
        """Convert coordinates to WGS 84 longitude/latitude.

        Parameters
        ----------
        xy : array_like, shape (N, 2)
            x, y in the submitted CRS (easting/northing in metres or
            longitude/latitude in degrees, x first).

        Returns
        -------
        numpy.ndarray, shape (N, 2)
            Longitude, latitude in degrees on WGS 84 (EPSG:4326, x = longitude).
            Points PROJ cannot convert come back as ``inf``.
        """
        coords = np.array(xy, dtype=np.float64, copy=True).reshape(-1, 2)
        if len(coords) == 0:
            return coords
        x, y = coords[:, 0], coords[:, 1]
        for step in self._steps:
            if step.swap_axes:
                y, x = step.transformer.transform(y, x)
            else:
                x, y = step.transformer.transform(x, y)
        return np.column_stack((np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)))


def transformation_to_wgs84(crs: CrsRef) -> Transformation:
    """Return the pinned conversion from ``crs`` to WGS 84 longitude/latitude.

    Parameters
    ----------
    crs : CrsRef
        An accepted CRS.

    Returns
    -------
    Transformation
        * EPSG:4326 and OGC:CRS84: no change.
        * WGS 84 / UTM: the exact inverse projection.
        * Kalianpur 1962 (EPSG:4145): EPSG:1247 "Kalianpur 1962 to WGS 84 (1)",
          a 3-parameter geocentric translation whose accuracy EPSG does not
          state; flagged ``approximate``.
        * Kalianpur 1962 projected (EPSG:243xx): the exact inverse projection
          to EPSG:4145, then EPSG:1247.

    Notes
    -----
    PROJ's default for Kalianpur 1962 picks among several regional operations
    depending on the area of interest, so the same survey could move between
    releases or between neighbouring parcels. EPSG:1247 covers all of onshore
    Pakistan and is pinned for reproducibility. The transformers are built once
    per CRS and cached.

    Examples
    --------
    >>> t = transformation_to_wgs84(parse_crs("EPSG:4145"))
    >>> t.epsg_operation, t.approximate
    (1247, True)
    """
    return _transformation(crs.identifier)


# One per accepted CRS, shared by all requests: pyproj Transformers are
# thread-safe since pyproj 3.1.
@cache
def _transformation(identifier: str) -> Transformation:
    source = _pyproj_crs(identifier)
    if identifier == _CRS84_ID or source.to_epsg() == 4326:
        return Transformation(
            description="none: coordinates are already WGS 84 longitude/latitude",
            approximate=False,
            epsg_operation=None,
        )

    steps: list[_Step] = []
    parts: list[str] = []
    geographic = source.geodetic_crs if source.is_projected else source
    if geographic is None:  # projected CRSs in EPSG all have one
        raise UnknownCRS(f"{identifier} has no geodetic base CRS", field="crs")
    if source.is_projected:
        steps.append(_Step(pyproj.Transformer.from_crs(source, geographic, always_xy=True)))
        conversion = source.coordinate_operation
        conversion_name = conversion.name if conversion is not None else source.name
        parts.append(f"Inverse of {conversion_name} (exact)")

    base_epsg = geographic.to_epsg()
    if base_epsg == 4326:
        return Transformation(
            description=", then ".join(parts),
            approximate=False,
            epsg_operation=None,
            _steps=tuple(steps),
        )
    if base_epsg != KALIANPUR_1962:
        raise UnknownCRS(f"no pinned transformation from {identifier} to WGS 84", field="crs")

    operation = CoordinateOperation.from_epsg(KALIANPUR_TO_WGS84_OPERATION)
    steps.append(
        _Step(pyproj.Transformer.from_pipeline(operation.to_json()), swap_axes=True),
    )
    parts.append(
        f"EPSG:{KALIANPUR_TO_WGS84_OPERATION} {operation.name}: "
        "3-parameter shift, accuracy not stated"
    )
    return Transformation(
        description=", then ".join(parts),
        approximate=True,
        epsg_operation=KALIANPUR_TO_WGS84_OPERATION,
        _steps=tuple(steps),
    )
