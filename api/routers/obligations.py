"""Obligations of titles: due dates derived from the licence-type rules, and their facts."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from api.auth import WriterDep
from api.deps import DbDep, RulesDep, SettingsDep, strict_query
from api.schemas import Obligation, Remark, Strict, errors
from cadastre import auth
from cadastre.db import licences as reg
from cadastre.db import obligations as ob
from cadastre.domain.provinces import province_code
from cadastre.errors import InvalidInput
from cadastre.rules import RuleBook

router = APIRouter(tags=["obligations"], dependencies=[Depends(strict_query)])

MAX_LIMIT = 10_000


class ObligationList(BaseModel):
    obligations: list[Obligation]
    today: date = Field(description="The day (register time zone) statuses are taken on.")
    truncated: bool = Field(description="More obligations matched than `limit`.")


class DiscoveryIn(Strict):
    """A discovery on a granted title."""

    discovered_on: date
    note: Remark | None = None


class MetIn(Strict):
    """That the holder met an obligation."""

    kind: Literal[ob.HOLDER_KINDS]  # type: ignore[valid-type]
    due_on: date = Field(description="The due day of the obligation met, as listed.")
    met_on: date | None = Field(default=None, description="Default today.")
    note: Remark | None = None


def licence_obligations(
    conn: Connection, licence_id: int, rules: RuleBook, timezone: str
) -> list[Obligation]:
    """The obligations of one licence, for its card."""
    q = ob.ObligationQuery(licence_id=licence_id, limit=MAX_LIMIT)
    rows = ob.list_obligations(conn, q, rules=rules, today=reg.register_today(timezone))
    return [Obligation.model_validate(r) for r in rows]


@router.get(
    "/obligations",
    summary="Obligations of titles",
    response_model=ObligationList,
    responses=errors(422),
)
def list_obligations(
    db: DbDep,
    rules: RulesDep,
    settings: SettingsDep,
    province: Annotated[
        str | None, Query(description="Name or ISO code of a province", max_length=60)
    ] = None,
    due_before: Annotated[
        str | None,
        Query(
            description="Obligations due before this day (ISO date, YYYY-MM-DD)",
            pattern=r"^\d{4}-\d{2}-\d{2}$",
        ),
    ] = None,
    status: Annotated[
        Literal[ob.STATUSES] | None,  # type: ignore[valid-type]
        Query(description="open, met or overdue"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 1000,
) -> ObligationList:
    """Obligations of granted titles, soonest due first: start of work, discovery
    reports, rent, the renewal window and expiry, each with the rule's source. Public:
    every granted title is in the public register."""
    today = reg.register_today(settings.register_timezone)
    try:
        before = date.fromisoformat(due_before) if due_before else None
    except ValueError:
        raise InvalidInput(f"due_before {due_before!r} is not a date", field="due_before") from None
    q = ob.ObligationQuery(
        province=province_code(province) if province else None,
        status=status,
        due_before=before,
        limit=limit + 1,
    )
    with db.begin() as conn:
        rows = ob.list_obligations(conn, q, rules=rules, today=today)
    return ObligationList(
        obligations=[Obligation.model_validate(r) for r in rows[:limit]],
        today=today,
        truncated=len(rows) > limit,
    )


@router.post(
    "/licences/{licence_id}/discoveries",
    summary="Record a discovery",
    status_code=201,
    responses=errors(401, 403, 404, 409, 422),
)
def record_discovery(
    licence_id: int,
    body: DiscoveryIn,
    db: DbDep,
    rules: RulesDep,
    settings: SettingsDep,
    who: WriterDep,
) -> list[Obligation]:
    """Record a discovery on a granted title; it must then be reported within the
    type's discovery_report_days. Answers the licence's obligations."""
    auth.require_signed_in(who)
    tz = settings.register_timezone
    with db.begin() as conn:
        auth.require_licence_writer(who, reg.province_of(conn, licence_id))
        ob.record_discovery(
            conn,
            licence_id,
            body.discovered_on,
            rules=rules,
            actor=who.actor,
            today=reg.register_today(tz),
            note=body.note,
        )
        return licence_obligations(conn, licence_id, rules, tz)


@router.post(
    "/licences/{licence_id}/obligations/met",
    summary="Record an obligation met",
    status_code=201,
    responses=errors(401, 403, 404, 409, 422),
)
def record_met(
    licence_id: int,
    body: MetIn,
    db: DbDep,
    rules: RulesDep,
    settings: SettingsDep,
    who: WriterDep,
) -> list[Obligation]:
    """Record that the holder met an obligation (start of work, discovery report, rent).
    Answers the licence's obligations."""
    auth.require_signed_in(who)
    tz = settings.register_timezone
    today = reg.register_today(tz)
    with db.begin() as conn:
        auth.require_licence_writer(who, reg.province_of(conn, licence_id))
        ob.record_met(
            conn,
            licence_id,
            body.kind,
            body.due_on,
            body.met_on or today,
            rules=rules,
            actor=who.actor,
            today=today,
            note=body.note,
        )
        return licence_obligations(conn, licence_id, rules, tz)
