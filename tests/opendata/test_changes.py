"""The change feed: replay rebuilds the register; commit order under concurrent writers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text

from api.app import create_app
from cadastre.db import obligations
from cadastre.db.cluster import LocalCluster
from cadastre.db.tables import SERVICE_ROLE
from cadastre.rules import RuleBook
from cadastre.settings import Settings
from tests.api.test_lifecycle import BA, KP, PB, act, apply, square
from tests.conftest import Credentials
from tests.live import admin_headers, live_server, scratch_database

GRANT = {"granted_on": "2025-01-15", "expires_on": "2028-01-14"}


def replay(client: TestClient | httpx.Client, since: int = 0, limit: int = 3) -> Any:
    """Read the feed to its end, a page of ``limit`` at a time, applying every change."""
    register: dict[int, dict[str, Any]] = {}
    seen: list[int] = []
    while True:
        r = client.get("/changes", params={"since": since, "limit": limit})
        assert r.status_code == 200, r.text
        page = r.json()
        for c in page["changes"]:
            seen.append(c["event_id"])
            if c["change"] == "upsert":
                register[c["licence_id"]] = c["record"]
            else:
                assert c["record"] is None
                register.pop(c["licence_id"], None)
        since = int(page["next_cursor"])
        if not page["has_more"]:
            return register, seen, since


def patch(client: TestClient, lid: int, **body: Any) -> None:
    r = client.patch(f"/licences/{lid}", json=body)
    assert r.status_code == 200, r.text


@pytest.fixture
def history(client: TestClient, conn: Connection) -> dict[str, int]:
    """Licences through a varied life: granted and transferred, published late, held
    back for good, published then held back again, refused; a discovery, an obligation
    met and the obligations job's notice, which change no register state."""
    title = apply(client, holder="Feed Title Co")["id"]
    act(client, title, "grant", **GRANT)
    act(client, title, "transfer", holder="Feed Transferee Co")
    r = client.post(f"/licences/{title}/discoveries", json={"discovered_on": "2025-03-01"})
    assert r.status_code == 201, r.text
    met = {"kind": "discovery_report", "due_on": "2025-03-31", "met_on": "2025-03-20"}
    assert client.post(f"/licences/{title}/obligations/met", json=met).status_code == 201
    assert obligations.run_job(conn, rules=RuleBook.load(), actor="job").notices >= 1
    act(client, title, "relinquish", geometry=square(BA[0], BA[1], 0.03, 0.03))
    late = apply(client, at=KP, holder="Feed Late Co", published=False)["id"]
    patch(client, late, published=True)
    hidden = apply(client, at=PB, holder="Feed Hidden Co", published=False)["id"]
    withdrawn = apply(client, at=(66.5, 29.5), holder="Feed Withdrawn Co")["id"]
    patch(client, withdrawn, published=False)
    refused = apply(client, at=(67.0, 29.2), holder="Feed Refused Co")["id"]
    act(client, refused, "refuse")
    return {"title": title, "late": late, "hidden": hidden, "withdrawn": withdrawn}


def test_replay_from_the_start_is_the_public_register(
    anon: TestClient, history: dict[str, int]
) -> None:
    rebuilt, seen, _ = replay(anon)
    export = anon.get("/opendata/licences.geojson").json()
    current = {f["id"]: f for f in export["features"]}
    assert rebuilt == current  # every field and every coordinate
    assert len(seen) == len(set(seen)) and seen == sorted(seen)
    assert history["hidden"] not in rebuilt and history["withdrawn"] not in rebuilt
    assert history["late"] in rebuilt


def test_facts_and_notices_are_in_the_feed_and_change_no_record(
    anon: TestClient, history: dict[str, int]
) -> None:
    mine, since = [], 0
    while True:
        page = anon.get("/changes", params={"since": since, "limit": 1000}).json()
        mine += [c for c in page["changes"] if c["licence_id"] == history["title"]]
        since = int(page["next_cursor"])
        if not page["has_more"]:
            break
    actions = [c["action"] for c in mine]
    assert actions[:3] == ["apply", "grant", "transfer"]
    assert actions[3:6] == ["discovery", "obligation_met", "notice"]
    assert all(c["record"] == mine[2]["record"] for c in mine[3:6])  # as after the transfer


def test_the_public_never_sees_a_held_back_application(
    anon: TestClient, history: dict[str, int]
) -> None:
    body = anon.get("/changes", params={"limit": 10_000}).text
    assert "Feed Hidden Co" not in body
    changes = anon.get("/changes", params={"limit": 10_000}).json()["changes"]
    late = [c for c in changes if c["licence_id"] == history["late"]]
    assert [c["change"] for c in late] == ["upsert"]  # appears when published
    withdrawn = [c["change"] for c in changes if c["licence_id"] == history["withdrawn"]]
    assert withdrawn == ["upsert", "remove"]


def test_replay_as_an_officer_includes_their_held_back_applications(
    settings: Settings, db: Any, credentials: Credentials, history: dict[str, int]
) -> None:
    with TestClient(create_app(settings, db=db), headers=credentials("officer", "PK-PB")) as c:
        rebuilt, _, _ = replay(c, limit=100)
    assert history["hidden"] in rebuilt  # a Punjab application, held back
    assert history["withdrawn"] not in rebuilt  # Balochistan's is not theirs


