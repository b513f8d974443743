"""Overlaps: the check before a grant, reserved areas and the province audit."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, Field, ValidationError, field_validator

from api.auth import WhoDep
from api.deps import DbDep, RulesDep, SettingsDep, strict_query
from api.routers.licences import CrsParam, RepairParam
from api.schemas import GEOMETRY_DOC, GeoJSONResponse, Mineral, Strict, errors
from cadastre.db import licences as reg
from cadastre.db import overlaps
from cadastre.db.reserved import reserved_areas_geojson
from cadastre.domain.geometry import intake
from cadastre.domain.provinces import province_code
from cadastre.errors import InvalidInput

router = APIRouter(tags=["overlaps"], dependencies=[Depends(strict_query)])


class CheckProperties(Strict):
    licence_type: str = Field(description="Key of a licence type, see `GET /licence-types`.")
    minerals: list[Mineral] = Field(min_length=1, max_length=50)
    province: str | None = Field(default=None, description="Name or ISO code, if declared.")
    received_at: AwareDatetime | None = Field(
        default=None,
        description="Receipt time to rank against pending applications; default now.",
    )

    @field_validator("received_at")
    @classmethod
    def _plausible(cls, value: datetime | None) -> datetime | None:
        if value is not None and not 1900 <= value.year <= 2200:
            raise ValueError("received_at must lie between the years 1900 and 2200")
        return value


class Encumbrance(Strict):
    kind: Literal["title", "application", "reserved_area"]
    id: int
    licence_no: str | None = None
    name: str | None = None
    holder: str | None
    status: str | None
    type: str
    province_code: str | None
    overlap_km2: float = Field(description="Geodesic area of the overlap, km².")
    overlap_pct_of_candidate: float
    overlap_pct_of_other: float
    geometry: dict[str, Any] = Field(description="The overlap, GeoJSON in WGS 84 lon/lat.")
    received_at: datetime | None = None
    simultaneous: bool | None = Field(
        default=None, description="Received on the same date: decided by the tie-break."
    )


class Reason(Strict):
    code: str
    detail: str


class CheckResult(Strict):
    candidate: dict[str, Any]
    conflicts: list[Encumbrance]
    touching: list[Encumbrance]
    available: dict[str, Any] = Field(description="Candidate minus all conflicts, a Feature.")
    admissible: bool
    reasons: list[Reason]
    tie_break: str


CHECK_EXAMPLE = {
    "type": "Feature",
    "geometry": {
        "type": "Polygon",
        "coordinates": [
            [[62.40, 28.95], [62.46, 28.95], [62.46, 29.0], [62.40, 29.0], [62.40, 28.95]]
        ],
    },
    "properties": {"licence_type": "exploration_licence", "minerals": ["Copper", "Gold"]},
}


def _properties(body: Any, query: dict[str, Any]) -> tuple[Any, CheckProperties]:
    """The candidate's geometry and properties: from a Feature, or a bare geometry + query."""
    given = {k: v for k, v in query.items() if v is not None}
    if isinstance(body, dict) and body.get("type") == "Feature":
        if given:
            raise InvalidInput(
                f"{sorted(given)[0]} is given twice: a Feature carries its own properties",
                field=sorted(given)[0],
            )
        geometry, raw, where = body.get("geometry"), body.get("properties") or {}, "properties."
        if geometry is None:
            raise InvalidInput("the Feature has no geometry", field="geometry")
    elif isinstance(body, dict | str):
        geometry, where = body, ""
        raw = {**given, "minerals": [m for m in given.get("minerals", "").split(",") if m]}
    else:
        raise InvalidInput("the candidate is a GeoJSON Feature or geometry", field="body")
    try:
        return geometry, CheckProperties.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = where + ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{loc}: {first['msg']}", field=loc) from None


