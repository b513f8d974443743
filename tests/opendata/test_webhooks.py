"""Webhooks with real receivers on 127.0.0.1: signing, retry with backoff, order, isolation."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from cadastre.db.cluster import LocalCluster
from cadastre.db.engine import Database, make_engine
from cadastre.db.webhooks import SIGNATURE_HEADER, Backoff, deliver_due
from cadastre.settings import Settings
from tests.api.test_lifecycle import KP, PB, act, apply
from tests.cli.test_import import cli
from tests.conftest import Credentials
from tests.live import admin_headers, free_port, scratch_database

SECRET = "s3cret-for-the-tests-0123456789"
GRANT = {"granted_on": "2025-01-15", "expires_on": "2028-01-14"}
FAST = Backoff(base=0.3, cap=1.0)


@dataclass
class Receiver:
    """What a receiver on 127.0.0.1 got: headers, body and the status it answered."""

    url: str
    answer: Callable[[int], int]
    delay: float = 0.0
    calls: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)

    def delivered(self) -> list[dict[str, Any]]:
        """Bodies answered 2xx, in arrival order."""
        return [json.loads(b) for _, b, status in self.calls if 200 <= status < 300]


@contextmanager
def receiver(
    answer: Callable[[int], int] = lambda n: 200, delay: float = 0.0
) -> Iterator[Receiver]:
    port = free_port()
    got = Receiver(f"http://127.0.0.1:{port}/hook", answer, delay)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(got.delay)
            status = got.answer(len(got.calls))
            got.calls.append((dict(self.headers), body, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Live:
    client: TestClient
    db: Database
    url: str


@pytest.fixture(scope="module")
def live_register(cluster: LocalCluster) -> Iterator[Live]:
    """A committed scratch register, an admin client of it and the delivery side's Database."""
    with scratch_database(cluster, "hooks") as url:
        settings = Settings(environment="test", database_url=url)
        db = Database(make_engine(url, pool_size=4))
        try:
            with TestClient(create_app(settings), headers=admin_headers(url)) as c:
                yield Live(c, db, url)
        finally:
            db.dispose()


@pytest.fixture
def live(live_register: Live) -> Iterator[Live]:
    """The module's register; each test's subscriptions end with it (they start from now)."""
    yield live_register
    with live_register.db.begin() as conn:
        conn.execute(text("UPDATE webhook_subscriptions SET disabled_at = now()"))


def subscribe(client: TestClient, url: str, since: int | None = None) -> dict[str, Any]:
    r = client.post("/webhooks", json={"url": url, "secret": SECRET, "since": since})
    assert r.status_code == 201, r.text
    assert "secret" not in r.json()
    return r.json()  # type: ignore[no-any-return]


def test_events_are_signed_and_in_feed_order(live: Live) -> None:
    c = live.client
    with receiver() as hook:
        sub = subscribe(c, hook.url)
        a = apply(c, holder="Hook A")["id"]
        b = apply(c, at=KP, holder="Hook B")["id"]
        act(c, a, "grant", **GRANT)
        apply(c, at=PB, holder="Hook Hidden", published=False)
        act(c, b, "refuse")
        assert deliver_due(live.db, backoff=FAST) == 4
        for headers, body, _ in hook.calls:
            expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert headers[SIGNATURE_HEADER] == f"sha256={expected}"
            assert json.loads(body)["event_id"] == int(headers["X-Cadastre-Event-Id"])
        got = hook.delivered()
        # Exactly the public feed after the subscription: the held-back application's
        # event is not sent.
        with TestClient(c.app) as public:
            since = sub["cursor"]
            assert got == public.get("/changes", params={"since": since}).json()["changes"]
        assert "Hook Hidden" not in json.dumps(got)
        assert [(e["licence_id"], e["action"]) for e in got] == [
            (a, "apply"),
            (b, "apply"),
            (a, "grant"),
            (b, "refuse"),
        ]
        assert deliver_due(live.db, backoff=FAST) == 0  # nothing new: nothing sent again
        assert len(hook.calls) == 4


def test_a_tampered_body_fails_the_signature(live: Live) -> None:
    with receiver() as hook:
        subscribe(live.client, hook.url)
        apply(live.client, holder="Hook Tamper")
        deliver_due(live.db, backoff=FAST)
        headers, body, _ = hook.calls[0]
        forged = body.replace(b"Hook Tamper", b"Hook Tamper Ltd")
        mac = hmac.new(SECRET.encode(), forged, hashlib.sha256).hexdigest()
        assert headers[SIGNATURE_HEADER] != f"sha256={mac}"


