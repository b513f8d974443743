"""Licences: applications, titles, their lifecycle and their history."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import func, select

from api.auth import WhoDep, WriterDep
from api.caching import etag_for, not_modified, tag
from api.deps import DbDep, RulesDep, SettingsDep, strict_query
from api.limits import check_bbox_area
from api.routers.obligations import licence_obligations
from api.schemas import (
    NO_NUL,
    ApplicationIn,
    Event,
    GeoJSONResponse,
    HolderIn,
    LicenceCollection,
    LicenceDetailFeature,
    LicencePatch,
    TransitionIn,
    errors,
)
from cadastre import auth
from cadastre.db import licences as reg
from cadastre.db import overlaps
from cadastre.db.tables import licence_events
from cadastre.domain.geometry import ShapeLimits, intake
from cadastre.domain.lifecycle import check_status
from cadastre.domain.provinces import province_code
from cadastre.errors import InvalidInput

router = APIRouter(prefix="/licences", tags=["licences"], dependencies=[Depends(strict_query)])

GEOJSON = "application/geo+json"
CrsParam = Annotated[
    str | None,
    Query(
        description="CRS of the submitted coordinates: `EPSG:32642`, an OGC URI such as "
        "`http://www.opengis.net/def/crs/EPSG/0/32642`, or `OGC:CRS84` (default). Accepted: "
        "EPSG:4326, 32641-32643 (WGS 84 / UTM), 4145 and 24311-24313, 24376, 24377 "
        "(Kalianpur 1962).",
        max_length=200,
    ),
]
RepairParam = Annotated[
    bool,
    Query(description="Repair an invalid shape with ST_MakeValid and report what changed."),
]


#: A filter value: not empty, no NUL, not absurdly long.
_TEXT: dict[str, Any] = {"min_length": 1, "max_length": 200, "pattern": NO_NUL}


def _holder(value: int | str | HolderIn | None) -> reg.Holder | int | None:
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, str):
        return reg.Holder(name=value)
    return reg.Holder(
        name=value.name,
        kind=value.kind,
        registration_no=value.registration_no,
        country=value.country,
        contact=value.contact,
        beneficial_owners=[o.model_dump() for o in value.beneficial_owners],
    )


def _take_in(
    geometry: dict[str, Any] | str, crs: str | None, repair: bool, limits: ShapeLimits
) -> tuple[reg.Shape, dict[str, Any] | None]:
    taken = intake(geometry, crs, repair=repair, limits=limits)
    return reg.Shape.from_intake(taken), taken.repaired


def _feature_response(body: str, status_code: int = 200, **headers: str) -> Response:
    return GeoJSONResponse(body, status_code=status_code, headers=headers)


@router.post(
    "",
    status_code=201,
    summary="Submit a licence application",
    response_class=GeoJSONResponse,
    responses={201: {"model": LicenceDetailFeature}, **errors(401, 403, 409, 422)},
)
def create_licence(
    body: ApplicationIn,
    db: DbDep,
    rules: RulesDep,
    settings: SettingsDep,
    who: WriterDep,
    request: Request,
    crs: CrsParam = None,
    repair: RepairParam = False,
) -> Response:
    """Submit a licence application; the answer is its acknowledgement of receipt.

    Officers submit in their own province (403 otherwise), admins anywhere; an
    application with ``published: false`` is held back from the public register."""
    auth.require_signed_in(who)
    props = body.properties
    rules.check_type(props.licence_type, field="properties.licence_type")
    if props.applied_on is not None and props.applied_on > datetime.now(UTC).date():
        raise InvalidInput(
            f"applied_on {props.applied_on.isoformat()} is in the future",
            field="properties.applied_on",
        )
    province = (
        province_code(props.province, field="properties.province") if props.province else None
    )
    if province is not None:  # refused before any work; the located province is checked too
        auth.require_licence_writer(who, province)
    shape, repaired = _take_in(body.geometry, crs, repair, settings.shape_limits)
    holder = _holder(props.holder)
    assert holder is not None
    cand = reg.Candidate(
        licence_type=props.licence_type,
        minerals=props.minerals,
        holder=holder,
        shape=shape,
        province=province,
        applied_on=props.applied_on,
        remarks=props.remarks,
        published=props.published,
    )
    with db.begin() as conn:
        result = reg.register_licences(
            conn,
            [cand],
            rules=rules,
            actor=who.actor,
            tolerance_m2=settings.boundary_tolerance_m2,
            timezone=settings.register_timezone,
        )
        licence_id = result.created[0]
        # Where the ground lies decides the province: refused (all undone) outside the
        # officer's own.
        auth.require_licence_writer(who, reg.province_of(conn, licence_id))
        feature = json.loads(reg.get_licence(conn, licence_id, who))
        # The overlap check runs in the same transaction: what it finds is kept.
        report = overlaps.check(
            conn,
            shape.geometry,
            rules=rules,
            received_at=datetime.fromisoformat(feature["properties"]["received_at"]),
            timezone=settings.register_timezone,
            tolerance_m2=settings.overlap_tolerance_m2,
            tie_break=settings.tie_break,
            exclude=licence_id,
        )
        overlaps.record_conflicts(conn, licence_id, report.conflicts)
    feature["properties"]["conflicts"] = [c.to_dict() for c in report.conflicts]
    if repaired is not None:
        feature["properties"]["repaired"] = repaired
    return _feature_response(
        json.dumps(feature),
        201,
        Location=str(request.url_for("read_licence", licence_id=licence_id)),
    )


def _parse_bbox(text: str) -> tuple[float, float, float, float]:
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InvalidInput(
            f"bbox must be four numbers minx,miny,maxx,maxy; got {text!r}", field="bbox"
        ) from None
    if len(values) != 4 or not all(abs(v) <= 180 for v in values):
        raise InvalidInput(
            "bbox must be four numbers minx,miny,maxx,maxy in WGS 84 degrees", field="bbox"
        )
    minx, miny, maxx, maxy = values
    if minx > maxx or miny > maxy or abs(miny) > 90 or abs(maxy) > 90:
        raise InvalidInput(
            "bbox corners are out of order or latitude exceeds ±90: expected minx,miny,maxx,maxy",
            field="bbox",
        )
    return minx, miny, maxx, maxy


def parse_as_of(text: str, tz: str) -> datetime:
    try:
        return reg.end_of_day(date.fromisoformat(text), tz)
    except OverflowError:
        raise InvalidInput(f"as_of {text!r} is out of range", field="as_of") from None
    except ValueError:
        pass
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"as_of must be a date (2024-05-31) or an RFC 3339 date-time; got {text!r}",
            field="as_of",
        ) from None
    if instant.tzinfo is None:
        raise InvalidInput(
            "as_of date-time needs a time zone offset (e.g. Z or +05:00)", field="as_of"
        )
    return instant


@router.get(
    "",
    summary="List licences",
    response_class=GeoJSONResponse,
    responses={200: {"model": LicenceCollection}, **errors(422)},
)
def list_licences(
    db: DbDep,
    settings: SettingsDep,
    rules: RulesDep,
    request: Request,
    who: WhoDep,
    province: Annotated[str | None, Query(description="Name or ISO code", **_TEXT)] = None,
    status: Annotated[str | None, Query(**_TEXT)] = None,
    licence_type: Annotated[str | None, Query(**_TEXT)] = None,
    mineral: Annotated[str | None, Query(**_TEXT)] = None,
    holder: Annotated[str | None, Query(description="Part of the holder's name", **_TEXT)] = None,
    bbox: Annotated[
        str | None, Query(description="minx,miny,maxx,maxy in WGS 84 degrees", **_TEXT)
    ] = None,
    as_of: Annotated[
        str | None,
        Query(
            description="The register as it stood at the end of this date (register time "
            "zone) or at this RFC 3339 instant.",
            max_length=40,
        ),
    ] = None,
    limit: Annotated[int | None, Query(ge=1, description="Page size")] = None,
    after: Annotated[int | None, Query(ge=0, description="Cursor from the `next` link")] = None,
) -> Response:
    """List licences as a GeoJSON FeatureCollection, filtered and keyset-paged."""
    box = _parse_bbox(bbox) if bbox else None
    if box is not None:
        check_bbox_area(box, settings.max_bbox_deg2, error=InvalidInput)
    page_size = settings.page_default if limit is None else limit
    if page_size > settings.page_max:
        raise InvalidInput(f"limit must be at most {settings.page_max}", field="limit")
    q = reg.LicenceQuery(
        province=province_code(province) if province else None,
        status=check_status(status) if status else None,
        licence_type=rules.check_type(licence_type) if licence_type else None,
        mineral=mineral,
        holder=holder,
        bbox=box,
        as_of=parse_as_of(as_of, settings.register_timezone) if as_of else None,
        after=after,
        limit=page_size,
        unpublished=who.unpublished_scope,
    )
    with db.begin() as conn:
        etag = etag_for(request, db.map_generation(conn))
        held = not_modified(request, etag)
        if held is not None:
            return held
        page = reg.list_licences(conn, q)
    base = str(request.url.remove_query_params(["after"]))
    links = [{"href": str(request.url), "rel": "self", "type": GEOJSON}]
    if page.has_more:
        sep = "&" if "?" in base else "?"
        links.append(
            {
                "href": f"{base}{sep}{urlencode({'after': page.last_id})}",
                "rel": "next",
                "type": GEOJSON,
            }
        )
    head = json.dumps(
        {
            "type": "FeatureCollection",
            "numberMatched": page.number_matched,
            "numberReturned": page.number_returned,
            "timeStamp": datetime.now(UTC).isoformat(),
            "links": links,
        }
    )
    return tag(_feature_response(f'{head[:-1]},"features":[{page.features_json}]}}'), etag)


@router.get(
    "/{licence_id}",
    summary="Read a licence",
    response_class=GeoJSONResponse,
    responses={200: {"model": LicenceDetailFeature}, **errors(404)},
)
def read_licence(
    licence_id: int,
    request: Request,
    db: DbDep,
    rules: RulesDep,
    settings: SettingsDep,
    who: WhoDep,
) -> Response:
    """One licence as a GeoJSON Feature. Anyone sees the public register fields (with
    the holder's beneficial owners); signed-in accounts also the remarks and the
    coordinates as submitted; the province's officers and admins the holder's contact
    details and unpublished applications. A title shows its obligations."""
    tz = settings.register_timezone
    with db.begin() as conn:
        # Obligations change with the day and with events that leave the map as it was.
        last_event = conn.execute(
            select(func.max(licence_events.c.id)).where(licence_events.c.licence_id == licence_id)
        ).scalar_one()
        state = f"{db.map_generation(conn)}|{reg.register_today(tz)}|{last_event}"
        etag = etag_for(request, state)
        held = not_modified(request, etag)
        if held is not None:
            return held
        feature = json.loads(reg.get_licence(conn, licence_id, who))
        feature["properties"]["obligations"] = [
            o.model_dump(mode="json") for o in licence_obligations(conn, licence_id, rules, tz)
        ]
        return tag(_feature_response(json.dumps(feature, separators=(",", ":"))), etag)


@router.get("/{licence_id}/history", summary="History of a licence", responses=errors(404))
def licence_history(licence_id: int, db: DbDep, who: WhoDep) -> list[Event]:
    """Every recorded change of a licence, oldest first: who, when, what, before and after.
    Anonymous readers see the public fields of each state, without notes or remarks."""
    with db.begin() as conn:
        return [Event.model_validate(e) for e in reg.licence_history(conn, licence_id, who)]


@router.patch(
    "/{licence_id}",
    summary="Change attributes",
    response_class=GeoJSONResponse,
    responses={200: {"model": LicenceDetailFeature}, **errors(401, 403, 404, 409, 422)},
)
def patch_licence(licence_id: int, body: LicencePatch, db: DbDep, who: WriterDep) -> Response:
    """Change minerals, remarks, the application date or whether an application is
    published; recorded as an event. Officers of the licence's province and admins."""
    auth.require_signed_in(who)
    changes = body.model_dump(exclude_unset=True, exclude={"note"})
    for key in ("minerals",):
        if key in changes and changes[key] is None:
            raise InvalidInput(f"{key} cannot be null", field=key)
    with db.begin() as conn:
        auth.require_licence_writer(who, reg.province_of(conn, licence_id))
        reg.update_attributes(conn, licence_id, changes, actor=who.actor, note=body.note)
        return _feature_response(reg.get_licence(conn, licence_id, who))


@router.post(
    "/{licence_id}/transitions",
    summary="Apply a lifecycle action",
    response_class=GeoJSONResponse,
    responses={200: {"model": LicenceDetailFeature}, **errors(401, 403, 404, 409, 422)},
)
def transition_licence(
    licence_id: int,
    body: TransitionIn,
    db: DbDep,
    rules: RulesDep,
    settings: SettingsDep,
    who: WriterDep,
    crs: CrsParam = None,
    repair: RepairParam = False,
) -> Response:
    """Grant, renew, transfer, relinquish part of, surrender, cancel, expire or refuse.
    Officers of the licence's province and admins."""
    auth.require_signed_in(who)
    unused = body.unused()
    if unused:
        raise InvalidInput(
            f"{unused[0]} is not an argument of {body.action}; {body.action} takes: "
            f"{', '.join([*sorted(body.ARGUMENTS.get(body.action, set())), 'note'])}",
            field=unused[0],
        )
    retained = None
    if body.geometry is not None:
        retained, _ = _take_in(body.geometry, crs, repair, settings.shape_limits)
    t = reg.Transition(
        action=body.action,
        granted_on=body.granted_on,
        expires_on=body.expires_on,
        holder=_holder(body.holder),
        retained=retained,
        note=body.note,
    )
    with db.begin() as conn:
        auth.require_licence_writer(who, reg.province_of(conn, licence_id))
        reg.transition(
            conn,
            licence_id,
            t,
            rules=rules,
            actor=who.actor,
            timezone=settings.register_timezone,
            tolerance_m2=settings.boundary_tolerance_m2,
            overlap_tolerance_m2=settings.overlap_tolerance_m2,
        )
        return _feature_response(reg.get_licence(conn, licence_id, who))
