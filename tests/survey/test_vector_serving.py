"""A survey layer is an OGC API collection and a tile source the moment it is loaded."""

from __future__ import annotations

from pathlib import Path

import mapbox_vector_tile
import morecantile
import pytest
from fastapi.testclient import TestClient

from tests.survey.test_vector_upload import ODD, samples, upload, write_gpkg


@pytest.fixture
def loaded(client: TestClient, tmp_path: Path) -> TestClient:
    r = upload(client, write_gpkg(samples(), tmp_path))
    assert r.status_code == 201, r.text
    return client


def test_the_layer_is_listed_among_the_collections(loaded: TestClient) -> None:
    ids = [c["id"] for c in loaded.get("/collections").json()["collections"]]
    assert ids[:3] == ["licences", "jurisdictions", "reserved_areas"]
    assert "rd_samples" in ids
    doc = loaded.get("/collections/rd_samples").json()
    assert doc["title"] == "Reko Diq soil samples"
    assert doc["extent"]["spatial"]["bbox"][0] == pytest.approx([62.40, 28.95, 62.55, 29.02])


def test_items_page_with_next_link(loaded: TestClient) -> None:
    page = loaded.get("/collections/rd_samples/items?limit=3").json()
    assert page["numberReturned"] == 3
    assert page["numberMatched"] == 4
    assert [f["id"] for f in page["features"]] == [1, 2, 3]
    (nxt,) = [link["href"] for link in page["links"] if link["rel"] == "next"]
    rest = loaded.get(nxt).json()
    assert [f["id"] for f in rest["features"]] == [4]
    one = loaded.get("/collections/rd_samples/items/2").json()
    assert one["properties"]["sample_id"] == "RD-002"
    assert one["geometry"] == {"type": "Point", "coordinates": [62.45, 28.97]}


def test_items_bbox(loaded: TestClient) -> None:
    page = loaded.get("/collections/rd_samples/items?bbox=62.42,28.96,62.52,29.01").json()
    assert sorted(f["properties"]["sample_id"] for f in page["features"]) == ["RD-002", "RD-003"]


def test_cql2_filter_on_typed_attributes(loaded: TestClient) -> None:
    r = loaded.get("/collections/rd_samples/items", params={"filter": "cu_ppm > 100"})
    assert r.status_code == 200, r.text
    assert sorted(f["properties"]["sample_id"] for f in r.json()["features"]) == [
        "RD-001",
        "RD-004",
    ]
    r = loaded.get(
        "/collections/rd_samples/items",
        params={"filter": "depth_m >= 5 AND collected_on < DATE('2024-01-31')"},
    )
    assert [f["properties"]["sample_id"] for f in r.json()["features"]] == ["RD-002"]
    r = loaded.get("/collections/rd_samples/items", params={"filter": f'"{ODD}" >= 0.5'})
    assert r.status_code == 200, r.text
    assert sorted(f["properties"]["sample_id"] for f in r.json()["features"]) == [
        "RD-002",
        "RD-003",
    ]


def test_unknown_property_in_filter_is_400_listing_queryables(loaded: TestClient) -> None:
    r = loaded.get("/collections/rd_samples/items", params={"filter": "gold = 1"})
    assert r.status_code == 400
    assert "unknown property 'gold'" in r.json()["detail"]
    assert "cu_ppm" in r.json()["detail"]


def test_queryables_from_the_attribute_schema(loaded: TestClient) -> None:
    props = loaded.get("/collections/rd_samples/queryables").json()["properties"]
    assert props["cu_ppm"]["type"] == "number"
    assert props["depth_m"]["type"] == "integer"
    assert props["collected_on"] == {"title": "collected_on", "type": "string", "format": "date"}
    assert props["sample_id"]["type"] == "string"
    assert props[ODD]["type"] == "number"


def test_properties_and_sortby(loaded: TestClient) -> None:
    page = loaded.get(
        "/collections/rd_samples/items", params={"properties": "sample_id", "sortby": "-cu_ppm"}
    ).json()
    assert [f["properties"] for f in page["features"]] == [
        {"sample_id": "RD-004"},
        {"sample_id": "RD-001"},
        {"sample_id": "RD-002"},
        {"sample_id": "RD-003"},  # null last
    ]


def test_items_in_utm(loaded: TestClient) -> None:
    r = loaded.get("/collections/rd_samples/items/1", params={"crs": "EPSG:32641"})
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/32641>"
    x, y = r.json()["geometry"]["coordinates"]
    assert 300_000 < x < 900_000 and 3_000_000 < y < 3_300_000


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    t = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, z)
    return t.z, t.x, t.y


