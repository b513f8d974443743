"""The request body limit of the JSON routes (uploads have their own, see ``api.routers.survey``).

A body past ``CADASTRE_MAX_BODY_MB`` is refused with 413 by its declared Content-Length
before anything is read, else as it arrives (a chunked body without a length): the service
never holds more than the limit of one request in memory.
"""

from __future__ import annotations

import math
from urllib.parse import parse_qsl

import pyproj
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cadastre.errors import BadQuery, InvalidInput

MB = 1024 * 1024

#: Multipart uploads, limited by their own settings.
UPLOAD_PATHS = ("/survey/layers", "/rasters")


class BodyLimit:
    """Refuse a request body larger than ``max_mb`` MiB with a 413 naming the limit."""

    def __init__(self, app: ASGIApp, max_mb: int) -> None:
        self.app = app
        self.max_mb = max_mb
        self.max_bytes = max_mb * MB

    @property
    def detail(self) -> str:
        return (
            f"the request body is larger than the limit of {self.max_mb} MB "
            "(setting CADASTRE_MAX_BODY_MB)"
        )

    def _refusal(self) -> JSONResponse:
        return JSONResponse(
            {"code": "body_too_large", "detail": self.detail, "field": "body"}, status_code=413
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UPLOAD_PATHS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refusal()(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            # Raised inside the request, so the service's error policy answers it (413).
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, detail=self.detail)
            return message

        await self.app(scope, limited, send)


def check_bbox_area(
    box: tuple[float, float, float, float],
    max_deg2: float,
    *,
    srid: int = 4326,
    error: type[InvalidInput] = BadQuery,
) -> None:
    """Refuse an item query's bbox larger than ``max_deg2`` square degrees (in lon/lat;
    a projected bbox is measured by its lon/lat bounds)."""
    minx, miny, maxx, maxy = box
    if srid != 4326:
        try:
            to_lonlat = pyproj.Transformer.from_crs(srid, 4326, always_xy=True)
            minx, miny, maxx, maxy = to_lonlat.transform_bounds(minx, miny, maxx, maxy)
        except pyproj.exceptions.ProjError:
            return  # not transformable: the query itself answers that bbox
    area = (maxx - minx) * (maxy - miny)
    if not math.isfinite(area) or area > max_deg2:
        raise error(
            f"bbox covers {area:.6g} square degrees, more than the limit of {max_deg2:g} "
            "(setting CADASTRE_MAX_BBOX_DEG2)",
            field="bbox",
        )


class NoNul:
    """Refuse a NUL character (``%00``) in the path or in a query parameter with a 400 that
    names where: PostgreSQL text cannot hold one, and no slug, id, name or filter has one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        where = None
        if scope["type"] == "http":
            if "\x00" in scope["path"]:
                where = "path"
            else:
                query = scope.get("query_string", b"").decode("latin-1")
                for name, value in parse_qsl(query, keep_blank_values=True):
                    if "\x00" in name or "\x00" in value:
                        where = name.replace("\x00", "\\x00")
                        break
        if where is None:
            await self.app(scope, receive, send)
            return
        refusal = JSONResponse(
            {
                "code": "bad_query",
                "detail": f"{where}: holds a NUL character",
                "field": where,
            },
            status_code=400,
        )
        await refusal(scope, receive, send)
