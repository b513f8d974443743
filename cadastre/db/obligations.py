"""Obligations of titles, derived from the licence-type rules, and the job that acts on them.

Obligations are not stored: they are derived on read from each granted title's dates,
the rules of its type in its province (:class:`~cadastre.rules.TypeRule`, each with its
source) and the facts recorded as events on the licence. So a title shows its
obligations from the moment it is granted, and a renewal moves them at once.

========================  ==================================================  ==============
kind                      due on                                              rule
========================  ==================================================  ==============
``start_work``            grant + ``start_work_months``                       start_work_months
``discovery_report``      each recorded discovery + ``discovery_report_days``  discovery_report_days
``rent``                  each anniversary of the grant, every                rent_interval_months
                          ``rent_interval_months``, up to the next one after
                          today and before expiry
``renewal``               expiry; opens ``renewal_window_months`` before it   renewal_window_months
``expiry``                ``expires_on``                                      the title's term
========================  ==================================================  ==============

Facts are events on the licence that change no register state (the change feed
repeats the licence's unchanged record for them):

* ``discovery`` (``after.discovered_on``) creates a ``discovery_report`` obligation;
* ``obligation_met`` (``after.kind``, ``after.due_on``, ``after.met_on``) meets one;
* ``notice`` (``after.obligations``: kind, due_on, source) is what :func:`run_job`
  issues for obligations that became overdue, once per obligation.

Status: ``met`` when recorded met, else ``overdue`` once its due day has passed, else
``open``. Only granted titles have obligations; a title that ends (expiry, surrender,
cancellation) drops out of the list. Granted titles are always public, so the list
holds nothing an anonymous reader may not see.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, text

from cadastre.db.generation import lock_for_write
from cadastre.db.licences import bulk_transition, register_today
from cadastre.domain.provinces import PROVINCES
from cadastre.errors import Conflict, InvalidInput, NotFound
from cadastre.rules import RuleBook

KINDS = ("start_work", "discovery_report", "rent", "renewal", "expiry")
#: Obligations of the holder that a record meets and a notice chases; the renewal
#: window and the expiry are met by renewing or ended by expiring.
HOLDER_KINDS = ("start_work", "discovery_report", "rent")
STATUSES = ("open", "met", "overdue")
EXPIRY_SOURCE = "the title's expires_on (grant: the type's term_years, or as granted)"


def rules_json(rules: RuleBook) -> str:
    """The obligation rules of every type in every province, for the derivation's SQL."""
    rows = []
    for key in rules.types:
        for code in PROVINCES:
            r = rules.rule(key, code)
            rows.append(
                {
                    "licence_type": key,
                    "province_code": code,
                    "start_work_months": r.start_work_months,
                    "start_work_source": r.sources.get("start_work_months"),
                    "discovery_report_days": r.discovery_report_days,
                    "discovery_report_source": r.sources.get("discovery_report_days"),
                    "rent_interval_months": r.rent_interval_months,
                    "rent_source": r.sources.get("rent_interval_months"),
                    "renewal_window_months": r.renewal_window_months,
                    "renewal_source": r.sources.get("renewal_window_months"),
                }
            )
    return json.dumps(rows)


