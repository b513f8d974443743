"""Raster survey layers: upload, catalogue, XYZ tiles, point values, zonal statistics, clips."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from api.auth import WhoDep, WriterDep
from api.caching import CACHE_CONTROL, etag_for, not_modified
from api.deps import DbDep, SettingsDep, strict_query
from api.schemas import errors
from cadastre import auth
from cadastre.auth import Principal
from cadastre.db import generation
from cadastre.db.engine import Database
from cadastre.db.tables import SURVEY_KINDS
from cadastre.errors import BadQuery, InvalidInput, UploadTooLarge
from cadastre.settings import Settings
from cadastre.survey import raster

router = APIRouter(tags=["rasters"], dependencies=[Depends(strict_query)])

CHUNK = 1024 * 1024
#: Room for the form fields and multipart framing beyond the file itself.
FORM_SLACK = 1024 * 1024
TILE_NOTE = (
    "Nodata is transparent. A tile with no pixel of the raster is 204 No Content (as for "
    "vector tiles). Tiles carry a strong ETag from the register's generation and "
    "Cache-Control: no-cache; a matching If-None-Match gets 304."
)
GEOMETRY_BODY = Body(
    description="A GeoJSON Polygon or MultiPolygon, or a Feature holding one, in `crs`.",
    examples=[
        {
            "type": "Polygon",
            "coordinates": [[[62.0, 29.0], [62.3, 29.0], [62.3, 29.2], [62.0, 29.2], [62.0, 29.0]]],
        }
    ],
)
CrsQuery = Annotated[
    str | None,
    Query(
        description="CRS of the coordinates: OGC:CRS84 (default, lon/lat), EPSG:4326 "
        "(also lon/lat), WGS 84 / UTM 41N-43N, Kalianpur 1962 grids; x first.",
        max_length=200,
    ),
]


async def _generation(db: Database) -> int:
    gen = db.generation.known()
    if gen is None:
        gen = await run_in_threadpool(_committed_generation, db)
    return gen


def _committed_generation(db: Database) -> int:
    with db.begin() as conn:
        return generation.current(conn)


def _layer_now(db: Database, settings: Settings, slug: str) -> raster.RasterLayer:
    with db.begin() as conn:
        return raster.layer(conn, settings.rasters, slug)


async def _layer(request: Request, slug: str, gen: int, who: Principal) -> raster.RasterLayer:
    """The raster's catalogue entry as of ``gen``, remembered per generation for every
    caller; whether this caller may read it is checked on every request, hit or miss."""
    cache: dict[tuple[int, str], raster.RasterLayer] = request.app.state.raster_layers
    found = cache.get((gen, slug))
    if found is None:
        found = await run_in_threadpool(
            _layer_now, request.app.state.db, request.app.state.settings, slug
        )
        if len(cache) > 256:
            cache.clear()
        cache[(gen, slug)] = found
    return found.readable(who)


# ------------------------------------------------------------------- catalogue


@router.get("/rasters", summary="Raster survey layers")
def list_rasters(db: DbDep, who: WhoDep) -> dict[str, Any]:
    """Every raster survey layer the caller may read (public ones; all when signed in) with
    its footprint, description and band statistics."""
    with db.begin() as conn:
        return {"rasters": raster.list_rasters(conn, who)}


@router.get("/rasters/colormaps", summary="Colour map names")
def colormaps() -> dict[str, list[str]]:
    """The names `colormap=` accepts on raster tiles (matplotlib-style, from rio-tiler)."""
    return {"colormaps": raster.colormap_names()}


@router.get(
    "/rasters/colormaps/{name}", summary="The colours of a colour map", responses=errors(404)
)
def colormap(name: str) -> dict[str, Any]:
    """The 256 RGBA colours of a colour map, first for the low end of `rescale`: a legend."""
    return {"name": name, "colors": raster.colormap_colors(name)}


@router.get("/rasters/{slug}", summary="One raster survey layer")
def get_raster(slug: str, db: DbDep, who: WhoDep) -> dict[str, Any]:
    """Its catalogue entry: footprint (EPSG:4326), CRS, pixel size, bands, nodata, units,
    per-band statistics (count, min, max, mean, std, 2/25/50/75/98th percentiles)."""
    with db.begin() as conn:
        return raster.get_raster(conn, slug, who)


@router.delete(
    "/rasters/{slug}",
    status_code=204,
    summary="Remove a raster survey layer",
    response_class=Response,
    responses={401: {"description": "not signed in"}, 403: {"description": "not a geologist"}},
)
def delete_raster(
    slug: str,
    db: DbDep,
    settings: SettingsDep,
    who: WriterDep,
) -> Response:
    """Removes the catalogue entry (one transaction), then its file. Geologists and admins."""
    auth.require_survey_writer(who)
    raster.delete_raster(db, settings.rasters, slug)
    return Response(status_code=204)


UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "slug", "name", "kind", "source", "licence"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "Any raster GDAL reads (GeoTIFF, ...), "
                            "georeferenced, with a CRS",
                        },
                        "slug": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,62}$"},
                        "name": {"type": "string"},
                        "kind": {"type": "string", "enum": list(SURVEY_KINDS)},
                        "source": {"type": "string"},
                        "licence": {"type": "string"},
                        "units": {"type": "string", "description": "units of the values"},
                        "description": {"type": "string"},
                        "synthetic": {"type": "boolean", "default": False},
                        "public": {
                            "type": "boolean",
                            "default": False,
                            "description": "readable without signing in (open data)",
                        },
                        "replace": {"type": "boolean", "default": False},
                    },
                }
            }
        },
    }
}


class _Form:
    """Collects a streamed multipart body: small fields in memory, the file on disk."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder = folder
        self.limit = limit
        self.fields: dict[str, str] = {}
        self.file: Path | None = None
        self.file_bytes = 0
        self._name = ""
        self._filename: str | None = None
        self._header = b""
        self._value = b""
        self._headers: dict[bytes, bytes] = {}
        self._buffer = bytearray()
        self._out: Any = None

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._buffer = bytearray()
        self._name = ""
        self._filename = None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header.lower()] = self._value
        self._header = b""
        self._value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if filename is not None:
            if self._name != "file" or self.file is not None:
                raise InvalidInput("send exactly one file, in the part named 'file'", field="file")
            self._filename = filename.decode("utf-8", "replace")
            suffix = Path(self._filename).suffix.lower()
            if not re.fullmatch(r"\.[a-z0-9]{1,8}", suffix):
                suffix = ""
            self.file = self.folder / f".upload-{uuid.uuid4().hex}{suffix}"
            self._out = self.file.open("wb")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._out is not None:
            self.file_bytes += end - start
            if self.file_bytes > self.limit:
                raise _too_large(self.limit)
            self._out.write(data[start:end])
        else:
            self._buffer += data[start:end]
            if len(self._buffer) > 64 * 1024:
                raise InvalidInput(f"form field {self._name!r} is too long", field=self._name)

    def _part_end(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        elif self._name:
            self.fields[self._name] = self._buffer.decode("utf-8", "replace")

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        if self.file is not None:
            self.file.unlink(missing_ok=True)


def _too_large(limit: int) -> UploadTooLarge:
    return UploadTooLarge(
        f"the raster file is larger than the limit of {limit} bytes "
        f"({limit / 1024 / 1024:.0f} MiB, setting CADASTRE_RASTER_UPLOAD_MAX_BYTES)",
        field="file",
        where={"limit_bytes": limit},
    )


def _flag(fields: dict[str, str], name: str) -> bool:
    value = fields.get(name, "false").strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off", ""):
        return False
    raise InvalidInput(f"{name} must be true or false, not {value!r}", field=name)


@router.post(
    "/rasters",
    status_code=201,
    summary="Upload a raster survey layer",
    openapi_extra=UPLOAD_DOC,
    responses={
        401: {"description": "not signed in"},
        403: {"description": "not a geologist or admin"},
        409: {"description": "the slug exists (send replace=true) or is a vector layer"},
        413: {"description": "the file is larger than CADASTRE_RASTER_UPLOAD_MAX_BYTES"},
        422: {"description": "unreadable file, no CRS, no georeferencing, bad field"},
    },
)
async def upload_raster(
    request: Request,
    settings: SettingsDep,
    who: WriterDep,
) -> dict[str, Any]:
    """Streams the upload to disk in chunks (refused with 413 past the size limit), stores it
    as a Cloud-Optimised GeoTIFF and catalogues it; all or nothing. Geologists and admins
    (refused before the body is read)."""
    auth.require_survey_writer(who)
    limit = settings.raster_upload_max_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + FORM_SLACK:
        raise _too_large(limit)
    ctype, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise InvalidInput("the body must be multipart/form-data with a 'file' part", field="body")
    folder = settings.rasters
    folder.mkdir(parents=True, exist_ok=True)
    form = _Form(folder, limit)
    parser = MultipartParser(boundary, form.callbacks())
    try:
        received = 0
        try:
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit + FORM_SLACK:
                    raise _too_large(limit)
                parser.write(chunk)
            parser.finalize()
        except MultipartParseError as exc:
            raise InvalidInput(f"malformed multipart body: {exc}", field="body") from None
        if form.file is None:
            raise InvalidInput("no file: send the raster in a part named 'file'", field="file")
        fields = form.fields
        missing = [n for n in ("slug", "name", "kind", "source", "licence") if not fields.get(n)]
        if missing:
            raise InvalidInput(f"missing form field {missing[0]!r}", field=missing[0])
        meta = raster.RasterMeta(
            slug=fields["slug"].strip(),
            name=fields["name"].strip(),
            kind=fields["kind"].strip(),
            source=fields["source"].strip(),
            licence=fields["licence"].strip(),
            units=(fields.get("units") or "").strip() or None,
            description=(fields.get("description") or "").strip() or None,
            synthetic=_flag(fields, "synthetic"),
            public=_flag(fields, "public"),
        )
        replace = _flag(fields, "replace")
        source = form.file
        return await run_in_threadpool(
            raster.import_raster,
            request.app.state.db,
            folder,
            source,
            meta,
            actor=who.actor,
            replace=replace,
        )
    finally:
        form.close()


# ----------------------------------------------------------------------- tiles


async def _tile(
    request: Request,
    slug: str,
    z: int,
    x: int,
    y: int,
    fmt: Literal["PNG", "WEBP"],
    colormap: str | None,
    rescale: str | None,
    band: int | None,
    who: Principal,
) -> Response:
    if not 0 <= z <= 24:
        raise BadQuery(f"zoom {z} is outside 0..24", field="z")
    n = 2**z
    if not (0 <= x < n and 0 <= y < n):
        raise BadQuery(f"tile {z}/{x}/{y} does not exist: x and y run 0..{n - 1}", field="x")
    db: Database = request.app.state.db
    gen = await _generation(db)
    lay = await _layer(request, slug, gen, who)
    style = raster.tile_style(lay, band=band, rescale=rescale, colormap=colormap)
    etag = etag_for(request, gen, "identity")
    held = not_modified(request, etag)
    if held is not None:
        return held
    body = await run_in_threadpool(raster.render_tile, lay, z, x, y, style, fmt)
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if body is None:
        return Response(status_code=204, headers=headers)
    return Response(body, media_type=f"image/{fmt.lower()}", headers=headers)


ColormapQuery = Annotated[
    str | None,
    Query(
        description="Colour map for one band: viridis, magma, terrain, rdbu, ... "
        "(GET /rasters/colormaps); grey when unset.",
        max_length=64,
    ),
]
RescaleQuery = Annotated[
    str | None,
    Query(
        description="`min,max`: the value range drawn from the first to the last colour; "
        "default the band's stored 2nd..98th percentile.",
        max_length=100,
    ),
]
BandQuery = Annotated[
    int | None,
    Query(description="Band to draw (1-based); default band 1, or RGB from bands 1-3."),
]


@router.get(
    "/rasters/{slug}/tiles/{z}/{x}/{y}.png",
    summary="A raster tile (PNG)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 204: {"description": TILE_NOTE}},
)
async def png_tile(
    slug: str,
    z: int,
    x: int,
    y: int,
    request: Request,
    who: WhoDep,
    colormap: ColormapQuery = None,
    rescale: RescaleQuery = None,
    band: BandQuery = None,
) -> Response:
    """One XYZ tile (WebMercatorQuad, 256 px) drawn from the raster's COG and overviews."""
    return await _tile(request, slug, z, x, y, "PNG", colormap, rescale, band, who)


@router.get(
    "/rasters/{slug}/tiles/{z}/{x}/{y}.webp",
    summary="A raster tile (WebP)",
    response_class=Response,
    responses={200: {"content": {"image/webp": {}}}, 204: {"description": TILE_NOTE}},
)
async def webp_tile(
    slug: str,
    z: int,
    x: int,
    y: int,
    request: Request,
    who: WhoDep,
    colormap: ColormapQuery = None,
    rescale: RescaleQuery = None,
    band: BandQuery = None,
) -> Response:
    """One XYZ tile as lossless WebP with alpha."""
    return await _tile(request, slug, z, x, y, "WEBP", colormap, rescale, band, who)


# ---------------------------------------------------------------------- values


@router.get("/rasters/{slug}/point", summary="Values at a point")
async def point(
    slug: str,
    request: Request,
    lon: Annotated[float, Query(description="x: longitude, or easting in `crs`")],
    lat: Annotated[float, Query(description="y: latitude, or northing in `crs`")],
    who: WhoDep,
    crs: CrsQuery = None,
) -> dict[str, Any]:
    """The value of every band at the pixel holding the point; null for nodata.
    A point outside the raster is a 400 naming the raster and its bounds."""
    lay = await _layer(request, slug, await _generation(request.app.state.db), who)
    return await run_in_threadpool(raster.point_values, lay, lon, lat, crs)


def _percentiles(text: str | None) -> list[float]:
    if not text:
        return []
    try:
        return [float(p) for p in text.split(",")]
    except ValueError:
        raise BadQuery(
            f"percentiles must be comma-separated numbers, not {text!r}", field="percentiles"
        ) from None


@router.post("/rasters/{slug}/statistics", summary="Statistics over a polygon")
async def statistics(
    slug: str,
    request: Request,
    geometry: Annotated[dict[str, Any], GEOMETRY_BODY],
    who: WhoDep,
    crs: CrsQuery = None,
    percentiles: Annotated[
        str | None,
        Query(description="Extra percentiles, comma-separated (2,25,50,75,98 always)"),
    ] = None,
    bins: Annotated[int, Query(description="Histogram bins (1..1000)")] = 10,
) -> dict[str, Any]:
    """Count of valid pixels, min, max, mean, std, percentiles and a histogram per band, over
    the pixels whose centres lie inside the polygon (nodata excluded). Reads only the
    polygon's window. A polygon that misses the raster is a 400; one that covers no
    pixel centre gives count 0 and nulls."""
    lay = await _layer(request, slug, await _generation(request.app.state.db), who)
    return await run_in_threadpool(
        lambda: raster.polygon_statistics(
            lay, geometry, crs=crs, percentiles=_percentiles(percentiles), bins=bins
        )
    )


@router.post(
    "/rasters/{slug}/clip",
    summary="Clip to a polygon (GeoTIFF)",
    response_class=Response,
    responses={200: {"content": {"image/tiff": {}}}},
)
async def clip(
    slug: str,
    request: Request,
    geometry: Annotated[dict[str, Any], GEOMETRY_BODY],
    who: WhoDep,
    crs: CrsQuery = None,
) -> Response:
    """A GeoTIFF of the polygon's window in the raster's CRS, pixels outside the polygon
    set to nodata (or masked, for a raster without nodata)."""
    lay = await _layer(request, slug, await _generation(request.app.state.db), who)
    body = await run_in_threadpool(lambda: raster.clip(lay, geometry, crs=crs))
    return Response(
        body,
        media_type="image/tiff",
        headers={"Content-Disposition": f'attachment; filename="{slug}-clip.tif"'},
    )
