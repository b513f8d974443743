"""History: the event log, the version chain and the register ``as_of`` a date or instant."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pyproj
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import box, mapping, shape
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from cadastre.settings import Settings

GEOD = pyproj.Geod(ellps="WGS84")
LON, LAT, D = 66.0, 29.0, 0.05  # a square well inside Balochistan
FULL = box(LON, LAT, LON + D, LAT + D)
RETAINED = box(LON, LAT, LON + D / 2, LAT + D)
GRANT = {"granted_on": "2024-01-01", "expires_on": "2027-01-01"}


def km2(geom: Any) -> float:
    area, _ = GEOD.geometry_area_perimeter(geom)
    return abs(area) / 1e6


def apply(
    client: TestClient, holder: str = "History Co", actor: dict[str, str] | None = None
) -> int:
    body = {
        "type": "Feature",
        "geometry": mapping(FULL),
        "properties": {
            "licence_type": "exploration_licence",
            "minerals": ["Copper"],
            "holder": holder,
        },
    }
    r = client.post("/licences", json=body, headers=actor)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def act(
    client: TestClient, lid: int, action: str, actor: dict[str, str] | None = None, **body: Any
) -> None:
    r = client.post(f"/licences/{lid}/transitions", json={"action": action, **body}, headers=actor)
    assert r.status_code == 200, r.text


def history(client: TestClient, lid: int) -> list[dict[str, Any]]:
    r = client.get(f"/licences/{lid}/history")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


ACTORS = ("clerk.ahmed", "officer.bano", "officer.chaudhry", "officer.dar", "clerk.ejaz")


def full_life(client: TestClient, credentials: Any = None) -> int:
    """apply, grant, transfer, relinquish, update; with ``credentials``, each by a
    different officer of Balochistan (:data:`ACTORS`), else by the client's admin."""
    who: list[dict[str, str] | None] = [None] * 5
    if credentials is not None:
        # A header naming someone else is ignored: the account signed in is the actor.
        who = [{**credentials("officer", "PK-BA", n), "X-Actor": "mallory"} for n in ACTORS]
    lid = apply(client, actor=who[0])
    act(client, lid, "grant", actor=who[1], **GRANT)
    act(client, lid, "transfer", actor=who[2], holder="History Successor Ltd")
    act(client, lid, "relinquish", actor=who[3], geometry=mapping(RETAINED))
    r = client.patch(f"/licences/{lid}", json={"remarks": "checked"}, headers=who[4])
    assert r.status_code == 200, r.text
    return lid


# ------------------------------------------------------------------------ the event log


def test_history_lists_events_in_order(client: TestClient) -> None:
    events = history(client, full_life(client))
    assert [e["action"] for e in events] == ["apply", "grant", "transfer", "relinquish", "update"]
    assert [e["version"] for e in events] == [1, 2, 3, 4, 5]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)
    times = [datetime.fromisoformat(e["occurred_at"]) for e in events]
    assert times == sorted(times)


def test_history_actor_is_the_signed_in_account(client: TestClient, credentials: Any) -> None:
    events = history(client, full_life(client, credentials))
    assert [e["actor"] for e in events] == list(ACTORS)


def test_history_actor_of_the_default_client_is_its_admin(client: TestClient) -> None:
    lid = apply(client)
    act(client, lid, "refuse")
    assert [e["actor"] for e in history(client, lid)] == ["test-admin", "test-admin"]


def test_history_keeps_the_note(client: TestClient) -> None:
    lid = apply(client)
    act(client, lid, "refuse", note="overlaps a reserved area")
    assert history(client, lid)[-1]["note"] == "overlaps a reserved area"


def test_apply_event_has_the_initial_state(client: TestClient) -> None:
    (event,) = history(client, apply(client))
    assert not event["before"]
    assert event["after"]["status"] == "applied"
    assert event["after"]["licence_type"] == "exploration_licence"


def test_grant_event_has_only_changed_fields(client: TestClient) -> None:
    events = history(client, full_life(client))
    grant = events[1]
    assert set(grant["before"]) == set(grant["after"]) == {"status", "granted_on", "expires_on"}
    assert grant["before"] == {"status": "applied", "granted_on": None, "expires_on": None}
    assert grant["after"] == {"status": "granted", **GRANT}


def test_transfer_event_has_only_the_holder(client: TestClient) -> None:
    events = history(client, full_life(client))
    transfer = events[2]
    assert set(transfer["before"]) == set(transfer["after"]) == {"holder_id"}
    assert transfer["before"]["holder_id"] != transfer["after"]["holder_id"]