# The schedule of every granted title (narrowed by bound filters), with each
# obligation's status and its notice. Fixed text; every value is a bound parameter.
_OBLIGATIONS_CTE = """
r AS (
    SELECT * FROM jsonb_to_recordset(CAST(:rules AS jsonb)) AS r(
        licence_type text, province_code text,
        start_work_months int, start_work_source text,
        discovery_report_days int, discovery_report_source text,
        rent_interval_months int, rent_source text,
        renewal_window_months int, renewal_source text)
), lic AS (
    SELECT l.id, l.licence_no, l.licence_type, l.province_code, l.granted_on, l.expires_on,
           l.version, r.start_work_months, r.start_work_source, r.discovery_report_days,
           r.discovery_report_source, r.rent_interval_months, r.rent_source,
           r.renewal_window_months, r.renewal_source
    FROM licences l JOIN r USING (licence_type, province_code)
    WHERE l.status = 'granted'
      AND (CAST(:licence_id AS bigint) IS NULL OR l.id = :licence_id)
      AND (CAST(:province AS text) IS NULL OR l.province_code = :province)
), sched AS (
    SELECT id, 'start_work' AS kind, NULL::date AS opens_on,
           (granted_on + make_interval(months => start_work_months))::date AS due_on,
           start_work_source AS source
    FROM lic WHERE start_work_months IS NOT NULL AND granted_on IS NOT NULL
    UNION ALL
    SELECT lic.id, 'discovery_report', d.on_, d.on_ + discovery_report_days,
           discovery_report_source
    FROM lic CROSS JOIN LATERAL (
        SELECT DISTINCT (e.after ->> 'discovered_on')::date AS on_ FROM licence_events e
        WHERE e.licence_id = lic.id AND e.action = 'discovery') d
    WHERE discovery_report_days IS NOT NULL
    UNION ALL
    SELECT lic.id, 'rent', NULL, due.on_, rent_source
    FROM lic CROSS JOIN LATERAL generate_series(1,
        greatest(0, (extract(year FROM age(CAST(:today AS date), granted_on)) * 12
                     + extract(month FROM age(CAST(:today AS date), granted_on)))::int)
        / rent_interval_months + 1) AS n
    CROSS JOIN LATERAL (
        SELECT (granted_on + make_interval(months => rent_interval_months * n))::date AS on_
    ) due
    WHERE rent_interval_months IS NOT NULL AND granted_on IS NOT NULL
      AND (expires_on IS NULL OR due.on_ < expires_on)
    UNION ALL
    SELECT id, 'renewal', (expires_on - make_interval(months => renewal_window_months))::date,
           expires_on, renewal_source
    FROM lic WHERE renewal_window_months IS NOT NULL AND expires_on IS NOT NULL
    UNION ALL
    SELECT id, 'expiry', NULL, expires_on, CAST(:expiry_source AS text)
    FROM lic WHERE expires_on IS NOT NULL
), obligations AS (
    SELECT lic.id AS licence_id, lic.licence_no, lic.licence_type, lic.province_code,
           lic.version, s.kind, s.opens_on, s.due_on, s.source, m.met_on, n.notice_event_id,
           CASE WHEN m.met_on IS NOT NULL THEN 'met'
                WHEN s.due_on < CAST(:today AS date) THEN 'overdue'
                ELSE 'open' END AS status
    FROM sched s
    JOIN lic ON lic.id = s.id
    LEFT JOIN LATERAL (
        SELECT (e.after ->> 'met_on')::date AS met_on FROM licence_events e
        WHERE e.licence_id = s.id AND e.action = 'obligation_met'
          AND e.after ->> 'kind' = s.kind AND e.after ->> 'due_on' = to_char(s.due_on, 'YYYY-MM-DD')
        ORDER BY e.id DESC LIMIT 1) m ON true
    LEFT JOIN LATERAL (
        SELECT e.id AS notice_event_id FROM licence_events e
        WHERE e.licence_id = s.id AND e.action = 'notice'
          AND e.after -> 'obligations' @> jsonb_build_array(jsonb_build_object(
              'kind', s.kind, 'due_on', to_char(s.due_on, 'YYYY-MM-DD')))
        ORDER BY e.id LIMIT 1) n ON true
)
"""

_LIST_SQL = text(
    f"""WITH {_OBLIGATIONS_CTE}
    SELECT licence_id, licence_no, licence_type, province_code, kind, opens_on, due_on,
           status, met_on, notice_event_id, source
    FROM obligations
    WHERE (CAST(:status AS text) IS NULL OR status = :status)
      AND (CAST(:due_before AS date) IS NULL OR due_on < :due_before)
    ORDER BY due_on, licence_id, kind
    LIMIT :limit
    """  # noqa: S608 - fixed text; every value is a bound parameter
)

