"""The OpenAPI document states every error an operation can answer, in the one body shape.

FastAPI documents a 422 with its own ``HTTPValidationError`` body, which this service never
sends (see :mod:`api.errors`), gives error answers the media type of the route's success
answer (GeoJSON, tiles), and leaves out the errors every route shares. The document is
completed here once, from the routes themselves, so clients (and the fuzz test) can rely on
it:

* every error answer is ``application/json`` with :class:`~api.schemas.ErrorBody`;
* ``400`` everywhere: routes refuse unknown query parameters (``strict_query``, and the OGC
  routes' own check), and name a malformed one;
* ``404`` where the path has parameters (an unknown id, slug or collection);
* ``405`` nowhere: it is an answer about the path, not about an operation;
* ``413`` where the operation takes a body (the body size limits);
* ``422`` where the route takes parameters, headers or a body;
* ``401`` where the operation reads its caller (a bearer token or an API key that is not
  valid is refused, whatever the route), and ``403`` where it also writes;
* ``503`` everywhere (database unavailable; see ``Retry-After``).

Where signing in is optional (reads: anonymous readers get the public register), the
operation's ``security`` lists the empty requirement ``{}`` first, as OpenAPI 3.1 says.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI

from api.schemas import ErrorBody

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}

TEXT = {
    400: "Unknown or malformed query parameter: names it",
    404: "No such record, layer or collection",
    401: "Not signed in, or the token or key is not valid: says which; WWW-Authenticate",
    403: "The account's role does not allow it: names the rule (where.rule)",
    413: "The request body is larger than a limit: names the limit and its setting",
    422: "Invalid input: names the field and the rule",
    503: "Database unavailable; see Retry-After",
}


def _error(status: int, existing: dict[str, Any] | None) -> dict[str, Any]:
    description = (existing or {}).get("description") or TEXT.get(status, "Error")
    if status == 422:
        description = TEXT[422]
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def _json_not_string(status: str, answer: dict[str, Any]) -> None:
    # FastAPI gives a route whose response class is not JSONResponse a ``"type": "string"``
    # body, even beside the model's ``$ref``: wrong for the JSON and GeoJSON this service sends.
    for media_type, content in answer.get("content", {}).items():
        schema = content.get("schema")
        is_string = isinstance(schema, dict) and schema.get("type") == "string"
        if media_type.endswith("json") and is_string:
            del schema["type"]


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Add the shared errors to every operation of ``document``."""
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            params = operation.get("parameters", [])
            statuses = {400, 503}
            if "{" in path:
                statuses.add(404)
            if "requestBody" in operation:
                statuses |= {413, 422}
            if params:
                statuses.add(422)
            security = operation.get("security")
            if security:
                statuses.add(401)
                if "403" in responses:  # a write: signing in is required
                    statuses.add(403)
                elif {} not in security:
                    operation["security"] = [{}, *security]  # anonymous reads are allowed
            statuses |= {int(s) for s in responses if str(s).isdigit() and int(s) >= 400}
            for status_text, answer in responses.items():
                _json_not_string(status_text, answer)
            for status in sorted(statuses):
                responses[str(status)] = _error(status, responses.get(str(status)))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorBody", ErrorBody.model_json_schema())
    if "HTTPValidationError" not in str(document["paths"]):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return document


def install(app: FastAPI) -> None:
    """Serve the completed document at ``/openapi.json`` (built once, on first request)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def allowed_methods(document: dict[str, Any], path: str) -> list[str]:
    """The methods the document lists for ``path`` (for the ``Allow`` header of a 405).

    As OpenAPI has it, a concrete path wins over a template that also matches it
    (``/rasters/colormaps`` over ``/rasters/{slug}``): the templates with the fewest
    parameters that match are the path's.
    """
    found: dict[int, set[str]] = {}
    for template, operations in document.get("paths", {}).items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            found.setdefault(template.count("{"), set()).update(m.upper() for m in operations)
    return sorted(found[min(found)]) if found else []
