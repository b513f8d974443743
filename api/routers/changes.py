"""The change feed: every register event after a cursor, in commit order."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from api.auth import WhoDep
from api.deps import DbDep, strict_query
from api.schemas import errors
from cadastre.db import changes as feed

router = APIRouter(tags=["change feed"], dependencies=[Depends(strict_query)])

MAX_LIMIT = 10_000


class Change(BaseModel):
    cursor: str = Field(description="This change's cursor: pass it as `since` to read after it.")
    event_id: int
    licence_id: int
    licence_no: str
    version: int
    action: str = Field(description="The register action: apply, grant, transfer, expire, ...")
    occurred_at: str
    change: str = Field(
        description="`upsert`: the licence now reads as `record`; `remove`: it left the "
        "register as the caller sees it (an application held back again)."
    )
    record: dict[str, Any] | None = Field(
        description="The licence after the event, a GeoJSON Feature with the open data "
        "fields (see /opendata/README); null on `remove`."
    )


class ChangeFeed(BaseModel):
    changes: list[Change]
    next_cursor: str = Field(description="Pass as `since` for the next page (or to poll).")
    has_more: bool = Field(description="More changes are waiting: read on without pausing.")
    links: list[dict[str, str]]


@router.get(
    "/changes",
    summary="Change feed: register events after a cursor",
    response_model=ChangeFeed,
    responses=errors(422),
)
def list_changes(
    db: DbDep,
    request: Request,
    who: WhoDep,
    since: Annotated[
        int,
        Query(
            ge=0,
            le=2**63 - 1,
            description="Cursor: `0` for the whole history, else a `next_cursor` or `cursor`.",
        ),
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Changes per page")] = 1000,
) -> Response:
    """Every change of the register after `since`, oldest first, in commit order.

    Replaying the feed from `since=0` (upsert each `record`, drop the licence on
    `remove`) rebuilds the register exactly as the caller may see it: the public sees
    only published licences, officers also their province's held-back applications.
    """
    with db.begin() as conn:
        page = feed.changes(conn, since, limit=limit, who=who)
    nxt = str(request.url.include_query_params(since=page.next_cursor))
    links = json.dumps([{"rel": "next", "href": nxt, "type": "application/json"}])
    body = (
        f'{{"changes":[{page.changes_json}],"next_cursor":"{page.next_cursor}",'
        f'"has_more":{"true" if page.has_more else "false"},"links":{links}}}'
    )
    return Response(body, media_type="application/json")
