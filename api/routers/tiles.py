"""Vector tiles: XYZ MVT and GeoJSON tiles, TileJSON, and the OGC API - Tiles route."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.auth import WhoDep
from api.caching import (
    CACHE_CONTROL,
    Tile,
    TileCache,
    cached_extent,
    etag_for,
    not_modified,
    response_coding,
    tag,
    view_key,
)
from api.deps import DbDep, strict_query
from api.schemas import FILTER_OPENAPI_PARAMETERS, errors
from cadastre.auth import PUBLIC, Principal
from cadastre.db import cql2, generation, tiles
from cadastre.db.engine import Database
from cadastre.db.features import get_collection
from cadastre.db.filters import PARAMS as FILTER_PARAMS
from cadastre.db.filters import LicenceFilter
from cadastre.errors import BadQuery, NotFound
from cadastre.survey.vector import SLUG_RULE

router = APIRouter(tags=["tiles"])

MVT = "application/vnd.mapbox-vector-tile"
WMQ_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
EMPTY = (
    "An empty tile is answered 204 No Content, for both formats (map libraries treat it as "
    "an empty tile). Every tile carries a strong ETag; a matching If-None-Match gets 304. "
    "Tiles are compressed (zstd, brotli or gzip) when the client accepts it."
)
TILE_PARAMS = frozenset({*FILTER_PARAMS, "filter", "filter-lang", "filter-crs"})
FILTERS_DOC = (
    " Filters, the same as for items: `status`, `type`, `province`, `mineral` "
    "(comma-separated lists; licences only) and a CQL2 `filter` (`filter-lang` cql2-text or "
    "cql2-json) over the collection's queryables."
)


def _query(request: Request, collection: str) -> tuple[tiles.TileQuery, Any]:
    """The request's filters, validated; unknown parameters are refused.

    For a survey layer the CQL2 tree comes back unresolved: its queryables are in
    the catalogue, read with the tile (so a cache hit needs no database)."""
    params = request.query_params
    if not params:
        return tiles.TileQuery(), None
    for name in params:
        if name not in TILE_PARAMS:
            raise BadQuery(
                f"unknown query parameter {name!r}; tiles take {', '.join(sorted(TILE_PARAMS))}",
                field=name,
            )
    plain = LicenceFilter.from_params(params, request.app.state.rules.types)
    cql2.check_companions(params)
    if "filter" not in params:
        return tiles.TileQuery(plain=plain), None
    tree = cql2.parse(params["filter"], params.get("filter-lang", "cql2-text"))
    if collection not in tiles.LAYERS:
        return tiles.TileQuery(plain=plain, cql_key=json.dumps(tree)), tree
    return _resolve(tiles.TileQuery(plain=plain, cql_key=json.dumps(tree)), tree, collection), None


def _resolve(
    query: tiles.TileQuery, tree: Any, collection: str, conn: Any = None, who: Principal = PUBLIC
) -> tiles.TileQuery:
    """The query with its CQL2 tree turned into SQL over the collection's queryables."""
    c = get_collection(collection, conn, who)
    columns = {name: c.column(name) for name in c.queryables}
    cond = cql2.to_sql(tree, columns, c.column("geom"), dates=c.dates, kinds=c.queryables)
    return replace(query, cql=cond, collection=c)


async def _tile(
    request: Request, who: Principal, collection: str, z: int, x: int, y: int, kind: str
) -> Response:
    """A tile through the validators and the cache: 304, cached bytes, or PostGIS.

    A cache hit touches no database and no thread: the generation comes from
    the process's watch (:class:`cadastre.db.generation.Watch`). Tiles are cached
    per view (:func:`api.caching.view_key`): a survey layer that is not public is
    made, and kept, only for callers who may read it.
    """
    tiles.check_tile(z, x, y)
    if collection not in tiles.LAYERS and not SLUG_RULE.match(collection):
        tiles.layer(collection)  # not found; a survey layer is found (or not) with its tile
    query, tree = _query(request, collection)
    if collection == "licences" and who.unpublished_scope is not None:
        # Officers and admins also see applications held back from the public register.
        query = replace(query, unpublished=who.unpublished_scope)
    db: Database = request.app.state.db
    gen = db.generation.known()
    if gen is None:
        gen = await run_in_threadpool(_committed_generation, db)
    coding = response_coding(request)
    etag = etag_for(request, gen, coding)
    held = not_modified(request, etag)
    if held is not None:
        return held
    cache: TileCache = request.app.state.tile_cache
    key = (kind, collection, z, x, y, query.key(), view_key(request))
    found = cache.get(gen, key)
    if found is None:
        async with request.app.state.tile_slots:  # a few at a time: no pile-up in PostGIS
            body = await run_in_threadpool(_make, db, collection, z, x, y, kind, query, tree, who)
        found = cache.put(gen, key, Tile(body or b""))
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Vary": "Accept-Encoding"}
    if not found.body:
        return Response(status_code=204, headers=headers)
    if coding != "identity":
        headers["Content-Encoding"] = coding
    media_type = MVT if kind == "mvt" else "application/geo+json"
    return Response(found.coded(coding), media_type=media_type, headers=headers)


