"""The whole error policy: domain error -> HTTP status, one body shape for every 4xx/5xx.

Body: ``{"code": ..., "detail": "<safe message>", "field": ..., "where": {...}}``.
Only 5xx are logged, with their detail; the client gets a safe message.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.limits import UPLOAD_PATHS
from api.openapi import allowed_methods
from cadastre import errors as e

log = logging.getLogger("cadastre.api")

STATUS: dict[type[e.CadastreError], int] = {
    e.NotFound: 404,
    e.Unauthenticated: 401,
    e.Forbidden: 403,
    e.IllegalTransition: 409,
    e.DuplicateLicenceNo: 409,
    e.Conflict: 409,
    e.ImportRejected: 422,
    e.UploadTooLarge: 413,
    e.BadQuery: 400,
    e.InvalidInput: 422,
    e.DatabaseUnavailable: 503,
    e.RasterUnavailable: 503,
}


def status_for(exc: e.CadastreError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def _loc(loc: tuple[object, ...]) -> str:
    # Drop where the value came from (body, query, path, header): the name is what matters.
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:]
    return ".".join(str(p) for p in loc) or "body"


def install(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    @app.exception_handler(e.CadastreError)
    async def cadastre_error(_: Request, exc: e.CadastreError) -> JSONResponse:
        status = status_for(exc)
        if status >= 500:
            log.error("domain error %s: %s", exc.code, exc.message)
        headers = {"Retry-After": "5"} if status == 503 else None
        if status == 401:
            headers = {"WWW-Authenticate": 'Bearer realm="cadastre"'}
        return JSONResponse(exc.to_dict(), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {"loc": ("body",), "msg": "invalid request"}
        field = _loc(tuple(first.get("loc", ())))
        return JSONResponse(
            {
                "code": "invalid_input",
                "detail": f"{field}: {first.get('msg')}",
                "field": field,
                "errors": [
                    {"field": _loc(tuple(x.get("loc", ()))), "message": x.get("msg")} for x in errs
                ],
            },
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 413 and request.scope["path"] not in UPLOAD_PATHS:
            return JSONResponse(  # the body limit of the JSON routes (api.limits)
                {"code": "body_too_large", "detail": exc.detail, "field": "body"}, status_code=413
            )
        if exc.status_code == 413:  # the request body limit of an upload route
            limit = request.app.state.settings.max_upload_mb
            return JSONResponse(
                {
                    "code": "upload_too_large",
                    "detail": f"the upload is larger than the limit of {limit} MB "
                    "(setting CADASTRE_MAX_UPLOAD_MB)",
                    "field": "file",
                },
                status_code=413,
            )
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {
                **(headers or {}),
                "Allow": ", ".join(allowed_methods(request.app.openapi(), request.scope["path"])),
            }
        return JSONResponse(
            {"code": "http_error", "detail": exc.detail},
            status_code=exc.status_code,
            headers=headers,
        )

    @app.exception_handler(IntegrityError)
    async def integrity_error(_: Request, exc: IntegrityError) -> JSONResponse:
        # Constraints are the last line of defence behind the domain checks.
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
        return JSONResponse(
            {
                "code": "conflict",
                "detail": f"the change conflicts with the register (constraint {constraint})",
            },
            status_code=409,
        )

    @app.exception_handler(DataError)
    async def data_error(_: Request, exc: DataError) -> JSONResponse:
        # A value the database cannot hold (out of range, malformed): the caller's to fix.
        return JSONResponse(
            {"code": "invalid_input", "detail": "a value is out of range or malformed"},
            status_code=422,
        )

    @app.exception_handler(OperationalError)
    async def db_down(_: Request, exc: DBAPIError) -> JSONResponse:
        log.error("database unavailable: %s", exc)
        return JSONResponse(
            {"code": "database_unavailable", "detail": "the database is unavailable; retry"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(DBAPIError)
    async def db_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:  # the connection died under it (a restart): retry
            return await db_down(request, exc)
        log.exception("database error", exc_info=exc)
        return JSONResponse({"code": "internal_error", "detail": "internal error"}, status_code=500)
