"""Vector tiles: XYZ MVT and GeoJSON tiles, TileJSON, and the OGC API - Tiles route."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from api.deps import DbDep
from cadastre.db import tiles
from cadastre.db.features import extent, get_collection

router = APIRouter(tags=["tiles"])

MVT = "application/vnd.mapbox-vector-tile"
EMPTY = (
    "An empty tile is answered 204 No Content, for both formats (map libraries treat it as "
    "an empty tile)."
)


def _tile_response(body: Any, media_type: str) -> Response:
    if not body or body == '{"type" : "FeatureCollection", "features" : []}':
        return Response(status_code=204)
    return Response(body, media_type=media_type)


@router.get(
    "/tiles/{collection}/{z}/{x}/{y}.mvt",
    summary="A Mapbox Vector Tile",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}, 204: {"description": EMPTY}},
)
def mvt_tile(collection: str, z: int, x: int, y: int, db: DbDep) -> Response:
    """One XYZ tile (WebMercatorQuad) as MVT, made by PostGIS; each zoom holds what the docs say."""
    with db.begin() as conn:
        body = tiles.tile(conn, collection, z, x, y, "mvt")
    return _tile_response(body, MVT)


@router.get(
    "/tiles/{collection}/{z}/{x}/{y}.geojson",
    summary="A GeoJSON tile",
    response_class=Response,
    responses={200: {"content": {"application/geo+json": {}}}, 204: {"description": EMPTY}},
)
def geojson_tile(collection: str, z: int, x: int, y: int, db: DbDep) -> Response:
    """One XYZ tile as GeoJSON: clipped to the tile plus a small buffer, simplified, lon/lat."""
    with db.begin() as conn:
        body = tiles.tile(conn, collection, z, x, y, "geojson")
    return _tile_response(body, "application/geo+json")


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
    db: DbDep,
) -> Response:
    """The same tile as `/tiles/{collection}/{z}/{x}/{y}.mvt` (row = y, column = x)."""
    return mvt_tile(collectionId, tileMatrix, tileCol, tileRow, db)
