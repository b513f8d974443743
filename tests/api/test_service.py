"""Health, readiness, request ids, structured logs and Prometheus metrics."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text

from api.app import create_app
from cadastre import logs
from cadastre.db.engine import Database, make_engine
from cadastre.db.migrate import heads
from cadastre.settings import Settings
from tests.live import ADMIN

#: A database that is not there: a socket directory that does not exist.
NOWHERE = "postgresql+psycopg2://postgres@/cadastre?host=/nonexistent-cadastre-socket&port=1"


@pytest.fixture
def unreachable() -> Iterator[TestClient]:
    """The service over a database that cannot be reached."""
    db = Database(make_engine(NOWHERE))
    settings = Settings(environment="test", database_url=NOWHERE, listen_generation=False)
    with TestClient(create_app(settings, db=db), headers=ADMIN) as c:
        yield c
    db.dispose()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Logs configured as the service configures them, into a buffer; restored after."""
    root = logging.getLogger()
    level = root.level
    out = io.StringIO()
    logs.configure("json", "INFO", stream=out)
    try:
        yield out
    finally:
        logs.shutdown()
        root.setLevel(level)


def lines(out: io.StringIO) -> list[dict[str, object]]:
    logs.shutdown()  # writes out everything queued
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def test_health_answers_without_the_database(unreachable: TestClient) -> None:
    r = unreachable.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_ready_when_the_database_answers_at_head(client: TestClient) -> None:
    r = client.get("/ready")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "database": "ok", "migrations": "ok"}


def test_not_ready_names_an_unreachable_database(unreachable: TestClient) -> None:
    r = unreachable.get("/ready")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    assert r.json()["database"] == "unreachable"


def test_not_ready_names_migrations_behind_head(client: TestClient, conn: Connection) -> None:
    conn.execute(text("SET LOCAL ROLE NONE"))  # the service role may not change it
    conn.execute(text("UPDATE alembic_version SET version_num = '0001_older'"))
    r = client.get("/ready")
    assert r.status_code == 503
    body = r.json()
    assert body["database"] == "ok"
    assert "0001_older" in body["migrations"]
    assert all(head in body["migrations"] for head in heads())


def test_a_valid_request_id_is_returned_as_given(client: TestClient) -> None:
    r = client.get("/health", headers={"X-Request-ID": "lb-7f3a.2024:01_x"})
    assert r.headers["x-request-id"] == "lb-7f3a.2024:01_x"


@pytest.mark.parametrize("given", ["has space", "x" * 65, "semi;colon", "<script>", "ünï"])
def test_an_unsafe_request_id_is_replaced(client: TestClient, given: str) -> None:
    r = client.get("/health", headers={"X-Request-ID": given.encode()})
    assert r.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


def test_each_request_gets_its_own_id(client: TestClient) -> None:
    ids = {client.get("/health").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3


def test_every_log_line_of_a_request_carries_its_id(
    unreachable: TestClient, log_lines: io.StringIO
) -> None:
    unreachable.get("/ready", headers={"X-Request-ID": "ready-1"})  # logs from a worker thread
    unreachable.get("/licences/1", headers={"X-Request-ID": "read-2"})  # logs from the handler
    got = lines(log_lines)
    by_id: dict[object, list[dict[str, object]]] = {}
    for line in got:
        by_id.setdefault(line.get("request_id"), []).append(line)
    ready, read = by_id["ready-1"], by_id["read-2"]
    assert any(x["level"] == "WARNING" and "not ready" in str(x["message"]) for x in ready)
    assert any(x["level"] == "ERROR" and "unavailable" in str(x["message"]) for x in read)
    access = [x for x in got if x["logger"] == "cadastre.access"]
    assert {(x["request_id"], x["method"], x["path"], x["status"]) for x in access} == {
        ("ready-1", "GET", "/ready", 503),
        ("read-2", "GET", "/licences/1", 503),
    }
    assert all(isinstance(x["duration_ms"], float) for x in access)


def test_plain_logs_are_one_readable_line(client: TestClient) -> None:
    out = io.StringIO()
    level = logging.getLogger().level
    logs.configure("plain", "INFO", stream=out)
    try:
        client.get("/health", headers={"X-Request-ID": "plain-1"})
    finally:
        logs.shutdown()
        logging.getLogger().setLevel(level)
    [line] = [x for x in out.getvalue().splitlines() if "cadastre.access" in x]
    assert re.search(r"INFO cadastre\.access \[plain-1\] GET /health 200 [\d.]+ ms$", line)


def _samples(body: str, name: str) -> dict[str, float]:
    found = {}
    for line in body.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            found[key] = float(value)
    return found


def test_metrics_count_requests_by_route_template_and_status(client: TestClient) -> None:
    for _ in range(2):
        assert client.get("/tiles/licences/7/87/53.mvt").status_code == 204
    client.get("/licences/999999999")
    client.get("/no/such/path/12345")
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    body = r.text
    counts = _samples(body, "cadastre_http_requests_total")
    tile = 'method="GET",route="/tiles/{collection}/{z}/{x}/{y}.mvt",status="204"'
    assert counts[f"cadastre_http_requests_total{{{tile}}}"] == 2
    assert 'route="/licences/{licence_id}",status="404"' in body
    assert 'route="unmatched",status="404"' in body
    assert "/no/such/path" not in body and "999999999" not in body
    latency = _samples(body, "cadastre_http_request_duration_seconds_count")
    assert latency[f"cadastre_http_request_duration_seconds_count{{{tile}}}"] == 2


def test_metrics_show_the_tile_cache_and_the_pools(client: TestClient) -> None:
    client.get("/tiles/licences/7/88/53.mvt")  # a miss
    client.get("/tiles/licences/7/88/53.mvt")  # a hit
    body = client.get("/metrics").text
    assert _samples(body, "cadastre_tile_cache_hits_total")["cadastre_tile_cache_hits_total"] >= 1
    misses = _samples(body, "cadastre_tile_cache_misses_total")
    assert misses["cadastre_tile_cache_misses_total"] >= 1
    for pool in ("primary", "reader"):
        assert f'cadastre_db_pool_size{{pool="{pool}"}}' in body
        assert f'cadastre_db_pool_checked_out{{pool="{pool}"}}' in body
