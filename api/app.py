"""The application: lifespan -> app -> routers -> middleware -> error handlers -> health."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import DBAPIError
from starlette_compress import CompressMiddleware, add_compress_type

from api import auth as auth_api
from api import errors, limits, openapi
from api.caching import TileCache
from api.observability import Metrics, Observe
from api.routers import (
    aoi,
    changes,
    licences,
    obligations,
    ogc,
    opendata,
    overlaps,
    portal,
    rasters,
    register,
    survey,
    tiles,
    webhooks,
)
from cadastre import __version__, auth
from cadastre.db import migrate
from cadastre.db.engine import Database, database_url, make_engine
from cadastre.rules import RuleBook
from cadastre.settings import Settings

log = logging.getLogger("cadastre.api")

#: Answers worth compressing besides the middleware's defaults (JSON, HTML, text).
COMPRESSED = ("application/geo+json", "application/schema+json", "text/csv")

DESCRIPTION = """
The register and map behind Pakistan's mining cadastre: mineral licence
applications and titles with their whole history, on PostGIS.

* Geometries are stored in WGS 84 (EPSG:4326) and served as RFC 7946 GeoJSON
  (lon/lat, exterior rings counter-clockwise). Areas are geodesic, in km².
* Submissions may use WGS 84, WGS 84 / UTM 41N-43N or Kalianpur 1962 (geographic,
  UTM, India zones); the coordinates as submitted and the transformation used
  are kept beside the stored shape.
* Every change is an event; `as_of` shows the register as it stood on any date.
* Reads are open; writes need an account: a bearer token from `POST /auth/token` or an
  API key in `X-API-Key`. Officers write their own province's licences, geologists survey
  layers, admins everything; anonymous readers see the public register (EITI 2.3) only.
* Errors: `{"code", "detail", "field", "where"}` with 401 (not signed in, or a token or
  key that is not valid), 403 (naming the rule in `where.rule`), 404, 409 (state conflicts,
  naming the current state and the allowed actions), 422 (names the field,
  the rule and where in the geometry), 503 (database unavailable; retry).
"""


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    """Build the service. ``db`` may be given (tests); otherwise one is made from settings."""
    settings = settings or Settings()
    # Refuses (raises) a missing or weak signing key outside development mode.
    secret = auth.check_secret(settings.secret_key, settings.environment)
    if secret != settings.secret_key:
        log.warning(
            "development mode: CADASTRE_SECRET_KEY is unset or weak, so a random key signs "
            "this process's tokens (they end when it stops)"
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = db is None
        app.state.db = db or Database(make_engine(database_url(settings), role=settings.db_role))
        app.state.tile_slots = asyncio.Semaphore(settings.tile_queries)
        if settings.listen_generation:
            app.state.db.listen()
        try:
            yield
        finally:
            app.state.db.generation.stop()
            if owned:
                app.state.db.dispose()

    app = FastAPI(
        title="Pakistan Mining Cadastre",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.secret = secret
    app.state.principals = auth_api.PrincipalCache()
    app.state.rules = RuleBook.load()
    app.state.tile_cache = TileCache()
    app.state.extents = {}  # collection extents by (collection, generation)
    app.state.raster_layers = {}  # raster catalogue entries by (generation, slug)
    if db is not None:
        app.state.db = db

    app.include_router(auth_api.router)
    app.include_router(licences.router)
    app.include_router(obligations.router)
    app.include_router(overlaps.router)
    app.include_router(ogc.router)
    app.include_router(tiles.router)
    app.include_router(register.router)
    app.include_router(survey.router)
    app.include_router(aoi.router)
    app.include_router(rasters.router)
    app.include_router(opendata.router)
    app.include_router(changes.router)
    app.include_router(webhooks.router)
    app.include_router(portal.router)
    errors.install(app)
    openapi.install(app)
    for media_type in COMPRESSED:
        add_compress_type(media_type)
    # zstd, brotli or gzip, as the client accepts; tiles come compressed already.
    app.add_middleware(CompressMiddleware, minimum_size=1024)
    app.add_middleware(limits.BodyLimit, max_mb=settings.max_body_mb)
    app.add_middleware(limits.NoNul)
    # Uploads stop at the limit as they arrive: the file's own limit plus room for the
    # multipart envelope and the form fields.
    app.add_middleware(
        survey.UploadLimit,
        path="/survey/layers",
        max_bytes=settings.max_upload_mb * survey.MB + survey.ENVELOPE,
    )
    app.add_middleware(auth_api.CallerVary)
    # Outermost: the request id and the timing cover everything below.
    app.state.metrics = Metrics(app.state)
    app.add_middleware(Observe, metrics=app.state.metrics, access_log=settings.access_log)
    heads = migrate.heads()

    @app.get("/health", tags=["service"], summary="Health")
    async def health() -> dict[str, str]:
        """Answers while the process serves requests; asks nothing of the database."""
        return {"status": "ok"}

    @app.get(
        "/ready",
        tags=["service"],
        summary="Readiness",
        responses={503: {"description": "The database is unreachable or not migrated to head"}},
    )
    def ready(request: Request) -> JSONResponse:
        """Answers 200 when the database answers and its migrations are at head, else 503."""
        checks: dict[str, Any] = {"database": "ok", "migrations": "ok"}
        try:
            with request.app.state.db.begin() as conn:
                at = migrate.applied(conn)
        except DBAPIError as exc:
            log.warning("not ready: database unreachable: %s", exc)
            checks = {"database": "unreachable", "migrations": "unknown"}
        else:
            if at != heads:
                checks["migrations"] = (
                    f"the database is at {', '.join(at) or 'no revision'}; "
                    f"the service needs {', '.join(heads)} (run `cadastre db upgrade`)"
                )
        if checks == {"database": "ok", "migrations": "ok"}:
            return JSONResponse({"status": "ready", **checks})
        return JSONResponse(
            {"status": "not_ready", **checks}, status_code=503, headers={"Retry-After": "5"}
        )

    @app.get("/metrics", tags=["service"], summary="Metrics", response_class=PlainTextResponse)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics: requests by route and status, latencies, pools, tile cache."""
        body = generate_latest(request.app.state.metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return app