def _committed_generation(db: Database) -> int:
    with db.begin() as conn:
        return generation.current(conn)


def _make(
    db: Database,
    collection: str,
    z: int,
    x: int,
    y: int,
    kind: str,
    query: tiles.TileQuery,
    tree: Any = None,
    who: Principal = PUBLIC,
) -> bytes | None:
    with db.read() as conn:
        if tree is not None:
            query = _resolve(query, tree, collection, conn, who)
        return tiles.tile(conn, collection, z, x, y, kind, query, who=who)


@router.get(
    "/tiles/{collection}/{z}/{x}/{y}.mvt",
    summary="A Mapbox Vector Tile",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}, 204: {"description": EMPTY}, **errors(400, 404)},
    openapi_extra={"parameters": FILTER_OPENAPI_PARAMETERS},
)
async def mvt_tile(
    collection: str, z: int, x: int, y: int, request: Request, who: WhoDep
) -> Response:
    """One XYZ tile (WebMercatorQuad) as MVT, made by PostGIS; each zoom holds what the docs
    of the tile layers say (below zoom 9: large licences plus a `licence_density` layer)."""
    return await _tile(request, who, collection, z, x, y, "mvt")


@router.get(
    "/tiles/{collection}/{z}/{x}/{y}.geojson",
    summary="A GeoJSON tile",
    response_class=Response,
    responses={
        200: {"content": {"application/geo+json": {}}},
        204: {"description": EMPTY},
        **errors(400, 404),
    },
    openapi_extra={"parameters": FILTER_OPENAPI_PARAMETERS},
)
async def geojson_tile(
    collection: str, z: int, x: int, y: int, request: Request, who: WhoDep
) -> Response:
    """One XYZ tile as GeoJSON: clipped to the tile plus a small buffer, simplified, lon/lat.
    Below zoom 9 density cells are features with `"layer": "licence_density"`."""
    return await _tile(request, who, collection, z, x, y, "geojson")


def _tilejson(request: Request, collection: str, db: Any, who: Principal) -> Response:
    with db.begin() as conn:
        gen = db.map_generation(conn)
        lay = tiles.layer(collection, conn, who)
        c = get_collection(collection, conn, who)
        etag = etag_for(request, gen)
        held = not_modified(request, etag)
        if held is not None:
            return held
        box = cached_extent(request, conn, c, gen)
    base = str(request.base_url).rstrip("/")
    bounds = list(box) if box else [60.5, 23.3, 78.0, 37.3]
    body = {
        "tilejson": "3.0.0",
        "name": c.title,
        "description": c.description,
        "scheme": "xyz",
        "tiles": [f"{base}/tiles/{collection}/{{z}}/{{x}}/{{y}}.mvt"],
        "minzoom": 0,
        "maxzoom": tiles.MAX_ZOOM,
        "bounds": bounds,
        "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, 5],
        "vector_layers": _vector_layers(lay),
    }
    return tag(JSONResponse(body), etag)


def _vector_layers(lay: tiles.TileLayer) -> list[dict[str, Any]]:
    numbers = {"area_km2", "n", "applied", "granted"}
    layers: list[dict[str, Any]] = [
        {
            "id": lay.id,
            "description": f"All attributes from zoom {tiles.LOW_ZOOM_MAX + 1}; below it only "
            + ", ".join(lay.low_zoom_attributes)
            + (
                f", and only licences spanning at least 4 pixels (the rest are in "
                f"{tiles.DENSITY_LAYER})"
                if lay.id == "licences"
                else ""
            ),
            "minzoom": 0,
            "maxzoom": tiles.MAX_ZOOM,
            "fields": lay.field_types
            or {a: "Number" if a in numbers else "String" for a in lay.attributes},
        }
    ]
    if lay.id == "licences":
        layers.append(
            {
                "id": tiles.DENSITY_LAYER,
                "description": "Licences too small to draw, counted per cell of a 64 x 64 grid "
                "per tile: n (licences), applied, granted, area_km2 (summed)",
                "minzoom": 0,
                "maxzoom": tiles.LOW_ZOOM_MAX,
                "fields": {a: "Number" for a in tiles.DENSITY_ATTRIBUTES},
            }
        )
    return layers


@router.get(
    "/tiles/{collection}/tilejson.json",
    summary="TileJSON 3.0 of a tile source",
    dependencies=[Depends(strict_query)],
)
def tilejson(collection: str, request: Request, db: DbDep, who: WhoDep) -> Response:
    """TileJSON for map libraries (MapLibre, Leaflet plugins, QGIS)."""
    return _tilejson(request, collection, db, who)


