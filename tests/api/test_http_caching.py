"""ETags, 304s, gzip, and a tile cache that no committed change can outlive."""

from __future__ import annotations

from typing import Any

import mapbox_vector_tile
import morecantile
import pytest
from fastapi.testclient import TestClient

WMQ = morecantile.tms.get("WebMercatorQuad")
SQUARE = [[66.0, 28.0], [66.05, 28.0], [66.05, 28.05], [66.0, 28.05], [66.0, 28.0]]


def application(client: TestClient) -> int:
    body = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [SQUARE]},
        "properties": {
            "licence_type": "exploration_licence",
            "minerals": ["Copper"],
            "holder": "Cache Co",
        },
    }
    r = client.post("/licences", json=body)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def tile_url(z: int = 12) -> str:
    t = WMQ.tile(66.025, 28.025, z)
    return f"/tiles/licences/{t.z}/{t.x}/{t.y}.mvt"


def grant(client: TestClient, lid: int) -> None:
    r = client.post(
        f"/licences/{lid}/transitions",
        json={"action": "grant", "granted_on": "2024-01-01", "expires_on": "2027-01-01"},
    )
    assert r.status_code == 200, r.text


def statuses(content: bytes) -> list[Any]:
    layer = mapbox_vector_tile.decode(content)["licences"]
    return [f["properties"]["status"] for f in layer["features"]]


@pytest.mark.parametrize(
    "url",
    [
        "/licences?limit=5",
        "/collections/licences/items?limit=5",
        "/collections/jurisdictions/items/PK-BA",
        "/tiles/jurisdictions/5/22/13.mvt",
    ],
)
def test_strong_etag_and_304(client: TestClient, anon: TestClient, url: str) -> None:
    application(client)
    first = anon.get(url)
    assert first.status_code == 200, first.text
    etag = first.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert first.headers["cache-control"] == "no-cache"
    assert "Authorization" in first.headers["vary"]
    again = anon.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag


def test_licence_etag_and_304(client: TestClient) -> None:
    lid = application(client)
    first = client.get(f"/licences/{lid}")
    again = client.get(f"/licences/{lid}", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


def test_a_committed_change_invalidates_tile_and_etag(client: TestClient) -> None:
    lid = application(client)
    url = tile_url()
    before = client.get(url)
    assert statuses(before.content) == ["applied"]
    grant(client, lid)
    stale = client.get(url, headers={"If-None-Match": before.headers["etag"]})
    assert stale.status_code == 200
    assert stale.headers["etag"] != before.headers["etag"]
    assert statuses(stale.content) == ["granted"]


def test_tile_cache_serves_repeats_and_drops_old_generations(client: TestClient) -> None:
    lid = application(client)
    cache = client.app.state.tile_cache  # type: ignore[attr-defined]
    url = tile_url()
    client.get(url)
    hits, misses = cache.hits, cache.misses
    client.get(url)
    assert (cache.hits, cache.misses) == (hits + 1, misses)
    grant(client, lid)
    client.get(url)
    assert cache.misses == misses + 1


def test_etag_differs_between_gzip_and_identity(client: TestClient) -> None:
    application(client)
    plain = client.get("/collections/licences/items", headers={"Accept-Encoding": "identity"})
    zipped = client.get("/collections/licences/items", headers={"Accept-Encoding": "gzip"})
    assert plain.headers["etag"] != zipped.headers["etag"]


def test_geojson_is_gzipped_when_asked(client: TestClient) -> None:
    application(client)
    r = client.get(
        "/collections/jurisdictions/items",
        headers={"Accept-Encoding": "gzip"},
    )
    assert r.headers["content-encoding"] == "gzip"
    assert r.json()["numberReturned"] == 7  # and it decodes to the collection


def test_cache_control_on_tiles_lets_clients_revalidate(
    anon: TestClient, client: TestClient
) -> None:
    r = anon.get("/tiles/jurisdictions/5/22/13.mvt")
    assert r.headers["cache-control"] == "no-cache"
    # A signed-in caller's answer is kept from shared caches.
    r = client.get("/tiles/jurisdictions/5/22/13.mvt")
    assert r.headers["cache-control"] == "private, no-cache"


def test_collections_carry_an_etag_and_follow_a_change(client: TestClient) -> None:
    """The collection documents are map answers too: 304 while nothing changed, and the
    licences' extent (kept per generation) moves the moment a new licence commits."""
    for url in ("/collections", "/collections/licences", "/tiles/licences/tilejson.json"):
        first = client.get(url)
        assert first.status_code == 200
        again = client.get(url, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304, url
    application(client)  # a licence at 66.0-66.05 E, 28.0-28.05 N
    doc = client.get("/collections/licences").json()
    (box,) = doc["extent"]["spatial"]["bbox"]
    assert box[0] <= 66.0 and box[2] >= 66.05 and box[1] <= 28.0 and box[3] >= 28.05
    tj = client.get("/tiles/licences/tilejson.json")
    assert tj.headers["cache-control"] == "private, no-cache"  # signed in
    w, s_, e, n = tj.json()["bounds"]
    assert w <= 66.0 and e >= 66.05 and s_ <= 28.0 and n >= 28.05