# One notice event per title for its obligations that are overdue and not yet noticed.
_NOTICE_SQL = text(
    f"""WITH {_OBLIGATIONS_CTE}
    INSERT INTO licence_events (licence_id, version, action, actor, before, after, note)
    SELECT licence_id, version, 'notice', :actor, NULL,
           jsonb_build_object('obligations', jsonb_agg(jsonb_build_object(
               'kind', kind, 'due_on', to_char(due_on, 'YYYY-MM-DD'), 'status', status,
               'source', source) ORDER BY due_on, kind)),
           'overdue: ' || string_agg(kind || ' due ' || to_char(due_on, 'YYYY-MM-DD'), ', '
                                     ORDER BY due_on, kind)
    FROM obligations
    WHERE status = 'overdue' AND notice_event_id IS NULL
      AND kind = ANY(CAST(:kinds AS text[]))
    GROUP BY licence_id, version
    ORDER BY licence_id
    RETURNING id
    """  # noqa: S608 - fixed text; every value is a bound parameter
)


@dataclass(frozen=True)
class ObligationQuery:
    """Filters of the obligation list (all given filters apply)."""

    province: str | None = None
    status: str | None = None
    #: Obligations due before this day (``due_on < due_before``).
    due_before: date | None = None
    licence_id: int | None = None
    limit: int = 1000


def _params(rules: RuleBook, today: date, **filters: Any) -> dict[str, Any]:
    return {
        "rules": rules_json(rules),
        "today": today,
        "expiry_source": EXPIRY_SOURCE,
        "licence_id": None,
        "province": None,
        **filters,
    }


def list_obligations(
    conn: Connection, q: ObligationQuery, *, rules: RuleBook, today: date
) -> list[dict[str, Any]]:
    """Obligations of granted titles as of ``today``, soonest due first.

    Each has the licence, its ``kind``, ``due_on`` (and ``opens_on`` for a window),
    ``status`` (open, met, overdue), ``met_on``, the ``notice_event_id`` of the notice
    issued for it, and the ``source`` of the rule that makes it.
    """
    if q.status is not None and q.status not in STATUSES:
        raise InvalidInput(
            f"unknown obligation status {q.status!r}; expected one of {', '.join(STATUSES)}",
            field="status",
        )
    params = _params(
        rules,
        today,
        licence_id=q.licence_id,
        province=q.province,
        status=q.status,
        due_before=q.due_before,
        limit=q.limit,
    )
    return [dict(r._mapping) for r in conn.execute(_LIST_SQL, params)]


def _granted(conn: Connection, licence_id: int) -> Any:
    row = conn.execute(
        text(
            "SELECT id, licence_no, licence_type, province_code, status, granted_on, version "
            "FROM licences WHERE id = :id FOR UPDATE"
        ),
        {"id": licence_id},
    ).first()
    if row is None:
        raise NotFound(f"no licence with id {licence_id}")
    if row.status != "granted":
        raise Conflict(
            f"licence {row.licence_no} is {row.status}: only a granted title has obligations",
            field="licence_id",
        )
    return row


def _record(
    conn: Connection, row: Any, action: str, after: dict[str, Any], actor: str, note: str | None
) -> None:
    conn.execute(
        text(
            "INSERT INTO licence_events (licence_id, version, action, actor, before, after, note) "
            "VALUES (:id, :version, :action, :actor, NULL, CAST(:after AS jsonb), :note)"
        ),
        {
            "id": row.id,
            "version": row.version,
            "action": action,
            "actor": actor,
            "after": json.dumps(after),
            "note": note,
        },
    )


