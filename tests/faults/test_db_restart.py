"""The database restarts under load: 503 with Retry-After meanwhile, recovery without a restart
of the service, and no write half-applied.

The test owns its PostGIS (a cluster of its own in a temporary directory, so the
session's cluster keeps running), serves the app under uvicorn, and keeps six
threads busy: item pages (the primary engine, pre-ping), tiles at addresses never
asked before (the reader engine: autocommit, no pre-ping; the cache cannot answer)
and applications (POST /licences, one transaction each). Mid-run it stops the
cluster (fast shutdown: open transactions roll back), keeps it down a few
seconds, and starts it again.

Writes: each application carries a unique token in ``remarks``. A ``201`` must be
in the register exactly once with its version and its event; a ``503`` must not be
there at all. A commit's fate could only be unknown if the server committed and the
acknowledgement was lost; a fast shutdown holds off the termination of a backend
while it commits and sends the acknowledgement first, so the test admits no such
case: if one ever happened, the test fails and names the write.
"""

from __future__ import annotations

import itertools
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from api.app import create_app
from cadastre.db.cluster import LocalCluster
from cadastre.db.engine import make_engine
from cadastre.settings import Settings
from tests.live import admin_headers, free_port, live_server, prepare

DOWN_S = 3.0  # how long the database stays away
RECOVERY_S = 10.0  # every request that starts this long after the restart must succeed
SLOW_S = 5.0  # no answer may take longer (no hangs)
OK = {"items": {200}, "tiles": {200, 204}, "write": {201}}


@dataclass
class Answer:
    kind: str
    started: float
    ended: float
    status: int | str  # an HTTP status, or the client's exception name
    retry_after: str | None
    token: str | None = None


def _items(http: httpx.Client, n: int) -> tuple[httpx.Response, str | None]:
    return http.get("/collections/licences/items", params={"limit": 5}), None


def _tiles(http: httpx.Client, n: int) -> tuple[httpx.Response, str | None]:
    x, y = 2780 + n % 64, 1690 + n // 64  # z 12 over Balochistan: a new address each time
    return http.get(f"/tiles/licences/12/{x}/{y}.mvt"), None


#: The writers' sign-in (an admin's API key), made when the test's database is.
WRITER: dict[str, str] = {}


def _write(http: httpx.Client, n: int) -> tuple[httpx.Response, str | None]:
    token = f"restart-{n}"
    x, y = 66.0 + (n % 40) * 0.015, 28.5 + (n // 40) * 0.015  # Balochistan
    ring = [[x, y], [x + 0.01, y], [x + 0.01, y + 0.01], [x, y + 0.01], [x, y]]
    body = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {
            "licence_type": "exploration_licence",
            "minerals": ["Copper"],
            "holder": "Restart Test (Pvt) Ltd",
            "remarks": token,
        },
    }
    return http.post("/licences", json=body, headers=WRITER), token


KINDS: dict[str, Callable[[httpx.Client, int], tuple[httpx.Response, str | None]]] = {
    "items": _items,
    "tiles": _tiles,
    "write": _write,
}


def hammer(
    base: str, kind: str, stop: threading.Event, out: list[Answer], n: itertools.count[int]
) -> None:
    with httpx.Client(base_url=base, timeout=3 * SLOW_S) as http:
        while not stop.is_set():
            i = next(n)
            started = time.monotonic()
            token = None
            try:
                r, token = KINDS[kind](http, i)
                status: int | str = r.status_code
                retry_after = r.headers.get("retry-after")
            except httpx.HTTPError as exc:
                status, retry_after = type(exc).__name__, None
                token = f"restart-{i}" if kind == "write" else None
            out.append(Answer(kind, started, time.monotonic(), status, retry_after, token))
            stop.wait(0.02)


@pytest.fixture
def own_cluster() -> Iterator[LocalCluster]:
    root = Path(tempfile.mkdtemp(prefix="cadastre-restart-"))
    pg = LocalCluster(root, free_port(), listen="", durable=False)
    pg.start()
    try:
        prepare(pg.url())
        yield pg
    finally:
        pg.destroy()


@pytest.mark.slow
def test_the_service_rides_out_a_database_restart(own_cluster: LocalCluster) -> None:
    pg = own_cluster
    settings = Settings(environment="test", database_url=pg.url())
    WRITER.update(admin_headers(pg.url()))
    answers: list[Answer] = []
    stop = threading.Event()
    n = itertools.count()
    with live_server(create_app(settings), name="uvicorn-restart") as base:
        threads = [
            threading.Thread(target=hammer, args=(base, kind, stop, answers, n), daemon=True)
            for kind in ("items", "items", "tiles", "tiles", "write", "write")
        ]
        for t in threads:
            t.start()
        try:
            time.sleep(1.5)  # load before the outage
            stopping = time.monotonic()
            pg.stop()
            down = time.monotonic()
            time.sleep(DOWN_S)
            starting = time.monotonic()
            pg.start()
            up = time.monotonic()
            time.sleep(RECOVERY_S + 3)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=3 * SLOW_S)
        assert not any(t.is_alive() for t in threads), "a client hung"

    report = [(a.kind, round(a.started - stopping, 2), a.status) for a in answers]
    statuses = {a.status for a in answers}
    assert statuses <= {200, 201, 204, 503}, report
    assert all(a.retry_after for a in answers if a.status == 503)
    assert max(a.ended - a.started for a in answers) < SLOW_S, report

    for kind, ok in OK.items():
        mine = [a for a in answers if a.kind == kind]
        before = [a for a in mine if a.ended < stopping]
        assert before and all(a.status in ok for a in before), (kind, report)
        # While the database is away every answer is a quick 503.
        outage = [a for a in mine if a.started > down and a.ended < starting]
        assert outage, kind
        assert all(a.status == 503 and a.ended - a.started < 1.0 for a in outage), (kind, report)
        # After the restart the service answers again by itself.
        late = [a for a in mine if a.started > up + RECOVERY_S]
        assert late and all(a.status in ok for a in late), (kind, report)
        first_ok = min(a.started for a in mine if a.started > up and a.status in ok)
        print(f"{kind}: {len(outage)} answers 503 while down, ok {first_ok - up:.2f} s after start")

    written = [a for a in answers if a.kind == "write"]
    engine = make_engine(pg.url(), pool_size=1)
    try:
        with engine.connect() as c:
            rows = c.execute(
                text(
                    "SELECT l.remarks, l.version,"
                    " (SELECT count(*) FROM licence_versions v WHERE v.licence_id = l.id),"
                    " (SELECT count(*) FROM licence_events e WHERE e.licence_id = l.id)"
                    " FROM licences l WHERE l.remarks LIKE 'restart-%'"
                )
            ).all()
    finally:
        engine.dispose()
    stored = [r[0] for r in rows]
    assert len(stored) == len(set(stored))
    assert all(r[1:] == (1, 1, 1) for r in rows), rows  # a licence, its version, its event
    accepted = {a.token for a in written if a.status == 201}
    refused = {a.token for a in written if a.status == 503}
    assert accepted and refused
    assert accepted <= set(stored), accepted - set(stored)
    assert not refused & set(stored), f"answered 503 but committed: {refused & set(stored)}"
    assert set(stored) == accepted
