"""Vector tiles: XYZ MVT and GeoJSON tiles, TileJSON, and the OGC API - Tiles route."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from api.caching import TileCache, etag_for, not_modified, tag
from api.deps import DbDep
from cadastre.db import generation, tiles
from cadastre.db.features import extent, get_collection

router = APIRouter(tags=["tiles"])

MVT = "application/vnd.mapbox-vector-tile"
EMPTY = (
    "An empty tile is answered 204 No Content, for both formats (map libraries treat it as "
    "an empty tile). Every tile carries a strong ETag; a matching If-None-Match gets 304."
)


def _tile(
    request: Request, db: Any, collection: str, z: int, x: int, y: int, kind: str
) -> Response:
    """A tile through the validators and the cache: 304, cached bytes, or PostGIS."""
    media_type = MVT if kind == "mvt" else "application/geo+json"
    with db.begin() as conn:
        gen = generation.current(conn)
        etag = etag_for(request, gen)
        held = not_modified(request, etag)
        if held is not None:
            return held

        def make() -> bytes:
            body = tiles.tile(conn, collection, z, x, y, kind)
            return body if isinstance(body, bytes) else (body or "").encode()

        cache: TileCache = request.app.state.tile_cache
        body = cache.get_or_make(gen, f"{kind}/{collection}/{z}/{x}/{y}", make)
    if not body or body == b'{"type" : "FeatureCollection", "features" : []}':
        return tag(Response(status_code=204), etag)
    return tag(Response(body, media_type=media_type), etag)


@router.get(
    "/tiles/{collection}/{z}/{x}/{y}.mvt",
    summary="A Mapbox Vector Tile",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}, 204: {"description": EMPTY}},
)
def mvt_tile(collection: str, z: int, x: int, y: int, request: Request, db: DbDep) -> Response:
    """One XYZ tile (WebMercatorQuad) as MVT, made by PostGIS; each zoom holds what the docs say."""
    return _tile(request, db, collection, z, x, y, "mvt")


@router.get(
    "/tiles/{collection}/{z}/{x}/{y}.geojson",
    summary="A GeoJSON tile",
    response_class=Response,
    responses={200: {"content": {"application/geo+json": {}}}, 204: {"description": EMPTY}},
)
def geojson_tile(collection: str, z: int, x: int, y: int, request: Request, db: DbDep) -> Response:
    """One XYZ tile as GeoJSON: clipped to the tile plus a small buffer, simplified, lon/lat."""
    return _tile(request, db, collection, z, x, y, "geojson")


def _tilejson(request: Request, collection: str, db: Any) -> dict[str, Any]:
    lay = tiles.layer(collection)
    c = get_collection(collection)
    with db.begin() as conn:
        box = extent(conn, c)
    base = str(request.base_url).rstrip("/")
    bounds = list(box) if box else [60.5, 23.3, 78.0, 37.3]
    return {
        "tilejson": "3.0.0",
        "name": c.title,
        "description": c.description,
        "scheme": "xyz",
        "tiles": [f"{base}/tiles/{collection}/{{z}}/{{x}}/{{y}}.mvt"],
        "minzoom": 0,
        "maxzoom": tiles.MAX_ZOOM,
        "bounds": bounds,
        "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, 5],
        "vector_layers": [
            {
                "id": lay.id,
                "description": "Attributes from zoom 8; below it only "
                + ", ".join(lay.low_zoom_attributes),
                "minzoom": 0,
                "maxzoom": tiles.MAX_ZOOM,
                "fields": {a: "String" for a in lay.attributes},
            }
        ],
    }


@router.get("/tiles/{collection}/tilejson.json", summary="TileJSON 3.0 of a tile source")
def tilejson(collection: str, request: Request, db: DbDep) -> dict[str, Any]:
    """TileJSON for map libraries (MapLibre, Leaflet plugins, QGIS)."""
    return _tilejson(request, collection, db)


@router.get("/collections/{collectionId}/tiles", summary="Tilesets of a collection")
def tilesets(collectionId: str, request: Request) -> dict[str, Any]:
    """The collection's tileset list (OGC API - Tiles): WebMercatorQuad vector tiles."""
    tiles.layer(collectionId)
    base = str(request.base_url).rstrip("/")
    href = f"{base}/collections/{collectionId}/tiles/WebMercatorQuad"
    return {
        "tilesets": [
            {
                "title": f"{collectionId} (WebMercatorQuad)",
                "dataType": "vector",
                "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
                "tileMatrixSetURI": "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad",
                "links": [
                    {"href": href, "rel": "self", "type": "application/json"},
                    {
                        "href": f"{href}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}",
                        "rel": "item",
                        "type": MVT,
                        "templated": True,
                    },
                ],
            }
        ]
    }


@router.get(
    "/collections/{collectionId}/tiles/WebMercatorQuad",
    summary="Tileset metadata (OGC API - Tiles)",
)
def tileset(collectionId: str, request: Request) -> dict[str, Any]:
    """The WebMercatorQuad vector tileset of a collection."""
    (ts,) = tilesets(collectionId, request)["tilesets"]
    return {**ts, "tileMatrixSetLimits": []}


@router.get(
    "/collections/{collectionId}/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}",
    summary="A tile (OGC API - Tiles)",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}, 204: {"description": EMPTY}},
)
def ogc_tile(
    collectionId: str,
    tileMatrix: int,
    tileRow: int,
    tileCol: int,
    request: Request,
    db: DbDep,
) -> Response:
    """The same tile as `/tiles/{collection}/{z}/{x}/{y}.mvt` (row = y, column = x)."""
    return _tile(request, db, collectionId, tileMatrix, tileCol, tileRow, "mvt")
