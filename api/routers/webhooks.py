"""Webhook subscriptions (admins): the public change feed pushed to a URL, signed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Response
from pydantic import BaseModel, Field

from api.auth import WriterDep
from api.deps import DbDep, strict_query
from api.schemas import NO_NUL, Strict, errors
from cadastre import auth
from cadastre.db import webhooks

#: A URL has no spaces or control characters (a NUL could not be stored either).
NO_CONTROL = r"^[^\x00-\x20\x7f]*$"

router = APIRouter(prefix="/webhooks", tags=["change feed"], dependencies=[Depends(strict_query)])


class SubscriptionIn(Strict):
    url: str = Field(
        max_length=2000, pattern=NO_CONTROL, description="http(s) URL each event is POSTed to."
    )
    secret: str = Field(
        min_length=webhooks.MIN_SECRET,
        max_length=200,
        pattern=NO_NUL,
        description="Key of the HMAC-SHA256 signature in `X-Cadastre-Signature: sha256=<hex>`.",
    )
    since: int | None = Field(
        default=None,
        ge=0,
        le=2**63 - 1,
        description="Deliver events after this feed cursor (0: the whole history); "
        "default: only events from now on.",
    )


class Subscription(BaseModel):
    id: int
    url: str
    cursor: int = Field(description="The last event delivered (a `GET /changes` cursor).")
    failures: int = Field(description="Failed attempts in a row; retries back off.")
    next_attempt_at: datetime
    last_error: str | None
    delivered: int
    created_at: datetime
    created_by: str
    disabled_at: datetime | None


@router.post("", summary="Subscribe a URL", status_code=201, responses=errors(401, 403, 422))
def subscribe(db: DbDep, who: WriterDep, body: Annotated[SubscriptionIn, Body()]) -> Subscription:
    """Every public change-feed event will be POSTed to the URL, signed, in order."""
    auth.require_admin(who, "manage webhooks")
    with db.begin() as conn:
        row = webhooks.subscribe(conn, body.url, body.secret, actor=who.actor, since=body.since)
    return Subscription.model_validate(row)


@router.delete("/{sub_id}", summary="Unsubscribe", status_code=204, responses=errors(401, 403, 404))
def unsubscribe(
    db: DbDep, who: WriterDep, sub_id: Annotated[int, Path(ge=1, le=2**63 - 1)]
) -> Response:
    """Stop deliveries to a subscription."""
    auth.require_admin(who, "manage webhooks")
    with db.begin() as conn:
        webhooks.unsubscribe(conn, sub_id)
    return Response(status_code=204)
