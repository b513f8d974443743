"""The change feed: every register event after a cursor, in commit order.

The cursor is the event id. Event ids are taken under the register's write lock
(see ``EVENT_ORDER_DDL``), so they are in commit order: a reader that sees event
n sees every committed event below it, and ``id > cursor`` neither skips nor
repeats an event across concurrent commits.

Each change carries the licence's whole public record after the event (a GeoJSON
Feature with the open data fields), so a client that applies the changes in order
(upsert the record, or remove the licence on ``remove``) holds exactly the current
register as the reader may see it. Events of licences the reader may not see
(unpublished applications, for the public) are left out; an event that makes a
licence visible is an ``upsert``, one that hides it again a ``remove``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from cadastre.auth import PUBLIC, Principal
from cadastre.db.opendata import feature_sql

_SEES = (
    "({alias}.published OR :all_unpublished OR coalesce({alias}.province_code = :province, false))"
)
_VISIBLE = _SEES.format(alias="v")
_WAS_VISIBLE = "(pv.licence_id IS NOT NULL AND " + _SEES.format(alias="pv") + ")"

_FEED_SQL = text(
    f"""
    SELECT e.id,
           json_build_object(
               'cursor', e.id::text, 'event_id', e.id, 'licence_id', e.licence_id,
               'licence_no', v.licence_no, 'version', e.version, 'action', e.action,
               'occurred_at', e.occurred_at,
               'change', CASE WHEN {_VISIBLE} THEN 'upsert' ELSE 'remove' END
           )::text AS head,
           CASE WHEN {_VISIBLE} THEN {feature_sql()} END AS record
    FROM licence_events e
    JOIN licence_versions v ON v.licence_id = e.licence_id AND v.version = e.version
    JOIN parties p ON p.id = v.holder_id
    JOIN jurisdictions j ON j.code = v.province_code
    LEFT JOIN licence_versions pv ON pv.licence_id = e.licence_id AND pv.version = e.version - 1
    WHERE e.id > :since AND e.id <= :upto AND ({_VISIBLE} OR {_WAS_VISIBLE})
    ORDER BY e.id
    LIMIT :limit
    """  # noqa: S608 - fixed text; every value is a bound parameter
)
_LAST_SQL = text("SELECT coalesce(max(id), 0) FROM licence_events")


@dataclass(frozen=True)
class ChangePage:
    """A page of changes as JSON text (an array's items), the next cursor, and whether
    more changes are already waiting."""

    changes_json: str
    count: int
    next_cursor: int
    has_more: bool


def changes(
    conn: Connection, since: int = 0, *, limit: int = 1000, who: Principal = PUBLIC
) -> ChangePage:
    """Changes after event ``since`` that ``who`` may see, oldest first, at most ``limit``.

    The next cursor is the last change returned, or, on the last page, the newest event
    this transaction sees, so that events the reader may not see are not scanned again.
    """
    scope = who.unpublished_scope
    # The newest event now committed; every event below it has committed too (ids are
    # in commit order), so the page may end there whatever commits meanwhile.
    upto = int(conn.execute(_LAST_SQL).scalar_one())
    params = {
        "upto": upto,
        "since": since,
        "limit": limit + 1,
        "all_unpublished": scope == "*",
        "province": scope if scope not in (None, "*") else None,
    }
    rows = conn.execute(_FEED_SQL, params).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    items = [r.head[:-1] + ',"record":' + (r.record or "null") + "}" for r in rows]
    next_cursor = rows[-1].id if has_more else max(since, upto)
    return ChangePage(",".join(items), len(items), next_cursor, has_more)