def test_mvt_tile_carries_the_attributes(loaded: TestClient) -> None:
    z, x, y = _tile_of(62.40, 28.95, 12)
    r = loaded.get(f"/tiles/rd_samples/{z}/{x}/{y}.mvt")
    assert r.status_code == 200, r.text
    layer = mapbox_vector_tile.decode(r.content)["rd_samples"]
    (feature,) = layer["features"]
    props = feature["properties"]
    assert props["sample_id"] == "RD-001"
    assert props["cu_ppm"] == pytest.approx(1250.5)
    assert props["depth_m"] == 2
    assert props["collected_on"] == "2024-01-05"
    assert props[ODD] == pytest.approx(0.12)
    assert feature["id"] == 1


def test_low_zoom_mvt_holds_every_sample(loaded: TestClient) -> None:
    z, x, y = _tile_of(62.5, 29.0, 5)
    layer = mapbox_vector_tile.decode(loaded.get(f"/tiles/rd_samples/{z}/{x}/{y}.mvt").content)
    ids = sorted(f["properties"]["sample_id"] for f in layer["rd_samples"]["features"])
    assert ids == ["RD-001", "RD-002", "RD-003", "RD-004"]


def test_tile_with_cql2_filter(loaded: TestClient) -> None:
    z, x, y = _tile_of(62.5, 29.0, 5)
    r = loaded.get(f"/tiles/rd_samples/{z}/{x}/{y}.geojson", params={"filter": "cu_ppm > 1000"})
    assert r.status_code == 200, r.text
    ids = sorted(f["properties"]["sample_id"] for f in r.json()["features"])
    assert ids == ["RD-001", "RD-004"]
    empty = loaded.get(f"/tiles/rd_samples/{z}/{x}/{y}.mvt", params={"filter": "cu_ppm > 1e9"})
    assert empty.status_code == 204


def test_empty_tile_is_204_and_unknown_layer_404(loaded: TestClient) -> None:
    z, x, y = _tile_of(74.0, 35.0, 12)
    assert loaded.get(f"/tiles/rd_samples/{z}/{x}/{y}.mvt").status_code == 204
    assert loaded.get(f"/tiles/no_such_layer/{z}/{x}/{y}.mvt").status_code == 404
    assert loaded.get("/tiles/no_such_layer/tilejson.json").status_code == 404


def test_tilejson_lists_the_attribute_fields(loaded: TestClient) -> None:
    doc = loaded.get("/tiles/rd_samples/tilejson.json").json()
    (layer,) = doc["vector_layers"]
    assert layer["id"] == "rd_samples"
    assert layer["fields"] == {
        "sample_id": "String",
        "cu_ppm": "Number",
        "depth_m": "Number",
        "collected_on": "String",
        ODD: "Number",
    }
    assert doc["bounds"] == pytest.approx([62.40, 28.95, 62.55, 29.02])
    tilesets = loaded.get("/collections/rd_samples/tiles").json()["tilesets"]
    assert tilesets[0]["dataType"] == "vector"


def test_a_deleted_layer_leaves_collections_and_tiles(loaded: TestClient) -> None:
    z, x, y = _tile_of(62.40, 28.95, 12)
    assert loaded.get(f"/tiles/rd_samples/{z}/{x}/{y}.mvt").status_code == 200
    assert loaded.delete("/survey/layers/rd_samples").status_code == 204
    assert loaded.get(f"/tiles/rd_samples/{z}/{x}/{y}.mvt").status_code == 404
    assert loaded.get("/collections/rd_samples/items").status_code == 404


def test_a_replaced_layer_is_never_served_from_the_old_cache(
    loaded: TestClient, tmp_path: Path
) -> None:
    """Tiles of a survey layer are cached like the licences'; a re-import commits a new
    generation, so the next request (even one holding the old ETag) gets the new layer."""
    t = morecantile.tms.get("WebMercatorQuad").tile(62.45, 28.97, 10)
    url = f"/tiles/rd_samples/{t.z}/{t.x}/{t.y}.mvt"

    def sample_ids(content: bytes) -> set[str]:
        layer = mapbox_vector_tile.decode(content)["rd_samples"]
        return {f["properties"]["sample_id"] for f in layer["features"]}

    first = loaded.get(url)
    assert first.status_code == 200
    before = sample_ids(first.content)
    assert "RD-002" in before
    cache = loaded.app.state.tile_cache  # type: ignore[attr-defined]
    hits = cache.hits
    assert loaded.get(url).content == first.content
    assert cache.hits == hits + 1  # it was served from the cache

    renamed = samples()
    renamed["sample_id"] = [s.replace("RD", "NEW") for s in renamed["sample_id"]]
    folder = tmp_path / "again"
    folder.mkdir()
    r = upload(loaded, write_gpkg(renamed, folder), replace=True)
    assert r.status_code == 201, r.text

    again = loaded.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 200
    assert again.headers["etag"] != first.headers["etag"]
    assert sample_ids(again.content) == {s.replace("RD", "NEW") for s in before}
    items = loaded.get("/collections/rd_samples/items/2").json()
    assert items["properties"]["sample_id"] == "NEW-002"
