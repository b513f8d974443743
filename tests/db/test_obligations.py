"""Obligations derived from the licence-type rules, their facts, and the obligations job."""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from typing import Any

import pytest
from shapely.geometry import MultiPolygon, box, mapping
from sqlalchemy import Connection, text

from cadastre.db.licences import Candidate, Holder, Shape, register_licences, register_today
from cadastre.db.obligations import (
    ObligationQuery,
    list_obligations,
    record_discovery,
    record_met,
    run_job,
)
from cadastre.errors import Conflict, InvalidInput, NotFound
from cadastre.rules import RuleBook

TZ = "Asia/Karachi"


def months_after(d: date, months: int) -> date:
    """As PostgreSQL adds months: the same day, or the month's last if it has none."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return d.replace(year=year, month=month, day=min(d.day, calendar.monthrange(year, month)[1]))


def title(
    conn: Connection,
    rules: RuleBook,
    *,
    granted_on: date,
    expires_on: date,
    licence_type: str = "exploration_licence",
    status: str = "granted",
    at: int = 0,
) -> int:
    x, y = 65.0 + at * 0.02, 27.5  # Balochistan
    geom = MultiPolygon([box(x, y, x + 0.01, y + 0.01)])
    cand = Candidate(
        licence_type=licence_type,
        minerals=["Copper"],
        holder=Holder("Obligations Test Ltd"),
        shape=Shape(geom, str(mapping(geom)), "OGC:CRS84", "none"),
        status=status,
        applied_on=granted_on - timedelta(days=30),
        granted_on=granted_on if status == "granted" else None,
        expires_on=expires_on if status == "granted" else None,
    )
    return register_licences(conn, [cand], rules=rules, actor="t").created[0]


def of(conn: Connection, rules: RuleBook, lid: int) -> dict[tuple[str, date], dict[str, Any]]:
    rows = list_obligations(
        conn, ObligationQuery(licence_id=lid), rules=rules, today=register_today(TZ)
    )
    return {(o["kind"], o["due_on"]): o for o in rows}


def events(conn: Connection, lid: int) -> list[tuple[str, Any]]:
    return [
        (r.action, r.after)
        for r in conn.execute(
            text("SELECT action, after FROM licence_events WHERE licence_id = :id ORDER BY id"),
            {"id": lid},
        )
    ]


def test_an_exploration_licence_has_its_schedule_with_sources(
    conn: Connection, rules: RuleBook
) -> None:
    today = register_today(TZ)
    granted_on, expires_on = today - timedelta(days=400), today + timedelta(days=800)
    lid = title(conn, rules, granted_on=granted_on, expires_on=expires_on)
    got = of(conn, rules, lid)
    start = got[("start_work", months_after(granted_on, 6))]
    assert start["status"] == "overdue"
    assert "6 months" in start["source"]
    # Rent: every anniversary passed (overdue) and the next one (open).
    assert got[("rent", months_after(granted_on, 12))]["status"] == "overdue"
    assert got[("rent", months_after(granted_on, 24))]["status"] == "open"
    assert not any(k == "rent" and d > months_after(granted_on, 24) for k, d in got)
    assert "project default" in got[("rent", months_after(granted_on, 12))]["source"]
    renewal = got[("renewal", expires_on)]
    assert renewal["opens_on"] == months_after(expires_on, -6)
    assert renewal["status"] == "open" and "project default" in renewal["source"]
    assert got[("expiry", expires_on)]["status"] == "open"
    assert not any(k == "discovery_report" for k, _ in got)  # none until a discovery


def test_rules_of_other_types_and_statuses(conn: Connection, rules: RuleBook) -> None:
    today = register_today(TZ)
    lease = title(
        conn,
        rules,
        granted_on=today - timedelta(days=10),
        expires_on=today + timedelta(days=3650),
        licence_type="mining_lease",
    )
    kinds = {k for k, _ in of(conn, rules, lease)}
    assert kinds == {"rent", "renewal", "expiry"}  # no start-of-work rule for a lease
    application = title(conn, rules, granted_on=today, expires_on=today, status="applied", at=1)
    assert of(conn, rules, application) == {}


def test_a_discovery_makes_a_report_due_in_30_days_and_it_can_be_met(
    conn: Connection, rules: RuleBook
) -> None:
    today = register_today(TZ)
    lid = title(
        conn,
        rules,
        granted_on=today - timedelta(days=100),
        expires_on=today.replace(year=today.year + 2),
    )
    found = today - timedelta(days=40)
    record_discovery(conn, lid, found, rules=rules, actor="officer", today=today)
    report = of(conn, rules, lid)[("discovery_report", found + timedelta(days=30))]
    assert report["status"] == "overdue" and report["opens_on"] == found
    assert "r.31" in report["source"]
    with pytest.raises(InvalidInput, match="future"):
        record_discovery(conn, lid, today + timedelta(days=1), rules=rules, actor="o", today=today)
    with pytest.raises(InvalidInput, match="before the grant"):
        record_discovery(
            conn, lid, today - timedelta(days=200), rules=rules, actor="o", today=today
        )

    due = found + timedelta(days=30)
    record_met(conn, lid, "discovery_report", due, today, rules=rules, actor="o", today=today)
    met = of(conn, rules, lid)[("discovery_report", due)]
    assert (met["status"], met["met_on"]) == ("met", today)
    with pytest.raises(Conflict, match="already met"):
        record_met(conn, lid, "discovery_report", due, today, rules=rules, actor="o", today=today)
    with pytest.raises(NotFound):
        record_met(conn, lid, "rent", today, today, rules=rules, actor="o", today=today)
    with pytest.raises(InvalidInput, match="renewing"):
        record_met(conn, lid, "renewal", due, today, rules=rules, actor="o", today=today)
    assert [a for a, _ in events(conn, lid)] == ["apply", "discovery", "obligation_met"]


def test_facts_only_on_granted_titles(conn: Connection, rules: RuleBook) -> None:
    today = register_today(TZ)
    lid = title(conn, rules, granted_on=today, expires_on=today, status="applied")
    with pytest.raises(Conflict, match="only a granted title"):
        record_discovery(conn, lid, today, rules=rules, actor="o", today=today)


def test_the_job_expires_notices_once_and_is_idempotent(conn: Connection, rules: RuleBook) -> None:
    today = register_today(TZ)
    ended = title(
        conn, rules, granted_on=today - timedelta(days=800), expires_on=today - timedelta(days=1)
    )
    late = title(
        conn,
        rules,
        granted_on=today - timedelta(days=400),
        expires_on=today + timedelta(days=800),
        at=1,
    )
    fresh = title(
        conn,
        rules,
        granted_on=today - timedelta(days=10),
        expires_on=today + timedelta(days=800),
        at=2,
    )
    done = run_job(conn, rules=rules, actor="job", timezone=TZ)
    assert done.expired.get("PK-BA", 0) >= 1 and done.notices >= 1
    status = dict(
        conn.execute(
            text("SELECT id, status FROM licences WHERE id = ANY(:ids)"),
            {"ids": [ended, late, fresh]},
        ).all()
    )
    assert status == {ended: "expired", late: "granted", fresh: "granted"}
    assert [a for a, _ in events(conn, ended)] == ["apply", "expire"]  # one event, no notice
    assert [a for a, _ in events(conn, fresh)] == ["apply"]
    late_events = events(conn, late)
    assert [a for a, _ in late_events] == ["apply", "notice"]
    noticed = {(o["kind"], o["due_on"]) for o in late_events[1][1]["obligations"]}
    start_due = months_after(today - timedelta(days=400), 6)
    rent_due = months_after(today - timedelta(days=400), 12)
    assert noticed == {("start_work", start_due.isoformat()), ("rent", rent_due.isoformat())}
    listed = of(conn, rules, late)
    notice_id = listed[("start_work", start_due)]["notice_event_id"]
    assert notice_id is not None and listed[("rent", rent_due)]["notice_event_id"] == notice_id
    assert of(conn, rules, ended) == {}  # an ended title has no obligations

    before = conn.execute(text("SELECT count(*), max(id) FROM licence_events")).one()
    again = run_job(conn, rules=rules, actor="job", timezone=TZ)
    assert (again.expired, again.notices) == ({}, 0)
    assert conn.execute(text("SELECT count(*), max(id) FROM licence_events")).one() == before


def test_list_filters(conn: Connection, rules: RuleBook) -> None:
    today = register_today(TZ)
    lid = title(
        conn, rules, granted_on=today - timedelta(days=400), expires_on=today + timedelta(days=800)
    )

    def listed(**kw: Any) -> set[tuple[str, date]]:
        rows = list_obligations(conn, ObligationQuery(**kw), rules=rules, today=today)
        return {(o["kind"], o["due_on"]) for o in rows if o["licence_id"] == lid}

    overdue = listed(status="overdue", province="PK-BA")
    assert {k for k, _ in overdue} == {"start_work", "rent"}
    assert listed(province="PK-PB") == set()
    soon = listed(due_before=today + timedelta(days=1))
    assert soon == overdue
    with pytest.raises(InvalidInput, match="status"):
        listed(status="late")
