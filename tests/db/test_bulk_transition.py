"""Bulk transitions: one action on many licences, one event each, refused whole."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from shapely.geometry import MultiPolygon, box, mapping
from sqlalchemy import Connection, text

from cadastre.auth import Principal
from cadastre.db.licences import (
    BulkSelection,
    Candidate,
    Holder,
    Shape,
    Transition,
    bulk_transition,
    register_licences,
    select_licences,
    transition,
)
from cadastre.db.tables import cell_rows, density_rows
from cadastre.errors import Conflict, Forbidden, IllegalTransition, InvalidInput, NotFound
from cadastre.rules import RuleBook

ADMIN = Principal("admin", "bulk-admin")


def candidate(i: int, status: str = "granted", expires_on: date = date(2025, 1, 1)) -> Candidate:
    x, y = 66.0 + (i % 20) * 0.02, 28.5 + (i // 20) * 0.02  # Balochistan
    geom = MultiPolygon([box(x, y, x + 0.01, y + 0.01)])
    granted = status == "granted"
    return Candidate(
        licence_type="exploration_licence",
        minerals=["Copper"],
        holder=Holder("Bulk Test (Pvt) Ltd"),
        shape=Shape(geom, str(mapping(geom)), "OGC:CRS84", "none"),
        status=status,
        applied_on=date(2020, 1, 1),
        granted_on=date(2020, 6, 1) if granted else None,
        expires_on=expires_on if granted else None,
    )


def register(conn: Connection, rules: RuleBook, cands: list[Candidate]) -> list[int]:
    result = register_licences(conn, cands, rules=rules, actor="t")
    return [result.created[i] for i in range(len(cands))]


def state(conn: Connection, ids: list[int]) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in conn.execute(
            text(
                "SELECT l.id, l.status, l.version,"
                " (SELECT count(*) FROM licence_versions v WHERE v.licence_id = l.id),"
                " (SELECT count(*) FROM licence_events e WHERE e.licence_id = l.id)"
                " FROM licences l WHERE l.id = ANY(:ids) ORDER BY l.id"
            ),
            {"ids": ids},
        )
    ]


def test_a_bulk_transition_writes_one_version_and_one_event_per_licence(
    conn: Connection, rules: RuleBook
) -> None:
    ids = register(conn, rules, [candidate(i) for i in range(12)])
    done = bulk_transition(
        conn, ids, "expire", actor="bulk-admin", who=ADMIN, note="sweep", chunk=5
    )
    assert done == {"PK-BA": 12}
    assert state(conn, ids) == [(i, "expired", 2, 2, 2) for i in sorted(ids)]
    events = conn.execute(
        text(
            "SELECT licence_id, version, action, actor, before, after, note FROM licence_events "
            "WHERE licence_id = ANY(:ids) AND action = 'expire' ORDER BY licence_id"
        ),
        {"ids": ids},
    ).all()
    assert [tuple(e) for e in events] == [
        (i, 2, "expire", "bulk-admin", {"status": "granted"}, {"status": "expired"}, "sweep")
        for i in sorted(ids)
    ]
    # One current version each, with the new status; the old one closed.
    current = conn.execute(
        text(
            "SELECT licence_id, version, status FROM licence_versions "
            "WHERE licence_id = ANY(:ids) AND valid_to IS NULL ORDER BY licence_id"
        ),
        {"ids": ids},
    ).all()
    assert [tuple(r) for r in current] == [(i, 2, "expired") for i in sorted(ids)]


def test_a_bulk_event_is_the_event_a_single_transition_writes(
    conn: Connection, rules: RuleBook
) -> None:
    one, many = register(conn, rules, [candidate(0), candidate(1)])
    transition(conn, one, Transition("cancel"), rules=rules, actor="a")
    bulk_transition(conn, [many], "cancel", actor="a")
    rows = conn.execute(
        text(
            "SELECT before, after FROM licence_events WHERE licence_id IN (:a, :b) "
            "AND action = 'cancel' ORDER BY licence_id"
        ),
        {"a": one, "b": many},
    ).all()
    assert rows[0] == rows[1]


def test_the_density_cells_follow_a_bulk_transition(conn: Connection, rules: RuleBook) -> None:
    ids = register(conn, rules, [candidate(i) for i in range(30)])
    bulk_transition(conn, ids, "cancel", actor="a", chunk=7)
    for table, rows, keys in (
        ("licence_cells", cell_rows("licences"), "level, cx, cy, n, applied, granted"),
        (
            "licence_density",
            density_rows("licences"),
            "level, cx, cy, status, licence_type, province_code, n",
        ),
    ):
        stored = conn.execute(text(f"SELECT {keys} FROM {table} ORDER BY {keys}")).all()
        recount = conn.execute(text(f"SELECT {keys} FROM ({rows}) r ORDER BY {keys}")).all()
        assert stored and stored == recount, table


def test_one_licence_that_cannot_take_the_action_refuses_them_all(
    conn: Connection, rules: RuleBook
) -> None:
    ids = register(conn, rules, [candidate(i) for i in range(5)] + [candidate(5, "applied")])
    before = state(conn, ids)
    with pytest.raises(IllegalTransition) as caught:
        bulk_transition(conn, ids, "cancel", actor="a")
    number = conn.execute(text("SELECT licence_no FROM licences WHERE id = :i"), {"i": ids[-1]})
    assert f"licence {number.scalar_one()} (id {ids[-1]})" in caught.value.message
    assert "'applied'" in caught.value.message and "nothing was changed" in caught.value.message
    assert caught.value.where is not None and caught.value.where["licence_id"] == ids[-1]
    assert state(conn, ids) == before


def test_titles_that_have_not_expired_are_not_expired(conn: Connection, rules: RuleBook) -> None:
    ids = register(conn, rules, [candidate(0), candidate(1, expires_on=date(2999, 1, 1))])
    with pytest.raises(Conflict, match=r"\(id \d+\) has not expired yet \(2999-01-01\)"):
        bulk_transition(conn, ids, "expire", actor="a")
    assert [s[1] for s in state(conn, ids)] == ["granted", "granted"]


def test_an_officer_acts_on_its_own_province_only(conn: Connection, rules: RuleBook) -> None:
    ids = register(conn, rules, [candidate(0), candidate(1)])
    with pytest.raises(Forbidden, match="officer of Punjab may not change licences of Balochistan"):
        bulk_transition(conn, ids, "cancel", actor="o", who=Principal("officer", "o", "PK-PB"))
    with pytest.raises(Forbidden):
        bulk_transition(conn, ids, "cancel", actor="g", who=Principal("geologist", "g"))
    done = bulk_transition(conn, ids, "cancel", actor="o", who=Principal("officer", "o", "PK-BA"))
    assert done == {"PK-BA": 2}


@pytest.mark.parametrize(
    ("ids", "action", "error", "match"),
    [
        ([0], "grant", InvalidInput, "'grant' is not applied in bulk"),
        ([0], "explode", InvalidInput, "unknown action 'explode'"),
        ([0, 0], "cancel", InvalidInput, "listed twice"),
        ([-1], "cancel", NotFound, "no licence with id -1; nothing was changed"),
    ],
)
def test_bad_requests_are_refused(
    conn: Connection,
    rules: RuleBook,
    ids: list[int],
    action: str,
    error: type[Exception],
    match: str,
) -> None:
    (lid,) = register(conn, rules, [candidate(0)])
    listed = [lid if i == 0 else i for i in ids]
    with pytest.raises(error, match=match):
        bulk_transition(conn, listed, action, actor="a")
    assert state(conn, [lid])[0][1:] == ("granted", 1, 1, 1)


def test_a_selection_by_filters(conn: Connection, rules: RuleBook) -> None:
    ids = register(
        conn,
        rules,
        [candidate(0), candidate(1, expires_on=date(2999, 1, 1)), candidate(2, "applied")],
    )
    chosen = select_licences(
        conn, BulkSelection(province="PK-BA", status="granted", expired_before=date(2026, 1, 1))
    )
    assert ids[0] in chosen and ids[1] not in chosen and ids[2] not in chosen
    with pytest.raises(InvalidInput, match="at least one filter"):
        select_licences(conn, BulkSelection())
