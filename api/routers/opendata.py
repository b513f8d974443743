"""Open data: the public register as bulk files, with its data dictionary and licence."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse, StreamingResponse

from api.deps import DbDep, SettingsDep, strict_query
from api.routers.licences import parse_as_of
from api.schemas import errors
from cadastre.db import opendata

router = APIRouter(tags=["open data"], dependencies=[Depends(strict_query)])

AsOfParam = Annotated[
    str | None,
    Query(
        description="The register as it stood at the end of this date (register time zone) "
        "or at this RFC 3339 instant; default now.",
        max_length=40,
    ),
]

_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The public register: CSV, GeoJSON or GeoPackage, by the path's suffix",
        "content": {media: {} for media in opendata.MEDIA_TYPES.values()},
    }
}


@router.get(
    "/opendata/licences.{fmt}",
    summary="The public register as open data",
    response_class=StreamingResponse,
    responses={**_CONTENT, **errors(404, 422)},
)
def licences_file(
    db: DbDep,
    settings: SettingsDep,
    fmt: Literal["csv", "geojson", "gpkg"],
    as_of: AsOfParam = None,
) -> StreamingResponse:
    """Every published licence and application with the public register fields, streamed."""
    instant = parse_as_of(as_of, settings.register_timezone) if as_of else None
    suffix = "" if instant is None else "-" + instant.date().isoformat()
    headers = {
        "Content-Disposition": f'attachment; filename="licences{suffix}.{fmt}"',
        "Link": '</opendata/README>; rel="describedby"; type="text/markdown", '
        f'<{opendata.LICENCE_URL}>; rel="license"',
    }
    if fmt == "gpkg":
        # A GeoPackage is a SQLite file: it is written to a temporary file a batch at a
        # time (constant memory), then sent in blocks and removed.
        fd, name = tempfile.mkstemp(suffix=".gpkg", prefix="cadastre-opendata-")
        os.close(fd)
        path = Path(name)
        path.unlink()
        try:
            with db.begin() as conn:
                opendata.write_gpkg(conn, path, instant)
        except BaseException:
            path.unlink(missing_ok=True)
            raise

        def blocks() -> Iterator[bytes]:
            try:
                with path.open("rb") as fh:
                    yield from iter(lambda: fh.read(1 << 16), b"")
            finally:
                path.unlink(missing_ok=True)

        return StreamingResponse(blocks(), media_type=opendata.MEDIA_TYPES[fmt], headers=headers)

    stack = ExitStack()
    conn = stack.enter_context(db.begin())
    # The query runs and its first rows arrive before the 200 goes out, so a failure is
    # an error answer, not a truncated body.
    try:
        chunks = (
            opendata.csv_chunks(conn, instant)
            if fmt == "csv"
            else opendata.geojson_chunks(conn, instant)
        )
        first = next(chunks)
    except BaseException:
        stack.close()
        raise

    def body() -> Iterator[str]:
        with stack:
            yield first
            yield from chunks

    return StreamingResponse(body(), media_type=opendata.MEDIA_TYPES[fmt], headers=headers)


@router.get(
    "/opendata/README",
    summary="Data dictionary and licence of the open data",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/markdown": {}}}},
)
def readme() -> PlainTextResponse:
    """The fields of the open data files, their types and meaning, and the open licence."""
    return PlainTextResponse(opendata.readme(), media_type="text/markdown; charset=utf-8")
