"""Survey layers: upload vector files into the catalogue, list, describe and delete them."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path, PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, File, Form, Response, UploadFile
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import WhoDep, WriterDep
from api.deps import DbDep, SettingsDep, strict_query
from api.schemas import errors
from cadastre import auth
from cadastre.db.tables import SURVEY_KINDS
from cadastre.errors import InvalidInput, UploadTooLarge
from cadastre.survey.vector import (
    LayerMeta,
    ReadOptions,
    delete_layer,
    get_layer,
    list_layers,
    load_vector,
    read_vector,
    set_public,
)

router = APIRouter(prefix="/survey", tags=["survey layers"], dependencies=[Depends(strict_query)])

CHUNK = 1024 * 1024
MB = 1024 * 1024
ENVELOPE = 64 * 1024  # multipart boundaries, headers and form fields around the file
SUFFIXES = (".gpkg", ".zip", ".geojson", ".json", ".kml", ".csv")

UPLOAD_DOC = (
    "Upload a vector survey layer (multipart/form-data): GeoPackage, zipped Shapefile "
    "(one .shp with its .shx, .dbf and .prj), GeoJSON, KML or CSV (lon/lat columns or a WKT "
    "column), in any CRS. Geometries are stored in EPSG:4326; the layer is at once an OGC API "
    "collection (`/collections/{slug}`) and a tile source (`/tiles/{slug}/{z}/{x}/{y}.mvt`). "
    "A bad file is refused whole (422, naming the problem and the 1-based feature); an "
    "existing slug is 409 unless `replace` is true, and the replacement is atomic; a file over "
    "the upload limit (CADASTRE_MAX_UPLOAD_MB) is 413."
)


class UploadLimit:
    """Stop an upload at the limit as it arrives: by its Content-Length, else by counting.

    Raises a 413 inside the request, so the service's error policy words the answer.
    """

    def __init__(self, app: ASGIApp, path: str, max_bytes: int) -> None:
        self.app = app
        self.path = path
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        too_big = declared is not None and declared.isdigit() and int(declared) > self.max_bytes
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            if too_big:
                raise HTTPException(413)
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413)
            return message

        await self.app(scope, limited, send)


def save_upload(upload: UploadFile, folder: Path, limit_mb: int) -> Path:
    """Copy the upload to a file of ``folder`` in chunks, refusing it past the limit."""
    name = PurePath(upload.filename or "upload").name
    suffix = PurePath(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidInput(
            f"file {name!r}: unsupported type {suffix or '(none)'!r}; use {', '.join(SUFFIXES)}",
            field="file",
        )
    # The client's name, made harmless: messages about the file then name it as the user knows it.
    path = folder / (re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or f"upload{suffix}")
    written = 0
    with path.open("wb") as out:
        while chunk := upload.file.read(CHUNK):
            written += len(chunk)
            if written > limit_mb * MB:
                raise UploadTooLarge(
                    f"the upload is larger than the limit of {limit_mb} MB "
                    "(setting CADASTRE_MAX_UPLOAD_MB)",
                    field="file",
                )
            out.write(chunk)
    return path


@router.post(
    "/layers",
    status_code=201,
    summary="Upload a vector survey layer",
    description=UPLOAD_DOC,
    responses={
        401: {"description": "not signed in"},
        403: {"description": "not a geologist or admin"},
        409: {"description": "the slug exists (and replace is false)"},
        413: {"description": "the file is larger than the upload limit"},
        422: {"description": "the file or a field breaks a rule; the message names it"},
    },
)
def upload_layer(
    file: Annotated[UploadFile, File(description="the layer file")],
    slug: Annotated[str, Form(description="collection id: [a-z][a-z0-9_]*, at most 63")],
    name: Annotated[str, Form(description="title shown to users")],
    kind: Annotated[str, Form(description=f"one of {', '.join(SURVEY_KINDS)}")],
    source: Annotated[str, Form(description="who made the data, where it came from")],
    licence: Annotated[str, Form(description="the data licence, e.g. CC BY 4.0")],
    db: DbDep,
    settings: SettingsDep,
    who: WriterDep,
    response: Response,
    description: Annotated[str | None, Form()] = None,
    synthetic: Annotated[bool, Form(description="invented data, not observations")] = False,
    public: Annotated[
        bool, Form(description="readable without signing in (open data); default: signed-in")
    ] = False,
    replace: Annotated[bool, Form(description="replace an existing layer of this slug")] = False,
    layer: Annotated[str | None, Form(description="layer of a multi-layer file")] = None,
    lon_col: Annotated[str | None, Form(description="CSV: longitude (or x) column")] = None,
    lat_col: Annotated[str | None, Form(description="CSV: latitude (or y) column")] = None,
    wkt_col: Annotated[str | None, Form(description="CSV: WKT geometry column")] = None,
    crs: Annotated[str | None, Form(description="CRS of the coordinates, e.g. EPSG:32642")] = None,
) -> dict[str, Any]:
    """Upload a vector survey layer; the answer is its catalogue entry. Geologists and
    admins."""
    auth.require_survey_writer(who)
    meta = LayerMeta(
        slug=slug,
        name=name,
        kind=kind,
        source=source,
        licence=licence,
        description=description,
        synthetic=synthetic,
        public=public,
    )
    meta.check()
    options = ReadOptions(
        layer=layer,
        lon_col=lon_col,
        lat_col=lat_col,
        wkt_col=wkt_col,
        crs=crs,
        max_zip_entries=settings.max_zip_entries,
        max_zip_bytes=settings.max_zip_uncompressed_mb * MB,
    )
    with tempfile.TemporaryDirectory(prefix="cadastre-upload-") as folder:
        data = read_vector(save_upload(file, Path(folder), settings.max_upload_mb), options)
    with db.begin() as conn:
        entry = load_vector(
            conn,
            data,
            meta,
            actor=who.actor,
            replace=replace,
            max_features=settings.max_import_features,
        )
    response.headers["Location"] = f"/survey/layers/{slug}"
    return entry


@router.get("/layers", summary="The survey layer catalogue")
def catalogue(db: DbDep, who: WhoDep) -> dict[str, Any]:
    """Every survey layer the caller may read (public ones; all when signed in): slug, name,
    kind, source, licence, synthetic, public, CRS, schema, extent."""
    with db.begin() as conn:
        return {"layers": list_layers(conn, who)}


@router.get("/layers/{slug}", summary="A survey layer's catalogue entry", responses=errors(404))
def describe(slug: str, db: DbDep, who: WhoDep) -> dict[str, Any]:
    """One survey layer's catalogue entry (404 for a layer the caller may not read)."""
    with db.begin() as conn:
        return get_layer(conn, slug, who)


@router.patch(
    "/layers/{slug}",
    summary="Make a survey layer public or restricted",
    responses=errors(401, 403, 404, 422),
)
def change_layer(
    slug: str,
    db: DbDep,
    who: WriterDep,
    public: Annotated[
        bool,
        Body(
            embed=True,
            description="true: anyone reads it (open data); false: signed-in callers only",
        ),
    ],
) -> dict[str, Any]:
    """Mark a survey layer, vector or raster, public or restricted; the answer is its
    catalogue entry. Geologists and admins."""
    auth.require_survey_writer(who)
    with db.begin() as conn:
        return set_public(conn, slug, public, who)


@router.delete(
    "/layers/{slug}",
    status_code=204,
    summary="Delete a vector survey layer",
    responses={401: {"description": "not signed in"}, 403: {"description": "not a geologist"}},
)
def remove(slug: str, db: DbDep, who: WriterDep) -> Response:
    """Delete a vector survey layer with its features; its collection and tiles go with it.
    Geologists and admins."""
    auth.require_survey_writer(who)
    with db.begin() as conn:
        delete_layer(conn, slug)
    return Response(status_code=204)
