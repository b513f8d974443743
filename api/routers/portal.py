"""The public map portal: its page, its built assets, and reading an uploaded area file."""

from __future__ import annotations

import json
import logging
import mimetypes
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any

import shapely
from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, Response

from api.deps import SettingsDep, strict_query
from api.routers.survey import save_upload
from api.schemas import errors
from cadastre.errors import NotFound
from cadastre.settings import Settings
from cadastre.survey.vector import ReadOptions, area_of, read_vector

log = logging.getLogger("cadastre.api")

router = APIRouter(tags=["portal"])

#: Every file under assets/ carries a content hash in its name (the build makes sure), so a
#: browser may keep it for a year; the page itself is revalidated every time.
IMMUTABLE = "public, max-age=31536000, immutable"
ASSET_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
CONFIG_MARK = "<!--PORTAL-CONFIG-->"
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css"}


def _config(settings: Settings) -> dict[str, Any]:
    return {
        "basemap": (
            {"url": settings.basemap_url, "attribution": settings.basemap_attribution}
            if settings.basemap_url
            else None
        ),
    }


def page(request: Request) -> Response | None:
    """The portal's page for a browser, or None when the portal has not been built."""
    settings: Settings = request.app.state.settings
    index = settings.portal / "index.html"
    try:
        text = index.read_text(encoding="utf-8")
    except FileNotFoundError:
        log.warning("the portal is not built (%s missing): run scripts/setup.sh", index)
        return None
    # JSON inside <script>: "<" escaped so no value can close the element.
    config = json.dumps(_config(settings)).replace("<", "\\u003c")
    text = text.replace(
        CONFIG_MARK, f'<script id="portal-config" type="application/json">{config}</script>'
    )
    return HTMLResponse(text, headers={"Cache-Control": "no-cache"})


@router.get("/portal/assets/{name}", include_in_schema=False)
def asset(name: str, settings: SettingsDep) -> Response:
    """A built asset (script, style sheet, worker), named by its content hash."""
    folder = settings.portal / "assets"
    path = folder / name
    if not ASSET_NAME.match(name) or not path.is_file():
        raise NotFound(f"no portal asset {name!r}", field="name")
    media = TYPES.get(path.suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media, headers={"Cache-Control": IMMUTABLE})


@router.post(
    "/shapes/read",
    summary="Read an area from a file",
    responses=errors(422),
    dependencies=[Depends(strict_query)],
)
def read_shape(
    file: Annotated[
        UploadFile, File(description="GeoJSON, KML or zipped Shapefile of polygons, any CRS")
    ],
    settings: SettingsDep,
) -> dict[str, Any]:
    """The polygons of an uploaded file merged into one GeoJSON geometry in WGS 84 lon/lat,
    for an area-of-interest report or an overlap check; stores nothing."""
    options = ReadOptions(
        max_zip_entries=settings.max_zip_entries,
        max_zip_bytes=settings.max_zip_uncompressed_mb * 1024 * 1024,
    )
    with tempfile.TemporaryDirectory(prefix="cadastre-shape-") as folder:
        data = read_vector(save_upload(file, Path(folder), settings.max_body_mb), options)
    area = area_of(data)
    return {
        "type": "Feature",
        "geometry": json.loads(shapely.to_geojson(shapely.set_precision(area, 1e-7))),
        "properties": {
            "features": len(data),
            "original_crs": data.original_crs,
            "notes": data.notes,
        },
    }
