"""Obligations over HTTP: the public list, a title's card, recording facts, who may."""

from __future__ import annotations

from datetime import date, timedelta

from fastapi.testclient import TestClient

from cadastre.db.licences import register_today
from tests.api.test_lifecycle import KP, act, apply, ok, read
from tests.conftest import Credentials

TODAY = register_today("Asia/Karachi")


def title(client: TestClient, days_ago: int = 400, **kw: object) -> int:
    lid = int(apply(client, **kw)["id"])
    granted_on = TODAY - timedelta(days=days_ago)
    ok(
        act(
            client,
            lid,
            "grant",
            granted_on=granted_on.isoformat(),
            expires_on=(granted_on + timedelta(days=1500)).isoformat(),
        )
    )
    return lid


def test_the_card_shows_a_titles_obligations(client: TestClient, anon: TestClient) -> None:
    lid = title(client)
    card = read(anon, lid)["properties"]["obligations"]
    kinds = [o["kind"] for o in card]
    assert {"start_work", "rent", "renewal", "expiry"} <= set(kinds)
    start = next(o for o in card if o["kind"] == "start_work")
    assert start["status"] == "overdue" and start["source"]
    assert [o["due_on"] for o in card] == sorted(o["due_on"] for o in card)
    application = apply(client, at=KP)["id"]
    assert read(anon, application)["properties"]["obligations"] == []


def test_the_public_list_filters(client: TestClient, anon: TestClient) -> None:
    lid = title(client)
    r = anon.get("/obligations", params={"province": "Balochistan", "status": "overdue"})
    body = ok(r)
    mine = [o for o in body["obligations"] if o["licence_id"] == lid]
    assert {o["kind"] for o in mine} == {"start_work", "rent"}
    assert all(o["status"] == "overdue" for o in body["obligations"])
    assert body["today"] == TODAY.isoformat()
    later = ok(anon.get("/obligations", params={"due_before": "2000-01-01"}))
    assert later["obligations"] == [] and later["truncated"] is False
    one = ok(anon.get("/obligations", params={"limit": 1}))
    assert len(one["obligations"]) == 1 and one["truncated"] is True
    assert anon.get("/obligations", params={"status": "late"}).status_code == 422
    for bad in ("0", "2026-02-30"):
        assert anon.get("/obligations", params={"due_before": bad}).status_code == 422
    assert anon.get("/obligations", params={"sort": "x"}).status_code == 400


def test_recording_a_discovery_and_meeting_it(
    client: TestClient, anon: TestClient, credentials: Credentials
) -> None:
    lid = title(client, days_ago=100)
    found = (TODAY - timedelta(days=5)).isoformat()
    body = {"discovered_on": found}
    assert anon.post(f"/licences/{lid}/discoveries", json=body).status_code == 401
    other = credentials("officer", "PK-PB")
    assert client.post(f"/licences/{lid}/discoveries", json=body, headers=other).status_code == 403
    officer = credentials("officer", "PK-BA")
    r = client.post(f"/licences/{lid}/discoveries", json=body, headers=officer)
    assert r.status_code == 201, r.text
    report = next(o for o in r.json() if o["kind"] == "discovery_report")
    due = date.fromisoformat(found) + timedelta(days=30)
    assert (report["due_on"], report["status"]) == (due.isoformat(), "open")
    met = {"kind": "discovery_report", "due_on": due.isoformat()}
    r = client.post(f"/licences/{lid}/obligations/met", json=met, headers=officer)
    assert r.status_code == 201, r.text
    done = next(o for o in r.json() if o["kind"] == "discovery_report")
    assert (done["status"], done["met_on"]) == ("met", TODAY.isoformat())
    again = client.post(f"/licences/{lid}/obligations/met", json=met, headers=officer)
    assert again.status_code == 409
    renewal = {"kind": "renewal", "due_on": due.isoformat()}
    assert client.post(f"/licences/{lid}/obligations/met", json=renewal).status_code == 422
    actions = [e["action"] for e in ok(anon.get(f"/licences/{lid}/history"))]
    assert actions == ["apply", "grant", "discovery", "obligation_met"]


def test_a_discovery_on_an_application_is_a_conflict(client: TestClient) -> None:
    lid = apply(client)["id"]
    r = client.post(f"/licences/{lid}/discoveries", json={"discovered_on": TODAY.isoformat()})
    assert r.status_code == 409
    assert (
        client.post(
            "/licences/999999999/discoveries", json={"discovered_on": "2024-01-01"}
        ).status_code
        == 404
    )