def test_failures_are_retried_with_backoff_in_order(live: Live) -> None:
    c = live.client
    # The first two attempts fail (500, then 503); from then on the receiver accepts.
    with receiver(lambda n: 500 if n == 0 else 503 if n == 1 else 200) as hook:
        sub = subscribe(c, hook.url)
        ids = [apply(c, at=(66.0 + 0.2 * i, 29.0), holder=f"Retry {i}")["id"] for i in range(3)]

        assert deliver_due(live.db, backoff=FAST) == 0
        state = _state(live.db, sub["id"])
        assert state["failures"] == 1 and "HTTP 500" in state["last_error"]
        assert deliver_due(live.db, backoff=FAST) == 0  # not due yet: nothing sent
        assert len(hook.calls) == 1
        first_wait = state["wait"]
        time.sleep(first_wait + 0.05)
        assert deliver_due(live.db, backoff=FAST) == 0  # 503
        state = _state(live.db, sub["id"])
        assert state["failures"] == 2
        assert state["wait"] == pytest.approx(2 * first_wait, abs=0.1)  # doubled
        time.sleep(state["wait"] + 0.05)
        assert deliver_due(live.db, backoff=FAST) == 3
        assert _state(live.db, sub["id"])["failures"] == 0
        # The failed event was sent again, and nothing overtook it.
        sent = [json.loads(b)["licence_id"] for _, b, _ in hook.calls]
        assert sent == [ids[0], ids[0], *ids]
        assert [e["licence_id"] for e in hook.delivered()] == ids


def _state(db: Database, sub_id: int) -> dict[str, Any]:
    with db.begin() as conn:
        row = conn.execute(
            text(
                "SELECT failures, last_error, cursor, "
                "extract(epoch FROM next_attempt_at - clock_timestamp())::float8 AS wait "
                "FROM webhook_subscriptions WHERE id = :id"
            ),
            {"id": sub_id},
        ).one()
    return dict(row._mapping)


def test_a_dead_subscriber_slows_neither_writes_nor_others(live: Live) -> None:
    c = live.client
    dead_url = f"http://127.0.0.1:{free_port()}/nobody-listens"
    with receiver(delay=1.5) as slow, receiver() as healthy:
        dead = subscribe(c, dead_url)
        hanging = subscribe(c, slow.url)
        subscribe(c, healthy.url)
        apply(c, holder="Isolation A")
        rounds = threading.Thread(target=deliver_due, args=(live.db,), kwargs={"backoff": FAST})
        rounds.start()
        time.sleep(0.2)  # the slow receiver is holding its delivery open now
        b = apply(c, at=KP, holder="Isolation B")["id"]
        act(c, b, "grant", **GRANT)
        # Both writes committed while the delivery to the slow subscriber still hangs.
        assert rounds.is_alive()
        rounds.join()
        assert len(healthy.delivered()) == 1  # what was there when the round began
        assert c.delete(f"/webhooks/{hanging['id']}").status_code == 204
        deliver_due(live.db, backoff=FAST)
        assert [e["licence_id"] for e in healthy.delivered()][1:] == [b, b]
        assert _state(live.db, dead["id"])["failures"] >= 1
        assert "event" in _state(live.db, dead["id"])["last_error"]


def test_subscribing_from_now_skips_the_past(live: Live) -> None:
    apply(live.client, at=PB, holder="Before Subscribing")
    with receiver() as hook:
        subscribe(live.client, hook.url)
        later = apply(live.client, at=KP, holder="After Subscribing")["id"]
        deliver_due(live.db, backoff=FAST)
        assert [e["licence_id"] for e in hook.delivered()] == [later]


def test_cli_lists_and_delivers(live: Live) -> None:
    with receiver() as hook:
        subscribe(live.client, hook.url)
        lid = apply(live.client, at=(65.5, 28.0), holder="Hook CLI")["id"]
        listed = cli(live.url, "webhooks", "list")
        assert listed.exit_code == 0, listed.output
        assert hook.url in listed.output and SECRET not in listed.output
        sent = cli(live.url, "webhooks", "deliver", "--once")
        assert sent.exit_code == 0, sent.output
        assert "1 events delivered" in sent.output
        assert [e["licence_id"] for e in hook.delivered()] == [lid]


# ------------------------------------------------------------ management (admins)


def test_only_admins_manage_webhooks(
    anon: TestClient, client: TestClient, credentials: Credentials
) -> None:
    body = {"url": "http://127.0.0.1:9/hook", "secret": SECRET}
    assert anon.post("/webhooks", json=body).status_code == 401
    officer = credentials("officer", "PK-BA")
    r = client.post("/webhooks", json=body, headers=officer)
    assert r.status_code == 403 and r.json()["where"]["rule"] == "admin_only"
    assert client.delete("/webhooks/1", headers=officer).status_code == 403
    made = client.post("/webhooks", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["url"] == body["url"] and "secret" not in made.json()
    assert client.delete(f"/webhooks/{made.json()['id']}").status_code == 204
    assert client.delete(f"/webhooks/{made.json()['id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.org/x", "secret": SECRET}, "url"),
        ({"url": "not a url", "secret": SECRET}, "url"),
        ({"url": "https://example.org/x", "secret": "short"}, "secret"),
        ({"url": "https://example.org/x", "secret": SECRET, "since": -1}, "since"),
        ({"url": "https://example.org/x"}, "secret"),
    ],
)
def test_bad_subscriptions_name_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    r = client.post("/webhooks", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
