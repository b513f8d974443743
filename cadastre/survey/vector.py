"""Vector survey layers: files in, catalogue rows and features out.

Geology polygons, mineral occurrences, geochemical samples, drill-hole collars
and the like, read from GeoPackage, zipped Shapefile, GeoJSON, KML or CSV
(longitude/latitude columns or a WKT column) through geopandas/pyogrio, in any
CRS the file declares or the caller names. Geometries are stored in EPSG:4326
(lon/lat) in ``survey_features``; the layer is one row of ``survey_layers``,
which makes it an OGC API collection and a tile source as soon as it commits.

A file is refused whole, with a message that names the problem and, where
there is one, the feature (1-based, in file order): nothing is half-loaded.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import shapely
from shapely.validation import explain_validity
from sqlalchemy import Connection, delete, func, insert, select, text, update

from cadastre.auth import PUBLIC, Principal
from cadastre.db.generation import lock_for_write
from cadastre.db.tables import SURVEY_KINDS, survey_features, survey_layers
from cadastre.errors import (
    Conflict,
    InvalidGeometry,
    InvalidInput,
    NotFound,
    UnknownCRS,
    UploadTooLarge,
)
from cadastre.survey.access import visible

#: Collections that exist without the catalogue: a survey layer may not take their ids.
BUILTIN_COLLECTIONS = frozenset({"licences", "jurisdictions", "reserved_areas"})
SLUG_RULE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
FORMATS = ".gpkg, .zip (one Shapefile), .geojson/.json, .kml, .csv, .shp"
WKT_COLUMNS = ("wkt", "geometry", "geom", "the_geom")
LON_COLUMNS = ("lon", "lng", "long", "longitude", "x", "easting")
LAT_COLUMNS = ("lat", "latitude", "y", "northing")
SHAPEFILE_PARTS = (".shx", ".dbf", ".prj")
#: Attribute names the collections use themselves: renamed on import.
RESERVED_NAMES = {"id": "source_id", "geom": "source_geom", "geometry": "source_geometry"}
#: Geometry families: a layer holds one.
FAMILIES = {
    "Point": "Point",
    "MultiPoint": "Point",
    "LineString": "LineString",
    "MultiLineString": "LineString",
    "LinearRing": "LineString",
    "Polygon": "Polygon",
    "MultiPolygon": "Polygon",
}
#: shapely's geometry type ids, in order.
TYPE_NAMES = (
    "Point",
    "LineString",
    "LinearRing",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "GeometryCollection",
)
ATTRIBUTE_TYPES = ("string", "integer", "number", "boolean", "date", "datetime", "array")
INSERT_CHUNK = 2_000


@dataclass(frozen=True)
class LayerMeta:
    """What the catalogue says about a layer besides what its file says."""

    slug: str
    name: str
    kind: str
    source: str
    licence: str
    description: str | None = None
    synthetic: bool = False
    #: Readable without signing in (open data); otherwise signed-in callers only.
    public: bool = False

    def check(self) -> None:
        """Refuse a slug, kind or empty text that the catalogue cannot take."""
        check_slug(self.slug)
        if self.kind not in SURVEY_KINDS:
            raise InvalidInput(
                f"kind {self.kind!r} is not a survey layer kind; use one of "
                f"{', '.join(SURVEY_KINDS)}",
                field="kind",
            )
        for name in ("name", "source", "licence"):
            if not str(getattr(self, name) or "").strip():
                raise InvalidInput(f"{name} is required and may not be empty", field=name)


def check_slug(slug: str) -> None:
    """A slug is a collection id: lower-case, ``[a-z][a-z0-9_]*``, not a built-in one."""
    if not SLUG_RULE.match(slug or ""):
        raise InvalidInput(
            f"slug {slug!r} must start with a lower-case letter and hold only a-z, 0-9 and _ "
            "(at most 63 characters)",
            field="slug",
        )
    if slug in BUILTIN_COLLECTIONS:
        raise InvalidInput(
            f"slug {slug!r} is a built-in collection; choose another",
            field="slug",
        )


@dataclass
class VectorFile:
    """A vector file read and checked: features in EPSG:4326 with JSON-safe attributes."""

    geometries: np.ndarray[Any, Any]  # shapely geometries, EPSG:4326, 2D
    properties: list[dict[str, Any]]
    attributes: list[dict[str, str]]  # [{name, type}]
    original_crs: str
    geometry_type: str
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.geometries)


@dataclass(frozen=True)
class ReadOptions:
    """How to read a file: which layer, which CSV columns, which CRS (overrides the file's)."""

    layer: str | None = None
    lon_col: str | None = None
    lat_col: str | None = None
    wkt_col: str | None = None
    crs: str | None = None
    #: Zipped Shapefiles: most entries, and largest total uncompressed size in bytes.
    max_zip_entries: int = 1000
    max_zip_bytes: int = 2048 * 1024 * 1024


# ------------------------------------------------------------------------ reading


def read_vector(path: Path, options: ReadOptions | None = None) -> VectorFile:
    """Read and check a vector survey file; geometries come back in EPSG:4326.

    Parameters
    ----------
    path
        A GeoPackage, a zip holding one Shapefile (``.shp`` with ``.shx``,
        ``.dbf`` and ``.prj``), GeoJSON, KML, CSV or a bare ``.shp``.
    options
        The layer of a multi-layer file; CSV lon/lat or WKT column names; a
        CRS that overrides what the file declares (``EPSG:32642``...).

    Returns
    -------
    VectorFile
        Geometries transformed to WGS 84 lon/lat (2D), attributes made
        JSON-safe (dates as ISO 8601 text, NaN as null), the attribute schema,
        the file's CRS and notes on what was assumed or renamed.

    Raises
    ------
    InvalidInput, InvalidGeometry, UnknownCRS
        When the file cannot be read or breaks a rule; the message names the
        problem and the feature (1-based, in file order).
    """
    opts = options or ReadOptions()
    if not path.is_file():
        raise InvalidInput(f"no such file: {path.name}", field="file")
    notes: list[str] = []
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        frame = _read_csv(path, opts)
    elif suffix == ".zip":
        frame = _read_ogr(_zipped_shapefile(path, opts), path.name, opts)
    elif suffix == ".shp":
        _shapefile_parts(path.name, {p.name.lower() for p in path.parent.iterdir()})
        frame = _read_ogr(str(path), path.name, opts)
    elif suffix in (".gpkg", ".geojson", ".json", ".kml"):
        frame = _read_ogr(str(path), path.name, opts)
    else:
        raise InvalidInput(
            f"{path.name}: unsupported file type {suffix or '(none)'!r}; use {FORMATS}",
            field="file",
        )
    if len(frame) == 0:
        raise InvalidInput(f"{path.name} holds no features", field="file")
    geoms = frame.geometry.to_numpy()
    _check_geometries(geoms)
    original = _crs(frame, opts.crs, path.name, notes)
    if shapely.has_z(geoms).any():
        notes.append("Z coordinates were dropped (stored in 2D)")
        geoms = shapely.force_2d(geoms)
    lonlat = _to_lonlat(geoms, original, path.name)
    attrs, props = _attributes(frame.drop(columns=frame.geometry.name), notes)
    return VectorFile(
        geometries=lonlat,
        properties=props,
        attributes=attrs,
        original_crs=_crs_name(original),
        geometry_type=_geometry_type(geoms),
        notes=notes,
    )


def _read_ogr(source: str, label: str, opts: ReadOptions) -> gpd.GeoDataFrame:
    try:
        listed = [(str(name), kind) for name, kind in pyogrio.list_layers(source)]
    except Exception as exc:  # GDAL's errors come in many types
        raise InvalidInput(
            f"cannot read {label}: {_gdal_message(exc, source, label)}", field="file"
        ) from exc
    # Tables without geometry (QGIS keeps its styles in one, `layer_styles`) are not layers
    # to choose from, unless the file holds nothing else.
    tables = {name for name, kind in listed if kind is None}
    layers = [name for name, _ in listed if name not in tables] or [name for name, _ in listed]
    if opts.layer is not None and opts.layer in tables and opts.layer not in layers:
        raise InvalidInput(
            f"layer {opts.layer!r} of {label} is a table without geometry; "
            f"its layers: {', '.join(layers)}",
            field="layer",
        )
    if opts.layer is not None and opts.layer not in layers:
        raise InvalidInput(
            f"{label} has no layer {opts.layer!r}; its layers: {', '.join(layers)}", field="layer"
        )
    if opts.layer is None and len(layers) > 1:
        raise InvalidInput(
            f"{label} holds {len(layers)} layers ({', '.join(layers)}); name one with layer",
            field="layer",
        )
    if not layers:
        raise InvalidInput(f"{label} holds no layer", field="file")
    try:
        frame = gpd.read_file(source, engine="pyogrio", layer=opts.layer or layers[0])
    except Exception as exc:
        raise InvalidInput(
            f"cannot read {label}: {_gdal_message(exc, source, label)}", field="file"
        ) from exc
    if not isinstance(frame, gpd.GeoDataFrame) or frame.geometry.name not in frame:
        raise InvalidInput(f"{label} has no geometry column", field="file")
    return frame


def _gdal_message(exc: Exception, source: str, label: str) -> str:
    """GDAL's message without the path it was read from (a server's temporary folder)."""
    text = " ".join(str(exc).replace(source, label).split())
    return text[:300] or type(exc).__name__


def _unsafe_name(name: str) -> bool:
    """A zip entry name that could reach outside a folder it were extracted to."""
    parts = name.replace("\\", "/").split("/")
    return (
        "\x00" in name
        or name.startswith(("/", "\\"))
        or re.match(r"^[A-Za-z]:", name) is not None
        or ".." in parts
    )


def _check_zip(path: Path, entries: list[zipfile.ZipInfo], opts: ReadOptions) -> None:
    """Refuse zip bombs and hostile entry names before GDAL opens anything."""
    if len(entries) > opts.max_zip_entries:
        raise InvalidInput(
            f"{path.name} holds {len(entries)} entries, more than the limit of "
            f"{opts.max_zip_entries} (setting CADASTRE_MAX_ZIP_ENTRIES)",
            field="file",
        )
    total = sum(e.file_size for e in entries)
    if total > opts.max_zip_bytes:
        raise UploadTooLarge(
            f"{path.name} unpacks to {total} bytes, more than the limit of "
            f"{opts.max_zip_bytes // (1024 * 1024)} MB (setting CADASTRE_MAX_ZIP_UNCOMPRESSED_MB)",
            field="file",
        )
    for entry in entries:
        # zipfile cuts a name at a NUL; the original name is what other readers see.
        if _unsafe_name(entry.orig_filename):
            raise InvalidInput(
                f"{path.name} holds an entry with an unsafe name {entry.orig_filename!r} "
                "(absolute, with '..' or a NUL)",
                field="file",
            )


def _zipped_shapefile(path: Path, opts: ReadOptions) -> str:
    """The GDAL path of the one Shapefile in a zip, after checking its parts are there."""
    if not zipfile.is_zipfile(path):
        raise InvalidInput(f"{path.name} is not a zip archive", field="file")
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput(f"{path.name} is not a readable zip: {exc}", field="file") from exc
    _check_zip(path, entries, opts)
    names = [e.filename for e in entries if not e.filename.endswith("/")]
    shps = [n for n in names if n.lower().endswith(".shp") and "__macosx" not in n.lower()]
    if not shps:
        raise InvalidInput(f"{path.name} holds no Shapefile (.shp)", field="file")
    if len(shps) > 1:
        raise InvalidInput(
            f"{path.name} holds {len(shps)} Shapefiles ({', '.join(sorted(shps))}); "
            "zip one layer per file",
            field="file",
        )
    (shp,) = shps
    _shapefile_parts(shp, {n.lower() for n in names})
    return f"/vsizip/{path.resolve()}/{shp}"


def _shapefile_parts(shp: str, present: set[str]) -> None:
    stem = shp[:-4]
    missing = [ext for ext in SHAPEFILE_PARTS if f"{stem}{ext}".lower() not in present]
    if missing:
        raise InvalidInput(
            f"Shapefile {Path(shp).name} is missing its {', '.join(missing)} part(s); "
            "a Shapefile needs .shp, .shx, .dbf and .prj",
            field="file",
        )


def _pick(columns: Sequence[str], given: str | None, candidates: Sequence[str]) -> str | None:
    if given is not None:
        if given not in columns:
            raise InvalidInput(
                f"the CSV has no column {given!r}; its columns: {', '.join(columns)}",
                field="file",
            )
        return given
    return next((c for c in columns if c.strip().lower() in candidates), None)


def _read_csv(path: Path, opts: ReadOptions) -> gpd.GeoDataFrame:
    try:
        table = pd.read_csv(path, encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path.name} is not UTF-8 text: {exc}", field="file") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InvalidInput(f"cannot read {path.name} as CSV: {exc}", field="file") from exc
    columns = [str(c) for c in table.columns]
    table.columns = pd.Index(columns)
    wkt = _pick(columns, opts.wkt_col, WKT_COLUMNS)
    use_xy = opts.lon_col is not None or opts.lat_col is not None or wkt is None
    if use_xy:
        lon = _pick(columns, opts.lon_col, LON_COLUMNS)
        lat = _pick(columns, opts.lat_col, LAT_COLUMNS)
        if lon is None or lat is None:
            raise InvalidInput(
                f"{path.name}: no longitude/latitude or WKT columns found; name them with "
                f"lon_col and lat_col, or wkt_col (recognised: {', '.join(LON_COLUMNS)} / "
                f"{', '.join(LAT_COLUMNS)}, or {', '.join(WKT_COLUMNS)}); "
                f"its columns: {', '.join(columns)}",
                field="file",
            )
        xs = _numbers(table[lon], lon)
        ys = _numbers(table[lat], lat)
        geoms = shapely.points(xs, ys)
        geoms[np.isnan(xs) | np.isnan(ys)] = None
        return gpd.GeoDataFrame(table, geometry=gpd.GeoSeries(geoms), crs=None)
    assert wkt is not None
    texts = table.pop(wkt).to_numpy()
    shapes = np.empty(len(texts), dtype=object)
    for i, value in enumerate(texts):
        if _missing(value) or not str(value).strip():
            shapes[i] = None
            continue
        try:
            shapes[i] = shapely.from_wkt(str(value))
        except shapely.errors.GEOSException as exc:
            raise InvalidGeometry(
                f"feature {i + 1}: column {wkt!r} is not valid WKT: {exc}",
                field="file",
                where={"feature": i + 1},
            ) from None
    return gpd.GeoDataFrame(table, geometry=gpd.GeoSeries(shapes), crs=None)


def _numbers(column: pd.Series[Any], name: str) -> np.ndarray[Any, Any]:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64")
    bad = np.flatnonzero(np.isnan(values) & column.notna().to_numpy())
    if bad.size:
        i = int(bad[0])
        raise InvalidInput(
            f"feature {i + 1}: column {name!r} holds {column.iloc[i]!r}, not a number",
            field="file",
            where={"feature": i + 1, "column": name},
        )
    return values


# ------------------------------------------------------------------- geometries


def _check_geometries(geoms: np.ndarray[Any, Any]) -> None:
    empty = np.flatnonzero(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if empty.size:
        i = int(empty[0])
        raise InvalidGeometry(
            f"feature {i + 1} has an empty geometry ({empty.size} feature(s) in all); "
            "every feature needs a location",
            field="file",
            where={"feature": i + 1, "count": int(empty.size)},
        )
    kinds = shapely.get_type_id(geoms)
    labels = [TYPE_NAMES[k] for k in kinds]
    for i, label in enumerate(labels):
        if label not in FAMILIES:
            raise InvalidGeometry(
                f"feature {i + 1} is a {label}; a survey layer holds points, lines or polygons",
                field="file",
                where={"feature": i + 1},
            )
    families: dict[str, int] = {}
    for i, label in enumerate(labels):
        families.setdefault(FAMILIES[label], i)
    if len(families) > 1:
        counts = {f: sum(1 for x in labels if FAMILIES[x] == f) for f in families}
        first, second = sorted(families, key=families.__getitem__)[:2]
        raise InvalidGeometry(
            "mixed geometry types: "
            + ", ".join(f"{n} {f}" for f, n in counts.items())
            + f" (feature {families[first] + 1} is a {first}, feature {families[second] + 1} "
            f"a {second}); a layer holds one kind: split the file",
            field="file",
            where={"feature": families[second] + 1, "types": counts},
        )
    invalid = np.flatnonzero(~shapely.is_valid(geoms))
    if invalid.size:
        i = int(invalid[0])
        raise InvalidGeometry(
            f"feature {i + 1} has an invalid geometry: {explain_validity(geoms[i])} "
            f"({invalid.size} invalid feature(s) in all)",
            field="file",
            where={"feature": i + 1, "count": int(invalid.size)},
        )


def _geometry_type(geoms: np.ndarray[Any, Any]) -> str:
    names = {g.geom_type for g in geoms}
    if len(names) == 1:
        return str(names.pop())
    family = FAMILIES[next(iter(names))]
    return f"Multi{family}"  # singles and multis of one family: the multi type covers both


def _crs(frame: gpd.GeoDataFrame, given: str | None, label: str, notes: list[str]) -> pyproj.CRS:
    if given:
        try:
            crs = pyproj.CRS.from_user_input(given)
        except pyproj.exceptions.CRSError:
            raise UnknownCRS(f"crs {given!r} is not a known CRS", field="crs") from None
        if frame.crs is not None and not crs.equals(frame.crs):
            notes.append(f"the file declares {_crs_name(frame.crs)}; read as {_crs_name(crs)}")
        return crs
    if frame.crs is not None:
        return pyproj.CRS(frame.crs)
    minx, miny, maxx, maxy = (float(v) for v in frame.total_bounds)
    if -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90:
        notes.append(
            "the file declares no CRS; its coordinates look like lon/lat: EPSG:4326 assumed"
        )
        return pyproj.CRS.from_epsg(4326)
    raise UnknownCRS(
        f"{label} declares no CRS and its coordinates (x {minx:g} to {maxx:g}, y {miny:g} to "
        f"{maxy:g}) are not longitude/latitude; name the CRS (e.g. crs=EPSG:32642)",
        field="crs",
    )


def _crs_name(crs: Any) -> str:
    crs = pyproj.CRS(crs)
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else str(crs.to_string())


def _to_lonlat(geoms: np.ndarray[Any, Any], crs: pyproj.CRS, label: str) -> np.ndarray[Any, Any]:
    if crs.to_epsg() == 4326 or crs.equals("OGC:CRS84"):
        out = geoms  # GDAL hands back lon/lat order for both
    else:
        transformer = pyproj.Transformer.from_crs(crs, 4326, always_xy=True)
        out = shapely.transform(geoms, lambda xy: np.column_stack(transformer.transform(*xy.T)))
    coords = shapely.get_coordinates(out)
    finite = np.isfinite(coords).all(axis=1)
    inside = finite & (np.abs(coords[:, 0]) <= 180) & (np.abs(coords[:, 1]) <= 90)
    if not inside.all():
        counts = shapely.get_num_coordinates(out)
        k = int(np.flatnonzero(~inside)[0])
        feature = int(np.searchsorted(np.cumsum(counts), k, side="right")) + 1
        raise InvalidGeometry(
            f"feature {feature}: its coordinates are not on the globe once read as "
            f"{_crs_name(crs)}; is the CRS right?",
            field="crs",
            where={"feature": feature},
        )
    area = crs.area_of_use
    if area is not None:
        minx, miny, maxx, maxy = shapely.total_bounds(out)
        slack = 1.0  # degrees: data just past a zone edge is common and harmless
        if (
            maxx < area.west - slack
            or minx > area.east + slack
            or maxy < area.south - slack
            or miny > area.north + slack
        ):
            raise InvalidGeometry(
                f"{label}: the features (lon {minx:.3f} to {maxx:.3f}, lat {miny:.3f} to "
                f"{maxy:.3f}) lie outside the area of use of {_crs_name(crs)} ({area.name}); "
                "is the CRS right?",
                field="crs",
            )
    return np.asarray(out, dtype=object)


# ------------------------------------------------------------------- attributes


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, list | tuple | dict | np.ndarray):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


_BIGINT = (-(2**63), 2**63 - 1)


def _fits_bigint(column: pd.Series[Any]) -> bool:
    """Whether every value fits PostgreSQL's bigint (queries cast integer attributes to it)."""
    values = [int(v) for v in column.tolist() if not _missing(v)]
    return all(_BIGINT[0] <= v <= _BIGINT[1] for v in values)


def _column_type(column: pd.Series[Any]) -> str:
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer" if _fits_bigint(column) else "number"
    if pd.api.types.is_float_dtype(dtype):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        stamps = column.dropna()
        naive = getattr(dtype, "tz", None) is None
        midnight = bool((stamps == stamps.dt.normalize()).all()) if len(stamps) else True
        return "date" if naive and midnight else "datetime"
    values = [v for v in column.tolist() if not _missing(v)]
    if not values:
        return "string"
    if all(isinstance(v, bool | np.bool_) for v in values):
        return "boolean"
    if all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
        return "integer" if _fits_bigint(pd.Series(values, dtype=object)) else "number"
    if all(isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in values):
        return "number"
    if all(isinstance(v, datetime) for v in values):
        return "datetime"
    if all(isinstance(v, date) and not isinstance(v, datetime) for v in values):
        return "date"
    if any(isinstance(v, list | tuple | np.ndarray | dict) for v in values):
        return "array"
    return "string"


def _json_safe(value: Any) -> Any:
    if _missing(value):
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, np.ndarray | list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _convert(value: Any, kind: str) -> Any:
    if _missing(value):
        return None
    if kind == "string":
        return str(value)
    if kind == "date":
        return (value.date() if isinstance(value, datetime) else value).isoformat()
    return _json_safe(value)


def _attribute_name(name: str, notes: list[str]) -> str:
    if len(name.encode()) > 63 or not name.strip():
        raise InvalidInput(
            f"attribute name {name!r} must be 1 to 63 bytes long; rename the column",
            field="file",
        )
    if any(ord(ch) < 32 for ch in name):
        raise InvalidInput(
            f"attribute name {name!r} holds a control character; rename the column", field="file"
        )
    renamed = RESERVED_NAMES.get(name.lower()) or (f"attr{name}" if name.startswith("_") else name)
    if renamed != name:
        notes.append(f"attribute {name!r} renamed {renamed!r} (the name is the service's own)")
    return renamed


def _attributes(
    table: pd.DataFrame, notes: list[str]
) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    schema: list[dict[str, str]] = []
    columns: list[tuple[str, list[Any]]] = []
    taken: set[str] = set()
    for original in table.columns:
        name = _attribute_name(str(original), notes)
        if name in taken:
            raise InvalidInput(f"attribute {name!r} appears twice; rename one", field="file")
        taken.add(name)
        column = table[original]
        kind = _column_type(column)
        schema.append({"name": name, "type": kind})
        columns.append((name, [_convert(v, kind) for v in column.tolist()]))
    rows = [{name: values[i] for name, values in columns} for i in range(len(table))]
    return schema, rows


# --------------------------------------------------------------------- writing


def _chunks(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def load_vector(
    conn: Connection,
    data: VectorFile,
    meta: LayerMeta,
    *,
    actor: str,
    replace: bool = False,
    progress: Callable[[int], object] | None = None,
    max_features: int = 2_000_000,
) -> dict[str, Any]:
    """Write a layer to the catalogue with its features, in the caller's transaction.

    Takes the register's write lock first, so map caches move to a new
    generation when the transaction commits. An existing slug is replaced only
    with ``replace``; readers see the old layer until the commit, the new one
    after it.

    Returns
    -------
    dict
        The catalogue entry (see :func:`get_layer`) plus ``notes``.

    Raises
    ------
    Conflict
        The slug exists and ``replace`` is false, or the slug is a raster layer.
    """
    if len(data) > max_features:
        raise InvalidInput(
            f"the file holds {len(data):,} features; at most {max_features:,} are accepted in "
            "one import (CADASTRE_MAX_IMPORT_FEATURES)",
            field="file",
        )
    meta.check()
    lock_for_write(conn)
    existing = conn.execute(
        select(survey_layers.c.id, survey_layers.c.storage)
        .where(survey_layers.c.slug == meta.slug)
        .with_for_update()
    ).first()
    if existing is not None:
        if existing.storage != "vector":
            raise Conflict(
                f"survey layer {meta.slug!r} is a {existing.storage} layer; "
                "a vector import cannot replace it",
                field="slug",
            )
        if not replace:
            raise Conflict(
                f"survey layer {meta.slug!r} already exists; set replace to replace it",
                field="slug",
            )
        conn.execute(delete(survey_layers).where(survey_layers.c.id == existing.id))
    layer_id = conn.execute(
        insert(survey_layers)
        .values(
            slug=meta.slug,
            name=meta.name.strip(),
            kind=meta.kind,
            storage="vector",
            description=(meta.description or "").strip() or None,
            source=meta.source.strip(),
            licence=meta.licence.strip(),
            synthetic=meta.synthetic,
            public=meta.public,
            original_crs=data.original_crs,
            geometry_type=data.geometry_type,
            attributes=data.attributes,
            feature_count=len(data),
            loaded_by=actor,
        )
        .returning(survey_layers.c.id)
    ).scalar_one()
    wkb = shapely.to_wkb(data.geometries, hex=True, include_srid=False)
    statement = text(
        "INSERT INTO survey_features (layer_id, fid, properties, geom) "
        "SELECT :layer_id, f.fid, f.properties, ST_SetSRID(ST_GeomFromWKB(decode(f.wkb, 'hex')), "
        "4326) FROM jsonb_to_recordset(CAST(:rows AS jsonb)) "
        "AS f(fid bigint, properties jsonb, wkb text)"
    )
    for chunk in _chunks(len(data), INSERT_CHUNK):
        rows = [{"fid": i + 1, "properties": data.properties[i], "wkb": str(wkb[i])} for i in chunk]
        conn.execute(statement, {"layer_id": layer_id, "rows": json.dumps(rows, allow_nan=False)})
        if progress:
            progress(len(chunk))
    box = (
        select(func.ST_Extent(survey_features.c.geom))
        .where(survey_features.c.layer_id == layer_id)
        .scalar_subquery()
    )
    conn.execute(
        update(survey_layers)
        .where(survey_layers.c.id == layer_id)
        .values(
            extent=func.ST_SetSRID(
                func.ST_MakeEnvelope(
                    func.ST_XMin(box), func.ST_YMin(box), func.ST_XMax(box), func.ST_YMax(box)
                ),
                4326,
            )
        )
    )
    entry = _lookup(conn, meta.slug)
    entry["notes"] = list(data.notes)
    return entry


# ---------------------------------------------------------------------- catalogue

_ENTRY = select(
    survey_layers.c.slug,
    survey_layers.c.name,
    survey_layers.c.kind,
    survey_layers.c.storage,
    survey_layers.c.description,
    survey_layers.c.source,
    survey_layers.c.licence,
    survey_layers.c.synthetic,
    survey_layers.c.public,
    survey_layers.c.original_crs,
    survey_layers.c.geometry_type,
    survey_layers.c.attributes,
    survey_layers.c.feature_count,
    func.ST_XMin(survey_layers.c.extent).label("xmin"),
    func.ST_YMin(survey_layers.c.extent).label("ymin"),
    func.ST_XMax(survey_layers.c.extent).label("xmax"),
    func.ST_YMax(survey_layers.c.extent).label("ymax"),
    survey_layers.c.loaded_at,
    survey_layers.c.loaded_by,
)


def _entry(row: Any) -> dict[str, Any]:
    m = dict(row._mapping)
    box = [m.pop(k) for k in ("xmin", "ymin", "xmax", "ymax")]
    m["extent"] = None if box[0] is None else [round(float(v), 7) for v in box]
    m["loaded_at"] = m["loaded_at"].isoformat()
    return m


def list_layers(conn: Connection, who: Principal = PUBLIC) -> list[dict[str, Any]]:
    """The catalogue as ``who`` sees it: every survey layer (vector and raster) it may
    read, by slug."""
    query = _ENTRY.where(visible(who)).order_by(survey_layers.c.slug)
    return [_entry(r) for r in conn.execute(query)]


def get_layer(conn: Connection, slug: str, who: Principal = PUBLIC) -> dict[str, Any]:
    """One catalogue entry: slug, name, kind, source, licence, public, CRS, schema, count,
    extent. :class:`NotFound` when there is none, or ``who`` may not read it."""
    return _lookup(conn, slug, visible(who))


def _lookup(conn: Connection, slug: str, *conditions: Any) -> dict[str, Any]:
    row = conn.execute(_ENTRY.where(survey_layers.c.slug == slug, *conditions)).first()
    if row is None:
        raise NotFound(f"no survey layer {slug!r}", field="slug")
    return _entry(row)


def set_public(conn: Connection, slug: str, public: bool, who: Principal) -> dict[str, Any]:
    """Mark a survey layer (vector or raster) public or restricted, in the caller's
    transaction; returns its catalogue entry.

    Takes the register's write lock, so map caches and validators move on at the
    commit. A layer ``who`` may not read is not found.
    """
    lock_for_write(conn)
    done = conn.execute(
        update(survey_layers)
        .where(survey_layers.c.slug == slug, visible(who))
        .values(public=public)
        .returning(survey_layers.c.id)
    ).first()
    if done is None:
        raise NotFound(f"no survey layer {slug!r}", field="slug")
    return _lookup(conn, slug)


def delete_layer(conn: Connection, slug: str) -> None:
    """Delete a vector layer and its features, in the caller's transaction."""
    lock_for_write(conn)
    row = conn.execute(
        select(survey_layers.c.id, survey_layers.c.storage)
        .where(survey_layers.c.slug == slug)
        .with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"no survey layer {slug!r}", field="slug")
    if row.storage != "vector":
        raise Conflict(
            f"survey layer {slug!r} is a {row.storage} layer; delete it as a raster layer",
            field="slug",
        )
    conn.execute(delete(survey_layers).where(survey_layers.c.id == row.id))


def vector_layer(conn: Connection, slug: str) -> tuple[int, list[dict[str, str]], str] | None:
    """(id, attribute schema, name) of a vector layer, or None when there is none."""
    row = conn.execute(
        select(survey_layers.c.id, survey_layers.c.attributes, survey_layers.c.name).where(
            survey_layers.c.slug == slug, survey_layers.c.storage == "vector"
        )
    ).first()
    if row is None:
        return None
    return int(row.id), list(row.attributes), str(row.name)


def area_of(data: VectorFile) -> Any:
    """The polygons of a file read by :func:`read_vector`, merged into one area.

    Parameters
    ----------
    data
        A file of Polygon or MultiPolygon features (EPSG:4326).

    Returns
    -------
    shapely.Polygon or shapely.MultiPolygon
        Their union, in WGS 84 lon/lat: an area of interest or a candidate's shape.

    Raises
    ------
    InvalidInput
        When the file holds points or lines (an area needs polygons).
    """
    if data.geometry_type not in ("Polygon", "MultiPolygon"):
        raise InvalidInput(
            f"the file holds {data.geometry_type} features; an area needs polygons",
            field="file",
        )
    merged = shapely.union_all(data.geometries)
    if merged.geom_type == "GeometryCollection":  # polygons touching at a point, say
        merged = shapely.MultiPolygon(
            [p for g in merged.geoms for p in getattr(g, "geoms", [g]) if p.area > 0]
        )
    return merged
