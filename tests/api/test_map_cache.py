"""The tile cache across processes, compression per coding, and prepared tile statements.

The cross-process tests run the service under uvicorn on a database of their
own (``scratch_database``) and commit changes from a separate connection, as
the CLI or a second server would: the service must learn of them by
``LISTEN``/``NOTIFY``, without asking the database on a cache hit.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from typing import Any

import brotli
import httpx
import mapbox_vector_tile
import morecantile
import pytest
import zstandard
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, event, text

from api.app import create_app
from cadastre.db.cluster import LocalCluster
from cadastre.db.engine import Database, make_engine
from cadastre.db.licences import Candidate, Holder, Shape, register_licences
from cadastre.domain.geometry import intake
from cadastre.rules import RuleBook
from cadastre.settings import Settings
from tests.live import live_server, scratch_database

WMQ = morecantile.tms.get("WebMercatorQuad")
SQUARE = [[66.0, 28.0], [66.05, 28.0], [66.05, 28.05], [66.0, 28.05], [66.0, 28.0]]
TILE = WMQ.tile(66.025, 28.025, 12)
TILE_URL = f"/tiles/licences/{TILE.z}/{TILE.x}/{TILE.y}.mvt"
DECODE: dict[str, Any] = {
    "zstd": lambda b: zstandard.ZstdDecompressor().decompress(b),
    "br": brotli.decompress,
    "gzip": gzip.decompress,
    "identity": lambda b: b,
}


def candidate(ring: list[list[float]], name: str, no: str) -> Candidate:
    return Candidate(
        licence_type="exploration_licence",
        minerals=["Copper"],
        holder=Holder(name=name),
        shape=Shape.from_intake(intake({"type": "Polygon", "coordinates": [ring]}, None)),
        province="PK-BA",
        licence_no=no,
        status="applied",
    )


def holders(content: bytes) -> list[str]:
    layer = mapbox_vector_tile.decode(content).get("licences", {"features": []})
    return sorted(f["properties"]["holder"] for f in layer["features"])


def raw_get(client: TestClient, url: str, coding: str) -> tuple[httpx.Headers, bytes, int]:
    """The answer as sent: headers, undecoded body and status."""
    with client.stream("GET", url, headers={"Accept-Encoding": coding}) as r:
        return r.headers, b"".join(r.iter_raw()), r.status_code


# ------------------------------------------------------------------ codings


@pytest.fixture
def one_licence(conn: Connection, rules: RuleBook) -> int:
    result = register_licences(
        conn, [candidate(SQUARE, "Cache Co", "CACHE-BA-1")], rules=rules, actor="test"
    )
    return result.created[0]


@pytest.mark.parametrize(
    "url",
    [
        TILE_URL,
        f"/tiles/licences/{TILE.z}/{TILE.x}/{TILE.y}.geojson",
        "/collections/jurisdictions/items?limit=2",
    ],
)
def test_each_coding_decodes_to_the_same_answer(
    client: TestClient, one_licence: int, url: str
) -> None:
    _, plain, status = raw_get(client, url, "identity")
    assert status == 200
    etags = set()
    for coding in ("zstd", "br", "gzip"):
        headers, body, status = raw_get(client, url, coding)
        assert status == 200
        assert headers["content-encoding"] == coding
        assert headers["vary"].lower() == "accept-encoding, authorization, x-api-key"
        decoded = DECODE[coding](body)
        if "/items" in url:  # the page's timestamp differs between two answers
            assert decoded.split(b'"timeStamp"')[0] == plain.split(b'"timeStamp"')[0]
        else:
            assert decoded == plain
        etags.add(headers["etag"])
        # each coding revalidates in its own coding
        again = client.get(
            url, headers={"Accept-Encoding": coding, "If-None-Match": headers["etag"]}
        )
        assert again.status_code == 304
    assert len(etags) == 3


def test_the_client_preference_order_is_zstd_br_gzip(client: TestClient, one_licence: int) -> None:
    for accept, want in (
        ("gzip, br, zstd", "zstd"),
        ("gzip, br", "br"),
        ("gzip;q=1, br;q=0", "gzip"),
        ("identity", None),
    ):
        headers, _, _ = raw_get(client, TILE_URL, accept)
        assert headers.get("content-encoding") == want, accept


def test_an_empty_tile_is_204_in_every_coding(client: TestClient) -> None:
    far = WMQ.tile(-100.0, 40.0, 9)
    for coding in DECODE:
        headers, body, status = raw_get(client, f"/tiles/licences/9/{far.x}/{far.y}.mvt", coding)
        assert (status, body) == (204, b"")
        assert "content-encoding" not in headers


# ------------------------------------------------------------------ prepared statements


def test_unfiltered_tiles_are_prepared_once_per_connection(
    client: TestClient, conn: Connection, one_licence: int
) -> None:
    def prepared() -> set[str]:
        rows = conn.execute(
            text("SELECT name FROM pg_prepared_statements WHERE name LIKE 'cadastre_tile_%'")
        )
        return {r[0] for r in rows}

    assert client.get(TILE_URL).status_code == 200
    after_first = prepared()
    rows = conn.execute(
        text(
            "SELECT statement, parameter_types::text FROM pg_prepared_statements "
            "WHERE name = ANY(:n)"
        ),
        {"n": list(after_first)},
    ).all()
    # zoom 12's licence statement: full geometry, the tile address as its three parameters
    (full,) = [r for r in rows if "ST_Transform(l.geom, 3857)" in r[0] and "ST_AsMVT" in r[0]]
    assert "$1" in full[0] and "$3" in full[0]
    assert full[1] == "{integer,integer,integer}"
    # another tile of the same band reuses it; a filtered one is planned for its values
    other = WMQ.tile(66.1, 28.1, 13)
    assert client.get(f"/tiles/licences/13/{other.x}/{other.y}.mvt").status_code in (200, 204)
    assert client.get(f"{TILE_URL}?status=applied").status_code == 200
    assert prepared() == after_first


# ------------------------------------------------------------------ across processes


@pytest.fixture
def live(cluster: LocalCluster) -> Iterator[tuple[str, Engine, Any]]:
    """The service under uvicorn on a scratch database; an engine of another 'process'."""
    with scratch_database(cluster, "cache") as url:
        db = Database(make_engine(url, pool_size=4))
        app = create_app(Settings(environment="test", database_url=url), db=db)
        # Another process, as the owner: it may terminate the listener's backend.
        other = make_engine(url, pool_size=1, role=None)
        try:
            with live_server(app, "cache-test") as base:
                assert db.generation.wait_live(10), "the generation listener did not connect"
                yield base, other, app
        finally:
            other.dispose()
            db.dispose()


def commit_elsewhere(engine: Engine, rules: RuleBook, ring: list[list[float]], name: str) -> int:
    with engine.begin() as c:
        result = register_licences(
            c, [candidate(ring, name, f"X-{name}")], rules=rules, actor="another process"
        )
        return result.created[0]


def wait_for(predicate: Any, timeout: float = 5.0) -> float:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.005)
    return time.monotonic() - start


def test_a_commit_by_another_process_reaches_the_cache(
    live: tuple[str, Engine, Any], rules: RuleBook
) -> None:
    base, other, app = live
    db: Database = app.state.db
    commit_elsewhere(other, rules, SQUARE, "First Co")
    with httpx.Client(base_url=base) as http:
        wait_for(lambda: holders(http.get(TILE_URL).content) == ["First Co"])
        etag = http.get(TILE_URL).headers["etag"]

        # a cache hit asks nothing of the database
        checkouts: list[int] = []

        def count(*_: Any) -> None:
            checkouts.append(1)

        event.listen(db.engine, "checkout", count)
        try:
            hits = app.state.tile_cache.hits
            assert http.get(TILE_URL).status_code == 200
            assert http.get(TILE_URL, headers={"If-None-Match": etag}).status_code == 304
            assert app.state.tile_cache.hits == hits + 1
            assert checkouts == []
        finally:
            event.remove(db.engine, "checkout", count)

        before = db.generation.known()
        assert before is not None
        inner = [[66.01, 28.01], [66.02, 28.01], [66.02, 28.02], [66.01, 28.02], [66.01, 28.01]]
        commit_elsewhere(other, rules, inner, "Second Co")
        # the notification arrives within moments of the commit, and the next answer
        # is the new tile: never the cached one
        waited = wait_for(lambda: (db.generation.known() or 0) > before, timeout=2.0)
        assert waited < 2.0
        fresh = http.get(TILE_URL, headers={"If-None-Match": etag})
        assert fresh.status_code == 200
        assert holders(fresh.content) == ["First Co", "Second Co"]


def test_the_listener_reconnects_and_no_stale_tile_is_served_meanwhile(
    live: tuple[str, Engine, Any], rules: RuleBook
) -> None:
    base, other, app = live
    db: Database = app.state.db
    commit_elsewhere(other, rules, SQUARE, "First Co")
    with httpx.Client(base_url=base) as http:
        wait_for(lambda: holders(http.get(TILE_URL).content) == ["First Co"])
        listener = (
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'cadastre-generation-listener'"
        )
        with other.connect() as c:
            (old_pid,) = c.execute(text(listener)).scalars().all()
            assert c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": old_pid}).scalar()
        # a commit while the listener is down or coming back is still served within moments
        inner = [[66.01, 28.01], [66.02, 28.01], [66.02, 28.02], [66.01, 28.02], [66.01, 28.01]]
        commit_elsewhere(other, rules, inner, "Second Co")
        wait_for(lambda: holders(http.get(TILE_URL).content) == ["First Co", "Second Co"], 2.0)
        # it reconnects by itself, on a new backend, and follows commits again
        assert db.generation.wait_live(10)

        def new_listener() -> bool:
            with other.connect() as c:
                return c.execute(text(listener)).scalars().all() not in ([], [old_pid])

        wait_for(new_listener)
        before = db.generation.known() or 0
        inner2 = [[66.03, 28.03], [66.04, 28.03], [66.04, 28.04], [66.03, 28.04], [66.03, 28.03]]
        commit_elsewhere(other, rules, inner2, "Third Co")
        wait_for(lambda: (db.generation.known() or 0) > before, timeout=2.0)
        assert len(holders(http.get(TILE_URL).content)) == 3
