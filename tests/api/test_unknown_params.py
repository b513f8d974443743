"""A query parameter a route does not take is a 400 naming it, on every route (a misspelt
parameter must never be silently ignored)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

AOI = {"bbox": [65.0, 27.0, 65.1, 27.1]}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/licences?limt=5"),
        ("GET", "/jurisdictions?foo=1"),
        ("GET", "/licence-types?foo=1"),
        ("GET", "/reserved-areas?foo=1"),
        ("GET", "/overlaps?provnce=BA"),
        ("POST", "/aoi/report?format=html"),
        ("GET", "/survey/layers?foo=1"),
        ("GET", "/rasters?foo=1"),
        ("GET", "/tiles/licences/tilejson.json?foo=1"),
        ("GET", "/collections/licences/tiles?foo=1"),
        ("GET", "/collections/licences/tiles/WebMercatorQuad?foo=1"),
        ("GET", "/collections/licences/items?foo=1"),
        ("GET", "/tiles/licences/5/22/13.mvt?foo=1"),
    ],
)
def test_unknown_query_parameter_is_400(client: TestClient, method: str, path: str) -> None:
    r = client.request(method, path, json=AOI if method == "POST" else None)
    assert r.status_code == 400, r.text
    body = r.json()
    name = path.split("?")[1].split("=")[0]
    assert body["field"] == name
    assert repr(name) in body["detail"]


def test_declared_parameters_still_pass(client: TestClient) -> None:
    assert client.get("/licences?limit=5").status_code == 200
    assert client.post("/aoi/report?f=json", json=AOI).status_code == 200
    assert client.get("/overlaps?province=PK-BA").status_code == 200