def test_relinquish_event_carries_geometry_before_and_after(client: TestClient) -> None:
    events = history(client, full_life(client))
    relinquish = events[3]
    assert set(relinquish["before"]) == set(relinquish["after"]) == {"geometry", "area_km2"}
    before = shape(relinquish["before"]["geometry"])
    after = shape(relinquish["after"]["geometry"])
    assert before.symmetric_difference(FULL).area < 1e-6 * FULL.area
    assert after.symmetric_difference(RETAINED).area < 1e-6 * RETAINED.area
    assert relinquish["before"]["area_km2"] == pytest.approx(km2(FULL), rel=1e-4)
    assert relinquish["after"]["area_km2"] == pytest.approx(km2(RETAINED), rel=1e-4)


def test_update_event_has_only_the_attribute(client: TestClient) -> None:
    update = history(client, full_life(client))[4]
    assert update["before"] == {"remarks": None}
    assert update["after"] == {"remarks": "checked"}


def test_history_of_unknown_licence_is_404(client: TestClient) -> None:
    assert client.get("/licences/987654321/history").status_code == 404


# ------------------------------------------------------------------------- the versions


def _versions(conn: Connection, lid: int) -> list[Any]:
    return list(
        conn.execute(
            text(
                "SELECT version, status, valid_from, valid_to FROM licence_versions "
                "WHERE licence_id = :id ORDER BY version"
            ),
            {"id": lid},
        )
    )


def test_one_open_version_per_licence(client: TestClient, conn: Connection) -> None:
    lids = [full_life(client), apply(client, holder="Another Co")]
    rows = conn.execute(
        text(
            "SELECT licence_id, count(*) FILTER (WHERE valid_to IS NULL) FROM licence_versions "
            "WHERE licence_id = ANY(:ids) GROUP BY licence_id ORDER BY licence_id"
        ),
        {"ids": lids},
    ).all()
    assert [tuple(r) for r in rows] == [(lid, 1) for lid in sorted(lids)]


def test_open_version_is_the_current_one(client: TestClient, conn: Connection) -> None:
    lid = full_life(client)
    current = conn.execute(text("SELECT version FROM licences WHERE id = :id"), {"id": lid})
    versions = _versions(conn, lid)
    assert versions[-1].version == current.scalar_one() == 5
    assert versions[-1].valid_to is None
    assert all(v.valid_to is not None for v in versions[:-1])


def test_versions_chain_without_gaps(client: TestClient, conn: Connection) -> None:
    lid = full_life(client)
    versions = _versions(conn, lid)
    assert [v.version for v in versions] == [1, 2, 3, 4, 5]
    assert [v.status for v in versions] == ["applied", "granted", "granted", "granted", "granted"]
    for older, newer in pairwise(versions):
        assert older.valid_to == newer.valid_from
        assert older.valid_from <= older.valid_to


def test_versions_match_events(client: TestClient, conn: Connection) -> None:
    lid = full_life(client)
    versions = [v.version for v in _versions(conn, lid)]
    assert versions == [e["version"] for e in history(client, lid)]


# ------------------------------------------------------------------------------ as_of


def _find(client: TestClient, lid: int, as_of: str | None = None) -> dict[str, Any] | None:
    params = {"as_of": as_of, "limit": 1000} if as_of else {"limit": 1000}
    r = client.get("/licences", params=params)
    assert r.status_code == 200, r.text
    found = [f for f in r.json()["features"] if f["id"] == lid]
    return found[0] if found else None


def test_as_of_instant_before_licence_existed(client: TestClient) -> None:
    lid = apply(client)
    assert _find(client, lid, "2000-01-01T00:00:00Z") is None
    assert _find(client, lid, "2000-01-01T05:00:00+05:00") is None
    assert _find(client, lid, "2000-01-01") is None


def test_as_of_instant_at_and_just_before_receipt(client: TestClient, conn: Connection) -> None:
    lid = apply(client)
    valid_from = conn.execute(
        text("SELECT valid_from FROM licence_versions WHERE licence_id = :id"), {"id": lid}
    ).scalar_one()
    at = _find(client, lid, valid_from.isoformat())
    assert at is not None
    assert at["properties"]["status"] == "applied"
    assert _find(client, lid, (valid_from - timedelta(microseconds=1)).isoformat()) is None


def test_as_of_far_future_is_current(client: TestClient) -> None:
    lid = full_life(client)
    later = _find(client, lid, "2999-12-31T00:00:00Z")
    now = _find(client, lid)
    assert later is not None and now is not None
    assert later["properties"] == now["properties"]


