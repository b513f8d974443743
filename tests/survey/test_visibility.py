"""Survey layers not marked public exist only for signed-in callers.

Two vector layers and two rasters, one of each public: an anonymous caller sees
the public ones everywhere and gets 404 (or absence) for the others, on every
surface; a geologist sees both. The signed-in caller asks first, so a restricted
answer sits in the service's caches (tiles, raster layers, extents) before the
anonymous caller asks for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import morecantile
import pyproj
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from cadastre.settings import Settings
from cadastre.survey.raster import import_raster
from tests.conftest import SavepointDatabase
from tests.live import ADMIN
from tests.raster.conftest import CRS, X0, Y1, meta, write_raster
from tests.survey.test_vector_upload import FIELDS, samples, write_gpkg

TMS = morecantile.tms.get("WebMercatorQuad")
VECTOR_TILE = TMS.tile(62.45, 28.97, 10)  # holds the sample points
GRID_LL = pyproj.Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(
    X0 + 5_000, Y1 - 5_000
)
RASTER_TILE = TMS.tile(GRID_LL[0], GRID_LL[1], 12)
SQUARE = {  # a lon/lat square around GRID_LL, inside the test grid
    "type": "Polygon",
    "coordinates": [
        [
            [GRID_LL[0] - 0.01, GRID_LL[1] - 0.01],
            [GRID_LL[0] + 0.01, GRID_LL[1] - 0.01],
            [GRID_LL[0] + 0.01, GRID_LL[1] + 0.01],
            [GRID_LL[0] - 0.01, GRID_LL[1] + 0.01],
            [GRID_LL[0] - 0.01, GRID_LL[1] - 0.01],
        ]
    ],
}
OPEN, CLOSED = ("open_samples", "open_grid"), ("closed_samples", "closed_grid")


@pytest.fixture
def svc(settings: Settings, db: SavepointDatabase, tmp_path: Path) -> Iterator[TestClient]:
    """The service with the four layers; its client sends no credentials by itself."""
    folder = tmp_path / "rasters"
    grid = write_raster(tmp_path / "grid.tif")
    for slug, public in (("open_grid", True), ("closed_grid", False)):
        import_raster(db, folder, grid, meta(slug, public=public), actor="tests")
    app = create_app(settings.model_copy(update={"raster_dir": folder}), db=db)
    with TestClient(app) as c:
        path = write_gpkg(samples(), tmp_path)
        for slug, public in (("open_samples", True), ("closed_samples", False)):
            with path.open("rb") as fh:
                r = c.post(
                    "/survey/layers",
                    data={**FIELDS, "slug": slug, "name": f"Layer {slug}", "public": str(public)},
                    files={"file": (path.name, fh)},
                    headers=ADMIN,
                )
            assert r.status_code == 201, r.text
            assert r.json()["public"] is public
        yield c


@pytest.fixture
def geo(credentials: Callable[..., dict[str, str]]) -> dict[str, str]:
    return credentials("geologist")


def vector_urls(slug: str) -> list[str]:
    z, x, y = VECTOR_TILE.z, VECTOR_TILE.x, VECTOR_TILE.y
    return [
        f"/survey/layers/{slug}",
        f"/collections/{slug}",
        f"/collections/{slug}/queryables",
        f"/collections/{slug}/items",
        f"/collections/{slug}/items/1",
        f"/tiles/{slug}/{z}/{x}/{y}.mvt",
        f"/tiles/{slug}/{z}/{x}/{y}.geojson",
        f"/tiles/{slug}/{z}/{x}/{y}.mvt?filter=depth_m%3E1",
        f"/tiles/{slug}/tilejson.json",
        f"/collections/{slug}/tiles",
        f"/collections/{slug}/tiles/WebMercatorQuad",
        f"/collections/{slug}/tiles/WebMercatorQuad/{z}/{y}/{x}",
    ]


def raster_urls(slug: str) -> list[str]:
    z, x, y = RASTER_TILE.z, RASTER_TILE.x, RASTER_TILE.y
    return [
        f"/rasters/{slug}",
        f"/rasters/{slug}/tiles/{z}/{x}/{y}.png",
        f"/rasters/{slug}/tiles/{z}/{x}/{y}.webp?colormap=viridis",
        f"/rasters/{slug}/point?lon={GRID_LL[0]}&lat={GRID_LL[1]}",
    ]


def posts(slug: str) -> list[str]:
    return [f"/rasters/{slug}/statistics", f"/rasters/{slug}/clip"]


def test_a_geologist_reads_both_and_the_public_only_the_public_layer(
    svc: TestClient, geo: dict[str, str]
) -> None:
    vector_open, raster_open = OPEN
    vector_closed, raster_closed = CLOSED
    # The geologist first: restricted answers are then in the caches.
    for slug in (vector_closed, vector_open):
        for url in vector_urls(slug):
            assert svc.get(url, headers=geo).status_code == 200, url
    for slug in (raster_closed, raster_open):
        for url in raster_urls(slug):
            assert svc.get(url, headers=geo).status_code == 200, url
        for url in posts(slug):
            assert svc.post(url, json=SQUARE, headers=geo).status_code == 200, url
    for url in vector_urls(vector_closed) + raster_urls(raster_closed):
        r = svc.get(url)
        assert r.status_code == 404, url
        assert "closed" in r.json()["detail"], r.json()  # "no ... 'closed_...'", as for none
    for url in posts(raster_closed):
        assert svc.post(url, json=SQUARE).status_code == 404, url
    for url in vector_urls(vector_open) + raster_urls(raster_open):
        assert svc.get(url).status_code == 200, url
    for url in posts(raster_open):
        assert svc.post(url, json=SQUARE).status_code == 200, url


def test_a_restricted_layer_answers_like_one_that_does_not_exist(svc: TestClient) -> None:
    for url in (
        "/survey/layers/{}",
        "/collections/{}/items",
        "/tiles/{}/10/5/5.mvt",
        "/rasters/{}/point?lon=62&lat=29",
    ):
        slug = "closed_grid" if url.startswith("/rasters") else "closed_samples"
        closed, missing = svc.get(url.format(slug)), svc.get(url.format("no_such"))
        assert closed.status_code == missing.status_code == 404, url
        assert closed.json() == {
            **missing.json(),
            "detail": missing.json()["detail"].replace("no_such", slug),
        }


def _slugs(svc: TestClient, url: str, key: str, headers: dict[str, str] | None = None) -> set[str]:
    r = svc.get(url, headers=headers or {})
    assert r.status_code == 200, r.text
    return {e.get("slug") or e.get("id") for e in r.json()[key]}


def test_catalogues_list_what_the_caller_may_read(svc: TestClient, geo: dict[str, str]) -> None:
    assert _slugs(svc, "/survey/layers", "layers", geo) == {*OPEN, *CLOSED}
    assert _slugs(svc, "/survey/layers", "layers") == set(OPEN)
    assert _slugs(svc, "/rasters", "rasters", geo) == {"open_grid", "closed_grid"}
    assert _slugs(svc, "/rasters", "rasters") == {"open_grid"}
    builtin = {"licences", "jurisdictions", "reserved_areas"}
    assert _slugs(svc, "/collections", "collections", geo) == {
        *builtin,
        "open_samples",
        "closed_samples",
    }
    assert _slugs(svc, "/collections", "collections") == {*builtin, "open_samples"}
    entries = {
        e["slug"]: e["public"] for e in svc.get("/survey/layers", headers=geo).json()["layers"]
    }
    assert entries == {"open_samples": True, "closed_samples": False} | {
        "open_grid": True,
        "closed_grid": False,
    }
    assert svc.get("/rasters/closed_grid", headers=geo).json()["public"] is False


def test_every_signed_in_role_reads_restricted_layers(
    svc: TestClient, credentials: Callable[..., dict[str, str]]
) -> None:
    for headers in (credentials("officer", "PK-BA"), credentials("admin")):
        assert svc.get("/collections/closed_samples/items", headers=headers).status_code == 200
        assert svc.get("/rasters/closed_grid", headers=headers).status_code == 200


def test_the_public_view_has_its_own_validators(svc: TestClient, geo: dict[str, str]) -> None:
    """A validator the geologist holds never makes the public's answer a 304."""
    signed = svc.get("/collections", headers=geo)
    public = svc.get("/collections", headers={"If-None-Match": signed.headers["etag"]})
    assert public.status_code == 200
    assert "closed_samples" not in {c["id"] for c in public.json()["collections"]}