@router.get(
    "/collections/{collectionId}/tiles",
    summary="Tilesets of a collection",
    dependencies=[Depends(strict_query)],
)
def tilesets(collectionId: str, request: Request, db: DbDep, who: WhoDep) -> dict[str, Any]:
    """The collection's tileset list (OGC API - Tiles): WebMercatorQuad vector tiles."""
    with db.begin() as conn:
        tiles.layer(collectionId, conn, who)
    base = str(request.base_url).rstrip("/")
    href = f"{base}/collections/{collectionId}/tiles/WebMercatorQuad"
    return {
        "tilesets": [
            {
                "title": f"{collectionId} (WebMercatorQuad)",
                "dataType": "vector",
                "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
                "tileMatrixSetURI": WMQ_URI,
                "links": [
                    {"href": href, "rel": "self", "type": "application/json"},
                    {
                        "href": f"{base}/tileMatrixSets/WebMercatorQuad",
                        "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
                        "type": "application/json",
                    },
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
    dependencies=[Depends(strict_query)],
)
def tileset(collectionId: str, request: Request, db: DbDep, who: WhoDep) -> dict[str, Any]:
    """The WebMercatorQuad vector tileset of a collection."""
    (ts,) = tilesets(collectionId, request, db, who)["tilesets"]
    # Every tile of every zoom 0..22 may be asked for (empty ones answer 204).
    limits = [
        {
            "tileMatrix": str(z),
            "minTileRow": 0,
            "maxTileRow": 2**z - 1,
            "minTileCol": 0,
            "maxTileCol": 2**z - 1,
        }
        for z in range(tiles.MAX_ZOOM + 1)
    ]
    return {**ts, "tileMatrixSetLimits": limits}


def _web_mercator_quad() -> dict[str, Any]:
    """The WebMercatorQuad tile matrix set (OGC 17-083r4), zooms 0 to MAX_ZOOM."""
    half = tiles.WORLD / 2
    return {
        "id": "WebMercatorQuad",
        "title": "Google Maps Compatible for the World",
        "uri": WMQ_URI,
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "orderedAxes": ["E", "N"],
        "wellKnownScaleSet": "http://www.opengis.net/def/wkss/OGC/1.0/GoogleMapsCompatible",
        "tileMatrices": [
            {
                "id": str(z),
                # 0.28 mm pixels (the standard rendering pixel size)
                "scaleDenominator": tiles.WORLD / (256 * 2**z) / 0.00028,
                "cellSize": tiles.WORLD / (256 * 2**z),
                "cornerOfOrigin": "topLeft",
                "pointOfOrigin": [-half, half],
                "tileWidth": 256,
                "tileHeight": 256,
                "matrixWidth": 2**z,
                "matrixHeight": 2**z,
            }
            for z in range(tiles.MAX_ZOOM + 1)
        ],
    }


@router.get(
    "/tileMatrixSets",
    summary="Tile matrix sets (OGC API - Tiles)",
    dependencies=[Depends(strict_query)],
)
def tile_matrix_sets(request: Request) -> dict[str, Any]:
    """The tiling schemes of this service's tiles: WebMercatorQuad."""
    base = str(request.base_url).rstrip("/")
    return {
        "tileMatrixSets": [
            {
                "id": "WebMercatorQuad",
                "title": "Google Maps Compatible for the World",
                "uri": WMQ_URI,
                "links": [
                    {
                        "rel": "self",
                        "href": f"{base}/tileMatrixSets/WebMercatorQuad",
                        "type": "application/json",
                    }
                ],
            }
        ]
    }


@router.get(
    "/tileMatrixSets/{tileMatrixSetId}",
    summary="A tile matrix set (OGC API - Tiles)",
    dependencies=[Depends(strict_query)],
)
def tile_matrix_set(tileMatrixSetId: str) -> dict[str, Any]:
    """The definition of a tile matrix set (OGC Two Dimensional Tile Matrix Set 2.0 JSON)."""
    if tileMatrixSetId != "WebMercatorQuad":
        raise NotFound(
            f"no tile matrix set {tileMatrixSetId!r}; this service has WebMercatorQuad",
            field="tileMatrixSetId",
        )
    return _web_mercator_quad()


@router.get(
    "/collections/{collectionId}/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}",
    summary="A tile (OGC API - Tiles)",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}, 204: {"description": EMPTY}, **errors(400, 404)},
    openapi_extra={"parameters": FILTER_OPENAPI_PARAMETERS},
)
async def ogc_tile(
    collectionId: str,
    tileMatrix: int,
    tileRow: int,
    tileCol: int,
    request: Request,
    who: WhoDep,
) -> Response:
    """The same tile as `/tiles/{collection}/{z}/{x}/{y}.mvt` (row = y, column = x)."""
    return await _tile(request, who, collectionId, tileMatrix, tileCol, tileRow, "mvt")