def test_as_of_needs_an_offset(client: TestClient) -> None:
    r = client.get("/licences", params={"as_of": "2024-01-01T10:00:00"})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "as_of"


def test_as_of_garbage_is_422(client: TestClient) -> None:
    r = client.get("/licences", params={"as_of": "last tuesday"})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "as_of"


# All writes of a test share one transaction, so every version gets the same
# now() and each closed version has an empty period: the real writes cannot
# produce a past. The honest way to test "as of a past day" is to run the
# real writes (apply, grant, transfer, relinquish through the API) and then
# move that licence's version periods back by whole days with one UPDATE, as
# if each write had happened at noon (register time) N days ago. The chain
# stays gapless (each version's valid_to is the next one's valid_from); only
# licence_versions is touched (licence_events is append-only and as_of does
# not read it).
DAYS_AGO = {1: 10, 2: 6, 3: 4, 4: 2}  # version -> day of the write, days before today


@pytest.fixture
def timeline(client: TestClient, conn: Connection, settings: Settings) -> tuple[int, date, str]:
    tz = settings.register_timezone
    lid = apply(client, holder="Timeline Holder A")
    act(client, lid, "grant", **GRANT)
    act(client, lid, "transfer", holder="Timeline Holder B")
    act(client, lid, "relinquish", geometry=mapping(RETAINED))
    today = datetime.now(ZoneInfo(tz)).date()

    def noon(version: int) -> datetime:
        return datetime.combine(today - timedelta(days=DAYS_AGO[version]), time(12), ZoneInfo(tz))

    periods = [(v, noon(v), noon(v + 1) if v + 1 in DAYS_AGO else None) for v in sorted(DAYS_AGO)]
    for v, start, end in periods:
        conn.execute(
            text(
                "UPDATE licence_versions SET valid_from = :start, valid_to = :end, "
                "changed_at = :start WHERE licence_id = :id AND version = :v"
            ),
            {"start": start, "end": end, "id": lid, "v": v},
        )
    conn.execute(
        text("UPDATE licences SET changed_at = :t WHERE id = :id"), {"t": noon(4), "id": lid}
    )
    return lid, today, tz


def _on(timeline: tuple[int, date, str], client: TestClient, days_ago: int) -> Any:
    lid, today, _ = timeline
    return _find(client, lid, (today - timedelta(days=days_ago)).isoformat())


def test_as_of_date_before_any_version(client: TestClient, timeline: Any) -> None:
    assert _on(timeline, client, 11) is None
    assert _on(timeline, client, 400) is None


@pytest.mark.parametrize("days_ago", [10, 9, 7])
def test_as_of_date_while_applied(client: TestClient, timeline: Any, days_ago: int) -> None:
    f = _on(timeline, client, days_ago)
    assert f is not None
    p = f["properties"]
    assert p["status"] == "applied"
    assert p["holder"] == "Timeline Holder A"
    assert p["granted_on"] is None
    assert p["version"] == 1
    assert p["area_km2"] == pytest.approx(km2(FULL), rel=1e-4)


@pytest.mark.parametrize("days_ago", [6, 5])
def test_as_of_date_after_grant(client: TestClient, timeline: Any, days_ago: int) -> None:
    # The grant happened at noon 6 days ago: the end of that day shows it.
    f = _on(timeline, client, days_ago)
    assert f is not None
    p = f["properties"]
    assert p["status"] == "granted"
    assert p["holder"] == "Timeline Holder A"
    assert p["granted_on"] == GRANT["granted_on"]
    assert p["version"] == 2


@pytest.mark.parametrize("days_ago", [4, 3])
def test_as_of_date_after_transfer(client: TestClient, timeline: Any, days_ago: int) -> None:
    f = _on(timeline, client, days_ago)
    assert f is not None
    p = f["properties"]
    assert p["holder"] == "Timeline Holder B"
    assert p["version"] == 3
    assert p["area_km2"] == pytest.approx(km2(FULL), rel=1e-4)
    assert shape(f["geometry"]).symmetric_difference(FULL).area < 1e-4 * FULL.area


@pytest.mark.parametrize("days_ago", [2, 1, 0])
def test_as_of_date_after_relinquish(client: TestClient, timeline: Any, days_ago: int) -> None:
    f = _on(timeline, client, days_ago)
    assert f is not None
    p = f["properties"]
    assert p["status"] == "granted"
    assert p["holder"] == "Timeline Holder B"
    assert p["version"] == 4
    assert p["area_km2"] == pytest.approx(km2(RETAINED), rel=1e-4)
    assert shape(f["geometry"]).symmetric_difference(RETAINED).area < 1e-4 * RETAINED.area