def test_the_aoi_report_summarises_the_layers_the_caller_may_read(
    svc: TestClient, geo: dict[str, str]
) -> None:
    area = {"bbox": [62.3, 28.9, 62.6, 29.1]}

    def survey(headers: dict[str, str] | None, body: dict[str, Any]) -> tuple[set[str], set[str]]:
        r = svc.post("/aoi/report", json=body, headers=headers or {})
        assert r.status_code == 200, r.text
        part = r.json()["survey"]
        return {v["slug"] for v in part["vector"]}, {v["slug"] for v in part["raster"]}

    assert survey(geo, area)[0] == {"open_samples", "closed_samples"}
    assert survey(None, area)[0] == {"open_samples"}
    assert survey(geo, SQUARE)[1] == {"open_grid", "closed_grid"}
    assert survey(None, SQUARE)[1] == {"open_grid"}
    page = svc.post("/aoi/report?f=html", json=area).text
    assert "Layer open_samples" in page
    assert "Layer closed_samples" not in page


def test_patch_makes_a_layer_public_and_restricted_again(
    svc: TestClient, geo: dict[str, str], credentials: Callable[..., dict[str, str]]
) -> None:
    z, x, y = VECTOR_TILE.z, VECTOR_TILE.x, VECTOR_TILE.y
    tile = f"/tiles/closed_samples/{z}/{x}/{y}.mvt"
    assert svc.patch("/survey/layers/closed_samples", json={"public": True}).status_code == 401
    officer = credentials("officer", "PK-BA")
    r = svc.patch("/survey/layers/closed_samples", json={"public": True}, headers=officer)
    assert r.status_code == 403
    assert svc.get(tile).status_code == 404
    r = svc.patch("/survey/layers/closed_samples", json={"public": True}, headers=geo)
    assert r.status_code == 200, r.text
    assert r.json()["public"] is True
    assert svc.get(tile).status_code == 200  # made for the public view, now cached
    assert svc.get("/survey/layers/closed_samples").json()["public"] is True
    r = svc.patch("/survey/layers/closed_grid", json={"public": True}, headers=geo)
    assert r.status_code == 200, r.text
    assert svc.get(raster_urls("closed_grid")[1]).status_code == 200
    # Restricted again: the cached public tile and raster layer are not served.
    for slug in ("closed_samples", "closed_grid"):
        r = svc.patch(f"/survey/layers/{slug}", json={"public": False}, headers=geo)
        assert r.status_code == 200 and r.json()["public"] is False
    assert svc.get(tile).status_code == 404
    assert svc.get(raster_urls("closed_grid")[1]).status_code == 404
    assert svc.get(tile, headers=geo).status_code == 200
    bad = svc.patch("/survey/layers/closed_samples", json={"public": "maybe"}, headers=geo)
    assert bad.status_code == 422
    missing = svc.patch("/survey/layers/no_such", json={"public": True}, headers=geo)
    assert missing.status_code == 404