def record_discovery(
    conn: Connection,
    licence_id: int,
    discovered_on: date,
    *,
    rules: RuleBook,
    actor: str,
    today: date,
    note: str | None = None,
) -> None:
    """Record a discovery on a granted title: it must be reported within the type's
    ``discovery_report_days`` (a ``discovery_report`` obligation from now on)."""
    lock_for_write(conn)
    row = _granted(conn, licence_id)
    rule = rules.rule(row.licence_type, row.province_code)
    if rule.discovery_report_days is None:
        raise Conflict(
            f"no discovery report rule is configured for {row.licence_type} in "
            f"{PROVINCES[row.province_code]}",
            field="discovered_on",
        )
    if discovered_on > today:
        raise InvalidInput(
            f"discovered_on {discovered_on.isoformat()} is in the future", field="discovered_on"
        )
    if row.granted_on is not None and discovered_on < row.granted_on:
        raise InvalidInput(
            f"discovered_on {discovered_on.isoformat()} is before the grant "
            f"({row.granted_on.isoformat()})",
            field="discovered_on",
        )
    _record(conn, row, "discovery", {"discovered_on": discovered_on.isoformat()}, actor, note)


def record_met(
    conn: Connection,
    licence_id: int,
    kind: str,
    due_on: date,
    met_on: date,
    *,
    rules: RuleBook,
    actor: str,
    today: date,
    note: str | None = None,
) -> None:
    """Record that the holder met an obligation (``kind`` due on ``due_on``) on ``met_on``."""
    if kind not in HOLDER_KINDS:
        raise InvalidInput(
            f"{kind!r} is not met by a record; recordable: {', '.join(HOLDER_KINDS)} "
            "(a renewal window is met by renewing, an expiry ends the title)",
            field="kind",
        )
    if met_on > today:
        raise InvalidInput(f"met_on {met_on.isoformat()} is in the future", field="met_on")
    lock_for_write(conn)
    row = _granted(conn, licence_id)
    found = [
        o
        for o in list_obligations(
            conn, ObligationQuery(licence_id=licence_id), rules=rules, today=today
        )
        if o["kind"] == kind and o["due_on"] == due_on
    ]
    if not found:
        raise NotFound(
            f"licence {row.licence_no} has no {kind} obligation due on {due_on.isoformat()}",
            field="due_on",
        )
    if found[0]["status"] == "met":
        raise Conflict(
            f"the {kind} obligation due on {due_on.isoformat()} was already met on "
            f"{found[0]['met_on'].isoformat()}",
            field="kind",
        )
    after = {"kind": kind, "due_on": due_on.isoformat(), "met_on": met_on.isoformat()}
    _record(conn, row, "obligation_met", after, actor, note)


@dataclass(frozen=True)
class JobResult:
    """What one run of the obligations job did."""

    today: date
    expired: dict[str, int]
    notices: int


def run_job(
    conn: Connection, *, rules: RuleBook, actor: str, timezone: str = "Asia/Karachi"
) -> JobResult:
    """Expire titles past their expiry date and issue notices for overdue obligations.

    In the caller's one transaction, under the register's write lock: titles still
    granted whose ``expires_on`` is before today (in ``timezone``) are expired with
    :func:`~cadastre.db.licences.bulk_transition` (one ``expire`` event each); then
    every title left granted with holder obligations overdue and not yet noticed gets
    one ``notice`` event naming them. Idempotent: a second run the same day finds
    nothing to expire and nothing unnoticed.
    """
    lock_for_write(conn)
    today = register_today(timezone)
    ids = [
        int(i)
        for i in conn.scalars(
            text(
                "SELECT id FROM licences WHERE status = 'granted' AND expires_on < :today "
                "ORDER BY id"
            ),
            {"today": today},
        )
    ]
    expired = bulk_transition(
        conn,
        ids,
        "expire",
        actor=actor,
        note=f"term ended: expires_on before {today.isoformat()} (obligations job)",
        timezone=timezone,
    )
    notices = conn.execute(
        _NOTICE_SQL, {**_params(rules, today), "actor": actor, "kinds": list(HOLDER_KINDS)}
    ).all()
    return JobResult(today=today, expired=expired, notices=len(notices))


__all__ = [
    "HOLDER_KINDS",
    "KINDS",
    "STATUSES",
    "JobResult",
    "ObligationQuery",
    "list_obligations",
    "record_discovery",
    "record_met",
    "rules_json",
    "run_job",
]