def test_as_of_instant_around_the_grant(client: TestClient, timeline: Any) -> None:
    lid, today, tz = timeline
    grant_at = datetime.combine(today - timedelta(days=6), time(12), ZoneInfo(tz))
    before = _find(client, lid, (grant_at - timedelta(seconds=1)).isoformat())
    at = _find(client, lid, grant_at.isoformat())
    in_utc = _find(client, lid, grant_at.astimezone(ZoneInfo("UTC")).isoformat())
    z_form = grant_at.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert before is not None and at is not None and in_utc is not None
    assert before["properties"]["status"] == "applied"
    assert at["properties"]["status"] == "granted"
    assert in_utc["properties"]["status"] == "granted"
    assert _find(client, lid, z_form)["properties"]["status"] == "granted"  # type: ignore[index]


def test_as_of_counts_only_licences_then_in_force(client: TestClient, timeline: Any) -> None:
    _, today, _ = timeline
    r = client.get("/licences", params={"as_of": (today - timedelta(days=11)).isoformat()})
    assert r.status_code == 200
    assert r.json()["numberMatched"] == 0
    assert r.json()["features"] == []


def test_current_view_matches_the_last_version(client: TestClient, timeline: Any) -> None:
    lid, _, _ = timeline
    now = _find(client, lid)
    yesterday = _on(timeline, client, 1)
    assert now is not None and yesterday is not None
    assert now["properties"] == yesterday["properties"]


# ---------------------------------------------------------------- append-only event log


def _events(conn: Connection, lid: int) -> list[tuple[Any, ...]]:
    rows = conn.execute(
        text("SELECT id, action, actor FROM licence_events WHERE licence_id = :id ORDER BY id"),
        {"id": lid},
    )
    return [tuple(r) for r in rows]


APPEND_ONLY_ATTEMPTS = [
    "UPDATE licence_events SET actor = 'forger' WHERE licence_id = :id",
    "UPDATE licence_events SET after = NULL WHERE licence_id = :id",
    "DELETE FROM licence_events WHERE licence_id = :id",
    "TRUNCATE licence_events",
    "TRUNCATE licence_events CASCADE",
]


@pytest.mark.parametrize("statement", APPEND_ONLY_ATTEMPTS)
def test_event_log_is_append_only_for_the_service_role(
    client: TestClient, conn: Connection, statement: str
) -> None:
    """The role the service and the CLI act as lacks the privilege: PostgreSQL refuses
    before any trigger runs."""
    lid = apply(client)
    act(client, lid, "refuse")
    before = _events(conn, lid)
    assert len(before) == 2
    assert conn.execute(text("SELECT current_user")).scalar() == "cadastre_service"
    with (
        pytest.raises(DBAPIError, match="permission denied for table licence_events"),
        conn.begin_nested(),
    ):
        conn.execute(text(statement), {"id": lid})
    # The outer transaction survives and the log is untouched.
    assert _events(conn, lid) == before


@pytest.mark.parametrize("statement", APPEND_ONLY_ATTEMPTS)
def test_event_log_is_append_only_even_for_its_owner(
    client: TestClient, conn: Connection, statement: str
) -> None:
    """Behind the privileges a trigger refuses the same to the owner (who migrates)."""
    lid = apply(client)
    act(client, lid, "refuse")
    before = _events(conn, lid)
    with pytest.raises(DBAPIError, match="append-only"), conn.begin_nested():
        conn.execute(text("SET LOCAL ROLE NONE"))  # undone with the savepoint
        assert conn.execute(text("SELECT current_user")).scalar() != "cadastre_service"
        conn.execute(text(statement), {"id": lid})
    assert conn.execute(text("SELECT current_user")).scalar() == "cadastre_service"
    assert _events(conn, lid) == before


def test_no_role_the_service_uses_may_rewrite_the_event_log(conn: Connection) -> None:
    """The service role may read and append, nothing else; the login role acts only
    through it (every connection of the service and the CLI sets it)."""
    granted = {
        p: conn.execute(
            text("SELECT has_table_privilege('cadastre_service', 'licence_events', :p)"),
            {"p": p},
        ).scalar()
        for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
    }
    assert granted == {
        "SELECT": True,
        "INSERT": True,
        "UPDATE": False,
        "DELETE": False,
        "TRUNCATE": False,
    }