def test_replay_as_admin_is_every_current_version(
    client: TestClient, conn: Connection, history: dict[str, int]
) -> None:
    rebuilt, _, _ = replay(client, limit=100)
    current = dict(
        conn.execute(
            text("SELECT licence_id, version FROM licence_versions WHERE valid_to IS NULL")
        )
        .tuples()
        .all()
    )
    assert {lid: rec["properties"]["version"] for lid, rec in rebuilt.items()} == current


def test_cursor_reads_on_from_where_it_stopped(client: TestClient, history: dict[str, int]) -> None:
    _, before, cursor = replay(client)
    extra = apply(client, at=(65.8, 28.5), holder="Feed After Co")["id"]
    r = client.get("/changes", params={"since": cursor}).json()
    assert [c["licence_id"] for c in r["changes"]] == [extra]
    assert r["changes"][0]["event_id"] > max(before)
    again = client.get("/changes", params={"since": r["next_cursor"]}).json()
    assert again["changes"] == [] and again["next_cursor"] == r["next_cursor"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": -1}, "since"),
        ({"since": "x"}, "since"),
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"cursor": 1}, "cursor"),
    ],
)
def test_bad_parameters_name_the_field(
    anon: TestClient, params: dict[str, Any], field: str
) -> None:
    r = anon.get("/changes", params=params)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["field"] == field


# ---------------------------------------------------------------- commit order


@pytest.fixture
def scratch(cluster: LocalCluster) -> Iterator[str]:
    with scratch_database(cluster, "feed") as url:
        yield url


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg2://", "postgresql://")


def test_event_ids_are_taken_in_commit_order(scratch: str) -> None:
    """A writer that inserts events without taking the register's lock first still gets
    its ids only while holding it: a second writer waits, then gets higher ids."""
    settings = Settings(environment="test", database_url=scratch)
    with TestClient(create_app(settings), headers=admin_headers(scratch)) as c:
        lid = apply(c, holder="Order Co")["id"]
    insert = (
        "INSERT INTO licence_events (licence_id, version, action, actor) "
        "VALUES (%s, 1, 'note', 'order-test') RETURNING id"
    )
    a = psycopg2.connect(_dsn(scratch))
    b = psycopg2.connect(_dsn(scratch))
    try:
        for conn in (a, b):
            with conn.cursor() as cur:
                cur.execute(f"SET ROLE {SERVICE_ROLE}")
        with a.cursor() as cur:
            cur.execute(insert, (lid,))
            first = cur.fetchone()
        got: list[int] = []

        def second() -> None:
            with b.cursor() as cur:
                cur.execute(insert, (lid,))
                row = cur.fetchone()
                assert row is not None
                got.append(row[0])
            b.commit()

        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.5)
        assert got == []  # waiting for the first writer's commit
        a.commit()
        t.join(timeout=10)
        assert first is not None and got and got[0] > first[0]
    finally:
        a.close()
        b.close()


def test_concurrent_writers_no_event_skipped_or_repeated(scratch: str) -> None:
    """Writers race on a live server while a reader polls the feed; the reader ends up
    with every event exactly once, in id order, and its replay equals the register."""
    settings = Settings(environment="test", database_url=scratch)
    headers = admin_headers(scratch)
    with live_server(create_app(settings), name="uvicorn-feed") as base:
        stop = threading.Event()
        polled: list[int] = []
        errors: list[str] = []

        def writer(w: int) -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
                for i in range(5):
                    body = {
                        "type": "Feature",
                        "geometry": square(64.0 + 0.2 * w, 27.5 + 0.1 * i, 0.05, 0.05),
                        "properties": {
                            "licence_type": "exploration_licence",
                            "minerals": ["Copper"],
                            "holder": f"Racer {w}",
                        },
                    }
                    r = c.post("/licences", json=body)
                    if r.status_code != 201:
                        errors.append(r.text)
                        continue
                    g = c.post(
                        f"/licences/{r.json()['id']}/transitions", json={"action": "grant", **GRANT}
                    )
                    if g.status_code != 200:
                        errors.append(g.text)

        def reader() -> None:
            since = 0
            with httpx.Client(base_url=base, timeout=30) as c:
                while not stop.is_set():
                    page = c.get("/changes", params={"since": since, "limit": 4}).json()
                    polled.extend(ch["event_id"] for ch in page["changes"])
                    since = int(page["next_cursor"])
                page = c.get("/changes", params={"since": since, "limit": 10_000}).json()
                polled.extend(ch["event_id"] for ch in page["changes"])

        writers = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
        poll = threading.Thread(target=reader)
        poll.start()
        for t in writers:
            t.start()
        for t in writers:
            t.join()
        stop.set()
        poll.join()
        assert errors == []
        with httpx.Client(base_url=base) as c:
            rebuilt, _, _ = replay(c, limit=7)
            current = {f["id"]: f for f in c.get("/opendata/licences.geojson").json()["features"]}
    engine_ids = _event_ids(scratch)
    assert len(engine_ids) == 40
    assert polled == engine_ids  # each once, in order
    assert rebuilt == current


def _event_ids(url: str) -> list[int]:
    with psycopg2.connect(_dsn(url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM licence_events ORDER BY id")
        return [r[0] for r in cur.fetchall()]
