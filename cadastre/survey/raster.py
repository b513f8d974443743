"""Raster survey layers: import as Cloud-Optimised GeoTIFF, catalogue, tiles, values, statistics.

A raster survey layer (an aeromagnetic grid, a DEM, a radiometric survey) is
kept as one Cloud-Optimised GeoTIFF (internal 512 x 512 tiles, DEFLATE, internal
overviews) in the raster folder, in the CRS it arrived in; its row in
``survey_layers`` (``storage = 'raster'``) holds the footprint in EPSG:4326 as
``extent`` and the file's description in ``raster``: the path relative to the
raster folder, CRS, pixel size, size, bands, data type, nodata, units and
per-band statistics.

A write is all or nothing: the file is made under a temporary name, the
catalogue row is written in one transaction, and only after that commits is
the file renamed to the name the row points at (on any failure the temporary
file is removed). Every file has a fresh name, so a replacement never
overwrites a file a reader may hold open; the replaced file is removed after
the commit.

Reads (tiles, point values, statistics, clips) open the file with rasterio and
read only the window they need; nothing is loaded whole.
"""

from __future__ import annotations

import json
import math
import os
import re
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt
import pyproj
import rasterio
import rasterio.features
import rasterio.windows
import shapely
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError, WindowError
from rasterio.io import DatasetReader, MemoryFile
from rasterio.transform import rowcol
from rasterio.warp import transform as warp_transform
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles
from rio_tiler.colormap import cmap
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io import Reader
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from sqlalchemy import Connection, RowMapping, delete, func, insert, select, update

from cadastre.auth import PUBLIC, Principal
from cadastre.db.engine import Database
from cadastre.db.generation import lock_for_write
from cadastre.db.tables import SURVEY_KINDS, survey_layers
from cadastre.domain.crs import parse_crs
from cadastre.errors import (
    BadQuery,
    Conflict,
    InvalidGeometry,
    InvalidInput,
    NotFound,
    OutsideRaster,
    RasterRefused,
    RasterUnavailable,
)
from cadastre.survey.access import visible

#: Percentiles every statistics answer carries (the stored ones too).
DEFAULT_PERCENTILES = (2.0, 25.0, 50.0, 75.0, 98.0)
#: Rasters up to this many pixels get exact statistics at import; larger ones are
#: summed up from an overview no wider than STATS_MAX_SIDE pixels (marked approximate).
EXACT_STATS_PIXELS = 4096 * 4096
STATS_MAX_SIDE = 2048
#: Loose box around Pakistan (lon/lat): a footprint outside it is a CRS mistake.
PAKISTAN_BOX = (60.0, 23.0, 78.5, 37.5)
MAX_BINS = 1000
#: Largest window (pixels per band) a statistics request or a clip reads; beyond it the
#: answer would take seconds and gigabytes, so it is refused with the size.
MAX_STATISTICS_PIXELS = 120_000_000
MAX_CLIP_PIXELS = 50_000_000
SLUG = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RasterMeta:
    """What the catalogue says about a raster besides what the file says.

    ``units`` are the units of the pixel values (``"nT"``, ``"m"``).
    """

    slug: str
    name: str
    kind: str
    source: str
    licence: str
    units: str | None = None
    description: str | None = None
    synthetic: bool = False
    #: Readable without signing in (open data); otherwise signed-in callers only.
    public: bool = False

    def check(self) -> None:
        """Refuse a malformed slug, an unknown kind or an empty name, source or licence."""
        if not SLUG.fullmatch(self.slug):
            raise InvalidInput(
                f"slug {self.slug!r} must start with a lower-case letter and hold only "
                "a-z, 0-9 and _ (at most 63 characters)",
                field="slug",
            )
        if self.kind not in SURVEY_KINDS:
            raise InvalidInput(
                f"kind {self.kind!r} is not one of {', '.join(SURVEY_KINDS)}", field="kind"
            )
        for name in ("name", "source", "licence"):
            if not str(getattr(self, name) or "").strip():
                raise InvalidInput(f"{name} must not be empty", field=name)
        for name in ("name", "source", "licence", "units", "description"):
            value = getattr(self, name)
            if value is not None and "\x00" in value:
                raise InvalidInput(f"{name} must not contain NUL characters", field=name)