@router.post(
    "/overlaps/check",
    summary="Check a candidate against everything that holds the ground",
    response_model=CheckResult,
    responses=errors(422),
)
def check_overlaps(
    who: WhoDep,
    db: DbDep,
    rules: RulesDep,
    settings: SettingsDep,
    body: Annotated[
        dict[str, Any] | str,
        Body(
            description="A GeoJSON Feature: geometry (" + GEOMETRY_DOC + ") and properties "
            "licence_type, minerals, optional province and received_at; or a bare geometry "
            "(GeoJSON or WKT) with those given as query parameters.",
            examples=[CHECK_EXAMPLE],
        ),
    ],
    crs: CrsParam = None,
    repair: RepairParam = False,
    licence_type: Annotated[
        str | None, Query(description="With a bare geometry: the licence type", max_length=60)
    ] = None,
    minerals: Annotated[
        str | None, Query(description="With a bare geometry: comma-separated", max_length=500)
    ] = None,
    province: Annotated[
        str | None, Query(description="With a bare geometry: name or ISO code", max_length=60)
    ] = None,
    received_at: Annotated[
        str | None, Query(description="With a bare geometry: RFC 3339 instant", max_length=40)
    ] = None,
) -> dict[str, Any]:
    """Every conflict with its exact area, touching neighbours, and the ground still free."""
    query = {
        "licence_type": licence_type,
        "minerals": minerals,
        "province": province,
        "received_at": received_at,
    }
    geometry, props = _properties(body, query)
    rules.check_type(props.licence_type, field="properties.licence_type")
    declared = (
        province_code(props.province, field="properties.province") if props.province else None
    )
    taken = intake(geometry, crs, repair=repair, limits=settings.shape_limits)
    shape = reg.Shape.from_intake(taken)
    receipt = props.received_at or datetime.now(UTC)
    cand = reg.Candidate(
        licence_type=props.licence_type,
        minerals=props.minerals,
        holder=0,
        shape=shape,
        province=declared,
    )
    with db.begin() as conn:
        found, problems = reg.place(
            conn, [cand], rules=rules, tolerance_m2=settings.boundary_tolerance_m2
        )
        report = overlaps.check(
            conn,
            shape.geometry,
            rules=rules,
            received_at=receipt,
            timezone=settings.register_timezone,
            tolerance_m2=settings.overlap_tolerance_m2,
            tie_break=settings.tie_break,
            unpublished=who.unpublished_scope,
        )
    reasons = [{"code": e.code, "detail": e.message} for e in problems.values()]
    # The province is known even when the shape is refused for its size or declared province.
    located = found.get(0)
    if located is None and 0 in problems and problems[0].where:
        located = problems[0].where.get("located")
    if report.conflicts:
        names = ", ".join(c.ref for c in report.conflicts)
        reasons.append(
            {
                "code": "conflicts",
                "detail": f"{len(report.conflicts)} conflict(s) over "
                f"{report.area_km2 - report.available_km2:.6f} km²: {names}",
            }
        )
    return {
        "candidate": {
            "licence_type": props.licence_type,
            "province_code": located,
            "area_km2": round(report.area_km2, 6),
            "received_at": receipt.isoformat(),
            "crs": shape.crs,
            "repaired": taken.repaired,
        },
        "conflicts": [c.to_dict() for c in report.conflicts],
        "touching": [c.to_dict() for c in report.touching],
        "available": {
            "type": "Feature",
            "geometry": report.available_geometry,
            "properties": {"area_km2": round(report.available_km2, 6)},
        },
        "admissible": not reasons,
        "reasons": reasons,
        "tie_break": report.tie_break,
    }


@router.get("/reserved-areas", summary="Reserved and closed areas", response_class=GeoJSONResponse)
def list_reserved_areas(db: DbDep) -> Response:
    """Protected, forest, strategic, religious and auction-reserved areas (GeoJSON)."""
    with db.begin() as conn:
        body = reserved_areas_geojson(conn)
    return Response(body, media_type="application/geo+json")


AUDIT_FIELDS = ("kind", "a_id", "a_ref", "b_id", "b_ref", "province_code", "overlap_km2")


@router.get(
    "/overlaps",
    summary="Audit: every overlap among live titles and reserved areas",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "GeoJSON FeatureCollection (format=geojson) or CSV (format=csv)",
            "content": {"application/geo+json": {"schema": {"type": "object"}}, "text/csv": {}},
        }
    },
)
def audit_overlaps(
    db: DbDep,
    rules: RulesDep,
    settings: SettingsDep,
    province: Annotated[str | None, Query(description="Name or ISO code", max_length=60)] = None,
    format: Annotated[Literal["geojson", "csv"], Query()] = "geojson",
) -> StreamingResponse:
    """Pairs of overlapping live exclusive titles, and titles over reserved areas, streamed."""
    code = province_code(province) if province else None

    # The query runs and its first row arrives before the 200 goes out, so a failure
    # is an error answer, not a truncated body.
    stack = ExitStack()
    conn = stack.enter_context(db.begin())
    try:
        found = overlaps.audit(
            conn, rules=rules, province=code, tolerance_m2=settings.overlap_tolerance_m2
        )
        first = next(found, None)
    except BaseException:
        stack.close()
        raise

    def rows() -> Iterator[Any]:
        with stack:
            if first is not None:
                yield first
                yield from found

    if format == "csv":

        def as_csv() -> Iterator[str]:
            buf = io.StringIO()
            writer = csv.writer(buf)
            writer.writerow(AUDIT_FIELDS)
            for r in rows():
                writer.writerow([getattr(r, f) for f in AUDIT_FIELDS])
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
            yield buf.getvalue()

        return StreamingResponse(as_csv(), media_type="text/csv")

    def as_geojson() -> Iterator[str]:
        yield '{"type":"FeatureCollection","features":['
        for i, r in enumerate(rows()):
            props = {f: getattr(r, f) for f in AUDIT_FIELDS}
            yield (
                ("," if i else "")
                + f'{{"type":"Feature","geometry":{r.geojson},"properties":{json.dumps(props)}}}'
            )
        yield "]}"

    return StreamingResponse(as_geojson(), media_type="application/geo+json")