@dataclass(frozen=True)
class RasterLayer:
    """A catalogued raster: its slug, file and description (the ``raster`` column)."""

    slug: str
    name: str
    path: Path
    info: Mapping[str, Any]
    public: bool = False

    def readable(self, who: Principal) -> RasterLayer:
        """This layer, when ``who`` may read it; else :class:`NotFound`, as for a raster
        that does not exist (a layer is kept per generation for every caller)."""
        if not (self.public or who.reads_restricted_layers):
            raise NotFound(f"no raster survey layer {self.slug!r}", field="slug")
        return self

    @property
    def nodata(self) -> float | None:
        value = self.info.get("nodata")
        return None if value is None else float(value)

    def band_stats(self, band: int) -> Mapping[str, Any]:
        stats: Mapping[str, Any] = self.info["statistics"][band - 1]
        return stats


# ---------------------------------------------------------------------- import


def inspect_source(path: Path) -> dict[str, Any]:
    """Open a file GDAL can read and refuse what cannot be a survey raster.

    Returns the source's CRS (as given), size and band count.

    Raises
    ------
    RasterRefused
        The file is missing or empty, GDAL cannot read it, or it has no CRS, no
        georeferencing (no geotransform), zero width or height, or a footprint
        outside Pakistan. The message names the problem and the file.
    """
    name = path.name
    if not path.is_file():
        raise RasterRefused(f"{name}: no such file", field="file")
    if path.stat().st_size == 0:
        raise RasterRefused(f"{name}: the file is empty (0 bytes)", field="file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                return _check_dataset(ds, name)
    except RasterioIOError as exc:
        raise RasterRefused(
            f"{name}: not a raster GDAL can read ({_first_line(exc)})", field="file"
        ) from exc


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _check_dataset(ds: DatasetReader, name: str) -> dict[str, Any]:
    if ds.width == 0 or ds.height == 0 or ds.count == 0:
        raise RasterRefused(
            f"{name}: the raster has no pixels ({ds.width} x {ds.height}, {ds.count} bands)",
            field="file",
        )
    if ds.crs is None:
        raise RasterRefused(
            f"{name}: the raster declares no coordinate reference system; "
            "assign one (e.g. gdal_edit.py -a_srs EPSG:32642) and import again",
            field="file",
        )
    if ds.transform.is_identity or ds.transform.is_degenerate:
        raise RasterRefused(
            f"{name}: the raster is not georeferenced (no geotransform); "
            "rasters positioned only by ground control points must be warped first",
            field="file",
        )
    if ds.transform.b != 0 or ds.transform.d != 0:
        raise RasterRefused(
            f"{name}: the raster is rotated or sheared; warp it to a north-up grid first",
            field="file",
        )
    foot = _footprint(ds)
    lon0, lat0, lon1, lat1 = PAKISTAN_BOX
    if not foot.intersects(shapely.box(lon0, lat0, lon1, lat1)):
        x0, y0, x1, y1 = (round(v, 3) for v in foot.bounds)
        raise RasterRefused(
            f"{name}: the raster lies at lon {x0}..{x1}, lat {y0}..{y1} in {ds.crs}, outside "
            "Pakistan; is its CRS (or UTM zone) right?",
            field="file",
        )
    if len(set(ds.dtypes)) != 1:
        raise RasterRefused(f"{name}: bands of different data types", field="file")
    return {"crs": ds.crs.to_string(), "width": ds.width, "height": ds.height, "bands": ds.count}


def _footprint(ds: DatasetReader) -> Polygon:
    """The raster's outline in EPSG:4326, each edge densified to follow the projection."""
    left, bottom, right, top = ds.bounds
    n = 16
    xs = [left + (right - left) * i / n for i in range(n)]
    ys = [top - (top - bottom) * i / n for i in range(n)]
    ring_x = xs + [right] * n + [right - (right - left) * i / n for i in range(n)] + [left] * n
    ring_y = [top] * n + ys + [bottom] * n + [bottom + (top - bottom) * i / n for i in range(n)]
    lon, lat = warp_transform(ds.crs, "EPSG:4326", ring_x, ring_y)
    poly = Polygon(zip(lon, lat, strict=True))
    return shapely.geometry.polygon.orient(poly, 1.0)


def write_cog(source: Path, dest: Path, *, progress: TextIO | None = None) -> None:
    """Write ``source`` as a Cloud-Optimised GeoTIFF at ``dest`` (rio-cogeo).

    Internal 512 x 512 tiles, DEFLATE with a predictor suited to the data type,
    internal overviews down to a single tile, made by averaging (nodata excluded).
    """
    with rasterio.open(source) as src:
        profile = dict(cog_profiles.get("deflate"))  # type: ignore[no-untyped-call]
        floating = np.issubdtype(np.dtype(src.dtypes[0]), np.floating)
        profile["predictor"] = 3 if floating else 2
        profile["BIGTIFF"] = "IF_SAFER"
        cog_translate(
            src,
            str(dest),
            profile,
            overview_resampling="average",
            quiet=progress is None,
            progress_out=progress,
            in_memory=False,
        )


def band_statistics(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """Per-band statistics of a raster: valid pixel count, min, max, mean, std, percentiles.

    Exact for rasters up to :data:`EXACT_STATS_PIXELS` pixels; larger ones are read
    from an overview at most :data:`STATS_MAX_SIDE` pixels wide. Returns the list and
    whether it is approximate.
    """
    with rasterio.open(path) as ds:
        approximate = ds.width * ds.height > EXACT_STATS_PIXELS
        shape_ = None
        if approximate:
            scale = STATS_MAX_SIDE / max(ds.width, ds.height)
            shape_ = (max(1, round(ds.height * scale)), max(1, round(ds.width * scale)))
        out = []
        for band in range(1, ds.count + 1):
            if shape_ is None:
                data = ds.read(band, masked=True)
            else:
                data = ds.read(band, masked=True, out_shape=shape_)
            values = _valid(data)
            summary = summarise(values, DEFAULT_PERCENTILES, bins=0)
            summary["band"] = band
            out.append(summary)
        return out, approximate


def import_raster(
    db: Database,
    raster_dir: Path,
    source: Path,
    meta: RasterMeta,
    *,
    actor: str,
    replace: bool = False,
    progress: Progress | None = None,
    progress_out: TextIO | None = None,
) -> dict[str, Any]:
    """Import a raster file as a survey layer; return its catalogue entry.

    Parameters
    ----------
    db : Database
        The register; the catalogue row is written in one transaction.
    raster_dir : Path
        The raster folder (``Settings.rasters``); the file is kept there.
    source : Path
        Any raster GDAL reads (GeoTIFF, ERDAS .img, ASCII grid...), in any CRS.
    meta : RasterMeta
        Slug, name, kind, source, licence, units of the values, synthetic flag.
    replace : bool
        Replace the raster of the same slug; without it an existing slug is a conflict.

    Raises
    ------
    RasterRefused
        The file cannot be a survey raster (see :func:`inspect_source`).
    Conflict
        The slug exists (and ``replace`` is false), or belongs to a vector layer.

    Nothing is left behind on failure: no file, no row.
    """
    say = progress or (lambda _m: None)
    meta.check()
    with db.begin() as conn:
        _check_slug_free(conn, meta.slug, replace)
    say(f"checking {source.name}")
    inspect_source(source)
    raster_dir.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    temp = raster_dir / f".tmp-{meta.slug}-{token}.tif"
    final = f"{meta.slug}-{token}.tif"
    old_path: str | None = None
    try:
        say("writing Cloud-Optimised GeoTIFF")
        write_cog(source, temp, progress=progress_out)
        say("computing band statistics")
        stats, approximate = band_statistics(temp)
        with rasterio.open(temp) as ds:
            info = _describe(ds, final, meta.units, stats, approximate)
            foot = _footprint(ds)
            original_crs = ds.crs.to_string()
        say("writing the catalogue entry")
        with db.begin() as conn:
            lock_for_write(conn)
            old_path = _check_slug_free(conn, meta.slug, replace, lock=True)
            values = {
                "name": meta.name,
                "kind": meta.kind,
                "storage": "raster",
                "description": meta.description,
                "source": meta.source,
                "licence": meta.licence,
                "synthetic": meta.synthetic,
                "public": meta.public,
                "original_crs": original_crs,
                "geometry_type": None,
                "feature_count": 0,
                "extent": func.ST_GeomFromText(foot.wkt, 4326),
                "raster": info,
                "loaded_by": actor,
                "loaded_at": func.now(),
            }
            if old_path is None:
                conn.execute(insert(survey_layers).values(slug=meta.slug, **values))
            else:
                conn.execute(
                    update(survey_layers).where(survey_layers.c.slug == meta.slug).values(**values)
                )
            entry = _entry(_row(conn, meta.slug))
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    # Committed: now the file takes the name its row points at.
    os.replace(temp, raster_dir / final)
    if old_path:
        (raster_dir / old_path).unlink(missing_ok=True)
    say(f"imported {meta.slug}")
    return entry


def _check_slug_free(
    conn: Connection, slug: str, replace: bool, *, lock: bool = False
) -> str | None:
    """The file of the raster ``slug`` when it may be replaced; None when the slug is free."""
    query = select(survey_layers.c.storage, survey_layers.c.raster).where(
        survey_layers.c.slug == slug
    )
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        return None
    if row.storage != "raster":
        raise Conflict(
            f"slug {slug!r} is a {row.storage} survey layer; choose another slug",
            field="slug",
        )
    if not replace:
        raise Conflict(
            f"a raster with slug {slug!r} already exists; import with replace to replace it",
            field="slug",
        )
    path: str = (row.raster or {}).get("path", "")
    return path


def _describe(
    ds: DatasetReader,
    path: str,
    units: str | None,
    stats: list[dict[str, Any]],
    approximate: bool,
) -> dict[str, Any]:
    nodata = ds.nodata
    if nodata is not None and not math.isfinite(nodata):
        nodata_value: float | str | None = str(nodata)  # NaN is not JSON
    else:
        nodata_value = nodata
    epsg = ds.crs.to_epsg()
    return {
        "path": path,
        "crs": f"EPSG:{epsg}" if epsg else ds.crs.to_string(),
        "crs_wkt": ds.crs.to_wkt(),
        "resolution": [abs(ds.transform.a), abs(ds.transform.e)],
        "width": ds.width,
        "height": ds.height,
        "bounds": list(ds.bounds),
        "bands": ds.count,
        "dtype": ds.dtypes[0],
        "nodata": nodata_value,
        "units": units,
        "overviews": ds.overviews(1),
        "blocksize": list(ds.block_shapes[0]),
        "statistics": stats,
        "statistics_approximate": approximate,
    }


# ------------------------------------------------------------------- catalogue


_COLUMNS = (
    survey_layers.c.slug,
    survey_layers.c.name,
    survey_layers.c.kind,
    survey_layers.c.description,
    survey_layers.c.source,
    survey_layers.c.licence,
    survey_layers.c.synthetic,
    survey_layers.c.public,
    survey_layers.c.original_crs,
    survey_layers.c.raster,
    survey_layers.c.loaded_at,
    survey_layers.c.loaded_by,
    func.ST_AsGeoJSON(survey_layers.c.extent, 7).label("extent_json"),
)


def _row(conn: Connection, slug: str, *conditions: Any) -> RowMapping:
    row = (
        conn.execute(
            select(*_COLUMNS).where(
                survey_layers.c.slug == slug, survey_layers.c.storage == "raster", *conditions
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no raster survey layer {slug!r}", field="slug")
    return row


def _entry(row: RowMapping) -> dict[str, Any]:
    extent = shape(json.loads(row["extent_json"])) if row["extent_json"] else None
    return {
        "slug": row["slug"],
        "name": row["name"],
        "kind": row["kind"],
        "description": row["description"],
        "source": row["source"],
        "licence": row["licence"],
        "synthetic": row["synthetic"],
        "public": row["public"],
        "original_crs": row["original_crs"],
        "loaded_at": row["loaded_at"].isoformat(),
        "loaded_by": row["loaded_by"],
        "bbox": list(extent.bounds) if extent is not None else None,
        "extent": mapping(extent) if extent is not None else None,
        "raster": {k: v for k, v in row["raster"].items() if k != "crs_wkt"},
    }


def list_rasters(conn: Connection, who: Principal = PUBLIC) -> list[dict[str, Any]]:
    """The catalogue entry of every raster survey layer ``who`` may read, by slug."""
    rows = conn.execute(
        select(*_COLUMNS)
        .where(survey_layers.c.storage == "raster", visible(who))
        .order_by(survey_layers.c.slug)
    ).mappings()
    return [_entry(r) for r in rows]


def get_raster(conn: Connection, slug: str, who: Principal = PUBLIC) -> dict[str, Any]:
    """One raster's catalogue entry; :class:`NotFound` when there is none, or ``who`` may
    not read it."""
    return _entry(_row(conn, slug, visible(who)))


def layer(conn: Connection, raster_dir: Path, slug: str) -> RasterLayer:
    """The raster ``slug`` as the readers need it: its file, description and whether it is
    public. Whoever serves it checks :meth:`RasterLayer.readable` for the caller."""
    row = _row(conn, slug)
    info = dict(row["raster"])
    return RasterLayer(
        slug=slug,
        name=row["name"],
        path=raster_dir / info["path"],
        info=info,
        public=bool(row["public"]),
    )


def delete_raster(db: Database, raster_dir: Path, slug: str) -> None:
    """Remove a raster from the catalogue (one transaction), then its file."""
    with db.begin() as conn:
        lock_for_write(conn)
        row = _row(conn, slug)
        conn.execute(delete(survey_layers).where(survey_layers.c.slug == slug))
    (raster_dir / row["raster"]["path"]).unlink(missing_ok=True)


# ---------------------------------------------------------------------- values


@contextmanager
def _open(layer_: RasterLayer) -> Iterator[DatasetReader]:
    """The raster's file, open for reading; a file that cannot be opened is unavailable."""
    try:
        ds = rasterio.open(layer_.path)
    except RasterioIOError as exc:
        raise RasterUnavailable(
            f"the file of raster {layer_.slug!r} cannot be read now; retry", field="slug"
        ) from exc
    with ds:
        yield ds


def point_values(layer_: RasterLayer, x: float, y: float, crs: str | None = None) -> dict[str, Any]:
    """The value of every band at a point; None where the pixel is nodata.

    ``x``, ``y`` are longitude and latitude (``crs`` unset, OGC:CRS84) or
    coordinates in ``crs`` (any CRS the register accepts, x first). The pixel is
    the one whose area holds the point (row and column from the raster's
    geotransform, rounded down).

    Raises
    ------
    OutsideRaster
        The point lies outside the raster.
    """
    ref = parse_crs(crs)
    with _open(layer_) as ds:
        [rx], [ry] = _to_raster_xy(ref.identifier, ds, [x], [y])
        row, col = (
            rowcol(ds.transform, rx, ry) if math.isfinite(rx) and math.isfinite(ry) else (-1, -1)
        )
        if not (0 <= row < ds.height and 0 <= col < ds.width):
            raise OutsideRaster(
                f"the point ({x}, {y}) in {ref.identifier} lies outside raster "
                f"{layer_.slug!r} (bounds {[round(b, 3) for b in ds.bounds]} in {ds.crs})",
                field="lon",
            )
        window = rasterio.windows.Window(col, row, 1, 1)
        data = ds.read(window=window, masked=True)
        values: list[float | None] = []
        for band in range(ds.count):
            cell = data[band, 0, 0]
            values.append(None if cell is np.ma.masked or not np.isfinite(cell) else float(cell))
        return {
            "slug": layer_.slug,
            "crs": ref.identifier,
            "x": x,
            "y": y,
            "row": int(row),
            "col": int(col),
            "values": values,
            "units": layer_.info.get("units"),
        }


def _to_raster_xy(
    crs: str, ds: DatasetReader, xs: Sequence[float], ys: Sequence[float]
) -> tuple[list[float], list[float]]:
    if crs == "OGC:CRS84":
        crs = "EPSG:4326"
    transformer = pyproj.Transformer.from_crs(crs, ds.crs.to_wkt(), always_xy=True)
    rx, ry = transformer.transform(list(xs), list(ys))
    return list(rx), list(ry)


def read_polygon(geometry: Mapping[str, Any]) -> Polygon | MultiPolygon:
    """A GeoJSON Polygon or MultiPolygon (or a Feature holding one), checked.

    Raises
    ------
    InvalidGeometry
        Not a Polygon or MultiPolygon, malformed, empty or invalid (with GEOS's reason).
    """
    geom: Any = geometry
    if isinstance(geom, Mapping) and geom.get("type") == "Feature":
        geom = geom.get("geometry") or {}
    kind = geom.get("type") if isinstance(geom, Mapping) else type(geom).__name__
    if kind not in ("Polygon", "MultiPolygon"):
        raise InvalidGeometry(
            f"geometry must be a GeoJSON Polygon or MultiPolygon, not {kind!r}",
            field="geometry",
        )
    try:
        poly = shape(geom)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise InvalidGeometry(
            f"geometry is malformed: {_first_line(exc)}", field="geometry"
        ) from exc
    if poly.is_empty:
        raise InvalidGeometry("geometry is empty", field="geometry")
    if not np.all(np.isfinite(shapely.get_coordinates(poly))):
        raise InvalidGeometry("geometry holds NaN or infinite coordinates", field="geometry")
    if not poly.is_valid:
        raise InvalidGeometry(
            f"geometry is invalid: {shapely.is_valid_reason(poly)}", field="geometry"
        )
    assert isinstance(poly, Polygon | MultiPolygon)
    return poly


def _polygon_in_raster_crs(
    poly: Polygon | MultiPolygon, crs: str | None, ds: DatasetReader
) -> Polygon | MultiPolygon:
    """The polygon in the raster's CRS; edges densified first so they stay straight in ``crs``."""
    ref = parse_crs(crs)
    identifier = "EPSG:4326" if ref.identifier == "OGC:CRS84" else ref.identifier
    if pyproj.CRS(identifier) == pyproj.CRS(ds.crs.to_wkt()):
        return poly
    x0, y0, x1, y1 = poly.bounds
    step = max(x1 - x0, y1 - y0) / 256
    dense = shapely.segmentize(poly, step) if step > 0 else poly
    transformer = pyproj.Transformer.from_crs(identifier, ds.crs.to_wkt(), always_xy=True)
    moved = shapely.transform(dense, lambda xy: np.column_stack(transformer.transform(*xy.T)))
    if not np.all(np.isfinite(shapely.get_coordinates(moved))):
        raise InvalidGeometry(
            f"the geometry's coordinates are not valid in {ref.identifier}: they cannot be "
            f"moved to the raster's CRS ({ds.crs}); is crs right?",
            field="geometry",
        )
    assert isinstance(moved, Polygon | MultiPolygon)
    return moved


def _covered(
    ds: DatasetReader,
    layer_: RasterLayer,
    poly: Polygon | MultiPolygon,
    crs: str | None,
    max_pixels: int,
) -> tuple[rasterio.windows.Window, npt.NDArray[np.bool_]]:
    """The window of the polygon's bounds and which of its pixels the polygon covers.

    Covered = pixel centre inside the polygon (rasterio.mask semantics, all_touched=False).
    """
    moved = _polygon_in_raster_crs(poly, crs, ds)
    full = rasterio.windows.Window(0, 0, ds.width, ds.height)
    try:
        window = rasterio.features.geometry_window(ds, [mapping(moved)])
        window = window.intersection(full)
    except WindowError:
        window = None
    if window is None or window.width < 1 or window.height < 1:
        raise OutsideRaster(
            f"the polygon lies outside raster {layer_.slug!r} "
            f"(bounds {[round(b, 3) for b in ds.bounds]} in {ds.crs})",
            field="geometry",
        )
    window = window.round_offsets().round_lengths()
    if window.width * window.height > max_pixels:
        raise BadQuery(
            f"the polygon's bounds cover {int(window.width)} x {int(window.height)} pixels of "
            f"raster {layer_.slug!r}; at most {max_pixels:,} pixels are read per request",
            field="geometry",
        )
    inside = rasterio.features.geometry_mask(
        [mapping(moved)],
        out_shape=(int(window.height), int(window.width)),
        transform=ds.window_transform(window),
        all_touched=False,
        invert=True,
    )
    return window, inside


def _read_valid(
    ds: DatasetReader, window: rasterio.windows.Window, band: int
) -> np.ma.MaskedArray[Any, Any]:
    """A band's window as a masked array, nodata (and NaN) masked.

    With a nodata value the mask is computed from the values (one read); a
    raster with a mask band has it read.
    """
    data = ds.read(band, window=window)
    nodata = ds.nodata
    if nodata is not None:
        invalid = np.isnan(data) if math.isnan(nodata) else data == nodata
    elif ds.mask_flag_enums[band - 1] and any(
        f.name in ("per_dataset", "alpha") for f in ds.mask_flag_enums[band - 1]
    ):
        invalid = ds.read_masks(band, window=window) == 0
    else:
        invalid = np.zeros(data.shape, dtype=bool)
    if np.issubdtype(data.dtype, np.floating):
        invalid |= ~np.isfinite(data)
    return np.ma.MaskedArray(data, mask=invalid)


def _valid(data: np.ma.MaskedArray[Any, Any]) -> npt.NDArray[Any]:
    values = data.compressed()
    if np.issubdtype(values.dtype, np.floating):
        values = values[np.isfinite(values)]
    return values


def summarise(values: npt.NDArray[Any], percentiles: Sequence[float], bins: int) -> dict[str, Any]:
    """Count, min, max, mean, std (population), percentiles (linear) and a histogram.

    Empty input gives count 0 and nulls.
    """
    n = int(values.size)
    out: dict[str, Any] = {"count": n}
    if n == 0:
        out.update(min=None, max=None, mean=None, std=None)
        out["percentiles"] = {_pkey(p): None for p in percentiles}
        if bins:
            out["histogram"] = {"counts": [], "edges": []}
        return out
    lo, hi = float(values.min()), float(values.max())
    out.update(
        min=lo,
        max=hi,
        mean=float(np.mean(values, dtype=np.float64)),
        std=float(np.std(values, dtype=np.float64)),
    )
    qs = np.percentile(values, list(percentiles)) if percentiles else []
    out["percentiles"] = {_pkey(p): float(q) for p, q in zip(percentiles, qs, strict=True)}
    if bins:
        counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
        out["histogram"] = {
            "counts": [int(c) for c in counts],
            "edges": [float(e) for e in edges],
        }
    return out


def _pkey(p: float) -> str:
    return str(int(p)) if float(p).is_integer() else str(p)


def check_percentiles(extra: Sequence[float]) -> list[float]:
    """The default percentiles plus the requested ones, each in 0..100."""
    for p in extra:
        if not (math.isfinite(p) and 0 <= p <= 100):
            raise BadQuery(f"percentile {p} is outside 0..100", field="percentiles")
    return sorted(set(DEFAULT_PERCENTILES) | {float(p) for p in extra})


def polygon_statistics(
    layer_: RasterLayer,
    geometry: Mapping[str, Any],
    *,
    crs: str | None = None,
    percentiles: Sequence[float] = (),
    bins: int = 10,
) -> dict[str, Any]:
    """Statistics of every band over the pixels a polygon covers.

    Parameters
    ----------
    geometry : mapping
        GeoJSON Polygon or MultiPolygon (or a Feature), in ``crs`` (default
        OGC:CRS84, lon/lat), reprojected to the raster's CRS.
    percentiles : sequence of float
        Asked for besides 2, 25, 50, 75 and 98 (linear interpolation).
    bins : int
        Histogram bins between the covered minimum and maximum (1..1000).

    Notes
    -----
    A pixel counts when its centre is inside the polygon (``rasterio.mask``
    semantics, ``all_touched=False``) and it is not nodata. Only the window of
    the polygon's bounds is read. A polygon overlapping the raster but covering
    no pixel centre (or only nodata) gives ``count`` 0 and null statistics.

    Raises
    ------
    OutsideRaster
        The polygon does not overlap the raster.
    InvalidGeometry, BadQuery, UnknownCRS
        Bad geometry, percentiles or bins, or an unknown CRS.
    """
    if not 1 <= bins <= MAX_BINS:
        raise BadQuery(f"bins must be 1..{MAX_BINS}, not {bins}", field="bins")
    qs = check_percentiles(percentiles)
    poly = read_polygon(geometry)
    with _open(layer_) as ds:
        window, inside = _covered(ds, layer_, poly, crs, MAX_STATISTICS_PIXELS)
        bands = []
        for band in range(1, ds.count + 1):
            data = _read_valid(ds, window, band)
            data.mask |= ~inside
            summary = summarise(_valid(data), qs, bins)
            summary["band"] = band
            bands.append(summary)
        return {
            "slug": layer_.slug,
            "units": layer_.info.get("units"),
            "pixels_covered": int(inside.sum()),
            "window": {
                "col_off": int(window.col_off),
                "row_off": int(window.row_off),
                "width": int(window.width),
                "height": int(window.height),
            },
            "bands": bands,
        }


def clip(layer_: RasterLayer, geometry: Mapping[str, Any], *, crs: str | None = None) -> bytes:
    """A GeoTIFF of the polygon's window, pixels outside the polygon set to nodata.

    The raster's own nodata value is used; a raster without one gets an internal
    mask band instead. Same pixel rule as :func:`polygon_statistics`.
    """
    poly = read_polygon(geometry)
    with _open(layer_) as ds:
        window, inside = _covered(ds, layer_, poly, crs, MAX_CLIP_PIXELS)
        data = ds.read(window=window)
        profile = {
            "driver": "GTiff",
            "width": int(window.width),
            "height": int(window.height),
            "count": ds.count,
            "dtype": ds.dtypes[0],
            "crs": ds.crs,
            "transform": ds.window_transform(window),
            "compress": "deflate",
            "tiled": window.width >= 256 and window.height >= 256,
            "nodata": ds.nodata,
        }
        valid = np.stack([~_read_valid(ds, window, b).mask for b in range(1, ds.count + 1)])
        keep = valid & inside[np.newaxis]
        with MemoryFile() as mem:
            with mem.open(**profile) as dst:
                if ds.nodata is not None:
                    dst.write(np.where(keep, data, np.array(ds.nodata, dtype=data.dtype)))
                else:
                    dst.write(data)
                    dst.write_mask((keep.all(axis=0) * 255).astype(np.uint8))
                dst.update_tags(**{"SOURCE": f"cadastre raster {layer_.slug}"})
            return bytes(mem.read())


# ----------------------------------------------------------------------- tiles


def colormap_names() -> list[str]:
    """Names accepted by ``colormap`` (rio-tiler's matplotlib-style maps)."""
    return sorted(cmap.list())


def colormap_colors(name: str) -> list[list[int]]:
    """The 256 RGBA colours of colour map ``name``, index 0 drawn for the low end of the range.

    Raises
    ------
    NotFound
        When rio-tiler knows no colour map of that name.
    """
    key = name.strip().lower()
    if key not in cmap.list():
        raise NotFound(f"no colour map {name!r}; GET /rasters/colormaps lists them", field="name")
    colours: dict[int, tuple[int, int, int, int]] = dict(cmap.get(key))  # type: ignore[arg-type]
    return [[int(v) for v in colours[i]] for i in sorted(colours)]


@dataclass(frozen=True)
class TileStyle:
    """How a tile is drawn: band(s), value range mapped to 0..255, colour map."""

    bands: tuple[int, ...]
    rescale: tuple[tuple[float, float], ...]
    colormap: str | None

    def key(self) -> tuple[Any, ...]:
        return (self.bands, self.rescale, self.colormap)


def tile_style(
    layer_: RasterLayer,
    *,
    band: int | None = None,
    rescale: str | None = None,
    colormap: str | None = None,
) -> TileStyle:
    """Check the drawing options against the raster.

    One band (``band``, or the only band) is drawn through ``colormap`` (grey
    without one); a raster of three or more bands without ``band`` is drawn as
    RGB from bands 1-3 (no colormap). ``rescale`` is ``"min,max"``; unset, each
    band's stored 2nd..98th percentile.
    """
    count = int(layer_.info["bands"])
    if band is not None and not 1 <= band <= count:
        raise BadQuery(f"band must be 1..{count} for raster {layer_.slug!r}", field="band")
    bands: tuple[int, ...] = (1, 2, 3) if band is None and count >= 3 else (band or 1,)
    if colormap is not None:
        name = colormap.strip().lower()
        if name not in cmap.list():
            raise BadQuery(
                f"unknown colormap {colormap!r}; e.g. viridis, magma, terrain, rdbu "
                f"({len(cmap.list())} names, listed at GET /rasters/colormaps)",
                field="colormap",
            )
        if len(bands) > 1:
            raise BadQuery(
                "colormap applies to one band; give band= to draw one band of an RGB raster",
                field="colormap",
            )
        colormap = name
    if rescale is not None:
        parts = rescale.split(",")
        try:
            lo, hi = (float(p) for p in parts)
        except ValueError:
            raise BadQuery(
                f"rescale must be two numbers 'min,max', not {rescale!r}", field="rescale"
            ) from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise BadQuery(
                f"rescale must be finite numbers with min < max, not {rescale!r}",
                field="rescale",
            )
        ranges = tuple((lo, hi) for _ in bands)
    else:
        ranges = tuple(_default_range(layer_, b) for b in bands)
    return TileStyle(bands=bands, rescale=ranges, colormap=colormap)


def _default_range(layer_: RasterLayer, band: int) -> tuple[float, float]:
    stats = layer_.band_stats(band)
    p = stats.get("percentiles") or {}
    lo, hi = p.get("2"), p.get("98")
    if lo is None or hi is None:
        return (0.0, 1.0)
    if hi <= lo:
        lo, hi = stats.get("min", lo), stats.get("max", hi)
        if hi <= lo:
            hi = lo + 1.0
    return (float(lo), float(hi))


def render_tile(
    layer_: RasterLayer, z: int, x: int, y: int, style: TileStyle, img_format: str
) -> bytes | None:
    """A 256 x 256 WebMercatorQuad tile as PNG or WEBP; None when the raster has nothing there.

    Nodata pixels are transparent (alpha 0). Values are mapped linearly from the
    style's range to 0..255 (clipped) and through the colour map.
    """
    with _open(layer_) as ds, Reader(None, dataset=ds) as src:
        try:
            img = src.tile(x, y, z, indexes=style.bands)
        except TileOutsideBounds:
            return None
    if bool(np.all(img.array.mask)):
        return None
    img.rescale(in_range=style.rescale)
    colour = cmap.get(style.colormap) if style.colormap else None
    # Lossless WebP: a colour is a value; lossy coding would change what the map says.
    options = {"lossless": "TRUE"} if img_format == "WEBP" else {}
    out: bytes = img.render(img_format=img_format, colormap=colour, **options)
    return out
